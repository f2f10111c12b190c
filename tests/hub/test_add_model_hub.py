"""add-model asks the Hub (through the stand-in) and records `gated`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import REPO, Run
from tests.hub.conftest import Hub

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
QWEN = "Qwen/Qwen2.5-7B-Instruct"
TOKEN = "hf_" + "AddModel" + "q" * 30
ENTRY_TAIL = (
    "  replicaCount: 1\n  requestCPU: 6\n  requestMemory: 16Gi\n  requestGPU: 1\n  pvcStorage: 50Gi\n"
)


@pytest.fixture
def on_hub(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Hub:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    return hub


def added(models_file: Path) -> str:
    """The last entry of models.yaml (the one add-model appended)."""
    text = models_file.read_text()
    return text[text.rindex("- name: ") :]


def test_a_public_model_is_recorded_not_gated(run: Run, on_hub: Hub, models_file: Path) -> None:
    result = run("add-model", "--yes", "--name", "qwen", "--model-url", QWEN)
    assert result.exit_code == 0, result.stderr
    assert added(models_file) == f"- name: qwen\n  modelURL: {QWEN}\n  gated: false\n" + ENTRY_TAIL
    assert "warning" not in result.stderr
    assert [r.path.split("?")[0] for r in on_hub.requests] == [f"/api/models/{QWEN}"]


def test_a_gated_model_without_a_token(run: Run, on_hub: Hub, models_file: Path) -> None:
    result = run("add-model", "--yes", "--name", "llama3", "--model-url", LLAMA)
    assert result.exit_code == 0, result.stderr
    assert added(models_file) == f"- name: llama3\n  modelURL: {LLAMA}\n  gated: true\n" + ENTRY_TAIL
    assert (
        f"warning: {LLAMA} is gated and the engines need a HuggingFace token with access: "
        f"request access at {on_hub.url}/{LLAMA}.\n"
    ) in result.stderr


def test_a_gated_model_with_a_granted_token(run: Run, on_hub: Hub, models_file: Path) -> None:
    on_hub.call(on_hub.stand_in.add_token, TOKEN, {LLAMA})
    result = run("add-model", "--yes", "--name", "llama3", "--model-url", LLAMA, env={"VLLM_HF_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    assert "  gated: true\n" in added(models_file)
    assert "warning" not in result.stderr
    assert {r.token for r in on_hub.requests} == {TOKEN}


def test_a_gated_model_with_a_token_lacking_access(run: Run, on_hub: Hub, models_file: Path) -> None:
    on_hub.call(on_hub.stand_in.add_token, TOKEN)
    result = run("add-model", "--yes", "--name", "llama3", "--model-url", LLAMA, env={"VLLM_HF_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    assert "  gated: true\n" in added(models_file)
    assert (
        f"warning: {LLAMA} is gated and your token (VLLM_HF_TOKEN) has no access: "
        f"request access at {on_hub.url}/{LLAMA}.\n"
    ) in result.stderr
    assert TOKEN not in result.stdout + result.stderr + models_file.read_text()


def test_a_token_the_hub_rejects_is_reported_and_gated_still_recorded(
    run: Run, on_hub: Hub, models_file: Path
) -> None:
    result = run("add-model", "--yes", "--name", "qwen", "--model-url", QWEN, env={"VLLM_HF_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    assert "  gated: false\n" in added(models_file)
    assert (
        f"warning: {on_hub.url} rejected the HuggingFace token (VLLM_HF_TOKEN): invalid, expired or revoked."
    ) in result.stderr
    assert TOKEN not in result.stdout + result.stderr + models_file.read_text()


def test_a_missing_repo_is_refused(run: Run, on_hub: Hub, models_file: Path) -> None:
    result = run("add-model", "--yes", "--name", "typo", "--model-url", "meta-llama/Llama-3.1-8B-Instruc")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --model-url: meta-llama/Llama-3.1-8B-Instruc is not a model on {on_hub.url} (or it is "
        "private and no valid VLLM_HF_TOKEN); check the spelling, or pass --offline to add it without "
        "asking the Hub.\n"
    )
    assert not models_file.exists()


def test_offline_skips_the_hub(run: Run, on_hub: Hub, models_file: Path) -> None:
    result = run("add-model", "--yes", "--offline", "--name", "typo", "--model-url", "org/not-on-the-hub")
    assert result.exit_code == 0, result.stderr
    assert added(models_file) == "- name: typo\n  modelURL: org/not-on-the-hub\n" + ENTRY_TAIL
    assert on_hub.requests == []


def test_uris_are_not_asked_about(run: Run, on_hub: Hub, models_file: Path) -> None:
    result = run("add-model", "--yes", "--name", "local", "--model-url", "pvc://models/llama")
    assert result.exit_code == 0, result.stderr
    assert "gated" not in added(models_file)
    assert on_hub.requests == []


def test_an_unreachable_hub_is_a_warning(run: Run, models_file: Path) -> None:
    # tests/conftest.py points HF_ENDPOINT at a port that refuses connections.
    result = run("add-model", "--yes", "--name", "llama3", "--model-url", LLAMA)
    assert result.exit_code == 0, result.stderr
    assert (
        "warning: could not reach http://127.0.0.1:9: connection refused; gated not recorded.\n"
        in result.stderr
    )
    assert added(models_file) == f"- name: llama3\n  modelURL: {LLAMA}\n" + ENTRY_TAIL


def test_hub_errors_and_offline_mode_are_warnings(
    run: Run, on_hub: Hub, models_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_hub.call(on_hub.stand_in.fail_next, 503)
    result = run("add-model", "--yes", "--name", "first", "--model-url", LLAMA)
    assert result.exit_code == 0, result.stderr
    assert f"warning: could not reach {on_hub.url}: it answered 503 " in result.stderr
    assert "gated" not in added(models_file)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run("add-model", "--yes", "--name", "second", "--model-url", LLAMA)
    assert result.exit_code == 0, result.stderr
    assert (
        f"warning: could not reach {on_hub.url}: offline mode is on (HF_HUB_OFFLINE); gated not recorded."
    ) in result.stderr


@pytest.mark.parametrize(
    "args", [("add-model", "--help"), ("add-model", "-y", "--offline", "--name", "a", "--model-url", "org/a")]
)
def test_huggingface_hub_is_imported_only_to_ask(isolated: Path, args: tuple[str, ...]) -> None:
    code = (
        "import sys\nfrom vllmctl.cli import cli\n"
        f"try:\n    cli.main({list(args)!r}, prog_name='vllmctl')\nexcept SystemExit:\n    pass\n"
        "print('huggingface_hub' in sys.modules, 'httpx2' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # without `pip install -e .` too
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=isolated, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_a_pasted_hub_address_is_stored_as_the_repo_id(run: Run, on_hub: Hub, models_file: Path) -> None:
    for name, url in (
        ("page", f"https://huggingface.co/{QWEN}"),
        ("slash", f"https://huggingface.co/{QWEN}/"),
        ("tree", f"https://huggingface.co/{QWEN}/tree/main"),
        ("blob", f"https://huggingface.co/{QWEN}/blob/main/config.json"),
    ):
        result = run("add-model", "--yes", "--name", name, "--model-url", url)
        assert result.exit_code == 0, result.stderr
        assert added(models_file).startswith(f"- name: {name}\n  modelURL: {QWEN}\n  gated: false\n")
    # Not a model page: the schema's own sentence, naming the flag.
    result = run(
        "add-model", "--yes", "--name", "data", "--model-url", "https://huggingface.co/datasets/org/x"
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --model-url: 'https://huggingface.co/datasets/org/x' uses an")


def spawn_add_model(cwd: Path, hub_url: str, *args: str, **env_vars: str) -> pexpect.spawn:
    """add-model at a (pseudo-)terminal, asking the Hub stand-in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env.update(TERM="xterm", NO_COLOR="1", COLUMNS="160", LINES="40", HF_ENDPOINT=hub_url, **env_vars)
    return pexpect.spawn(
        sys.executable,
        ["-m", "vllmctl", "add-model", *args],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=30,
    )


def answer_until_engine_options(child: pexpect.spawn, name: str, url: str, gpus: str = "") -> None:
    child.expect("Model name")
    child.send(f"{name}\r")
    child.expect("HuggingFace model id")
    child.send(f"{url}\r")
    child.expect("GPUs per replica")
    child.send("\x7f" * 3 + f"{gpus}\r" if gpus else "\r")
    for prompt in ("Replicas", "CPU request", "Memory request", "Model cache volume"):
        child.expect(prompt)
        child.send("\r")


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus) if child.exitstatus is not None else -int(child.signalstatus)


def test_a_cross_field_problem_asks_again_for_those_fields_only(isolated: Path, on_hub: Hub) -> None:
    child = spawn_add_model(isolated, on_hub.url)
    answer_until_engine_options(child, "qwen", QWEN, gpus="2")
    child.expect("Set vLLM engine options")
    child.send("y")
    child.expect("Max model length")
    child.send("8192\r")
    child.expect("dtype")
    child.send("\r")
    child.expect("Tensor parallel size")
    child.send("3\r")
    child.expect("GPU memory utilization")
    child.send("0.85\r")
    child.expect("warning: vllmConfig.tensorParallelSize: 3 does not divide requestGPU 2")
    child.expect("Tensor parallel size")  # offered again, with the earlier answer
    child.send("\x7f" + "2\r")
    child.expect("GPUs per replica")
    child.send("\r")  # keep 2
    child.expect(f"Add qwen to {'models.yaml'}")
    child.send("y")
    assert finish(child) == 0
    entry = added(isolated / "models.yaml")
    assert "  requestGPU: 2\n" in entry
    assert "    maxModelLen: 8192\n    tensorParallelSize: 2\n    gpuMemoryUtilization: 0.85\n" in entry
    assert "  gated: false\n" in entry


def test_a_repo_the_hub_does_not_know_is_asked_again(isolated: Path, on_hub: Hub) -> None:
    child = spawn_add_model(isolated, on_hub.url)
    answer_until_engine_options(child, "qwen", QWEN + "-typo", gpus="2")
    child.expect("Set vLLM engine options")
    child.send("n")
    child.expect(f"warning: {QWEN}-typo is not a model on {on_hub.url}")
    before = child.before
    child.expect("HuggingFace model id")
    assert "--model-url" not in before + str(child.before)  # no flag the user never typed
    child.send("\x7f" * 5 + "\r")  # the earlier answer, corrected
    child.expect(f"Add qwen to {'models.yaml'}")
    child.send("y")
    assert finish(child) == 0
    entry = added(isolated / "models.yaml")
    assert entry.startswith(f"- name: qwen\n  modelURL: {QWEN}\n  gated: false\n")
    assert "  requestGPU: 2\n" in entry  # the other answers kept


def test_the_size_hint_comes_before_the_confirmation(isolated: Path, on_hub: Hub) -> None:
    child = spawn_add_model(isolated, on_hub.url, VLLM_GPU_TYPE="T4")
    answer_until_engine_options(child, "qwen", f"https://huggingface.co/{QWEN}/tree/main")
    child.expect("Set vLLM engine options")
    child.send("n")
    child.expect(
        r"Size: 7\.6B parameters, 14\.2 GiB of weights; does not fit 1 x T4[^\r\n]*; "
        r"storage 50Gi holds them\."
    )
    child.expect("Add qwen to models.yaml")
    child.send("y")
    assert finish(child) == 0
    assert f"  modelURL: {QWEN}\n" in added(isolated / "models.yaml")


def test_no_size_hint_offline(isolated: Path, on_hub: Hub) -> None:
    child = spawn_add_model(isolated, on_hub.url, "--offline", VLLM_GPU_TYPE="T4")
    answer_until_engine_options(child, "qwen", QWEN)
    child.expect("Set vLLM engine options")
    child.send("n")
    child.expect("Add qwen to models.yaml")
    assert "Size:" not in str(child.before)
    child.send("y")
    assert finish(child) == 0
    assert on_hub.requests == []


@pytest.mark.parametrize(
    ("fields", "gpu_memory", "expected"),
    [
        ({"pvcStorage": "10Gi"}, "80Gi", "fits 1 x 80Gi GPU (KV cache for "),
        ({"pvcStorage": "10Gi"}, "80Gi", "storage 10Gi is too small for them."),
        (
            {"pvcStorage": "50Gi", "requestGPU": 2, "vllmConfig": {"tensorParallelSize": 2}},
            "16Gi",
            "fits 2 x 16Gi",
        ),
        ({}, None, "GPU fit unknown (set VLLM_GPU_TYPE or VLLM_GPU_MEMORY)."),
    ],
)
def test_the_size_hint_judges_the_entry(
    isolated: Path,
    fields: dict[str, object],
    gpu_memory: str | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.sandbox.hub import PUBLISHED_MODELS
    from vllmctl.apis.hub import ModelFacts
    from vllmctl.ops.memory import size_hint
    from vllmctl.settings import Settings

    published = PUBLISHED_MODELS[QWEN]
    facts = ModelFacts(
        QWEN, sum(published["parameters"].values()), published["parameters"], published["config"]
    )
    if gpu_memory:
        monkeypatch.setenv("VLLM_GPU_MEMORY", gpu_memory)
    hint = size_hint({"name": "q", "modelURL": QWEN, "requestGPU": 1, **fields}, facts, Settings.resolve({}))
    assert hint.startswith("Size: 7.6B parameters, 14.2 GiB of weights; ")
    assert expected in hint
