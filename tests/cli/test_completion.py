"""Shell completion: `vllmctl completion`, and Tab as bash asks for it (real processes, real bash)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vllmctl
from tests.conftest import Run
from vllmctl.cli import COMMANDS, cli

HEAVY = (
    "kubernetes",
    "hvac",
    "jinja2",
    "questionary",
    "prompt_toolkit",
    "rich",
    "huggingface_hub",
    "tokenizers",
)
# The directory holding the vllmctl package, for children started in a temp directory.
SOURCE_ROOT = str(Path(vllmctl.__file__).resolve().parent.parent)
MODELS = "- name: qwen\n  modelURL: Qwen/Qwen2.5-1.5B\n- name: llama3\n  modelURL: org/llama\n"
OTHER = "- name: other-a\n  modelURL: org/a\n- name: other-b\n  modelURL: org/b\n"


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "_VLLMCTL_", "COMP_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def tab(line: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Ask for completions as bash's script does: the words so far, the last one being completed."""
    words = line.split(" ")
    return subprocess.run(
        [sys.executable, "-m", "vllmctl"],
        cwd=cwd,
        env=child_env(
            _VLLMCTL_COMPLETE="bash_complete", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1), **env
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def values(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The completed values; completion prints nothing else, anywhere."""
    assert result.returncode == 0
    assert result.stderr == ""
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.fixture
def catalogs(isolated: Path) -> Path:
    (isolated / "models.yaml").write_text(MODELS)
    (isolated / "other.yaml").write_text(OTHER)
    return isolated


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("vllmctl ", list(COMMANDS)),
        ("vllmctl remove-m", ["remove-model"]),
        ("vllmctl --models other.yaml remo", ["remove-model", "remove-helm-repo"]),
        ("vllmctl remove-model ", ["qwen", "llama3"]),
        ("vllmctl show-model q", ["qwen"]),
        ("vllmctl --models other.yaml set-model ", ["other-a", "other-b"]),
        ("vllmctl logs --models other.yaml other-", ["other-a", "other-b"]),
        ("vllmctl test-completions --models missing.yaml ", []),
        ("vllmctl no-such-command --vers", ["--version"]),  # quietly, no "No such command"
        ("vllmctl completion ", ["bash", "zsh", "fish"]),
    ],
)
def test_tab_completes_commands_and_model_names(catalogs: Path, line: str, expected: list[str]) -> None:
    assert values(tab(line, catalogs)) == expected


def test_tab_completes_a_commands_options(catalogs: Path) -> None:
    options = values(tab("vllmctl logs --", catalogs))
    assert {"--models", "--namespace", "--tail", "--help"} <= set(options)
    assert values(tab("vllmctl list-models -o ", catalogs)) == ["table", "json", "yaml"]


def test_tab_names_come_from_the_models_file_variable(catalogs: Path) -> None:
    assert values(tab("vllmctl show-model ", catalogs, VLLM_MODELS_FILE="other.yaml")) == [
        "other-a",
        "other-b",
    ]
    # A --models on the line wins over the variable, as when the command runs.
    line = "vllmctl --models models.yaml show-model "
    assert values(tab(line, catalogs, VLLM_MODELS_FILE="other.yaml")) == ["qwen", "llama3"]


def test_completion_imports_nothing_heavy_and_no_command_module_for_names(catalogs: Path) -> None:
    lines = ["vllmctl ", "vllmctl remove-model ", "vllmctl logs q", "vllmctl test-completions "]
    code = (
        "import os, sys\nfrom vllmctl.cli import main\n"
        "def tab(line):\n"
        "    os.environ.update(COMP_WORDS=line, COMP_CWORD=str(line.count(' ')))\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        f"tab({lines[0]!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('vllmctl.cli.')), file=sys.stderr)\n"
        f"for line in {lines[1:]!r}:\n    tab(line)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=catalogs,
        env=child_env(_VLLMCTL_COMPLETE="bash_complete"),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    command_modules, heavy = result.stderr.splitlines()
    assert command_modules == "['vllmctl.cli.options']"
    assert heavy == "[]"
    assert result.stdout.count("plain,qwen\n") == 3  # remove-model, logs q, test-completions


# ------------------------------------------------------------------ model names, in-process


def complete(line: str, **env: str) -> list[str]:
    """The values completion offers for `line` (in-process: quick, for the edge cases)."""
    from click.testing import CliRunner

    words = line.split(" ")
    comp_env = {"_VLLMCTL_COMPLETE": "bash_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    result = CliRunner().invoke(cli, [], env={**comp_env, **env}, prog_name="vllmctl")
    assert result.exit_code == 0
    assert result.stderr == ""
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize(
    "content",
    [
        "- name: [unclosed\n",  # not YAML
        "models:\n  - name: qwen\n",  # not a list
        "",  # empty
        b"- name: caf\xe9\n",  # not UTF-8
    ],
)
def test_a_broken_file_completes_nothing(models_file: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        models_file.write_bytes(content)
    else:
        models_file.write_text(content)
    assert complete("vllmctl show-model ") == []


def test_a_directory_or_unreadable_path_completes_nothing(isolated: Path) -> None:
    (isolated / "dir.yaml").mkdir()
    assert complete("vllmctl --models dir.yaml show-model ") == []
    if os.geteuid() != 0:  # root reads any file
        unreadable = isolated / "secret.yaml"
        unreadable.write_text(MODELS)
        unreadable.chmod(0)
        assert complete("vllmctl show-model --models secret.yaml ") == []


def test_invalid_entries_still_complete_once_each(models_file: Path) -> None:
    # remove-model removes broken entries too, so their names complete; a duplicate once.
    models_file.write_text("- name: broken\n  replicaCount: many\n- name: qwen\n- name: qwen\n- 3\n- {}\n")
    assert complete("vllmctl remove-model ") == ["broken", "qwen"]


def test_a_tilde_in_models_is_expanded(isolated: Path) -> None:
    # On the command line the shell expands ~; in the words handed to completion it has not.
    (Path.home() / "m.yaml").write_text(OTHER)
    assert complete("vllmctl --models ~/m.yaml show-model ") == ["other-a", "other-b"]


def test_models_option_completes_file_names(isolated: Path) -> None:
    from click.testing import CliRunner

    env = {"_VLLMCTL_COMPLETE": "bash_complete", "COMP_WORDS": "vllmctl --models ", "COMP_CWORD": "2"}
    result = CliRunner().invoke(cli, [], env=env, prog_name="vllmctl")
    assert result.stdout == "file,\n"  # the shell lists the files itself


# ------------------------------------------------------------------ the command


def test_completion_prints_clicks_script_for_vllmctl(run: Run) -> None:
    result = run("completion", "bash")
    assert result.exit_code == 0
    assert "_VLLMCTL_COMPLETE=bash_complete" in result.stdout
    assert "complete -o nosort -F _vllmctl_completion vllmctl" in result.stdout
    assert result.stdout.endswith("\n") and not result.stdout.endswith("\n\n")


def test_completion_guesses_the_shell_from_SHELL_and_says_so(run: Run) -> None:
    result = run("completion", env={"SHELL": "/usr/bin/fish"})
    assert result.exit_code == 0
    assert "complete --no-files --command vllmctl" in result.stdout
    assert result.stderr == "Printing the fish script ($SHELL is /usr/bin/fish).\n"


@pytest.mark.parametrize(
    ("shell", "told"), [("/bin/tcsh", "$SHELL is /bin/tcsh"), (None, "$SHELL is not set")]
)
def test_completion_without_a_known_shell_is_a_usage_error(
    run: Run, monkeypatch: pytest.MonkeyPatch, shell: str | None, told: str
) -> None:
    if shell is None:
        monkeypatch.delenv("SHELL", raising=False)
    else:
        monkeypatch.setenv("SHELL", shell)
    result = run("completion")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: name the shell: vllmctl completion bash|zsh|fish ({told}).\n"


def test_completion_refuses_an_unknown_shell(run: Run) -> None:
    result = run("completion", "pwsh")
    assert result.exit_code == 2
    assert "'pwsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr
    assert result.stdout == ""


def test_help_says_how_to_install_for_each_shell(run: Run) -> None:
    text = run("completion", "--help").stdout
    for shell in ("bash", "zsh", "fish"):
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{shell}:"))
        assert f"vllmctl completion {shell} > ~/" in line


# ------------------------------------------------------------------ the scripts in real shells


@pytest.fixture
def on_path(tmp_path: Path) -> Path:
    """A `vllmctl` on PATH that runs this checkout, as the scripts call it by name."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "vllmctl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vllmctl "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def script(shell: str, on_path: Path, cwd: Path) -> Path:
    env = child_env(PATH=f"{on_path}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["vllmctl", "completion", shell], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    path = cwd / f"vllmctl.{shell}"
    path.write_text(result.stdout)
    return path


def test_bash_sources_the_script_and_completes(catalogs: Path, on_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    driver = (
        'set -e\n. "$1"\ncomplete -p vllmctl\n'
        "tab() {\n"
        '  COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()\n'
        '  _vllmctl_completion vllmctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
        '  echo "${COMPREPLY[*]}"\n'
        "}\n"
        'tab vllmctl remove-model ""\n'
        "tab vllmctl --models other.yaml show-model other-\n"
        "tab vllmctl remove-\n"
        "tab vllmctl list-models --ver\n"
    )
    path = script("bash", on_path, catalogs)
    env = child_env(PATH=f"{on_path}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", driver, "driver", str(path)],
        cwd=catalogs,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "complete -o nosort -F _vllmctl_completion vllmctl",
        "qwen llama3",
        "other-a other-b",
        "remove-model remove-helm-repo",
        "--verbose",
    ]


@pytest.mark.parametrize(
    ("shell", "marker", "check", "comp_cword", "answer"),
    [
        # zsh's script passes the words and the index; each item is type, value, help lines.
        ("zsh", "compdef _vllmctl_completion vllmctl", ["-n"], "2", "plain\nqwen\n_\nplain\nllama3\n_\n"),
        # fish's passes the line so far and the current token.
        ("fish", "complete --no-files --command vllmctl", ["--no-execute"], "", "plain,qwen\nplain,llama3\n"),
    ],
)
def test_zsh_and_fish_scripts(
    catalogs: Path, on_path: Path, shell: str, marker: str, check: list[str], comp_cword: str, answer: str
) -> None:
    path = script(shell, on_path, catalogs)
    text = path.read_text()
    assert marker in text
    assert f"_VLLMCTL_COMPLETE={shell}_complete" in text
    # Called back the way the script calls vllmctl.
    result = subprocess.run(
        [sys.executable, "-m", "vllmctl"],
        cwd=catalogs,
        env=child_env(
            _VLLMCTL_COMPLETE=f"{shell}_complete", COMP_WORDS="vllmctl show-model ", COMP_CWORD=comp_cword
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, answer, "")
    binary = shutil.which(shell)
    if binary is None:  # not installed here: the script itself cannot be run
        return
    syntax = subprocess.run([binary, *check, str(path)], capture_output=True, text=True, timeout=60)
    assert syntax.returncode == 0, syntax.stderr
