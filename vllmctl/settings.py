"""Every setting vllmctl reads, resolved in one place: flag, then environment, then default.

The names and defaults of the old justfile's VLLM_* variables are kept so existing
shell set-ups keep working. Each resolved value remembers where it came from, which
`vllmctl config` shows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

# The names, `Resolved` and the name rules live in setting_names.py, a leaf module, so that
# the modules this one builds on (environments, chart, the features) need not import it.
from vllmctl.core.setting_names import (
    DEFAULT_PROMETHEUS_URL,
    ENV_API_KEY,
    ENV_API_KEY_FROM_SECRET,
    ENV_CACHE_SERVER,
    ENV_CACHE_SERVER_MEMORY,
    ENV_CHART,
    ENV_CHART_REPO,
    ENV_CHART_VERSION,
    ENV_CONTEXT,
    ENV_ENVIRONMENT,
    ENV_GPU_MEMORY,
    ENV_GPU_TYPE,
    ENV_GRAFANA_DASHBOARDS,
    ENV_HELM,
    ENV_HELM_TIMEOUT,
    ENV_HF_TOKEN,
    ENV_HF_TOKEN_FROM_SECRET,
    ENV_INGRESS_CLASS,
    ENV_INGRESS_HOST,
    ENV_INGRESS_TLS_SECRET,
    ENV_KUBE_TIMEOUT,
    ENV_KUBECTL,
    ENV_LMCACHE_IMAGE,
    ENV_LMCACHE_TAG,
    ENV_MAX_STARTUP_SECONDS,
    ENV_MODEL_CACHE_CLAIM,
    ENV_MODEL_IMAGE,
    ENV_MODEL_TAG,
    ENV_MODELS_FILE,
    ENV_MONITORING,
    ENV_NAMESPACE,
    ENV_NETWORK_POLICY,
    ENV_NETWORK_POLICY_INGRESS_NAMESPACE,
    ENV_NETWORK_POLICY_NAMESPACES,
    ENV_NETWORK_POLICY_PROMETHEUS_NAMESPACE,
    ENV_OCI_METHOD,
    ENV_PROMETHEUS_URL,
    ENV_RELEASE,
    ENV_REPLICA_COUNT,
    ENV_ROUTER_AUTOSCALING,
    ENV_ROUTER_ENABLED,
    ENV_ROUTER_IMAGE,
    ENV_ROUTER_LIMIT_CPU,
    ENV_ROUTER_LIMIT_MEMORY,
    ENV_ROUTER_MAX_REPLICAS,
    ENV_ROUTER_MIN_REPLICAS,
    ENV_ROUTER_NODE_PORT,
    ENV_ROUTER_PREFIX_MIN_MATCH,
    ENV_ROUTER_REPLICAS,
    ENV_ROUTER_REQUEST_CPU,
    ENV_ROUTER_REQUEST_MEMORY,
    ENV_ROUTER_SERVICE_TYPE,
    ENV_ROUTER_SESSION_KEY,
    ENV_ROUTER_TAG,
    ENV_ROUTER_TARGET_CPU,
    ENV_ROUTING_LOGIC,
    ENV_S3_ENDPOINT,
    ENV_S3_IMAGE,
    ENV_SECRET_BACKEND,
    ENV_SECRET_STORE,
    ENV_SECRET_STORE_KIND,
    ENV_SHARED_STORAGE_CLASS,
    ENV_SHARED_STORAGE_HOST_PATH,
    ENV_SHARED_STORAGE_NFS,
    ENV_SHARED_STORAGE_SIZE,
    ENV_STORAGE_CLASS,
    ENV_TEMPLATES_DIR,
    ENV_VAULT_BACKUP,
    ENV_VAULT_MOUNT,
    ENV_VAULT_PREFIX,
    NAME_CHECKS,
    Resolved,
    name_problem,
)


class SettingSpec(NamedTuple):
    """One setting: its attribute name, env variable, default and whether it is secret."""

    name: str
    env: str
    default: str | None
    help: str
    secret: bool = False
    kind: str = (
        "str"  # "str", "bool", "int", "path", "duration" (Go) or "seconds": how the raw text is parsed
    )


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("models_file", ENV_MODELS_FILE, "models.yaml", "the models catalog", kind="path"),
    # An environment: models.NAME.yaml merged over models.yaml, and NAME's settings from
    # vllmctl.yaml next to it, below flags and env variables (docs/environments.md).
    SettingSpec("env", ENV_ENVIRONMENT, None, "environment: models.NAME.yaml and vllmctl.yaml's NAME"),
    SettingSpec(
        "replica_count", ENV_REPLICA_COUNT, None, "every model's replicaCount (e.g. 1 in dev)", kind="int"
    ),
    SettingSpec("namespace", ENV_NAMESPACE, "vllm", "Kubernetes namespace"),
    SettingSpec("context", ENV_CONTEXT, None, "kube context (default: kubeconfig's current)"),
    SettingSpec(
        "kube_timeout",
        ENV_KUBE_TIMEOUT,
        "30s",
        "Kubernetes API: connecting, and each answer (seconds, or 30s, 2m)",
        kind="seconds",  # parsed to a float: a plain number of seconds or a Go duration
    ),
    SettingSpec("release", ENV_RELEASE, "vllm", "helm release name"),
    SettingSpec("chart", ENV_CHART, "vllm/vllm-stack", "chart: repo/name, directory, .tgz or oci://"),
    SettingSpec(
        "chart_repo",
        ENV_CHART_REPO,
        "https://vllm-project.github.io/production-stack",
        "helm repository URL of the chart",
    ),
    # No default here: vllmctl.chart.version decides (a local chart's Chart.yaml, the deployed
    # release's version, else the newest tested); `Settings.chart_version` is that decision.
    SettingSpec(
        "chart_version",
        ENV_CHART_VERSION,
        None,
        "chart version (default: a local chart's own, the deployed release's, else the newest tested)",
    ),
    SettingSpec(
        "helm_timeout",
        ENV_HELM_TIMEOUT,
        "30m",
        "helm --timeout (a duration: 10m, 1h30m, 90s)",
        kind="duration",
    ),
    SettingSpec("model_image", ENV_MODEL_IMAGE, "vllm/vllm-openai", "engine image repository"),
    SettingSpec("model_tag", ENV_MODEL_TAG, "latest", "engine image tag"),
    SettingSpec(
        "max_startup_seconds",
        ENV_MAX_STARTUP_SECONDS,
        None,
        "startup budget of models without maxStartupSeconds (default: by model size)",
        kind="int",
    ),
    SettingSpec("storage_class", ENV_STORAGE_CLASS, "", "storage class of model PVCs"),
    # Model sources (docs/model-sources.md); checked when the values are rendered.
    SettingSpec(
        "model_cache_claim",
        ENV_MODEL_CACHE_CLAIM,
        None,
        "an existing (RWX) claim every model caches in, instead of a PVC per model",
    ),
    SettingSpec("s3_endpoint", ENV_S3_ENDPOINT, None, "S3-compatible endpoint of s3:// models (default AWS)"),
    SettingSpec("s3_image", ENV_S3_IMAGE, "rclone/rclone:1.72.0", "image that fetches s3:// models"),
    SettingSpec("oci_method", ENV_OCI_METHOD, "copy", "oci:// models: copy (init container) or image"),
    SettingSpec("hf_token", ENV_HF_TOKEN, None, "HuggingFace token", secret=True),
    SettingSpec("api_key", ENV_API_KEY, None, "API key of the endpoint", secret=True),
    SettingSpec(
        "hf_token_from_secret",
        ENV_HF_TOKEN_FROM_SECRET,
        "false",
        "reference the hf-token Secret in values",
        kind="bool",
    ),
    SettingSpec(
        "api_key_from_secret",
        ENV_API_KEY_FROM_SECRET,
        "false",
        "reference the vllm-api-key Secret in values",
        kind="bool",
    ),
    SettingSpec("router_enabled", ENV_ROUTER_ENABLED, "true", "deploy the router", kind="bool"),
    SettingSpec("router_replicas", ENV_ROUTER_REPLICAS, "1", "router replicas", kind="int"),
    SettingSpec("router_image", ENV_ROUTER_IMAGE, "lmcache/lmstack-router", "router image repository"),
    # No default here either: the tag released with the chart version (vllmctl.chart.version).
    SettingSpec("router_tag", ENV_ROUTER_TAG, None, "router image tag (default: the chart version's own)"),
    SettingSpec("router_request_cpu", ENV_ROUTER_REQUEST_CPU, "100m", "router CPU request"),
    SettingSpec("router_request_memory", ENV_ROUTER_REQUEST_MEMORY, "256Mi", "router memory request"),
    SettingSpec("router_limit_memory", ENV_ROUTER_LIMIT_MEMORY, "768Mi", "router memory limit"),
    # Exposure and monitoring are release-wide, so settings rather than models.yaml fields
    # (docs/exposure.md, docs/monitoring.md); checked when the values are rendered.
    SettingSpec(
        "router_service_type",
        ENV_ROUTER_SERVICE_TYPE,
        "ClusterIP",
        "router Service type: ClusterIP, NodePort or LoadBalancer",
    ),
    SettingSpec("router_node_port", ENV_ROUTER_NODE_PORT, None, "fixed node port (NodePort, chart 0.1.11+)"),
    # The router's routing (docs/routing.md); checked when the values are rendered.
    SettingSpec(
        "routing_logic",
        ENV_ROUTING_LOGIC,
        "roundrobin",
        "router routing: roundrobin, session, prefixaware, kvaware, disaggregated_prefill",
    ),
    SettingSpec(
        "router_session_key", ENV_ROUTER_SESSION_KEY, None, "header naming a session (session routing)"
    ),
    SettingSpec(
        "router_prefix_min_match_length",
        ENV_ROUTER_PREFIX_MIN_MATCH,
        None,
        "shortest prefix match prefixaware reuses (chart 0.1.12+)",
    ),
    # The router's own autoscaling: the chart's HPA (docs/routing.md, "Router scaling");
    # checked when the values are rendered (vllmctl.features.router_scaling).
    SettingSpec(
        "router_autoscaling", ENV_ROUTER_AUTOSCALING, "false", "the router's HPA (on CPU use)", kind="bool"
    ),
    SettingSpec("router_min_replicas", ENV_ROUTER_MIN_REPLICAS, None, "router HPA's minReplicas (default 1)"),
    SettingSpec("router_max_replicas", ENV_ROUTER_MAX_REPLICAS, None, "router HPA's maxReplicas (default 3)"),
    SettingSpec(
        "router_target_cpu",
        ENV_ROUTER_TARGET_CPU,
        None,
        "router HPA's target CPU utilization, % of the CPU request (default 80)",
    ),
    SettingSpec("router_limit_cpu", ENV_ROUTER_LIMIT_CPU, None, "router CPU limit (default: none)"),
    SettingSpec("ingress_host", ENV_INGRESS_HOST, None, "host name of a router Ingress (none without)"),
    SettingSpec("ingress_class", ENV_INGRESS_CLASS, None, "IngressClass of that Ingress"),
    SettingSpec("ingress_tls_secret", ENV_INGRESS_TLS_SECRET, None, "TLS Secret of that Ingress (https)"),
    SettingSpec(
        "monitoring", ENV_MONITORING, "false", "ServiceMonitors for engines and router (0.1.11+)", kind="bool"
    ),
    SettingSpec(
        "grafana_dashboards",
        ENV_GRAFANA_DASHBOARDS,
        "false",
        "the chart's Grafana dashboards (0.1.11+)",
        kind="bool",
    ),
    # Network policy: release-wide too (docs/network-policy.md); checked when rendered.
    SettingSpec(
        "network_policy",
        ENV_NETWORK_POLICY,
        "false",
        "NetworkPolicies: engines from the router only, the router from listed namespaces (0.1.10+)",
        kind="bool",
    ),
    SettingSpec(
        "network_policy_namespaces",
        ENV_NETWORK_POLICY_NAMESPACES,
        None,
        "namespaces whose pods may call the router, e.g. apps,batch (empty: only its own)",
    ),
    SettingSpec(
        "network_policy_ingress_namespace",
        ENV_NETWORK_POLICY_INGRESS_NAMESPACE,
        None,
        "namespace of the ingress controller, admitted to the router when there is an Ingress",
    ),
    SettingSpec(
        "network_policy_prometheus_namespace",
        ENV_NETWORK_POLICY_PROMETHEUS_NAMESPACE,
        "monitoring",
        "namespace admitted to scrape engines and router when VLLM_MONITORING is on",
    ),
    SettingSpec(
        "prometheus_url",
        ENV_PROMETHEUS_URL,
        DEFAULT_PROMETHEUS_URL,
        "Prometheus that autoscaling's KEDA triggers query",
    ),
    # KV-cache offload (docs/kv-cache.md): release-wide, so settings; checked when rendered.
    SettingSpec("lmcache_image", ENV_LMCACHE_IMAGE, "lmcache/vllm-openai", "engine image of kvCache models"),
    SettingSpec("lmcache_tag", ENV_LMCACHE_TAG, "v0.3.9post2", "its tag (and the cache server's)"),
    SettingSpec(
        "cache_server", ENV_CACHE_SERVER, "false", "LMCache cache server shared by the engines", kind="bool"
    ),
    SettingSpec("cache_server_memory", ENV_CACHE_SERVER_MEMORY, "8Gi", "the cache server's memory request"),
    SettingSpec(
        "shared_storage_size", ENV_SHARED_STORAGE_SIZE, None, "size of the chart's shared claim (none: off)"
    ),
    SettingSpec("shared_storage_class", ENV_SHARED_STORAGE_CLASS, None, "its storage class"),
    SettingSpec("shared_storage_nfs", ENV_SHARED_STORAGE_NFS, None, "its NFS export, server:/path"),
    SettingSpec("shared_storage_host_path", ENV_SHARED_STORAGE_HOST_PATH, None, "or its node directory"),
    SettingSpec("secret_backend", ENV_SECRET_BACKEND, "auto", "where secrets live: auto, vault, kubernetes"),
    SettingSpec("vault_mount", ENV_VAULT_MOUNT, "secret", "Vault KV v2 mount holding the secrets"),
    SettingSpec("vault_prefix", ENV_VAULT_PREFIX, "vllm", "path prefix of the secrets in that mount"),
    SettingSpec("secret_store", ENV_SECRET_STORE, "vault-secret-store", "the ExternalSecrets' store"),
    SettingSpec("secret_store_kind", ENV_SECRET_STORE_KIND, "ClusterSecretStore", "its kind"),
    SettingSpec(
        "vault_backup",
        ENV_VAULT_BACKUP,
        "false",
        "kubernetes backend: also keep a copy in Vault",
        kind="bool",
    ),
    # Vault's own variables, read as the vault CLI reads them (VAULT_TOKEN falls back to
    # ~/.vault-token, as after `vault login`).
    SettingSpec("vault_addr", "VAULT_ADDR", None, "Vault address"),
    SettingSpec("vault_token", "VAULT_TOKEN", None, "Vault token (else ~/.vault-token)", secret=True),
    SettingSpec("vault_enterprise_namespace", "VAULT_NAMESPACE", None, "Vault Enterprise namespace"),
    SettingSpec("vault_cacert", "VAULT_CACERT", None, "CA bundle for Vault's TLS", kind="path"),
    SettingSpec("vault_capath", "VAULT_CAPATH", None, "directory of CAs for Vault's TLS", kind="path"),
    SettingSpec(
        "vault_skip_verify",
        "VAULT_SKIP_VERIFY",
        "false",
        "skip Vault TLS verification (warned about)",
        kind="bool",
    ),
    # The Hub's address, as huggingface_hub reads it (a mirror, or the sandbox's stand-in).
    SettingSpec("hf_endpoint", "HF_ENDPOINT", "https://huggingface.co", "HuggingFace Hub address"),
    SettingSpec("gpu_type", ENV_GPU_TYPE, None, "GPU type for memory estimates (default: the nodes' label)"),
    SettingSpec("gpu_memory", ENV_GPU_MEMORY, None, "memory per GPU, overriding the type's (e.g. 80Gi)"),
    SettingSpec("helm", ENV_HELM, None, "helm binary (default: helm on PATH)"),
    SettingSpec("kubectl", ENV_KUBECTL, None, "kubectl binary (default: kubectl on PATH)"),
    SettingSpec("templates_dir", ENV_TEMPLATES_DIR, None, "directory of custom templates", kind="path"),
)
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}

# The old tool's variables that vllmctl does not read, and what took their place
# (docs/secrets.md): set, they get one warning per run, and `config` does not show them.
RETIRED: dict[str, str] = {
    "EXTERNAL_SECRETS_NAMESPACE": (
        "whether the External Secrets Operator runs is read from the cluster's API discovery "
        "(is ExternalSecret served?), wherever it is installed"
    ),
    "K8S_VAULT_NAMESPACE": (
        "Vault is reached at VAULT_ADDR (its in-cluster Service address, or a port-forward), "
        "not through a namespace"
    ),
}


def retired_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per retired variable that is set, naming what replaced it."""
    env = os.environ if environ is None else environ
    return [
        f"{name} is set but vllmctl does not use it: {instead}; unset it."
        for name, instead in RETIRED.items()
        if name in env
    ]


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class Settings:
    """Resolved settings. Attribute access returns the parsed value (`settings.namespace`)."""

    def __init__(self, resolved: dict[str, Resolved]) -> None:
        self.resolved = resolved
        self._chart_target: Any = None  # a vllmctl.chart.version.ChartVersion once decided

    @classmethod
    def resolve(cls, flags: Mapping[str, str | None], environ: Mapping[str, str] | None = None) -> Settings:
        """Resolve every setting: a flag given on the command line wins over the env, then the default."""
        env = os.environ if environ is None else environ
        resolved: dict[str, Resolved] = {}
        for spec in SPECS:
            flag_value = flags.get(spec.name)
            if flag_value is not None:
                resolved[spec.name] = Resolved(flag_value, "flag")
            elif spec.env in env:
                resolved[spec.name] = Resolved(env[spec.env], "env")
            else:
                resolved[spec.name] = Resolved(spec.default, "default")
        if resolved["env"].raw:
            # The environment's values in vllmctl.yaml fill what flags and env left at default.
            from vllmctl.catalog.environments import apply_environment_settings

            apply_environment_settings(resolved)
        return cls(resolved)

    def raw(self, name: str) -> str | None:
        """The setting's text as given."""
        return self.resolved[name].raw

    def source(self, name: str) -> str:
        """Where the setting's value came from."""
        return self.resolved[name].source

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not real attributes: the settings themselves.
        spec = SPECS_BY_NAME.get(name)
        if spec is None:
            raise AttributeError(name)
        if name in NAME_CHECKS:
            self.check_names(name)
        return parse_setting(spec, self.resolved[name].raw)

    def check_names(self, *names: str) -> None:
        """Refuse namespace, release and context names Kubernetes or helm would refuse,
        naming where each came from (default: all of them, every problem at once)."""
        from vllmctl.core.errors import refuse_problems

        problems = []
        for name in names or NAME_CHECKS:
            resolved = self.resolved[name]
            problem = name_problem(name, resolved.raw)
            if problem:
                problems.append(f"{_given_as(SPECS_BY_NAME[name], resolved)}: {problem}.")
        refuse_problems(problems, "the names in the settings")

    # Typed accessors for the settings the core uses most, so mypy sees their types.
    @property
    def chart_target(self) -> Any:
        """The chart version to render for and where it came from (a vllmctl.chart.version
        .ChartVersion): decided once, without the deployed release unless `settle_chart`
        has been told it."""
        if self._chart_target is None:
            from vllmctl.chart.version import resolve

            self._chart_target = resolve(self)
        return self._chart_target

    def settle_chart(self, deployed: str | None) -> Any:
        """Decide the chart version knowing the deployed release's (None: there is none);
        every later `chart_version` reads this decision."""
        from vllmctl.chart.version import resolve

        self._chart_target = resolve(self, deployed)
        return self._chart_target

    @property
    def chart_version(self) -> str:
        """The chart version everything renders and checks for (see chart_target)."""
        return str(self.chart_target.version)

    @property
    def models_path(self) -> Path:
        """The models catalog path."""
        return Path(self.raw("models_file") or "models.yaml")


def parse_setting(spec: SettingSpec, raw: str | None) -> object:
    """Parse a setting's text by its kind; a bad value names the env variable to fix."""
    from vllmctl.core.errors import UsageError

    if raw is None:
        return None
    if spec.kind == "bool":
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise UsageError(f"{spec.env}={raw!r} is not a boolean; use true or false.")
    if spec.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"{spec.env}={raw!r} is not a whole number.") from None
    if spec.kind == "seconds":
        return _positive_seconds(spec, raw)
    if spec.kind == "path":
        return Path(raw).expanduser()
    if spec.kind == "duration" and duration_seconds(raw) is None:
        raise UsageError(
            f"{spec.env}={raw!r} is not a duration helm takes: write it as Go does, e.g. 10m, 1h30m or 90s "
            "(units h, m, s, ms; no spaces), and longer than zero."
        )
    return raw


def duration_seconds(text: str) -> float | None:
    """The seconds a Go duration such as 1h30m stands for; None when Go (and so helm) would
    refuse it, or it is not longer than zero (a helm timeout of 0 fails at once)."""
    from vllmctl.core.durations import go_seconds

    value = go_seconds(text.removeprefix("+"))  # Go takes a sign; a negative one is refused
    return value if value is not None and value > 0 else None


def _positive_seconds(spec: SettingSpec, raw: str) -> float:
    """A duration setting in seconds: `30`, `30s`, `2m`, `1m30s`; more than zero."""
    import math

    from vllmctl.core.durations import seconds
    from vllmctl.core.errors import UsageError

    value = seconds(raw)
    if value is None or not math.isfinite(value):
        raise UsageError(
            f"{spec.env}={raw!r} is not a duration: write seconds (30) or a number and a unit "
            "(30s, 2m, 1m30s)."
        )
    if value <= 0:
        raise UsageError(f"{spec.env}={raw!r} must be longer than 0 s.")
    return value


def masked(spec: SettingSpec, raw: str | None) -> str | None:
    """The text `config` may show for a setting: secrets are replaced, never partly shown."""
    if raw is None or not spec.secret:
        return raw
    return "<set, hidden>" if raw else "<empty>"


def _given_as(spec: SettingSpec, resolved: Resolved) -> str:
    if resolved.source == "flag":
        return f"--{spec.name.replace('_', '-')} {resolved.raw}"
    if resolved.source == "env":
        return f"{spec.env}={resolved.raw}"
    return resolved.source
