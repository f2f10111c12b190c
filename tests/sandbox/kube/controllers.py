"""What the control plane and the kubelets would do, simulated just enough for helm
--wait, kubectl wait and vllmctl to see a real-looking cluster: Deployments get
ReplicaSets and Pods (rolling or recreate), a scheduler places Pods on GPU nodes (or
leaves them Pending with FailedScheduling events), kubelets move Pods through
ContainerCreating -> Running -> Ready and write vLLM-like logs, PVCs bind, Services get
Endpoints, terminating Namespaces are emptied, CRDs become Established.

The loop is level-triggered, like real controllers: every tick it compares desired and
observed state for every object and writes only what changed.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import random
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.sandbox.kube import selectors
from tests.sandbox.kube.logs import PodLogs
from tests.sandbox.kube.resources import BUILTINS, Resource
from tests.sandbox.kube.store import Obj, Store, now

R: dict[str, Resource] = {r.kind: r for r in BUILTINS}
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "habana.ai/gaudi")
# The characters Kubernetes uses for generated name suffixes and pod-template-hash.
SAFE = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class NodeSpec:
    name: str
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    gpu_product: str = "NVIDIA-A100-SXM4-80GB"
    cpu: str = "32"
    memory: str = "256Gi"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)


@dataclass
class PodFault:
    """A failure for pods matching a label selector (e.g. "model=llama3"):
    crashloop, imagepull, oomkilled, unready (Running, readiness probe failing), or slow
    (Ready only after `ready_seconds`)."""

    selector: str
    kind: str
    ready_seconds: float = 0.0
    exit_code: int = 1


@dataclass
class Timing:
    tick: float = 0.05
    start_seconds: float = 0.15  # scheduled -> containers running (image pull, start)
    ready_seconds: float = 0.25  # running -> Ready (the model "loads")
    crash_seconds: float = 0.3  # running -> crashed, for crashloop faults
    backoff_seconds: float = 1.0  # crashed -> started again (the kubelet's back-off, shortened)
    log_interval: float = 1.0  # engines' periodic throughput lines


def _hash(obj: Any) -> str:
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).digest()
    return "".join(SAFE[b % len(SAFE)] for b in digest[:10])


def _suffix(n: int = 5) -> str:
    return "".join(random.choice(SAFE) for _ in range(n))


def _owned_by(obj: Obj, owner: Obj) -> bool:
    return any(r.get("uid") == owner["metadata"]["uid"] for r in obj["metadata"].get("ownerReferences") or [])


def _owner_ref(owner: Obj) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return int(-(-exact // 1)) if round_up else int(exact)
    return int(value or 0)


def _pod_requests(pod: Obj) -> dict[str, int]:
    """Extended (GPU) resources a pod asks for: limits, or requests when no limit."""
    need: dict[str, int] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        amounts = {**(res.get("requests") or {}), **(res.get("limits") or {})}
        for name, value in amounts.items():
            if "/" in name:  # extended resources: nvidia.com/gpu, MIG profiles, amd.com/gpu...
                need[name] = need.get(name, 0) + int(str(value))
    return need


def _tolerates(pod: Obj, taints: list[dict[str, str]]) -> bool:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(
            (t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint["key"]))
            or (t.get("key") == taint["key"] and t.get("value") == taint.get("value"))
            for t in tolerations
        ):
            return False
    return True


class Cluster:
    def __init__(self, store: Store, nodes: list[NodeSpec], timing: Timing | None = None) -> None:
        self.store = store
        self.timing = timing or Timing()
        self.faults: list[PodFault] = []
        self.logs = PodLogs(self.timing.log_interval)
        self.errors: list[str] = []  # tracebacks of controller bugs (tests/sandbox/fixtures.py checks)
        self.reconcilers: list[Any] = []  # extra controllers (the ESO simulation) called each tick
        self._owned: dict[str, list[tuple[str, str]]] = {}  # owner uid -> its pods' (namespace, name)
        self._since: dict[str, float] = {}  # pod uid -> when it was bound to a node
        self._crash: dict[str, tuple[str, float]] = {}  # pod uid/container -> (phase, since)
        self._events: dict[tuple[str, str, str], str] = {}  # (uid, reason, message) -> event name
        self._next_ip = 10
        # pod uid -> container -> the environment its process started with: a kubelet
        # resolves `value` and `secretKeyRef` once, at container start (a later Secret
        # change reaches a container only when it starts again).
        self.started_env: dict[str, dict[str, dict[str, str]]] = {}
        for spec in nodes:
            self.add_node(spec)

    def add_node(self, spec: NodeSpec) -> None:
        capacity = {"cpu": spec.cpu, "memory": spec.memory, "pods": "110", "ephemeral-storage": "500Gi"}
        if spec.gpus:
            capacity[spec.gpu_resource] = str(spec.gpus)
        labels = {
            "kubernetes.io/hostname": spec.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **(
                {"nvidia.com/gpu.product": spec.gpu_product, "nvidia.com/gpu.count": str(spec.gpus)}
                if spec.gpus and spec.gpu_resource.startswith("nvidia.com/")
                else {}
            ),
            **spec.labels,
        }
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {"taints": spec.taints} if spec.taints else {},
            "status": {
                "capacity": capacity,
                "allocatable": dict(capacity),
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now(),
                        "lastTransitionTime": now(),
                    }
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.33.0-sandbox",
                    "containerRuntimeVersion": "sandbox://1",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
                "addresses": [{"type": "InternalIP", "address": f"192.168.0.{len(self._since) + 10}"}],
            },
        }
        self.store.create(R["Node"], None, node)

    async def run(self) -> None:
        while True:
            try:
                self.reconcile()
            except Exception:  # a bug in one pass must not stop the cluster; the session fails on it
                self.errors.append(traceback.format_exc())
            await asyncio.sleep(self.timing.tick)

    def reconcile(self) -> None:
        # Pods by owner uid, once per pass: ReplicaSets and Deployments look theirs up here.
        self._owned: dict[str, list[tuple[str, str]]] = {}
        for pod in self.store.iter_raw("", "pods"):
            for ref in pod["metadata"].get("ownerReferences") or []:
                self._owned.setdefault(ref.get("uid", ""), []).append(
                    (pod["metadata"]["namespace"], pod["metadata"]["name"])
                )
        self._crds()
        self._namespaces()
        self._deployments()
        self._replicasets()
        self._schedule()
        self._kubelet()
        self._pvcs()
        self._endpoints()
        for reconciler in self.reconcilers:
            reconciler()

    # --- helpers ---------------------------------------------------------------------

    def _write_status(self, res: Resource, obj: Obj, status: dict[str, Any]) -> None:
        if obj.get("status") == status:
            return
        new = copy.deepcopy(obj)
        new["status"] = status
        self.store.update(
            res,
            obj["metadata"].get("namespace"),
            obj["metadata"]["name"],
            new,
            subresource="status" if "status" in res.subresources else None,
        )

    def event(self, obj: Obj, reason: str, message: str, type_: str = "Normal", component: str = "") -> None:
        """Record an Event about obj (once per distinct reason and message, as the
        recorder's deduplication would show it)."""
        uid = obj["metadata"]["uid"]
        if (uid, reason, message) in self._events:
            return
        ns = obj["metadata"].get("namespace") or "default"
        name = f"{obj['metadata']['name']}.{uuid.uuid4().hex[:16]}"
        self._events[(uid, reason, message)] = name
        stamp = now()
        self.store.create(
            R["Event"],
            ns,
            {
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {
                    "kind": obj["kind"],
                    "namespace": ns,
                    "name": obj["metadata"]["name"],
                    "uid": uid,
                    "apiVersion": obj["apiVersion"],
                    "resourceVersion": obj["metadata"].get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": component or "sandbox"},
                "reportingComponent": component or "sandbox",
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "eventTime": None,
                "count": 1,
            },
        )

    # --- control plane ------------------------------------------------------------------

    def _crds(self) -> None:
        res = R["CustomResourceDefinition"]
        for crd in list(self.store.iter_raw(res.group, res.plural)):
            names = crd["spec"].get("names", {})
            status = {
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                        "lastTransitionTime": crd["metadata"]["creationTimestamp"],
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                        "lastTransitionTime": crd["metadata"]["creationTimestamp"],
                    },
                ],
                "acceptedNames": names,
                "storedVersions": [v["name"] for v in crd["spec"].get("versions", []) if v.get("storage")],
            }
            self._write_status(res, crd, status)

    def _namespaces(self) -> None:
        res = R["Namespace"]
        for ns in list(self.store.iter_raw(res.group, res.plural)):
            if not ns["metadata"].get("deletionTimestamp"):
                continue
            name = ns["metadata"]["name"]
            for key in [k for k in self.store.objects if k[2] == name]:
                obj = self.store.objects.get(key)
                if obj is not None:
                    r = next(r for r in self._all_resources() if (r.group, r.plural) == key[:2])
                    self.store.remove_now(r, name, key[3])
            self.store.remove_now(res, None, name)

    def _all_resources(self) -> list[Resource]:
        from tests.sandbox.kube.resources import from_crd

        crds = self.store.iter_raw("apiextensions.k8s.io", "customresourcedefinitions")
        return BUILTINS + [r for crd in crds for r in from_crd(crd)]

    def _deployments(self) -> None:
        dres, rsres = R["Deployment"], R["ReplicaSet"]
        for d in list(self.store.iter_raw(dres.group, dres.plural)):
            if d["metadata"].get("deletionTimestamp"):
                continue
            ns, spec = d["metadata"]["namespace"], d["spec"]
            desired = int(spec.get("replicas", 1))
            template = spec.get("template") or {}
            template_hash = _hash(template)
            owned = [rs for rs in self.store.iter_raw(rsres.group, rsres.plural, ns) if _owned_by(rs, d)]
            new_rs = next(
                (
                    rs
                    for rs in owned
                    if rs["metadata"].get("labels", {}).get("pod-template-hash") == template_hash
                ),
                None,
            )
            old = [rs for rs in owned if rs is not new_rs]
            if new_rs is None:
                revision = 1 + max(
                    [
                        int(
                            rs["metadata"]
                            .get("annotations", {})
                            .get("deployment.kubernetes.io/revision", "0")
                        )
                        for rs in owned
                    ]
                    or [0]
                )
                labels = {
                    **(template.get("metadata") or {}).get("labels", {}),
                    "pod-template-hash": template_hash,
                }
                tmpl = copy.deepcopy(template)
                tmpl.setdefault("metadata", {})["labels"] = labels
                selector = copy.deepcopy(spec.get("selector") or {})
                selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
                new_rs = self.store.create(
                    rsres,
                    ns,
                    {
                        "metadata": {
                            "name": f"{d['metadata']['name']}-{template_hash}",
                            "labels": labels,
                            "annotations": {
                                "deployment.kubernetes.io/revision": str(revision),
                                "deployment.kubernetes.io/desired-replicas": str(desired),
                            },
                            "ownerReferences": [_owner_ref(d)],
                        },
                        "spec": {"replicas": 0, "selector": selector, "template": tmpl},
                    },
                )
                new_rs = self.store.objects[(rsres.group, rsres.plural, ns, new_rs["metadata"]["name"])]
            self._roll(d, new_rs, old, desired)
            self._deployment_status(d, new_rs, old, desired)

    def _scale_rs(self, rs: Obj, replicas: int) -> None:
        if rs["spec"].get("replicas") != replicas:
            new = copy.deepcopy(rs)
            new["spec"]["replicas"] = replicas
            self.store.update(R["ReplicaSet"], rs["metadata"]["namespace"], rs["metadata"]["name"], new)

    def _roll(self, d: Obj, new_rs: Obj, old: list[Obj], desired: int) -> None:
        strategy = d["spec"].get("strategy") or {}
        old_pods = sum(int(rs["spec"].get("replicas", 0)) for rs in old)
        if strategy.get("type") == "Recreate":
            for rs in old:
                self._scale_rs(rs, 0)
            if not any(self._pods_of(rs) for rs in old):
                self._scale_rs(new_rs, desired)
            return
        ru = strategy.get("rollingUpdate") or {}
        surge = _scaled(ru.get("maxSurge", "25%"), desired, round_up=True)
        unavailable = _scaled(ru.get("maxUnavailable", "25%"), desired, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        new_target = min(desired, max(int(new_rs["spec"].get("replicas", 0)), desired + surge - old_pods))
        self._scale_rs(new_rs, max(new_target, 0))
        new_available = self._available(new_rs)
        old_available = sum(self._available(rs) for rs in old)
        removable = max(0, old_available + new_available - (desired - unavailable))
        for rs in old:
            current = int(rs["spec"].get("replicas", 0))
            not_ready = current - self._available(rs)
            cut = min(current, max(0, not_ready) + removable)
            removable -= max(0, cut - max(0, not_ready))
            self._scale_rs(rs, current - cut)

    def _pods_of(self, rs: Obj) -> list[Obj]:
        pods = []
        for ns, name in self._owned.get(rs["metadata"]["uid"], []):
            pod = self.store.objects.get(("", "pods", ns, name))
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                pods.append(pod)
        return pods

    def _available(self, rs: Obj) -> int:
        return sum(1 for p in self._pods_of(rs) if _is_ready(p))

    def _deployment_status(self, d: Obj, new_rs: Obj, old: list[Obj], desired: int) -> None:
        all_rs = [new_rs, *old]
        pods = [p for rs in all_rs for p in self._pods_of(rs)]
        ready = sum(1 for p in pods if _is_ready(p))
        updated = len(self._pods_of(new_rs))
        ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _scaled(ru.get("maxUnavailable", "25%"), desired, round_up=False)
        complete = updated == desired and len(pods) == desired and ready == desired
        old_status = d.get("status") or {}
        old_conditions = {c["type"]: c for c in old_status.get("conditions") or []}

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            before = old_conditions.get(kind)
            if before and before["status"] == status and before["reason"] == reason:
                return before
            stamp = now()
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            }

        name = new_rs["metadata"]["name"]
        available_ok = ready >= desired - max_unavailable
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"]["generation"],
            "replicas": len(pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                condition(
                    "Available",
                    "True" if available_ok else "False",
                    "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if available_ok
                    else "Deployment does not have minimum availability.",
                ),
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{name}" has successfully progressed.'
                    if complete
                    else f'ReplicaSet "{name}" is progressing.',
                ),
            ],
        }
        if desired - ready > 0:
            status["unavailableReplicas"] = desired - ready
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if not status[k]:
                del status[k]  # Go's omitempty: zero counts are absent, as clients expect
        self._write_status(R["Deployment"], d, status)

    def _replicasets(self) -> None:
        res = R["ReplicaSet"]
        for rs in list(self.store.iter_raw(res.group, res.plural)):
            ns = rs["metadata"]["namespace"]
            pods = self._pods_of(rs)
            want = int(rs["spec"].get("replicas", 1))
            for _ in range(want - len(pods)):
                tmpl = rs["spec"].get("template") or {}
                created = self.store.create(
                    R["Pod"],
                    ns,
                    {
                        "metadata": {
                            "name": f"{rs['metadata']['name']}-{_suffix()}",
                            "labels": dict((tmpl.get("metadata") or {}).get("labels") or {}),
                            "annotations": dict((tmpl.get("metadata") or {}).get("annotations") or {}),
                            "ownerReferences": [_owner_ref(rs)],
                        },
                        "spec": copy.deepcopy(tmpl.get("spec") or {}),
                        "status": {"phase": "Pending", "qosClass": "Burstable"},
                    },
                )
                self._owned.setdefault(rs["metadata"]["uid"], []).append((ns, created["metadata"]["name"]))
            if len(pods) > want:
                # Remove unready and unscheduled pods first, as the ReplicaSet controller does.
                victims = sorted(pods, key=lambda p: (_is_ready(p), bool(p["spec"].get("nodeName"))))
                for p in victims[: len(pods) - want]:
                    self.store.delete(R["Pod"], ns, p["metadata"]["name"])
                    self.logs.forget(p["metadata"]["uid"])
            pods = self._pods_of(rs)
            ready = sum(1 for p in pods if _is_ready(p))
            status = {
                "replicas": len(pods),
                "fullyLabeledReplicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": rs["metadata"]["generation"],
            }
            self._write_status(res, rs, {k: v for k, v in status.items() if v or k == "replicas"})

    # --- scheduler and kubelets ------------------------------------------------------------

    def _free(self) -> dict[str, dict[str, int]]:
        nodes = list(self.store.iter_raw("", "nodes"))
        free = {
            n["metadata"]["name"]: {k: int(v) for k, v in n["status"]["allocatable"].items() if "/" in k}
            for n in nodes
        }
        for p in self.store.iter_raw("", "pods"):
            node = p["spec"].get("nodeName")
            if node in free and p["status"].get("phase") not in ("Succeeded", "Failed"):
                for k, v in _pod_requests(p).items():
                    free[node][k] = free[node].get(k, 0) - v
        return free

    def _schedule(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.store.iter_raw("", "nodes")}
        for pod in list(self.store.iter_raw("", "pods")):
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            free = self._free()
            need = _pod_requests(pod)
            selector = pod["spec"].get("nodeSelector") or {}
            reasons: dict[str, int] = {}
            chosen = None
            for name, node in nodes.items():
                labels = node["metadata"].get("labels") or {}
                if any(labels.get(k) != v for k, v in selector.items()):
                    reasons["node(s) didn't match Pod's node affinity/selector"] = (
                        reasons.get("node(s) didn't match Pod's node affinity/selector", 0) + 1
                    )
                    continue
                if not _tolerates(pod, (node.get("spec") or {}).get("taints") or []):
                    key = "node(s) had untolerated taint(s)"
                    reasons[key] = reasons.get(key, 0) + 1
                    continue
                short = [k for k, v in need.items() if free[name].get(k, 0) < v]
                if short:
                    for k in short:
                        reasons[f"Insufficient {k}"] = reasons.get(f"Insufficient {k}", 0) + 1
                    continue
                chosen = name
                break
            ns, pname = pod["metadata"]["namespace"], pod["metadata"]["name"]
            if chosen is None:
                detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
                total = len(nodes)
                message = (
                    (
                        f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are "
                        f"available: {total} No preemption victims found for incoming pod."
                    )
                    if total
                    else ("no nodes available to schedule pods")
                )
                self._write_status(
                    R["Pod"],
                    pod,
                    {
                        **pod["status"],
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": message,
                                "lastTransitionTime": pod["metadata"]["creationTimestamp"],
                            }
                        ],
                    },
                )
                self.event(pod, "FailedScheduling", message, "Warning", "default-scheduler")
                continue
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = chosen
            self.store.update(R["Pod"], ns, pname, new)
            pod = self.store.objects[("", "pods", ns, pname)]
            self._write_status(
                R["Pod"],
                pod,
                {
                    **pod["status"],
                    "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}],
                },
            )
            self.event(
                pod,
                "Scheduled",
                f"Successfully assigned {ns}/{pname} to {chosen}",
                component="default-scheduler",
            )
            self._since[pod["metadata"]["uid"]] = time.monotonic()

    def _fault(self, pod: Obj) -> PodFault | None:
        labels = pod["metadata"].get("labels") or {}
        for fault in self.faults:
            if selectors.parse_labels(fault.selector)(labels):
                return fault
        return None

    def _kubelet(self) -> None:
        t = self.timing
        for pod in list(self.store.iter_raw("", "pods")):
            uid = pod["metadata"]["uid"]
            if uid not in self._since or pod["metadata"].get("deletionTimestamp"):
                continue
            elapsed = time.monotonic() - self._since[uid]
            fault = self._fault(pod)
            containers = pod["spec"].get("containers") or []
            status = copy.deepcopy(pod["status"])
            if "podIP" not in status:
                self._next_ip += 1
                status["podIP"] = f"10.244.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
                status["podIPs"] = [{"ip": status["podIP"]}]
                status["hostIP"] = "192.168.0.10"
                status["startTime"] = now()
            if elapsed < t.start_seconds:
                status["containerStatuses"] = [_waiting(c, "ContainerCreating", "") for c in containers]
                self._write_status(R["Pod"], pod, status)
                continue
            previous = {s["name"]: s for s in status.get("containerStatuses") or []}
            ready_after = t.start_seconds + (
                fault.ready_seconds if fault and fault.kind == "slow" else t.ready_seconds
            )
            statuses = []
            for c in containers:
                before = previous.get(c["name"], {})
                if fault and fault.kind == "imagepull":
                    message = f'Back-off pulling image "{c.get("image")}"'
                    statuses.append(_waiting(c, "ImagePullBackOff", message))
                    self.event(
                        pod,
                        "Failed",
                        f'Failed to pull image "{c.get("image")}": rpc error: code = NotFound '
                        f"desc = failed to pull and unpack image: not found",
                        "Warning",
                        "kubelet",
                    )
                    continue
                if fault and fault.kind in ("crashloop", "oomkilled"):
                    statuses.append(self._crashing(pod, c, before, fault))
                    continue
                if "running" not in (before.get("state") or {}):
                    self.logs.start(pod, c)
                    self.started_env.setdefault(uid, {})[c["name"]] = self._env(pod, c)
                    self.event(pod, "Started", f"Started container {c['name']}", component="kubelet")
                ready = elapsed >= ready_after and not (fault and fault.kind == "unready")
                if ready and not before.get("ready"):
                    self.logs.ready(pod, c)
                self.logs.tick(pod, c)
                if fault and fault.kind == "unready" and elapsed >= ready_after:
                    self.event(
                        pod,
                        "Unhealthy",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503",
                        "Warning",
                        "kubelet",
                    )
                statuses.append(
                    {
                        **_base(c),
                        "ready": ready,
                        "started": True,
                        "restartCount": before.get("restartCount", 0),
                        "state": {
                            "running": {
                                "startedAt": (before.get("state") or {})
                                .get("running", {})
                                .get("startedAt", now())
                            }
                        },
                        **({"lastState": before["lastState"]} if before.get("lastState") else {}),
                    }
                )
            all_ready = all(s.get("ready") for s in statuses)
            running = any("running" in s["state"] for s in statuses)
            status["containerStatuses"] = statuses
            status["phase"] = (
                "Running" if running or any(s.get("restartCount") for s in statuses) else "Pending"
            )
            stamp = now()
            conds = {c["type"]: c for c in status.get("conditions") or []}
            unready = [s["name"] for s in statuses if not s.get("ready")]
            wanted = [
                ("PodReadyToStartContainers", True),
                ("Initialized", True),
                ("Ready", all_ready),
                ("ContainersReady", all_ready),
                ("PodScheduled", True),
            ]
            status["conditions"] = [_condition(conds, k, v, stamp, unready) for k, v in wanted]
            self._write_status(R["Pod"], pod, status)
        alive = {p["metadata"]["uid"] for p in self.store.iter_raw("", "pods")}
        for uid in [u for u in self._since if u not in alive]:
            del self._since[uid]
            self.started_env.pop(uid, None)
            self.logs.forget(uid)

    def _env(self, pod: Obj, container: dict[str, Any]) -> dict[str, str]:
        """The container's `env` as the kubelet hands it to the process: plain values and
        Secret keys (a missing optional one left out), read now."""
        import base64

        env: dict[str, str] = {}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
                continue
            ref = (var.get("valueFrom") or {}).get("secretKeyRef") or {}
            secret = self.store.objects.get(("", "secrets", pod["metadata"]["namespace"], ref.get("name")))
            data = (secret or {}).get("data") or {}
            if ref and ref.get("key") in data:
                env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
        return env

    def _crashing(
        self, pod: Obj, c: dict[str, Any], before: dict[str, Any], fault: PodFault
    ) -> dict[str, Any]:
        """A container that runs for crash_seconds, exits, waits out a back-off
        (CrashLoopBackOff) and is started again, counting restarts, as the kubelet does."""
        uid = pod["metadata"]["uid"]
        key = f"{uid}/{c['name']}"
        clock = time.monotonic()
        restarts = before.get("restartCount", 0)
        last = {"lastState": before["lastState"]} if before.get("lastState") else {}
        phase, since = self._crash.get(key, ("new", clock))
        if phase == "new" or (phase == "backoff" and clock - since >= self.timing.backoff_seconds):
            self.logs.start(pod, c)
            self.started_env.setdefault(pod["metadata"]["uid"], {})[c["name"]] = self._env(pod, c)
            self._crash[key] = ("running", clock)
            return {
                **_base(c),
                "ready": False,
                "started": True,
                "restartCount": restarts + (phase == "backoff"),
                "state": {"running": {"startedAt": now()}},
                **last,
            }
        if phase == "running" and clock - since < self.timing.crash_seconds:
            return before
        if phase == "backoff":
            return before
        oom = fault.kind == "oomkilled"
        self.logs.crash(pod, c, oom)
        self._crash[key] = ("backoff", clock)
        self.event(
            pod,
            "BackOff",
            f"Back-off restarting failed container {c['name']} in pod "
            f"{pod['metadata']['name']}_{pod['metadata']['namespace']}({uid})",
            "Warning",
            "kubelet",
        )
        terminated = {
            "exitCode": 137 if oom else fault.exit_code,
            "reason": "OOMKilled" if oom else "Error",
            "startedAt": (before.get("state") or {}).get("running", {}).get("startedAt", now()),
            "finishedAt": now(),
        }
        return {
            **_base(c),
            "ready": False,
            "started": False,
            "restartCount": restarts,
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": (
                        f"back-off 10s restarting failed container={c['name']} pod={pod['metadata']['name']}_"
                        f"{pod['metadata']['namespace']}({uid})"
                    ),
                }
            },
            "lastState": {"terminated": terminated},
        }

    # --- storage and networking --------------------------------------------------------

    def _pvcs(self) -> None:
        res = R["PersistentVolumeClaim"]
        for pvc in list(self.store.iter_raw(res.group, res.plural)):
            if (pvc.get("status") or {}).get("phase") == "Bound":
                continue
            spec = pvc.get("spec") or {}
            if not spec.get("volumeName"):
                new = copy.deepcopy(pvc)
                new["spec"]["volumeName"] = f"pvc-{pvc['metadata']['uid']}"
                new["spec"].setdefault("storageClassName", "standard")
                self.store.update(res, pvc["metadata"]["namespace"], pvc["metadata"]["name"], new)
                pvc = self.store.objects[
                    (res.group, res.plural, pvc["metadata"]["namespace"], pvc["metadata"]["name"])
                ]
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            self._write_status(
                res,
                pvc,
                {
                    "phase": "Bound",
                    "accessModes": spec.get("accessModes") or [],
                    "capacity": {"storage": storage},
                },
            )

    def _endpoints(self) -> None:
        for svc in list(self.store.iter_raw("", "services")):
            selector = (svc.get("spec") or {}).get("selector")
            if not selector:
                continue
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            ready, not_ready = [], []
            for p in self.store.iter_raw("", "pods", ns):
                labels = p["metadata"].get("labels") or {}
                if any(labels.get(k) != v for k, v in selector.items()) or "podIP" not in p["status"]:
                    continue
                address = {
                    "ip": p["status"]["podIP"],
                    "nodeName": p["spec"].get("nodeName", ""),
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": ns,
                        "name": p["metadata"]["name"],
                        "uid": p["metadata"]["uid"],
                    },
                }
                (ready if _is_ready(p) else not_ready).append(address)
            ports = [
                {
                    "name": p.get("name", ""),
                    "port": p.get("targetPort", p.get("port")),
                    "protocol": p.get("protocol", "TCP"),
                }
                for p in svc["spec"].get("ports") or []
            ]
            subset: dict[str, Any] = {"ports": ports}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            body = {
                "metadata": {"name": name, "namespace": ns, "labels": svc["metadata"].get("labels") or {}},
                "subsets": [subset] if ready or not_ready else [],
            }
            current = self.store.objects.get(("", "endpoints", ns, name))
            if current is None:
                self.store.create(R["Endpoints"], ns, body)
            elif current.get("subsets") != body["subsets"]:
                self.store.update(R["Endpoints"], ns, name, {**current, "subsets": body["subsets"]})


def _condition(
    before: dict[str, Any], kind: str, value: bool, stamp: str, unready: list[str]
) -> dict[str, Any]:
    """A pod condition, keeping its transition time while its status stays the same."""
    text = "True" if value else "False"
    if kind in before and before[kind]["status"] == text:
        return dict(before[kind])
    out: dict[str, Any] = {"type": kind, "status": text, "lastTransitionTime": stamp}
    if not value and kind in ("Ready", "ContainersReady"):
        out["reason"] = "ContainersNotReady"
        out["message"] = f"containers with unready status: [{' '.join(unready)}]"
    return out


def _base(c: dict[str, Any]) -> dict[str, Any]:
    image = c.get("image", "")
    return {
        "name": c["name"],
        "image": image,
        "imageID": f"{image}@sha256:{_hash(image)}",
        "containerID": f"sandbox://{_hash(c['name'] + image)}",
    }


def _waiting(c: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    state = {"reason": reason, **({"message": message} if message else {})}
    return {**_base(c), "ready": False, "started": False, "restartCount": 0, "state": {"waiting": state}}


def _is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
