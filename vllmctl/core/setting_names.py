"""The names of vllmctl's settings and the rules for the Kubernetes names they hold.

A leaf module (it imports nothing of vllmctl): the feature modules, `chart` and
`environments` name a setting or check a name from here, so none of them has to import
`vllmctl.settings`, which sits above them (it applies environments and asks `chart` for
the chart version). `vllmctl.settings` imports these names back, so `from
vllmctl.settings import ENV_NAMESPACE` keeps working.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Environment variable names: constants here, referenced by option help texts.
ENV_MODELS_FILE = "VLLM_MODELS_FILE"
ENV_ENVIRONMENT = "VLLM_ENV"
ENV_REPLICA_COUNT = "VLLM_REPLICA_COUNT"
ENV_NAMESPACE = "VLLM_NAMESPACE"
ENV_CONTEXT = "VLLM_KUBE_CONTEXT"
ENV_KUBE_TIMEOUT = "VLLM_KUBE_TIMEOUT"
ENV_RELEASE = "VLLM_RELEASE"
ENV_CHART = "VLLM_CHART"
ENV_CHART_REPO = "VLLM_CHART_REPO"
ENV_CHART_VERSION = "VLLM_CHART_VERSION"
ENV_HELM_TIMEOUT = "VLLM_HELM_TIMEOUT"
ENV_MODEL_IMAGE = "VLLM_MODEL_IMAGE"
ENV_MODEL_TAG = "VLLM_MODEL_TAG"
ENV_MAX_STARTUP_SECONDS = "VLLM_MAX_STARTUP_SECONDS"
ENV_STORAGE_CLASS = "VLLM_STORAGE_CLASS"
ENV_MODEL_CACHE_CLAIM = "VLLM_MODEL_CACHE_CLAIM"
ENV_S3_ENDPOINT = "VLLM_S3_ENDPOINT"
ENV_S3_IMAGE = "VLLM_S3_IMAGE"
ENV_OCI_METHOD = "VLLM_OCI_METHOD"
ENV_HF_TOKEN = "VLLM_HF_TOKEN"
ENV_API_KEY = "VLLM_API_KEY"
ENV_HF_TOKEN_FROM_SECRET = "VLLM_HF_TOKEN_FROM_SECRET"
ENV_API_KEY_FROM_SECRET = "VLLM_API_KEY_FROM_SECRET"
ENV_ROUTER_ENABLED = "VLLM_ROUTER_ENABLED"
ENV_ROUTER_REPLICAS = "VLLM_ROUTER_REPLICAS"
ENV_ROUTER_IMAGE = "VLLM_ROUTER_IMAGE"
ENV_ROUTER_TAG = "VLLM_ROUTER_TAG"
ENV_ROUTER_REQUEST_CPU = "VLLM_ROUTER_REQUEST_CPU"
ENV_ROUTER_REQUEST_MEMORY = "VLLM_ROUTER_REQUEST_MEMORY"
ENV_ROUTER_LIMIT_MEMORY = "VLLM_ROUTER_LIMIT_MEMORY"
ENV_ROUTER_SERVICE_TYPE = "VLLM_ROUTER_SERVICE_TYPE"
ENV_ROUTER_NODE_PORT = "VLLM_ROUTER_NODE_PORT"
ENV_ROUTING_LOGIC = "VLLM_ROUTING_LOGIC"
ENV_ROUTER_SESSION_KEY = "VLLM_ROUTER_SESSION_KEY"
ENV_ROUTER_PREFIX_MIN_MATCH = "VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH"
# The router's own autoscaling (its HPA) and its CPU limit (docs/routing.md, "Router scaling").
ENV_ROUTER_AUTOSCALING = "VLLM_ROUTER_AUTOSCALING"
ENV_ROUTER_MIN_REPLICAS = "VLLM_ROUTER_MIN_REPLICAS"
ENV_ROUTER_MAX_REPLICAS = "VLLM_ROUTER_MAX_REPLICAS"
ENV_ROUTER_TARGET_CPU = "VLLM_ROUTER_TARGET_CPU_UTILIZATION"
ENV_ROUTER_LIMIT_CPU = "VLLM_ROUTER_LIMIT_CPU"
ENV_INGRESS_HOST = "VLLM_INGRESS_HOST"
ENV_INGRESS_CLASS = "VLLM_INGRESS_CLASS"
ENV_INGRESS_TLS_SECRET = "VLLM_INGRESS_TLS_SECRET"
ENV_MONITORING = "VLLM_MONITORING"
ENV_GRAFANA_DASHBOARDS = "VLLM_GRAFANA_DASHBOARDS"
ENV_NETWORK_POLICY = "VLLM_NETWORK_POLICY"
ENV_NETWORK_POLICY_NAMESPACES = "VLLM_NETWORK_POLICY_NAMESPACES"
ENV_NETWORK_POLICY_INGRESS_NAMESPACE = "VLLM_NETWORK_POLICY_INGRESS_NAMESPACE"
ENV_NETWORK_POLICY_PROMETHEUS_NAMESPACE = "VLLM_NETWORK_POLICY_PROMETHEUS_NAMESPACE"
ENV_PROMETHEUS_URL = "VLLM_PROMETHEUS_URL"
ENV_SECRET_BACKEND = "VLLM_SECRET_BACKEND"
ENV_VAULT_MOUNT = "VLLM_VAULT_MOUNT"
ENV_VAULT_PREFIX = "VLLM_VAULT_PREFIX"
ENV_SECRET_STORE = "VLLM_SECRET_STORE"
ENV_SECRET_STORE_KIND = "VLLM_SECRET_STORE_KIND"
ENV_VAULT_BACKUP = "VLLM_VAULT_BACKUP"
ENV_HELM = "VLLM_HELM"
ENV_KUBECTL = "VLLM_KUBECTL"
ENV_TEMPLATES_DIR = "VLLM_TEMPLATES_DIR"
ENV_GPU_TYPE = "VLLM_GPU_TYPE"
ENV_GPU_MEMORY = "VLLM_GPU_MEMORY"
# KV-cache offload (docs/kv-cache.md): the engine image of models with kvCache, the LMCache
# cache server and the shared storage.
ENV_LMCACHE_IMAGE = "VLLM_LMCACHE_IMAGE"
ENV_LMCACHE_TAG = "VLLM_LMCACHE_TAG"
ENV_CACHE_SERVER = "VLLM_CACHE_SERVER"
ENV_CACHE_SERVER_MEMORY = "VLLM_CACHE_SERVER_MEMORY"
ENV_SHARED_STORAGE_SIZE = "VLLM_SHARED_STORAGE_SIZE"
ENV_SHARED_STORAGE_CLASS = "VLLM_SHARED_STORAGE_CLASS"
ENV_SHARED_STORAGE_NFS = "VLLM_SHARED_STORAGE_NFS"
ENV_SHARED_STORAGE_HOST_PATH = "VLLM_SHARED_STORAGE_HOST_PATH"
# KEDA's Prometheus for models.yaml's autoscaling: the chart's default trigger's address
# (a Prometheus Operator's `prometheus-operated` Service in namespace monitoring).
DEFAULT_PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090"


class Resolved(NamedTuple):
    """A setting's raw text and where it came from: "flag", "env", "default" or "vllmctl.yaml (env NAME)"."""

    raw: str | None
    source: str


# ---------------------------------------------------------------- names Kubernetes checks
# Checked when a command uses the setting (and by `config`), from any source, so that
# a bad name stops before helm or the API server refuses it half-way (docs/environments.md).

# A DNS-1123 label, as the API server checks namespace names.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# A DNS-1123 subdomain, as Kubernetes checks most object names (Secrets, claims, classes)
# and Ingress hosts.
SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SUBDOMAIN_MAX = 253
_LABEL_MAX = 63

# helm's own rule for release names (lowercase DNS labels joined by dots, at most 53),
# narrowed: the chart names Services `<release>-router-service`, which must be DNS-1035
# labels, so no dots and a letter first.
_RELEASE_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
RELEASE_MAX = 53


def namespace_problem(name: str) -> str | None:
    """Why `name` cannot be a namespace name (a DNS-1123 label), or None."""
    if not name:
        return "an empty name (two commas, or one at an end?); list names as ns1,ns2"
    if len(name) > _LABEL_MAX:
        return f"{name!r} is {len(name)} characters long; a namespace name has at most {_LABEL_MAX}"
    if not _DNS_LABEL.fullmatch(name):
        return (
            f"{name!r} is not a namespace name: lower-case letters, digits and '-', starting and "
            "ending with a letter or digit (Kubernetes' DNS-1123 label rule)"
        )
    return None


def release_name_problem(value: str) -> str | None:
    if len(value) > RELEASE_MAX:
        return f"{value!r} is {len(value)} characters; helm allows at most {RELEASE_MAX} in a release name"
    if not _RELEASE_RE.fullmatch(value):
        return (
            f"{value!r} is not a release name: lower-case letters, digits and '-', starting with a "
            "letter and ending with a letter or digit (helm's rule, and the chart's Service names)"
        )
    return None


def context_name_problem(value: str) -> str | None:
    """A kubeconfig context name may be any text (kubectl accepts 'team/prod', 'arn:...'),
    so only names that cannot be one are refused: empty, or holding control characters."""
    if not value.strip():
        return "is empty; give a context of your kubeconfig (kubectl config get-contexts)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return f"{value!r} holds a control character; give a context of your kubeconfig"
    return None


NAME_CHECKS = {
    "namespace": namespace_problem,  # a DNS-1123 label: the API server refuses others with 422
    "release": release_name_problem,
    "context": context_name_problem,
}


def name_problem(setting: str, raw: str | None) -> str | None:
    """Why `raw` cannot be the value of the name setting `setting`, or None (also when unset)."""
    check = NAME_CHECKS.get(setting)
    return check(raw) if check is not None and raw is not None else None


def as_given(env: str, key: str | None, source: str) -> str:
    """A setting as the operator gave it, for a message: its variable (from a flag, the
    environment or the default, or when vllmctl.yaml has no key for it), else its key
    where vllmctl.yaml has it. `source` is as settings tells it: "env", "vllmctl.yaml (env
    prod)", ..."""
    if key is None or source in ("flag", "env", "default"):
        return env
    path, _, environment = source.partition(" (env ")
    return f"{key} of environment {environment.rstrip(')')} in {path}" if environment else f"{key} in {path}"


def given_as(env: str, key: str | None, source: str, value: object) -> str:
    """`VLLM_X=value`, or `key: value (where)` for a value from vllmctl.yaml."""
    named = as_given(env, key, source)
    if named == env:
        return f"{named}={value}"
    key_text, _, where = named.partition(" ")
    return f"{key_text}: {value} ({where})"
