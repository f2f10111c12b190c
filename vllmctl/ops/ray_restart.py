"""Restarting a multi-node model: its RayCluster's pods, head and workers together.

A RayCluster has no rollout: KubeRay does not replace running pods when their template
or a Secret they read changes. What it does is make the pods a RayCluster lacks (its
reconcile creates a missing head, and workers up to each group's replicas), so a
restart deletes every pod of the RayCluster at once and waits for KubeRay's new ones to
be Ready. All of them, never one: a pipeline stage cannot rejoin a running vLLM, and
the head without its workers serves nothing. The old pods go before the new ones come,
so the restart needs no GPU beyond those the model already holds (no surge)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vllmctl.features.multinode_cluster import CLUSTER_LABEL, NODE_TYPE_LABEL, release_rayclusters
from vllmctl.ops.restart import RolloutTimeout

Obj = dict[str, Any]
POLL = 1.0  # seconds between looks at the new pods


@dataclass
class RayRestart:
    """One RayCluster being restarted: the pods it had (their uids), and its shape."""

    name: str
    model: str
    workers: int  # the worker groups' replicas
    old: set[str] = field(default_factory=set)

    def describe(self) -> str:
        return f"RayCluster {self.name} (head and {self.workers} worker{'s' * (self.workers != 1)})"


def plan_ray_restarts(
    kube: Any, namespace: str, release: str, models: Sequence[str] | None = None
) -> list[RayRestart]:
    """The release's RayClusters to restart (only those of `models` when given)."""
    plans = []
    for rc in release_rayclusters(kube, namespace, release):
        model = str((rc["metadata"].get("labels") or {}).get("model") or "")
        if models is not None and model not in models:
            continue
        groups = (rc.get("spec") or {}).get("workerGroupSpecs") or []
        workers = sum(int(g.get("replicas", 0) or 0) for g in groups if isinstance(g, dict))
        plans.append(RayRestart(str(rc["metadata"]["name"]), model, workers))
    return plans


def _pods(kube: Any, namespace: str, name: str) -> list[Obj]:
    pods: list[Obj] = kube.list("v1", "pods", namespace, label_selector=f"{CLUSTER_LABEL}={name}")
    return pods


def restart_rayclusters(kube: Any, namespace: str, plans: Sequence[RayRestart]) -> None:
    """Delete every pod of each RayCluster (KubeRay makes new ones); record the old uids."""
    for plan in plans:
        pods = _pods(kube, namespace, plan.name)
        plan.old = {str(p["metadata"]["uid"]) for p in pods}
        for pod in pods:
            kube.delete("v1", "pods", namespace, str(pod["metadata"]["name"]))


def behind(kube: Any, namespace: str, plan: RayRestart) -> str | None:
    """What the RayCluster still lacks after its restart (None: new head and workers Ready)."""
    pods = [p for p in _pods(kube, namespace, plan.name) if not p["metadata"].get("deletionTimestamp")]
    old = [p for p in pods if str(p["metadata"]["uid"]) in plan.old]
    new = [p for p in pods if str(p["metadata"]["uid"]) not in plan.old]
    heads = [p for p in new if _ready(p) and p["metadata"]["labels"].get(NODE_TYPE_LABEL) == "head"]
    workers = [p for p in new if _ready(p) and p["metadata"]["labels"].get(NODE_TYPE_LABEL) == "worker"]
    if not old and heads and len(workers) >= plan.workers:
        return None
    parts = [f"head {'ready' if heads else 'not ready'}", f"{len(workers)}/{plan.workers} new workers ready"]
    if old:
        parts.append(f"{len(old)} old pod{'s' * (len(old) != 1)} still there")
    return f"{plan.name} ({', '.join(parts)})"


def follow_ray_restarts(
    kube: Any,
    namespace: str,
    plans: Sequence[RayRestart],
    timeout: float,
    notify: Callable[[str], None],
    *,
    told: float | None = None,
) -> None:
    """Wait until each RayCluster runs a new Ready head and all its workers, none of the
    old pods; say (once per pod and reason) why a new pod is not Ready. `told`: the
    timeout the user gave, when part of it went on other restarts first."""
    from vllmctl.ops.status.diagnose import pod_reason

    deadline = time.monotonic() + timeout
    said: set[str] = set()
    while True:
        lacking = [b for b in (behind(kube, namespace, p) for p in plans) if b]
        if not lacking:
            return
        events: dict[str, list[Obj]] = {}
        for event in kube.list("v1", "events", namespace, field_selector="involvedObject.kind=Pod"):
            events.setdefault(str((event.get("involvedObject") or {}).get("name")), []).append(event)
        waiting = []
        for plan in plans:
            for pod in sorted(_pods(kube, namespace, plan.name), key=lambda p: str(p["metadata"]["name"])):
                reason = (
                    None
                    if str(pod["metadata"]["uid"]) in plan.old
                    else pod_reason(pod, events.get(pod["metadata"]["name"], []))
                )
                if reason:
                    waiting.append(f"{pod['metadata']['name']}: {reason}")
        for line in waiting:
            if line not in said:
                said.add(line)
                notify(f"waiting: {line}")
        if time.monotonic() >= deadline:
            within = told or timeout
            raise RolloutTimeout(
                f"the restart of RayClusters {', '.join(lacking)} did not finish within {within:g} s", waiting
            )
        time.sleep(max(0.05, min(POLL, deadline - time.monotonic())))


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
