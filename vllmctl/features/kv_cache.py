"""The KV-cache offload feature: models.yaml's `kvCache` as the chart's `lmcacheConfig` on an
engine image with LMCache, and the release's LMCache cache server and shared storage from
the settings (VLLM_CACHE_SERVER, VLLM_SHARED_STORAGE_*; docs/kv-cache.md).

Its parts: `kv_cache_values` (the field's checks, the chart's lmcacheConfig, cacheserverSpec
and sharedPvcStorage per chart version) and `kv_cache_cluster` (doctor's rows, what status
reads back). This module is what the registry lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from vllmctl.chart.facts import ChartAt
from vllmctl.core.fields import Field
from vllmctl.core.setting_names import (
    ENV_CACHE_SERVER,
    ENV_CACHE_SERVER_MEMORY,
    ENV_LMCACHE_IMAGE,
    ENV_LMCACHE_TAG,
    ENV_SHARED_STORAGE_CLASS,
    ENV_SHARED_STORAGE_HOST_PATH,
    ENV_SHARED_STORAGE_NFS,
    ENV_SHARED_STORAGE_SIZE,
)
from vllmctl.features import kv_cache_values as kv
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features import contexts
    from vllmctl.features.kv_cache_cluster import KvCacheStatus

Obj = dict[str, Any]


class KvCache(Feature):
    name = "kv_cache"
    status_key = "kvCache"
    fields: ClassVar[Mapping[str, Field]] = {
        kv.FIELD: Field(
            kv.problem,
            "LMCache KV-cache offload: cpuOffload, diskOffload, logLevel, role (docs/kv-cache.md)",
            {key: Field(check, text) for key, (check, text) in kv.CHILDREN.items()},
        )
    }
    settings = (
        ENV_LMCACHE_IMAGE,
        ENV_LMCACHE_TAG,
        ENV_CACHE_SERVER,
        ENV_CACHE_SERVER_MEMORY,
        ENV_SHARED_STORAGE_SIZE,
        ENV_SHARED_STORAGE_CLASS,
        ENV_SHARED_STORAGE_NFS,
        ENV_SHARED_STORAGE_HOST_PATH,
    )

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        return kv.conflict(entry)

    def chart_problems(self, entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
        return kv.chart_problems(entry, chart)

    def model_values(self, model: contexts.ModelValues) -> None:
        if kv.FIELD in model.entry:
            settings = model.given.kv_cache
            routing = str(model.given.routing_logic or "roundrobin").strip()
            kv.model_keys(
                model.name,
                model.entry,
                model.spec,
                settings.lmcache_image,
                settings.lmcache_tag,
                routing,
                model.chart,
            )

    def engine_image(self, data: Mapping[str, Any], settings: Any) -> tuple[str, str, str] | None:
        if kv.FIELD not in data or "image" in data:
            return None
        image, tag = kv.engine_image(
            data, settings.model_image, settings.model_tag, settings.lmcache_image, settings.lmcache_tag
        )
        return image, tag, ENV_LMCACHE_TAG

    def release_values(self, release: contexts.ReleaseValues) -> contexts.Contribution:
        from vllmctl.features.contexts import Contribution

        keys = kv.release_keys(release.given.kv_cache, release.chart, release.entries, release.given.release)
        # A prefill engine's NIXL peer is the decode engine's Service: known once every model is.
        kv.pair_roles(release.specs, release.given.release)
        settings = release.given.kv_cache
        said = kv.image_warnings(release.models, settings.lmcache_image, settings.lmcache_tag)
        warnings = [*said, *keys.warnings, *kv.role_warnings(release.entries)]
        present = {
            path: f"the rendered values have no {path}, which the KV-cache settings ask for; check the "
            "templates (a copy in VLLM_TEMPLATES_DIR may predate them)."
            for path, wanted in (
                ("cacheserverSpec", keys.cache_server),
                ("sharedPvcStorage", keys.shared_storage),
            )
            if wanted is not None
        }
        return Contribution(
            context={"cache_server": keys.cache_server, "shared_storage": keys.shared_storage},
            placed={"cacheserverSpec": keys.cache_server, "sharedPvcStorage": keys.shared_storage},
            present=present,
            warnings=warnings,
        )

    def doctor(self, report: Report, context: contexts.DoctorContext) -> None:
        from vllmctl.features.kv_cache_cluster import check

        check(report, context.kube, context.settings, context.models)

    def read_status(self, kube: Any, namespace: str, release: str) -> contexts.FeatureReading:
        from vllmctl.features.kv_cache_cluster import read_cache_server

        return read_cache_server(kube, namespace, release)

    def model_status(
        self, reading: contexts.FeatureReading, model: str, deployment: Obj
    ) -> KvCacheStatus | None:
        from vllmctl.features.kv_cache_cluster import model_offload

        return model_offload(reading, deployment)

    def status_table(self, parts: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
        from vllmctl.features.kv_cache_cluster import offload_table

        return offload_table(dict(parts)) if parts else None


FEATURE = KvCache()
