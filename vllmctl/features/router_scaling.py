"""The router-scaling feature: the router's own HPA (the chart's hpa-router.yaml) and its
CPU limit, from VLLM_ROUTER_AUTOSCALING, VLLM_ROUTER_MIN_REPLICAS, VLLM_ROUTER_MAX_REPLICAS,
VLLM_ROUTER_TARGET_CPU_UTILIZATION and VLLM_ROUTER_LIMIT_CPU (docs/routing.md, "Router
scaling").

Its part, imported by the hooks that need it: `router_scaling_values` (the settings checked
into `routerSpec.autoscaling` and `routerSpec.resources.limits.cpu`, doctor's rows, the HPA
read back). This module is what the registry lists; it stays small because every command
that reads models.yaml imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vllmctl.core.setting_names import (
    ENV_ROUTER_AUTOSCALING,
    ENV_ROUTER_LIMIT_CPU,
    ENV_ROUTER_MAX_REPLICAS,
    ENV_ROUTER_MIN_REPLICAS,
    ENV_ROUTER_TARGET_CPU,
)
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features.contexts import Contribution, DoctorContext, FeatureReading, ReleaseValues

Obj = dict[str, Any]


class RouterScaling(Feature):
    name = "router_scaling"
    settings = (
        ENV_ROUTER_AUTOSCALING,
        ENV_ROUTER_MIN_REPLICAS,
        ENV_ROUTER_MAX_REPLICAS,
        ENV_ROUTER_TARGET_CPU,
        ENV_ROUTER_LIMIT_CPU,
    )

    def release_values(self, release: ReleaseValues) -> Contribution:
        from vllmctl.features.contexts import Contribution
        from vllmctl.features.router_scaling_values import router_scaling

        scaling = router_scaling(release.given, release.chart)
        router: Obj = {"autoscaling": scaling.autoscaling}
        placed: Obj = {}
        if scaling.autoscaling:
            placed.update({f"routerSpec.autoscaling.{k}": v for k, v in scaling.autoscaling.items()})
        if scaling.limit_cpu:
            router["resources"] = {"limits": {"cpu": scaling.limit_cpu}}
            placed["routerSpec.resources.limits.cpu"] = scaling.limit_cpu
        return Contribution(context={"router": router}, placed=placed, warnings=scaling.warnings)

    def doctor(self, report: Report, context: DoctorContext) -> None:
        from vllmctl.features.router_scaling_values import check_metrics_api, check_router_scaling

        if check_router_scaling(report, context.settings, context.chart_decided):
            check_metrics_api(report, context.kube)

    def read_status(self, kube: Any, namespace: str, release: str) -> FeatureReading:
        from vllmctl.chart.facts import ROUTER_HPA_API, router_hpa_name
        from vllmctl.core.errors import VllmctlError
        from vllmctl.features.contexts import FeatureReading

        name = router_hpa_name(release)
        try:
            hpa = kube.get(ROUTER_HPA_API, "horizontalpodautoscalers", namespace, name)
        except VllmctlError as e:
            return FeatureReading({}, [f"could not read the router's HPA {name}: {e.message}"])
        return FeatureReading({"hpa": hpa} if hpa else {})

    def router_reading(self, reading: FeatureReading, deployment: Obj) -> Mapping[str, Any] | None:
        from vllmctl.features.router_scaling_values import hpa_summary

        hpa = reading.objects.get("hpa")
        return {"autoscaling": hpa_summary(hpa)} if hpa else None


FEATURE = RouterScaling()
