"""doctor's checks of what vllmctl runs on: helm and kubectl, the cluster and what RBAC
allows, the namespace's Pod Security level, and the secret store (ESO and Vault)."""

from __future__ import annotations

import json
from typing import Any

from vllmctl.cluster import tools
from vllmctl.core.errors import ExternalError, UsageError, VllmctlError
from vllmctl.core.findings import FAIL, OK, SKIP, WARN, Report

# What install, upgrade and the day-2 commands do in the namespace, as (verb, resource,
# API group, why). helm creates everything the chart renders, the router's Role included.
NAMESPACED_PERMISSIONS: tuple[tuple[str, str, str, str], ...] = (
    ("create", "deployments", "apps", "helm creates the engines and the router"),
    ("patch", "deployments", "apps", "upgrades and rotate-api-key restart them"),
    ("create", "services", "", "helm creates the engine and router Services"),
    ("create", "persistentvolumeclaims", "", "helm creates the model caches"),
    ("create", "configmaps", "", "the chart's configuration"),
    ("create", "secrets", "", "helm keeps its release in Secrets; the HF token and API key"),
    ("create", "serviceaccounts", "", "the router's service account"),
    ("create", "roles", "rbac.authorization.k8s.io", "the router's Role (it watches pods)"),
    ("create", "rolebindings", "rbac.authorization.k8s.io", "the router's RoleBinding"),
    ("list", "pods", "", "status and logs"),
    ("get", "pods/log", "", "logs and status's crash reasons"),
    ("create", "pods/portforward", "", "port-forward, list-api-models, test-completions"),
    ("list", "events", "", "status explains Pending pods"),
)
ESO_PERMISSION = (
    "patch",
    "externalsecrets",
    "external-secrets.io",
    "the vault backend applies ExternalSecrets",
)

# Pod Security levels the engines' pods pass: they run as root (the vLLM image does) and
# mount shared memory; "restricted" refuses both.
PASSING_LEVELS = {"privileged", "baseline"}
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"


def check_tools(report: Report, settings: Any) -> None:
    from vllmctl.cluster.helm import HOW_TO_GET_HELM, MIN_VERSION, Helm
    from vllmctl.cluster.kubectl import HOW_TO_GET_KUBECTL

    try:
        helm = Helm(tools.find_tool("helm", settings.helm, HOW_TO_GET_HELM), "", "")
        version = helm.version
    except VllmctlError as e:
        report.add("tools", "helm", FAIL, e.message, HOW_TO_GET_HELM)
    else:
        shown = ".".join(map(str, version))
        if version < MIN_VERSION:
            report.add("tools", "helm", FAIL, f"helm {shown} is too old", HOW_TO_GET_HELM)
        else:
            report.add("tools", "helm", OK, f"helm {shown} ({helm.binary})")
    try:
        kubectl = tools.find_tool("kubectl", settings.kubectl, HOW_TO_GET_KUBECTL)
        client = json.loads(tools.run([kubectl, "version", "--client", "-o", "json"]))
        shown = str((client.get("clientVersion") or {}).get("gitVersion") or "unknown version")
    except (VllmctlError, ValueError) as e:
        message = e.message if isinstance(e, VllmctlError) else "kubectl version gave no JSON"
        report.add("tools", "kubectl", FAIL, message, HOW_TO_GET_KUBECTL)
    else:
        report.add("tools", "kubectl", OK, f"kubectl {shown} ({kubectl})")


def connect(report: Report, settings: Any) -> Any:
    """The cluster connection, or None (with a failed check saying why)."""
    from vllmctl.cluster.kube import Kube

    try:
        kube = Kube.from_settings(settings)
    except VllmctlError as e:
        report.add(
            "cluster", "context", FAIL, e.message, "fix the kubeconfig, or choose a context with --context"
        )
        return None
    try:
        version = kube.server_version()
    except VllmctlError as e:
        kube.close()
        report.add(
            "cluster", "context", FAIL, e.message, "check that the cluster is up and reachable from here"
        )
        return None
    report.add(
        "cluster", "context", OK, f"context {kube.context}: {kube.server} answers (Kubernetes {version})"
    )
    return kube


def check_permissions(report: Report, kube: Any, settings: Any, *, eso: bool) -> None:
    namespace = settings.namespace
    wanted = list(NAMESPACED_PERMISSIONS) + ([ESO_PERMISSION] if eso else [])
    denied = []
    try:
        for verb, resource, group, why in wanted:
            if not kube.can_i(verb, resource, namespace, group):
                denied.append((verb, resource, group, why))
        may_list_nodes = kube.can_i("list", "nodes", None)
    except VllmctlError as e:
        report.add("cluster", "permissions", WARN, f"could not ask the API server: {e.message}")
        return
    if denied:
        lines = "; ".join(
            f"{verb} {_qualified(resource, group)} ({why})" for verb, resource, group, why in denied
        )
        verb, resource, group, _ = denied[0]
        report.add(
            "cluster",
            "permissions",
            FAIL,
            f"in namespace {namespace} you may not: {lines}",
            f"ask a cluster admin for a Role granting these (check with: kubectl auth can-i {verb} "
            f"{_qualified(resource, group)} -n {namespace})",
        )
    else:
        report.add(
            "cluster",
            "permissions",
            OK,
            f"all {len(wanted)} actions vllmctl needs in {namespace} are allowed",
        )
    if not may_list_nodes:
        report.add(
            "cluster",
            "list nodes",
            WARN,
            "you may not list nodes, so GPU fit cannot be checked",
            "ask for a ClusterRole with `list nodes` (read-only), or deploy with --force",
        )


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def check_namespace(report: Report, kube: Any, settings: Any) -> None:
    namespace = settings.namespace
    try:
        found = kube.get("v1", "namespaces", None, namespace)
    except VllmctlError as e:
        report.add("cluster", "namespace", WARN, f"could not read namespace {namespace}: {e.message}")
        return
    if found is None:
        report.add(
            "cluster",
            "namespace",
            WARN,
            f"namespace {namespace} does not exist yet",
            "`vllmctl install` creates it (or `vllmctl create-namespace`), with Pod Security baseline",
        )
        return
    labels = (found.get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE_LABEL)
    if level is None:
        report.add(
            "cluster",
            "namespace",
            OK,
            f"namespace {namespace} exists, without a Pod Security label (the cluster's default applies)",
        )
    elif level in PASSING_LEVELS:
        report.add("cluster", "namespace", OK, f"namespace {namespace} exists, Pod Security enforce={level}")
    else:
        report.add(
            "cluster",
            "namespace",
            FAIL,
            f"namespace {namespace} enforces Pod Security {level!r}, which refuses the engines' pods "
            "(vLLM runs as root and mounts shared memory)",
            f"kubectl label namespace {namespace} {ENFORCE_LABEL}=baseline --overwrite "
            "(or `vllmctl create-namespace`)",
        )


def check_secret_store(report: Report, kube: Any, settings: Any) -> bool:
    """ESO and its store, then Vault. Returns whether ExternalSecrets are served."""
    from vllmctl.secrets.external import served_version

    mode = str(settings.secret_backend or "auto").strip().lower()
    if mode == "kubernetes":
        report.add(
            "secrets", "backend", OK, "kubernetes: secrets are Kubernetes Secrets (VLLM_SECRET_BACKEND)"
        )
        return False
    try:
        api_version = served_version(kube)
    except VllmctlError as e:
        report.add("secrets", "external secrets", WARN, f"could not ask for ExternalSecrets: {e.message}")
        return False
    if api_version is None:
        if mode == "vault":
            report.add(
                "secrets",
                "external secrets",
                FAIL,
                "the cluster does not serve ExternalSecrets, but the vault backend needs them",
                "install the External Secrets Operator, or set VLLM_SECRET_BACKEND=kubernetes",
            )
        else:
            report.add(
                "secrets",
                "external secrets",
                OK,
                "the External Secrets Operator is not installed: secrets are Kubernetes Secrets",
            )
        return False
    report.add("secrets", "external secrets", OK, f"the cluster serves ExternalSecrets ({api_version})")
    vault_wanted = mode == "vault" or bool(settings.vault_addr)
    _check_store(report, kube, settings, api_version, vault_wanted)
    _check_vault(report, settings, wanted=vault_wanted)
    return True


def _check_store(report: Report, kube: Any, settings: Any, api_version: str, wanted: bool) -> None:
    kind, name = settings.secret_store_kind, settings.secret_store
    plural = "clustersecretstores" if kind == "ClusterSecretStore" else "secretstores"
    namespace = None if kind == "ClusterSecretStore" else settings.namespace
    try:
        store = kube.get(api_version, plural, namespace, name)
    except VllmctlError as e:
        report.add("secrets", "secret store", WARN, f"could not read {kind} {name}: {e.message}")
        return
    if store is None:
        report.add(
            "secrets",
            "secret store",
            FAIL if wanted else WARN,
            f"there is no {kind} {name}",
            "create it (docs/secrets.md shows one for Vault), or set VLLM_SECRET_STORE to yours",
        )
        return
    conditions = (store.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") == "True":
        report.add("secrets", "secret store", OK, f"{kind} {name} is Ready")
        return
    said = f": {ready.get('reason')}: {ready.get('message')}" if ready else " (no Ready condition yet)"
    report.add(
        "secrets",
        "secret store",
        FAIL if wanted else WARN,
        f"{kind} {name} is not Ready{said}",
        f"kubectl describe {kind.lower()} {name} shows why; ESO cannot sync secrets until it is Ready",
    )


def _check_vault(report: Report, settings: Any, *, wanted: bool) -> None:
    from vllmctl.secrets.specs import API_KEY, HF_TOKEN

    if not settings.vault_addr:
        status = FAIL if wanted else SKIP
        report.add("secrets", "vault", status, "VAULT_ADDR is not set", "export VAULT_ADDR and VAULT_TOKEN")
        return
    from vllmctl.secrets.vault import VaultStore, vault_config

    try:
        vault = VaultStore(vault_config(settings), mount=settings.vault_mount)
        vault.check()
        paths = [kind.vault_path(settings.vault_prefix) for kind in (HF_TOKEN, API_KEY)]
        capabilities = vault.capabilities(paths)
    except (ExternalError, UsageError) as e:
        report.add(
            "secrets",
            "vault",
            FAIL,
            e.message,
            "fix Vault (or VAULT_ADDR/VAULT_TOKEN), or set VLLM_SECRET_BACKEND=kubernetes",
        )
        return
    for warning in vault.warnings:
        report.add(
            "secrets", "vault tls", WARN, warning, "use Vault's https address and verify its certificate"
        )
    needed = {"read", "create", "update"}
    lacking = {
        vault.where(path): sorted(needed - set(found))
        for path, found in capabilities.items()
        if "root" not in found and not needed <= set(found)
    }
    if lacking:
        listed = "; ".join(f"{where}: {', '.join(missing)}" for where, missing in lacking.items())
        report.add(
            "secrets",
            "vault",
            FAIL,
            f"Vault at {settings.vault_addr} is unsealed and the token valid, but it lacks {listed}",
            "ask for a policy granting read, create and update on those paths",
        )
        return
    report.add(
        "secrets",
        "vault",
        OK,
        f"Vault at {settings.vault_addr}: unsealed, token valid, read/write on "
        + ", ".join(vault.where(p) for p in capabilities),
    )
