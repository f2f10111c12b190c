"""The autoscaling feature: models.yaml's `autoscaling` as a KEDA ScaledObject per model
(chart 0.1.9+), scaled on the model's own vLLM gauge through Prometheus (docs/autoscaling.md).

Its parts: `autoscaling_values` (the field's checks and the chart's `keda` values) and
`autoscaling_cluster` (doctor's check, and what status reads back). This module is what the
registry lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from vllmctl.chart.facts import ChartAt
from vllmctl.core.fields import Field
from vllmctl.core.setting_names import ENV_PROMETHEUS_URL
from vllmctl.features.autoscaling_values import (
    CHILDREN,
    GROUP,
    PLURAL,
    SINCE,
    VERSION,
    bounds,
    check_placed,
    conflict,
    model_keys,
    problem,
    require_served,
    warnings,
)
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features import contexts
    from vllmctl.features.autoscaling_cluster import AutoscalingStatus

Obj = dict[str, Any]


class Autoscaling(Feature):
    name = "autoscaling"
    status_key = "autoscaling"
    fields: ClassVar[Mapping[str, Field]] = {
        "autoscaling": Field(
            problem,
            "KEDA autoscaling: minReplicas, maxReplicas, metric, target (chart 0.1.9+)",
            {key: Field(check, text) for key, (check, text) in CHILDREN.items()},
        )
    }
    settings = (ENV_PROMETHEUS_URL,)

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        found = conflict(entry)
        return [found] if found else []

    def chart_problems(self, entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
        if "autoscaling" not in entry or not chart.before(SINCE):
            return []
        return [
            (
                "autoscaling",
                "autoscaling needs chart 0.1.9 or newer, the first with KEDA support (modelSpec[].keda); "
                f"the chart version is {chart.text}. Raise the chart version, or remove autoscaling and "
                "set replicaCount.",
            )
        ]

    def model_values(self, model: contexts.ModelValues) -> None:
        model.spec.update(
            model_keys(
                model.entry,
                model.spec["vllmConfig"]["extraArgs"],
                namespace=model.given.namespace,
                prometheus_url=model.given.prometheus_url,
                chart=model.chart.version,
                chart_text=model.chart.text,
            )
        )

    def release_values(self, release: contexts.ReleaseValues) -> contexts.Contribution:
        from vllmctl.features.contexts import Contribution

        # as written (before defaults): a replicaCount the operator gave is what is ignored
        said = warnings((m.data for m in release.models), release.chart.version, release.chart.text)
        return Contribution(warnings=said)

    def check_rendered(self, values: Obj, specs: list[Obj]) -> None:
        check_placed(values, specs)

    def before_change(self, context: contexts.BeforeChange) -> None:
        if any("autoscaling" in m.data for m in context.models):
            require_served(context.served)

    def doctor(self, report: Report, context: contexts.DoctorContext) -> None:
        from vllmctl.features.autoscaling_cluster import check

        if context.kube is not None and context.chart_decided:
            check(report, context.kube, context.settings, context.models)

    def read_status(self, kube: Any, namespace: str, release: str) -> contexts.FeatureReading:
        from vllmctl.features.autoscaling_cluster import read_autoscalers

        return read_autoscalers(kube, namespace, release)

    def model_status(
        self, reading: contexts.FeatureReading, model: str, deployment: Obj
    ) -> AutoscalingStatus | None:
        from vllmctl.features.autoscaling_cluster import model_autoscaling

        return model_autoscaling(reading, model, deployment)

    def status_table(self, parts: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
        from vllmctl.features.autoscaling_cluster import autoscaling_table

        return autoscaling_table(dict(parts)) if parts else None


FEATURE = Autoscaling()

__all__ = ["FEATURE", "GROUP", "PLURAL", "SINCE", "VERSION", "bounds"]
