"""`vllmctl export flux|argocd DIR`: the release as files for a GitOps reconciler
(vllmctl/ops/export.py does the work; docs/gitops.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vllmctl.cli.options import backend_option, command, shared_options, templates_dir_option
from vllmctl.ui import App


def _export_options(func: Any) -> Any:
    func = click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))(func)
    func = click.option(
        "--check",
        is_flag=True,
        help="write nothing; exit 1 with a unified diff when DIR differs from what export writes",
    )(func)
    func = click.option(
        "--offline",
        is_flag=True,
        help="do not ask the cluster: the earlier export in DIR stands for the deployed release",
    )(func)
    func = click.option(
        "--force", is_flag=True, help="export even when the models do not fit the cluster's free GPUs"
    )(func)
    return backend_option(templates_dir_option(func))


@command("flux")
@_export_options
def flux(app: App, **options: Any) -> None:
    """Write DIR/<release>/: a Flux HelmRelease and HelmRepository, namespace, ExternalSecrets.

    The values are those install would deploy (`vllmctl render`'s, with the deployed
    release's labels kept); secrets appear only as references.
    """
    _export(app, "flux", **options)


@command("argocd")
@click.option("--argocd-namespace", default="argocd", show_default=True, help="namespace of the Application")
@click.option("--project", default="default", show_default=True, help="Argo CD project of the Application")
@click.option(
    "--destination-server",
    default="https://kubernetes.default.svc",
    show_default=True,
    help="API server Argo CD deploys to (the default: Argo CD's own cluster)",
)
@_export_options
def argocd(app: App, argocd_namespace: str, project: str, destination_server: str, **options: Any) -> None:
    """Write DIR/<release>/: an Argo CD Application, namespace, ExternalSecrets.

    The values are those install would deploy (`vllmctl render`'s, with the deployed
    release's labels kept); secrets appear only as references.
    """
    extra = {"argocd_namespace": argocd_namespace, "argocd_project": project}
    _export(app, "argocd", **options, target_extra={**extra, "destination_server": destination_server})


def _export(
    app: App,
    tool: str,
    *,
    directory: Path,
    check: bool,
    offline: bool,
    force: bool,
    target_extra: dict[str, str] | None = None,
) -> None:
    from vllmctl.cli.deploy import _check_gpu_fit, _gated_models, _show_notes
    from vllmctl.core.errors import EXIT_NEGATIVE, ClusterUnreachable
    from vllmctl.ops import deploy
    from vllmctl.ops.export import export
    from vllmctl.render.gitops import Target

    settings = app.settings
    target = Target(settings.release, settings.namespace, settings.env or None, **(target_extra or {}))
    helm = kubectl = None
    if not offline:
        helm, kubectl = deploy.helm_for(settings), deploy.kubectl_for(settings)
        try:
            helm.listed()  # one `helm list`: whether the cluster answers (prepare reads the rest)
        except ClusterUnreachable as e:
            app.warn(f"{e.message} Exporting offline (--offline says so without asking).")
            helm = kubectl = None
    gated = _gated_models(app)
    exported = export(settings, tool, directory, helm=helm, kubectl=kubectl, gated=gated, target=target)
    if kubectl is not None:  # the cluster answered: the checks install makes of it
        _check_gpu_fit(app, exported.prepared, force)
        deploy.check_features(settings, exported.prepared.models, kubectl)
    _show_notes(app, exported.prepared)
    for note in exported.notes[len(exported.prepared.notes) :]:
        app.info(f"note: {note}")
    if policy := deploy.pvc_policy_note(settings):
        app.warn(policy)
    if check:
        diff = exported.diff()
        if diff:
            sys.stdout.write(diff)
            app.warn(f"{exported.directory} differs from what `vllmctl export {tool}` writes.")
            sys.exit(EXIT_NEGATIVE)
        app.success(f"{exported.directory} is up to date.")
        return
    changed = exported.write()
    shown = ", ".join(changed) if changed else "nothing changed"
    app.success(f"Exported release {settings.release} for {tool} to {exported.directory} ({shown}).")


COMMANDS_IN_GROUP = (flux, argocd)


def _group() -> None:
    """Write the release as files for Flux or Argo CD (GitOps): export flux|argocd DIR.

    The global options work here too (`vllmctl export --env prod flux DIR`).
    """


# The group takes the global options as well, so they work at every position.
export_group = click.group("export")(shared_options(_group))


for _command in COMMANDS_IN_GROUP:
    export_group.add_command(_command)

COMMANDS = {"export": export_group}
