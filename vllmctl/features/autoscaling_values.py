"""Autoscaling's values: models.yaml's `autoscaling` checked, and as the chart's KEDA
ScaledObject (`modelSpec[].keda`).

The chart (0.1.9+) makes a ScaledObject `<release>-<model>-scaledobject` for a model whose
`keda.enabled` is true; KEDA then runs an HPA `keda-hpa-<that name>` on the engine
Deployment. vllmctl writes the bounds and one Prometheus trigger whose query reads one of
vLLM's own gauges for this model: `sum(...)` over the engines, so with KEDA's default
AverageValue target the HPA runs ceil(sum / target) replicas, i.e. `target` is per
replica. The series are selected by `model_name` (vLLM's label: the first served model
name) and `namespace` (added by Prometheus to every scraped target), not by the `model`
label the chart's default trigger filters on, which vLLM's metrics do not carry.
docs/autoscaling.md explains the choices.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from vllmctl.chart.facts import SINCE as _SINCE
from vllmctl.core.errors import CatalogError, UsageError

SINCE = _SINCE["modelSpec.keda"]  # the chart's first version with modelSpec[].keda
REPLICAS_LEFT_TO_KEDA = _SINCE["keda owns replicas"]  # the Deployment has no `replicas` with keda on
GROUP = "keda.sh"
VERSION = "v1alpha1"  # what the chart's ScaledObjects are written in
PLURAL = "scaledobjects"
HPA_PREFIX = "keda-hpa-"  # KEDA's name for the HPA of a ScaledObject
DEFAULT_MIN = 1
DEFAULT_METRIC = "waiting"
KEYS = ("minReplicas", "maxReplicas", "metric", "target")


class Metric(NamedTuple):
    """A named choice of `metric`: vLLM gauges (newest name first) and what a target means."""

    series: tuple[str, ...]
    default_target: float | None
    per_replica: str  # what `target` counts, for messages and docs
    fraction: bool = False  # a share from 0 to 1


METRICS: dict[str, Metric] = {
    # The chart's own default trigger reads the queue, with threshold 5.
    "waiting": Metric(("vllm:num_requests_waiting",), 5, "requests waiting in the queue"),
    "running": Metric(("vllm:num_requests_running",), None, "requests being processed"),
    # vLLM renamed the KV-cache gauge (PR #18354) and later removed the old name: the
    # query asks for both, so it works whatever the engine image.
    "kvCache": Metric(
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), 0.8, "KV cache in use", fraction=True
    ),
}
SCALE_TO_ZERO = (
    "minReplicas 0 (scale to zero) is not supported: the metrics come from the model's own "
    "engines, so with none running there is no signal that would start one again, and requests "
    "meanwhile fail at the router (the model is not served). Use 1 or more"
)


# --- models.yaml checks (catalog.schema builds its fields from these) ---------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "an empty value"
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)


def _count_problem(value: Any, least: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        digits = isinstance(value, str) and value.strip().isdigit()
        hint = f"; write {str(value).strip()} without quotes" if digits else ""
        return f"must be a whole number, not {_kind(value)}{hint}"
    if value < least:
        return f"must be {least} or more, not {value}"
    return None


def min_problem(value: Any) -> str | None:
    """minReplicas: a whole number, 1 or more (0 is explained)."""
    if value == 0 and not isinstance(value, bool):
        return SCALE_TO_ZERO
    return _count_problem(value, 1)


def max_problem(value: Any) -> str | None:
    """maxReplicas: a whole number, 1 or more."""
    return _count_problem(value, 1)


def metric_problem(value: Any) -> str | None:
    """metric: one of the named choices."""
    if isinstance(value, str) and value in METRICS:
        return None
    names = ", ".join(METRICS)
    close = next((m for m in METRICS if isinstance(value, str) and m.lower() == value.lower()), None)
    hint = f"; write {close!r}" if close else ""
    return f"must be one of {names}, not {_kind(value)}{hint} (docs/autoscaling.md lists the queries)"


def target_problem(value: Any) -> str | None:
    """target: a number above 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        number = isinstance(value, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", value)
        hint = f"; write {str(value).strip()} without quotes" if number else ""
        return f"must be a number above 0 (the metric's value per replica), not {_kind(value)}{hint}"
    if not value > 0:
        return f"must be above 0, not {value}"
    return None


CHILDREN: dict[str, tuple[Any, str]] = {
    "minReplicas": (min_problem, "fewest replicas (default 1)"),
    "maxReplicas": (max_problem, "most replicas the autoscaler may run (required)"),
    "metric": (metric_problem, f"what to scale on: {', '.join(METRICS)} (default {DEFAULT_METRIC})"),
    "target": (target_problem, "the metric's value per replica to aim for"),
}


def problem(value: Any) -> str | None:
    """What is wrong with an `autoscaling` mapping as a whole (its keys are checked one by
    one by CHILDREN, with their own positions); None when nothing is."""
    if not isinstance(value, dict):
        return (
            f"must be a mapping like {{minReplicas: 1, maxReplicas: 4, metric: {DEFAULT_METRIC}}}, "
            f"not {_kind(value)}"
        )
    if not all(isinstance(k, str) for k in value):
        return None  # the key checks name it
    if "maxReplicas" not in value:
        return "give maxReplicas, the most replicas the autoscaler may run (minReplicas defaults to 1)"
    low, high = value.get("minReplicas", DEFAULT_MIN), value["maxReplicas"]
    if min_problem(low) is None and max_problem(high) is None and low > high:
        return f"minReplicas {low} is more than maxReplicas {high}"
    name = value.get("metric", DEFAULT_METRIC)
    if metric_problem(name) is not None:
        return None
    metric = METRICS[name]
    target = value.get("target")
    if target is None and "target" not in value and metric.default_target is None:
        return (
            f"give a target for metric {name}: the {metric.per_replica} one replica should have "
            "(e.g. 0.8 x its maxNumSeqs)"
        )
    if target is not None and target_problem(target) is None and metric.fraction and target > 1:
        return f"target {target} is more than 1: {name} is a share from 0 to 1 (0.8 means 80%)"
    return None


def conflict(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(the key to point at, why) when an entry's other keys contradict its `autoscaling`."""
    if "autoscaling" not in data:
        return None
    if "keda" in data:
        return (
            "keda",
            "give autoscaling or keda, not both: autoscaling writes the chart's keda values itself "
            "(keep keda only for KEDA settings written by hand)",
        )
    if "raySpec" in data:
        return (
            "autoscaling",
            "the chart makes no ScaledObject for a model with raySpec; remove one of the two",
        )
    if data.get("enabled") is False:
        return (
            "autoscaling",
            "the model is disabled (enabled: false), but the chart would still make its ScaledObject, "
            "for a Deployment it does not create; remove autoscaling while it is disabled",
        )
    return None


# --- what the chart gets -------------------------------------------------------------------


def bounds(entry: Mapping[str, Any]) -> tuple[int, int] | None:
    """(minReplicas, maxReplicas) of a valid entry that autoscales, else None."""
    given = entry.get("autoscaling")
    if not isinstance(given, Mapping):
        return None
    return int(given.get("minReplicas", DEFAULT_MIN)), int(given["maxReplicas"])


def served_name(extra_args: Iterable[str], default: str) -> str:
    """The first `--served-model-name`: vLLM's `model_name` label on every metric."""
    args = [str(a) for a in extra_args]
    for i, arg in enumerate(args):
        if arg.startswith("--served-model-name="):
            names = arg.split("=", 1)[1].split()
            if names:
                return names[0]
        elif arg == "--served-model-name" and i + 1 < len(args) and not args[i + 1].startswith("-"):
            return args[i + 1].split()[0] if args[i + 1].split() else default
    return default


def query(metric: str, model_name: str, namespace: str) -> str:
    """The PromQL for one model's metric: one number (KEDA needs a single element)."""
    import json

    # JSON's string escapes are PromQL's (Go's), so any name stays inside its quotes.
    selector = f"{{model_name={json.dumps(model_name)},namespace={json.dumps(namespace)}}}"
    return " or ".join(f"sum({series}{selector})" for series in METRICS[metric].series)


def threshold(value: float) -> str:
    """KEDA reads trigger metadata as text: 5 -> "5", 0.8 -> "0.8"."""
    return str(value) if isinstance(value, int) else repr(float(value))


def require_chart(model: str, chart: tuple[int, ...] | None, chart_text: str) -> None:
    if chart is not None and chart < SINCE:
        raise UsageError(
            f"{model}: autoscaling needs chart 0.1.9 or newer, the first with KEDA support "
            f"(modelSpec[].keda); VLLM_CHART_VERSION is {chart_text}. Raise the chart version, or "
            f"remove autoscaling and set replicaCount."
        )


def check_url(raw: str | None) -> str:
    """VLLM_PROMETHEUS_URL as KEDA's serverAddress: an http(s) URL with a host."""
    from urllib.parse import urlsplit

    from vllmctl.core.setting_names import DEFAULT_PROMETHEUS_URL, ENV_PROMETHEUS_URL

    text = (raw or "").strip() or DEFAULT_PROMETHEUS_URL
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        raise UsageError(
            f"{ENV_PROMETHEUS_URL}={raw!r} is not the http(s) address of a Prometheus server; "
            f"for example {DEFAULT_PROMETHEUS_URL} (the chart's default)."
        )
    return text


def keda(
    entry: Mapping[str, Any], model_name: str, namespace: str, prometheus_url: str
) -> dict[str, Any] | None:
    """The entry's `keda` modelSpec value, or None when it does not autoscale."""
    given = entry.get("autoscaling")
    if not isinstance(given, Mapping):
        return None
    low, high = bounds(entry) or (DEFAULT_MIN, DEFAULT_MIN)
    metric = str(given.get("metric", DEFAULT_METRIC))
    target = given.get("target", METRICS[metric].default_target)
    return {
        "enabled": True,
        "minReplicaCount": low,
        "maxReplicaCount": high,
        "triggers": [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": prometheus_url,
                    "query": query(metric, model_name, namespace),
                    "threshold": threshold(target),
                },
            }
        ],
    }


def warnings(
    entries: Iterable[Mapping[str, Any]], chart: tuple[int, ...] | None, chart_text: str
) -> list[str]:
    """What render says about autoscaled entries (as written, before defaults)."""
    said: list[str] = []
    fighting: list[str] = []
    for entry in entries:
        limits = bounds(entry)
        if limits is None:
            continue
        name = str(entry.get("name"))
        fighting.append(name)
        count = entry.get("replicaCount")
        if count is not None and count != limits[0]:
            said.append(
                f"{name}: replicaCount {count} is not used: autoscaling runs {limits[0]} to {limits[1]} "
                "replicas (the chart gets minReplicas as replicaCount)."
            )
    if fighting and chart is not None and SINCE <= chart < REPLICAS_LEFT_TO_KEDA:
        said.append(
            f"{', '.join(fighting)}: chart {chart_text} keeps `replicas` on the engine Deployment beside "
            "KEDA, so every upgrade sets the replica count back to minReplicas until KEDA scales it "
            "again (charts 0.1.11+ leave the count to KEDA)."
        )
    return said


def check_placed(values: Mapping[str, Any], specs: Iterable[Mapping[str, Any]]) -> None:
    """Each autoscaled model's keda values must be in the rendered values as computed (a
    custom template could drop or change them)."""
    rendered = {
        str(m.get("name")): m
        for m in ((values.get("servingEngineSpec") or {}).get("modelSpec") or [])
        if isinstance(m, dict)
    }
    for spec in specs:
        if "keda" in spec and (rendered.get(str(spec["name"])) or {}).get("keda") != spec["keda"]:
            raise CatalogError(
                f"the rendered values do not hold {spec['name']}'s keda settings as computed from its "
                "autoscaling; check the templates (a copy in VLLM_TEMPLATES_DIR may drop them)."
            )


# --- the cluster ---------------------------------------------------------------------------


def served(kube: Any) -> bool:
    """Whether the cluster serves ScaledObject in the version the chart writes (KEDA's CRD)."""
    versions: list[str] = kube.served_versions(GROUP, PLURAL)
    return VERSION in versions


def require_served(served: Callable[[str, str, str], bool | None]) -> None:
    """Before install or upgrade with an autoscaled model: stop, with nothing changed, when
    the cluster does not serve ScaledObjects (helm would fail half-way through). A cluster
    that cannot be asked is left to helm."""
    if served(GROUP, VERSION, PLURAL) is False:
        raise UsageError(
            f"models.yaml asks for autoscaling, but the cluster does not serve ScaledObjects "
            f"({GROUP}/{VERSION}), so helm could not create them; nothing was changed. Install KEDA "
            "(https://keda.sh), or remove autoscaling from the models."
        )


def model_keys(
    entry: Mapping[str, Any],
    extra_args: Iterable[str],
    *,
    namespace: str,
    prometheus_url: str | None,
    chart: tuple[int, ...] | None,
    chart_text: str,
) -> dict[str, Any]:
    """The modelSpec keys an autoscaled entry gets: `keda`, and minReplicas as replicaCount
    (the Deployment's count before KEDA acts; charts before 0.1.11 write it at every
    upgrade). Nothing for an entry without autoscaling."""
    limits = bounds(entry)
    if limits is None:
        return {}
    name = str(entry.get("name"))
    require_chart(name, chart, chart_text)
    values = keda(entry, served_name(extra_args, name), namespace, check_url(prometheus_url))
    return {"replicaCount": limits[0], "keda": values}
