"""logs and router-logs against the sandbox: the real kubernetes client reads `pods/log`
and watches pods; following runs as a real process, ended by SIGINT."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pexpect
import pytest

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.kube.controllers import PodFault, R
from vllmctl.cluster.logs import owned_by_deployment, parse_since, selector_text
from vllmctl.core.errors import UsageError

# `gated: false`: these tests are not about the HuggingFace token; without it install asks
# the Hub, which says the repo is gated, and wants a token (tests/secrets/test_old_tool.py).
LLAMA = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  gated: false
  requestGPU: 1
  replicaCount: 2
"""
QWEN = """\
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  requestGPU: 1
"""
# Another release in the same namespace, serving a model of the same name.
OTHER = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  gated: false
  requestGPU: 1
"""
THROUGHPUT = "Avg prompt throughput"
FIRST_LINE = "INFO 11-23 00:00:00 [api_server.py] vLLM API server version 0.10.1 (sandbox)"


def pods(cluster: ClusterEnv, release: str, model: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in cluster.sandbox.list("Pod", cluster.namespace)
        if p["metadata"].get("labels", {}).get("model") == model
        and p["metadata"]["labels"].get("helm-release-name") == release
        and not p["metadata"].get("deletionTimestamp")
    )


def router_pods(cluster: ClusterEnv, release: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in cluster.sandbox.list("Pod", cluster.namespace)
        if p["metadata"]["name"].startswith(f"{release}-deployment-router-")
    )


def by_pod(stdout: str) -> dict[str, list[str]]:
    """`[pod] text` lines grouped by pod."""
    grouped: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        assert line.startswith("["), line
        pod, _, text = line[1:].partition("] ")
        grouped.setdefault(pod, []).append(text)
    return grouped


def wait_for(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def two_releases(run: Run, models_file: Path, cluster: ClusterEnv) -> ClusterEnv:
    """Release vllm (llama3 x2, qwen) and release `other` (llama3) in one namespace: 4 GPUs."""
    models_file.write_text(LLAMA + QWEN)
    installed = run("install", "--yes")
    assert installed.exit_code == 0, installed.stderr
    other = models_file.parent / "other.yaml"
    other.write_text(OTHER)
    installed = run("install", "--yes", "--models", str(other), env={"VLLM_RELEASE": "other"})
    assert installed.exit_code == 0, installed.stderr
    return cluster


# --- reading: --no-follow ---------------------------------------------------------------------


def test_tail_of_every_pod_of_the_model_and_the_router_in_this_release_only(
    run: Run, two_releases: ClusterEnv
) -> None:
    cluster = two_releases
    mine, theirs = pods(cluster, "vllm", "llama3"), pods(cluster, "other", "llama3")
    assert len(mine) == 2 and len(theirs) == 1
    result = run("logs", "llama3", "--no-follow", "--tail", "3")
    assert result.exit_code == 0, result.stderr
    # pod by pod, in name order, without --follow; not the other release's llama3, not qwen
    assert sources(result.stdout.splitlines()) == [mine[0]] * 3 + [mine[1]] * 3
    whole = run("logs", "llama3", "--no-follow", "--tail=-1", "-n", cluster.namespace)
    assert whole.exit_code == 0, whole.stderr
    for pod in mine:
        last, everything = by_pod(result.stdout)[pod], by_pod(whole.stdout)[pod]
        assert any(everything[i : i + 3] == last for i in range(5, len(everything) - 2)), (last, everything)
        assert everything[0].endswith("vLLM API server version 0.10.1 (sandbox)")
        assert "Starting to load model meta-llama/Llama-3.1-8B-Instruct" in everything[2]
    recent = run("logs", "llama3", "--no-follow", "--since", "1h", "--tail", "-1", "-c", "vllm")
    assert recent.exit_code == 0, recent.stderr
    assert by_pod(recent.stdout)[mine[0]][:5] == by_pod(whole.stdout)[mine[0]][:5]  # all younger than 1h

    # the other release's own view holds only its own pod
    theirs_view = run("logs", "llama3", "--no-follow", env={"VLLM_RELEASE": "other"})
    assert theirs_view.exit_code == 0, theirs_view.stderr
    assert sorted(by_pod(theirs_view.stdout)) == theirs

    # router-logs: the router Deployment's pods, again this release's only
    (router,) = router_pods(cluster, "vllm")
    result = run("router-logs", "--no-follow")
    assert result.exit_code == 0, result.stderr
    grouped = by_pod(result.stdout)
    assert list(grouped) == [router]  # not the other release's router
    assert "INFO:     Application startup complete." in grouped[router]
    (their_router,) = router_pods(cluster, "other")
    other = run("router-logs", "--no-follow", env={"VLLM_RELEASE": "other"})
    assert list(by_pod(other.stdout)) == [their_router]


def test_choosing_the_model_and_a_model_without_pods(
    run: Run, models_file: Path, cluster: ClusterEnv, follow: Callable[..., Follow]
) -> None:
    models_file.write_text(LLAMA + QWEN)
    assert run("install", "--yes").exit_code == 0
    unknown = run("logs", "mistral", "--no-follow")
    assert unknown.exit_code == 2
    assert "model 'mistral' is not deployed in release vllm" in unknown.stderr
    assert "deployed: llama3, qwen." in unknown.stderr
    missing = run("logs", "--yes")
    assert missing.exit_code == 2
    assert "vllmctl logs MODEL, one of llama3, qwen (not asking: --yes was given)" in missing.stderr
    no_terminal = run("logs")  # CliRunner's stdin is not a terminal
    assert no_terminal.exit_code == 2 and "not an interactive terminal" in no_terminal.stderr
    bad = run("logs", "qwen", "--since", "ten minutes")
    assert bad.exit_code == 2 and "is not a duration" in bad.stderr
    container = run("logs", "qwen", "--no-follow", "--container", "sidecar")
    assert container.exit_code == 2 and "they have vllm." in container.stderr
    none = run("logs", "qwen", env={"VLLM_RELEASE": "absent"})
    assert none.exit_code == 2 and "release absent has no models deployed" in none.stderr
    # in a terminal, a menu of the deployed models
    child = pexpect.spawn(
        sys.executable,
        ["-m", "vllmctl", "logs", "--no-follow", "--tail", "1"],
        env={**os.environ, "TERM": "xterm", "COLUMNS": "200"},
        encoding="utf-8",
        timeout=20,
    )
    child.expect("Logs of which model")
    child.send("\x1b[B\r")  # down to qwen
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    (qwen,) = pods(cluster, "vllm", "qwen")
    assert f"[{qwen}] " in child.before
    previous = run("logs", "qwen", "--previous")
    assert previous.exit_code == 1 and previous.stdout == ""
    assert "container vllm has not restarted, so there is no previous log" in previous.stderr

    # a deployed model without pods
    scaled = subprocess.run(
        cluster.kubectl("scale", "deployment", "vllm-qwen-deployment-vllm", "--replicas=0"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert scaled.returncode == 0, scaled.stderr
    wait_for(lambda: not pods(cluster, "vllm", "qwen"))
    result = run("logs", "qwen", "--no-follow")
    assert result.exit_code == 1
    assert f"model qwen of release vllm in namespace {cluster.namespace} has no pods." in result.stderr
    # following waits for pods, and picks them up from their first line
    logs = follow("logs", "qwen")
    logs.said(f"Model qwen of release vllm in namespace {cluster.namespace} has no pods yet; waiting")
    subprocess.run(
        cluster.kubectl("scale", "deployment", "vllm-qwen-deployment-vllm", "--replicas=1"), check=True
    )
    logs.until(lambda s: len(s) >= 1)
    (pod,) = pods(cluster, "vllm", "qwen")
    assert (
        logs.seen[0]
        == f"[{pod}] INFO 11-23 00:00:00 [api_server.py] vLLM API server version 0.10.1 (sandbox)"
    )
    code, stderr = logs.stop()
    assert code == 130 and f"following new pod {pod}" in stderr


# --- following: a real process ---------------------------------------------------------------


class Follow:
    """`python -m vllmctl ...`, its stdout and stderr read line by line by two threads."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vllmctl", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []  # stdout so far, as `until` took it from `lines`
        self.talk: list[str] = []  # stderr so far
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines.put), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.talk.append), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str], keep: Callable[[str], None]) -> None:
        for line in stream:
            keep(line.rstrip("\n"))

    def until(self, check: Callable[[list[str]], bool], timeout: float = 15.0) -> list[str]:
        """Read stdout until `check` holds for the lines read so far."""
        deadline = time.monotonic() + timeout
        while not check(self.seen):
            left = deadline - time.monotonic()
            assert left > 0 and self.process.poll() is None, (self.seen[-10:], self.talk, self.process.poll())
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=left))
        return self.seen

    def said(self, text: str, timeout: float = 15.0) -> None:
        """Wait for `text` on stderr."""
        wait_for(lambda: any(text in line for line in self.talk), timeout)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Send `sig`; the exit code and all of stderr."""
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=15)
        finally:
            self.process.kill()
            self.process.wait()
            for reader in self.readers:
                reader.join(5)
        return code, "\n".join(self.talk)


@pytest.fixture
def follow(isolated: Path) -> Iterator[Callable[..., Follow]]:
    started: list[Follow] = []

    def start(*args: str) -> Follow:
        started.append(Follow(*args, cwd=isolated))
        return started[-1]

    yield start
    for process in started:  # a failed test must not leave vllmctl running
        if process.process.poll() is None:
            process.stop(signal.SIGKILL)


def sources(lines: list[str]) -> list[str]:
    return [line[1:].partition("]")[0] for line in lines]


def test_follow_interleaves_pods_picks_up_a_replacement_and_ends_on_sigint(
    run: Run, models_file: Path, cluster: ClusterEnv, follow: Callable[..., Follow]
) -> None:
    models_file.write_text(LLAMA)
    assert run("install", "--yes").exit_code == 0
    first, second = pods(cluster, "vllm", "llama3")
    logs = follow("logs", "llama3", "--tail", "1")
    # each pod's last line, then their throughput lines as they come, interleaved
    seen = logs.until(lambda s: sources(s).count(first) >= 2 and sources(s).count(second) >= 2)
    order = sources(seen)
    assert set(order) == {first, second}
    after_both = order[max(order.index(first), order.index(second)) + 1 :]
    assert {first, second} <= set(after_both)
    assert any(THROUGHPUT in line for line in seen)

    sb = cluster.sandbox
    sb.call(sb.store.delete, R["Pod"], cluster.namespace, first)
    wait_for(
        lambda: len(pods(cluster, "vllm", "llama3")) == 2 and first not in pods(cluster, "vllm", "llama3")
    )
    (replacement,) = set(pods(cluster, "vllm", "llama3")) - {second}
    # the replacement from its first line (not just --tail 1), and the survivor goes on
    logs.until(lambda s: THROUGHPUT in s[-1] and sources(s)[-1] == replacement)
    mark = len(logs.seen)
    new = [line for line in logs.seen if line.startswith(f"[{replacement}]")]
    assert new[0].endswith("vLLM API server version 0.10.1 (sandbox)")
    logs.until(lambda s: second in sources(s[mark:]))

    code, stderr = logs.stop()
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert f"pod {first} is gone" in stderr
    assert f"following new pod {replacement}" in stderr


def test_follow_picks_up_each_restarted_instance_and_previous_shows_the_crashed_one(
    run: Run, models_file: Path, cluster: ClusterEnv, follow: Callable[..., Follow]
) -> None:
    models_file.write_text(QWEN)
    assert run("install", "--yes").exit_code == 0
    sb = cluster.sandbox
    assert sb.cluster is not None
    (pod,) = pods(cluster, "vllm", "qwen")
    logs = follow("logs", "qwen", "--tail", "0")
    logs.until(lambda s: len(s) >= 1 and THROUGHPUT in s[-1])
    sb.call(sb.cluster.faults.append, PodFault("model=qwen", "crashloop"))
    # the crash ends the stream; the restarted instance is followed from its first line
    logs.until(lambda s: any("Application startup failed" in line for line in s))
    logs.until(lambda s: s[-1].endswith("vLLM API server version 0.10.1 (sandbox)"))
    code, stderr = logs.stop()
    assert code == 130 and "Traceback" not in stderr
    assert f"{pod} restarted (1); following the new instance" in stderr
    assert "error" not in stderr.lower()

    result = run("logs", "qwen", "--previous", "--tail", "2")
    assert result.exit_code == 0, result.stderr
    assert by_pod(result.stdout)[pod][1] == "ERROR:    Application startup failed. Exiting."
    assert "larger than the maximum number of tokens" in by_pod(result.stdout)[pod][0]


# --- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("300ms", 1), ("2m0.5s", 121)],
)
def test_since_takes_kubectls_durations(text: str, seconds: int) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "5d", "-5m", "0s", "1h 30m", "m"])
def test_since_refuses_what_kubectl_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_since(text)


def test_selector_text_and_ownership() -> None:
    selector = {
        "matchLabels": {"release": "router", "environment": "router"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selector_text(selector) == "environment=router,release=router,tier in (a,b),!canary"
    pod = {
        "metadata": {
            "labels": {"pod-template-hash": "abc12"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "vllm-deployment-router-abc12"}],
        }
    }
    assert owned_by_deployment(pod, "vllm-deployment-router")
    # a release named "vllm-deployment-router-x" would have pods starting with the same text
    assert not owned_by_deployment(pod, "vllm-deployment")
