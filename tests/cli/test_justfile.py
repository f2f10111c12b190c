"""The justfile keeps the old recipe names working, standalone and as `mod vllm`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vllmctl.cli import COMMANDS

JUST = shutil.which("just")
pytestmark = pytest.mark.skipif(JUST is None, reason="just is installed by scripts/test (rust-just)")
DEV_RECIPES = {"test", "lint", "bench", "bench-hostile", "bench-cluster", "sandbox"}


def just(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    # The recipes call `vllmctl`; point them at this interpreter's copy.
    env["VLLMCTL"] = f"{sys.executable} -m vllmctl"
    return subprocess.run(
        [JUST or "just", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_every_command_has_a_recipe() -> None:
    result = just("--justfile", str(REPO / "justfile"), "--summary", cwd=REPO)
    recipes = set(result.stdout.split())
    assert set(COMMANDS) <= recipes, set(COMMANDS) - recipes


def test_recipes_work_as_a_module_of_another_justfile(isolated: Path) -> None:
    (isolated / "justfile").write_text(f"mod vllm {str(REPO)!r}\n")
    sub = isolated / "project"
    sub.mkdir()
    added = just("vllm::add-model", "--yes", "--name", "viajust", "--model-url", "org/viajust", cwd=sub)
    assert added.returncode == 0, added.stderr
    assert (sub / "models.yaml").exists()  # created where just was invoked, not in the module's folder
    listed = just("vllm::list-models", cwd=sub)
    assert "viajust" in listed.stdout
