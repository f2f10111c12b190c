"""KV-cache offload in the cluster: doctor's rows (the engine image of each kvCache model,
the cache server's Deployment Ready) and what status reads back (each engine's LMCache
environment, the cache server's state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllmctl.chart.facts import ENGINE_CONTAINER, LMCACHE_IMAGE, cache_server_deployment_name
from vllmctl.core.errors import VllmctlError
from vllmctl.core.quantity import as_int
from vllmctl.features.contexts import FeatureReading
from vllmctl.features.kv_cache_values import FIELD

if TYPE_CHECKING:
    from vllmctl.core.findings import Report

Obj = dict[str, Any]


# --- doctor --------------------------------------------------------------------------------


def check(report: Report, kube: Any, settings: Any, models: Sequence[Any] | None) -> None:
    """The offload image row (when a model has kvCache) and the cache server row (when on)."""
    offloading = [m for m in models or () if FIELD in m.data]
    if offloading:
        lmcache_image = settings.lmcache_image
        odd = [
            f"{m.name} ({m.data['image']})"
            for m in offloading
            if m.data.get("image") not in (None, lmcache_image, LMCACHE_IMAGE)
        ]
        names = ", ".join(m.name for m in offloading)
        if odd:
            report.add(
                "release",
                "kv cache offload",
                "warn",
                f"kvCache models on images that may lack LMCache: {', '.join(odd)}",
                "remove the model's image (vllmctl then uses VLLM_LMCACHE_IMAGE), or check it has LMCache",
            )
        else:
            report.add(
                "release",
                "kv cache offload",
                "ok",
                f"{names}: LMCache offload on {lmcache_image}:{settings.lmcache_tag} (or the model's tag)",
            )
    if not settings.cache_server:
        return
    if kube is None:
        report.add("release", "cache server", "skip", "not judged: the cluster did not answer")
        return
    name = cache_server_deployment_name(settings.release)
    try:
        deployment = kube.get("apps/v1", "deployments", settings.namespace, name)
    except VllmctlError as e:
        report.add("release", "cache server", "warn", f"could not read Deployment {name}: {e.message}")
        return
    if deployment is None:
        report.add(
            "release",
            "cache server",
            "warn",
            f"VLLM_CACHE_SERVER is on but Deployment {name} does not exist in {settings.namespace}",
            "install or upgrade the release (it creates the cache server)",
        )
        return
    ready, wanted = _replicas(deployment)
    if wanted and ready >= wanted:
        report.add("release", "cache server", "ok", f"Deployment {name} Ready ({ready}/{wanted})")
    else:
        report.add(
            "release",
            "cache server",
            "fail",
            f"Deployment {name} is not Ready ({ready}/{wanted}): the engines' remote KV cache is down",
            f"kubectl -n {settings.namespace} describe deployment {name}",
        )


def _replicas(deployment: Obj) -> tuple[int, int]:
    status = deployment.get("status") or {}
    wanted = as_int((deployment.get("spec") or {}).get("replicas"), 1) or 0
    return as_int(status.get("readyReplicas"), 0) or 0, wanted


# --- status --------------------------------------------------------------------------------


@dataclass
class KvCacheStatus:
    """One engine's LMCache offload as deployed (from its container's environment)."""

    cpu: str | None  # LMCACHE_MAX_LOCAL_CPU_SIZE, GiB ("20")
    disk: str | None  # LMCACHE_MAX_LOCAL_DISK_SIZE, GiB
    remote: str | None  # LMCACHE_REMOTE_URL: the cache server
    cache_server: str | None  # its Deployment's state, when the engine uses it
    problem: str | None = None


def read_cache_server(kube: Any, namespace: str, release: str) -> FeatureReading:
    """The cache server's Deployment (one read; absent is not a problem by itself)."""
    name = cache_server_deployment_name(release)
    try:
        deployment = kube.get("apps/v1", "deployments", namespace, name)
    except VllmctlError as e:
        return FeatureReading({"name": name}, [f"could not read the cache server Deployment: {e.message}"])
    return FeatureReading({"name": name, "deployment": deployment})


def model_offload(reading: FeatureReading, deployment: Obj) -> KvCacheStatus | None:
    """What an engine Deployment's LMCache environment says (None: no LMCache on it)."""
    env = _engine_env(deployment)
    if env.get("LMCACHE_USE_EXPERIMENTAL") is None and "LMCACHE_REMOTE_URL" not in env:
        return None
    cpu = env.get("LMCACHE_MAX_LOCAL_CPU_SIZE") if env.get("LMCACHE_LOCAL_CPU") == "True" else None
    remote = env.get("LMCACHE_REMOTE_URL")
    result = KvCacheStatus(cpu, env.get("LMCACHE_MAX_LOCAL_DISK_SIZE"), remote, None)
    if remote:
        server = reading.objects.get("deployment")
        name = reading.objects.get("name", "the cache server")
        if "deployment" not in reading.objects:
            result.cache_server = "unknown"  # not read (status notes why)
        elif server is None:
            result.cache_server = "missing"
            result.problem = (
                f"its LMCACHE_REMOTE_URL {remote} points at Deployment {name}, which does not exist"
            )
        else:
            ready, wanted = _replicas(server)
            result.cache_server = f"{ready}/{wanted} ready"
            if ready < wanted or not wanted:
                result.problem = f"the cache server Deployment {name} is not Ready ({ready}/{wanted})"
    return result


def _engine_env(deployment: Obj) -> dict[str, str]:
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    for container in containers or []:
        if container.get("name") == ENGINE_CONTAINER:
            return {
                str(item.get("name")): str(item["value"])
                for item in container.get("env") or []
                if isinstance(item, Mapping) and "value" in item
            }
    return {}


def offload_table(parts: Mapping[str, KvCacheStatus]) -> tuple[list[str], list[list[Any]]]:
    """The models with LMCache: CPU and disk buffers (GiB), the cache server they use."""
    rows = [
        [
            name,
            f"{p.cpu}Gi" if p.cpu else "-",
            f"{p.disk}Gi" if p.disk else "-",
            p.remote or "-",
            p.cache_server or "-",
        ]
        for name, p in parts.items()
    ]
    return ["kv offload", "cpu", "disk", "remote", "cache server"], rows
