"""The monitoring feature: VLLM_MONITORING and VLLM_GRAFANA_DASHBOARDS as the chart's
ServiceMonitors and Grafana dashboards, chart 0.1.11+ (docs/monitoring.md).

`monitoring_values` holds the values, the check that the cluster serves ServiceMonitor,
and doctor's; this module is what the registry lists, kept small because every command
that reads models.yaml imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vllmctl.core.setting_names import ENV_GRAFANA_DASHBOARDS, ENV_MONITORING
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features.contexts import BeforeChange, Contribution, DoctorContext, ReleaseValues


class Monitoring(Feature):
    name = "monitoring"
    settings = (ENV_MONITORING, ENV_GRAFANA_DASHBOARDS)

    def release_values(self, release: ReleaseValues) -> Contribution:
        from vllmctl.features.contexts import Contribution
        from vllmctl.features.monitoring_values import values

        given = release.given
        found = values(given.monitoring, given.grafana_dashboards, release.chart.text, release.chart.version)
        return Contribution(
            context={
                "router": {"service_monitor": found.service_monitor},
                "engine_service_monitor": found.service_monitor,
                "grafana_dashboards": found.grafana_dashboards,
            },
            placed={
                "routerSpec.serviceMonitor": found.service_monitor,
                "servingEngineSpec.serviceMonitor": found.service_monitor,
                "grafanaDashboards": found.grafana_dashboards,
            },
        )

    def before_change(self, context: BeforeChange) -> None:
        from vllmctl.features.monitoring_values import require_served

        if context.settings.monitoring:
            require_served(context.served)

    def doctor(self, report: Report, context: DoctorContext) -> None:
        from vllmctl.features.monitoring_values import check_monitoring

        if context.kube is not None and context.chart_decided:
            check_monitoring(report, context.kube, context.settings)


FEATURE = Monitoring()
