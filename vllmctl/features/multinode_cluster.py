"""Multi-node serving in the cluster: whether it serves KubeRay's RayCluster (install's
check before helm and doctor's row), and what `status` reads back: each RayCluster of the
release with its head and worker pods, as KubeRay labels them (ray.io/cluster,
ray.io/node-type) and reports them (status.state, readyWorkerReplicas)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vllmctl.chart.facts import (
    MODEL_LABEL,
    RAY_GROUP,
    RAY_PLURAL,
    RAY_VERSION,
    release_selector,
)
from vllmctl.core.errors import UsageError, VllmctlError
from vllmctl.core.findings import FAIL, OK, WARN
from vllmctl.features.contexts import FeatureReading
from vllmctl.features.multinode_values import runs_ray, stages, tensor_parallel

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features.base import Entry

Obj = dict[str, Any]
NAME = "multi-node"
KIND = f"RayClusters ({RAY_GROUP}/{RAY_VERSION})"
CLUSTER_LABEL = "ray.io/cluster"  # KubeRay's labels on the pods it makes
NODE_TYPE_LABEL = "ray.io/node-type"
KUBERAY = "install the KubeRay operator (https://docs.ray.io/en/latest/cluster/kubernetes/getting-started/kuberay-operator-installation.html)"


def ray_models(models: Sequence[Entry]) -> list[str]:
    return [m.name for m in models if runs_ray(m.data)]


def served(kube: Any) -> bool:
    """Whether the cluster serves RayCluster in the version the chart writes."""
    versions: list[str] = kube.served_versions(RAY_GROUP, RAY_PLURAL)
    return RAY_VERSION in versions


def require_served(models: Sequence[Entry], ask: Callable[[str, str, str], bool | None]) -> None:
    """Before install or upgrade: stop, with nothing changed, when a model runs as a
    RayCluster and the cluster does not serve the kind (helm would fail half-way). A
    cluster that cannot be asked is left to helm."""
    names = ray_models(models)
    if names and ask(RAY_GROUP, RAY_VERSION, RAY_PLURAL) is False:
        raise UsageError(
            f"{', '.join(names)} run{'s' * (len(names) == 1)} as a RayCluster, but the cluster does not "
            f"serve {KIND}, so helm could not create {'it' if len(names) == 1 else 'them'}; nothing was "
            f"changed. Install the KubeRay operator, or remove pipelineParallelSize (and raySpec)."
        )


def check(report: Report, kube: Any, models: Sequence[Entry] | None) -> None:
    """doctor's row, only when a model runs as a RayCluster: FAIL without KubeRay's CRD."""
    names = ray_models(models or [])
    if not names:
        return
    listed = ", ".join(names)
    try:
        found = served(kube)
    except VllmctlError as e:
        report.add("cluster", NAME, WARN, f"could not ask for {KIND}: {e.message}")
        return
    if not found:
        report.add(
            "cluster",
            NAME,
            FAIL,
            f"{listed} run{'s' * (len(names) == 1)} as a RayCluster, but the cluster does not serve {KIND}: "
            "install and upgrade would fail when helm creates it",
            KUBERAY,
        )
        return
    shapes = []
    for m in models or []:
        pp = stages(m.data)
        if pp is not None:
            tp = tensor_parallel(m.data)
            shapes.append(f"{m.name}: {pp} nodes x {tp} GPU{'s' * (tp != 1)}")
        elif m.name in names:
            shapes.append(f"{m.name}: raySpec as written")
    report.add("cluster", NAME, OK, f"the cluster serves {KIND} ({'; '.join(shapes)})")


# --- status ---------------------------------------------------------------------------------


@dataclass
class RayStatus:
    """A model's RayCluster as KubeRay reports it, and its pods."""

    raycluster: str
    state: str | None  # KubeRay's status.state (ready, suspended, ...); None: not reported yet
    head_ready: bool
    workers_desired: int  # the worker group's replicas
    workers_ready: int  # status.readyWorkerReplicas, else the Ready worker pods
    head_pod: str | None = None
    worker_pods: list[str] = field(default_factory=list)
    problem: str | None = None
    # What status's core reads: this feature runs the model in place of a Deployment.
    workload: str = ""
    ready: bool = False
    # ...and shows in the model's row: the GPUs of the whole RayCluster (head and workers:
    # one replica spans them), the head's image, and its pods' phases.
    gpus: int = 0
    gpu_resource: str | None = None
    image: str | None = None
    phases: dict[str, int] = field(default_factory=dict)


def release_rayclusters(kube: Any, namespace: str, release: str) -> list[Obj]:
    """The release's RayClusters, by name; none when the cluster does not serve the kind
    (a 404: KubeRay is not installed, so the release can have none)."""
    try:
        listed: list[Obj] = kube.list(
            f"{RAY_GROUP}/{RAY_VERSION}", RAY_PLURAL, namespace, label_selector=release_selector(release)
        )
    except VllmctlError as e:
        if (getattr(e, "status", None) or {}).get("code") == 404:
            return []
        raise
    return sorted(listed, key=lambda rc: str(rc["metadata"]["name"]))


def read_rayclusters(kube: Any, namespace: str, release: str) -> FeatureReading:
    """The release's RayClusters by model and their pods (two lists; none when the CRD is
    not served, a 404)."""
    try:
        listed = kube.list(
            f"{RAY_GROUP}/{RAY_VERSION}", RAY_PLURAL, namespace, label_selector=release_selector(release)
        )
    except VllmctlError as e:
        if (getattr(e, "status", None) or {}).get("code") == 404:
            return FeatureReading()
        return FeatureReading(notes=[f"could not read the RayClusters: {e.message}"])
    found = {
        str((rc["metadata"].get("labels") or {}).get(MODEL_LABEL)): rc
        for rc in listed
        if (rc["metadata"].get("labels") or {}).get(MODEL_LABEL)
    }
    if not found:
        return FeatureReading()
    try:
        pods = kube.list(
            "v1", "pods", namespace, label_selector=f"{release_selector(release)},{NODE_TYPE_LABEL}"
        )
    except VllmctlError as e:
        return FeatureReading(
            {"rayclusters": found, "pods": []}, [f"could not read the Ray pods: {e.message}"]
        )
    return FeatureReading({"rayclusters": found, "pods": pods})


def model_ray(reading: FeatureReading, model: str) -> RayStatus | None:
    """What KubeRay says about one model's RayCluster (None: the model has none)."""
    rc = (reading.objects.get("rayclusters") or {}).get(model)
    if rc is None:
        return None
    name = str(rc["metadata"]["name"])
    status = rc.get("status") or {}
    groups = (rc.get("spec") or {}).get("workerGroupSpecs") or []
    desired = sum(int(g.get("replicas", 0) or 0) for g in groups if isinstance(g, Mapping))
    pods = [
        p
        for p in reading.objects.get("pods") or []
        if (p["metadata"].get("labels") or {}).get(CLUSTER_LABEL) == name
        and not p["metadata"].get("deletionTimestamp")
    ]
    heads = [p for p in pods if p["metadata"]["labels"].get(NODE_TYPE_LABEL) == "head"]
    workers = [p for p in pods if p["metadata"]["labels"].get(NODE_TYPE_LABEL) == "worker"]
    head_ready = any(_pod_ready(p) for p in heads) or _condition(status, "HeadPodReady")
    ready_workers = status.get("readyWorkerReplicas")
    workers_ready = int(ready_workers) if ready_workers is not None else sum(map(_pod_ready, workers))
    state = status.get("state")
    part = RayStatus(
        raycluster=name,
        state=str(state) if state else None,
        head_ready=head_ready,
        workers_desired=desired,
        workers_ready=workers_ready,
        head_pod=heads[0]["metadata"]["name"] if heads else None,
        worker_pods=sorted(p["metadata"]["name"] for p in workers),
        workload=name,
    )
    part.problem = _problem(part, status)
    part.ready = part.problem is None
    _fill_row(part, rc, pods)
    return part


def _fill_row(part: RayStatus, rc: Obj, pods: list[Obj]) -> None:
    """What status's model row shows for a RayCluster: its GPUs (the head's and each worker
    group's replicas times its pod's, as the pods KubeRay makes from the templates ask),
    the head container's image, and the phases of its pods."""
    spec = rc.get("spec") or {}
    head = ((spec.get("headGroupSpec") or {}).get("template") or {}).get("spec") or {}
    gpus, part.gpu_resource = _pod_gpus(head)
    for group in spec.get("workerGroupSpecs") or []:
        if isinstance(group, Mapping):
            each, resource = _pod_gpus((group.get("template") or {}).get("spec") or {})
            gpus += each * int(group.get("replicas", 0) or 0)
            part.gpu_resource = part.gpu_resource or resource
    part.gpus = gpus
    containers = head.get("containers") or []
    part.image = str(containers[0].get("image")) if containers and containers[0].get("image") else None
    for pod in pods:
        phase = str((pod.get("status") or {}).get("phase") or "Pending")
        part.phases[phase] = part.phases.get(phase, 0) + 1


def _pod_gpus(pod_spec: Obj) -> tuple[int, str | None]:
    """A pod's GPUs: its containers' `<vendor>/gpu` limits, else requests."""
    total, resource = 0, None
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            found = {k: v for k, v in (resources.get(kind) or {}).items() if str(k).endswith("/gpu")}
            if found:
                for key, value in found.items():
                    total += int(str(value)) if str(value).isdigit() else 0
                    resource = resource or str(key)
                break
    return total, resource


def _problem(part: RayStatus, status: Obj) -> str | None:
    if part.state == "failed":
        reason = status.get("reason") or "KubeRay gives no reason"
        return f"RayCluster {part.raycluster} failed: {reason}"
    waiting = []
    if part.head_pod is None:
        waiting.append("no head pod yet (is the KubeRay operator running?)")
    elif not part.head_ready:
        waiting.append(f"head pod {part.head_pod} is not ready")
    if part.workers_ready < part.workers_desired:
        waiting.append(f"{part.workers_ready} of {part.workers_desired} workers ready")
    return "; ".join(waiting) or None


def _pod_ready(pod: Obj) -> bool:
    return _condition(pod.get("status") or {}, "Ready")


def _condition(status: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def ray_table(parts: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """status's table: one row per model that runs as a RayCluster."""
    rows = []
    for model, part in parts.items():
        if not isinstance(part, RayStatus):
            continue
        rows.append(
            [
                model,
                part.raycluster,
                part.state or "-",
                "ready" if part.head_ready else "not ready",
                f"{part.workers_ready}/{part.workers_desired}",
            ]
        )
    return ["RAY", "RAYCLUSTER", "STATE", "HEAD", "WORKERS"], rows
