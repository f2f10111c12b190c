"""The LoRA feature: models.yaml's `lora:` (adapters declared with their base model), loaded
by vLLM at start (--lora-modules) or by the chart's LoRA controller from LoraAdapter objects
(docs/lora.md).

Its parts: `lora_values` (the field's checks, the engine's keys and the chart's
`loraAdapters`) and `lora_cluster` (the checks before install, doctor's row, what status
reads back). This module is what the registry lists; it stays small because every command
that reads models.yaml imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from vllmctl.core.fields import Field
from vllmctl.features import lora_values as lv
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.chart.facts import ChartAt
    from vllmctl.core.findings import Report
    from vllmctl.features import contexts
    from vllmctl.features.lora_cluster import LoraStatus

Obj = dict[str, Any]


class Lora(Feature):
    name = "lora"
    status_key = "lora"
    fields: ClassVar[Mapping[str, Field]] = {
        lv.KEY: Field(
            lv.problem,
            "LoRA adapters: a list of {name, source (org/repo or pvc://CLAIM/path), atStart}",
        )
    }

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        return lv.entry_problems(entry)

    def chart_problems(self, entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
        return lv.chart_problems(entry, chart)

    def hub_repos(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [(a.source, f"adapter {a.name}") for a in lv.adapters(entry) if a.hub]

    def needs_hf_token(self, entry: Mapping[str, Any]) -> bool:
        # The controller reads credentialsSecretRef for every Hub adapter, public or not
        # (docs/chart-facts.md, "LoRA adapters").
        return any(a.hub and not a.at_start for a in lv.adapters(entry))

    def served_ids(self, entry: Mapping[str, Any]) -> list[tuple[str, tuple[int | str, ...], str]]:
        return lv.served_ids(entry)

    def model_values(self, model: contexts.ModelValues) -> None:
        lv.model_keys(model.spec, model.data)

    def release_values(self, release: contexts.ReleaseValues) -> contexts.Contribution | None:
        from vllmctl.chart.inputs import HF_TOKEN_SECRET
        from vllmctl.features.contexts import Contribution

        items = lv.release_keys(
            release.given.release,
            ((m.name, m.data) for m in release.models),
            hf_token=release.given.hf_token or HF_TOKEN_SECRET,
            api_key=release.given.api_key,
        )
        context = {"lora": {"adapters": items or None, "controller": bool(items)}}
        if not items:
            return Contribution(context=context)
        return Contribution(
            context=context,
            placed={"loraAdapters": items, "loraController.enableLoraController": True},
        )

    def before_change(self, context: contexts.BeforeChange) -> None:
        from vllmctl.features.lora_cluster import require_present

        require_present(context)

    def doctor(self, report: Report, context: contexts.DoctorContext) -> None:
        from vllmctl.features.lora_cluster import check

        if context.models and any(lv.KEY in m.data for m in context.models):
            check(report, context)

    def read_status(self, kube: Any, namespace: str, release: str) -> contexts.FeatureReading:
        from vllmctl.features.lora_cluster import read_adapters

        return read_adapters(kube, namespace, release)

    def model_status(
        self, reading: contexts.FeatureReading, model: str, deployment: Obj
    ) -> LoraStatus | None:
        from vllmctl.features.lora_cluster import model_adapters

        return model_adapters(reading, model, deployment)

    def status_table(self, parts: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
        from vllmctl.features.lora_cluster import adapters_table

        return adapters_table(dict(parts)) if parts else None


FEATURE = Lora()
