"""What the vllm-stack chart is, in every version vllmctl supports, in one place: the
versions tested and their router images, version parsing, which values key arrived in
which chart version, and the names and labels the chart gives a release's objects (what
status, logs, tunnel, deploy and the GPU fit look objects up by). docs/chart-facts.md is
the evidence for each.

No imports, so any module can ask without pulling in anything. Objects vllmctl adds to a
release itself (the NetworkPolicies in extraObjects) are named by their feature module.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# --- versions ----------------------------------------------------------------------------

# The chart versions vllmctl is tested with, oldest first; a new release gets the newest.
TESTED_CHARTS = ("0.1.8", "0.1.9", "0.1.10", "0.1.11", "0.1.12")
NEWEST_TESTED = TESTED_CHARTS[-1]
# The router image tag each chart release's own release workflow pushed, from the same
# commit, beside `latest` (what the chart's values.yaml names in every release): `v<chart>`
# since 0.1.9; 0.1.8's workflow pushed only the router's setuptools-scm version, which on
# the release tag is `0.1.8` (docs/chart-facts.md, "Router image").
ROUTER_TAGS = {
    "0.1.8": "0.1.8",
    "0.1.9": "v0.1.9",
    "0.1.10": "v0.1.10",
    "0.1.11": "v0.1.11",
    "0.1.12": "v0.1.12",
}
_PLAIN_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def version_tuple(text: str) -> tuple[int, ...] | None:
    """`0.1.10` -> (0, 1, 10); None for anything that is not a plain version."""
    match = _PLAIN_VERSION.fullmatch(text.strip())
    return tuple(int(p) for p in match.groups()) if match else None


class ChartAt(NamedTuple):
    """The chart version values are rendered for: as given, and parsed (None: not a plain
    version, so nothing can be judged by version and every key is let through)."""

    text: str
    version: tuple[int, ...] | None

    @classmethod
    def of(cls, text: str) -> ChartAt:
        return cls(text, version_tuple(text))

    def before(self, since: tuple[int, ...] | str) -> bool:
        """Whether this chart is known to be older than `since` (a version or a SINCE key)."""
        if isinstance(since, str):
            since = SINCE[since]
        return self.version is not None and self.version < since


# --- which key arrived when --------------------------------------------------------------

# modelSpec keys of the chart that vllmctl passes through from models.yaml as given, with
# the first chart version whose templates read them (docs/chart-facts.md). The chart does
# not apply its values.schema.json, so a misspelt key would be silently ignored there:
# this list is what catches it. (`tag` and `pdb` are chart keys too, but vllmctl checks and
# renders them itself.)
CHART_KEYS: dict[str, str] = {
    **dict.fromkeys(
        [
            "affinity",
            "annotations",
            "chatTemplate",
            "chatTemplateConfigMap",
            "enableLoRA",
            "enableTool",
            "env",
            "envFromSecret",
            "extraVolumeMounts",
            "extraVolumes",
            "hf_token",
            "imagePullSecret",
            "initContainer",
            "limitCPU",
            "limitGPUCores",
            "limitGPUMem",
            "limitGPUMemPercentage",
            "lmcacheConfig",
            "nodeName",
            "nodeSelectorTerms",
            "podAnnotations",
            "priorityClassName",
            "pvcAccessMode",
            "pvcLabels",
            "pvcMatchLabels",
            "raySpec",
            "repository",
            "requestGPUCores",
            "requestGPUMem",
            "requestGPUMemPercentage",
            "requestGPUType",
            "runtimeClassName",
            "serviceAccountName",
            "shmSize",
            "storageClass",
            "toolCallParser",
        ],
        "0.1.8",
    ),
    **dict.fromkeys(("keda", "resources"), "0.1.9"),
    "pvcAnnotations": "0.1.10",
    **dict.fromkeys(("enabled", "tolerations", "tolerationsPolicy"), "0.1.11"),
    **dict.fromkeys(("labels", "podLabels", "serviceAnnotations", "modelRevision"), "0.1.12"),
}

# The values vllmctl renders itself, and the chart behaviours it depends on, with the
# first chart version that has them: the features and render judge a chart by these.
SINCE: dict[str, tuple[int, ...]] = {
    "modelSpec.keda": (0, 1, 9),
    "modelSpec.pvcAnnotations": (0, 1, 10),
    "modelSpec.pdb": (0, 1, 11),
    "extraObjects": (0, 1, 10),
    "routerSpec.nodePort": (0, 1, 11),
    "serviceMonitor": (0, 1, 11),  # servingEngineSpec's, routerSpec's, and grafanaDashboards
    # From here the engine Deployment has no `replicas` when keda is on (KEDA owns the count).
    "keda owns replicas": (0, 1, 11),
    # app.kubernetes.io labels added to the Deployment selectors, which an update cannot
    # change (docs/chart-facts.md, section 4).
    "selector labels": (0, 1, 10),
    # --prefix-min-match-length, passed by deployment-router.yaml only from 0.1.12.
    "routerSpec.prefixMinMatchLength": (0, 1, 12),
    # --- LoRA adapters (docs/chart-facts.md, "LoRA adapters") ---
    # LoraAdapter objects from top-level loraAdapters (deployment-lora-adapter.yaml, 0.1.6)
    # and the engine sidecar the LoRA controller downloads Hub adapters through (0.1.7).
    "loraAdapters": (0, 1, 7),
}

# routerSpec.routingLogic's values, with the first chart version that takes each
# (docs/chart-facts.md, "Routing logic"). Every chart passes the value to the router's
# --routing-logic as written, so the router image released with the chart decides: 0.1.8's
# accepts the first five, 0.1.11's adds disaggregated_prefill_orchestrated. (0.1.11's
# values.schema.json enum lacks it, but the chart never applies its schema: section 1a.)
ROUTING_LOGIC_SINCE: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("roundrobin", "session", "prefixaware", "kvaware", "disaggregated_prefill"), (0, 1, 8)),
    "disaggregated_prefill_orchestrated": (0, 1, 11),
}

# --- KV-cache offload: LMCache, the cache server, the shared storage ----------------------
# (docs/chart-facts.md, "KV-cache offload"; vllmctl.features.kv_cache renders them.)

# lmcacheConfig.logLevel becomes LMCACHE_LOG_LEVEL from 0.1.10; 0.1.8 and 0.1.9 write
# LMCACHE_LOG_LEVEL=DEBUG on every engine with a vllmConfig, whatever lmcacheConfig says.
LMCACHE_LOG_LEVEL_SINCE = (0, 1, 10)
# From 0.1.11 cacheserverSpec and sharedPvcStorage are switched on by their `enabled` key
# (values.yaml gives both defaults), and the cache server's image is image.repository /
# image.tag; before, the key being there at all switches the object on, and the image is
# cacheserverSpec.repository / .tag.
CACHE_SERVER_ENABLED_SINCE = (0, 1, 11)
LMCACHE_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")  # 0.1.11+'s values.schema.json enum
# The image whose vLLM the chart starts as /opt/venv/bin/vllm (an exact comparison of
# modelSpec.repository, in every version): the image the chart's docs name for LMCache.
LMCACHE_IMAGE = "lmcache/vllm-openai"


def tags_name_vllm(repository: str) -> bool:
    """Whether an engine image's tags are vLLM versions: not lmcache/vllm-openai's, or a
    mirror's of it (its v0.3.9post2 is an LMCache release), which render does not judge
    vLLM flags by."""
    return repository != LMCACHE_IMAGE and not repository.endswith("/" + LMCACHE_IMAGE)


CACHE_SERVER_PORT = 8000  # the cache server's containerPort (0.1.11+'s default, written by vllmctl)
CACHE_SERVER_SERVICE_PORT = 80  # its Service port (0.1.11+'s default, written by vllmctl)
SHARED_STORAGE_MOUNT = "/data/shared-pvc-storage"  # where every engine mounts the shared claim


# --- kvaware routing's LMCache controller, and prefill/decode roles -------------------------
# (docs/chart-facts.md, "KV-aware routing and prefill/decode roles"; vllmctl.features.kv_cache
# and routing write them.)

# The router runs LMCache's controller; the engines reach it through the router Service,
# whose only port besides HTTP is `lmcache-port` 9000 (service-router.yaml, every version):
# lmcacheConfig.controllerPort becomes LMCACHE_CONTROLLER_PULL_URL=<rel>-router-service:<port>.
LMCACHE_CONTROLLER_PORT = 9000
# 0.1.11+ also read lmcacheConfig.controllerReplyPort (LMCACHE_CONTROLLER_REPLY_URL) and
# routerSpec.lmcacheControllerReplyPort; the Service gets that port only from extraPorts.
LMCACHE_CONTROLLER_REPLY_PORT = 9001
CONTROLLER_REPLY_SINCE = (0, 1, 11)
# Where each engine's LMCache worker listens for the controller: one port per tensor-parallel
# rank (lmcacheConfig.workerPorts, "8001,8002"), on the pod's IP; the chart's tutorial's port.
LMCACHE_WORKER_PORT = 8001
# Disaggregated prefill (lmcacheConfig.enablePD, every version): the prefill engine sends its
# KV over NIXL to the decode engine's Service, whose `zmq-port` is 55555 (service-vllm.yaml).
NIXL_PEER_PORT = 55555
NIXL_BUFFER_SIZE = 1073741824  # the chart's tutorial's 1 GiB transfer buffer, on the GPU
KV_ROLES = {"prefill": ("kv_producer", "sender"), "decode": ("kv_consumer", "receiver")}
# The router (deployment-router.yaml) sets VLLM_API_KEY, but its disaggregated path sends
# `Authorization: Bearer $OPENAI_API_KEY` (request.py): routerSpec.env, 0.1.12+, can add it.
ROUTER_ENV_SINCE = (0, 1, 12)


def cache_server_deployment_name(release: str) -> str:
    return f"{release}-deployment-cache-server"


def cache_server_service_name(release: str) -> str:
    return f"{release}-cache-server-service"


def shared_storage_claim_name(release: str) -> str:
    return f"{release}-shared-pvc-storage-claim"


# --- objects, names and labels -----------------------------------------------------------

# Model caches (often hundreds of GB) kept by `helm uninstall` (modelSpec.pvcAnnotations).
KEEP_POLICY = {"helm.sh/resource-policy": "keep"}
# The chart names engine objects "<release>-<model>-..." and gives each pod a hostname
# and subdomain that must stay DNS labels: release and model names together <= 48.
MAX_RELEASE_AND_NAME = 48

ENGINE_PORT = 8000  # where the engines listen (containerPort; vllmctl never changes it)
ROUTER_PORT = 8000  # where the router's container listens
ROUTER_PORT_NAME = "router-sport"  # the router Service's HTTP port, in every chart version
INGRESS_API = "networking.k8s.io/v1"  # what the chart's router Ingress is written in

RELEASE_LABEL = "helm-release-name"  # on engine pods and in their Deployments' selectors; not on the router
MODEL_LABEL = "model"  # the model's name, beside RELEASE_LABEL
ENGINE_CONTAINER = "vllm"  # the engine pod's serving container


def engine_deployment_name(release: str, model: str) -> str:
    return f"{release}-{model}-deployment-vllm"


def engine_deployment_model(release: str, name: str) -> str | None:
    """The model of an engine Deployment's name; None when the name is no such name of
    this release (another release's may share the prefix: check the selector too)."""
    prefix, suffix = f"{release}-", "-deployment-vllm"
    if len(name) > len(prefix) + len(suffix) and name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


def engine_service_name(release: str, model: str) -> str:
    return f"{release}-{model}-engine-service"


def engine_service_model(release: str, name: str) -> str | None:
    """The model of an engine Service's name; None when the name is no such name."""
    prefix, suffix = f"{release}-", "-engine-service"
    if name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


def router_deployment_name(release: str) -> str:
    return f"{release}-deployment-router"


def router_service_name(release: str) -> str:
    return f"{release}-router-service"


# The router's HPA (hpa-router.yaml, the same in 0.1.8 to 0.1.12; docs/chart-facts.md,
# "Router autoscaling"): made whenever routerSpec.autoscaling.enabled, even without a router.
ROUTER_HPA_API = "autoscaling/v2"
# From 0.1.11 deployment-router.yaml leaves `replicas` out while the HPA is on; before, it
# writes minReplicas there, so every upgrade resets the router to minReplicas.
ROUTER_HPA_OWNS_REPLICAS_SINCE = (0, 1, 11)


def router_hpa_name(release: str) -> str:
    return f"{release}-router-hpa"


def release_selector(release: str) -> str:
    """The label selector of every engine pod (and engine Deployment) of one release."""
    return f"{RELEASE_LABEL}={release}"


def engine_selector(release: str, model: str) -> str:
    """The label selector of one model's engine pods in one release."""
    return f"{RELEASE_LABEL}={release},{MODEL_LABEL}={model}"


def ingress_name(release: str) -> str:
    """The chart's name for the router Ingress."""
    return f"{release}-ingress-router"


# --- multi-node serving (KubeRay) ------------------------------------------------------
# A modelSpec with raySpec is rendered by ray-cluster.yaml as one KubeRay RayCluster
# (ray.io/v1) instead of a Deployment, in every tested version (docs/chart-facts.md,
# "Ray path"): a head group and one worker group named "ray" with replicaCount pods.
RAY_GROUP, RAY_VERSION, RAY_PLURAL = "ray.io", "v1", "rayclusters"
RAY_WORKER_GROUP = "ray"
# What the chart's Ray path first reads in which version: from 0.1.11 the RayCluster needs
# raySpec.enabled true (before, the key's presence is enough); from 0.1.12 the head takes
# raySpec.headNode.resources and the workers modelSpec.resources (before, both are built
# from the request*/limit* keys only).
RAY_SINCE: dict[str, tuple[int, ...]] = {
    "raySpec.enabled": (0, 1, 11),
    "ray resources": (0, 1, 12),
}


def raycluster_name(release: str, model: str) -> str:
    return f"{release}-{model}-raycluster"
