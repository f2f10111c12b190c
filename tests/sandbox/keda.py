"""KEDA, simulated: a ScaledObject's status and the HPA KEDA makes for it.

Follows KEDA's operator for ScaledObjects that scale a Deployment (keda.sh/v1alpha1):
- it makes an HPA (autoscaling/v2) named `keda-hpa-<ScaledObject>` (or
  `advanced.horizontalPodAutoscalerConfig.name`), owned by the ScaledObject, with
  minReplicas = max(minReplicaCount (default 0), 1), maxReplicas = maxReplicaCount
  (default 100) and one External metric per trigger, `s<i>-<type>`, with an AverageValue
  target of the trigger's `threshold`;
- the HPA's work is done here too: the Deployment's replicas become
  ceil(metric / threshold), kept within the bounds (a Deployment below minReplicas or
  above maxReplicas is moved to the bound, as the HPA controller does before it reads any
  metric); its status has currentReplicas, desiredReplicas, currentMetrics and the
  AbleToScale / ScalingActive conditions;
- the ScaledObject's status has scaleTargetKind, originalReplicaCount, hpaName and the
  Ready (ScaledObjectReady, or False when its Deployment does not exist), Active and
  Fallback conditions.

No Prometheus runs, so a trigger's metric is 0 unless a test sets it:
`sandbox.keda.metrics[(namespace, scaled_object)] = 12.0`. Left out: scaling to zero
and idleReplicaCount, fallback, pausing, cooldown and stabilization windows (scaling is
immediate), ScaledJobs, TriggerAuthentications.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

from tests.sandbox.kube.resources import BUILTINS, Resource, from_crd
from tests.sandbox.kube.store import Obj, Store, kept_conditions, now

GROUP = "keda.sh"
DEPLOYMENTS = next(r for r in BUILTINS if r.kind == "Deployment")
HPAS = next(r for r in BUILTINS if r.kind == "HorizontalPodAutoscaler")


class Keda:
    def __init__(self, store: Store, event: Callable[..., None]) -> None:
        self.store = store
        self.event = event
        self.metrics: dict[tuple[str, str], float] = {}  # (namespace, ScaledObject) -> value

    def _resource(self) -> Resource | None:
        for crd in self.store.iter_raw("apiextensions.k8s.io", "customresourcedefinitions"):
            if crd["spec"].get("group") == GROUP and crd["spec"]["names"].get("kind") == "ScaledObject":
                return next((r for r in from_crd(crd) if r.version == "v1alpha1"), None)
        return None

    def __call__(self) -> None:
        res = self._resource()
        if res is None:
            return  # KEDA is not installed: nothing reconciles
        for so in list(self.store.iter_raw(GROUP, res.plural)):
            self._reconcile(res, so)

    def _reconcile(self, res: Resource, so: Obj) -> None:
        meta, spec = so["metadata"], so.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        target = spec.get("scaleTargetRef") or {}
        deployment = self.store.objects.get(("apps", "deployments", ns, str(target.get("name"))))
        if deployment is None or target.get("kind", "Deployment") != "Deployment":
            self._status(
                res, so, None, {"Ready": ("False", "ScaledObjectCheckFailed", _missing(target))}, None
            )
            return
        low = max(int(spec.get("minReplicaCount", 0) or 0), 1)
        high = int(spec.get("maxReplicaCount", 100) or 100)
        triggers = [t for t in spec.get("triggers") or [] if isinstance(t, dict)]
        hpa_name = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get(
            "name"
        ) or f"keda-hpa-{name}"
        value = self.metrics.get((ns, name), 0.0)
        current = int(deployment["spec"].get("replicas", 1))
        wanted = [math.ceil(value / _threshold(t)) for t in triggers if _threshold(t) > 0] or [current]
        desired = min(max(max(wanted), low), high)
        if desired != current:
            new = copy.deepcopy(deployment)
            new["spec"]["replicas"] = desired
            self.store.update(DEPLOYMENTS, ns, deployment["metadata"]["name"], new)
        self._hpa(so, hpa_name, deployment, low, high, triggers, value, desired)
        conditions = {
            "Ready": ("True", "ScaledObjectReady", "the scale target and triggers are valid"),
            "Active": ("True", "ScalerActive", "a trigger is active")
            if value > 0
            else ("False", "ScalerNotActive", "no trigger is active"),
            "Fallback": ("False", "NoFallbackFound", "no fallback is in use"),
        }
        original = (so.get("status") or {}).get("originalReplicaCount", current)
        self._status(res, so, hpa_name, conditions, original)

    def _hpa(
        self,
        so: Obj,
        name: str,
        deployment: Obj,
        low: int,
        high: int,
        triggers: list[Obj],
        value: float,
        desired: int,
    ) -> None:
        ns = so["metadata"]["namespace"]
        metrics = [
            {
                "type": "External",
                "external": {
                    "metric": {
                        "name": f"s{i}-{t.get('type')}",
                        "selector": {"matchLabels": {"scaledobject.keda.sh/name": so["metadata"]["name"]}},
                    },
                    "target": {"type": "AverageValue", "averageValue": str(_threshold(t))},
                },
            }
            for i, t in enumerate(triggers)
        ]
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
        spec = {"scaleTargetRef": target, "minReplicas": low, "maxReplicas": high, "metrics": metrics}
        hpa = self.store.objects.get(("autoscaling", "horizontalpodautoscalers", ns, name))
        if hpa is None:
            body = {
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"scaledobject.keda.sh/name": so["metadata"]["name"]},
                    "ownerReferences": [
                        {
                            "apiVersion": so["apiVersion"],
                            "kind": "ScaledObject",
                            "name": so["metadata"]["name"],
                            "uid": so["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": spec,
            }
            hpa = self.store.create(HPAS, ns, body)
        elif hpa.get("spec") != spec:
            hpa = self.store.update(HPAS, ns, name, {**copy.deepcopy(hpa), "spec": spec})
        running = int((deployment.get("status") or {}).get("replicas", 0) or 0)
        per_pod = value / running if running else value
        status: Obj = {
            "currentReplicas": running,
            "desiredReplicas": desired,
            "currentMetrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": m["external"]["metric"],
                        "current": {"averageValue": f"{round(per_pod * 1000)}m"},
                    },
                }
                for m in metrics
            ],
        }
        old = hpa.get("status") or {}
        status["conditions"] = kept_conditions(
            old,
            {
                "AbleToScale": ("True", "ReadyForNewScale", "the HPA may scale its target"),
                "ScalingActive": ("True", "ValidMetricFound", "the HPA computed the replica count"),
            },
        )
        if old != status:
            self.store.update(HPAS, ns, name, {**copy.deepcopy(hpa), "status": status}, subresource="status")

    def _status(
        self,
        res: Resource,
        so: Obj,
        hpa_name: str | None,
        conditions: dict[str, tuple[str, str, str]],
        original: int | None,
    ) -> None:
        old = so.get("status") or {}
        status: Obj = {"scaleTargetKind": "apps/v1.Deployment"}
        if original is not None:
            status["originalReplicaCount"] = original
        if hpa_name:
            status["hpaName"] = hpa_name
        if conditions.get("Active", ("",))[0] == "True":
            status["lastActiveTime"] = old.get("lastActiveTime") if old.get("lastActiveTime") else now()
        elif old.get("lastActiveTime"):
            status["lastActiveTime"] = old["lastActiveTime"]
        status["conditions"] = kept_conditions(old, conditions)
        if status == old:
            return
        if _ready(status) and not _ready(old):
            self.event(
                so, "ScaledObjectReady", "ScaledObject is ready for scaling", "Normal", "keda-operator"
            )
        new = {**copy.deepcopy(so), "status": status}
        self.store.update(res, so["metadata"]["namespace"], so["metadata"]["name"], new, subresource="status")


def _threshold(trigger: Obj) -> float:
    try:
        return float((trigger.get("metadata") or {}).get("threshold", 0))
    except (TypeError, ValueError):
        return 0.0


def _missing(target: Obj) -> str:
    return f"the scale target {target.get('kind', 'Deployment')} {target.get('name')} does not exist"


def _ready(status: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
