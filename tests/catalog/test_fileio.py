"""models.yaml is never torn, lost or overwritten blindly: crashes, races, modes and links."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.catalog.textdiff import is_insertion
from vllmctl.catalog.store import adding, apply_edit, load
from vllmctl.core.errors import ConcurrentEditError
from vllmctl.core.fileio import atomic_write, locked

BASE = "# models\n- name: base\n  modelURL: org/base\n"


def big_catalog(count: int) -> str:
    return "# generated\n" + "".join(
        f"# model {i}\n- name: model-{i}\n  modelURL: org/model-{i}\n  requestMemory: 16Gi\n\n"
        for i in range(count)
    )


def vllmctl(*args: str, cwd: Path, preamble: str = "") -> subprocess.Popen[bytes]:
    """Start the real CLI in a child process, after running `preamble` in it."""
    code = textwrap.dedent(preamble) + "\nfrom vllmctl.cli import main\nmain()\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


ADD = ("add-model", "--yes", "--name", "fresh", "--model-url", "org/fresh")


@pytest.mark.parametrize(
    ("where", "expect_new"),
    [
        ("os.fsync", False),  # killed after writing the temp file, before syncing it
        ("os.replace", False),  # killed just before the rename
        ("after-replace", True),  # killed just after the rename
    ],
)
def test_a_writer_killed_mid_write_leaves_the_old_or_the_new_file(
    isolated: Path, where: str, expect_new: bool
) -> None:
    models = isolated / "models.yaml"
    models.write_text(BASE)
    # The child kills itself with SIGKILL at the chosen point of the write: no cleanup runs.
    if where == "after-replace":
        preamble = """
            import os, signal
            real = os.replace
            def replace(*a, **k):
                real(*a, **k)
                os.kill(os.getpid(), signal.SIGKILL)
            os.replace = replace
        """
    else:
        preamble = f"""
            import os, signal
            {where} = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        """
    child = vllmctl(*ADD, cwd=isolated, preamble=preamble)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    text = models.read_text()
    if expect_new:
        assert text.startswith(BASE) and "- name: fresh\n" in text
    else:
        assert text == BASE
    # The next run cleans up the dead writer's temp file and succeeds.
    retry = vllmctl(*ADD[:3], "again", *ADD[4:], cwd=isolated)
    assert retry.wait(timeout=60) == 0
    assert not list(isolated.glob(".models.yaml.*.tmp"))
    assert load(models).names()[-1] == "again"


def test_random_kills_never_tear_the_file(isolated: Path) -> None:
    models = isolated / "models.yaml"
    original = big_catalog(1000)
    models.write_text(original)
    rng = random.Random(1234)  # fixed seed: the same kill times on every run
    outcomes = set()
    for _ in range(8):
        before = models.read_text()
        child = vllmctl(*ADD[:3], f"m{rng.randrange(10**6)}", *ADD[4:], cwd=isolated)
        time.sleep(rng.uniform(0.05, 0.5))
        child.kill()
        child.communicate()
        after = models.read_text()
        added_one = is_insertion(before, after) and after.count("- name: ") == before.count("- name: ") + 1
        assert after == before or added_one, "the file was torn"
        outcomes.add("old" if after == before else "new")
        assert not load(models).problems
    assert outcomes  # (which of old/new each kill produced depends on timing)


def test_two_processes_adding_at_once_lose_nothing(isolated: Path) -> None:
    (isolated / "models.yaml").write_text(big_catalog(200))
    children = [
        vllmctl("add-model", "--yes", "--name", f"p{i}", "--model-url", f"org/p{i}", cwd=isolated)
        for i in range(8)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    names = load(isolated / "models.yaml").names()
    assert {f"p{i}" for i in range(8)} <= set(names)
    assert len(names) == 208


def test_a_change_made_by_someone_else_is_not_overwritten(isolated: Path) -> None:
    models = isolated / "models.yaml"
    models.write_text(BASE)
    edited_by_hand = BASE + "# someone's note\n"
    with locked(models):
        models.write_text(edited_by_hand)  # an editor saves while vllmctl works
        with pytest.raises(ConcurrentEditError, match="changed on disk"):
            atomic_write(models, b"new content", expected=BASE.encode())
    assert models.read_text() == edited_by_hand
    assert not list(isolated.glob(".models.yaml.*.tmp"))


def test_answers_given_on_an_older_file_are_not_applied(isolated: Path) -> None:
    models = isolated / "models.yaml"
    models.write_text(BASE)
    seen = models.read_bytes()
    models.write_text(BASE + "# edited while the user was answering prompts\n")
    with pytest.raises(ConcurrentEditError):
        apply_edit(models, adding({"name": "x", "modelURL": "o/x"}), based_on=seen)
    assert "name: x" not in models.read_text()


def test_permissions_are_kept(isolated: Path, run) -> None:  # type: ignore[no-untyped-def]
    models = isolated / "models.yaml"
    models.write_text(BASE)
    models.chmod(0o600)
    assert run(*ADD).exit_code == 0
    assert models.stat().st_mode & 0o777 == 0o600


def test_a_symlinked_file_is_written_through_the_link(isolated: Path, run) -> None:  # type: ignore[no-untyped-def]
    real = isolated / "config" / "models.yaml"
    real.parent.mkdir()
    real.write_text(BASE)
    (isolated / "models.yaml").symlink_to(real)
    assert run(*ADD).exit_code == 0
    assert (isolated / "models.yaml").is_symlink()
    assert "fresh" in real.read_text()
