"""A chart feature that does not exist, written as a new one would be: one module with a
`FEATURE`. tests/features/test_made_up_feature.py adds it to the registry (the one line a
real feature adds to vllmctl/features/registry.py) and proves that the schema, render and
doctor take it up without naming it.

`costCenter: ml-research` on a model labels its engine pods `example.com/cost-center:
ml-research` (the chart's modelSpec podLabels, chart 0.1.12+), joined with the entry's own
podLabels; doctor warns about models without one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from vllmctl.chart.facts import ChartAt
from vllmctl.core.errors import UsageError
from vllmctl.core.fields import Field, kind_of
from vllmctl.core.findings import OK, WARN, Report
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.features.contexts import DoctorContext, ModelValues

LABEL = "example.com/cost-center"
SINCE = (0, 1, 12)  # modelSpec.podLabels
_CENTER = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def check_center(value: Any) -> str | None:
    if isinstance(value, str) and _CENTER.fullmatch(value):
        return None
    return f"must be a cost center like ml-research (lowercase letters, digits, '-'), not {kind_of(value)}"


class CostCenter(Feature):
    name = "cost center"
    fields: ClassVar[Mapping[str, Field]] = {
        "costCenter": Field(check_center, "the team billed for the model's GPUs")
    }
    merged_keys = ("podLabels",)

    def chart_problems(self, entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
        if "costCenter" in entry and chart.before(SINCE):
            return [
                ("costCenter", f"costCenter needs chart 0.1.12 or newer (podLabels); it is {chart.text}.")
            ]
        return []

    def model_values(self, model: ModelValues) -> None:
        if "costCenter" in model.data:
            # joined with what features before this one put there
            model.spec["podLabels"] = {**(model.spec.get("podLabels") or {}), LABEL: model.data["costCenter"]}

    def merge(self, model: str, key: str, ours: Any, theirs: Any) -> Any:
        if isinstance(ours, dict) and isinstance(theirs, dict):
            if LABEL in theirs and theirs[LABEL] != ours.get(LABEL):
                raise UsageError(f"{model}: podLabels sets {LABEL}; give it as costCenter instead.")
            return {**theirs, **ours}
        return theirs

    def doctor(self, report: Report, context: DoctorContext) -> None:
        if not context.models:
            return
        missing = [m.name for m in context.models if "costCenter" not in m.data]
        if missing:
            report.add("release", self.name, WARN, f"no cost center: {', '.join(missing)}", "set costCenter")
        else:
            report.add("release", self.name, OK, "every model has a cost center")


FEATURE = CostCenter()
