"""The network policy feature: VLLM_NETWORK_POLICY and its namespaces as two Ingress-only
NetworkPolicies in the chart's extraObjects, chart 0.1.10+ (docs/network-policy.md).

`network_policy_values` holds the policies, their checks and doctor's hint on the network
plugin; this module is what the registry lists, kept small because every command that
reads models.yaml imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vllmctl.core.setting_names import (
    ENV_NETWORK_POLICY,
    ENV_NETWORK_POLICY_INGRESS_NAMESPACE,
    ENV_NETWORK_POLICY_NAMESPACES,
    ENV_NETWORK_POLICY_PROMETHEUS_NAMESPACE,
)
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features.contexts import Contribution, DoctorContext, ReleaseValues


class NetworkPolicy(Feature):
    name = "network policy"
    settings = (
        ENV_NETWORK_POLICY,
        ENV_NETWORK_POLICY_NAMESPACES,
        ENV_NETWORK_POLICY_INGRESS_NAMESPACE,
        ENV_NETWORK_POLICY_PROMETHEUS_NAMESPACE,
    )

    def release_values(self, release: ReleaseValues) -> Contribution:
        from vllmctl.features.contexts import Contribution
        from vllmctl.features.network_policy_values import objects

        policies = objects(release.given, release.chart.version, release.labels, release.entries)
        return Contribution(
            context={"extra_objects": policies.objects},
            placed={"extraObjects": policies.objects},
            warnings=policies.warnings,
        )

    def doctor(self, report: Report, context: DoctorContext) -> None:
        from vllmctl.features.network_policy_values import check_network_policy

        if context.kube is not None and context.chart_decided:
            check_network_policy(report, context.kube, context.settings)


FEATURE = NetworkPolicy()
