"""The exposure feature: how clients outside the cluster reach the router, from the
VLLM_ROUTER_SERVICE_TYPE, VLLM_ROUTER_NODE_PORT and VLLM_INGRESS_* settings (docs/exposure.md).

Its parts, imported by the hooks that need them: `exposure_values` (the settings checked
into `routerSpec` values, and doctor's check of the Ingress's class and certificate) and
`exposure_access` (the ways in, read back for `endpoints`). This module is what the
registry lists; it stays small because every command that reads models.yaml imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllmctl.core.setting_names import (
    ENV_INGRESS_CLASS,
    ENV_INGRESS_HOST,
    ENV_INGRESS_TLS_SECRET,
    ENV_ROUTER_NODE_PORT,
    ENV_ROUTER_SERVICE_TYPE,
)
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features.contexts import Contribution, DoctorContext, ReleaseValues

Obj = dict[str, Any]


class RouterExposure(Feature):
    name = "exposure"
    settings = (
        ENV_ROUTER_SERVICE_TYPE,
        ENV_ROUTER_NODE_PORT,
        ENV_INGRESS_HOST,
        ENV_INGRESS_CLASS,
        ENV_INGRESS_TLS_SECRET,
    )

    def release_values(self, release: ReleaseValues) -> Contribution:
        from vllmctl.features.contexts import Contribution
        from vllmctl.features.exposure_values import router_values

        exposure = router_values(release.given, release.chart.version)
        service_type = exposure.service_type
        return Contribution(
            context={
                "router": {
                    "service_type": service_type,
                    "node_port": exposure.node_port,
                    "ingress": exposure.ingress,
                }
            },
            placed={
                "routerSpec.serviceType": service_type if service_type != "ClusterIP" else None,
                "routerSpec.nodePort": exposure.node_port,
                "routerSpec.ingress": exposure.ingress,
            },
            warnings=exposure.warnings,
        )

    def doctor(self, report: Report, context: DoctorContext) -> None:
        from vllmctl.features.exposure_values import check_exposure

        if context.kube is not None and context.chart_decided:
            check_exposure(report, context.kube, context.settings)

    def ways_in(
        self, kube: Any, namespace: str, release: str, router_service: Obj, notes: list[str]
    ) -> list[Any]:
        """The router Service's type, and the chart's Ingress (one GET; the chart makes it only
        with a router)."""
        from vllmctl.chart.facts import INGRESS_API, ingress_name
        from vllmctl.core.errors import VllmctlError
        from vllmctl.features.exposure_access import external_access

        ingress = None
        try:
            ingress = kube.get(INGRESS_API, "ingresses", namespace, ingress_name(release))
        except VllmctlError as e:
            notes.append(f"could not read the Ingress {ingress_name(release)}: {e.message}")
        return list(external_access(router_service, ingress))


FEATURE = RouterExposure()
