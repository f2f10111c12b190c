"""The GPU memory estimate: parameter counts, KV cache per token, verdicts, suggestions, the
GPU table, and the calibration against vLLM's own startup logs (docs/estimate.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.hub import PUBLISHED_MODELS
from vllmctl.ops import estimate as est
from vllmctl.ops.estimate import GiB

# config.json of each model as published on the Hub: the Hub stand-in's table for the models
# it serves, here for the others (the keys the estimate reads, with the published values).
LLAMA_31_8B: dict[str, Any] = PUBLISHED_MODELS["meta-llama/Llama-3.1-8B-Instruct"]["config"]
LLAMA_31_70B: dict[str, Any] = PUBLISHED_MODELS["meta-llama/Llama-3.1-70B-Instruct"]["config"]
MISTRAL_7B_V03: dict[str, Any] = PUBLISHED_MODELS["mistralai/Mistral-7B-Instruct-v0.3"]["config"]
QWEN25_05B: dict[str, Any] = PUBLISHED_MODELS["Qwen/Qwen2.5-0.5B-Instruct"]["config"]
QWEN25_7B: dict[str, Any] = PUBLISHED_MODELS["Qwen/Qwen2.5-7B-Instruct"]["config"]
MIXTRAL_8X7B: dict[str, Any] = {
    **MISTRAL_7B_V03,
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 32000,
}
QWEN3_30B_A3B: dict[str, Any] = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "attention_bias": False,
    "decoder_sparse_step": 1,
    "head_dim": 128,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "max_position_embeddings": 40960,
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 768,
    "num_attention_heads": 32,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 48,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 151936,
}
DEEPSEEK_V3: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "first_k_dense_replace": 3,
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "kv_lora_rank": 512,
    "max_position_embeddings": 163840,
    "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048,
    "moe_layer_freq": 1,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_attention_heads": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 61,
    "num_key_value_heads": 128,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "v_head_dim": 128,
    "vocab_size": 129280,
}
QWEN3_CODER_480B: dict[str, Any] = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "head_dim": 128,
    "hidden_size": 6144,
    "intermediate_size": 8192,
    "max_position_embeddings": 262144,
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 2560,
    "num_attention_heads": 96,
    "num_experts": 160,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 62,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 151936,
}

# The safetensors totals the Hub reports for each repo.
TRUE_COUNTS = [
    ("meta-llama/Llama-3.1-8B", LLAMA_31_8B, 8_030_261_248),
    ("meta-llama/Llama-3.1-70B", LLAMA_31_70B, 70_553_706_496),
    ("mistralai/Mistral-7B-v0.3", MISTRAL_7B_V03, 7_248_023_552),
    ("Qwen/Qwen2.5-0.5B", QWEN25_05B, 494_032_768),
    ("Qwen/Qwen2.5-7B", QWEN25_7B, 7_615_616_512),
    ("mistralai/Mixtral-8x7B-v0.1", MIXTRAL_8X7B, 46_702_792_704),
    ("Qwen/Qwen3-30B-A3B", QWEN3_30B_A3B, 30_532_122_624),
    ("deepseek-ai/DeepSeek-V3 (without the MTP layer)", DEEPSEEK_V3, 671_026_419_200),
]


def gpu(name: str) -> est.GpuType:
    found = est.gpu_type(name)
    assert found is not None, name
    return found


H100 = gpu("H100-80GB")
L4 = gpu("L4")


@pytest.mark.parametrize(("repo", "config", "true"), TRUE_COUNTS, ids=[row[0] for row in TRUE_COUNTS])
def test_the_config_approximation_is_within_5_percent_of_the_true_count(
    repo: str, config: dict[str, Any], true: int
) -> None:
    assert est.param_count_from_config(config) == pytest.approx(true, rel=0.05)


def test_the_dense_counts_are_exact() -> None:
    # Embeddings, GQA attention (Qwen2's q/k/v biases), gated MLP and norms add up exactly.
    for _, config, true in TRUE_COUNTS[:5]:
        assert est.param_count_from_config(config) == true


def test_a_multimodal_config_is_read_through_its_text_config() -> None:
    wrapped = {"model_type": "llava", "vision_config": {"hidden_size": 1024}, "text_config": LLAMA_31_8B}
    assert est.param_count_from_config(wrapped) == 8_030_261_248
    assert est.kv_cache_bytes_per_token(wrapped, 2) == 131072
    assert est.default_max_model_len(wrapped) == 131072


@pytest.mark.parametrize(
    ("config", "kv_bytes", "tp", "by_hand"),
    [
        (LLAMA_31_8B, 2, 1, 2 * 32 * 8 * 128 * 2),  # 131072: 128 KiB per token
        (QWEN25_7B, 2, 1, 2 * 28 * 4 * (3584 // 28) * 2),  # 57344
        (QWEN25_05B, 2, 1, 2 * 24 * 2 * (896 // 14) * 2),  # 12288
        (MISTRAL_7B_V03, 1, 1, 2 * 32 * 8 * 128 * 1),  # fp8 KV cache
        (LLAMA_31_70B, 2, 4, 2 * 80 * (8 // 4) * 128 * 2),  # KV heads split over 4 GPUs
        (QWEN25_05B, 2, 4, 2 * 24 * 1 * 64 * 2),  # 2 KV heads on 4 GPUs: one each
        (QWEN3_30B_A3B, 2, 1, 2 * 48 * 4 * 128 * 2),  # explicit head_dim
        (DEEPSEEK_V3, 2, 8, 61 * (512 + 64) * 2),  # MLA: one latent per layer, not split
    ],
)
def test_kv_bytes_per_token_is_the_documented_formula(
    config: dict[str, Any], kv_bytes: int, tp: int, by_hand: int
) -> None:
    assert est.kv_cache_bytes_per_token(config, kv_bytes, tp) == by_hand


def test_head_dim_from_the_config_wins_over_hidden_size_by_heads() -> None:
    nemo = {**MISTRAL_7B_V03, "hidden_size": 5120, "head_dim": 128, "num_hidden_layers": 40}
    assert est.kv_cache_bytes_per_token(nemo, 2) == 2 * 40 * 8 * 128 * 2


def test_hybrid_models_count_only_their_attention_layers() -> None:
    hybrid = {**LLAMA_31_8B, "layer_types": ["linear_attention"] * 24 + ["full_attention"] * 8}
    assert est.kv_cache_bytes_per_token(hybrid, 2) == 2 * 8 * 8 * 128 * 2


def test_llama_8b_fits_an_h100_with_vllm_defaults() -> None:
    result = est.estimate(8_030_261_248, 2, LLAMA_31_8B, H100.memory, gpu_name=H100.name)
    assert result.fits
    assert result.max_model_len == 131072
    assert result.max_num_seqs == 1024  # vLLM's default on >= 70 GiB GPUs other than A100
    assert result.kv_bytes_per_token == 131072
    assert result.kv_one_sequence == 16 * GiB
    assert result.kv_all_sequences == 131072 * 131072 * 1024
    assert result.weights == 8_030_261_248 * 2
    assert result.budget == int(H100.memory * 0.9)
    assert result.kv_available == result.budget - result.weights - result.overhead.total
    assert result.kv_tokens == result.kv_available // (16 * 131072) * 16
    assert result.max_concurrency == pytest.approx(result.kv_tokens / 131072)
    assert result.suggestions == ()


def test_llama_8b_at_full_context_does_not_fit_an_l4_and_says_what_would() -> None:
    result = est.estimate(8_030_261_248, 2, LLAMA_31_8B, L4.memory, gpu_name=L4.name)
    assert not result.fits
    assert result.max_num_seqs == 256
    kinds = {item.kind: item for item in result.suggestions}
    assert kinds["max_model_len"].value % est.SUGGESTED_LEN_STEP == 0
    assert kinds["max_model_len"].text == f"reduce maxModelLen to {int(kinds['max_model_len'].value):,}"
    assert kinds["tensor_parallel_size"].value == 2
    assert any("does not fit" in line for line in result.lines())


def test_llama_8b_with_8k_context_fits_an_l4() -> None:
    assert est.estimate(8_030_261_248, 2, LLAMA_31_8B, L4.memory, max_model_len=8192, gpu_name="L4").fits


def test_llama_70b_in_bf16_needs_four_h100s() -> None:
    one = est.estimate(70_553_706_496, 2, LLAMA_31_70B, H100.memory, gpu_name=H100.name)
    assert not one.fits
    assert one.kv_available < 0  # the weights alone exceed the budget
    assert "max_model_len" not in {item.kind for item in one.suggestions}
    tp = next(item for item in one.suggestions if item.kind == "tensor_parallel_size")
    assert tp.value == 4
    assert est.estimate(
        70_553_706_496, 2, LLAMA_31_70B, H100.memory, tensor_parallel_size=4, gpu_name=H100.name
    ).fits
    # At 4 bits the weights fit one H100, but a 131,072-token request (40 GiB) does not...
    assert "quantize" not in {item.kind for item in one.suggestions}
    # ...while a 32,768-token one does.
    shorter = est.estimate(70_553_706_496, 2, LLAMA_31_70B, H100.memory, max_model_len=32768, gpu_name="H100")
    quantized = next(item for item in shorter.suggestions if item.kind == "quantize")
    assert quantized.text == "or a quantized variant (about 32.9 GiB of weights at 4 bits)"


MODELS = [(LLAMA_31_8B, 8_030_261_248), (LLAMA_31_70B, 70_553_706_496), (QWEN25_7B, 7_615_616_512)]
MODELS += [(QWEN25_05B, 494_032_768), (MIXTRAL_8X7B, 46_702_792_704), (DEEPSEEK_V3, 671_026_419_200)]


def test_every_suggestion_fits_when_applied() -> None:
    checked = 0
    for config, parameters in MODELS:
        for gpu in est.GPU_TYPES:
            for length in (None, 32768, 8192):
                for bpp in (2.0, 1.0):
                    common: dict[str, Any] = {"max_model_len": length, "gpu_name": gpu.name}
                    result = est.estimate(parameters, bpp, config, gpu.memory, **common)
                    if result.fits:
                        assert not result.suggestions
                        continue
                    for item in result.suggestions:
                        changed = dict(common)
                        size = bpp
                        if item.kind == "max_model_len":
                            changed["max_model_len"] = int(item.value)
                            assert int(item.value) < result.max_model_len
                        elif item.kind == "tensor_parallel_size":
                            changed["tensor_parallel_size"] = int(item.value)
                        else:
                            size = item.value
                        assert est.estimate(parameters, size, config, gpu.memory, **changed).fits, item
                        checked += 1
    assert checked > 100


def test_the_suggested_length_is_the_largest_multiple_of_256_that_fits() -> None:
    result = est.estimate(8_030_261_248, 2, LLAMA_31_8B, L4.memory, gpu_name="L4")
    length = int(next(item.value for item in result.suggestions if item.kind == "max_model_len"))
    bigger = est.estimate(8_030_261_248, 2, LLAMA_31_8B, L4.memory, max_model_len=length + 256, gpu_name="L4")
    assert not bigger.fits


def test_lines_and_json_give_the_numbers_behind_the_verdict() -> None:
    result = est.estimate(8_030_261_248, 2, LLAMA_31_8B, L4.memory, max_model_len=8192, gpu_name="L4")
    text = "\n".join(result.lines())
    assert "128 KiB per GPU (2 x 32 layers x 8 KV heads x 128 head dim x 2 bytes)" in text
    assert "one 8,192-token request needs 1.00 GiB of KV cache" in text
    assert "verdict: fits" in text
    data = json.loads(json.dumps(result.as_json()))
    assert data["fits"] is True
    assert data["kvBytesPerToken"] == 131072
    assert data["kvOneSequence"] == GiB
    assert data["kvAllSequences"] == 131072 * 8192 * 256
    assert data["overhead"]["total"] == result.overhead.total


def test_an_explicit_overhead_replaces_the_calibrated_one() -> None:
    result = est.estimate(8_030_261_248, 2, LLAMA_31_8B, H100.memory, overhead=3 * GiB)
    assert result.overhead.total == 3 * GiB


def test_bfloat16_on_a_t4_is_warned_about() -> None:
    t4 = gpu("Tesla-T4")
    assert not t4.bf16
    result = est.estimate(494_032_768, 2, QWEN25_05B, t4.memory, gpu_bf16=t4.bf16, max_model_len=4096)
    assert any("bfloat16" in text for text in result.warnings)
    assert not est.estimate(494_032_768, 2, QWEN25_05B, t4.memory, gpu_bf16=False, dtype="half").warnings


# --- Calibration against vLLM's startup logs (the tables in docs/estimate.md). ---


def test_matches_vllm_on_an_h100_within_one_percent() -> None:
    # llm-d-benchmark's H100 logs, Llama-3.1-8B-Instruct, max-model-len 16000, vLLM before
    # 0.21 (CUDA graphs not in the profile): "Available KV cache memory: 51.38 GiB".
    result = est.estimate(
        8_030_261_248,
        2,
        LLAMA_31_8B,
        round(79.18 * GiB),
        max_model_len=16000,
        gpu_name="H100",
        cuda_graphs=False,
    )
    assert result.kv_available / GiB == pytest.approx(51.38, rel=0.01)


def test_matches_vllm_v0_profile_of_llama_8b_on_an_rtx_3090_within_five_percent() -> None:
    # vllm-project/vllm#10517: V0 profiled one 20,000-token prefill; 3.81 GiB, 1,952 blocks.
    result = est.estimate(
        8_030_261_248,
        2,
        LLAMA_31_8B,
        round(23.58 * GiB),
        max_model_len=20000,
        max_num_batched_tokens=20000,
        cuda_graphs=False,
    )
    assert result.kv_available / GiB == pytest.approx(3.81, rel=0.05)
    assert result.kv_tokens == pytest.approx(1952 * 16, rel=0.05)
    assert result.max_concurrency == pytest.approx(1.56, rel=0.05)
    at_29k = est.estimate(
        8_030_261_248,
        2,
        LLAMA_31_8B,
        round(23.58 * GiB),
        max_model_len=29000,
        max_num_batched_tokens=29000,
        cuda_graphs=False,
    )
    assert not at_29k.fits  # vLLM: "larger than ... can be stored in KV cache (23648)"


def test_one_request_needs_what_vllm_says_it_needs() -> None:
    # vllm-project/recipes#12: Qwen3-Coder-480B-A35B at 262,144 tokens, "62.00 GiB KV cache
    # is needed ... the available KV cache memory (48.66 GiB) ... estimated maximum model
    # length is 205728"; with 0.95: 55.65 GiB and 235296.
    per_token = est.kv_cache_bytes_per_token(QWEN3_CODER_480B, 2)
    assert est.blocks_for(262144) * est.BLOCK_SIZE * per_token == 62 * GiB
    for available, vllm_len in ((48.66, 205728), (55.65, 235296)):
        tokens = int(available * GiB) // (est.BLOCK_SIZE * per_token) * est.BLOCK_SIZE
        assert tokens == pytest.approx(vllm_len, abs=32)  # vLLM's GiB figure is rounded


# --- GPU table ---


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("NVIDIA-A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA-A100-80GB-PCIe", "A100-80GB"),
        ("nvidia-a100-pcie-40gb", "A100-40GB"),
        ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
        ("NVIDIA-H100-PCIe", "H100-80GB"),
        ("h100", "H100-80GB"),
        ("NVIDIA-H100-NVL", "H100-NVL"),
        ("NVIDIA-H200", "H200"),
        ("NVIDIA-L4", "L4"),
        ("NVIDIA-L40S", "L40S"),
        ("NVIDIA-A10G", "A10G"),
        ("Tesla-T4", "T4"),
        ("Tesla-V100-SXM2-32GB", "V100-32GB"),
        ("NVIDIA-GeForce-RTX-4090", "RTX-4090"),
        ("rtx 4090", "RTX-4090"),
        ("NVIDIA-A100-SXM4-80GB-MIG-3g.40gb", "A100-80GB-MIG-3g.40gb"),
        ("AMD_Instinct_MI300X_OAM", "MI300X"),
        ("AMD Instinct MI250X", "MI250"),
        ("gaudi2", "Gaudi2"),
        ("a100-80gb", "A100-80GB"),
    ],
)
def test_gpu_types_are_found_by_name_or_node_label(text: str, name: str) -> None:
    found = est.gpu_type(text)
    assert found is not None and found.name == name


def test_unknown_or_ambiguous_gpus_are_none() -> None:
    assert est.gpu_type("A100") is None  # 40 or 80 GB?
    assert est.gpu_type("NVIDIA-Quantum-9000") is None


def test_every_table_entry_is_found_by_its_name_and_labels() -> None:
    names = [gpu.name for gpu in est.GPU_TYPES]
    assert len(names) == len(set(names))
    for gpu in est.GPU_TYPES:
        assert est.gpu_type(gpu.name) == gpu
        assert est.gpu_type(gpu.name.upper()) == gpu
        for label in gpu.labels:
            assert est.gpu_type(label) == gpu
        assert 4 * GiB < gpu.memory < 200 * GiB


def test_the_table_holds_what_cuda_reports_not_the_marketing_figure() -> None:
    assert L4.memory == round(22.03 * 1024) * est.MiB
    assert H100.memory < 80 * GiB


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80Gi", 80 * GiB),
        ("80GiB", 80 * GiB),
        ("24GB", 24 * GiB),
        ("81920MiB", 80 * GiB),
        ("80 GiB", 80 * GiB),
        ("80G", 80 * 10**9),
        ("85899345920", 80 * GiB),
    ],
)
def test_gpu_memory_overrides_parse(text: str, expected: int) -> None:
    assert est.parse_gpu_memory(text) == expected


@pytest.mark.parametrize("text", ["", "eighty", "80", "80Zi", "-1Gi", "80 Gi B"])
def test_bad_gpu_memory_is_refused(text: str) -> None:
    with pytest.raises(est.GpuMemoryError):
        est.parse_gpu_memory(text)


# --- dtypes and defaults ---


@pytest.mark.parametrize(
    ("dtype", "size"),
    [
        ("BF16", 2),
        ("F16", 2),
        ("F32", 4),
        ("F8_E4M3", 1),
        ("I8", 1),
        ("U8", 1),
        ("I4", 0.5),
        ("half", 2),
        ("float16", 2),
        ("bfloat16", 2),
        ("float", 4),
        ("float32", 4),
        ("auto", 2),
    ],
)
def test_bytes_per_param(dtype: str, size: float) -> None:
    assert est.bytes_per_param(dtype) == size


def test_auto_is_the_configs_dtype_and_float32_checkpoints_are_served_in_16_bits() -> None:
    assert est.bytes_per_param("auto", {"torch_dtype": "float32"}) == 2
    assert est.serving_dtype({"torch_dtype": "float16"}) == "float16"
    with pytest.raises(ValueError, match="unknown dtype"):
        est.bytes_per_param("float13")


def test_weights_per_param_follow_the_serving_dtype_for_float_tensors_only() -> None:
    fp8 = {"F8_E4M3": 900, "BF16": 100}
    assert est.weight_bytes_per_param(fp8) == pytest.approx(1.1)
    assert est.weight_bytes_per_param({"BF16": 10}, "float32") == 4
    assert est.weight_bytes_per_param({"F32": 10}, "auto", {"torch_dtype": "float32"}) == 2
    assert est.weight_bytes_per_param({}) == 2


def test_bytes_per_param_from_a_quantization_config() -> None:
    awq = {**LLAMA_31_8B, "quantization_config": {"quant_method": "awq", "bits": 4}}
    assert est.config_bytes_per_param(awq) == 0.5
    assert est.config_bytes_per_param({"quantization_config": {"quant_method": "fp8"}}) == 1
    assert est.config_bytes_per_param(LLAMA_31_8B) == 2


def test_the_default_max_model_len_is_what_vllm_derives() -> None:
    assert est.default_max_model_len(LLAMA_31_8B) == 131072  # llama3 rope: not stretched
    assert est.default_max_model_len(QWEN25_05B) == 32768
    yarn = {**QWEN25_7B, "max_position_embeddings": 32768, "rope_scaling": {"type": "yarn", "factor": 4.0}}
    assert est.default_max_model_len(yarn) == 131072


def test_vllm_batch_defaults_depend_on_gpu_size_and_name() -> None:
    assert est.vllm_batch_defaults(H100.memory, "H100-80GB") == (8192, 1024)
    assert est.vllm_batch_defaults(gpu("A100-80GB").memory, "A100-80GB") == (2048, 256)
    assert est.vllm_batch_defaults(L4.memory, "L4") == (2048, 256)


def test_the_doc_lists_every_gpu_type_with_its_memory() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "estimate.md").read_text()
    for gpu_type in est.GPU_TYPES:
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{gpu_type.name}` |")), None)
        assert row is not None, gpu_type.name
        assert f"| {gpu_type.memory / GiB:.2f} |" in row, gpu_type.name
        assert ("approximate" in row) == gpu_type.approximate, gpu_type.name
        for label in gpu_type.labels:
            assert f"`{label}`" in row, label


def test_a_config_without_the_decoder_shape_is_a_config_error() -> None:
    with pytest.raises(est.ConfigError, match="hidden_size"):
        est.param_count_from_config({"model_type": "mystery"})
