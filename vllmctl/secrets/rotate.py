"""rotate-api-key: a new key stored and synced, then the release's router and engines
restarted so they read it (the chart passes the key as an environment variable, read
once at start), so that only the new key is accepted."""

from __future__ import annotations

from typing import Any

from vllmctl.secrets.source import generate_api_key
from vllmctl.secrets.specs import API_KEY

HELM_RELEASE = "meta.helm.sh/release-name"  # helm annotates every object it manages


def release_deployments(kube: Any, namespace: str, release: str) -> list[str]:
    deployments = kube.list("apps/v1", "deployments", namespace)
    return sorted(
        d["metadata"]["name"]
        for d in deployments
        if (d["metadata"].get("annotations") or {}).get(HELM_RELEASE) == release
    )


def rotate(backend: Any, *, timeout: float) -> tuple[str, list[str]]:
    settings = backend.settings
    value = generate_api_key()
    backend.set(API_KEY, value, force_sync=True)
    names = release_deployments(backend.kube, settings.namespace, settings.release)
    backend.kube.restart_deployments(settings.namespace, names)
    if names:
        backend.kube.wait_rollout(settings.namespace, names, timeout)
    return value, names
