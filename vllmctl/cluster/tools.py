"""The one place vllmctl starts external programs (helm, kubectl).

Argument lists only, never a shell. A failure becomes an ExternalError that carries the
command, its exit code and what it said on stderr. The child's environment is ours minus
vllmctl's secret variables: a token must never reach a child process.

A streamed run (`stream`) is interrupted the way its program tolerates: helm
upgrade/install stop cleanly on SIGINT/SIGTERM and record the outcome, so the signal is
passed on (FORWARD); helm rollback/uninstall have no handler and die halfway, so they are
left to finish (FINISH). A second signal kills the program either way (docs/recovery.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from vllmctl.core.errors import ExternalError, Interrupted, UsageError

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


# What a streamed run does with the first SIGINT/SIGTERM vllmctl gets (see the module doc).
FORWARD = "forward"
FINISH = "finish"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ToolInterrupted(Interrupted):
    """A streamed run ended after vllmctl got SIGINT/SIGTERM; the caller says what state
    the program left things in."""

    def __init__(
        self,
        argv: Sequence[str],
        code: int,
        output: str,
        signal_name: str,
        killed: bool,
        release_signals: Callable[[], None] = lambda: None,
    ) -> None:
        name = Path(argv[0]).name
        how = "was killed" if killed else f"exited {code}"
        super().__init__(f"interrupted ({signal_name}): {name} {how}.", details=[f"command: {shown(argv)}"])
        self.argv = list(argv)
        self.code = code
        self.output = output
        self.signal_name = signal_name
        self.killed = killed
        # Until called, one more signal is only noted, so the caller can read and say what
        # the program left behind (a quick second Ctrl-C often lands just after it ended).
        self.release_signals = release_signals


def warn_on_stderr(message: str) -> None:
    """The default for `stream`'s notices, for callers without an App."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class _SignalGuard:
    """While a child runs: SIGINT/SIGTERM are handled here instead of raising
    KeyboardInterrupt (or ending vllmctl) at some random point. The first one is passed
    on (FORWARD) or only noted (FINISH); a second one kills the child's process group.

    The child runs in a process group of its own, so a terminal's Ctrl-C (sent to the
    whole foreground group) reaches only vllmctl, and the child gets each signal once,
    from here. Signal handlers can only be set in the main thread; elsewhere nothing is
    installed and an interruption ends the child as before."""

    def __init__(self, name: str, policy: str, notify: Callable[[str], None]) -> None:
        self.name, self.policy, self.notify = name, policy, notify
        self.process: subprocess.Popen[str] | None = None
        self.received: list[int] = []
        self.killed = False
        self.late = False  # a signal came after the child had ended (see _late)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and self.received and self._previous:
            # Interrupted: the caller reports what the child left behind before anything
            # else; a signal meanwhile is noted, the next one ends vllmctl (release()).
            for sig in self._previous:
                signal.signal(sig, self._late)
            return
        self.release()

    def release(self) -> None:
        """The signal handlers as they were before this guard."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _late(self, signum: int, frame: FrameType | None) -> None:
        word = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self.late:
            self.release()
            raise KeyboardInterrupt
        self._already_stopped(word)

    def _already_stopped(self, word: str) -> None:
        self.late = True
        self.notify(
            f"{word}: {self.name} had already stopped; reading what it left behind. "
            f"{word} again ends vllmctl without saying."
        )

    def started(self, process: subprocess.Popen[str]) -> None:
        """The child runs; a signal that came while it was being started is passed on now."""
        self.process = process
        if self.received and self.policy == FORWARD:
            self._signal(self.received[0])

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        word = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if len(self.received) > 1:
            self.kill()
            if self.killed:
                self.notify(f"{word} again: killed {self.name} at once; it could not record how far it got.")
            else:
                self._already_stopped(word)
            return
        if self.policy == FORWARD:
            self._signal(signum)
            self.notify(
                f"{word}: asked {self.name} to stop; waiting while it records the outcome. "
                f"{word} again kills it at once, which can leave the release stuck."
            )
        else:
            self.notify(
                f"{word}: {self.name} cannot stop halfway without leaving the release stuck, so vllmctl "
                f"waits for it to finish. {word} again kills it at once."
            )

    def _signal(self, signum: int) -> None:
        if self.process is None or self.process.returncode is not None:
            return  # reaped: its process group id may belong to someone else by now
        with contextlib.suppress(ProcessLookupError):  # it has just ended
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        self.killed = self.process is not None and self.process.poll() is None
        self._signal(signal.SIGKILL)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.received[0]).name if self.received else ""


def stream(
    argv: Sequence[str],
    *,
    hint: str = "",
    on_signal: str = FORWARD,
    notify: Callable[[str], None] = warn_on_stderr,
) -> Iterator[str]:
    """Run a command, yielding its output lines (stdout and stderr) as they come.

    Raises ToolError at the end when it fails; its stderr lines are in the error too.
    After a SIGINT/SIGTERM (handled as `on_signal` says), ToolInterrupted once the
    child has ended, whatever its exit code; with FINISH only when a second signal killed it.
    """
    said: list[str] = []
    # The guard is in place before helm starts: a signal in between must not raise
    # KeyboardInterrupt with helm started and nobody watching it.
    with _SignalGuard(Path(argv[0]).name, on_signal, notify) as guard:
        try:
            process = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=child_env(),
                bufsize=1,
                process_group=0,
            )
        except OSError as exc:
            raise ExternalError(f"cannot start {argv[0]}: {exc.strerror}") from None
        guard.started(process)
        assert process.stdout is not None
        try:
            for line in process.stdout:
                said.append(line)
                yield line.rstrip("\n")
        except BaseException:
            guard.kill()
            process.wait()
            raise
        code = process.wait()
    # FINISH: a run that was let finish ended as it would have; only a killed one is news.
    if guard.killed or (guard.received and on_signal == FORWARD):
        raise ToolInterrupted(argv, code, "".join(said), guard.signal_name, guard.killed, guard.release)
    guard.release()
    if code != 0:
        raise ToolError(argv, code, "".join(said), hint)
