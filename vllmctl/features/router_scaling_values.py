"""The router's own scaling, from VLLM_ROUTER_AUTOSCALING, VLLM_ROUTER_MIN_REPLICAS,
VLLM_ROUTER_MAX_REPLICAS, VLLM_ROUTER_TARGET_CPU_UTILIZATION and VLLM_ROUTER_LIMIT_CPU (or an
environment's routerAutoscaling mapping in vllmctl.yaml).

`router_scaling` checks them against each other, the router's other settings and the chart
version, and gives what `templates/values.yaml.j2` places under `routerSpec.autoscaling`
(the chart's HPA, hpa-router.yaml) and `routerSpec.resources.limits.cpu`; `hpa_summary`
reads the deployed HPA back for status; `check_router_scaling` and `check_metrics_api` are
doctor's rows. docs/routing.md ("Router scaling") tells the story.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import ROUTER_HPA_OWNS_REPLICAS_SINCE, ChartAt
from vllmctl.core.errors import refuse_problems
from vllmctl.core.quantity import QuantityError, parse_quantity
from vllmctl.core.setting_names import (
    ENV_ROUTER_AUTOSCALING,
    ENV_ROUTER_ENABLED,
    ENV_ROUTER_LIMIT_CPU,
    ENV_ROUTER_MAX_REPLICAS,
    ENV_ROUTER_MIN_REPLICAS,
    ENV_ROUTER_REPLICAS,
    ENV_ROUTER_REQUEST_CPU,
    ENV_ROUTER_TARGET_CPU,
    as_given,
    given_as,
)

if TYPE_CHECKING:
    from vllmctl.chart.inputs import RenderInput
    from vllmctl.core.findings import Report

Obj = dict[str, Any]

# The chart's defaults (values.yaml, routerSpec.autoscaling, the same in 0.1.8 to 0.1.12).
DEFAULT_MIN, DEFAULT_MAX, DEFAULT_TARGET = 1, 3, 80
METRICS_GROUP, METRICS_PLURAL = "metrics.k8s.io", "pods"
MIN, MAX, TARGET = "router_min_replicas", "router_max_replicas", "router_target_cpu"
# Each setting's variable and its key in an environment of vllmctl.yaml (None: not there).
_NAMES: dict[str, tuple[str, str | None]] = {
    "router_autoscaling": (ENV_ROUTER_AUTOSCALING, "routerAutoscaling"),
    MIN: (ENV_ROUTER_MIN_REPLICAS, "routerAutoscaling.minReplicas"),
    MAX: (ENV_ROUTER_MAX_REPLICAS, "routerAutoscaling.maxReplicas"),
    TARGET: (ENV_ROUTER_TARGET_CPU, "routerAutoscaling.targetCPUUtilizationPercentage"),
    "router_limit_cpu": (ENV_ROUTER_LIMIT_CPU, None),
    "router_replicas": (ENV_ROUTER_REPLICAS, None),
    "router_request_cpu": (ENV_ROUTER_REQUEST_CPU, None),
}
_WHAT = {MIN: "minReplicas", MAX: "maxReplicas", TARGET: "targetCPUUtilizationPercentage"}


class Scaling(NamedTuple):
    """What the values get: routerSpec.autoscaling (None: left to the chart's default, off)
    and routerSpec.resources.limits.cpu (None: no CPU limit), and what render says."""

    autoscaling: Obj | None
    limit_cpu: str | None
    warnings: list[str]


def _text(raw: Any) -> str:
    return str(raw).strip() if raw is not None else ""


def _named(setting: str, sources: Mapping[str, str]) -> str:
    """The setting as the operator gave it: its variable, or its key in vllmctl.yaml."""
    return as_given(*_NAMES[setting], sources.get(setting, "env"))


def _is(setting: str, value: object, sources: Mapping[str, str]) -> str:
    """`VLLM_X=value`, or `key: value (where)` for a value from vllmctl.yaml."""
    return given_as(*_NAMES[setting], sources.get(setting, "env"), value)


def _cpu(text: str) -> Decimal | None:
    try:
        amount = parse_quantity(text)
    except QuantityError:
        return None
    return amount if amount > 0 else None


def router_scaling(given: RenderInput, chart: ChartAt) -> Scaling:
    """Check the router scaling settings of `given` for `chart`; every problem at once."""
    sources = given.router_scaling_sources
    problems: list[str] = []
    on = bool(given.router_autoscaling)
    numbers: dict[str, int] = {}
    for setting in (MIN, MAX, TARGET):
        text = _text(getattr(given, setting))
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            why = (
                "a share of the router's CPU request in percent, 1 or more; write e.g. 80"
                if setting == TARGET
                else "a whole number of router replicas, 1 or more (Kubernetes refuses an HPA with 0)"
            )
            problems.append(f"{_is(setting, repr(text), sources)} is not {why}.")
            continue
        numbers[setting] = int(text)
        if not on:
            problems.append(
                f"{_named(setting, sources)} is set but {ENV_ROUTER_AUTOSCALING} is off: only the router's "
                f"HPA reads it. Set {ENV_ROUTER_AUTOSCALING}=true, or unset {_named(setting, sources)}."
            )
    low = numbers.get(MIN, DEFAULT_MIN)
    high = numbers.get(MAX, DEFAULT_MAX)
    target = numbers.get(TARGET, DEFAULT_TARGET)
    request_text = _text(given.router_request_cpu)
    request = _cpu(request_text) if request_text else None
    limit_text = _text(given.router_limit_cpu)
    limit = _cpu(limit_text) if limit_text else None
    if limit_text and limit is None:
        problems.append(
            f"{ENV_ROUTER_LIMIT_CPU}={limit_text!r} is not a CPU quantity above 0; write e.g. 2 or 1500m."
        )
    if (on or limit_text) and request_text and request is None:
        problems.append(
            f"{ENV_ROUTER_REQUEST_CPU}={request_text!r} is not a CPU quantity above 0; write e.g. 500m."
        )
    if limit is not None and request is not None and limit < request:
        problems.append(
            f"{ENV_ROUTER_LIMIT_CPU}={limit_text} is below {ENV_ROUTER_REQUEST_CPU}={request_text}: "
            "Kubernetes refuses a limit below the request. Raise the limit or lower the request."
        )
    if on:
        problems += _autoscaling_problems(given, sources, low, high, request_text)
        if limit is not None and request is not None and limit >= request:
            ceiling = int(limit * 100 / request)
            if target > ceiling:
                problems.append(
                    f"{_is(TARGET, target, sources)} can never be reached: the CPU limit "
                    f"({ENV_ROUTER_LIMIT_CPU}={limit_text}) caps the router at {ceiling}% of its request "
                    f"({request_text}), so the HPA would never scale up. Lower the target to {ceiling} "
                    "or less, or raise the limit."
                )
    refuse_problems(problems, "the router's scaling settings")
    warnings = []
    if on and chart.before(ROUTER_HPA_OWNS_REPLICAS_SINCE):
        warnings.append(
            f"chart {chart.text} writes the router HPA's minReplicas ({low}) as the router Deployment's "
            "replicas (deployment-router.yaml), so every upgrade scales the router back to "
            f"{low} until the HPA scales it up again; chart 0.1.11 and newer leave the count to the HPA."
        )
    autoscaling = (
        {"enabled": True, "minReplicas": low, "maxReplicas": high, "targetCPUUtilizationPercentage": target}
        if on
        else None
    )
    return Scaling(autoscaling, limit_text or None, warnings)


def _autoscaling_problems(
    given: RenderInput, sources: Mapping[str, str], low: int, high: int, request_text: str
) -> list[str]:
    problems = []
    # VLLM_ROUTER_AUTOSCALING=true, or "routerAutoscaling of environment prod in vllmctl.yaml"
    # (a mapping there, so no value to quote)
    on_is = _is("router_autoscaling", "true", sources)
    if not on_is.startswith("VLLM_"):
        on_is = _named("router_autoscaling", sources)
    if low > high:
        low_is = (
            _is(MIN, low, sources) if _text(given.router_min_replicas) else f"minReplicas {low} (default)"
        )
        high_is = (
            _is(MAX, high, sources) if _text(given.router_max_replicas) else f"maxReplicas {high} (default)"
        )
        problems.append(
            f"the router's HPA would have minReplicas above maxReplicas ({low_is}, {high_is}); raise "
            f"{_named(MAX, sources)} or lower {_named(MIN, sources)}."
        )
    if not given.router_enabled:
        problems.append(
            f"{on_is} scales the router, but {ENV_ROUTER_ENABLED} is false: the chart would still make "
            "the HPA (hpa-router.yaml checks only autoscaling.enabled), aimed at a router Deployment "
            f"that does not exist. Enable the router, or unset {_named('router_autoscaling', sources)}."
        )
    if sources.get("router_replicas", "default") != "default":
        problems.append(
            f"{ENV_ROUTER_REPLICAS}={given.router_replicas} has no effect while the router autoscales: "
            "its HPA owns the replica count (the chart ignores routerSpec.replicaCount then). Unset "
            f"{ENV_ROUTER_REPLICAS}, and set {_named(MIN, sources)} for the least number of routers."
        )
    if not request_text:
        problems.append(
            f"{on_is} targets CPU utilization, a share of the router's CPU request, and "
            f"{ENV_ROUTER_REQUEST_CPU} is empty: without a request the HPA cannot compute it and "
            f"never scales. Set {ENV_ROUTER_REQUEST_CPU} (e.g. 500m), or unset {ENV_ROUTER_AUTOSCALING}."
        )
    return problems


# --- read back -----------------------------------------------------------------------------


def hpa_summary(hpa: Obj) -> str:
    """The router HPA's state in one line: replicas now and wanted, bounds, CPU against target."""
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    target = current = None
    for metric in spec.get("metrics") or []:
        resource = metric.get("resource") or {}
        if metric.get("type") == "Resource" and resource.get("name") == "cpu":
            target = (resource.get("target") or {}).get("averageUtilization")
    for metric in status.get("currentMetrics") or []:
        resource = metric.get("resource") or {}
        if metric.get("type") == "Resource" and resource.get("name") == "cpu":
            current = (resource.get("current") or {}).get("averageUtilization")
    text = (
        f"{status.get('currentReplicas', 0)} replicas (desired {status.get('desiredReplicas', '?')}, "
        f"{spec.get('minReplicas', 1)}-{spec.get('maxReplicas', '?')}), CPU "
        f"{'unknown' if current is None else f'{current}%'} of {target}% target"
    )
    failing = [
        c
        for c in status.get("conditions") or []
        if c.get("type") in ("AbleToScale", "ScalingActive") and c.get("status") == "False"
    ]
    if failing:
        first = failing[0]
        text += f"; {first.get('type')} False: {first.get('reason')} ({first.get('message', '')})"
    return text


# --- doctor --------------------------------------------------------------------------------


def check_router_scaling(report: Report, settings: Any, chart_decided: bool) -> bool:
    """The settings' row (only when the router autoscales or has a CPU limit); True when the
    router autoscales with settings that pass."""
    from vllmctl.chart.inputs import default_render_input
    from vllmctl.core.errors import UsageError, VllmctlError

    try:
        given = default_render_input(settings)
    except VllmctlError:
        return False  # the chart version's (or a setting's) own row says why
    if (
        not given.router_autoscaling
        and not _text(given.router_limit_cpu)
        and not any(_text(getattr(given, s)) for s in (MIN, MAX, TARGET))
    ):
        return False
    chart = ChartAt.of(given.chart_version) if chart_decided else ChartAt("unknown", None)
    try:
        scaling = router_scaling(given, chart)
    except UsageError as e:
        report.add("release", "router scaling", "fail", e.message, "; ".join(e.details or []))
        return False
    auto = scaling.autoscaling
    if auto is None:
        report.add("release", "router scaling", "ok", f"no HPA; CPU limit {scaling.limit_cpu}")
        return False
    detail = (
        f"the router's HPA keeps {auto['minReplicas']}-{auto['maxReplicas']} replicas at "
        f"{auto['targetCPUUtilizationPercentage']}% of its {given.router_request_cpu} CPU request"
    )
    report.add(
        "release", "router scaling", "warn" if scaling.warnings else "ok", detail, " ".join(scaling.warnings)
    )
    return True


def check_metrics_api(report: Report, kube: Any) -> None:
    """The HPA reads CPU use from the resource metrics API (metrics.k8s.io, which
    metrics-server serves): warn when the cluster does not serve it."""
    from vllmctl.core.errors import VllmctlError

    if kube is None:
        return
    try:
        versions = kube.served_versions(METRICS_GROUP, METRICS_PLURAL)
    except VllmctlError as e:
        report.add("cluster", "metrics API", "warn", f"could not ask for {METRICS_GROUP}: {e.message}")
        return
    if not versions:
        report.add(
            "cluster",
            "metrics API",
            "warn",
            f"the cluster does not serve the resource metrics API ({METRICS_GROUP}): the router's HPA "
            "cannot read its CPU use and will not scale it",
            "install metrics-server (https://github.com/kubernetes-sigs/metrics-server), or unset "
            f"{ENV_ROUTER_AUTOSCALING}",
        )
        return
    report.add(
        "cluster",
        "metrics API",
        "ok",
        f"{METRICS_GROUP}/{versions[0]} is served: the router's HPA can read CPU",
    )
