"""What rendering the values takes: `RenderInput` (everything the values depend on), the
Secrets they reference, and the deployed release's labels.

Below render and the chart features, which both use these: render imports them, never the
other way round (`vllmctl.render.values` re-exports them). The model source settings'
`Options` are here too, read by `vllmctl.features.source_values`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple


class Options(NamedTuple):
    """The settings that shape sources (VLLM_S3_ENDPOINT, VLLM_S3_IMAGE,
    VLLM_MODEL_CACHE_CLAIM, VLLM_OCI_METHOD), as raw texts."""

    s3_endpoint: str | None = None
    s3_image: str | None = None
    cache_claim: str | None = None
    oci_method: str | None = None


DEFAULT_OPTIONS = Options()


def options_from(settings: Any) -> Options:
    """The source settings, from resolved settings."""
    return Options(
        s3_endpoint=settings.s3_endpoint,
        s3_image=settings.s3_image,
        cache_claim=settings.model_cache_claim,
        oci_method=settings.oci_method,
    )


# The label vllmctl puts on the objects it adds to a release (network policies...).
RELEASE_LABEL = "vllmctl.io/release"


@dataclass(frozen=True)
class SecretRef:
    """A value the chart reads from a Kubernetes Secret."""

    secret_name: str
    secret_key: str

    def as_values(self) -> dict[str, str]:
        return {"secretName": self.secret_name, "secretKey": self.secret_key}


HF_TOKEN_SECRET = SecretRef("hf-token", "token")
API_KEY_SECRET = SecretRef("vllm-api-key", "api-key")


@dataclass(frozen=True)
class DeployedLabels:
    """The label maps of a deployed release; Deployment selectors are built from them, and
    selectors cannot change, so an upgrade must keep them as they are."""

    engine: dict[str, str] | None
    router: dict[str, str] | None

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> DeployedLabels:
        engine = (values.get("servingEngineSpec") or {}).get("labels")
        router = (values.get("routerSpec") or {}).get("labels")
        return cls(engine or None, router or None)


# The routing settings whose sources RenderInput keeps, for messages naming where a value came from.
ROUTING_SETTINGS = ("routing_logic", "router_session_key", "router_prefix_min_match_length")
# The router scaling settings (vllmctl.features.router_scaling) whose sources RenderInput keeps;
# the replicas and CPU request too, as its checks name them.
ROUTER_SCALING_SETTINGS = (
    "router_autoscaling",
    "router_min_replicas",
    "router_max_replicas",
    "router_target_cpu",
    "router_limit_cpu",
    "router_replicas",
    "router_request_cpu",
)


class KvCacheSettings(NamedTuple):
    """The KV-cache offload settings (docs/kv-cache.md), as raw texts: the engine image of
    models with kvCache, the cache server and the shared storage."""

    lmcache_image: str = "lmcache/vllm-openai"
    lmcache_tag: str = "v0.3.9post2"
    cache_server: bool = False
    cache_server_memory: str | None = "8Gi"
    shared_storage_size: str | None = None
    shared_storage_class: str | None = None
    shared_storage_nfs: str | None = None
    shared_storage_host_path: str | None = None


def kv_cache_settings(settings: Any) -> KvCacheSettings:
    """The KV-cache settings, from resolved settings."""
    return KvCacheSettings(**{name: getattr(settings, name) for name in KvCacheSettings._fields})


@dataclass
class RenderInput:
    """Everything the values depend on."""

    release: str
    namespace: str
    chart_version: str
    image: str
    tag: str
    storage_class: str
    router_enabled: bool
    router_replicas: int
    router_request_cpu: str
    router_request_memory: str
    router_limit_memory: str
    router_image: str = "lmcache/lmstack-router"
    router_tag: str | None = None  # VLLM_ROUTER_TAG; None: the tag released with the chart
    hf_token: SecretRef | None = None
    api_key: SecretRef | None = None
    deployed_labels: DeployedLabels | None = None  # None: a new release
    templates_dir: Path | None = None
    # VLLM_S3_ENDPOINT, VLLM_S3_IMAGE, VLLM_MODEL_CACHE_CLAIM, VLLM_OCI_METHOD (vllmctl.features.sources).
    sources: Options = DEFAULT_OPTIONS
    max_startup_seconds: int | None = None  # VLLM_MAX_STARTUP_SECONDS; None: by model size
    # Exposure and monitoring (raw setting texts; vllmctl.features.exposure and .monitoring check them).
    router_service_type: str | None = "ClusterIP"
    router_node_port: str | None = None
    ingress_host: str | None = None
    ingress_class: str | None = None
    ingress_tls_secret: str | None = None
    # Routing (raw setting texts; vllmctl.features.routing checks them), and where each came
    # from (settings' source: "flag", "env", "default" or a vllmctl.yaml environment).
    routing_logic: str | None = "roundrobin"
    router_session_key: str | None = None
    router_prefix_min_match_length: str | None = None
    routing_sources: dict[str, str] = field(default_factory=dict)
    # The router's HPA and CPU limit (raw setting texts; vllmctl.features.router_scaling checks them).
    router_autoscaling: bool = False
    router_min_replicas: str | None = None
    router_max_replicas: str | None = None
    router_target_cpu: str | None = None
    router_limit_cpu: str | None = None
    router_scaling_sources: dict[str, str] = field(default_factory=dict)
    monitoring: bool = False
    grafana_dashboards: bool = False
    prometheus_url: str | None = None  # VLLM_PROMETHEUS_URL, for autoscaling's KEDA triggers
    # Network policy (vllmctl.features.network_policy checks them; namespaces as comma-separated text).
    network_policy: bool = False
    network_policy_namespaces: str | None = None
    network_policy_ingress_namespace: str | None = None
    network_policy_prometheus_namespace: str | None = "monitoring"
    # KV-cache offload (raw setting texts; vllmctl.features.kv_cache checks them).
    kv_cache: KvCacheSettings = field(default_factory=KvCacheSettings)


def default_render_input(settings: Any, **overrides: Any) -> RenderInput:
    """RenderInput from resolved settings; `overrides` for what the command knows."""
    given = RenderInput(
        release=settings.release,
        namespace=settings.namespace,
        chart_version=settings.chart_version,
        image=settings.model_image,
        tag=settings.model_tag,
        storage_class=settings.storage_class or "",
        router_enabled=settings.router_enabled,
        router_replicas=settings.router_replicas,
        router_request_cpu=settings.router_request_cpu,
        router_request_memory=settings.router_request_memory,
        router_limit_memory=settings.router_limit_memory,
        router_image=settings.router_image,
        router_tag=settings.router_tag,
        templates_dir=settings.templates_dir,
        max_startup_seconds=settings.max_startup_seconds,
        sources=options_from(settings),
        router_service_type=settings.router_service_type,
        router_node_port=settings.router_node_port,
        ingress_host=settings.ingress_host,
        ingress_class=settings.ingress_class,
        ingress_tls_secret=settings.ingress_tls_secret,
        routing_logic=settings.routing_logic,
        router_session_key=settings.router_session_key,
        router_prefix_min_match_length=settings.router_prefix_min_match_length,
        routing_sources={name: settings.source(name) for name in ROUTING_SETTINGS},
        router_autoscaling=settings.router_autoscaling,
        router_min_replicas=settings.router_min_replicas,
        router_max_replicas=settings.router_max_replicas,
        router_target_cpu=settings.router_target_cpu,
        router_limit_cpu=settings.router_limit_cpu,
        router_scaling_sources={name: settings.source(name) for name in ROUTER_SCALING_SETTINGS},
        monitoring=settings.monitoring,
        grafana_dashboards=settings.grafana_dashboards,
        prometheus_url=settings.prometheus_url,
        network_policy=settings.network_policy,
        network_policy_namespaces=settings.network_policy_namespaces,
        network_policy_ingress_namespace=settings.network_policy_ingress_namespace,
        network_policy_prometheus_namespace=settings.network_policy_prometheus_namespace,
        kv_cache=kv_cache_settings(settings),
    )
    for key, value in overrides.items():
        setattr(given, key, value)
    return given
