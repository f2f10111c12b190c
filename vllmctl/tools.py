"""The one place vllmctl starts external programs (helm, kubectl).

Argument lists only, never a shell. A failure becomes an ExternalError that carries the
command, its exit code and what it said on stderr. The child's environment is ours minus
vllmctl's secret variables: a token must never reach a child process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from vllmctl.errors import ExternalError, UsageError

# Variables holding secrets that no child process needs (see docs/ARCHITECTURE.md).
SECRET_ENV = ("VLLM_HF_TOKEN", "VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "VAULT_TOKEN")


def child_env() -> dict[str, str]:
    """Our environment without the secrets vllmctl may have been given."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV}


def find_tool(name: str, override: str | None, how_to_get: str) -> str:
    """The path of a tool: `override` (a path or a name on PATH), else `name` on PATH."""
    wanted = override or name
    found = shutil.which(wanted)
    if found is None:
        where = f"{wanted!r} (from the settings)" if override else f"{name} on PATH"
        raise UsageError(f"cannot find {where}. {how_to_get}")
    return found


def shown(argv: Sequence[str]) -> str:
    """A command line as a user could paste it."""
    import shlex

    return " ".join(shlex.quote(str(a)) for a in argv)


class ToolError(ExternalError):
    """An external program failed; the message names it and says what it printed."""

    def __init__(self, argv: Sequence[str], code: int, stderr: str, hint: str = "") -> None:
        said = [line for line in stderr.strip().splitlines() if line.strip()]
        # helm and kubectl put the reason on a line starting "Error:" / "error:", often
        # followed by advice; that line says most.
        errors = [line for line in said if line.lower().startswith("error:")]
        last = errors[-1] if errors else said[-1] if said else "(it printed nothing on stderr)"
        message = f"{Path(argv[0]).name} failed (exit {code}): {last}"
        if hint:
            message += f" {hint}"
        super().__init__(message, details=[f"command: {shown(argv)}", *[s for s in said if s != last][-10:]])
        self.argv = list(argv)
        self.code = code
        self.stderr = stderr


def run(argv: Sequence[str], *, input: str | None = None, hint: str = "") -> str:
    """Run a command to completion; its stdout, or a ToolError."""
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, env=child_env(), check=False
        )
    except OSError as exc:
        raise ExternalError(f"cannot start {argv[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        raise ToolError(argv, done.returncode, done.stderr, hint)
    return done.stdout


def stream(argv: Sequence[str], *, hint: str = "") -> Iterator[str]:
    """Run a command, yielding its output lines (stdout and stderr) as they come.

    Raises ToolError at the end when it fails; its stderr lines are in the error too.
    """
    try:
        process = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=child_env(),
            bufsize=1,
        )
    except OSError as exc:
        raise ExternalError(f"cannot start {argv[0]}: {exc.strerror}") from None
    said: list[str] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            said.append(line)
            yield line.rstrip("\n")
    except BaseException:
        process.kill()
        process.wait()
        raise
    code = process.wait()
    if code != 0:
        raise ToolError(argv, code, "".join(said), hint)
