"""GPU memory estimate for serving a model with vLLM: weights, KV cache, overhead, verdict.

Pure arithmetic on numbers the Hub gives (parameter count, dtypes, config.json) and the
GPU's memory; no I/O and nothing but the standard library, so `vllmctl estimate` and
`vllmctl doctor` stay quick. docs/estimate.md has every formula and constant with its
source, and the comparison against vLLM's own startup logs.

vLLM (V1 engine, `vllm/v1/worker/gpu_worker.py` and `vllm/v1/core/kv_cache_utils.py`)
sizes its KV cache as

    available = total GPU memory x gpu_memory_utilization
                - weights - peak activation - non-torch memory - CUDA graphs (0.21+)

and refuses to start when `available` cannot hold the KV cache of one request of
`max_model_len` tokens. This module follows the same sum, per GPU.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from vllmctl.core.quantity import QuantityError, format_bytes, parse_quantity

GiB = 1 << 30
MiB = 1 << 20

# vLLM's KV cache block: 16 tokens (`--block-size` default on CUDA). Memory is handed out
# per block, so one request of L tokens takes ceil(L / 16) blocks.
BLOCK_SIZE = 16

# --- Overhead constants, calibrated against vLLM startup logs (docs/estimate.md). ---
# The peak of vLLM's profiling run is the sampler warm-up: max_num_seqs rows of float32
# logits over the vocabulary, about ten live copies (temperature, top-k/top-p sort values
# and int64 indices, softmax, cumsum, ...). Measured: 9.6 to 9.9 copies on five models.
SAMPLER_LOGIT_COPIES = 9.7
# The forward pass of max_num_batched_tokens tokens: per token, the gated MLP's
# intermediate activations (3 x intermediate / TP) and three hidden-sized tensors, in the
# activation dtype. Matches vLLM's profile of Llama-3.1-8B at 20,000 and 29,000 tokens
# within 0.5%.
FORWARD_INTERMEDIATES = 3
FORWARD_HIDDEN = 3
# Memory allocated outside PyTorch during profiling (cuBLAS workspaces, NCCL buffers):
# vLLM logs 0.09 to 0.35 GiB on one GPU (the top of that range is taken, so suggestions
# err on the safe side) and about 0.55 GiB per GPU with tensor parallelism.
NON_TORCH_SINGLE = 350 * MiB
NON_TORCH_PARALLEL = 600 * MiB
# vLLM 0.21+ profiles CUDA graph memory before sizing the KV cache ("Estimated CUDA graph
# memory: 0.52 GiB" for an 8B model); older releases capture the graphs afterwards, in the
# memory gpu_memory_utilization leaves free.
CUDA_GRAPHS = GiB // 2

# vLLM's defaults (EngineArgs.get_batch_defaults, vllm/engine/arg_utils.py) for the OpenAI
# server: GPUs with at least 70 GiB whose name does not contain "a100" get 1024 sequences
# and 8192 batched tokens; every other GPU 256 and 2048.
LARGE_GPU_MEMORY = 70 * GiB
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
SUGGESTED_LEN_STEP = 256  # "reduce maxModelLen to N": N is a multiple of this
MAX_SUGGESTED_TP = 8  # one node's GPUs
QUANTIZED_BYTES_PER_PARAM = 0.5  # "a quantized variant at 4 bits"


# ----------------------------------------------------------------------------- GPU types


class GpuType(NamedTuple):
    """A GPU model: its canonical name, memory as CUDA reports it, and its node labels."""

    name: str
    memory: int  # bytes, the total CUDA (torch.cuda.mem_get_info) reports: what vLLM uses
    labels: tuple[str, ...]  # node label values that identify it (GFD, AMD, Habana)
    bf16: bool = True  # compute capability >= 8.0 (bfloat16 works)
    approximate: bool = False  # memory not checked against a device's own report


def _gpu(name: str, gib: float, *labels: str, bf16: bool = True, approximate: bool = False) -> GpuType:
    return GpuType(name, round(gib * 1024) * MiB, labels, bf16, approximate)


def _mig(parent: GpuType, profile: str, gib: float) -> GpuType:
    labels = tuple(f"{label}-MIG-{profile}" for label in parent.labels if label.startswith("NVIDIA-"))
    return _gpu(f"{parent.name}-MIG-{profile}", gib, *labels, approximate=True)


# Memory: the total CUDA reports, taken from vLLM logs ("total_gpu_memory (79.15GiB)",
# "Free memory on device (78.57/79.18 GiB)") or PyTorch's out-of-memory messages ("GPU 0
# has a total capacity of 22.03 GiB"); it is a few hundred MiB below nvidia-smi's figure.
# `approximate`: no such report was found; the vendor's size less a similar reserve.
# Labels: NVIDIA GPU feature discovery's `nvidia.com/gpu.product` (the product name with
# spaces as dashes; with mig-strategy=single it ends in -MIG-<profile>), the AMD GPU
# operator's `amd.com/gpu.product-name`, and Habana's device names.
_H100 = _gpu("H100-80GB", 79.18, "NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-SXM5-80GB", "H100")
_A100_80 = _gpu("A100-80GB", 79.15, "NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe")
_A100_40 = _gpu("A100-40GB", 39.39, "NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB")
_V100_32 = ("Tesla-V100-SXM2-32GB", "Tesla-V100-PCIE-32GB", "Tesla-V100S-PCIE-32GB")
_MI250 = ("AMD_Instinct_MI250X", "AMD_Instinct_MI250", "AMD-Instinct-MI250X", "AMD-Instinct-MI250")
GPU_TYPES: tuple[GpuType, ...] = (
    _H100,
    _gpu("H100-NVL", 93.10, "NVIDIA-H100-NVL", approximate=True),
    _gpu("H200", 139.81, "NVIDIA-H200", "NVIDIA-H200-NVL", "NVIDIA-H200-SXM5-141GB", approximate=True),
    _gpu("B200", 178.35, "NVIDIA-B200", approximate=True),
    _A100_80,
    _A100_40,
    # MIG instances: the profile's memory as `nvidia-smi mig -lgip` lists it.
    _mig(_A100_80, "1g.10gb", 9.50),
    _mig(_A100_80, "2g.20gb", 19.50),
    _mig(_A100_80, "3g.40gb", 39.25),
    _mig(_A100_80, "7g.80gb", 78.75),
    _mig(_A100_40, "1g.5gb", 4.75),
    _mig(_A100_40, "3g.20gb", 19.62),
    _mig(_H100, "1g.10gb", 9.75),
    _mig(_H100, "3g.40gb", 39.50),
    _gpu("L40S", 44.52, "NVIDIA-L40S"),
    _gpu("L40", 44.52, "NVIDIA-L40"),
    _gpu("A40", 44.52, "NVIDIA-A40"),
    _gpu("RTX-A6000", 47.54, "NVIDIA-RTX-A6000", approximate=True),
    _gpu("L4", 22.03, "NVIDIA-L4"),
    _gpu("A10G", 21.99, "NVIDIA-A10G"),
    _gpu("A10", 21.99, "NVIDIA-A10"),
    _gpu("RTX-4090", 23.64, "NVIDIA-GeForce-RTX-4090"),
    _gpu("RTX-3090", 23.58, "NVIDIA-GeForce-RTX-3090"),
    _gpu("T4", 14.74, "Tesla-T4", bf16=False),
    _gpu("V100-32GB", 31.74, *_V100_32, bf16=False, approximate=True),
    _gpu("V100-16GB", 15.77, "Tesla-V100-SXM2-16GB", "Tesla-V100-PCIE-16GB", bf16=False, approximate=True),
    _gpu("MI300X", 191.98, "AMD_Instinct_MI300X_OAM", "AMD-Instinct-MI300X", "MI300X", approximate=True),
    _gpu("MI250", 63.98, *_MI250, approximate=True),
    _gpu("Gaudi2", 94.62, "HL-225", "HL-225D", "Gaudi2", approximate=True),
    _gpu("Gaudi3", 126.50, "HL-325L", "HL-328", "Gaudi3", approximate=True),
)

# Words a label adds that do not tell GPUs apart: vendors, brands and form factors.
_NOISE = frozenset(
    {"nvidia", "tesla", "geforce", "amd", "instinct", "intel", "habana", "sxm", "sxm2", "sxm4", "sxm5"}
    | {"pcie", "hbm3", "hbm3e", "oam", "mxm", "gpu"}
)


def _key(text: str) -> str:
    """`NVIDIA-A100-SXM4-80GB` and `a100 80gb` -> `a100-80gb` (MIG profiles keep their dot)."""
    words = re.split(r"[\s_\-]+", text.strip().lower())
    return "-".join(word for word in words if word and word not in _NOISE)


_BY_NAME = {gpu.name.lower(): gpu for gpu in GPU_TYPES}
_BY_LABEL = {label.lower(): gpu for gpu in GPU_TYPES for label in gpu.labels}
_BY_KEY: dict[str, GpuType] = {}
for _entry in GPU_TYPES:
    for _text in (_entry.name, *_entry.labels):
        _BY_KEY.setdefault(_key(_text), _entry)


def gpu_type(name_or_label: str) -> GpuType | None:
    """The GPU type with this canonical name or node label (case-insensitive; -PCIE/-SXM4
    and vendor words do not matter), or None."""
    text = name_or_label.strip().lower()
    return _BY_NAME.get(text) or _BY_LABEL.get(text) or _BY_KEY.get(_key(text))


class GpuMemoryError(ValueError):
    """Text that is not a GPU memory size."""


# GPU memory is binary whatever the vendor writes: an "80GB" A100 has 81920 MiB.
_UNIT_ALIASES = {"mb": "Mi", "mib": "Mi", "gb": "Gi", "gib": "Gi", "tb": "Ti", "tib": "Ti"}
_MEMORY_TEXT = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z]*)")


def parse_gpu_memory(text: str) -> int:
    """Bytes from `80Gi`, `80GiB`, `24GB`, `81920MiB` or a Kubernetes quantity (`80G` is
    10^9-based); `GB` is read as GPU vendors and nvidia-smi use it, binary."""
    match = _MEMORY_TEXT.fullmatch(text.strip())
    if match is None:
        raise GpuMemoryError(f"{text!r} is not a memory size (try 80Gi)")
    unit = _UNIT_ALIASES.get(match["unit"].lower(), match["unit"])
    try:
        value = parse_quantity(match["number"] + unit)
    except QuantityError:
        raise GpuMemoryError(f"{text!r} is not a memory size (try 80Gi)") from None
    if value < GiB:
        raise GpuMemoryError(f"{text!r} is less than 1Gi: give a unit, e.g. 80Gi")
    return int(value)


def vllm_batch_defaults(gpu_memory: int, gpu_name: str = "") -> tuple[int, int]:
    """vLLM's default (max_num_batched_tokens, max_num_seqs) for `vllm serve` on this GPU."""
    if gpu_memory >= LARGE_GPU_MEMORY and "a100" not in gpu_name.lower():
        return 8192, 1024
    return 2048, 256


# ------------------------------------------------------------------------- model config


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of a config: `text_config` (multimodal models),
    `llm_config` or `language_config` when present, over the top level's keys."""
    for key in ("text_config", "llm_config", "language_config"):
        inner = config.get(key)
        if isinstance(inner, Mapping) and inner:
            return {**config, **inner}
    return config


class ConfigError(ValueError):
    """A config.json without a number the estimate needs."""


def _int(config: Mapping[str, Any], *keys: str, default: int | None = None) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return int(value)
    if default is None:
        raise ConfigError(f"config.json has none of {', '.join(keys)}")
    return default


class Dims(NamedTuple):
    """The shape numbers of a decoder that the estimate uses."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int


def dims(config: Mapping[str, Any]) -> Dims:
    """The decoder's dimensions, under the names the common architectures use."""
    cfg = text_config(config)
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model", "dim")
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    heads = _int(cfg, "num_attention_heads", "n_head", "num_heads", "n_heads")
    kv_default = 1 if cfg.get("multi_query") else heads
    kv_heads = _int(
        cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num", default=kv_default
    )
    head_dim = _int(cfg, "head_dim", default=hidden // heads)
    intermediate = _int(cfg, "intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", default=4 * hidden)
    vocab = _int(cfg, "vocab_size", "padded_vocab_size", default=32000)
    return Dims(hidden, layers, heads, kv_heads, head_dim, intermediate, vocab)


# Architectures whose q/k/v projections carry biases without saying so in config.json.
_QKV_BIAS_MODELS = frozenset({"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"})
# Architectures whose MLP is two plain matrices (up, down) rather than gated (gate, up, down).
_PLAIN_MLP_MODELS = frozenset(
    {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "starcoder2", "gpt_bigcode"}
)
# Architectures that tie the output projection to the embeddings when config.json is silent.
_TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "gpt2", "opt", "gpt_bigcode"})


def param_count_from_config(config: Mapping[str, Any]) -> int:
    """Approximate parameter count of the language model, for repos without safetensors
    metadata: embeddings (tied or not), attention (GQA, MLA), gated or plain MLP, norms,
    and mixture-of-experts layers. Vision towers are not counted."""
    cfg = text_config(config)
    d = dims(cfg)
    model_type = str(cfg.get("model_type", ""))
    tied = cfg.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT)
    embeddings = d.vocab * d.hidden * (1 if tied else 2)
    per_layer_attention = _attention_params(cfg, d, model_type)
    plain_mlp = model_type in _PLAIN_MLP_MODELS
    dense_mlp = (2 if plain_mlp else 3) * d.hidden * d.intermediate
    experts = _int(cfg, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", default=0)
    moe_layers = 0
    moe_mlp = 0
    if experts:
        expert_size = _int(cfg, "moe_intermediate_size", "expert_intermediate_size", default=d.intermediate)
        moe_mlp = experts * 3 * d.hidden * expert_size + d.hidden * experts  # experts + router
        shared = _int(cfg, "n_shared_experts", "num_shared_experts", default=0)
        moe_mlp += shared * 3 * d.hidden * expert_size
        shared_size = _int(cfg, "shared_expert_intermediate_size", default=0)
        if shared_size:
            moe_mlp += 3 * d.hidden * shared_size + d.hidden  # shared expert and its gate
        dense_first = _int(cfg, "first_k_dense_replace", default=0)
        step = _int(cfg, "decoder_sparse_step", "moe_layer_freq", default=1)
        moe_layers = len([i for i in range(dense_first, d.layers) if (i + 1) % step == 0])
    dense_layers = d.layers - moe_layers
    norms = 2 * d.hidden * d.layers + d.hidden
    return (
        embeddings + d.layers * per_layer_attention + dense_layers * dense_mlp + moe_layers * moe_mlp + norms
    )


def _attention_params(cfg: Mapping[str, Any], d: Dims, model_type: str) -> int:
    if cfg.get("kv_lora_rank"):  # multi-head latent attention (DeepSeek V2/V3, Kimi)
        rope = _int(cfg, "qk_rope_head_dim", default=64)
        nope = _int(cfg, "qk_nope_head_dim", default=128)
        v_dim = _int(cfg, "v_head_dim", default=128)
        kv_rank = _int(cfg, "kv_lora_rank")
        q_rank = _int(cfg, "q_lora_rank", default=0)
        q = (
            d.hidden * q_rank + q_rank + q_rank * d.heads * (nope + rope)
            if q_rank
            else d.hidden * d.heads * (nope + rope)
        )
        kv = d.hidden * (kv_rank + rope) + kv_rank + kv_rank * d.heads * (nope + v_dim)
        return q + kv + d.heads * v_dim * d.hidden
    q_size = d.heads * d.head_dim
    kv_size = d.kv_heads * d.head_dim
    params = d.hidden * q_size + 2 * d.hidden * kv_size + q_size * d.hidden
    if cfg.get("attention_bias", model_type in _QKV_BIAS_MODELS):
        params += q_size + 2 * kv_size
    return params


# --------------------------------------------------------------------------------- dtypes

# Bytes per stored element, by the safetensors dtype names the Hub reports. Packed formats
# (GPTQ/AWQ in I32, bitsandbytes in U8) are counted by the Hub in stored elements, so these
# give their true size too.
_STORED_BYTES = {
    **dict.fromkeys(("F64", "I64", "U64"), 8.0),
    **dict.fromkeys(("F32", "I32", "U32"), 4.0),
    **dict.fromkeys(("BF16", "F16", "I16", "U16"), 2.0),
    **dict.fromkeys(("F8_E4M3", "F8_E5M2", "F8_E8M0", "I8", "U8", "BOOL"), 1.0),
    **dict.fromkeys(("F4", "FP4", "I4", "U4", "INT4"), 0.5),
}
_FLOAT_STORAGE = frozenset({"F64", "F32", "BF16", "F16"})
# vLLM's --dtype choices and the torch_dtype spellings config.json uses.
_SERVE_BYTES = {
    **dict.fromkeys(("half", "float16", "fp16", "bfloat16", "bf16"), 2.0),
    **dict.fromkeys(("float", "float32", "fp32"), 4.0),
}


def bytes_per_param(dtype: str, config: Mapping[str, Any] | None = None) -> float:
    """Bytes per element for a safetensors dtype (`BF16`, `F8_E4M3`, `I8`, `I4`...) or a
    vLLM `--dtype` value; `auto` is the config's torch_dtype, 2 bytes for float32
    checkpoints (vLLM serves those in 16 bits) or when the config does not say."""
    text = dtype.strip()
    if text.upper() in _STORED_BYTES:
        return _STORED_BYTES[text.upper()]
    lowered = text.lower().removeprefix("torch.")
    if lowered == "auto":
        return _SERVE_BYTES.get(serving_dtype(config or {}), 2.0)
    if lowered in _SERVE_BYTES:
        return _SERVE_BYTES[lowered]
    if lowered in ("int8", "fp8", "float8", "float8_e4m3fn", "float8_e5m2", "uint8"):
        return 1.0
    if lowered in ("int4", "fp4", "nvfp4", "mxfp4"):
        return 0.5
    raise ValueError(f"unknown dtype {dtype!r}")


_dtype_bytes = bytes_per_param  # estimate() has a parameter of that name


def serving_dtype(config: Mapping[str, Any], dtype: str = "auto") -> str:
    """The dtype vLLM computes in for `--dtype` (auto: config.json's torch_dtype, with
    float32 checkpoints served in bfloat16)."""
    if dtype.lower() != "auto":
        return {"half": "float16", "float": "float32"}.get(dtype.lower(), dtype.lower())
    cfg = text_config(config)
    declared = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16").lower().removeprefix("torch.")
    return "bfloat16" if declared in ("float32", "float") else declared


def weight_bytes_per_param(
    parameter_dtypes: Mapping[str, int], dtype: str = "auto", config: Mapping[str, Any] | None = None
) -> float:
    """Average bytes per parameter as vLLM loads the weights: float tensors in the serving
    dtype, quantized ones (I8, I32-packed, F8, U8) as stored."""
    serve = bytes_per_param(serving_dtype(config or {}, dtype))
    total = sum(parameter_dtypes.values())
    if total <= 0:
        return serve
    size = 0.0
    for name, count in parameter_dtypes.items():
        stored = name.upper()
        size += count * (serve if stored in _FLOAT_STORAGE else _STORED_BYTES.get(stored, serve))
    return size / total


def config_bytes_per_param(config: Mapping[str, Any], dtype: str = "auto") -> float:
    """Bytes per parameter from config.json alone: its quantization_config's bits, fp8, or
    the serving dtype."""
    quant = text_config(config).get("quantization_config") or config.get("quantization_config")
    if isinstance(quant, Mapping):
        bits = quant.get("bits") or quant.get("w_bit") or quant.get("weight_bits")
        if isinstance(bits, int | float) and not isinstance(bits, bool) and bits > 0:
            return float(bits) / 8
        if str(quant.get("quant_method", "")).lower() in ("fp8", "fbgemm_fp8", "compressed-tensors"):
            return 1.0
    return bytes_per_param(serving_dtype(config, dtype))


# The keys vLLM reads a model's context length from (the smallest one wins).
_LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)


def default_max_model_len(config: Mapping[str, Any]) -> int:
    """The context length vLLM derives from config.json when maxModelLen is not set: the
    smallest of the length keys, stretched by a rope scaling factor (not for llama3,
    longrope or mrope, whose max_position_embeddings already counts it)."""
    cfg = text_config(config)
    found = [cfg[key] for key in _LENGTH_KEYS if isinstance(cfg.get(key), int) and cfg[key] > 0]
    length = min(found) if found else 2048
    scaling = cfg.get("rope_scaling")
    if isinstance(scaling, Mapping):
        kind = str(scaling.get("rope_type") or scaling.get("type") or "")
        factor = scaling.get("factor")
        if kind not in ("su", "longrope", "llama3", "mrope", "default") and isinstance(factor, int | float):
            if kind == "yarn" and isinstance(scaling.get("original_max_position_embeddings"), int):
                length = scaling["original_max_position_embeddings"]
            length = int(length * factor)
    return length


# ------------------------------------------------------------------------------ KV cache


def kv_layers(config: Mapping[str, Any]) -> int:
    """Layers that keep a KV cache: all of them, except the linear-attention/SSM layers a
    hybrid model lists in `layer_types`."""
    cfg = text_config(config)
    layers = dims(cfg).layers
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        return len([kind for kind in types if "attention" in str(kind) and "linear" not in str(kind)])
    return layers


def kv_cache_bytes_per_token(
    config: Mapping[str, Any], kv_dtype_bytes: float, tensor_parallel_size: int = 1
) -> int:
    """KV cache bytes one token takes on one GPU:
    2 (K and V) x layers x KV heads per GPU x head_dim x bytes, where head_dim is config's
    head_dim or hidden_size / num_attention_heads and the KV heads split across tensor
    parallel GPUs (at least one each). MLA models (DeepSeek) keep one latent of
    kv_lora_rank + qk_rope_head_dim per layer, not split."""
    cfg = text_config(config)
    layers = kv_layers(cfg)
    if cfg.get("kv_lora_rank"):
        latent = _int(cfg, "kv_lora_rank") + _int(cfg, "qk_rope_head_dim", default=64)
        return math.ceil(layers * latent * kv_dtype_bytes)
    d = dims(cfg)
    heads_per_gpu = max(1, d.kv_heads // max(1, tensor_parallel_size))
    return math.ceil(2 * layers * heads_per_gpu * d.head_dim * kv_dtype_bytes)


def blocks_for(tokens: int) -> int:
    """KV cache blocks vLLM gives one request of this many tokens."""
    return -(-tokens // BLOCK_SIZE)


# ------------------------------------------------------------------------------ overhead


class Overhead(NamedTuple):
    """What vLLM takes from the budget besides weights and KV cache, per GPU."""

    activation: int  # peak of the profiling run (forward pass or sampler warm-up)
    non_torch: int  # cuBLAS/NCCL memory outside PyTorch
    cuda_graphs: int  # vLLM 0.21+ only

    @property
    def total(self) -> int:
        """All three."""
        return self.activation + self.non_torch + self.cuda_graphs


def overhead_bytes(
    config: Mapping[str, Any],
    *,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    tensor_parallel_size: int = 1,
    activation_bytes: float = 2.0,
    cuda_graphs: bool = True,
) -> Overhead:
    """The calibrated overhead (see the constants above and docs/estimate.md)."""
    d = dims(config)
    cfg = text_config(config)
    tp = max(1, tensor_parallel_size)
    rows = min(max_num_seqs, max_num_batched_tokens)
    sampler = SAMPLER_LOGIT_COPIES * rows * d.vocab * 4
    intermediate = d.intermediate
    experts_per_token = _int(cfg, "num_experts_per_tok", "moe_top_k", default=0)
    if experts_per_token:
        intermediate = experts_per_token * _int(cfg, "moe_intermediate_size", default=d.intermediate)
    per_token = FORWARD_INTERMEDIATES * intermediate / tp + FORWARD_HIDDEN * d.hidden
    forward = max_num_batched_tokens * per_token * activation_bytes
    non_torch = NON_TORCH_PARALLEL if tp > 1 else NON_TORCH_SINGLE
    return Overhead(int(max(sampler, forward)), non_torch, CUDA_GRAPHS if cuda_graphs else 0)


# ------------------------------------------------------------------------------ estimate


class Suggestion(NamedTuple):
    """One change that makes the model fit."""

    kind: str  # "max_model_len", "tensor_parallel_size" or "quantize"
    value: float  # the new maxModelLen or tensorParallelSize, or bytes per parameter
    text: str


class Estimate(NamedTuple):
    """The numbers behind the verdict, per GPU unless a name says otherwise."""

    parameters: int
    bytes_per_param: float
    gpu_memory: int
    gpu_memory_utilization: float
    tensor_parallel_size: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    weights: int  # bytes of weights on each GPU
    kv_bytes_per_token: int
    kv_one_sequence: int  # the KV cache of one max_model_len request, in whole blocks
    kv_all_sequences: int  # KV per token x max_model_len x max_num_seqs
    overhead: Overhead
    budget: int  # gpu_memory x gpu_memory_utilization
    kv_available: int  # budget - weights - overhead (negative: the weights do not fit)
    kv_tokens: int  # vLLM's "GPU KV cache size: N tokens"
    max_concurrency: float  # requests of max_model_len tokens the KV cache holds at once
    fits: bool  # vLLM will start: the KV cache holds one max_model_len request
    kv_shape: str  # how kv_bytes_per_token was computed, in words
    suggestions: tuple[Suggestion, ...] = ()
    warnings: tuple[str, ...] = ()
    stage: str | None = None  # a multi-node model: which pipeline stage the numbers are for

    def lines(self) -> list[str]:
        """The numbers behind the verdict, in plain words."""
        tp = self.tensor_parallel_size
        gpus = f"{tp} GPUs" if tp > 1 else "1 GPU"
        out = [f"pipeline: {self.stage}"] if self.stage else []
        out += [
            f"weights: {_gib(self.weights)} per GPU ({self.parameters:,} parameters x "
            f"{self.bytes_per_param:g} bytes / {gpus})",
            f"KV cache per token: {_bytes_text(self.kv_bytes_per_token)} per GPU ({self.kv_shape})",
            f"one {self.max_model_len:,}-token request needs {_gib(self.kv_one_sequence)} of KV cache; "
            f"{self.max_num_seqs:,} of them (maxNumSeqs) would need {_gib(self.kv_all_sequences)}",
            f"overhead: {_gib(self.overhead.total)} (activations {_gib(self.overhead.activation)}, "
            f"non-torch {_gib(self.overhead.non_torch)}, CUDA graphs {_gib(self.overhead.cuda_graphs)})",
            f"budget: {_gib(self.gpu_memory)} x {self.gpu_memory_utilization:g} = {_gib(self.budget)}",
            f"KV cache available: {_gib(self.budget)} - {_gib(self.weights)} - {_gib(self.overhead.total)} "
            f"= {_gib(self.kv_available)} = {self.kv_tokens:,} tokens",
            f"max concurrency at {self.max_model_len:,} tokens per request: {self.max_concurrency:.2f}x",
        ]
        if self.fits:
            out.append(f"verdict: fits ({self.max_concurrency:.2f} full-length requests at once)")
        elif self.kv_available <= 0:
            out.append(
                "verdict: does not fit: weights and overhead exceed the budget "
                "(vLLM: no available memory for the cache blocks)"
            )
        else:
            out.append(
                f"verdict: does not fit: one {self.max_model_len:,}-token request needs "
                f"{_gib(self.kv_one_sequence)} but only {_gib(self.kv_available)} is left "
                "(vLLM refuses to start)"
            )
        out.extend(f"warning: {text}" for text in self.warnings)
        out.extend(f"suggestion: {item.text}" for item in self.suggestions)
        return out

    def as_json(self) -> dict[str, Any]:
        """Plain numbers (bytes, tokens) for `-o json`."""
        return {
            "fits": self.fits,
            "parameters": self.parameters,
            "bytesPerParam": self.bytes_per_param,
            "gpuMemory": self.gpu_memory,
            "gpuMemoryUtilization": self.gpu_memory_utilization,
            "tensorParallelSize": self.tensor_parallel_size,
            "maxModelLen": self.max_model_len,
            "maxNumSeqs": self.max_num_seqs,
            "maxNumBatchedTokens": self.max_num_batched_tokens,
            "weightsPerGpu": self.weights,
            "kvBytesPerToken": self.kv_bytes_per_token,
            "kvOneSequence": self.kv_one_sequence,
            "kvAllSequences": self.kv_all_sequences,
            "overhead": {
                "activation": self.overhead.activation,
                "nonTorch": self.overhead.non_torch,
                "cudaGraphs": self.overhead.cuda_graphs,
                "total": self.overhead.total,
            },
            "budget": self.budget,
            "kvAvailable": self.kv_available,
            "kvTokens": self.kv_tokens,
            "maxConcurrency": round(self.max_concurrency, 2),
            "suggestions": [{"kind": s.kind, "value": s.value, "text": s.text} for s in self.suggestions],
            "warnings": list(self.warnings),
            **({"pipelineStage": self.stage} if self.stage else {}),
        }


def _gib(amount: int) -> str:
    return f"{amount / GiB:.2f} GiB"


def _bytes_text(amount: int) -> str:
    # 131072 -> "128 KiB", 1536 -> "1.5 KiB", 512 -> "512 bytes"
    text = format_bytes(Decimal(amount))
    if text.isdigit():
        return f"{text} bytes"
    return f"{text[:-2]} {text[-2:]}B"


def estimate(
    parameters: int,
    bytes_per_param: float,
    config: Mapping[str, Any],
    gpu_memory: int,
    *,
    max_model_len: int | None = None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    tensor_parallel_size: int = 1,
    dtype: str = "auto",
    kv_dtype_bytes: float | None = None,
    gpu_name: str = "",
    gpu_bf16: bool = True,
    overhead: int | None = None,
    cuda_graphs: bool = True,
    suggest: bool = True,
) -> Estimate:
    """Whether vLLM can serve this model on GPUs of `gpu_memory` bytes, and why.

    Defaults follow `vllm serve`: max_model_len from config.json, max_num_seqs and
    max_num_batched_tokens by GPU size and name, KV cache in the serving dtype. `overhead`
    replaces the calibrated activation/non-torch/CUDA-graph figure (bytes per GPU)."""
    if parameters <= 0:
        raise ValueError("parameters must be positive")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError("gpu_memory_utilization must be in (0, 1]")
    tp = max(1, tensor_parallel_size)
    length = max_model_len or default_max_model_len(config)
    default_tokens, default_seqs = vllm_batch_defaults(gpu_memory, gpu_name)
    batched = max_num_batched_tokens or default_tokens
    seqs = max_num_seqs or min(default_seqs, batched)
    serve = serving_dtype(config, dtype)
    act_bytes = _dtype_bytes(serve)
    kv_bytes = kv_dtype_bytes if kv_dtype_bytes is not None else act_bytes

    weights = math.ceil(parameters * bytes_per_param / tp)
    per_token = kv_cache_bytes_per_token(config, kv_bytes, tp)
    one = blocks_for(length) * BLOCK_SIZE * per_token
    every = per_token * length * seqs
    if overhead is None:
        extra = overhead_bytes(
            config,
            max_num_seqs=seqs,
            max_num_batched_tokens=batched,
            tensor_parallel_size=tp,
            activation_bytes=act_bytes,
            cuda_graphs=cuda_graphs,
        )
    else:
        extra = Overhead(overhead, 0, 0)
    budget = int(gpu_memory * gpu_memory_utilization)
    available = budget - weights - extra.total
    blocks = max(0, available) // (BLOCK_SIZE * per_token)
    tokens = blocks * BLOCK_SIZE
    concurrency = blocks / blocks_for(length)
    fits = available > 0 and one <= available

    warnings: list[str] = []
    if not gpu_bf16 and serve == "bfloat16":
        warnings.append("this GPU has no bfloat16 (compute capability < 8.0): set vllmConfig.dtype to half")
    if fits and concurrency < 1.5:
        warnings.append(
            f"only {concurrency:.2f} full-length requests fit at once; longer requests will queue"
        )
    result = Estimate(
        parameters=parameters,
        bytes_per_param=bytes_per_param,
        gpu_memory=gpu_memory,
        gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tp,
        max_model_len=length,
        max_num_seqs=seqs,
        max_num_batched_tokens=batched,
        weights=weights,
        kv_bytes_per_token=per_token,
        kv_one_sequence=one,
        kv_all_sequences=every,
        overhead=extra,
        budget=budget,
        kv_available=available,
        kv_tokens=tokens,
        max_concurrency=concurrency,
        fits=fits,
        kv_shape=_kv_shape(config, kv_bytes, tp),
        warnings=tuple(warnings),
    )
    if fits or not suggest:
        return result
    same = {
        "max_model_len": length,
        "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": max_num_batched_tokens,
        "gpu_memory_utilization": gpu_memory_utilization,
        "tensor_parallel_size": tp,
        "dtype": dtype,
        "kv_dtype_bytes": kv_dtype_bytes,
        "gpu_name": gpu_name,
        "gpu_bf16": gpu_bf16,
        "overhead": overhead,
        "cuda_graphs": cuda_graphs,
        "suggest": False,
    }
    return result._replace(
        suggestions=_suggestions(result, parameters, bytes_per_param, config, gpu_memory, same)
    )


def _kv_shape(config: Mapping[str, Any], kv_bytes: float, tp: int) -> str:
    cfg = text_config(config)
    layers = kv_layers(cfg)
    if cfg.get("kv_lora_rank"):
        latent = _int(cfg, "kv_lora_rank") + _int(cfg, "qk_rope_head_dim", default=64)
        return f"{layers} layers x {latent} latent x {kv_bytes:g} bytes"
    d = dims(cfg)
    heads = max(1, d.kv_heads // tp)
    split = f" / {tp} GPUs" if tp > 1 and d.kv_heads >= tp else ""
    return f"2 x {layers} layers x {heads} KV heads{split} x {d.head_dim} head dim x {kv_bytes:g} bytes"


def tensor_parallel_divides(config: Mapping[str, Any], tp: int) -> bool:
    """Whether vLLM can split the model over `tp` GPUs: the attention heads divide evenly,
    and the KV heads divide evenly or are replicated (tp a multiple of them)."""
    d = dims(config)
    return d.heads % tp == 0 and (d.kv_heads % tp == 0 or tp % d.kv_heads == 0)


def _suggestions(
    result: Estimate,
    parameters: int,
    bytes_per_param: float,
    config: Mapping[str, Any],
    gpu_memory: int,
    same: dict[str, Any],
) -> tuple[Suggestion, ...]:
    found: list[Suggestion] = []
    if result.kv_tokens >= SUGGESTED_LEN_STEP:
        length = min(result.kv_tokens, result.max_model_len) // SUGGESTED_LEN_STEP * SUGGESTED_LEN_STEP
        if estimate(
            parameters, bytes_per_param, config, gpu_memory, **{**same, "max_model_len": length}
        ).fits:
            found.append(Suggestion("max_model_len", length, f"reduce maxModelLen to {length:,}"))
    tp = result.tensor_parallel_size * 2
    while tp <= MAX_SUGGESTED_TP:
        if (
            tensor_parallel_divides(config, tp)
            and estimate(
                parameters, bytes_per_param, config, gpu_memory, **{**same, "tensor_parallel_size": tp}
            ).fits
        ):
            found.append(
                Suggestion("tensor_parallel_size", tp, f"use tensorParallelSize {tp} (and requestGPU {tp})")
            )
            break
        tp *= 2
    if bytes_per_param > QUANTIZED_BYTES_PER_PARAM:
        quantized = estimate(parameters, QUANTIZED_BYTES_PER_PARAM, config, gpu_memory, **same)
        if quantized.fits:
            weights = parameters * QUANTIZED_BYTES_PER_PARAM
            found.append(
                Suggestion(
                    "quantize",
                    QUANTIZED_BYTES_PER_PARAM,
                    f"or a quantized variant (about {weights / GiB:.1f} GiB of weights at 4 bits)",
                )
            )
    return tuple(found)


# ------------------------------------------------------------------------------ pipeline stages


def pipeline_stage(
    parameters: int, config: Mapping[str, Any], stages: int
) -> tuple[int, dict[str, Any], str]:
    """One of `stages` pipeline stages (vLLM's --pipeline-parallel-size: each stage holds a
    contiguous share of the layers, with their weights and KV cache): the parameters and a
    config.json of one stage (the most layers any stage gets), and the split in words. An
    even split of the parameters: the first and last stages also hold the embeddings and
    the output head, so they run a little above it."""
    cfg = dict(text_config(config))
    layers = dims(cfg).layers
    per_stage = -(-layers // stages)
    for key in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        if key in cfg:
            cfg[key] = per_stage
            break
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        cfg["layer_types"] = types[:per_stage]
    for key in ("text_config", "llm_config", "language_config"):
        cfg.pop(key, None)  # the stage's keys are at the top now
    share = -(-parameters // stages)
    text = (
        f"one of {stages} stages (pipelineParallelSize), each in its own Ray pod: {per_stage} of "
        f"{layers} layers and about {share:,} of {parameters:,} parameters per stage"
    )
    return share, cfg, text
