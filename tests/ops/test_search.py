"""`vllmctl search` and `add-model --from-search` end to end: the Hub stand-in answers the
list (GET /api/models) and each model's config.json; the sandbox's two nodes of 2 x
NVIDIA-A100-SXM4-80GB (nvidia.com/gpu.product) are the cluster's GPUs."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pexpect
import pytest

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.hub import PUBLISHED_MODELS
from vllmctl.apis.hub import Listing
from vllmctl.ops.gpufit import NodeGpus
from vllmctl.ops.search import (
    Targets,
    choose_targets,
    entry_name,
    judge,
    looks_like_repo,
    tensor_parallel_sizes,
)

GRANTED = "hf_searchGrantedToken0123456789abcdef"
PRIVATE = "acme/Private-7B-Instruct"  # a private copy of Qwen2.5-7B-Instruct's published facts
QWEN_7B = "Qwen/Qwen2.5-7B-Instruct"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"
# No VLLM_GPU_TYPE / VLLM_GPU_MEMORY: the settings choose_targets reads.
NO_SETTINGS = SimpleNamespace(gpu_type=None, gpu_memory=None)
# Download counts the tests give the preloaded repos (the stand-in has 0 otherwise).
DOWNLOADS = {
    "Qwen/Qwen2.5-0.5B-Instruct": 300,
    "Qwen/Qwen2.5-1.5B-Instruct": 200,
    QWEN_7B: 900,
    "meta-llama/Llama-3.1-8B-Instruct": 800,
    LLAMA_70B: 700,
    "mistralai/Mistral-7B-Instruct-v0.3": 600,
}


@pytest.fixture
def hub(cluster: ClusterEnv) -> Iterator[Any]:
    """The Hub stand-in with download counts, a private repo and a token granted it and the
    gated Llama repos (the `cluster` fixture resets it afterwards)."""
    sandbox, stand_in = cluster.sandbox, cluster.sandbox.hub

    def prepare() -> None:
        for repo, downloads in DOWNLOADS.items():
            stand_in.models[repo].downloads = downloads
        qwen = PUBLISHED_MODELS[QWEN_7B]
        stand_in.add_model(
            PRIVATE,
            config=qwen["config"],
            parameters=qwen["parameters"],
            private=True,
            downloads=100,
            license="apache-2.0",
        )
        stand_in.add_token(GRANTED, {PRIVATE, LLAMA_70B, "meta-llama/Llama-3.1-8B-Instruct"})

    sandbox.call(prepare)
    yield stand_in


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """The config.json downloads' threads have ended when the command returns."""
    yield
    assert [t.name for t in threading.enumerate() if t.name.startswith("vllmctl search")] == []


def search(run: Run, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run("search", *args, "-o", "json", env=env)
    assert result.exit_code == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["model"]: m for m in report["models"]}


def test_search_shows_the_hubs_facts_and_the_fit_on_the_nodes(run: Run, hub: Any) -> None:
    report = search(run, "qwen")
    # The most downloaded first; the private repo is not seen without a token.
    assert [m["model"] for m in report["models"]] == [
        QWEN_7B,
        "Qwen/Qwen2.5-0.5B-Instruct",
        "Qwen/Qwen2.5-1.5B-Instruct",
    ]
    assert report["gpus"] == [
        {
            "name": "A100-80GB",
            "memory": report["gpus"][0]["memory"],
            "source": "2 node(s) with up to 2 x A100-80GB",
            "maxGpusPerReplica": 2,
            "nodes": 2,
        }
    ]
    qwen = by_id(report)[QWEN_7B]
    assert qwen["parameters"] == 7_615_616_512  # the safetensors total
    assert (qwen["gated"], qwen["private"], qwen["downloads"], qwen["license"]) == (
        False,
        False,
        900,
        "apache-2.0",
    )
    assert qwen["fits"] is True
    assert qwen["resources"] == {
        "requestGPU": 1,
        "tensorParallelSize": 1,
        # 15.2 GB of bf16 weights: x1.25 host memory, x1.1 storage (at least add-model's 16Gi/50Gi).
        "requestMemory": "18Gi",
        "pvcStorage": "50Gi",
    }
    # The verdict is `vllmctl estimate`'s own, on the same GPU.
    estimate = json.loads(run("estimate", QWEN_7B, "--gpu", "A100-80GB", "-o", "json").stdout)
    assert qwen["estimate"]["kvTokens"] == estimate["kvTokens"]
    assert qwen["estimate"]["weightsPerGpu"] == estimate["weightsPerGpu"]


def test_the_table_and_the_add_model_lines(run: Run, hub: Any) -> None:
    result = run("search", "Qwen2.5-7B")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "PARAMS", "GATED", "DOWNLOADS", "LICENSE", "FITS", "GPUS"]
    assert lines[1].split() == [QWEN_7B, "7.6B", "no", "900", "apache-2.0", "yes", "1", "x", "A100-80GB"]
    assert (
        "vllmctl add-model --name qwen2-5-7b-instruct --model-url Qwen/Qwen2.5-7B-Instruct "
        "--gpus 1 --memory 18Gi --storage 50Gi"
    ) in result.stdout
    assert (
        "GPU: A100-80GB (2 node(s) with up to 2 x A100-80GB), up to 2 per replica (one node's GPUs)"
        in result.stderr
    )


def test_a_token_sees_private_and_gated_repos(
    run: Run, hub: Any, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    anonymous = by_id(search(run, "Instruct", "--limit", "20"))
    assert PRIVATE not in anonymous
    # Gated repos are listed to anyone, but their config.json is not: the fit is unknown.
    llama = anonymous["meta-llama/Llama-3.1-8B-Instruct"]
    assert llama["gated"] is True and llama["fits"] is None
    assert "config.json is gated: a token with access is needed" in llama["reason"]

    with_token = by_id(search(run, "Instruct", "--limit", "20", env={"VLLM_HF_TOKEN": GRANTED}))
    assert with_token[PRIVATE]["private"] is True and with_token[PRIVATE]["fits"] is True
    assert with_token["meta-llama/Llama-3.1-8B-Instruct"]["fits"] is True
    # 141 GB of weights: more than 2 GPUs of 80 GB hold, and the nodes have 2 each.
    big = with_token[LLAMA_70B]
    assert big["fits"] is False and "does not fit 2 x A100-80GB (one node's GPUs)" in big["reason"]
    tokens = [r.token for r in cluster.sandbox.call(lambda: list(hub.requests)) if r.token]
    assert tokens and set(tokens) == {GRANTED}

    # The stored token (set-hf-token) is used when VLLM_HF_TOKEN is not set.
    monkeypatch.setenv("VLLM_SECRET_BACKEND", "kubernetes")
    assert run("create-namespace").exit_code == 0
    assert run("set-hf-token", input=GRANTED + "\n").exit_code == 0
    stored = run("search", "Private", "-o", "json")
    assert stored.exit_code == 0, stored.stderr
    assert [m["model"] for m in json.loads(stored.stdout)["models"]] == [PRIVATE]
    assert GRANTED not in stored.stdout + stored.stderr


def test_a_rejected_token_is_said_and_the_search_goes_on(run: Run, hub: Any) -> None:
    result = run("search", "qwen", "-o", "json", env={"VLLM_HF_TOKEN": "hf_not_a_known_token"})
    assert result.exit_code == 0, result.stderr
    assert "rejected the HuggingFace token" in result.stderr
    assert "hf_not_a_known_token" not in result.stdout + result.stderr
    assert len(json.loads(result.stdout)["models"]) == 3


def test_fits_keeps_only_the_models_that_fit(run: Run, hub: Any) -> None:
    env = {"VLLM_HF_TOKEN": GRANTED}
    everything = search(run, "Instruct", "--limit", "20", env=env)
    fitting = search(run, "Instruct", "--fits", env=env)
    expected = [m["model"] for m in everything["models"] if m["fits"]]
    assert [m["model"] for m in fitting["models"]] == expected
    assert LLAMA_70B not in expected and QWEN_7B in expected
    assert all(m["fits"] is True and m["addModel"] for m in fitting["models"])
    limited = search(run, "Instruct", "--fits", "--limit", "2", env=env)
    assert [m["model"] for m in limited["models"]] == expected[:2]


def test_gpu_overrides_the_cluster(run: Run, hub: Any) -> None:
    # A T4's 15 GiB: Qwen2.5-7B needs two of them, and the nodes have two each.
    report = search(run, "Qwen2.5-7B", "--gpu", "T4")
    assert report["gpus"][0]["name"] == "T4" and report["gpus"][0]["source"] == "--gpu T4"
    assert report["gpus"][0]["maxGpusPerReplica"] == 2
    qwen = by_id(report)[QWEN_7B]
    assert qwen["fits"] is True and qwen["resources"]["requestGPU"] == 2
    assert qwen["estimate"]["tensorParallelSize"] == 2
    assert "--gpus 2 --tensor-parallel-size 2" in qwen["addModel"]
    alone = by_id(search(run, "Qwen2.5-7B", "--gpu", "T4", "--max-gpus", "1"))[QWEN_7B]
    assert alone["fits"] is False and alone["reason"].startswith("does not fit 1 x T4 (--max-gpus)")
    # Without a token Llama's config.json is out of reach, but its 141 GB of weights alone
    # are more than two T4s hold: that much is known.
    gated = by_id(search(run, "Llama-3.1-70B", "--gpu", "T4"))[LLAMA_70B]
    assert gated["fits"] is False
    assert gated["reason"].startswith("does not fit 2 x T4 (one node's GPUs): the weights alone are 131 GiB")
    # --max-gpus beyond a node's count asks "what if": Llama 70B on four A100s.
    four = by_id(search(run, "Llama-3.1-70B", "--max-gpus", "4", env={"VLLM_HF_TOKEN": GRANTED}))
    assert four[LLAMA_70B]["fits"] is True and four[LLAMA_70B]["resources"]["requestGPU"] == 4


def test_json_shape(run: Run, hub: Any) -> None:
    report = search(run, "Qwen2.5-0.5B")
    assert set(report) == {"query", "gpus", "gpuUnknown", "examined", "models"}
    assert report["query"] == "Qwen2.5-0.5B" and report["examined"] == 1 and report["gpuUnknown"] is None
    (model,) = report["models"]
    assert set(model) == {
        *("model", "parameters", "parameterDtypes", "gated", "private", "downloads", "license"),
        *("fits", "reason", "gpu", "resources", "addModel", "estimate"),
    }
    assert model["parameterDtypes"] == {"BF16": 494_032_768}
    assert model["gpu"]["name"] == "A100-80GB" and model["estimate"]["fits"] is True


def test_hub_errors_are_one_sentence(
    run: Run, hub: Any, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.sandbox.call(lambda: hub.fail_next(503, path="^/api/models$"))
    failed = run("search", "qwen")
    assert failed.exit_code == 3
    assert failed.stderr.strip().splitlines() == [
        f"error: could not reach {cluster.sandbox.hub_url}: it answered 503 Service Unavailable."
    ]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    refused = run("search", "qwen")
    assert refused.exit_code == 3
    assert (
        refused.stderr.strip().splitlines()[-1]
        == "error: could not reach http://127.0.0.1:9: connection refused."
    )
    assert "Traceback" not in failed.stderr + refused.stderr


def test_without_a_known_gpu_the_fit_is_unknown(run: Run, hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    result = run("search", "Qwen2.5-0.5B", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (model,) = json.loads(result.stdout)["models"]
    assert model["fits"] is None and "give --gpu TYPE" in model["reason"]
    refused = run("search", "qwen", "--fits")
    assert refused.exit_code == 2
    assert "--fits needs a GPU to judge against" in refused.stderr and "--gpu TYPE" in refused.stderr
    flagged = search(run, "Qwen2.5-0.5B", "--gpu", "L4")  # no nodes to count: up to 8 per replica
    assert flagged["gpus"][0]["maxGpusPerReplica"] == 8 and flagged["models"][0]["fits"] is True
    unknown = run("search", "qwen", "--gpu", "Z9000")
    assert unknown.exit_code == 2 and "is not a GPU type vllmctl knows" in unknown.stderr


def test_add_model_from_search_writes_a_valid_entry(run: Run, hub: Any, models_file: Path) -> None:
    added = run("add-model", "--from-search", QWEN_7B, "--yes")
    assert added.exit_code == 0, added.stderr
    assert "fits 1 x A100-80GB" in added.stderr
    text = models_file.read_text()
    assert "- name: qwen2-5-7b-instruct\n  modelURL: Qwen/Qwen2.5-7B-Instruct\n" in text
    assert "requestMemory: 18Gi" in text and "requestGPU: 1" in text and "pvcStorage: 50Gi" in text
    # A query picks the most downloaded model that fits; flags given win over the suggestion.
    by_query = run("add-model", "--from-search", "Qwen2.5", "--name", "small", "--storage", "80Gi", "--yes")
    assert by_query.exit_code == 0, by_query.stderr
    assert "'Qwen2.5': Qwen/Qwen2.5-7B-Instruct, the most downloaded match that fits" in by_query.stderr
    assert "- name: small\n" in models_file.read_text() and "pvcStorage: 80Gi" in models_file.read_text()
    validated = run("validate")
    assert validated.exit_code == 0, validated.stdout + validated.stderr


def test_add_model_from_search_splits_over_the_gpus_it_needs(
    run: Run, hub: Any, models_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_GPU_TYPE", "T4")
    added = run("add-model", "--from-search", QWEN_7B, "--yes")
    assert added.exit_code == 0, added.stderr
    text = models_file.read_text()
    assert "requestGPU: 2" in text and "tensorParallelSize: 2" in text
    assert run("validate").exit_code == 0
    monkeypatch.delenv("VLLM_GPU_TYPE")
    monkeypatch.setenv("VLLM_HF_TOKEN", GRANTED)
    refused = run("add-model", "--from-search", LLAMA_70B, "--yes")
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: --from-search: {LLAMA_70B} does not fit 2 x A100-80GB (one node's GPUs); reduce "
        "maxModelLen to 21,248; choose another model (`vllmctl search`), or give --gpus and "
        "--tensor-parallel-size to add it anyway."
    )
    nothing = run("add-model", "--from-search", "no-such-model-anywhere", "--yes")
    assert nothing.exit_code == 2 and "no text-generation model that fits the GPUs" in nothing.stderr
    both = run("add-model", "--from-search", QWEN_7B, "--model-url", QWEN_7B, "--yes")
    assert both.exit_code == 2 and "either --from-search or --model-url" in both.stderr


def test_add_model_from_search_at_a_terminal_offers_the_fits_and_confirms(
    hub: Any, cluster: ClusterEnv, isolated: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_") or k in cluster.env}
    env.update(TERM="xterm", NO_COLOR="1", COLUMNS="160", LINES="40")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "vllmctl", "add-model", "--from-search", "Qwen2.5"],
        cwd=str(isolated),
        env=env,
        encoding="utf-8",
        timeout=30,
    )
    child.expect("Which model")
    child.expect("Qwen/Qwen2.5-1.5B-Instruct")  # the list: the three that fit, most downloaded first
    child.send("\x1b[B\x1b[B")  # down twice: the third, Qwen2.5-1.5B (200 downloads)
    child.send("\r")
    child.expect("Qwen/Qwen2.5-1.5B-Instruct: fits 1 x A100-80GB")
    for prompt in ("Replicas", "CPU request"):  # the fields search does not suggest keep their prompts
        child.expect(prompt)
        child.send("\r")
    child.expect("Set vLLM engine options")
    child.send("n")
    child.expect("Add qwen2-5-1-5b-instruct to models.yaml")
    child.send("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    text = (isolated / "models.yaml").read_text()
    assert "- name: qwen2-5-1-5b-instruct\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n" in text
    assert "requestGPU: 1" in text and "requestMemory: 16Gi" in text and "pvcStorage: 50Gi" in text


# --- the core, on nodes of several kinds ------------------------------------------------------


def node(name: str, product: str | None, gpus: int, **state: Any) -> NodeGpus:
    labels = {"nvidia.com/gpu.product": product} if product else {}
    return NodeGpus(name, {"nvidia.com/gpu": gpus} if gpus else {}, labels=labels, **state)


def listing(repo: str) -> Listing:
    facts = PUBLISHED_MODELS[repo]
    total = sum(facts["parameters"].values())
    return Listing(
        repo, total, dict(facts["parameters"]), bool(facts["gated"]), False, 0, facts["license"], None
    )


def test_each_gpu_kind_of_the_cluster_is_tried_and_the_fewest_gpus_win() -> None:
    nodes = [
        node("a-l4", "NVIDIA-L4", 8),
        node("b-a100", "NVIDIA-A100-SXM4-80GB", 2),
        node("c-a100", "NVIDIA-A100-SXM4-80GB", 1),
        node("d-h100", "NVIDIA-H100-80GB-HBM3", 8, cordoned=True),  # takes no new pods
        node("e-down", "NVIDIA-H100-80GB-HBM3", 8, ready=False),
        node("f-cpu", None, 0),
    ]
    targets = choose_targets(
        gpu_flag=None, memory_flag=None, max_gpus=None, settings=NO_SETTINGS, nodes=nodes
    )
    assert [(t.gpu.name, t.max_gpus, t.nodes) for t in targets.targets] == [("L4", 8, 1), ("A100-80GB", 2, 2)]
    llama = "meta-llama/Llama-3.1-8B-Instruct"
    config = PUBLISHED_MODELS[llama]["config"]
    # Its 128k-token context needs two L4s (listed first) but one A100: the A100 wins.
    verdict = judge(listing(llama), config, None, targets)
    assert verdict.fits is True and verdict.gpus == 1 and verdict.target is not None
    assert verdict.target.gpu.name == "A100-80GB"
    on_l4 = judge(listing(llama), config, None, Targets(targets.targets[:1]))
    assert on_l4.gpus == 2 and on_l4.resources is not None and on_l4.resources.gpus == 2
    # A node label vllmctl does not know is said, not guessed.
    unknown = choose_targets(
        gpu_flag=None, memory_flag=None, max_gpus=None, settings=NO_SETTINGS, nodes=[node("x", "Acme-X1", 4)]
    )
    assert unknown.targets == () and unknown.unknown is not None and "Acme-X1" in unknown.unknown


def test_only_sizes_the_heads_divide_into_are_tried() -> None:
    qwen = PUBLISHED_MODELS[QWEN_7B]["config"]  # 28 heads, 4 KV heads
    assert tensor_parallel_sizes(qwen, 8) == [1, 2, 4]
    assert entry_name("Qwen/Qwen2.5-7B-Instruct") == "qwen2-5-7b-instruct"
    assert looks_like_repo("Qwen/Qwen2.5-7B-Instruct") and not looks_like_repo("qwen 7b")


def test_add_model_from_search_without_a_fit_sizes_by_the_weights_and_a_stale_token_is_dropped(
    run: Run, hub: Any, models_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Gated without a token: config.json is closed, so the fit is unknown, but the weights
    # are known (8.0B bf16, 15 GiB): the volume and host memory are sized for them.
    added = run("add-model", "--from-search", "meta-llama/Llama-3.1-8B-Instruct", "--yes")
    assert added.exit_code == 0, added.stderr
    assert "storage and memory from its weights" in added.stderr
    assert "requestMemory: 19Gi" in models_file.read_text()
    # 131 GiB of weights cannot sit on one A100-80GB: refused unless the GPUs are given.
    refused = run("add-model", "--from-search", LLAMA_70B, "--yes")
    assert refused.exit_code == 2
    assert "its weights alone (131 GiB) exceed one A100-80GB: give --gpus" in refused.stderr
    assert "name: llama-3-1-70b" not in models_file.read_text()
    # A token the Hub rejects does not stop asking about a public repo.
    monkeypatch.setenv("VLLM_HF_TOKEN", "hf_" + "x" * 34)
    stale = run("add-model", "--from-search", QWEN_7B, "--yes")
    assert stale.exit_code == 0, stale.stderr
    assert "rejected the HuggingFace token: asked without it" in stale.stderr
    assert run("validate").exit_code == 0
