"""logs and router-logs: the pods' lines on stdout, prefixed with their pod; talk on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from vllmctl.cli.options import command, complete_model_names
from vllmctl.core.errors import EXIT_INTERRUPTED, EXIT_NEGATIVE, UsageError
from vllmctl.ui import App


def log_options(func: Any) -> Any:
    """The flags both commands share, kubectl's names and meanings."""
    options = [
        click.option(
            "-f",
            "--follow/--no-follow",
            default=True,
            help="keep streaming, picking up new and restarted pods [default: follow]",
        ),
        click.option(
            "--tail",
            type=int,
            default=100,
            show_default=True,
            metavar="N",
            help="lines of each pod's existing log to show first; -1 for all",
        ),
        click.option("--since", metavar="DURATION", help="only lines newer than this: 30s, 10m, 1h30m"),
        click.option(
            "-p",
            "--previous",
            is_flag=True,
            help="the log of each container's previous instance (before its last restart); no follow",
        ),
        click.option("-c", "--container", metavar="NAME", help="only this container of each pod"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@command("logs", output=False)
@click.argument("model", required=False, shell_complete=complete_model_names)
@log_options
@click.option(
    "--worker",
    type=click.IntRange(min=1),
    metavar="N",
    help="multi-node model: the Nth Ray worker pod (from 1, by pod name) instead of the head",
)
@click.option("--all-nodes", is_flag=True, help="multi-node model: the head and every worker pod")
def logs(
    app: App,
    model: str | None,
    follow: bool,
    tail: int,
    since: str | None,
    previous: bool,
    container: str | None,
    worker: int | None,
    all_nodes: bool,
) -> int:
    """Follow the logs of one model's pods in this release (choose when MODEL is omitted).

    Every pod of the model in this release (not another release's pods of the same name),
    interleaved line by line, each line prefixed with its pod. A multi-node model (a
    RayCluster): its head pod, which runs vLLM; --worker N or --all-nodes for the Ray
    workers. Ctrl-C stops.
    """
    from vllmctl.chart.facts import engine_selector
    from vllmctl.cluster.kube import Kube
    from vllmctl.cluster.logs import deployed_models, ray_models, ray_pods

    if worker is not None and all_nodes:
        raise UsageError("--worker and --all-nodes choose different pods; give one of them.")
    namespace, release = app.settings.namespace, app.settings.release
    with Kube.from_settings(app.settings) as kube:
        rays = ray_models(kube, namespace, release, app.warn)
        deployed = deployed_models(kube, namespace, release, rays)
        model = _choose(app, model, deployed)
        where = f"model {model} of release {release} in namespace {namespace}"
        if model in rays:
            selector, accept, which = ray_pods(
                kube, namespace, model, rays[model], worker=worker, all_nodes=all_nodes
            )
            return _show(
                app, kube, selector, f"{which} in namespace {namespace}", follow, tail, since, previous,
                container, accept,
            )  # fmt: skip
        if worker is not None or all_nodes:
            flag = "--all-nodes" if all_nodes else "--worker"
            raise UsageError(
                f"{flag} is for a multi-node model (a RayCluster); model {model} runs as a Deployment, "
                "whose pods `vllmctl logs` already shows all of."
            )
        return _show(
            app, kube, engine_selector(release, model), where, follow, tail, since, previous, container
        )


@command("router-logs", output=False)
@log_options
def router_logs(
    app: App, follow: bool, tail: int, since: str | None, previous: bool, container: str | None
) -> int:
    """Follow the logs of the release's router pods.

    The pods of the router Deployment <release>-deployment-router, interleaved line by
    line, each line prefixed with its pod. Ctrl-C stops.
    """
    from vllmctl.cluster.kube import Kube
    from vllmctl.cluster.logs import router_pods

    namespace, release = app.settings.namespace, app.settings.release
    with Kube.from_settings(app.settings) as kube:
        selector, accept = router_pods(kube, namespace, release)
        where = f"the router of release {release} in namespace {namespace}"
        return _show(app, kube, selector, where, follow, tail, since, previous, container, accept)


def _choose(app: App, model: str | None, deployed: list[str]) -> str:
    """The model asked for, checked against what is deployed; asked for when omitted."""
    settings = app.settings
    listing = ", ".join(deployed)
    if not deployed:
        raise UsageError(
            f"release {settings.release} has no models deployed in namespace {settings.namespace} "
            "(vllmctl install deploys models.yaml; check --namespace and VLLM_RELEASE)."
        )
    if model is not None:
        if model not in deployed:
            raise UsageError(
                f"model {model!r} is not deployed in release {settings.release} "
                f"(namespace {settings.namespace}); deployed: {listing}."
            )
        return model
    if not app.interactive:
        reason = "--yes was given" if app.yes else "this is not an interactive terminal"
        raise UsageError(f"name the model: vllmctl logs MODEL, one of {listing} (not asking: {reason}).")
    if len(deployed) == 1:
        app.info(f"Logs of {deployed[0]}, the only model deployed in release {settings.release}.")
        return deployed[0]
    return app.ask_select("Logs of which model?", deployed)


def _show(
    app: App,
    kube: Any,
    selector: str,
    where: str,
    follow: bool,
    tail: int,
    since: str | None,
    previous: bool,
    container: str | None,
    accept: Callable[[dict[str, Any]], bool] | None = None,
) -> int:
    from vllmctl.cluster.logs import LogOptions, parse_since, show_logs, tail_lines
    from vllmctl.ui import _wants_color

    options = LogOptions(
        follow=follow and not previous,
        tail=tail_lines(tail),
        since_seconds=parse_since(since) if since is not None else None,
        previous=previous,
        container=container,
    )
    outcome = show_logs(
        kube,
        app.settings.namespace,
        selector,
        options,
        out=sys.stdout,
        colour=_wants_color(sys.stdout),
        note=app.info,
        warn=app.warn,
        accept=accept,
        waiting=f"{where[0].upper()}{where[1:]} has no pods yet; waiting for them (Ctrl-C stops).",
    )
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if not options.follow and outcome.pods == 0:
        app.warn(f"{where} has no pods.")
        return EXIT_NEGATIVE
    if not options.follow and outcome.read == 0:
        return EXIT_NEGATIVE  # every pod's log was refused; the warnings said why
    return 0


COMMANDS = {c.name: c for c in (logs, router_logs)}
