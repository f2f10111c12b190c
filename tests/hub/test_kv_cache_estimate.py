"""`vllmctl estimate` for a model with kvCache: the extra KV capacity its CPU and disk
buffers buy, from the estimate's own KV size per token (docs/kv-cache.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.hub.conftest import Hub

# Qwen2.5-7B: 28 layers, 4 KV heads of 128, bf16: 2 x 28 x 4 x 128 x 2 bytes per token and GPU.
PER_TOKEN = 2 * 28 * 4 * 128 * 2
MODELS = """\
- name: qwen
  modelURL: Qwen/Qwen2.5-7B-Instruct
  requestMemory: 48Gi
  vllmConfig:
    maxModelLen: 8192
  kvCache:
    cpuOffload: 20Gi
    diskOffload: 40Gi
- name: split
  modelURL: Qwen/Qwen2.5-7B-Instruct
  requestGPU: 2
  requestMemory: 48Gi
  vllmConfig:
    tensorParallelSize: 2
  kvCache:
    cpuOffload: 20Gi
- name: plain
  modelURL: Qwen/Qwen2.5-7B-Instruct
"""


@pytest.fixture(autouse=True)
def endpoint(hub: Hub, monkeypatch: pytest.MonkeyPatch, models_file: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    models_file.write_text(MODELS)


def test_estimate_reports_the_tokens_the_buffers_hold(run: Run) -> None:
    result = run("estimate", "qwen", "--gpu", "A100-80GB", "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kvBytesPerToken"] == PER_TOKEN
    offload = report["kvOffload"]
    assert offload["cpuTokens"] == 20 * 2**30 // PER_TOKEN == 374_491
    assert offload["diskTokens"] == 40 * 2**30 // PER_TOKEN
    assert offload["timesGpuCache"] == round(offload["cpuTokens"] / report["kvTokens"], 2)
    text = run("estimate", "qwen", "--gpu", "A100-80GB").stdout
    assert "KV offload (kvCache): CPU 20 GiB / 57,344 bytes per token = 374,491 more tokens (" in text
    assert f"KV offload (kvCache): disk 40 GiB = {40 * 2**30 // PER_TOKEN:,} more tokens" in text


def test_tensor_parallel_counts_every_gpu_share_of_a_token(run: Run) -> None:
    report = json.loads(run("estimate", "split", "--gpu", "A100-80GB", "-o", "json").stdout)
    assert report["kvBytesPerToken"] == PER_TOKEN // 2  # per GPU
    assert report["kvOffload"]["cpuTokens"] == 20 * 2**30 // PER_TOKEN  # the pod's buffer, whole tokens


def test_no_offload_no_figures(run: Run) -> None:
    report = json.loads(run("estimate", "plain", "--gpu", "A100-80GB", "-o", "json").stdout)
    assert "kvOffload" not in report
    assert "KV offload" not in run("estimate", "plain", "--gpu", "A100-80GB").stdout
