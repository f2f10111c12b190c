"""add-model asks the Hub (through the stand-in) and records `gated`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
