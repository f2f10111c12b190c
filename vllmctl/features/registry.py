"""The chart features, in order. The schema collects their fields, render applies them in
this order (a model's keys, then the release's), install checks the cluster for them
before helm, doctor runs their checks and status reads back what they made.

A new chart feature is a module under features/ with a `FEATURE` (features/base.py) and
one line here.
"""

from __future__ import annotations

from vllmctl.features import (
    accelerators,
    autoscaling,
    exposure,
    kv_cache,
    lora,
    monitoring,
    multinode,
    network_policy,
    rollout,
    router_scaling,
    routing,
    sources,
    startup,
)
from vllmctl.features.base import Feature

FEATURES: list[Feature] = [
    accelerators.FEATURE,  # accelerator: requestGPUType and runtimeClassName
    autoscaling.FEATURE,  # autoscaling: KEDA ScaledObjects (chart 0.1.9+)
    rollout.FEATURE,  # strategy (release-wide) and per-model PodDisruptionBudgets
    sources.FEATURE,  # modelURL: Hub, pvc://, s3://, oci://, and the model cache
    startup.FEATURE,  # maxStartupSeconds: the release's startup probe
    exposure.FEATURE,  # the router's Service type, node port and Ingress
    routing.FEATURE,  # the router's routing logic, session key and prefix match
    router_scaling.FEATURE,  # the router's HPA (routerSpec.autoscaling) and CPU limit
    monitoring.FEATURE,  # ServiceMonitors and Grafana dashboards (chart 0.1.11+)
    network_policy.FEATURE,  # NetworkPolicies in extraObjects (chart 0.1.10+)
    lora.FEATURE,  # LoRA adapters: --lora-modules at start, or the chart's LoRA controller
    multinode.FEATURE,  # pipelineParallelSize: the chart's KubeRay RayCluster across nodes
    kv_cache.FEATURE,  # kvCache: LMCache offload, the cache server and the shared storage
]
