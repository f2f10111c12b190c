"""The horizontal pod autoscaler controller, simulated for plain CPU-utilization HPAs, and
the resource metrics API's discovery (metrics-server) it depends on.

Follows kube-controller-manager's HPA controller (pkg/controller/podautoscaler) for an
autoscaling/v2 HPA whose target is a Deployment and whose metric is one `Resource` metric
`cpu` with a `Utilization` target (what the vllm-stack chart's hpa-router.yaml makes):

- a Deployment below minReplicas or above maxReplicas is moved to the bound before any
  metric is read (conditions ScalingLimited TooFewReplicas / TooManyReplicas);
- without the resource metrics API (`metrics.k8s.io`, served only when the sandbox runs
  with `metrics_server=True`), or with a container of the target's pods that has no CPU
  request, or before a test has given the pods a CPU use, nothing scales and ScalingActive
  is False with reason FailedGetResourceMetric, in the controller's words;
- otherwise desired = ceil(replicas * utilization / target), unchanged within the 10 %
  tolerance, kept within the bounds; the Deployment's replicas are set to it (as the
  controller does through the scale subresource), with a SuccessfulRescale event;
- status: currentReplicas (the Deployment's status.replicas), desiredReplicas,
  currentMetrics (the cpu utilization and the average value it means in millicores),
  lastScaleTime, and the AbleToScale, ScalingActive and ScalingLimited conditions.

No metrics-server runs, so the pods' average CPU use (percent of their request) is what a
test sets: `sandbox.hpa.utilization[(namespace, deployment)] = 160`. Left out: the 15 s
sync period (each tick is a sync), the scale-up and scale-down policies and the 5 minute
scale-down stabilization window (scaling is immediate), unready pods' special treatment,
other metric types, and scale targets other than Deployments. HPAs that KEDA made for a
ScaledObject are keda.py's, and left alone here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from decimal import Decimal

from tests.sandbox.kube.resources import BUILTINS, Resource
from tests.sandbox.kube.store import Obj, Store, kept_conditions, now

DEPLOYMENTS = next(r for r in BUILTINS if r.kind == "Deployment")
HPAS = next(r for r in BUILTINS if r.kind == "HorizontalPodAutoscaler")
KEDA_LABEL = "scaledobject.keda.sh/name"
TOLERANCE = 0.1  # the controller's --horizontal-pod-autoscaler-tolerance default
COMPONENT = "horizontal-pod-autoscaler"

# What metrics-server registers (its APIService v1beta1.metrics.k8s.io): served only, for
# discovery; no metric is stored or listed.
METRICS_RESOURCES = [
    Resource("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, verbs=("get", "list")),
    Resource("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", False, verbs=("get", "list")),
]


class HorizontalPodAutoscalers:
    def __init__(self, store: Store, event: Callable[..., None], metrics_served: Callable[[], bool]) -> None:
        self.store = store
        self.event = event
        self.metrics_served = metrics_served
        self.utilization: dict[tuple[str, str], int] = {}  # (namespace, Deployment) -> CPU % of request

    def __call__(self) -> None:
        for hpa in list(self.store.iter_raw("autoscaling", "horizontalpodautoscalers")):
            if KEDA_LABEL in (hpa["metadata"].get("labels") or {}):
                continue
            target = _cpu_target(hpa)
            if target is not None:
                self._reconcile(hpa, target)

    def _reconcile(self, hpa: Obj, target: int) -> None:
        meta, spec = hpa["metadata"], hpa.get("spec") or {}
        ns = meta["namespace"]
        ref = spec.get("scaleTargetRef") or {}
        low, high = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        deployment = self.store.objects.get(("apps", "deployments", ns, str(ref.get("name"))))
        if deployment is None or ref.get("kind") != "Deployment":
            message = f'deployments/scale.apps "{ref.get("name")}" not found'
            conditions = {
                "AbleToScale": (
                    "False",
                    "FailedGetScale",
                    f"the HPA controller was unable to get the target's current scale: {message}",
                )
            }
            self._status(hpa, 0, 0, None, conditions, scaled=False)
            return
        current = int(deployment["spec"].get("replicas", 1))
        utilization: int | None = None
        limited = _limited(current, low, high)
        if current < low or current > high:
            desired = min(max(current, low), high)
            active = (
                "True",
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count",
            )
        else:
            desired = current
            problem = self._metric_problem(deployment)
            if problem:
                active = ("False", "FailedGetResourceMetric", problem)
            else:
                utilization = self.utilization[(ns, deployment["metadata"]["name"])]
                ratio = utilization / target
                if abs(ratio - 1.0) > TOLERANCE:
                    desired = math.ceil(current * ratio)
                limited = _limited(desired, low, high)
                desired = min(max(desired, low), high)
                active = (
                    "True",
                    "ValidMetricFound",
                    "the HPA was able to successfully calculate a replica count from cpu resource "
                    "utilization (percentage of request)",
                )
        if desired != current:
            new = copy.deepcopy(deployment)
            new["spec"]["replicas"] = desired
            self.store.update(DEPLOYMENTS, ns, deployment["metadata"]["name"], new)
            direction = "above" if desired > current else "below"
            why = (
                f"cpu resource utilization (percentage of request) {direction} target"
                if utilization is not None
                else "Current number of replicas below Spec.MinReplicas"
                if current < low
                else "Current number of replicas above Spec.MaxReplicas"
            )
            self.event(hpa, "SuccessfulRescale", f"New size: {desired}; reason: {why}", "Normal", COMPONENT)
        conditions = {
            "AbleToScale": (
                "True",
                "SucceededRescale" if desired != current else "ReadyForNewScale",
                "recommended size matches current size"
                if desired == current
                else f"the HPA controller was able to update the target scale to {desired}",
            ),
            "ScalingActive": active,
            "ScalingLimited": limited,
        }
        running = int((deployment.get("status") or {}).get("replicas", 0) or 0)
        metric = None
        if utilization is not None:
            milli = _request_milli(deployment) * Decimal(utilization) / 100
            metric = {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "current": {"averageUtilization": utilization, "averageValue": f"{int(milli)}m"},
                },
            }
        self._status(hpa, running, desired, metric, conditions, scaled=desired != current)

    def _metric_problem(self, deployment: Obj) -> str | None:
        """Why the controller cannot get the pods' CPU utilization (None: it can)."""
        if not self.metrics_served():
            return (
                "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to "
                "get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server "
                "could not find the requested resource (get pods.metrics.k8s.io)"
            )
        for container in deployment["spec"]["template"]["spec"].get("containers") or []:
            if not ((container.get("resources") or {}).get("requests") or {}).get("cpu"):
                return (
                    "the HPA was unable to compute the replica count: failed to get cpu utilization: "
                    f"missing request for cpu in container {container.get('name')}"
                )
        if (deployment["metadata"]["namespace"], deployment["metadata"]["name"]) not in self.utilization:
            return (
                "the HPA was unable to compute the replica count: failed to get cpu utilization: "
                "did not receive metrics for targeted pods (pods might be unready)"
            )
        return None

    def _status(
        self,
        hpa: Obj,
        current: int,
        desired: int,
        metric: Obj | None,
        conditions: dict[str, tuple[str, str, str]],
        *,
        scaled: bool,
    ) -> None:
        old = hpa.get("status") or {}
        status: Obj = {"observedGeneration": hpa["metadata"].get("generation", 1)}
        last = now() if scaled else old.get("lastScaleTime")
        if last:
            status["lastScaleTime"] = last
        status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        if metric is not None:
            status["currentMetrics"] = [metric]
        status["conditions"] = kept_conditions(old, conditions)
        if status != old:
            self.store.update(
                HPAS,
                hpa["metadata"]["namespace"],
                hpa["metadata"]["name"],
                {**copy.deepcopy(hpa), "status": status},
                subresource="status",
            )


def _limited(wanted: int, low: int, high: int) -> tuple[str, str, str]:
    """The ScalingLimited condition for a wanted replica count."""
    if wanted < low:
        return ("True", "TooFewReplicas", "the desired replica count is less than the minimum replica count")
    if wanted > high:
        return ("True", "TooManyReplicas", "the desired replica count is more than the maximum replica count")
    return ("False", "DesiredWithinRange", "the desired count is within the acceptable range")


def _cpu_target(hpa: Obj) -> int | None:
    """The averageUtilization of the HPA's cpu Resource metric (None: not such an HPA)."""
    for metric in (hpa.get("spec") or {}).get("metrics") or []:
        resource = metric.get("resource") or {}
        target = resource.get("target") or {}
        if (
            metric.get("type") == "Resource"
            and resource.get("name") == "cpu"
            and target.get("type") == "Utilization"
        ):
            try:
                return int(target.get("averageUtilization"))
            except (TypeError, ValueError):
                return None
    return None


def _request_milli(deployment: Obj) -> Decimal:
    """The pod's CPU request in millicores (the sum of its containers')."""
    total = Decimal(0)
    for container in deployment["spec"]["template"]["spec"].get("containers") or []:
        text = str(((container.get("resources") or {}).get("requests") or {}).get("cpu") or "0")
        total += Decimal(text[:-1]) if text.endswith("m") else Decimal(text) * 1000
    return total
