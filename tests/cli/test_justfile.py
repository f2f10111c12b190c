"""The recipes keep the old names working: vllm.just standalone and as the old `mod vllm`,
the repo's justfile for contributors (vllm.just plus the development recipes)."""

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
# An old project's models.yaml, as the old module's add-model wrote it (no vllmctl fields).
OLD_MODELS = """\
# served by the platform team
- name: llama3
  modelURL: meta-llama/Meta-Llama-3-8B-Instruct
  requestGPU: 1
  pvcStorage: 50Gi
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
"""


def just(*args: str, cwd: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    # The recipes call `vllmctl`; point them at this interpreter's copy.
    env["VLLMCTL"] = f"{sys.executable} -m vllmctl"
    env.update(env_vars)
    return subprocess.run(
        [JUST or "just", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def recipes(justfile: Path, *, cwd: Path) -> set[str]:
    result = just("--justfile", str(justfile), "--summary", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def old_layout(root: Path) -> Path:
    """The old project: a root justfile with `mod vllm`, vllm/justfile beside vllm/models.yaml
    (vllm/justfile now vllmctl's vllm.just, copied over the old module)."""
    (root / "justfile").write_text("mod vllm\n\nhello:\n    @echo hello\n")
    module = root / "vllm"
    module.mkdir()
    shutil.copy(REPO / "vllm.just", module / "justfile")
    (module / "models.yaml").write_text(OLD_MODELS)
    return module


def test_every_command_has_a_recipe_in_the_module_and_for_contributors() -> None:
    module = recipes(REPO / "vllm.just", cwd=REPO)
    assert set(COMMANDS) <= module, set(COMMANDS) - module
    assert set(COMMANDS) | DEV_RECIPES <= recipes(REPO / "justfile", cwd=REPO)
    # For contributors `just bench` stays the development benchmarks (it overrides vllm.just's).
    assert "benchmarks/bench.py" in just("--show", "bench", cwd=REPO).stdout


def test_the_module_has_no_development_recipes(isolated: Path) -> None:
    old_layout(isolated)
    listed = just("--summary", cwd=isolated)
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert "vllm::list-models" in names
    # `bench` is both: vllmctl's command in the module, the benchmarks in the repo's justfile.
    assert not {f"vllm::{recipe}" for recipe in DEV_RECIPES - set(COMMANDS)} & names
    shown = just("--show", "vllm::bench", cwd=isolated)
    assert shown.returncode == 0 and "benchmarks/" not in shown.stdout, shown
    # `just vllm` lists the module's recipes, not the parent's.
    default = just("vllm", cwd=isolated)
    assert "list-models" in default.stdout
    assert "hello" not in default.stdout


def test_the_old_layout_reads_and_edits_the_models_yaml_beside_the_module(isolated: Path) -> None:
    module = old_layout(isolated)
    listed = just("vllm::list-models", cwd=isolated)
    assert listed.returncode == 0, listed.stderr
    assert "llama3" in listed.stdout and "qwen" in listed.stdout

    added = just("vllm::add-model", "--yes", "--name", "viajust", "--model-url", "org/viajust", cwd=isolated)
    assert added.returncode == 0, added.stderr
    assert not (isolated / "models.yaml").exists()  # no second file in the project's root
    text = (module / "models.yaml").read_text()
    assert text.startswith(OLD_MODELS) and "name: viajust" in text

    # From a subfolder of the project (just finds the root justfile upwards): the same file.
    sub = isolated / "docs"
    sub.mkdir()
    removed = just("vllm::remove-model", "llama3", "--yes", cwd=sub)
    assert removed.returncode == 0, removed.stderr
    assert "llama3" not in (module / "models.yaml").read_text()
    assert not (sub / "models.yaml").exists()
    listed = just("vllm::list-models", "-o", "json", cwd=sub)
    assert '"viajust"' in listed.stdout and "llama3" not in listed.stdout


def test_vllm_models_file_still_wins_in_the_module(isolated: Path) -> None:
    module = old_layout(isolated)
    other = isolated / "elsewhere.yaml"
    other.write_text("- name: other\n  modelURL: org/other\n")
    listed = just("vllm::list-models", cwd=isolated, VLLM_MODELS_FILE=str(other))
    assert "other" in listed.stdout and "qwen" not in listed.stdout
    # A relative one is read beside the module, as the old module's recipes read it.
    (module / "models.prod.yaml").write_text("- name: prod\n  modelURL: org/prod\n")
    listed = just("vllm::list-models", cwd=isolated, VLLM_MODELS_FILE="models.prod.yaml")
    assert "prod" in listed.stdout and "qwen" not in listed.stdout


def test_standalone_recipes_use_the_models_yaml_where_you_are(isolated: Path) -> None:
    copy = isolated / "tools" / "vllm.just"
    copy.parent.mkdir()
    shutil.copy(REPO / "vllm.just", copy)
    work = isolated / "project"
    work.mkdir()
    added = just(
        "--justfile", str(copy), "add-model", "--yes", "--name", "here", "--model-url", "org/here", cwd=work
    )
    assert added.returncode == 0, added.stderr
    assert "name: here" in (work / "models.yaml").read_text()
    assert not (copy.parent / "models.yaml").exists()
