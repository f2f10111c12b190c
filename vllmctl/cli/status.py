"""status and endpoints: what runs, why anything is not Ready, and how clients reach it.

The facts come from the vllmctl.ops.status package; this module only shows them: as text (kubectl-style
tables), as JSON/YAML (`-o`), or refreshed in place with `--watch`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from vllmctl.cli.options import command
from vllmctl.ui import App, format_table


@command("status")
@click.option("-w", "--watch", is_flag=True, help="refresh in place until everything is Ready (or Ctrl-C)")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    metavar="SECONDS",
    default=2.0,
    show_default=True,
    help="--watch: seconds between refreshes",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    default=None,
    help="--watch: give up after SECONDS (exit 1) [default: never]",
)
def status(app: App, watch: bool, interval: float, timeout: float | None) -> None:
    """Show the release, each model's pods and why any is not Ready, and what is served.

    Compares models.yaml with what is deployed and with what the router serves
    (GET /v1/models through a port-forward). Exit code 1 when anything is not Ready or
    does not match.
    """
    from vllmctl.core.errors import EXIT_NEGATIVE
    from vllmctl.ops.status.reader import StatusReader

    with StatusReader(app.settings) as reader:
        report = _watch(app, reader, interval, timeout) if watch else reader.read()
    if report is None:  # --watch timed out (its last report was shown)
        sys.exit(EXIT_NEGATIVE)
    app.emit(report.as_json(), lambda: print(render_status(report), end=""))
    if report.problems:
        sys.exit(EXIT_NEGATIVE)


@command("endpoints")
@click.option("--cluster-domain", default="cluster.local", show_default=True, help="the cluster's DNS domain")
def endpoints(app: App, cluster_domain: str) -> None:
    """Show the Services, the base URL clients use, and ready-to-paste examples.

    The examples read the API key with `$(vllmctl get-api-key)` when they run; it is
    never printed here.
    """
    from vllmctl.cluster.kube import Kube
    from vllmctl.core.errors import UsageError
    from vllmctl.ops.status.endpoints import endpoints as gather

    with Kube.from_settings(app.settings) as kube:
        report = gather(app.settings, kube, domain=cluster_domain)
    if report.router is None and not report.engines:
        raise UsageError(
            f"release {report.release} has no Services in namespace {report.namespace}: "
            "is it installed? (`vllmctl status` says more)"
        )
    app.emit(report.as_json(), lambda: print(render_endpoints(report), end=""))


# --- --watch ------------------------------------------------------------------------------


def _watch(app: App, reader: Any, interval: float, timeout: float | None) -> Any:
    """Read again every `interval` s until everything is Ready, and return that report (the
    caller shows it); None after `timeout`, with the last report shown here."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    if app.output == "table" and sys.stdout.isatty():
        report = _watch_live(reader, interval, deadline)
    else:
        report = _watch_plain(app, reader, interval, deadline)
    final = reader.read()  # with the comparison `plan` makes, which the frames leave out
    if report.ready:
        return final
    app.emit(final.as_json(), lambda: print(render_status(final), end=""))
    app.error(f"not everything was Ready within {timeout:g} s.")
    return None


def _watch_plain(app: App, reader: Any, interval: float, deadline: float | None) -> Any:
    """Not a terminal: each report that differs from the last once, `---` between them, as
    `kubectl get -w` appends; with -o json/yaml nothing until the end."""
    import time

    shown = ""
    while True:
        report = reader.read(check_plan=False)  # frames follow readiness: quick to redraw
        if report.ready or (deadline is not None and time.monotonic() >= deadline):
            if shown:
                print("---", flush=True)
            return report
        key = _signature(report)
        if app.output == "table" and key != shown:
            if shown:
                print("---")
            print(render_status(report), end="", flush=True)
            shown = key
        time.sleep(interval)


def _watch_live(reader: Any, interval: float, deadline: float | None) -> Any:
    """A terminal: the report redrawn in place (rich), then cleared for the final one."""
    import os
    import time

    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(no_color="NO_COLOR" in os.environ, highlight=False)
    report = reader.read(check_plan=False)  # frames follow readiness: quick to redraw
    with Live(Text(render_status(report)), console=console, auto_refresh=False, transient=True) as live:
        while not report.ready and (deadline is None or time.monotonic() < deadline):
            time.sleep(interval)
            report = reader.read(check_plan=False)
            live.update(Text(render_status(report)), refresh=True)
    return report


def _signature(report: Any) -> str:
    """The report without its ages, which change every second."""
    import json
    import re

    text = json.dumps(report.as_json(), sort_keys=True)
    return re.sub(r'"(age|updated_age)": "[^"]*"', "", text)


# --- text ---------------------------------------------------------------------------------


def render_status(report: Any) -> str:
    """The report as text: release, models, reasons, router, Service, comparison."""
    out: list[str] = [_release_line(report.release), ""]
    out += _models_table(report)
    out += _feature_tables(report)
    out += _reasons(report)
    out += _router_lines(report.router)
    out += _comparison_lines(report)
    out += [f"note: {note}" for note in report.notes]
    count = len(report.problems)
    out.append("All Ready." if not count else f"{count} problem{'s' if count > 1 else ''} (see above).")
    return "\n".join(out) + "\n"


def _release_line(r: Any) -> str:
    head = f"Release {r.name} in namespace {r.namespace}"
    if r.installed is None:
        return f"{head}: unknown ({r.error})"
    if not r.installed:
        return f"{head}: not installed (vllmctl install)"
    updated = (
        f", updated {r.updated_age} ago" if r.updated_age else (f", updated {r.updated}" if r.updated else "")
    )
    line = f"{head}: revision {r.revision}, chart {r.chart}, {r.status}{updated}"
    from vllmctl.ops.recovery import pending_advice

    advice = pending_advice(r.status)
    return f"{line}\n  {advice}" if advice else line


def _phases(phases: dict[str, int]) -> str:
    return ", ".join(f"{n} {phase}" for phase, n in phases.items()) or "no pods"


def _models_table(report: Any) -> list[str]:
    if not report.models:
        return ["No models: none in models.yaml and no engine Deployments of this release.", ""]
    rows = []
    for m in report.models:
        if not m.deployed:
            rows.append([m.name, "-", "-", "-", "-", "-", "-", "-", "-", "-", "not deployed"])
            continue
        r = m.replicas
        serving = "-" if m.serving is None else ("yes" if m.serving else "no")
        state = "Ready" if m.ready else "not Ready"
        rows.append(
            [m.name, f"{r.ready}/{r.desired}", r.updated, r.available, m.gpus_per_replica,
             _phases(m.phases), m.restarts, m.age, m.tag or "-", serving, state]
        )  # fmt: skip
    headers = ["model", "ready", "up-to-date", "available", "gpus", "pods", "restarts", "age", "tag"]
    return [*format_table([*headers, "serving", "status"], rows).splitlines(), ""]


def _feature_tables(report: Any) -> list[str]:
    """Each chart feature's table of the models it has something to say about (the models
    KEDA scales: replicas now, the bounds, what the HPA wants, the metric)."""
    from vllmctl.features import registry

    out: list[str] = []
    for feature in registry.FEATURES:
        if feature.status_key is None:
            continue
        parts = {
            m.name: m.features[feature.status_key]
            for m in report.models
            if m.features.get(feature.status_key)
        }
        table = feature.status_table(parts)
        if table is not None:
            out += [*format_table(*table).splitlines(), ""]
    return out


def _pod_reason_lines(owner: str, pods: list[Any]) -> list[str]:
    lines = []
    for pod in pods:
        if pod.reason:
            lines.append(f"  {owner}: pod {pod.name}: {pod.reason}")
            if pod.log_tail:
                lines.append("      last log lines:")
                lines += [f"      | {line}" for line in pod.log_tail]
    return lines


def _reasons(report: Any) -> list[str]:
    lines = []
    for m in report.models:
        if not m.deployed or m.ready:
            continue
        lines += [
            f"  {m.name}: {p}" for p in m.problems if not any(p.endswith(x.reason or "\0") for x in m.pods)
        ]
        lines += _pod_reason_lines(m.name, m.pods)
        if not m.problems and not any(p.reason for p in m.pods):
            lines.append(f"  {m.name}: rolling out ({m.replicas.updated}/{m.replicas.desired} up to date)")
    router = report.router
    if router.found and not router.ready:
        lines += [
            f"  router: {p}"
            for p in router.problems
            if not any(p.endswith(x.reason or "\0") for x in router.pods)
        ]
        lines += _pod_reason_lines("router", router.pods)
    return ["Not Ready:", *lines, ""] if lines else []


def _ports(service: Any) -> str:
    return ", ".join(
        f"{p.port}->{p.target_port}/{p.protocol}" + (f" ({p.name})" if p.name else "") for p in service.ports
    )


def _router_lines(router: Any) -> list[str]:
    if not router.found:
        lines = [f"Router: no Deployment {router.deployment}."]
    else:
        r = router.replicas
        rows = [[router.deployment, f"{r.ready}/{r.desired}", r.updated, r.available, _phases(router.phases),
                 router.restarts, router.age, router.tag or "-"]]  # fmt: skip
        headers = ["router", "ready", "up-to-date", "available", "pods", "restarts", "age", "tag"]
        lines = format_table(headers, rows).splitlines()
        lines += [f"Router {label}: {value}" for label, value in router.features.items()]
    s = router.service
    if s is None:
        lines.append("Service: none for the router.")
    else:
        lines.append(f"Service {s.name}: {s.type} {s.cluster_ip or '-'}, ports {_ports(s)}")
        lines.append(f"Base URL in the cluster: {router.base_url}")
    if router.reachable:
        lines.append(f"Served (GET /v1/models): {', '.join(router.served) or 'nothing'}")
    elif router.reachable is False:
        lines.append(f"router: not reachable ({router.error})")
    return [*lines, ""]


def _comparison_lines(report: Any) -> list[str]:
    from vllmctl.ops.status.compare import DIFFERS

    c = report.comparison
    deploy = "install" if report.release.installed is False else "upgrade"
    found = [
        (f"in models.yaml, not deployed (vllmctl {deploy})", c.configured_not_deployed),
        ("deployed, not in models.yaml (vllmctl upgrade removes them)", c.deployed_not_configured),
        ("deployed, not served by the router", c.deployed_not_serving),
        ("served by the router, not in models.yaml", c.serving_not_configured),
    ]
    lines = [f"  {title}: {', '.join(names)}" for title, names in found if names]
    if c.plan:
        count = len(c.plan)
        lines.append(f"  {DIFFERS} ({count} change{'s' if count > 1 else ''})")
    if lines:
        return ["Compared with models.yaml:", *lines, ""]
    if report.release.installed and report.models_file and c.plan is not None:
        agree = (
            "models.yaml, the release and the router"
            if report.router.reachable
            else "models.yaml and the release"
        )
        return [f"{agree} agree.", ""]
    return []


def render_endpoints(report: Any) -> str:
    rows = []
    services = [("-", report.router)] if report.router else []
    services += list(report.engines.items())
    for model, s in services:
        rows.append([s.name, model, s.type, s.cluster_ip or "-", s.dns, _ports(s)])
    out = format_table(["service", "model", "type", "cluster-ip", "dns name", "ports"], rows).splitlines()
    out += ["", f"Base URL (clients in the cluster): {report.base_url}"]
    out += [_external_line(access) for access in report.external]
    key = report.api_key
    out.append(f"API key: Secret {key.secret}, key {key.key}; `{key.command}` prints it.")
    out.append("From your machine: `vllmctl port-forward`, then http://127.0.0.1:8000/v1.")
    out += [f"note: {note}" for note in report.notes]
    out += ["", "curl:", *_indent(report.examples["curl"]), "", "Python (OpenAI client):"]
    out += _indent(report.examples["python"])
    return "\n".join(out) + "\n"


def _external_line(access: Any) -> str:
    """One way in from outside the cluster (docs/exposure.md)."""
    where = f"outside, {access.kind} {access.name}"
    if access.url:
        return f"Base URL ({where}): {access.url}" + (f" ({access.detail})" if access.detail else "")
    return f"From {where}: " + (access.detail if access.state == "ready" else f"pending, {access.detail}")


def _indent(text: str) -> list[str]:
    return [f"  {line}" if line else "" for line in text.splitlines()]


COMMANDS = {c.name: c for c in (status, endpoints)}
