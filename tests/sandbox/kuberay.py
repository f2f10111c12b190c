"""The KubeRay operator, simulated: the head and worker pods of a RayCluster, and its status.

Follows KubeRay's operator (ray.io/v1) for what vllmctl reads:
- one head pod `<cluster>-head-<suffix>` from spec.headGroupSpec.template, and per worker
  group `replicas` pods `<cluster>-<group>-worker-<suffix>` from its template; each
  owned by the RayCluster (so they go with it), carrying the template's labels plus
  KubeRay's own: ray.io/cluster=<cluster>, ray.io/node-type=head|worker,
  ray.io/group=headgroup|<groupName>, ray.io/is-ray-node=yes and
  app.kubernetes.io/created-by=kuberay-operator;
- pods beyond a group's replicas are removed (unready first), missing ones made;
- status: readyWorkerReplicas, availableWorkerReplicas, desiredWorkerReplicas,
  state `ready` once the head and every worker are Ready, the head's podName and
  podIP, and the HeadPodReady and RayClusterProvisioned conditions.

The sandbox's scheduler and kubelets run the pods as any other. Left out: the head
Service (`<cluster>-head-svc`), autoscaling (min/maxReplicas, the autoscaler sidecar),
suspend, GCS fault tolerance, `ray start` and its parameters (nothing runs).
"""

from __future__ import annotations

import copy
import random
import re
import shlex
import string
from collections.abc import Callable

from tests.sandbox.kube.controllers import R
from tests.sandbox.kube.resources import Resource, from_crd
from tests.sandbox.kube.store import Obj, Store, kept_conditions

GROUP = "ray.io"
SAFE = string.ascii_lowercase + string.digits


class KubeRay:
    def __init__(self, store: Store, event: Callable[..., None]) -> None:
        self.store = store
        self.event = event

    def _resource(self) -> Resource | None:
        for crd in self.store.iter_raw("apiextensions.k8s.io", "customresourcedefinitions"):
            if crd["spec"].get("group") == GROUP and crd["spec"]["names"].get("kind") == "RayCluster":
                return next((r for r in from_crd(crd) if r.version == "v1"), None)
        return None

    def __call__(self) -> None:
        res = self._resource()
        if res is None:
            return  # KubeRay is not installed: nothing reconciles
        for rc in list(self.store.iter_raw(GROUP, res.plural)):
            if not rc["metadata"].get("deletionTimestamp"):
                self._reconcile(res, rc)

    def _reconcile(self, res: Resource, rc: Obj) -> None:
        meta, spec = rc["metadata"], rc.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        owned = [
            p
            for p in self.store.iter_raw("", "pods", ns)
            if any(r.get("uid") == meta["uid"] for r in p["metadata"].get("ownerReferences") or [])
            and not p["metadata"].get("deletionTimestamp")
        ]
        head_spec = spec.get("headGroupSpec") or {}
        heads = self._group(rc, owned, "head", "headgroup", 1, head_spec.get("template") or {})
        ready_workers = desired = 0
        for group in spec.get("workerGroupSpecs") or []:
            group_name = str(group.get("groupName") or "workergroup")
            replicas = int(group.get("replicas", 1) or 0)
            desired += replicas
            pods = self._group(rc, owned, "worker", group_name, replicas, group.get("template") or {})
            ready_workers += sum(1 for p in pods if _ready(p))
        head = heads[0] if heads else None
        head_ready = head is not None and _ready(head)
        status: Obj = {
            "desiredWorkerReplicas": desired,
            "readyWorkerReplicas": ready_workers,
            "availableWorkerReplicas": ready_workers,
            "observedGeneration": meta.get("generation", 1),
        }
        if head is not None:
            status["head"] = {"podName": head["metadata"]["name"]}
            if (head.get("status") or {}).get("podIP"):
                status["head"]["podIP"] = head["status"]["podIP"]
        provisioned = head_ready and ready_workers >= desired
        if provisioned:
            status["state"] = "ready"
        old = rc.get("status") or {}
        status["conditions"] = kept_conditions(
            old,
            {
                "HeadPodReady": ("True", "HeadPodRunningAndReady", "the head pod is ready")
                if head_ready
                else (
                    "False",
                    "HeadPodNotFound" if head is None else "HeadPodNotReady",
                    "the head pod is not ready",
                ),
                "RayClusterProvisioned": (
                    ("True", "AllPodRunningAndReadyFirstTime", "all Ray pods are ready")
                    if provisioned or _was(old, "RayClusterProvisioned")
                    else ("False", "RayClusterPodsProvisioning", "the Ray pods are being provisioned")
                ),
            },
        )
        if status != old:
            if provisioned and old.get("state") != "ready":
                self.event(rc, "Ready", f"RayCluster {name} is ready", "Normal", "raycluster-controller")
            new = {**copy.deepcopy(rc), "status": status}
            self.store.update(res, ns, name, new, subresource="status")

    def _group(
        self, rc: Obj, owned: list[Obj], kind: str, group: str, replicas: int, template: Obj
    ) -> list[Obj]:
        """The group's pods after making the missing and removing the extra ones."""
        ns, cluster = rc["metadata"]["namespace"], rc["metadata"]["name"]
        pods = [
            p
            for p in owned
            if p["metadata"]["labels"].get("ray.io/node-type") == kind
            and p["metadata"]["labels"].get("ray.io/group") == group
        ]
        for _ in range(replicas - len(pods)):
            labels = {
                **((template.get("metadata") or {}).get("labels") or {}),
                "ray.io/cluster": cluster,
                "ray.io/node-type": kind,
                "ray.io/group": group,
                "ray.io/is-ray-node": "yes",
                "app.kubernetes.io/created-by": "kuberay-operator",
                "app.kubernetes.io/name": "kuberay",
            }
            prefix = f"{cluster}-head" if kind == "head" else f"{cluster}-{group}-worker"
            body = {
                "metadata": {
                    "name": f"{prefix}-{''.join(random.choice(SAFE) for _ in range(5))}",
                    "labels": labels,
                    "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                    "ownerReferences": [
                        {
                            "apiVersion": rc["apiVersion"],
                            "kind": "RayCluster",
                            "name": cluster,
                            "uid": rc["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
                "status": {"phase": "Pending", "qosClass": "Burstable"},
            }
            pods.append(self.store.create(R["Pod"], ns, body))
        if len(pods) > replicas:
            victims = sorted(pods, key=lambda p: (_ready(p), bool(p["spec"].get("nodeName"))))
            for p in victims[: len(pods) - replicas]:
                self.store.delete(R["Pod"], ns, p["metadata"]["name"])
                pods.remove(p)
        return pods


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _was(status: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def served_models(store: Store, namespace: str) -> set[str]:
    """The ids the ready RayClusters' heads serve: the chart's start script (ConfigMap
    `<model>-vllm-start-script`, the model label of the RayCluster) runs `vllm serve` with
    those arguments, and vLLM lists every --served-model-name (or the model) in /v1/models."""
    served: set[str] = set()
    for rc in store.iter_raw(GROUP, "rayclusters", namespace):
        if (rc.get("status") or {}).get("state") != "ready":
            continue
        model = (rc["metadata"].get("labels") or {}).get("model")
        cm = store.objects.get(("", "configmaps", namespace, f"{model}-vllm-start-script"))
        words = exec_argv(next(iter(((cm or {}).get("data") or {}).values()), ""))
        if "serve" not in words or words.index("serve") + 1 >= len(words):
            continue
        names: list[str] = []
        if "--served-model-name" in words:  # vLLM's nargs="+": the words up to the next option
            for word in words[words.index("--served-model-name") + 1 :]:
                if word.startswith("-"):
                    break
                names.append(word)
        served.update(names or [words[words.index("serve") + 1]])
    return served


_ARRAY = re.compile(r"ARGS(\+?)=\((.*)")


def exec_argv(script: str) -> list[str]:
    """The argv a start script execs, as bash builds it: the real chart's array (`ARGS=(`
    with one word a line up to `)`, then `ARGS+=("--flag" "value")` lines, then
    `exec "${ARGS[@]}"`), or one `exec vllm serve ...` line. Other lines (the wait for Ray,
    echo) are skipped; no other bash is understood."""
    args: list[str] = []
    open_array = False
    for raw in script.splitlines():
        line = raw.strip()
        if open_array:
            if line.startswith(")"):
                open_array = False
            else:
                args += shlex.split(line, comments=True)
            continue
        found = _ARRAY.fullmatch(line)
        if found:
            if not found.group(1):  # ARGS=( starts the array afresh
                args = []
            body = found.group(2).rstrip()
            open_array = not body.endswith(")")
            args += shlex.split(body if open_array else body[:-1], comments=True)
        elif line.startswith("exec "):
            words = shlex.split(line, comments=True)[1:]
            return args if words == ["${ARGS[@]}"] else words
    return []
