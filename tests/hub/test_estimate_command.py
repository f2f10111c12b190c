"""`vllmctl estimate` through the CLI, with the Hub stand-in answering for the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.hub.conftest import Hub

QWEN_7B = 7_615_616_512  # Qwen/Qwen2.5-7B-Instruct's published safetensors total
MODELS = """\
- name: qwen
  modelURL: Qwen/Qwen2.5-7B-Instruct
  requestGPU: 1
  vllmConfig:
    maxModelLen: 8192
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  gated: true
- name: local
  modelURL: pvc://models/qwen
"""


@pytest.fixture(autouse=True)
def endpoint(hub: Hub, monkeypatch: pytest.MonkeyPatch, models_file: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    models_file.write_text(MODELS)


def test_an_entry_uses_its_engine_options(run: Run) -> None:
    result = run("estimate", "qwen", "--gpu", "A100-80GB", "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["fits"] is True
    assert report["maxModelLen"] == 8192  # from the entry, not the model's 32,768
    assert report["parameters"] == QWEN_7B
    assert abs(report["weightsPerGpu"] - QWEN_7B * 2) / (QWEN_7B * 2) < 0.05  # bf16
    # Qwen2.5-7B: 28 layers, 4 KV heads of 128, bf16: 2 x 28 x 4 x 128 x 2 bytes per token.
    assert report["kvBytesPerToken"] == 2 * 28 * 4 * 128 * 2


def test_flags_override_and_a_model_that_does_not_fit_exits_1(run: Run) -> None:
    result = run("estimate", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "T4")
    assert result.exit_code == 1
    assert "does not fit" in result.stdout
    assert "suggestion:" in result.stdout and "tensorParallelSize" in result.stdout
    fits = run("estimate", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "T4", "--tensor-parallel-size", "2")
    assert fits.exit_code == 0, fits.stdout


def test_gpu_memory_overrides_the_type(run: Run) -> None:
    report = json.loads(run("estimate", "qwen", "--gpu-memory", "40Gi", "-o", "json").stdout)
    assert report["gpuMemory"] == 40 * 2**30
    assert report["gpu"]["source"] == "--gpu-memory"


def test_a_gated_model_without_a_token_says_where_to_ask(run: Run, hub: Hub) -> None:
    result = run("estimate", "llama3", "--gpu", "H100-80GB")
    assert result.exit_code == 3
    assert f"request access at {hub.url}/meta-llama/Llama-3.1-8B-Instruct" in result.stderr


def test_bad_input_is_one_sentence(run: Run) -> None:
    unknown_gpu = run("estimate", "qwen", "--gpu", "Z9000")
    assert unknown_gpu.exit_code == 2
    assert "--gpu='Z9000' is not a GPU type vllmctl knows" in unknown_gpu.stderr
    no_gpu = run("estimate", "qwen")  # no flag, no setting, no cluster to ask
    assert no_gpu.exit_code == 2
    assert "give --gpu TYPE or --gpu-memory 80Gi" in no_gpu.stderr
    unknown = run("estimate", "nothing", "--gpu", "L4")
    assert unknown.exit_code == 2
    assert "neither a model in" in unknown.stderr and "qwen, llama3, local" in unknown.stderr
    local = run("estimate", "local", "--gpu", "L4")
    assert local.exit_code == 2 and "not a HuggingFace repo" in local.stderr
    assert "Traceback" not in unknown_gpu.stderr + no_gpu.stderr + unknown.stderr + local.stderr


def test_list_gpus(run: Run) -> None:
    listed = json.loads(run("estimate", "--list-gpus", "-o", "json").stdout)
    names = {g["name"] for g in listed}
    assert {"A100-80GB", "H100-80GB", "L4", "T4"} <= names
    assert "NVIDIA-A100-SXM4-80GB" in next(g for g in listed if g["name"] == "A100-80GB")["labels"]
