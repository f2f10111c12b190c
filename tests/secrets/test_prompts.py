"""Secrets typed at a terminal: the prompt hides them, and they reach the store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

from tests.sandbox.fixtures import ClusterEnv

TOKEN = "hf_" + "Q1w2E3r4T5" * 4


def spawn(*args: str, cwd: Path) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "COLUMNS": "120", "LINES": "40"}
    return pexpect.spawn(
        sys.executable, ["-m", "vllmctl", *args], cwd=str(cwd), env=env, encoding="utf-8", timeout=30
    )


@pytest.mark.usefixtures("namespace")
def test_a_typed_token_is_not_echoed(isolated: Path, cluster: ClusterEnv) -> None:
    child = spawn("set-hf-token", "--secret-backend", "kubernetes", cwd=isolated)
    child.expect_exact("HuggingFace token (input hidden):")
    child.send(TOKEN + "\r")
    child.expect(pexpect.EOF)
    child.close()
    transcript = str(child.before)
    assert child.exitstatus == 0, transcript
    assert "Stored the HuggingFace token (prompt)" in transcript
    assert TOKEN not in transcript and TOKEN[:8] not in transcript  # hidden as typed
    assert "*" * 10 in transcript  # questionary shows a mask instead
    secret = cluster.sandbox.get("Secret", cluster.namespace, "hf-token")
    assert secret is not None


@pytest.mark.usefixtures("namespace")
def test_an_empty_answer_generates_an_api_key(isolated: Path, cluster: ClusterEnv) -> None:
    child = spawn("set-api-key", "--secret-backend", "kubernetes", cwd=isolated)
    child.expect_exact("API key (input hidden, empty to generate one):")
    child.send("\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "Stored the API key (generated)" in str(child.before)
    assert "`vllmctl get-api-key` prints it" in str(child.before)
