"""The chart's LoRA controller, simulated: what it does with a LoraAdapter object, and the
adapters the engines then serve.

Follows production-stack's operator (operator/internal/controller/loraadapter_controller.go):
- nothing happens unless the controller runs: a Deployment in the namespace labelled
  `app.kubernetes.io/component=lora-controller` with a ready replica (the chart's
  deployment-lora-controller.yaml);
- it loads the adapter on the Ready pods labelled `model=<spec.baseModel>` (all of them,
  or `loraAdapterDeploymentConfig.replicas` of them, by pod name), under the name
  `adapterSource.adapterName`; a `huggingface` source needs the engine pod's `sidecar`
  container (the chart adds it with enableLoRA and pvcStorage), through which the real
  controller downloads;
- status: `loadedAdapters` (name, path, podAssignments {podName, namespace}, status
  "Loaded") and `phase` ("Ready" when loaded somewhere, else "Pending" with a
  WaitingForPods condition).

Left out: the download itself, the unload on deletion and its finalizer, placement
algorithms other than "default", the API key check against the engine.

`served(store, namespace)` gives what the router stand-in lists: every adapter id an engine
in the namespace serves, with its parent (the engine's first served model name), from the
engine Deployments' `--lora-modules` and from the LoraAdapters' loaded pods.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from tests.sandbox.kube.resources import Resource, from_crd
from tests.sandbox.kube.store import Obj, Store

GROUP = "production-stack.vllm.ai"
KIND = "LoraAdapter"


def _resource(store: Store) -> Resource | None:
    for crd in store.iter_raw("apiextensions.k8s.io", "customresourcedefinitions"):
        if crd["spec"].get("group") == GROUP and crd["spec"]["names"].get("kind") == KIND:
            return next((r for r in from_crd(crd) if r.version == "v1alpha1"), None)
    return None


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _argv(container: Obj) -> list[str]:
    return [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]


def _after(argv: list[str], flag: str) -> list[str]:
    if flag not in argv:
        return []
    out = []
    for arg in argv[argv.index(flag) + 1 :]:
        if arg.startswith("--"):
            break
        out.append(arg)
    return out


def served_names(container: Obj) -> list[str]:
    """What `vllm serve` serves the base model as: --served-model-name, else the model."""
    argv = _argv(container)
    if "serve" not in argv or argv.index("serve") + 1 >= len(argv):
        return []
    return _after(argv, "--served-model-name") or [argv[argv.index("serve") + 1]]


class LoraController:
    def __init__(self, store: Store, event: Callable[..., None]) -> None:
        self.store = store
        self.event = event

    def __call__(self) -> None:
        res = _resource(self.store)
        if res is None:
            return  # the CRD is not installed: nothing reconciles
        for adapter in list(self.store.iter_raw(GROUP, res.plural)):
            self._reconcile(res, adapter)

    def _controller_runs(self, namespace: str) -> bool:
        for d in self.store.iter_raw("apps", "deployments", namespace):
            labels = d["metadata"].get("labels") or {}
            component = labels.get("app.kubernetes.io/component")
            if component == "lora-controller" and (d.get("status") or {}).get("readyReplicas"):
                return True
        return False

    def _reconcile(self, res: Resource, adapter: Obj) -> None:
        ns = adapter["metadata"]["namespace"]
        if not self._controller_runs(ns):
            return
        spec = adapter.get("spec") or {}
        source = spec.get("adapterSource") or {}
        name = str(source.get("adapterName") or adapter["metadata"]["name"])
        pods = sorted(
            (
                p
                for p in self.store.iter_raw("", "pods", ns)
                if (p["metadata"].get("labels") or {}).get("model") == spec.get("baseModel") and _ready(p)
            ),
            key=lambda p: str(p["metadata"]["name"]),
        )
        if source.get("type") == "huggingface":
            pods = [
                p for p in pods if any(c.get("name") == "sidecar" for c in p["spec"].get("containers") or [])
            ]
        replicas = (spec.get("loraAdapterDeploymentConfig") or {}).get("replicas")
        if isinstance(replicas, int) and replicas >= 0:
            pods = pods[:replicas]
        path = str(source.get("adapterPath") or f"/data/lora-adapters/{name.replace('/', '-')}")
        loaded = [
            {
                "name": name,
                "path": path,
                "podAssignments": {"podName": p["metadata"]["name"], "namespace": ns},
                "status": "Loaded",
            }
            for p in pods
        ]
        old = adapter.get("status") or {}
        status: Obj = {
            "observedGeneration": adapter["metadata"].get("generation", 1),
            "loadedAdapters": loaded,
        }
        if loaded:
            status["phase"] = "Ready"
        else:
            status["phase"] = "Pending"
            status["conditions"] = [
                {"type": "WaitingForPods", "status": "True", "message": "Waiting for pods to become ready"}
            ]
        if status == old:
            return
        new = {**copy.deepcopy(adapter), "status": status}
        self.store.update(res, ns, adapter["metadata"]["name"], new, subresource="status")


def served(store: Store, namespace: str) -> dict[str, str]:
    """Adapter id -> parent (the engine's first served name), for the Ready engines of the
    namespace: those started with --lora-modules, and those the controller loaded."""
    found: dict[str, str] = {}
    by_model: dict[str, str] = {}  # the engine pods' `model` label -> first served name
    for d in store.iter_raw("apps", "deployments", namespace):
        if not (d.get("status") or {}).get("readyReplicas"):
            continue
        template = d["spec"]["template"]
        for c in template["spec"].get("containers") or []:
            names = served_names(c)
            if not names:
                continue
            model = (template["metadata"].get("labels") or {}).get("model")
            if model:
                by_model[str(model)] = names[0]
            for module in _after(_argv(c), "--lora-modules"):
                found.setdefault(module.partition("=")[0], names[0])
    res = _resource(store)
    if res is not None:
        for adapter in store.iter_raw(GROUP, res.plural, namespace):
            parent = by_model.get(str((adapter.get("spec") or {}).get("baseModel")))
            for loaded in (adapter.get("status") or {}).get("loadedAdapters") or []:
                if parent is not None:
                    found.setdefault(str(loaded["name"]), parent)
    return found
