"""vllmctl as a real process: entry points, exit codes, tracebacks, lazy imports, prompts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from vllmctl import __version__

HEAVY = (
    "kubernetes",
    "hvac",
    "jinja2",
    "questionary",
    "prompt_toolkit",
    "rich",
    "huggingface_hub",
    "httpx",
    "tokenizers",
)


def vllmctl(*args: str, cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    return subprocess.run(
        [sys.executable, "-m", "vllmctl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_version_through_python_m(isolated: Path) -> None:
    result = vllmctl("--version", cwd=isolated)
    assert result.returncode == 0
    assert result.stdout == f"vllmctl {__version__}\n"


def test_errors_are_one_line_without_traceback_unless_verbose(isolated: Path) -> None:
    (isolated / "models.yaml").write_text("- name: [\n")
    quiet = vllmctl("validate", cwd=isolated)
    assert quiet.returncode == 2
    assert quiet.stderr.startswith("error: models.yaml:2:1: YAML syntax error")
    assert "Traceback" not in quiet.stderr
    loud = vllmctl("-v", "validate", cwd=isolated)
    assert loud.returncode == 2
    assert "Traceback" in loud.stderr


@pytest.mark.parametrize("args", [("--help",), ("list-models",), ("add-model", "--help"), ("chat", "--help")])
def test_light_commands_do_not_import_heavy_libraries(isolated: Path, args: tuple[str, ...]) -> None:
    (isolated / "models.yaml").write_text("- name: a\n  modelURL: org/a\n")
    code = (
        "import sys\nfrom vllmctl.cli import cli\n"
        f"try:\n    cli.main({list(args)!r}, prog_name='vllmctl')\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=isolated, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def spawn(*args: str, cwd: Path) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env.update(TERM="xterm", NO_COLOR="1", COLUMNS="120", LINES="40")
    return pexpect.spawn(
        sys.executable, ["-m", "vllmctl", *args], cwd=str(cwd), env=env, encoding="utf-8", timeout=30
    )


def finish(child: pexpect.spawn) -> int:
    """Wait for the child to exit; its exit status."""
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus) if child.exitstatus is not None else -int(child.signalstatus)


def test_interactive_add_model_validates_as_you_type(isolated: Path) -> None:
    child = spawn("add-model", cwd=isolated)
    child.expect("Model name")
    child.send("Bad_Name")
    child.expect("not a valid name")  # shown while typing, before Enter is accepted
    child.send("\x7f" * 8 + "qwen\r")
    child.expect("HuggingFace model id")
    child.send("Qwen/Qwen2.5-1.5B-Instruct\r")
    for prompt in ("GPUs per replica", "Replicas", "CPU request", "Memory request", "Model cache volume"):
        child.expect(prompt)
        child.send("\r")  # accept the default
    child.expect("Set vLLM engine options")
    child.send("y")
    child.expect("Max model length")
    child.send("4096\r")
    child.expect("dtype")
    child.send("\r")  # "(vLLM's default)"
    child.expect("Tensor parallel size")
    child.send("\r")
    child.expect("GPU memory utilization")
    child.send("0.85\r")
    child.expect("Add qwen to models.yaml")
    child.send("y")
    assert finish(child) == 0
    text = (isolated / "models.yaml").read_text()
    assert text.endswith(
        "- name: qwen\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n  replicaCount: 1\n  requestCPU: 6\n"
        "  requestMemory: 16Gi\n  requestGPU: 1\n  pvcStorage: 50Gi\n"
        "  vllmConfig:\n    maxModelLen: 4096\n    gpuMemoryUtilization: 0.85\n"
    )


def test_ctrl_c_in_a_prompt_writes_nothing(isolated: Path) -> None:
    models = isolated / "models.yaml"
    models.write_text("# mine\n")
    child = spawn("add-model", cwd=isolated)
    child.expect("Model name")
    child.send("half")
    child.sendintr()
    assert finish(child) == 130
    assert models.read_text() == "# mine\n"


def test_interactive_remove_model_chooses_from_a_list(isolated: Path) -> None:
    models = isolated / "models.yaml"
    models.write_text("- name: a\n  modelURL: org/a\n- name: b\n  modelURL: org/b\n")
    child = spawn("remove-model", cwd=isolated)
    child.expect("Model to remove")
    child.send("\x1b[B")  # arrow down to "b"
    child.send("\r")
    child.expect("Remove b from models.yaml")
    child.send("y")
    assert finish(child) == 0
    assert models.read_text() == "- name: a\n  modelURL: org/a\n"
