"""Reading the cluster for status, with one list per kind whatever the number of models:
the namespace's Deployments and Services, the release's engine pods (label
`helm-release-name`), the router's pods (its Deployment's selector), the namespace's Pod
events (one field selector), what each chart feature made (the release's KEDA
ScaledObjects, with the namespace's HPAs when there are any), and the last lines of at
most LOG_PODS crashing pods' logs. Also the release from `helm list` and the router's
`GET /v1/models`, which vllmctl.ops.status.reader runs in threads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vllmctl.chart.facts import (
    MODEL_LABEL,
    RELEASE_LABEL,
    engine_deployment_model,
    engine_service_model,
    release_selector,
    router_deployment_name,
    router_service_name,
)
from vllmctl.core.errors import VllmctlError
from vllmctl.core.quantity import as_int
from vllmctl.ops.status.diagnose import CRASHING, event_time
from vllmctl.ops.status.objects import parse_helm_time, short_age
from vllmctl.ops.status.report import Obj, ReleaseInfo

if TYPE_CHECKING:
    from vllmctl.cluster.helm import Helm
    from vllmctl.cluster.kube import Kube
    from vllmctl.features.contexts import FeatureReading

LOG_PODS = 3  # crashing pods whose log tails are read, at most
LOG_LINES = 5  # lines of each
RECONNECT_SECONDS = 5.0  # a router pod that goes away mid-check: how long to wait for another


@dataclass
class ClusterState:
    """The release's objects, each kind listed once."""

    release: str
    namespace: str
    engines: dict[str, Obj]  # model name -> engine Deployment
    router: Obj | None
    engine_pods: dict[str, list[Obj]]  # model name -> its pods
    router_pods: list[Obj]
    services: dict[str, Obj]  # name -> Service, this release's
    events: dict[str, list[Obj]]  # pod name -> its events, oldest first
    logs: dict[str, list[str]]  # pod name -> last log lines (crashing pods only)
    # each chart feature's objects (autoscalers...), by feature name: features/base.py
    features: dict[str, FeatureReading] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what could not be read


def read_cluster(kube: Kube, namespace: str, release: str) -> ClusterState:
    deployments = kube.list("apps/v1", "deployments", namespace)
    engines = engine_deployments(deployments, release)
    router = next((d for d in deployments if d["metadata"]["name"] == router_deployment_name(release)), None)
    engine_pods: dict[str, list[Obj]] = {}
    for pod in kube.list("v1", "pods", namespace, label_selector=release_selector(release)):
        model = (pod["metadata"].get("labels") or {}).get(MODEL_LABEL)
        if model:
            engine_pods.setdefault(model, []).append(pod)
    router_pods: list[Obj] = []
    selector = label_selector_text((router or {}).get("spec", {}).get("selector"))
    if router is not None and selector:
        # Chart 0.1.8/0.1.9 select router pods by routerSpec.labels alone, the same for
        # every release by default: keep those of our Deployment's ReplicaSets.
        ours = f"{router_deployment_name(release)}-"
        router_pods = [
            p
            for p in kube.list("v1", "pods", namespace, label_selector=selector)
            if all(
                str(o.get("name", "")).startswith(ours) for o in p["metadata"].get("ownerReferences") or []
            )
        ]
    services = {
        s["metadata"]["name"]: s
        for s in kube.list("v1", "services", namespace)
        if is_release_service(s, release)
    }
    names = {p["metadata"]["name"] for pods in engine_pods.values() for p in pods}
    names.update(p["metadata"]["name"] for p in router_pods)
    events: dict[str, list[Obj]] = {}
    for event in kube.list("v1", "events", namespace, field_selector="involvedObject.kind=Pod"):
        pod_name = str((event.get("involvedObject") or {}).get("name"))
        if pod_name in names:
            events.setdefault(pod_name, []).append(event)
    for listed in events.values():
        listed.sort(key=event_time)
    logs: dict[str, list[str]] = {}
    every_pod = [*[p for pods in engine_pods.values() for p in pods], *router_pods]
    for pod, container, previous in _crashing(every_pod)[:LOG_PODS]:
        logs[pod["metadata"]["name"]] = kube.pod_log_tail(
            namespace, pod["metadata"]["name"], container, lines=LOG_LINES, previous=previous
        )
    features, notes = read_features(kube, namespace, release)
    return ClusterState(
        release, namespace, engines, router, engine_pods, router_pods, services, events, logs,
        features, notes,
    )  # fmt: skip


def read_features(kube: Kube, namespace: str, release: str) -> tuple[dict[str, FeatureReading], list[str]]:
    """What each chart feature made in the release (its own reads, a fixed number each),
    and the notes on what could not be read."""
    from vllmctl.features import registry

    readings: dict[str, FeatureReading] = {}
    notes: list[str] = []
    for feature in registry.FEATURES:
        reading = feature.read_status(kube, namespace, release)
        if reading is not None:
            readings[feature.name] = reading
            notes += reading.notes
    return readings, notes


def engine_deployments(deployments: list[Obj], release: str) -> dict[str, Obj]:
    """Engine Deployments `<release>-<model>-deployment-vllm` of this release (a selector
    naming another release is another release's, whose name shares our prefix)."""
    found: dict[str, Obj] = {}
    for d in deployments:
        model = engine_deployment_model(release, d["metadata"]["name"])
        if model is None:
            continue
        labels = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if labels.get(RELEASE_LABEL, release) != release:
            continue
        found[str(labels.get(MODEL_LABEL) or model)] = d
    return found


def is_release_service(service: Obj, release: str) -> bool:
    name = service["metadata"]["name"]
    if name == router_service_name(release):
        return True
    selector = (service.get("spec") or {}).get("selector") or {}
    return (
        engine_service_model(release, name) is not None
        and str(selector.get(RELEASE_LABEL, release)) == release
    )


def label_selector_text(selector: Obj | None) -> str:
    """A Deployment's metav1.LabelSelector in the query syntax (`a=b,c in (d,e)`)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _crashing(pods: Iterable[Obj]) -> list[tuple[Obj, str, bool]]:
    """(pod, container, previous?) for the containers that crashed and are not Ready:
    whose log explains the crash. A waiting container's log is its last instance's; a
    restarted, running one has it as `previous`."""
    found = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("ready"):
                continue
            state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated")
            waiting = (state.get("waiting") or {}).get("reason")
            terminated = state.get("terminated")
            crashed = waiting == "CrashLoopBackOff" or (waiting in CRASHING and last)
            if crashed or (terminated and terminated.get("exitCode")):
                found.append((pod, cs["name"], False))
            elif "running" in state and last and last.get("exitCode"):
                found.append((pod, cs["name"], True))
            else:
                continue
            break
    return found


def release_info(helm: Helm) -> ReleaseInfo:
    """The release from `helm list` (every state); `installed=False` when there is none."""
    entry = helm.listed()
    if entry is None:
        return ReleaseInfo(helm.release, helm.namespace, installed=False)
    chart = str(entry.get("chart") or "")
    version = chart.rsplit("-", 1)[-1] if "-" in chart else None
    updated = str(entry.get("updated") or "") or None
    when = parse_helm_time(updated) if updated else None
    return ReleaseInfo(
        helm.release,
        helm.namespace,
        installed=True,
        revision=as_int(entry.get("revision")),
        chart=chart or None,
        chart_version=version,
        app_version=str(entry.get("app_version") or "") or None,
        status=str(entry.get("status") or "") or None,
        updated=updated,
        updated_age=short_age(when) if when else None,
    )


@dataclass
class RouterCheck:
    served: list[str] | None  # None: not reachable
    error: str | None


def ask_router(
    kube: Kube, namespace: str, release: str, api_key: str | None, *, secrets: list[str]
) -> RouterCheck:
    """GET /v1/models through a port-forward to the router, with the API key given or the
    namespace's (added to `secrets`, to be kept out of the report). A failure is an answer
    here (the rest of the report stands), so every one becomes its reason."""
    try:
        from vllmctl.apis.openai_api import list_models
        from vllmctl.cluster.tunnel import open_router_tunnel, router_api_key
    except ImportError as e:  # a partial installation
        return RouterCheck(None, f"vllmctl cannot ask it: {e}")
    if not api_key:
        try:
            api_key = router_api_key(kube, namespace)
        except (VllmctlError, ValueError):  # unreadable (RBAC): the router lists models without one
            api_key = None
    if api_key:
        secrets.append(api_key)
    try:
        with open_router_tunnel(kube, namespace, release, reconnect_timeout=RECONNECT_SECONDS) as tunnel:
            cards = list_models(tunnel.base_url, api_key)
    except VllmctlError as e:
        return RouterCheck(None, e.message)
    except Exception as e:  # the report must survive whatever the check runs into
        return RouterCheck(None, f"{type(e).__name__}: {e}")
    served = sorted({str(card.get("id")) for card in cards if isinstance(card, dict) and card.get("id")})
    return RouterCheck(served, None)
