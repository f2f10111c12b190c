"""restart: replace the engine pods of some (or all) models of the release, and wait."""

from __future__ import annotations

import time
from typing import Any

import click

from vllmctl.cli.options import command, complete_model_names
from vllmctl.core.errors import Interrupted, UsageError
from vllmctl.ui import App


@command("restart")
@click.argument("models", nargs=-1, shell_complete=complete_model_names)
@click.option("--timeout", default=600.0, show_default=True, help="seconds to wait for the restarts")
@click.option(
    "--force", is_flag=True, help="restart even when the new pods do not fit the cluster's free GPUs"
)
def restart(app: App, models: tuple[str, ...], timeout: float, force: bool) -> None:
    """Restart the engines of MODELS (every model when none), waiting for the new pods.

    A model's Deployment gets a rolling restart (`kubectl rollout restart`), which must
    fit the cluster's free GPUs first (unless --force); a multi-node model's RayCluster
    is restarted whole: its head and worker pods are deleted together and KubeRay makes
    new ones. The router is left alone.
    """
    from vllmctl.cluster.kube import Kube
    from vllmctl.cluster.logs import deployed_models
    from vllmctl.ops.gpufit import CannotReadNodes
    from vllmctl.ops.ray_restart import follow_ray_restarts, plan_ray_restarts, restart_rayclusters
    from vllmctl.ops.restart import RolloutTimeout, follow_rollout, restart_fit
    from vllmctl.ops.rotate import release_deployments

    settings = app.settings
    namespace, release = settings.namespace, settings.release
    with Kube.from_settings(settings) as kube:
        rays = plan_ray_restarts(kube, namespace, release)
        deployed = deployed_models(kube, namespace, release, [r.model for r in rays])
        unknown = [m for m in models if m not in deployed]
        if unknown or not deployed:
            listing = ", ".join(deployed) or "none"
            raise UsageError(
                f"{', '.join(unknown) or 'no model'} {'is' if len(unknown) == 1 else 'are'} not deployed in "
                f"release {release} (namespace {namespace}); deployed: {listing}."
            )
        chosen = list(models) or deployed
        deployments = [d for d in release_deployments(kube, namespace, release) if _model(d) in chosen]
        names = [str(d["metadata"]["name"]) for d in deployments]
        rays = [r for r in rays if r.model in chosen]
        try:
            staying = [m for m in deployed if m not in chosen]
            check_fit(
                app,
                restart_fit(kube, namespace, release, deployments, staying),
                force,
                doing="restarting",
                refusal="the restart does not fit the cluster's free GPUs, so nothing was changed",
                forced="--force restarts anyway (the new pods then stay Pending while the old pods serve).",
            )
        except CannotReadNodes as e:
            app.warn(f"restart not checked against the free GPUs: {e.message}")
        what = [*names, *(r.describe() for r in rays)]
        if not app.confirm(f"Restart {', '.join(what)} in namespace {namespace}?"):
            app.info("Nothing was changed.")
            return
        try:
            kube.restart_deployments(namespace, names)
            restart_rayclusters(kube, namespace, rays)
            started = time.monotonic()
            if names:
                follow_rollout(kube, namespace, names, timeout, app.info)
            if rays:
                left = max(0.1, timeout - (time.monotonic() - started))
                follow_ray_restarts(kube, namespace, rays, left, app.info, told=timeout)
        except RolloutTimeout as e:
            e.message = (
                f"{e.message}. The restart goes on by itself (the Deployments and KubeRay replace the pods "
                "once what they wait for, below, is there); `vllmctl status` shows them."
            )
            raise
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted while waiting for the restarts; the Deployments (KubeRay for a RayCluster) "
                "go on replacing their pods by themselves: `vllmctl status` shows them."
            ) from None
    app.success(f"Restarted {', '.join(what)}.")


def _model(deployment: dict[str, Any]) -> str:
    from vllmctl.chart.facts import MODEL_LABEL

    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return str(labels.get(MODEL_LABEL) or "")


def check_fit(app: App, fit: Any, force: bool, *, doing: str, refusal: str, forced: str) -> None:
    """Refuse, before anything changes, a rolling restart the free GPUs cannot hold (restart's,
    and rotate-api-key's): with --force, warn that it goes on `doing` ("restarting"); else
    raise `refusal` with the shortfalls, the fixes and `forced`, what --force would do."""
    problems = [f.message for f in (*fit.shortfalls, *fit.warnings)]
    if not problems:
        return
    if force:
        app.warn(f"the restart does not fit the cluster's free GPUs; {doing} anyway (--force):")
        for problem in problems:
            app.info(f"  {problem}")
        return
    raise UsageError(
        f"{refusal}:",
        details=[*problems, f"free GPUs first, or set `strategy: recreate` and `vllmctl upgrade`; {forced}"],
    )


COMMANDS = {c.name: c for c in (restart,)}
