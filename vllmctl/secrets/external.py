"""ExternalSecrets: the objects that make the External Secrets Operator copy a secret
from Vault into the Kubernetes Secret the chart reads.

Rendered from templates/ (so operators can change them), applied with server-side apply
(no delete-then-create window), and followed until the target Secret holds the value.
"""

from __future__ import annotations

import time
from typing import Any

from vllmctl.core.errors import ExternalError
from vllmctl.secrets.specs import SecretKind

GROUP = "external-secrets.io"
PLURAL = "externalsecrets"
REFRESH_INTERVAL = "1h"  # as the old setup; set-* force a sync, so a change needs no wait


def served_version(kube: Any) -> str | None:
    """The ExternalSecret API version to use: v1 when served (ESO 0.16+), else the
    version discovery prefers; None when the cluster does not serve ExternalSecrets."""
    versions: list[str] = kube.served_versions(GROUP, PLURAL)
    if not versions:
        return None
    return f"{GROUP}/v1" if "v1" in versions else f"{GROUP}/{versions[0]}"


def manifest(kind: SecretKind, settings: Any, api_version: str, *, force_sync: bool) -> dict[str, Any]:
    from ruamel.yaml import YAML

    from vllmctl.render.values import render_template

    text = render_template(
        kind.template,
        {
            "api_version": api_version,
            "name": kind.external_secret,
            "namespace": settings.namespace,
            "store_name": settings.secret_store,
            "store_kind": settings.secret_store_kind,
            "refresh_interval": REFRESH_INTERVAL,
            "target_secret": kind.ref.secret_name,
            "target_key": kind.ref.secret_key,
            "remote_key": kind.vault_path(settings.vault_prefix),
            "remote_property": kind.vault_key,
        },
        settings.templates_dir,
    )
    obj: dict[str, Any] = YAML(typ="safe", pure=True).load(text)
    if force_sync:
        # ESO re-reads the provider when this annotation changes (its documented force-sync).
        obj["metadata"].setdefault("annotations", {})["force-sync"] = str(time.time_ns())
    return obj


def secret_value(kube: Any, namespace: str, kind: SecretKind) -> str | None:
    """What the namespace's Secret for `kind` holds now; None when there is none."""
    import base64

    secret = kube.get("v1", "secrets", namespace, kind.ref.secret_name)
    data = ((secret or {}).get("data") or {}).get(kind.ref.secret_key)
    return None if data is None else base64.b64decode(data).decode()


def apply_and_wait(
    kube: Any,
    kind: SecretKind,
    settings: Any,
    api_version: str,
    *,
    expected: str,
    force_sync: bool,
    timeout: float = 60,
) -> None:
    """Apply the ExternalSecret, then wait until ESO has synced: the target Secret holds
    `expected` and the ExternalSecret is Ready. A failure names ESO's own reason and message."""
    kube.apply(manifest(kind, settings, api_version, force_sync=force_sync), PLURAL)
    deadline = time.monotonic() + timeout
    while True:
        es = kube.get(api_version, PLURAL, settings.namespace, kind.external_secret) or {}
        ready = _ready(es)
        held_ok = secret_value(kube, settings.namespace, kind) == expected
        if held_ok and (ready is None or ready.get("status") == "True"):
            return
        if time.monotonic() >= deadline:
            reason = f" ({ready.get('reason')}: {ready.get('message')})" if ready else ""
            raise ExternalError(
                f"ExternalSecret {kind.external_secret} in namespace {settings.namespace} did not sync the "
                f"{kind.label} into Secret {kind.ref.secret_name} within {timeout:.0f}s{reason}; "
                f"check the {settings.secret_store_kind} {settings.secret_store} and the key "
                f"{kind.vault_path(settings.vault_prefix)} in Vault."
            )
        if ready and ready.get("status") == "False" and time.monotonic() + 3 < deadline:
            # ESO retries failed syncs; give it a few seconds, then report its reason.
            deadline = min(deadline, time.monotonic() + 3)
        time.sleep(0.2)


def _ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def delete(kube: Any, kind: SecretKind, settings: Any, api_version: str) -> bool:
    """Delete the ExternalSecret and the Secret it made (its owner reference would take
    it too, but not at once)."""
    removed = kube.delete(api_version, PLURAL, settings.namespace, kind.external_secret)
    removed |= kube.delete("v1", "secrets", settings.namespace, kind.ref.secret_name)
    return bool(removed)
