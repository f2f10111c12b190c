"""Where the HuggingFace token and the API key are kept: Vault synced into the cluster
by the External Secrets Operator, or Kubernetes Secrets; and how `auto` chooses.

Commands call `choose()` once, then `set`/`get`/`delete` for the stored value and
`sync`/`unsync` for the Secret in the cluster. Nothing here prints: results come back as
sentences for the command to show.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from vllmctl.core.errors import ExternalError, UsageError
from vllmctl.secrets import external
from vllmctl.secrets.specs import SecretKind

BACKENDS = ("auto", "vault", "kubernetes")
MANAGED_BY = {"app.kubernetes.io/managed-by": "vllmctl"}


@dataclass
class Backend(ABC):
    """A chosen backend. `reason` says why it was chosen (shown before every write)."""

    settings: Any
    kube: Any
    reason: str
    notes: list[str] = field(default_factory=list)
    name: str = ""
    # Only install creates the namespace; other commands would make one out of a typo.
    creates_namespace: bool = False

    @abstractmethod
    def set(self, kind: SecretKind, value: str, *, force_sync: bool = False) -> str:
        """Store the value and make the cluster's Secret hold it; says where it went."""

    @abstractmethod
    def get(self, kind: SecretKind) -> str | None:
        """The stored value, None when there is none."""

    @abstractmethod
    def delete(self, kind: SecretKind, *, destroy: bool = False) -> str:
        """Delete the stored value and the Secret made from it; says what went."""

    @abstractmethod
    def sync(self, kind: SecretKind, value: str | None = None, *, force_sync: bool = False) -> str:
        """Make the cluster's Secret hold the stored value (create-*-secret)."""

    @abstractmethod
    def unsync(self, kind: SecretKind) -> str:
        """Remove the cluster's Secret (delete-*-secret); the stored value stays."""

    def secret_value(self, kind: SecretKind) -> str | None:
        """What the cluster's Secret holds now."""
        return external.secret_value(self.kube, self.settings.namespace, kind)

    def ensure_namespace(self) -> None:
        """The namespace must exist before a Secret goes into it: refused (nothing written
        anywhere) unless this is install's backend, which creates it."""
        from vllmctl.cluster.kubectl import POD_SECURITY

        namespace = self.settings.namespace
        if self.kube.get("v1", "namespaces", None, namespace) is None:
            if not self.creates_namespace:
                raise UsageError(
                    f"namespace {namespace} does not exist (--namespace/VLLM_NAMESPACE): check the name, "
                    f"or create it with `vllmctl create-namespace -n {namespace}` (install creates it too)."
                )
            self.kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": namespace, "labels": {**POD_SECURITY, **MANAGED_BY}},
                },
                "namespaces",
            )


@dataclass
class KubernetesBackend(Backend):
    """Secrets written straight into the cluster, labelled as vllmctl's. With
    VLLM_VAULT_BACKUP=true a copy also goes to Vault, as the old tool kept one."""

    vault: Any = None
    name: str = "kubernetes"

    def set(self, kind: SecretKind, value: str, *, force_sync: bool = False) -> str:
        where = self._apply(kind, value)
        if self.vault is not None:
            _vault_write(self.vault, kind, self.settings, value)
            path = kind.vault_path(self.settings.vault_prefix)
            where += f", and a copy in Vault at {self.settings.vault_mount}/{path}"
        return where

    def _apply(self, kind: SecretKind, value: str) -> str:
        self.ensure_namespace()
        namespace = self.settings.namespace
        current = self.kube.get("v1", "secrets", namespace, kind.ref.secret_name)
        owners = [
            r
            for r in ((current or {}).get("metadata") or {}).get("ownerReferences") or []
            if r.get("kind") == "ExternalSecret"
        ]
        if owners:
            raise UsageError(
                f"Secret {kind.ref.secret_name} in namespace {namespace} is kept by ExternalSecret "
                f"{owners[0].get('name')}, which would overwrite a value written here: use "
                f"--secret-backend vault, or `vllmctl delete-{kind.command_suffix}-secret` first."
            )
        self.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": kind.ref.secret_name,
                    "namespace": namespace,
                    "labels": dict(MANAGED_BY),
                },
                "type": "Opaque",
                "data": {kind.ref.secret_key: base64.b64encode(value.encode()).decode()},
            },
            "secrets",
        )
        return f"Secret {kind.ref.secret_name} (key {kind.ref.secret_key}) in namespace {namespace}"

    def get(self, kind: SecretKind) -> str | None:
        return self.secret_value(kind)

    def delete(self, kind: SecretKind, *, destroy: bool = False) -> str:
        removed = self.kube.delete("v1", "secrets", self.settings.namespace, kind.ref.secret_name)
        text = f"Secret {kind.ref.secret_name}" + ("" if removed else " (there was none)")
        if self.vault is not None:
            path = kind.vault_path(self.settings.vault_prefix)
            self.vault.delete(path, destroy=destroy)
            text += f" and the Vault copy at {self.settings.vault_mount}/{path}"
        return text

    def sync(self, kind: SecretKind, value: str | None = None, *, force_sync: bool = False) -> str:
        if value is None:
            raise UsageError(f"the kubernetes backend keeps the {kind.label} only in the Secret; give it.")
        return self._apply(kind, value)

    def unsync(self, kind: SecretKind) -> str:
        removed = self.kube.delete("v1", "secrets", self.settings.namespace, kind.ref.secret_name)
        return f"Secret {kind.ref.secret_name}" + ("" if removed else " (there was none)")


@dataclass
class VaultBackend(Backend):
    """The value in Vault (KV v2); an ExternalSecret makes ESO copy it into the Secret."""

    vault: Any = None
    api_version: str = ""
    name: str = "vault"

    def _where(self, kind: SecretKind) -> str:
        return f"Vault {self.settings.vault_mount}/{kind.vault_path(self.settings.vault_prefix)}"

    def set(self, kind: SecretKind, value: str, *, force_sync: bool = False) -> str:
        self.ensure_namespace()  # before Vault changes: the sync needs the namespace
        changed = _vault_write(self.vault, kind, self.settings, value)
        try:
            self.sync(kind, value, force_sync=force_sync or changed)
        except ExternalError as e:
            # Say exactly what happened: the value is safe in Vault, the cluster is not in step.
            raise ExternalError(
                f"the {kind.label} was stored in {self._where(kind)}, but the cluster's Secret was not "
                f"updated: {e.message} Re-run the command once that is fixed; it converges."
            ) from e
        return (
            f"{self._where(kind)}, synced by ExternalSecret {kind.external_secret} "
            f"into Secret {kind.ref.secret_name}"
        )

    def get(self, kind: SecretKind) -> str | None:
        found = self.vault.read(kind.vault_path(self.settings.vault_prefix))
        if found is None:
            return None
        value = found[0].get(kind.vault_key)
        return None if value is None else str(value)

    def delete(self, kind: SecretKind, *, destroy: bool = False) -> str:
        removed = self.vault.delete(kind.vault_path(self.settings.vault_prefix), destroy=destroy)
        external.delete(self.kube, kind, self.settings, self.api_version)
        how = "destroyed (every version)" if destroy else "deleted (recoverable with `vault kv undelete`)"
        state = how if removed else "not there"
        return (
            f"{self._where(kind)} {state}; ExternalSecret {kind.external_secret} "
            f"and Secret {kind.ref.secret_name} removed"
        )

    def sync(self, kind: SecretKind, value: str | None = None, *, force_sync: bool = False) -> str:
        if value is None:
            value = self.get(kind)
            if value is None:
                raise UsageError(
                    f"Vault has no {kind.label} at {self._where(kind)[6:]}; "
                    f"store one with `vllmctl set-{kind.command_suffix}`."
                )
        self.ensure_namespace()
        external.apply_and_wait(
            self.kube, kind, self.settings, self.api_version, expected=value, force_sync=force_sync
        )
        return (
            f"ExternalSecret {kind.external_secret} -> Secret {kind.ref.secret_name} "
            f"in namespace {self.settings.namespace}"
        )

    def unsync(self, kind: SecretKind) -> str:
        external.delete(self.kube, kind, self.settings, self.api_version)
        return (
            f"ExternalSecret {kind.external_secret} and Secret {kind.ref.secret_name} (Vault keeps the value)"
        )


def _vault_write(vault: Any, kind: SecretKind, settings: Any, value: str) -> bool:
    """Write the value, keeping the secret's other keys, with check-and-set against the
    version just read. False when Vault already held exactly this value."""
    path = kind.vault_path(settings.vault_prefix)
    found = vault.read(path)
    data, version = (dict(found[0]), found[1]) if found else ({}, 0)
    if data.get(kind.vault_key) == value:
        return False
    data[kind.vault_key] = value
    vault.write(path, data, cas=version)
    return True


def choose(settings: Any, kube: Any) -> Backend:
    """The backend the settings ask for; `auto` picks Vault + ESO when the cluster
    serves ExternalSecrets and Vault accepts the token, else Kubernetes Secrets."""
    mode = str(settings.secret_backend or "auto").strip().lower()
    if mode not in BACKENDS:
        raise UsageError(
            f"--secret-backend/VLLM_SECRET_BACKEND={settings.secret_backend!r} is not one of "
            "auto, vault, kubernetes."
        )
    if mode == "kubernetes":
        return KubernetesBackend(
            settings, kube, "VLLM_SECRET_BACKEND/--secret-backend says so", vault=_backup_vault(settings)
        )
    api_version = external.served_version(kube)
    if mode == "vault":
        if api_version is None:
            raise ExternalError(
                "--secret-backend vault needs the External Secrets Operator, but the cluster does not serve "
                "ExternalSecrets (external-secrets.io): install the operator, or use "
                "--secret-backend kubernetes."
            )
        vault = _vault(settings)
        vault.check()
        backend = VaultBackend(
            settings,
            kube,
            "VLLM_SECRET_BACKEND/--secret-backend says so",
            vault=vault,
            api_version=api_version,
        )
        backend.notes += vault.warnings
        return backend
    if api_version is None:
        return KubernetesBackend(
            settings,
            kube,
            "the cluster does not serve ExternalSecrets (no External Secrets Operator)",
            vault=_backup_vault(settings),
        )
    if not settings.vault_addr:
        return KubernetesBackend(
            settings,
            kube,
            "the cluster serves ExternalSecrets, but VAULT_ADDR is not set",
            vault=_backup_vault(settings),
        )
    try:
        vault = _vault(settings)
        vault.check()
    except (ExternalError, UsageError) as e:
        # Vault is configured and the cluster uses ESO: writing Kubernetes Secrets instead
        # would be overwritten by ESO, so say what is wrong rather than fall back.
        raise type(e)(
            f"{e.message} (auto chose Vault: the cluster serves ExternalSecrets and VAULT_ADDR is set; "
            "use --secret-backend kubernetes to keep secrets in Kubernetes Secrets only)"
        ) from e
    backend = VaultBackend(
        settings,
        kube,
        f"the cluster serves ExternalSecrets ({api_version}) and Vault at {settings.vault_addr} "
        "accepts the token",
        vault=vault,
        api_version=api_version,
    )
    backend.notes += vault.warnings
    return backend


def _vault(settings: Any) -> Any:
    from vllmctl.secrets.vault import VaultStore, vault_config

    return VaultStore(vault_config(settings), mount=settings.vault_mount)


def _backup_vault(settings: Any) -> Any:
    """With VLLM_VAULT_BACKUP=true, the Vault that keeps a copy (it must work)."""
    if not settings.vault_backup:
        return None
    vault = _vault(settings)
    vault.check()
    return vault
