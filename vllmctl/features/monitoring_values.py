"""Prometheus and Grafana: the chart's ServiceMonitors and dashboards, on request.

VLLM_MONITORING turns on `servingEngineSpec.serviceMonitor` and `routerSpec.serviceMonitor`
(ServiceMonitors `<release>-engine-servicemonitor` and `<release>-router-servicemonitor`,
scraped by a Prometheus Operator), VLLM_GRAFANA_DASHBOARDS the chart's `grafanaDashboards`
(ConfigMaps a Grafana sidecar loads). The chart has both from 0.1.11 and silently ignores
them before, so older versions are refused. docs/monitoring.md lists the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import SINCE as _SINCE
from vllmctl.core.errors import UsageError, VllmctlError, refuse_problems

if TYPE_CHECKING:
    from vllmctl.core.findings import Report

SINCE = _SINCE["serviceMonitor"]
GROUP = "monitoring.coreos.com"
PLURAL = "servicemonitors"
VERSION = "v1"  # what the chart's ServiceMonitors are written in


class Monitoring(NamedTuple):
    """What the values get: each None when it stays off (the chart's default)."""

    service_monitor: dict[str, Any] | None  # servingEngineSpec.serviceMonitor and routerSpec's
    grafana_dashboards: dict[str, Any] | None  # the top-level grafanaDashboards


def values(monitoring: bool, dashboards: bool, chart_text: str, chart: tuple[int, ...] | None) -> Monitoring:
    """The chart values for the two settings; a chart that would ignore them is refused."""
    problems = []
    for env, wanted, what in (
        ("VLLM_MONITORING", monitoring, "ServiceMonitors"),
        ("VLLM_GRAFANA_DASHBOARDS", dashboards, "Grafana dashboards"),
    ):
        if wanted and chart is not None and chart < SINCE:
            problems.append(
                f"{env} needs chart 0.1.11 or newer (older charts make no {what} and would ignore "
                f"it); VLLM_CHART_VERSION is {chart_text}. Raise the chart version, or set {env}=false."
            )
    refuse_problems(problems, "the monitoring settings")
    # Only `enabled`: the chart's defaults (interval 30s, scrapeTimeout 25s, its labels) merge in.
    return Monitoring(
        {"enabled": True} if monitoring else None,
        {"enabled": True} if dashboards else None,
    )


def served(kube: Any) -> bool:
    """Whether the cluster serves ServiceMonitor in the version the chart writes
    (monitoring.coreos.com/v1): the Prometheus Operator's CRD is installed."""
    versions: list[str] = kube.served_versions(GROUP, PLURAL)
    return VERSION in versions


def refusal(settings: Any) -> str | None:
    """Why the settings would be refused by `values`, or None."""
    from vllmctl.chart.facts import version_tuple

    try:
        values(
            bool(settings.monitoring),
            bool(settings.grafana_dashboards),
            str(settings.chart_version),
            version_tuple(str(settings.chart_version)),
        )
    except VllmctlError as e:
        return " ".join([e.message, *e.details])
    return None


def require_served(served: Callable[[str, str, str], bool | None]) -> None:
    """Before install or upgrade with VLLM_MONITORING on: stop, with nothing changed, when
    the cluster does not serve ServiceMonitors (helm would fail half-way through with a
    mapping or validation error). A cluster that cannot be asked is left to helm."""
    if served(GROUP, VERSION, PLURAL) is False:
        raise UsageError(
            f"VLLM_MONITORING is on, but the cluster does not serve ServiceMonitors ({GROUP}/{VERSION}), "
            "so helm could not create them; nothing was changed. Install the Prometheus Operator (or "
            "just its CRDs), or set VLLM_MONITORING=false."
        )


def check_monitoring(report: Report, kube: Any, settings: Any) -> None:
    """Whether the cluster serves ServiceMonitors (the Prometheus Operator's CRD), which the
    chart makes when VLLM_MONITORING is on: without it helm cannot create them."""
    from vllmctl.core.findings import FAIL, OK, SKIP, WARN

    wanted = bool(settings.monitoring)
    refused = refusal(settings) if wanted or settings.grafana_dashboards else None
    if refused:
        report.add("cluster", "monitoring", FAIL, refused, "raise VLLM_CHART_VERSION to 0.1.11 or newer")
        return
    kind = f"ServiceMonitors ({GROUP}/{VERSION})"
    try:
        is_served = served(kube)
    except VllmctlError as e:
        status = WARN if wanted else SKIP
        report.add("cluster", "monitoring", status, f"could not ask for {kind}: {e.message}")
        return
    if wanted and not is_served:
        report.add(
            "cluster",
            "monitoring",
            WARN,
            f"VLLM_MONITORING is on, but the cluster does not serve {kind}: install and upgrade "
            "would fail when helm creates them",
            "install the Prometheus Operator (e.g. kube-prometheus-stack), or set VLLM_MONITORING=false",
        )
    elif wanted:
        report.add("cluster", "monitoring", OK, f"the cluster serves {kind}: engines and router get one")
    elif is_served:
        report.add(
            "cluster",
            "monitoring",
            OK,
            f"the cluster serves {kind}; VLLM_MONITORING=true would have Prometheus scrape the release",
        )
    else:
        report.add("cluster", "monitoring", OK, f"VLLM_MONITORING is off (the cluster serves no {kind})")
