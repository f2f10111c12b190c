"""rotate-api-key: a new key stored and synced, then the release's router and engines
restarted so they read it (the chart passes the key as an environment variable, read
once at start), so that only the new key is accepted: the engine Deployments rolled, and
the RayClusters of multi-node models restarted whole (vllmctl/ops/ray_restart.py).

Before anything changes, the restart's pods must fit the cluster's free GPUs
(vllmctl/ops/restart.py): a rolling restart starts each new engine pod beside the old one,
and with every GPU in use it would wait forever while the new key is already stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vllmctl.secrets.source import generate_api_key
from vllmctl.secrets.specs import API_KEY

HELM_RELEASE = "meta.helm.sh/release-name"  # helm annotates every object it manages


def release_deployments(kube: Any, namespace: str, release: str) -> list[dict[str, Any]]:
    """The Deployments helm manages for the release, by name."""
    deployments = kube.list("apps/v1", "deployments", namespace)
    return sorted(
        (d for d in deployments if (d["metadata"].get("annotations") or {}).get(HELM_RELEASE) == release),
        key=lambda d: str(d["metadata"]["name"]),
    )


@dataclass
class Rotation:
    """What rotate-api-key will restart, and whether the restart fits (None: not checked,
    with `unchecked` saying why)."""

    names: list[str]
    fit: Any
    unchecked: str | None = None
    rayclusters: list[Any] = field(default_factory=list)  # ops.ray_restart.RayRestart

    def restarted(self) -> list[str]:
        """What was restarted, for the closing line."""
        return [*self.names, *(ray.describe() for ray in self.rayclusters)]


def plan_rotation(backend: Any) -> Rotation:
    """The Deployments and RayClusters to restart and the GPU fit of the Deployments'
    restart (a RayCluster's pods go before their new ones come: no GPU beyond its own);
    nothing changes."""
    from vllmctl.ops.gpufit import CannotReadNodes
    from vllmctl.ops.ray_restart import plan_ray_restarts
    from vllmctl.ops.restart import restart_fit

    settings = backend.settings
    deployments = release_deployments(backend.kube, settings.namespace, settings.release)
    names = [str(d["metadata"]["name"]) for d in deployments]
    rays = plan_ray_restarts(backend.kube, settings.namespace, settings.release)
    try:
        fit = restart_fit(backend.kube, settings.namespace, settings.release, deployments)
    except CannotReadNodes as e:
        return Rotation(names, None, e.message, rays)
    return Rotation(names, fit, None, rays)


def rotate(
    backend: Any, rotation: Rotation, *, timeout: float, notify: Callable[[str], None]
) -> tuple[str, list[str]]:
    """Store and sync a new key, restart the Deployments and the RayClusters' pods,
    follow the restarts (one timeout for all)."""
    import time

    from vllmctl.ops.ray_restart import follow_ray_restarts, restart_rayclusters
    from vllmctl.ops.restart import follow_rollout

    settings = backend.settings
    value = generate_api_key()
    backend.set(API_KEY, value, force_sync=True)
    started = time.monotonic()
    backend.kube.restart_deployments(settings.namespace, rotation.names)
    restart_rayclusters(backend.kube, settings.namespace, rotation.rayclusters)
    if rotation.names:
        follow_rollout(backend.kube, settings.namespace, rotation.names, timeout, notify)
    if rotation.rayclusters:
        left = max(0.1, timeout - (time.monotonic() - started))
        follow_ray_restarts(
            backend.kube, settings.namespace, rotation.rayclusters, left, notify, told=timeout
        )
    return value, rotation.restarted()
