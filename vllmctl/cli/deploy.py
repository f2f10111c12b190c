"""Commands that render values and drive helm: render, template, plan, install, upgrade,
uninstall, history, rollback, and the helm repo and namespace helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from vllmctl.chart.facts import router_service_name
from vllmctl.cli.options import backend_option, command, templates_dir_option
from vllmctl.ui import App


def _show_notes(app: App, prepared: Any) -> None:
    for warning in [*prepared.rendered.warnings, *prepared.warnings]:
        app.warn(warning)
    for note in prepared.notes:
        app.info(f"note: {note}")


def _force_option(func: Any) -> Any:
    return click.option(
        "--force", is_flag=True, help="go ahead even when the models do not fit the cluster's free GPUs"
    )(func)


@command("render", output=False)
@click.option(
    "-o",
    "--output",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="write the values to FILE instead of stdout",
)
@templates_dir_option
def render_values(app: App, output_file: Path | None) -> None:
    """Print the Helm values models.yaml turns into (no cluster needed).

    Labels are those of a new release; install, upgrade and plan keep a deployed
    release's own. Secrets appear only as references, never as values.
    """
    from vllmctl.ops.deploy import prepare

    prepared = prepare(app.settings, helm=None, kubectl=None)
    _show_notes(app, prepared)
    if output_file is None:
        sys.stdout.write(prepared.rendered.text)
        return
    output_file.write_text(prepared.rendered.text, encoding="utf-8")
    count = len(prepared.models)
    app.success(f"Wrote the values for {count} model{'s' if count != 1 else ''} to {output_file}.")


@command("template")
@templates_dir_option
def template(app: App) -> None:
    """Print the manifests helm would apply (helm template; no cluster needed)."""
    from vllmctl.cluster import tools
    from vllmctl.cluster.helm import private_values_file
    from vllmctl.ops.deploy import chart_ref, helm_for, prepare

    settings = app.settings
    prepared = prepare(settings, helm=None, kubectl=None)
    _show_notes(app, prepared)
    helm = helm_for(settings)
    chart = chart_ref(settings)
    if chart.is_repo:
        tools.run(helm.repo_add_argv(chart))
        tools.run(helm.repo_update_argv(chart))
    with private_values_file(prepared.rendered.text) as values:
        sys.stdout.write(tools.run(helm.template_argv(chart, values)))


@command("plan")
@templates_dir_option
@_force_option
def plan(app: App, force: bool) -> None:
    """Show what install/upgrade would change, model by model.

    Exit 0 when nothing would change, 1 when something would, 2 on error (like diff),
    including a plan whose replicas the cluster's free GPUs cannot hold (unless --force).
    """
    from vllmctl.core.errors import EXIT_NEGATIVE, UsageError
    from vllmctl.ops.deploy import helm_for, kubectl_for, prepare
    from vllmctl.ops.recovery import stuck_release

    settings = app.settings
    helm = helm_for(settings)
    prepared = prepare(settings, helm=helm, kubectl=kubectl_for(settings), gated=_gated_models(app))
    if stuck := stuck_release(helm, prepared.deployed):
        raise stuck.refusal("plan again")
    _show_notes(app, prepared)
    result = prepared.plan

    def show(data: dict[str, Any]) -> None:
        app.emit(data, lambda: print("\n".join(result.lines())))

    try:
        fit = _check_gpu_fit(app, prepared, force)
    except UsageError:
        show(result.as_json())  # the plan, then why it cannot be scheduled
        raise
    show({**result.as_json(), "gpuFit": fit.as_json()} if fit is not None else result.as_json())
    if result.has_changes or result.blockers:
        sys.exit(EXIT_NEGATIVE)


def _apply_options(func: Any) -> Any:
    func = click.option("--dry-run", is_flag=True, help="show the plan and the helm command; change nothing")(
        func
    )
    func = click.option(
        "--atomic", is_flag=True, help="roll back if the release fails (helm's rollback-on-failure)"
    )(func)
    func = click.option(
        "--api-key/--no-api-key",
        "api_key",
        default=None,
        help="protect the endpoint with an API key, stored when none is: VLLM_API_KEY's, else a generated "
        "one; default: yes when VLLM_API_KEY is set, else ask",
    )(func)
    func = _force_option(func)
    func = click.option(
        "--recover",
        is_flag=True,
        help="first repair a release an interrupted helm left pending (as `vllmctl recover` does)",
    )(func)
    func = click.option(
        "--replace-deployments",
        is_flag=True,
        help="delete Deployments whose selector the chart version changes (a short outage)",
    )(func)
    return backend_option(templates_dir_option(func))


def _apply(
    app: App,
    *,
    install: bool,
    dry_run: bool,
    atomic: bool,
    replace_deployments: bool,
    api_key: bool | None,
    force: bool,
    recover: bool,
) -> None:
    from vllmctl.cluster import tools
    from vllmctl.core.errors import UsageError
    from vllmctl.ops import deploy, recovery

    settings = app.settings
    settings.helm_timeout  # noqa: B018 (a bad VLLM_HELM_TIMEOUT stops here, before anything changes)
    helm = deploy.helm_for(settings)
    kubectl = deploy.kubectl_for(settings)
    gated = _gated_models(app)
    prepared = deploy.prepare(settings, helm=helm, kubectl=kubectl, gated=gated)
    if stuck := recovery.stuck_release(helm, prepared.deployed):
        from vllmctl.cli.recover import offer_recovery

        then = f"`vllmctl {'install' if install else 'upgrade'}`"
        if dry_run:  # a dry run repairs nothing either
            raise stuck.refusal(then)
        offer_recovery(app, helm, stuck, recover=recover, then=then)
        # against what is deployed now
        prepared = deploy.prepare(settings, helm=helm, kubectl=kubectl, gated=gated)
    if not install and prepared.deployed is None:
        raise UsageError(
            f"there is no release {settings.release!r} in namespace {settings.namespace!r}; "
            "create it with `vllmctl install`."
        )
    # Before anything changes: secrets are stored and synced only for a plan that can run.
    _check_gpu_fit(app, prepared, force)
    # What the chart features need in the cluster (a CRD, a claim the sources read): helm
    # would fail half-way, or the pods never start.
    deploy.check_features(settings, prepared.models, kubectl)
    if not dry_run and _ensure_secrets(app, gated(prepared.models), api_key, install=install):
        # The values reference a Secret only once it exists: render again.
        prepared = deploy.prepare(settings, helm=helm, kubectl=kubectl, gated=gated)
    _show_notes(app, prepared)
    if note := deploy.pvc_policy_note(settings):
        app.warn(note)
    app.info("\n".join(prepared.plan.lines()))
    if dry_run:
        argv = deploy.upgrade_command(settings, helm, install=install, atomic=atomic)
        app.info(f"helm command: {tools.shown(argv)}")
        app.info("Dry run: nothing was changed.")
        return
    # At a terminal, a deployed release changes only once the plan is agreed to (--yes
    # skips the question; without a terminal it goes ahead, as a new install does).
    question = f"Upgrade release {settings.release} in namespace {settings.namespace} as planned?"
    if prepared.deployed is not None and app.interactive and not app.confirm(question):
        app.info(f"Release {settings.release} was not changed.")
        return
    verb = "Installing" if install and prepared.deployed is None else "Upgrading"
    lines = deploy.apply(
        settings,
        helm,
        kubectl,
        prepared,
        install=install,
        atomic=atomic,
        replace_deployments=replace_deployments,
        notify=app.warn,
    )
    try:
        seconds = app.follow(lines, f"{verb} {settings.release} with helm")
    except tools.ToolInterrupted as e:
        from vllmctl.cli.recover import interrupted

        raise interrupted(helm, prepared.deployed, e) from None
    app.success(f"Release {settings.release} is deployed in namespace {settings.namespace} ({seconds:.0f}s).")
    names = ", ".join(m.name for m in prepared.models)
    app.info(f"Models: {names}")
    app.info(
        f"API: http://{router_service_name(settings.release)}.{settings.namespace}.svc.cluster.local/v1"
        " in the cluster; from here: vllmctl port-forward, then http://localhost:8000/v1"
    )


@command("install")
@_apply_options
def install(app: App, **options: Any) -> None:
    """Install (or upgrade) the release from models.yaml, creating the namespace.

    Gated models (models.yaml's `gated:`, else the Hub's answer) need the HuggingFace
    token: a stored one, or VLLM_HF_TOKEN, which is stored as `set-hf-token` would; without
    one nothing is changed (exit 2). VLLM_API_KEY set protects the endpoint with that key
    (stored, and its Secret wired into the release), as --api-key does.
    """
    _apply(app, install=True, **options)


@command("upgrade")
@_apply_options
def upgrade(app: App, **options: Any) -> None:
    """Upgrade the existing release to what models.yaml says now.

    Gated models and VLLM_HF_TOKEN / VLLM_API_KEY are handled as by install.
    """
    _apply(app, install=False, **options)


def _gated_models(app: App) -> Callable[[list[Any]], list[str]]:
    """models -> the models that need the HuggingFace token (vllmctl/ops/gated.py), decided
    once per run (the Hub asked once per repo), its warnings shown once."""
    from vllmctl.ops import deploy

    decided: list[list[str]] = []

    def gated(models: list[Any]) -> list[str]:
        if not decided:
            found = deploy.decide_gated(app.settings, models)
            for warning in found.warnings:
                app.warn(warning)
            decided.append(list(found.models))
        return decided[0]

    return gated


def _ensure_secrets(app: App, gated: list[str], api_key: bool | None, *, install: bool) -> bool:
    """Before helm: the HF token for gated models, and the API key when wanted
    (vllmctl/secrets/install.py). Skipped, with no cluster call, when neither applies.
    Returns whether a Secret was created or changed. Install creates the namespace."""
    from vllmctl.secrets.install import ensure_secrets, needs_backend, wants_api_key

    api_key = wants_api_key(api_key)
    if not needs_backend(gated, api_key, app.interactive):
        return False
    from vllmctl.cli.secrets import secret_backend

    with secret_backend(app) as backend:
        backend.creates_namespace = install
        done = ensure_secrets(app, backend, gated, api_key)
    for line in done:
        app.info(line[0].upper() + line[1:] + ".")
    return bool(done)


def _check_gpu_fit(app: App, prepared: Any, force: bool) -> Any:
    """Refuse a plan whose replicas the cluster's free GPUs cannot hold (docs/gpu-fit.md),
    unless --force; warn about rolling updates with no room for their surge pods."""
    from vllmctl.core.errors import UsageError
    from vllmctl.ops.deploy import gpu_fit
    from vllmctl.ops.gpufit import CannotReadNodes

    try:
        fit = gpu_fit(app.settings, prepared)
    except CannotReadNodes as e:
        app.warn(f"GPU fit not checked: {e.message}")
        return None
    for finding in fit.warnings:
        app.warn(finding.message)
    if fit.ok:
        return fit
    problems = [f.message for f in fit.shortfalls]
    if force:
        app.warn(
            "the models do not fit the cluster's free GPUs; going ahead (--force): pods will stay Pending."
        )
        for problem in problems:
            app.info(f"  {problem}")
        return fit
    raise UsageError(
        "the models do not fit the cluster's free GPUs, so nothing was changed:",
        details=[
            *problems,
            "fewer replicas or GPUs per replica, or more GPU nodes; --force goes ahead anyway "
            "(the pods stay Pending until GPUs free up). `vllmctl doctor` shows the whole picture.",
        ],
    )


@command("uninstall")
@click.option("--delete-secrets", is_flag=True, help="also delete the hf-token and vllm-api-key Secrets")
@click.option("--delete-namespace", is_flag=True, help="also delete the namespace, with everything in it")
def uninstall(app: App, delete_secrets: bool, delete_namespace: bool) -> None:
    """Uninstall the release; model caches and secrets stay unless asked.

    The model-cache PVCs survive with chart 0.1.10+ and are reused by the next install.
    Run again, it deletes what is left and says what was already gone.
    """
    from vllmctl.cluster import tools
    from vllmctl.ops import deploy

    settings = app.settings
    helm, kubectl = deploy.helm_for(settings), deploy.kubectl_for(settings)
    namespace, release = settings.namespace, settings.release
    found = deploy.survey(settings, helm, kubectl, claims=delete_namespace)
    if found.release:
        if note := deploy.pvc_policy_note(settings, helm):
            app.warn(note)
        if not app.confirm(f"Uninstall release {release} from namespace {namespace}? Serving stops."):
            app.info("Nothing was changed.")
            return
    else:
        app.info(f"Release {release} is not installed in namespace {namespace}: nothing to uninstall.")
        question = f"Delete the Secrets hf-token and vllm-api-key in namespace {namespace}?"
        if delete_secrets and found.namespace and not delete_namespace and not app.confirm(question):
            app.info("Nothing was changed.")
            return
    if delete_namespace and found.namespace:
        lost = ", ".join(found.claims) or "none"
        app.warn(
            f"deleting namespace {namespace} deletes every object in it, model caches included ({lost})."
        )
        if not app.confirm(f"Delete namespace {namespace} and everything in it?", flag="--yes"):
            app.info("The release stays; nothing was changed." if found.release else "Nothing was changed.")
            return
    if found.release:
        from vllmctl.cli.recover import follow_to_the_end
        from vllmctl.cluster.helm import is_not_found

        try:
            argv = helm.uninstall_argv(timeout=settings.helm_timeout)
            follow_to_the_end(app, helm, argv, f"Uninstalling {release}")
        except tools.ToolError as exc:
            if not is_not_found(exc):
                raise helm.explained(exc) from None
            app.info(f"Release {release} was already gone.")  # uninstalled meanwhile
        else:
            app.success(f"Uninstalled {release}.")
    if delete_secrets:
        _delete_secrets(app, deploy.delete_release_secrets(settings, kubectl) if found.namespace else [])
    if delete_namespace:
        _delete_namespace(app, kubectl, namespace, exists=found.namespace)


def _delete_secrets(app: App, deleted: list[str]) -> None:
    if deleted:
        app.info(f"Deleted {', '.join(deleted)}.")
    else:
        app.info(f"No Secret hf-token or vllm-api-key in namespace {app.settings.namespace}: none to delete.")


def _delete_namespace(app: App, kubectl: Any, namespace: str, *, exists: bool) -> None:
    """Delete the namespace (waiting until it is gone), or say that there is none."""
    if exists and kubectl.delete("namespace", [namespace]):
        app.success(f"Deleted namespace {namespace}.")
    else:
        app.info(f"Namespace {namespace} does not exist: nothing to delete.")


@command("history")
def history(app: App) -> None:
    """List the release's revisions (helm history)."""
    from vllmctl.ops.deploy import helm_for

    revisions = helm_for(app.settings).history()
    rows = [
        (r.get("revision"), r.get("updated"), r.get("status"), r.get("chart"), r.get("description"))
        for r in revisions
    ]
    app.emit(revisions, lambda: app.table(("revision", "updated", "status", "chart", "description"), rows))


@command("rollback")
@click.argument("revision", type=int, required=False)
def rollback(app: App, revision: int | None) -> None:
    """Roll the release back to REVISION (default: the previous one)."""
    from vllmctl.ops.deploy import helm_for
    from vllmctl.ops.recovery import stuck_in

    settings = app.settings
    helm = helm_for(settings)
    history = helm.history()  # a clear error when there is no release
    if stuck := stuck_in(history, settings.release, settings.namespace):
        if stuck.target is None:
            raise stuck.refusal()
        app.warn(stuck.sentence())
        revision = revision or stuck.target  # "the previous one" may be the revision that never finished
    chosen = helm.rollback_target(revision, history)  # refused when there is no such revision
    target = f"revision {chosen}"
    from vllmctl.cli.recover import follow_to_the_end

    argv = helm.rollback_argv(chosen, timeout=settings.helm_timeout)
    follow_to_the_end(app, helm, argv, f"Rolling back to {target}")
    app.success(f"Rolled {settings.release} back to {target}.")


@command("add-helm-repo")
def add_helm_repo(app: App) -> None:
    """Add (or update) the helm repository of the chart."""
    from vllmctl.cluster import tools
    from vllmctl.core.errors import UsageError
    from vllmctl.ops.deploy import chart_ref, helm_for

    chart = chart_ref(app.settings)
    if not chart.is_repo:
        raise UsageError(
            f"VLLM_CHART={chart.ref!r} is not a repo reference (like vllm/vllm-stack); no repo to add."
        )
    helm = helm_for(app.settings)
    tools.run(helm.repo_add_argv(chart))
    tools.run(helm.repo_update_argv(chart))
    app.success(f"helm repo {chart.repo_name} -> {chart.repo_url} is added and up to date.")


@command("remove-helm-repo")
def remove_helm_repo(app: App) -> None:
    """Remove the chart's helm repository."""
    from vllmctl.cluster import tools
    from vllmctl.cluster.helm import is_no_repo
    from vllmctl.ops.deploy import chart_ref, helm_for

    chart = chart_ref(app.settings)
    if not chart.is_repo:
        app.info(f"VLLM_CHART={chart.ref} is a local chart: there is no helm repository to remove.")
        return
    try:
        tools.run(helm_for(app.settings).repo_remove_argv(chart.repo_name))
    except tools.ToolError as exc:
        if not is_no_repo(exc):
            raise
        app.info(f"helm has no repository {chart.repo_name}: nothing to remove.")
        return
    app.success(f"Removed helm repo {chart.repo_name}.")


@command("create-namespace")
def create_namespace(app: App) -> None:
    """Create the namespace (or update it) with Pod Security labels (baseline)."""
    from vllmctl.ops.deploy import kubectl_for

    namespace = app.settings.namespace
    kubectl_for(app.settings).ensure_namespace(namespace)
    app.success(f"Namespace {namespace} exists with Pod Security enforce=baseline, warn=baseline.")


@command("delete-namespace")
def delete_namespace(app: App) -> None:
    """Delete the namespace and everything in it, model caches included (asks first)."""
    from vllmctl.ops.deploy import kubectl_for

    namespace = app.settings.namespace
    kubectl = kubectl_for(app.settings)
    if not kubectl.exists("namespace", namespace):
        _delete_namespace(app, kubectl, namespace, exists=False)
        return
    claims = (
        ", ".join(c.split("/", 1)[-1] for c in kubectl.names("persistentvolumeclaim", namespace)) or "none"
    )
    app.warn(f"this deletes every object in {namespace}, model caches included (PVCs: {claims}).")
    if not app.confirm(f"Delete namespace {namespace}?"):
        app.info("Nothing was changed.")
        return
    _delete_namespace(app, kubectl, namespace, exists=True)


COMMANDS = {
    c.name: c
    for c in (
        render_values,
        template,
        plan,
        install,
        upgrade,
        uninstall,
        history,
        rollback,
        add_helm_repo,
        remove_helm_repo,
        create_namespace,
        delete_namespace,
    )
}
COMMANDS["diff"] = plan
