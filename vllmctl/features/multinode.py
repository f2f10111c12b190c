"""The multi-node feature: a model with `vllmConfig.pipelineParallelSize` runs as the
chart's KubeRay RayCluster across nodes, each with `tensorParallelSize` GPUs
(docs/multi-node.md).

Its parts: `multinode_values` (the entry's checks, the chart version's, and the raySpec,
replicaCount and vllmConfig keys it renders) and `multinode_cluster` (KubeRay's CRD for
install and doctor, and the RayClusters status reads back). This module is what the
registry lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vllmctl.chart.facts import ChartAt
from vllmctl.features.base import Feature
from vllmctl.features.multinode_values import chart_problems, merge, problems, ray_values

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features import contexts
    from vllmctl.features.multinode_cluster import RayStatus

Obj = dict[str, Any]


class MultiNode(Feature):
    name = "multinode"
    status_key = "ray"
    merged_keys = ("raySpec",)
    runs_models = True

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        return problems(entry)

    def chart_problems(self, entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
        return chart_problems(entry, chart)

    def model_values(self, model: contexts.ModelValues) -> None:
        ray_values(model.entry, model.spec, model.chart)

    def merge(self, model: str, key: str, ours: Any, theirs: Any) -> Any:
        return merge(ours, theirs)

    def before_change(self, context: contexts.BeforeChange) -> None:
        from vllmctl.features.multinode_cluster import require_served

        require_served(context.models, context.served)

    def doctor(self, report: Report, context: contexts.DoctorContext) -> None:
        from vllmctl.features.multinode_cluster import check

        if context.kube is not None:
            check(report, context.kube, context.models)

    def read_status(self, kube: Any, namespace: str, release: str) -> contexts.FeatureReading:
        from vllmctl.features.multinode_cluster import read_rayclusters

        return read_rayclusters(kube, namespace, release)

    def model_status(self, reading: contexts.FeatureReading, model: str, deployment: Obj) -> RayStatus | None:
        from vllmctl.features.multinode_cluster import model_ray

        return model_ray(reading, model)

    def status_table(self, parts: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
        from vllmctl.features.multinode_cluster import ray_table

        found = {model: part for model, part in parts.items() if part is not None}
        return ray_table(found) if found else None


FEATURE = MultiNode()
