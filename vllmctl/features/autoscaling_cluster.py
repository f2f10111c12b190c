"""Autoscaling in the cluster: doctor's check of what models.yaml's `autoscaling` needs (a
chart with KEDA support, KEDA's ScaledObject CRD, a Prometheus address KEDA can query), and
what `status` reads back (the release's ScaledObjects and the HPAs KEDA runs for them) and
says about each model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllmctl.chart.facts import MODEL_LABEL, release_selector, version_tuple
from vllmctl.core.errors import VllmctlError
from vllmctl.core.findings import FAIL, OK, WARN, Report
from vllmctl.core.quantity import as_int
from vllmctl.features import autoscaling_values as autoscaling
from vllmctl.features.contexts import FeatureReading

if TYPE_CHECKING:
    from vllmctl.features.base import Entry

Obj = dict[str, Any]

NAME = "autoscaling"


def check(report: Report, kube: Any, settings: Any, models: Sequence[Entry] | None) -> None:
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
    from vllmctl.core.setting_names import ENV_PROMETHEUS_URL

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


# --- status ---------------------------------------------------------------------------------


@dataclass
class AutoscalingStatus:
    """A model's KEDA ScaledObject and the HPA KEDA runs for it."""

    scaled_object: str
    min_replicas: int  # spec.minReplicaCount (KEDA's default 0)
    max_replicas: int  # spec.maxReplicaCount (KEDA's default 100)
    current: int | None  # the HPA's currentReplicas, else the Deployment's
    desired: int | None  # the HPA's desiredReplicas
    ready: bool | None  # the ScaledObject's Ready condition; None: not reported yet
    active: bool | None  # a trigger is active
    hpa: str | None = None
    query: str | None = None  # the first trigger's Prometheus query
    target: str | None = None  # its threshold, per replica
    value: str | None = None  # the metric's current value per replica (the HPA's view)
    problem: str | None = None  # why autoscaling does not work, in plain words


def read_autoscalers(kube: Any, namespace: str, release: str) -> FeatureReading:
    """The release's ScaledObjects by model (one list; none when KEDA's CRD is not served,
    a 404), and the namespace's HPAs (one more list, only when there are ScaledObjects)."""
    try:
        listed = kube.list(
            f"{autoscaling.GROUP}/{autoscaling.VERSION}",
            autoscaling.PLURAL,
            namespace,
            label_selector=release_selector(release),
        )
    except VllmctlError as e:
        if (getattr(e, "status", None) or {}).get("code") == 404:
            return FeatureReading()
        return FeatureReading(notes=[f"could not read the ScaledObjects: {e.message}"])
    found = {
        str((so["metadata"].get("labels") or {}).get(MODEL_LABEL)): so
        for so in listed
        if (so["metadata"].get("labels") or {}).get(MODEL_LABEL)
    }
    if not found:
        return FeatureReading()
    try:
        hpas = {
            h["metadata"]["name"]: h
            for h in kube.list("autoscaling/v2", "horizontalpodautoscalers", namespace)
        }
    except VllmctlError as e:
        return FeatureReading(
            {"scaled_objects": found, "hpas": {}},
            [f"could not read the HorizontalPodAutoscalers: {e.message}"],
        )
    return FeatureReading({"scaled_objects": found, "hpas": hpas})


def model_autoscaling(reading: FeatureReading, model: str, deployment: Obj) -> AutoscalingStatus | None:
    """What KEDA says about one model (None: no ScaledObject scales it)."""
    scaled_object = (reading.objects.get("scaled_objects") or {}).get(model)
    if scaled_object is None:
        return None
    return autoscaling_status(scaled_object, reading.objects.get("hpas") or {}, deployment)


def autoscaling_status(scaled_object: Obj, hpas: dict[str, Obj], deployment: Obj) -> AutoscalingStatus:
    """What KEDA says about one model: bounds, replicas now and wanted, the metric, and why
    it does not work when it does not (the ScaledObject not Ready, the HPA unable to scale)."""
    spec, st = scaled_object.get("spec") or {}, scaled_object.get("status") or {}
    name = scaled_object["metadata"]["name"]
    hpa_name = st.get("hpaName") or f"keda-hpa-{name}"
    hpa = hpas.get(hpa_name)
    hpa_status = (hpa or {}).get("status") or {}
    trigger = next(iter(spec.get("triggers") or []), None) or {}
    metadata = trigger.get("metadata") or {}
    conditions = {c.get("type"): c for c in st.get("conditions") or []}
    ready = _condition_bool(conditions.get("Ready"))
    result = AutoscalingStatus(
        scaled_object=name,
        min_replicas=as_int(spec.get("minReplicaCount"), 0) or 0,
        max_replicas=as_int(spec.get("maxReplicaCount"), 100) or 0,
        current=as_int(
            hpa_status.get("currentReplicas"), as_int((deployment.get("status") or {}).get("replicas"), 0)
        ),
        desired=as_int(hpa_status.get("desiredReplicas")),
        ready=ready,
        active=_condition_bool(conditions.get("Active")),
        hpa=hpa_name if hpa else None,
        query=str(metadata["query"]) if metadata.get("query") else None,
        target=str(metadata["threshold"]) if metadata.get("threshold") is not None else None,
        value=_metric_value(hpa_status),
    )
    said = conditions.get("Ready") or {}
    scaling = next((c for c in hpa_status.get("conditions") or [] if c.get("type") == "ScalingActive"), None)
    if ready is False:
        why = said.get("message") or said.get("reason") or "no reason given"
        result.problem = f"ScaledObject {name} is not Ready: {why}"
    elif _condition_bool(scaling) is False and scaling is not None:
        result.problem = (
            f"the HPA {hpa_name} cannot scale: {scaling.get('message') or scaling.get('reason')} "
            "(is Prometheus reachable at the trigger's serverAddress?)"
        )
    elif ready and hpa is None:
        result.problem = f"KEDA reports ScaledObject {name} Ready, but its HPA {hpa_name} does not exist"
    return result


def _condition_bool(condition: Obj | None) -> bool | None:
    status = (condition or {}).get("status")
    return True if status == "True" else False if status == "False" else None


def _metric_value(hpa_status: Obj) -> str | None:
    """The first metric's current value per replica, as a plain number ("2.4" from "2400m")."""
    from vllmctl.core.quantity import QuantityError, parse_quantity

    for metric in hpa_status.get("currentMetrics") or []:
        current = (metric.get("external") or metric.get("pods") or metric.get("object") or {}).get("current")
        raw = (current or {}).get("averageValue") or (current or {}).get("value")
        if raw is None:
            continue
        try:
            return f"{float(parse_quantity(str(raw))):g}"
        except QuantityError:
            return str(raw)
    return None


def autoscaling_table(parts: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The models KEDA scales: replicas now, the bounds, what the HPA wants, the metric."""
    rows = []
    for name, a in parts.items():
        keda = "Ready" if a.ready else "not Ready" if a.ready is False else "pending"
        if a.active:
            keda += ", active"
        rows.append(
            [name, "-" if a.current is None else a.current, a.min_replicas, a.max_replicas,
             "-" if a.desired is None else a.desired, a.value or "-", a.target or "-", keda]
        )  # fmt: skip
    headers = ["autoscaled", "current", "min", "max", "desired", "metric/replica", "target", "keda"]
    return headers, rows
