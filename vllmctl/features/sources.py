"""The model sources feature: where an engine reads its weights (a Hub repo, pvc://, s3://,
oci://) and which model cache it writes (docs/model-sources.md).

Its parts, each one job: `source_urls` (modelURL and the keys that go with a source,
parsed and checked), `source_values` (the modelSpec keys each source needs, and the claims
and Secrets the cluster must hold), `source_checks` (doctor's checks of those). This
module is what the registry lists, and what callers import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from vllmctl.core.fields import Field
from vllmctl.core.setting_names import ENV_MODEL_CACHE_CLAIM, ENV_OCI_METHOD, ENV_S3_ENDPOINT, ENV_S3_IMAGE
from vllmctl.features.base import Feature
from vllmctl.features.source_urls import (
    DEFAULT_S3_IMAGE,
    DONE_MARKER,
    MERGED,
    OCI,
    OCI_METHODS,
    check_claim,
    check_endpoint,
    check_model_url,
    check_region,
    check_secret,
    entry_problems,
    parse,
)

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features.contexts import BeforeChange, DoctorContext, ModelValues

# The per-model cache PVC's keys, which render writes and a source without one removes.
CACHE_PVC_KEYS = ("pvcStorage", "pvcAccessMode", "storageClass", "pvcAnnotations")


class ModelSources(Feature):
    name = "model sources"
    fields: ClassVar[Mapping[str, Field]] = {
        "modelURL": Field(check_model_url, "HuggingFace repo id, or pvc://, s3://, oci:// URI"),
        "cacheClaim": Field(check_claim, "an existing claim to use as the model cache (RWX to share)"),
        "s3Secret": Field(check_secret, "Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (s3://)"),
        "s3Endpoint": Field(check_endpoint, "S3-compatible endpoint URL (default VLLM_S3_ENDPOINT)"),
        "s3Region": Field(check_region, "S3 region (s3://)"),
    }
    settings = (ENV_S3_ENDPOINT, ENV_S3_IMAGE, ENV_MODEL_CACHE_CLAIM, ENV_OCI_METHOD)
    merged_keys = MERGED  # joined with what the source needs, not replaced

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        return entry_problems(entry)

    def model_values(self, model: ModelValues) -> None:
        """A pvc://, s3:// or oci:// source serves a local directory; a pvc:// claim, an
        image volume or a shared cacheClaim means no per-model cache PVC."""
        from vllmctl.features.source_values import place

        placed = place(model.data, model.given.sources)
        model.spec["modelURL"] = placed.model_url
        if not placed.cache_pvc:
            for key in CACHE_PVC_KEYS:
                model.spec.pop(key, None)
        model.spec.update(placed.keys)

    def merge(self, model: str, key: str, ours: Any, theirs: Any) -> Any:
        from vllmctl.features.source_values import merge

        return merge(model, key, ours, theirs)

    def before_change(self, context: BeforeChange) -> None:
        """A pvc:// claim, cacheClaim or s3Secret missing from the namespace: no pod could start."""
        from vllmctl.chart.inputs import options_from
        from vllmctl.features.source_values import needs, require_present

        found = needs((m.data for m in context.models), options_from(context.settings))
        require_present(found, context.settings.namespace, context.kubectl.names)

    def doctor(self, report: Report, context: DoctorContext) -> None:
        from vllmctl.features.source_checks import check_sources

        if context.kube is not None and context.models:
            check_sources(report, context.kube, context.settings, context.models)


FEATURE = ModelSources()

__all__ = [
    "DEFAULT_S3_IMAGE",
    "DONE_MARKER",
    "FEATURE",
    "OCI",
    "OCI_METHODS",
    "parse",
]
