"""A models.yaml entry's memory estimate: which GPU it gets, and vllmctl/ops/estimate.py fed
with the entry's engine options and the Hub's facts about the model. Shared by
`vllmctl estimate` and `vllmctl doctor`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vllmctl.core.errors import UsageError
from vllmctl.ops.estimate import (
    Estimate,
    GiB,
    GpuMemoryError,
    config_bytes_per_param,
    estimate,
    gpu_type,
    param_count_from_config,
    parse_gpu_memory,
    pipeline_stage,
    weight_bytes_per_param,
)

# Node labels naming the GPU model: NVIDIA's GPU feature discovery, AMD's and Habana's.
PRODUCT_LABELS = ("nvidia.com/gpu.product", "amd.com/gpu.product-name", "habana.ai/gaudi.product")


def product_label(node_labels: Iterable[Mapping[str, str]]) -> str | None:
    """The first GPU product label found on these nodes' labels, in their order."""
    return next((str(labels[k]) for labels in node_labels for k in PRODUCT_LABELS if labels.get(k)), None)


@dataclass(frozen=True)
class Gpu:
    name: str  # "H100-80GB", or what the memory came from
    memory: int  # bytes
    bf16: bool
    source: str  # where it was learnt: a flag, a setting, a node's label


def choose_gpu(
    *,
    gpu_flag: str | None = None,
    memory_flag: str | None = None,
    settings: Any = None,
    node_label: str | None = None,
) -> Gpu:
    """The GPU an entry's replicas get: --gpu-memory, --gpu, VLLM_GPU_MEMORY, VLLM_GPU_TYPE,
    then the node's product label; memory given alone keeps the type's name if one is known."""
    setting_type = settings.gpu_type if settings is not None else None
    setting_memory = settings.gpu_memory if settings is not None else None
    for text, where in (
        (gpu_flag, "--gpu"),
        (setting_type, "VLLM_GPU_TYPE"),
        (node_label, "the node's label"),
    ):
        if not text:
            continue
        found = gpu_type(text)
        if found is None:
            if where == "the node's label":
                continue
            raise UsageError(
                f"{where}={text!r} is not a GPU type vllmctl knows: `vllmctl estimate --list-gpus` lists "
                "them; or give the memory with --gpu-memory / VLLM_GPU_MEMORY (e.g. 80Gi)."
            )
        base = Gpu(found.name, found.memory, found.bf16, f"{where} {text}")
        break
    else:
        base = None
    for text, where in ((memory_flag, "--gpu-memory"), (setting_memory, "VLLM_GPU_MEMORY")):
        if not text:
            continue
        try:
            memory = parse_gpu_memory(str(text))
        except GpuMemoryError as e:
            raise UsageError(f"{where}: {e}.") from None
        name = base.name if base else f"{text} GPU"
        return Gpu(name, memory, base.bf16 if base else True, where)
    if base is None:
        label = f" (the node says {node_label!r}, which vllmctl does not know)" if node_label else ""
        raise UsageError(
            f"vllmctl does not know which GPU the model gets{label}: give --gpu TYPE or --gpu-memory 80Gi "
            "(or set VLLM_GPU_TYPE / VLLM_GPU_MEMORY)."
        )
    return base


def estimate_entry(entry: dict[str, Any], facts: Any, gpu: Gpu) -> Estimate:
    """The estimate for one models.yaml entry (with defaults filled in) on `gpu`, using
    the Hub's parameter count when it has one, else the count from config.json."""
    engine = entry.get("vllmConfig") or {}
    dtype = str(engine.get("dtype") or "auto")
    parameters, per_param = _weights(facts, dtype)
    config, stage = facts.config, None
    if int(engine.get("pipelineParallelSize") or 1) > 1:  # a multi-node model: per stage
        parameters, config, stage = pipeline_stage(parameters, config, int(engine["pipelineParallelSize"]))
    result = estimate(
        parameters,
        per_param,
        config,
        gpu.memory,
        max_model_len=engine.get("maxModelLen"),
        max_num_seqs=engine.get("maxNumSeqs"),
        gpu_memory_utilization=float(engine.get("gpuMemoryUtilization") or 0.9),
        tensor_parallel_size=int(engine.get("tensorParallelSize") or 1),
        dtype=dtype,
        gpu_name=gpu.name,
        gpu_bf16=gpu.bf16,
    )
    return result._replace(stage=stage) if stage else result


def _weights(facts: Any, dtype: str) -> tuple[int, float]:
    """The parameter count (the Hub's, else from config.json) and bytes per parameter."""
    if facts.parameters:
        return int(facts.parameters), weight_bytes_per_param(facts.parameter_dtypes, dtype, facts.config)
    return param_count_from_config(facts.config), config_bytes_per_param(facts.config, dtype)


# The model cache should hold the weights with room to spare (tokenizer, config, partial
# downloads): below this factor the storage is called tight.
STORAGE_HEADROOM = 1.1


def size_hint(entry: dict[str, Any], facts: Any, settings: Any) -> str:
    """One line for add-model: the model's parameters and weights, whether its replica's
    GPUs (the estimate, with VLLM_GPU_TYPE / VLLM_GPU_MEMORY) and its cache volume look
    enough. Without a known GPU type only the storage is judged."""
    from vllmctl.core.quantity import QuantityError, parse_quantity

    dtype = str((entry.get("vllmConfig") or {}).get("dtype") or "auto")
    parameters, per_param = _weights(facts, dtype)
    weights = parameters * per_param
    parts = [f"{_count(parameters)} parameters, {weights / GiB:.1f} GiB of weights"]
    try:
        gpu = choose_gpu(settings=settings)
    except UsageError:
        parts.append("GPU fit unknown (set VLLM_GPU_TYPE or VLLM_GPU_MEMORY)")
    else:
        result = estimate_entry(entry, facts, gpu)
        gpus = f"{result.tensor_parallel_size} x {gpu.name}"
        if result.fits:
            parts.append(f"fits {gpus} (KV cache for {result.kv_tokens:,} tokens)")
        else:
            advice = f": {result.suggestions[0].text}" if result.suggestions else ""
            parts.append(f"does not fit {gpus}{advice}")
    storage = entry.get("pvcStorage")
    if storage is not None:
        try:
            size = float(parse_quantity(storage))
        except QuantityError:
            size = None
        if size is not None:
            verdict = "holds them" if size >= weights * STORAGE_HEADROOM else "is too small for them"
            parts.append(f"storage {storage} {verdict}")
    return "Size: " + "; ".join(parts) + "."


def _count(parameters: int) -> str:
    """7615616512 -> '7.6B', 494032768 -> '494M'."""
    if parameters >= 10**9:
        return f"{parameters / 10**9:.1f}B"
    return f"{parameters / 10**6:.0f}M"


def is_hub_repo(model_url: str) -> bool:
    """Whether modelURL names a HuggingFace repo (not a pvc://, s3:// or oci:// source)."""
    return "://" not in model_url


# --- KV-cache offload (docs/kv-cache.md) ---------------------------------------------------


def offload_capacity(entry: dict[str, Any], result: Estimate) -> dict[str, Any] | None:
    """The extra KV capacity an entry's `kvCache` buys, in tokens, from the estimate's own
    KV size per token (None without kvCache). The buffers are counted as the pod's whole:
    each holds every GPU's share of a token's KV (per GPU x tensorParallelSize), the lower
    bound if LMCache gives each tensor-parallel worker a buffer of its own."""
    from vllmctl.features.kv_cache_values import GiB, offload_sizes

    sizes = offload_sizes(entry)
    if sizes is None:
        return None
    cpu, disk = sizes
    per_token = max(1, result.kv_bytes_per_token * result.tensor_parallel_size)
    cpu_tokens, disk_tokens = cpu * GiB // per_token, disk * GiB // per_token
    return {
        "cpuBytes": cpu * GiB,
        "cpuTokens": cpu_tokens,
        "diskBytes": disk * GiB,
        "diskTokens": disk_tokens,
        "bytesPerToken": per_token,
        "timesGpuCache": round(cpu_tokens / result.kv_tokens, 2) if result.kv_tokens > 0 else None,
    }


def offload_lines(offload: dict[str, Any]) -> list[str]:
    """The offload's figures in words, for estimate's text output."""
    per_token = offload["bytesPerToken"]
    times = offload["timesGpuCache"]
    line = (
        f"KV offload (kvCache): CPU {offload['cpuBytes'] // 2**30} GiB / {per_token:,} bytes per token "
        f"= {offload['cpuTokens']:,} more tokens"
    )
    if times is not None:
        line += f" ({times:g}x the GPU KV cache)"
    lines = [line]
    if offload["diskBytes"]:
        lines.append(
            f"KV offload (kvCache): disk {offload['diskBytes'] // 2**30} GiB "
            f"= {offload['diskTokens']:,} more tokens"
        )
    return lines
