"""rotate-api-key: a new key stored and synced, then the release's router and engines
restarted so they read it (the chart passes the key as an environment variable, read
once at start), so that only the new key is accepted.

Before anything changes, the restart's pods must fit the cluster's free GPUs
(vllmctl/ops/restart.py): a rolling restart starts each new engine pod beside the old one,
and with every GPU in use it would wait forever while the new key is already stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def plan_rotation(backend: Any) -> Rotation:
    """The Deployments to restart and the GPU fit of their restart; nothing changes."""
    from vllmctl.ops.gpufit import CannotReadNodes
    from vllmctl.ops.restart import restart_fit

    settings = backend.settings
    deployments = release_deployments(backend.kube, settings.namespace, settings.release)
    names = [str(d["metadata"]["name"]) for d in deployments]
    try:
        fit = restart_fit(backend.kube, settings.namespace, settings.release, deployments)
    except CannotReadNodes as e:
        return Rotation(names, None, e.message)
    return Rotation(names, fit)


def rotate(
    backend: Any, rotation: Rotation, *, timeout: float, notify: Callable[[str], None]
) -> tuple[str, list[str]]:
    """Store and sync a new key, restart the Deployments, follow the restarts."""
    from vllmctl.ops.restart import follow_rollout

    settings = backend.settings
    value = generate_api_key()
    backend.set(API_KEY, value, force_sync=True)
    backend.kube.restart_deployments(settings.namespace, rotation.names)
    if rotation.names:
        follow_rollout(backend.kube, settings.namespace, rotation.names, timeout, notify)
    return value, rotation.names
