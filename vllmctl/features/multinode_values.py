"""Multi-node serving's values: a model with `vllmConfig.pipelineParallelSize` runs as the
chart's KubeRay RayCluster, `pipelineParallelSize` nodes (the head and pipelineParallelSize
- 1 workers) of `tensorParallelSize` GPUs each (docs/multi-node.md).

What the chart's Ray path reads is in docs/chart-facts.md ("Ray path"): the head's
resources from raySpec.headNode (request*/limit* keys, and from 0.1.12 `resources`), the
workers' from the modelSpec itself, the worker count from replicaCount, and the RayCluster
only with raySpec.enabled true from 0.1.11 (its presence before). This module turns one
entry into those keys, and says which of the entry's keys the Ray path would ignore.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vllmctl.chart.facts import CHART_KEYS, RAY_SINCE, ChartAt

Obj = dict[str, Any]

# The keys the chart's resources helper reads from raySpec.headNode (as from a modelSpec):
# vllmctl copies the entry's into headNode, so every node asks for the same.
HEAD_KEYS = (
    "requestCPU",
    "requestMemory",
    "requestGPU",
    "requestGPUType",
    "requestGPUMem",
    "requestGPUMemPercentage",
    "requestGPUCores",
    "limitCPU",
    "limitMemory",
    "limitGPUMem",
    "limitGPUMemPercentage",
    "limitGPUCores",
)
# The first chart version whose Ray path vllmctl has read (docs/chart-facts.md).
KNOWN_SINCE = (0, 1, 8)


def stages(entry: Mapping[str, Any]) -> int | None:
    """The entry's pipelineParallelSize (its number of nodes), None for a one-node model."""
    config = entry.get("vllmConfig")
    pp = config.get("pipelineParallelSize") if isinstance(config, Mapping) else None
    return pp if isinstance(pp, int) and not isinstance(pp, bool) and pp >= 2 else None


def tensor_parallel(entry: Mapping[str, Any]) -> int:
    config = entry.get("vllmConfig")
    tp = config.get("tensorParallelSize") if isinstance(config, Mapping) else None
    return tp if isinstance(tp, int) and not isinstance(tp, bool) and tp >= 1 else 1


def runs_ray(entry: Mapping[str, Any]) -> bool:
    """Whether the chart makes a RayCluster for the entry: a multi-node model, or a
    hand-written raySpec that is not switched off."""
    if stages(entry) is not None:
        return True
    ray = entry.get("raySpec")
    return "raySpec" in entry and not (isinstance(ray, Mapping) and ray.get("enabled") is False)


def problems(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The keys of a multi-node entry that contradict it, each (key, why and the fix)."""
    pp = stages(entry)
    if pp is None:
        return []
    tp = tensor_parallel(entry)
    found: list[tuple[str, str]] = []
    one = (
        f"a model with pipelineParallelSize {pp} runs as one RayCluster of {pp} nodes "
        f"({tp} GPU{'s' * (tp != 1)} each)"
    )
    if "replicaCount" in entry and entry["replicaCount"] != 1:
        found.append(
            (
                "replicaCount",
                f"{one}, so it has one replica; vllmctl writes the chart's replicaCount (the worker "
                f"count, {pp - 1}) itself. Remove replicaCount (or use enabled: false to stop it).",
            )
        )
    if "requestGPU" in entry and entry["requestGPU"] != tp:
        found.append(
            (
                "requestGPU",
                f"{one}: requestGPU is the GPUs of each node and must equal tensorParallelSize. "
                f"Set requestGPU: {tp} (or change tensorParallelSize).",
            )
        )
    for key, why in (
        ("autoscaling", "the chart makes no ScaledObject for a RayCluster (scaledobject-vllm.yaml)"),
        ("pdb", "the chart's PodDisruptionBudget selects labels the RayCluster's pods do not carry"),
        ("nodeName", "nodeName would put the head and every worker on that one node"),
    ):
        if entry.get(key) not in (None, False):
            found.append((key, f"{one}, and {why}; remove {key}."))
    config = entry.get("vllmConfig")
    if isinstance(config, Mapping):
        if config.get("enablePrefixCaching") is False:
            found.append(
                (
                    "vllmConfig",
                    f"{one}, and the chart's Ray start script never turns prefix caching off; remove "
                    "enablePrefixCaching and add '--no-enable-prefix-caching' to extraArgs.",
                )
            )
        for key in ("runner", "convert"):
            if key in config:
                found.append(
                    (
                        "vllmConfig",
                        f"{one}, and the chart's Ray start script does not pass vllmConfig.{key}; write "
                        f"'--{key}' and its value in extraArgs instead.",
                    )
                )
    found.extend(_ray_spec_problems(entry.get("raySpec"), "raySpec" in entry, one))
    return found


def _ray_spec_problems(ray: Any, present: bool, one: str) -> list[tuple[str, str]]:
    """A hand-written raySpec beside pipelineParallelSize may only add what vllmctl does not
    write (headNode.initContainer, say)."""
    if not present:
        return []
    if not isinstance(ray, Mapping):
        return [("raySpec", f"{one}; raySpec must be a mapping of what to add to vllmctl's, or removed.")]
    if ray.get("enabled") is False:
        return [("raySpec", f"{one}, but raySpec.enabled is false; remove pipelineParallelSize or raySpec.")]
    head = ray.get("headNode")
    written = (
        sorted(k for k in head if k in HEAD_KEYS or k == "resources") if isinstance(head, Mapping) else []
    )
    if written:
        keys = ", ".join(f"raySpec.headNode.{k}" for k in written)
        return [
            (
                "raySpec",
                f"{one}; vllmctl writes {keys} from the entry's own {', '.join(written)} so that every "
                "node asks for the same. Remove them from raySpec.",
            )
        ]
    return []


def chart_problems(entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
    """The entry's Ray keys `chart` would ignore."""
    pp = stages(entry)
    if pp is None:
        ray = entry.get("raySpec")
        if (
            "raySpec" in entry
            and isinstance(ray, Mapping)
            and "enabled" not in ray
            and not chart.before(RAY_SINCE["raySpec.enabled"])
        ):
            return [
                (
                    "raySpec",
                    f"chart {chart.text} makes a RayCluster only when raySpec.enabled is true (0.1.11+), "
                    "so this model would run as a plain Deployment. Add enabled: true to raySpec (or use "
                    "vllmConfig.pipelineParallelSize), or remove raySpec.",
                )
            ]
        return []
    if chart.before(KNOWN_SINCE):
        return [
            (
                "vllmConfig",
                f"pipelineParallelSize is rendered as the chart's RayCluster, which vllmctl knows from "
                f"chart 0.1.8; the chart version is {chart.text}. Raise the chart version, or remove "
                "pipelineParallelSize.",
            )
        ]
    if "resources" in entry and chart.before(RAY_SINCE["ray resources"]):
        return [
            (
                "resources",
                f"chart {chart.text}'s RayCluster ignores `resources` (its head and workers are built "
                "from requestCPU, requestMemory, requestGPU and the limit keys; 0.1.12 reads "
                "resources). Use those keys, or chart 0.1.12.",
            )
        ]
    return []


def ray_values(entry: Mapping[str, Any], spec: Obj, chart: ChartAt) -> None:
    """A multi-node entry's modelSpec keys: the worker count as replicaCount, raySpec's
    head with the same requests as each worker, a model cache every node can mount
    (ReadWriteMany; the entry's own pvcAccessMode wins), and vLLM's V1 engine kept (the
    chart's Ray path sets VLLM_USE_V1=0 unless vllmConfig.v1 says otherwise)."""
    pp = stages(entry)
    if pp is None:
        return
    own = {**spec, **{k: v for k, v in entry.items() if k in CHART_KEYS}}
    head: Obj = {k: own[k] for k in HEAD_KEYS if k in own}
    if "resources" in own and not chart.before(RAY_SINCE["ray resources"]):
        head["resources"] = own["resources"]
    spec["replicaCount"] = pp - 1  # the workers; the head is the first node
    if "pvcStorage" in spec:
        # The head and every worker mount the one model cache claim (ray-cluster.yaml), from
        # different nodes: ReadWriteOnce would hold all but the first pod at attach.
        spec["pvcAccessMode"] = ["ReadWriteMany"]
    spec["raySpec"] = {"enabled": True, "headNode": head}
    config = spec["vllmConfig"]
    config["v1"] = "0" if str(config.get("v0")) == "1" else "1"
    config.pop("v0", None)  # the Ray path does not read it


def merge(ours: Any, theirs: Any) -> Any:
    """The entry's own raySpec joined with vllmctl's (problems() refused what clashes)."""
    if not isinstance(ours, Mapping) or not isinstance(theirs, Mapping):
        return theirs  # a one-node model: the entry's raySpec passes through as written
    joined = {**theirs, **ours}
    joined["headNode"] = {**(theirs.get("headNode") or {}), **ours["headNode"]}
    return joined
