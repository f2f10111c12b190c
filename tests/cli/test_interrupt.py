"""Ctrl-C and SIGTERM while helm changes the release (issue 14, item 2; docs/recovery.md).

vllmctl runs as a real process against the sandbox and gets the signal alone (the
scripted case: `kill -INT <vllmctl>`), or twice (the escalation), or its helm child is
SIGKILLed (what vllmctl used to do), which leaves the release pending. Every time, the
next command converges to a deployed release.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.kube.controllers import PodFault

ONE = "- name: qwen\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n  requestGPU: 1\n"
TWO = ONE + "  replicaCount: 2\n"


def variant(number: int) -> str:
    """models.yaml whose engine pod template differs from the previous number's: every
    upgrade starts new (slow) pods, so helm is still waiting when the signal comes."""
    return ONE + f"  vllmConfig:\n    maxModelLen: {4096 * (1 + number % 2)}\n"


def vllmctl(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vllmctl", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """vllmctl as a process of its own, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "vllmctl", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def helm_upgrade_child(pid: int, timeout: float = 30, verb: bytes = b"upgrade") -> int:
    """The pid of vllmctl's `helm upgrade` (or `verb`) child, once it has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            break
        for child in children:
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):  # it ended meanwhile (helm version...)
                continue
            if len(argv) > 1 and argv[0].endswith(b"helm") and argv[1] == verb:
                return int(child)
        time.sleep(0.01)
    raise AssertionError(f"vllmctl never started helm {verb.decode()}")


def history(cluster: ClusterEnv) -> list[tuple[int, str]]:
    done = subprocess.run(
        cluster.helm("history", "vllm", "-o", "json"), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return []
    return [(h["revision"], h["status"]) for h in json.loads(done.stdout)]


def slow_engines(cluster: ClusterEnv, seconds: float = 30.0) -> None:
    """Engines take 30 s to get Ready, so helm is still waiting when the signal comes."""
    sb = cluster.sandbox
    sb.call(sb.cluster.faults.append, PodFault("model=qwen", "slow", ready_seconds=seconds))


def interrupt_install(cluster: ClusterEnv, cwd: Path, delay: float, signals: list[int]) -> tuple[int, str]:
    """Start `install --yes`, signal vllmctl alone `delay` s after helm upgrade started;
    its exit code and stderr."""
    slow_engines(cluster)
    process = start(cwd, "install", "--yes", "--no-api-key")
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
    reader.start()
    # stdout is read too, so that a full pipe never stalls vllmctl
    threading.Thread(
        target=lambda: (process.stdout or []) and list(process.stdout or []), daemon=True
    ).start()
    try:
        helm_upgrade_child(process.pid)
        time.sleep(delay)
        for number, sig in enumerate(signals):
            if number:
                # Python runs a handler once for signals that come before it ran: send the
                # next only once vllmctl has said it handled the previous one.
                handled(lines, number)
            process.send_signal(sig)
        process.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    cluster.sandbox.call(cluster.sandbox.cluster.faults.clear)
    return process.returncode, "".join(lines)


def handled(lines: list[str], count: int, timeout: float = 10) -> None:
    """Wait until vllmctl's stderr has `count` notices of a signal it got."""
    deadline = time.monotonic() + timeout
    while sum(("Ctrl-C" in line or "SIGTERM:" in line) for line in list(lines)) < count:
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.001)


def converged(cluster: ClusterEnv, replicas: int, wanted: str = "") -> None:
    """The latest revision is deployed and the engine runs what it says, all Ready."""
    revisions = history(cluster)
    assert revisions and revisions[-1][1] == "deployed", revisions
    deployment = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-qwen-deployment-vllm")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == replicas
    assert deployment["status"].get("readyReplicas") == replicas
    assert deployment["status"].get("updatedReplicas") == replicas
    assert wanted in json.dumps(deployment["spec"]["template"])


def kill_helm_when(cluster: ClusterEnv, cwd: Path, command: str, state: tuple[int, str]) -> None:
    """Run `vllmctl <command> --yes` and SIGKILL its helm once the latest revision is
    `state`, as vllmctl used to do on Ctrl-C: the release stays pending."""
    slow_engines(cluster)
    process = subprocess.Popen(
        [sys.executable, "-m", "vllmctl", command, "--yes", "--no-api-key"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    helm = helm_upgrade_child(process.pid)
    deadline = time.monotonic() + 30
    while history(cluster)[-1:] != [state]:
        assert time.monotonic() < deadline, history(cluster)
        time.sleep(0.05)
    os.kill(helm, signal.SIGKILL)
    process.wait(timeout=30)
    cluster.sandbox.call(cluster.sandbox.cluster.faults.clear)
    assert history(cluster)[-1:] == [state]


CASES = [  # (seconds after helm upgrade started, the signals vllmctl gets)
    (0.0, [signal.SIGINT]),
    (0.2, [signal.SIGINT]),
    (0.4, [signal.SIGTERM]),
    (0.6, [signal.SIGINT]),
    (1.5, [signal.SIGINT]),
    (0.3, [signal.SIGINT, signal.SIGINT]),  # a second Ctrl-C kills helm
    (0.5, [signal.SIGTERM, signal.SIGINT]),
]


def test_interrupted_install_and_upgrade_always_converge(models_file: Path, cluster: ClusterEnv) -> None:
    """Each case interrupts an install (the first) or an upgrade (models.yaml changes the
    engine's pod template each time); `install --yes --recover` then converges, within a
    bounded time."""
    cwd = models_file.parent
    started = time.monotonic()
    for number, (delay, signals) in enumerate(CASES):
        models_file.write_text(variant(number))
        before = history(cluster)
        code, stderr = interrupt_install(cluster, cwd, delay, signals)
        after = history(cluster)
        assert code == 130, stderr
        assert "Traceback" not in stderr
        assert "asked helm to stop" in stderr  # the first signal was passed on
        if len(signals) > 1:  # helm killed, or (when it ended on the first) the second only noted
            assert "again: killed helm at once" in stderr or "helm had already stopped" in stderr, stderr
        # vllmctl tells the truth about what helm left behind
        if after == before:
            assert "before helm" in stderr, stderr
        elif after[-1][1].startswith("pending-"):
            assert f"stuck in {after[-1][1]}" in stderr and "vllmctl recover" in stderr, stderr
        elif after[-1][1] == "deployed":  # the signal came as helm was recording its success
            assert f"but helm had finished: revision {after[-1][0]} is deployed" in stderr, stderr
        else:
            assert after[-1][1] == "failed", after
            assert f"recorded revision {after[-1][0]} " in stderr and "as failed" in stderr, stderr
        if len(signals) == 1:
            assert not after or not after[-1][1].startswith("pending-"), after  # helm recorded it
        fixed = vllmctl("install", "--yes", "--no-api-key", "--recover", cwd=cwd)
        assert fixed.returncode == 0, (number, after, fixed.stderr)
        converged(cluster, 1, f'"--max-model-len", "{4096 * (1 + number % 2)}"')
    assert time.monotonic() - started < 240


@pytest.fixture
def stuck_install(models_file: Path, cluster: ClusterEnv) -> Path:
    """A release left pending-install: helm SIGKILLed mid-install, as vllmctl used to do."""
    models_file.write_text(ONE)
    kill_helm_when(cluster, models_file.parent, "install", (1, "pending-install"))
    assert history(cluster) == [(1, "pending-install")]
    return models_file.parent


def test_a_stuck_install_is_named_everywhere_and_recover_repairs_it(
    stuck_install: Path, cluster: ClusterEnv
) -> None:
    cwd = stuck_install
    for args in (("install", "--yes", "--no-api-key"), ("upgrade", "--yes", "--no-api-key"), ("plan",)):
        refused = vllmctl(*args, cwd=cwd)
        assert refused.returncode == 3, (args, refused.stderr)
        assert "stuck in pending-install (revision 1" in refused.stderr, refused.stderr
        assert "Recover with: vllmctl recover (it uninstalls it" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert "add --recover" in vllmctl("install", "--yes", cwd=cwd).stderr
    rollback = vllmctl("rollback", "--yes", cwd=cwd)
    assert rollback.returncode == 3 and "vllmctl recover" in rollback.stderr, rollback.stderr
    status = vllmctl("status", cwd=cwd)
    assert status.returncode == 1
    assert "pending-install" in status.stdout + status.stderr
    assert "`vllmctl recover` repairs it" in status.stdout + status.stderr
    assert history(cluster) == [(1, "pending-install")]  # none of them changed anything

    recover = vllmctl("recover", "--yes", cwd=cwd)
    assert recover.returncode == 0, recover.stderr
    assert "Uninstalled vllm, which never deployed" in recover.stderr
    assert vllmctl("install", "--yes", "--no-api-key", cwd=cwd).returncode == 0
    converged(cluster, 1)
    again = vllmctl("recover", "--yes", cwd=cwd)
    assert again.returncode == 0 and "is deployed (revision 1): nothing to recover" in again.stderr


def test_a_stuck_upgrade_rolls_back_to_the_last_deployed_revision(
    models_file: Path, cluster: ClusterEnv
) -> None:
    cwd = models_file.parent
    models_file.write_text(ONE)
    assert vllmctl("install", "--yes", "--no-api-key", cwd=cwd).returncode == 0
    models_file.write_text(TWO)
    kill_helm_when(cluster, cwd, "upgrade", (2, "pending-upgrade"))
    plan = vllmctl("plan", cwd=cwd)
    assert plan.returncode == 3 and "stuck in pending-upgrade (revision 2" in plan.stderr, plan.stderr
    assert "rolls it back to revision 1, the last deployed one" in plan.stderr
    upgrade = vllmctl("upgrade", "--yes", "--no-api-key", "--recover", cwd=cwd)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Recovered vllm: rolled back to revision 1." in upgrade.stderr
    assert [s for _, s in history(cluster)][-2:] == ["superseded", "deployed"]
    converged(cluster, 2)


def test_ctrl_c_at_a_terminal_reaches_helm_once(models_file: Path, cluster: ClusterEnv) -> None:
    """A terminal's Ctrl-C goes to the whole foreground process group; helm runs in a group
    of its own, so it is stopped once, by vllmctl, and records the install as failed."""
    import pexpect

    models_file.write_text(ONE)
    slow_engines(cluster)
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "vllmctl", "install", "--yes", "--no-api-key"],
        cwd=str(models_file.parent),
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    helm_upgrade_child(child.pid)
    time.sleep(0.5)
    child.sendintr()
    child.expect("asked helm to stop")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "recorded revision 1 of release vllm" in (child.before or "")
    assert history(cluster) == [(1, "failed")]
    cluster.sandbox.call(cluster.sandbox.cluster.faults.clear)
    assert vllmctl("install", "--yes", "--no-api-key", cwd=models_file.parent).returncode == 0
    converged(cluster, 1)


@pytest.mark.parametrize(
    ("statuses", "stuck", "target"),
    [
        (["pending-install"], "pending-install", None),
        (["deployed", "pending-upgrade"], "pending-upgrade", 1),
        (["superseded", "pending-upgrade", "deployed", "pending-rollback"], "pending-rollback", 3),
        (["failed", "pending-upgrade"], "pending-upgrade", None),  # never deployed: uninstall
        (["deployed", "failed"], None, None),  # helm recorded the outcome: nothing stuck
        (["superseded", "pending-upgrade", "deployed"], None, None),  # an old mark, repaired since
        ([], None, None),
    ],
)
def test_what_counts_as_stuck(statuses: list[str], stuck: str | None, target: int | None) -> None:
    from vllmctl.ops.recovery import stuck_in

    history = [
        {"revision": i + 1, "status": s, "updated": "2026-01-01T10:00:00Z"} for i, s in enumerate(statuses)
    ]
    found = stuck_in(history, "vllm", "ns")
    assert (found.status if found else None) == stuck
    assert (found.target if found else None) == target


@pytest.mark.parametrize("twice", [False, True], ids=["ctrl-c-waits", "second-ctrl-c-kills"])
def test_ctrl_c_during_a_rollback_waits_for_helm(models_file: Path, cluster: ClusterEnv, twice: bool) -> None:
    """helm rollback has no signal handler (it would leave pending-rollback): the first
    Ctrl-C lets it finish; a second kills it, and `vllmctl recover` repairs the release."""
    cwd = models_file.parent
    models_file.write_text(variant(0))
    assert vllmctl("install", "--yes", "--no-api-key", cwd=cwd).returncode == 0
    models_file.write_text(variant(1))
    assert vllmctl("upgrade", "--yes", "--no-api-key", cwd=cwd).returncode == 0
    slow_engines(cluster, 4.0 if not twice else 30.0)
    process = start(cwd, "rollback", "1", "--yes")
    try:
        helm_upgrade_child(process.pid, verb=b"rollback")
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        if twice:
            time.sleep(0.5)
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    cluster.sandbox.call(cluster.sandbox.cluster.faults.clear)
    assert "cannot stop halfway without leaving the release stuck" in stderr, stderr
    if not twice:
        assert process.returncode == 0, stderr
        assert "Rolled vllm back to revision 1." in stderr
        assert history(cluster)[-1] == (3, "deployed")
        return
    assert process.returncode == 130, stderr
    assert "again: killed helm at once" in stderr
    assert history(cluster)[-1] == (3, "pending-rollback")
    assert (
        "stuck in pending-rollback (revision 3" in stderr
        and "vllmctl recover (it rolls it back to revision 2" in stderr
    )
    assert vllmctl("recover", "--yes", cwd=cwd).returncode == 0
    converged(cluster, 1, '"--max-model-len", "8192"')
