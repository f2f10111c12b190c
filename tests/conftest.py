"""Shared fixtures: every test runs in its own directory with a clean environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vllmctl.cli import cli

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.sandbox.fixtures"]

# The pinned helm and kubectl scripts/install-tools put in .tools/bin, for a plain `pytest`
# run as well as scripts/test (which puts them first on PATH itself).
_TOOLS = REPO / ".tools" / "bin"
if _TOOLS.is_dir() and str(_TOOLS) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = f"{_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory and HOME; no VLLM_* or colour settings leak in."""
    for name in list(os.environ):
        if name.startswith(("VLLM_", "VAULT_", "KUBECONFIG", "HF_")) or name in (
            "EXTERNAL_SECRETS_NAMESPACE",
            "K8S_VAULT_NAMESPACE",
        ):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # No test may reach the real HuggingFace Hub: port 9 on this host refuses at once (the
    # sandbox's Hub stand-in is set instead by the `cluster` fixture). HF_TOKEN and
    # HF_HUB_OFFLINE went with the HF_ prefix above.
    for name in ("HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("NO_COLOR", "1")
    # pexpect's terminal does not answer prompt_toolkit's cursor-position request, which
    # then waits ~1 s after every answer; real terminals answer at once.
    monkeypatch.setenv("PROMPT_TOOLKIT_NO_CPR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


Run = Callable[..., Result]


@pytest.fixture
def run() -> Run:
    """Invoke vllmctl in-process, as a user would type it: `run("list-models", "-o", "json")`."""

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def models_file(isolated: Path) -> Path:
    return isolated / "models.yaml"
