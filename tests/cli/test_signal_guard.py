"""The signal guard around a streamed helm run (vllmctl/cluster/tools.py), in process.

A quick second Ctrl-C often lands just after helm has ended on the first: it must not cut
off vllmctl's report of what helm left behind (the CI failure of 2026-12-02, where the
second signal came 5 ms after the first and the report was lost to a KeyboardInterrupt).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from vllmctl.cluster import tools

# A child that stops on SIGINT at once, as helm does once it has recorded the outcome.
CHILD = ["sh", "-c", "trap 'exit 3' INT; echo ready; while :; do sleep 0.02; done"]


def interrupt_self() -> None:
    """SIGINT to this process, and time for its Python handler to run."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)


def interrupted_run(notices: list[str]) -> tools.ToolInterrupted:
    try:
        for line in tools.stream(CHILD, notify=notices.append):
            if line == "ready":
                interrupt_self()
    except tools.ToolInterrupted as e:
        return e
    raise AssertionError("the run was not interrupted")


def test_a_signal_after_the_child_ended_is_noted_until_the_report_is_done() -> None:
    original = signal.getsignal(signal.SIGINT)
    notices: list[str] = []
    stopped = interrupted_run(notices)
    assert stopped.code == 3 and not stopped.killed and stopped.signal_name == "SIGINT"
    assert "asked sh to stop" in notices[0]
    try:
        interrupt_self()  # the caller is reading the release's state: only noted
        assert "sh had already stopped; reading what it left behind" in notices[-1]
        with pytest.raises(KeyboardInterrupt):  # the next one ends vllmctl
            interrupt_self()
    finally:
        stopped.release_signals()
    assert signal.getsignal(signal.SIGINT) is original


def test_the_report_done_puts_the_handlers_back() -> None:
    original = signal.getsignal(signal.SIGINT)
    stopped = interrupted_run([])
    assert signal.getsignal(signal.SIGINT) is not original  # still noting signals
    stopped.release_signals()
    assert signal.getsignal(signal.SIGINT) is original


def test_a_run_not_interrupted_leaves_no_handler_behind() -> None:
    original = signal.getsignal(signal.SIGINT)
    assert list(tools.stream(["sh", "-c", "echo one"])) == ["one"]
    assert signal.getsignal(signal.SIGINT) is original
