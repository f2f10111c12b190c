"""doctor's check of what models.yaml's `autoscaling` needs: a chart with KEDA support,
KEDA's ScaledObject CRD in the cluster, and a Prometheus address KEDA can query."""

from __future__ import annotations

from typing import Any

from vllmctl.catalog.schema import Model
from vllmctl.chart.values import version_tuple
from vllmctl.doctor.report import FAIL, OK, WARN, Report
from vllmctl.errors import VllmctlError
from vllmctl.features import autoscaling

NAME = "autoscaling"


def check(report: Report, kube: Any, settings: Any, models: list[Model] | None) -> None:
    """Only when a model autoscales: fail without KEDA (helm could not create its
    ScaledObjects) or on a chart without it; warn when the Prometheus address names an
    in-cluster Service that does not exist."""
    scaled = [m.name for m in models or [] if autoscaling.bounds(m.data) is not None]
    if not scaled:
        return
    names = ", ".join(scaled)
    chart = str(settings.chart_version)
    try:
        for name in scaled:
            autoscaling.require_chart(name, version_tuple(chart), chart)
    except VllmctlError as e:
        report.add("cluster", NAME, FAIL, e.message, "raise VLLM_CHART_VERSION to 0.1.9 or newer")
        return
    kind = f"ScaledObjects ({autoscaling.GROUP}/{autoscaling.VERSION})"
    try:
        served = autoscaling.served(kube)
    except VllmctlError as e:
        report.add("cluster", NAME, WARN, f"could not ask for {kind}: {e.message}")
        served = None
    if served is False:
        report.add(
            "cluster",
            NAME,
            FAIL,
            f"{names} autoscale{'s' if len(scaled) == 1 else ''}, but the cluster does not serve "
            f"{kind}: install and upgrade would fail when helm creates them",
            "install KEDA (https://keda.sh/docs/latest/deploy/), or remove autoscaling from the models",
        )
        return
    _check_prometheus(report, kube, settings, names, kind if served else None)


def _check_prometheus(report: Report, kube: Any, settings: Any, names: str, kind: str | None) -> None:
    from vllmctl.setting_names import ENV_PROMETHEUS_URL

    source = "the default" if settings.source("prometheus_url") == "default" else ENV_PROMETHEUS_URL
    try:
        url = autoscaling.check_url(settings.prometheus_url)
    except VllmctlError as e:
        report.add("cluster", NAME, FAIL, e.message, f"set {ENV_PROMETHEUS_URL} to your Prometheus")
        return
    served = f"the cluster serves {kind}; " if kind else ""
    service = _service(url)
    if service is not None:
        namespace, name = service
        try:
            found = kube.get("v1", "services", namespace, name)
        except VllmctlError:
            found = True  # cannot tell: say nothing against it
        if found is None:
            report.add(
                "cluster",
                NAME,
                WARN,
                f"{served}KEDA queries Prometheus at {url} ({source}), but there is no Service {name} in "
                f"namespace {namespace}: {names} would not scale",
                f"set {ENV_PROMETHEUS_URL} to your Prometheus (docs/autoscaling.md)",
            )
            return
    report.add("cluster", NAME, OK, f"{served}KEDA queries Prometheus at {url} ({source}) for {names}")


def _service(url: str) -> tuple[str, str] | None:
    """(namespace, name) when the URL's host is an in-cluster Service name
    (`name.namespace.svc[.cluster.local]`), else None."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[1], parts[0]
    return None
