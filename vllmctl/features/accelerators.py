"""Accelerators: models.yaml's `accelerator` as the chart's requestGPUType and runtimeClassName.

One mapping, used by the renderer (what the chart gets) and by the GPU fit (which node
resource a replica needs), so the two never disagree. No I/O, no heavy imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from vllmctl.core.fields import Field
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.features.contexts import ModelValues

DEFAULT_RESOURCE = "nvidia.com/gpu"  # the chart's default requestGPUType


class Accelerator(NamedTuple):
    """A device plugin's resource and the RuntimeClass its pods need ("" for none)."""

    resource: str
    runtime_class: str


# The short names. NVIDIA's container toolkit is usually reached through the `nvidia`
# RuntimeClass (the chart's default); AMD's and Habana's device plugins work with the
# default runtime, so their pods get none.
NAMED: dict[str, Accelerator] = {
    "nvidia": Accelerator("nvidia.com/gpu", "nvidia"),
    "amd": Accelerator("amd.com/gpu", ""),
    "gaudi": Accelerator("habana.ai/gaudi", ""),
}
# Raw resource names accepted besides the named ones' (MIG profiles are checked by MIG_RE).
RAW = {a.resource: a for a in NAMED.values()}
# A MIG profile as NVIDIA's device plugin names it under the "mixed" strategy:
# nvidia.com/mig-<compute slices>g.<memory>gb, e.g. nvidia.com/mig-4g.71gb.
MIG_RE = re.compile(r"nvidia\.com/mig-([1-7])g\.([1-9][0-9]{0,3})gb")


def lookup(value: str) -> Accelerator | None:
    """The accelerator a models.yaml `accelerator` value names, or None when it names none."""
    if value in NAMED:
        return NAMED[value]
    if value in RAW:
        return RAW[value]
    if MIG_RE.fullmatch(value):
        return Accelerator(value, "nvidia")
    return None


def problem(value: Any) -> str | None:
    """Why `value` is not an accelerator vllmctl knows (the schema's check), or None."""
    known = (
        f"{', '.join(NAMED)}, a resource name ({', '.join(RAW)}) or a MIG profile like nvidia.com/mig-4g.71gb"
    )
    if not isinstance(value, str) or not value:
        return f"must be one of {known}"
    if lookup(value) is not None:
        return None
    if value.lower() in NAMED or value.lower() in RAW:
        return f"{value!r} is spelt {value.lower()!r}"
    if value.startswith(("nvidia.com/mig", "mig-")):
        return (
            f"{value!r} is not a MIG profile; write it as nvidia.com/mig-<n>g.<m>gb "
            "(n from 1 to 7 compute slices, m the memory in GB), e.g. nvidia.com/mig-4g.71gb"
        )
    return (
        f"{value!r} is not an accelerator vllmctl knows; use {known}. For another device "
        "plugin's resource, set requestGPUType (and runtimeClassName) instead"
    )


def conflict(accelerator: Any, request_gpu_type: Any) -> str | None:
    """Why an entry's `accelerator` and `requestGPUType` disagree, or None."""
    found = lookup(accelerator) if isinstance(accelerator, str) else None
    if found is None or request_gpu_type is None or request_gpu_type == found.resource:
        return None
    return (
        f"{request_gpu_type!r} contradicts accelerator {accelerator!r} ({found.resource}); "
        "keep one of the two"
    )


def gpu_resource(entry: Mapping[str, Any]) -> str:
    """The extended resource each GPU of the entry's replicas is requested as: requestGPUType
    when given, else the accelerator's, else the chart's default."""
    given = entry.get("requestGPUType")
    if given:
        return str(given)
    accelerator = entry.get("accelerator")
    found = lookup(accelerator) if isinstance(accelerator, str) else None
    return found.resource if found else DEFAULT_RESOURCE


def model_keys(entry: Mapping[str, Any]) -> dict[str, str]:
    """The modelSpec keys an entry's accelerator adds (requestGPUType, runtimeClassName);
    keys the entry gives itself are left to it."""
    accelerator = entry.get("accelerator")
    found = lookup(accelerator) if isinstance(accelerator, str) else None
    if found is None:
        return {}
    keys = {"requestGPUType": found.resource, "runtimeClassName": found.runtime_class}
    return {key: value for key, value in keys.items() if key not in entry}


class Accelerators(Feature):
    name = "accelerators"
    fields: ClassVar[Mapping[str, Field]] = {
        "accelerator": Field(problem, "nvidia, amd, gaudi or a GPU resource name")
    }

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        clash = conflict(entry.get("accelerator"), entry.get("requestGPUType"))
        return [("requestGPUType", clash)] if clash else []

    def model_values(self, model: ModelValues) -> None:
        model.spec.update(model_keys(model.entry))


FEATURE = Accelerators()
