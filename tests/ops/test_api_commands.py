"""port-forward, list-api-models and test-completions end to end: vllmctl's own port-forward
over the sandbox's Kubernetes API (pods/portforward WebSocket) to the namespace's router
stand-in, which speaks OpenAI's API and enforces the vllm-api-key Secret."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.kube.controllers import PodFault, R
from tests.sandbox.router import FILLER, RouterStandIn

# `gated: false`: these tests are not about the HuggingFace token; without it install asks
# the Hub, which says the repo is gated, and wants a token (tests/secrets/test_old_tool.py).
MODELS = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  gated: false
  requestGPU: 1
"""
SERVED = ["llama3", "meta-llama/Llama-3.1-8B-Instruct"]
# A real newline, quotes, unicode (an astral-plane emoji too) and a JSON-ish tail.
TRICKY = 'Say "hi"\nthen stop — ünïcödé 漢字 🎉 "}'
FILLER_TEXT = "".join(FILLER)
OUR_THREADS = ("vllmctl", "Kubernetes port forward")


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def installed(run: Run, models_file: Path, cluster: ClusterEnv) -> ClusterEnv:
    models_file.write_text(MODELS)
    result = run("install", "--yes")
    assert result.exit_code == 0, result.stderr
    return cluster


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Every tunnel, relay and load-check thread an in-process command started has ended."""
    yield
    deadline = time.monotonic() + 3
    while True:
        left = [t.name for t in threading.enumerate() if t.name.startswith(OUR_THREADS)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert left == []


def router(cluster: ClusterEnv) -> RouterStandIn:
    return cluster.sandbox.router(cluster.namespace)


def pace(cluster: ClusterEnv, ttft: float, tokens_per_second: float) -> None:
    def set_speed(r: RouterStandIn) -> None:
        r.ttft, r.tokens_per_second = ttft, tokens_per_second

    cluster.sandbox.call(set_speed, router(cluster))


def requests_to(cluster: ClusterEnv, path: str) -> int:
    r = router(cluster)
    return int(cluster.sandbox.call(lambda: r.requests[path]))


def router_pods(cluster: ClusterEnv) -> list[dict[str, Any]]:
    pods = cluster.sandbox.list("Pod", cluster.namespace)
    return [p for p in pods if p["metadata"].get("labels", {}).get("environment") == "router"]


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def answer(prompt: str) -> str:
    return "echo: " + prompt + FILLER_TEXT


def stats(stderr: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stderr.splitlines() if ": " in line)


def vllmctl_process(*args: str, cluster: ClusterEnv, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env.update(cluster.env, VLLM_NAMESPACE=cluster.namespace, VLLM_RELEASE=cluster.release)
    return subprocess.Popen(
        [sys.executable, "-m", "vllmctl", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def chat(client: httpx.Client, url: str, content: str, stream: bool = False) -> str:
    body: dict[str, Any] = {"model": "llama3", "messages": [{"role": "user", "content": content}]}
    if not stream:
        reply = client.post(url + "/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["choices"][0]["message"]["content"])
    text = ""
    with client.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                text += delta.get("content") or ""
    return text


# --- list-api-models --------------------------------------------------------------------------


def test_list_api_models_table_and_json(run: Run, installed: ClusterEnv) -> None:
    table = run("list-api-models")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "PARENT", "OWNED_BY", "MAX_MODEL_LEN"]
    assert [line.split() for line in lines[1:]] == [[m, "-", "vllm", "4096"] for m in SERVED]
    as_json = run("list-api-models", "-o", "json")
    assert as_json.exit_code == 0, as_json.stderr
    cards = json.loads(as_json.stdout)
    assert [c["id"] for c in cards] == SERVED and cards[0]["max_model_len"] == 4096
    assert requests_to(installed, "/v1/models") == 2


def test_the_router_not_ready_is_said_with_a_pointer_to_status(run: Run, cluster: ClusterEnv) -> None:
    missing = run("list-api-models")
    assert missing.exit_code == 3
    assert "Service vllm-router-service does not exist" in missing.stderr
    assert "`vllmctl status`" in missing.stderr


def test_an_unready_router(run: Run, installed: ClusterEnv) -> None:
    sb = installed.sandbox
    sb.call(sb.cluster.faults.append, PodFault("environment=router", "unready"))  # type: ignore[union-attr]
    eventually(lambda: not any(is_ready(p) for p in router_pods(installed)))
    for args in (("list-api-models",), ("test-completions", "llama3")):
        result = run(*args)
        assert result.exit_code == 3, result.stderr
        assert "the router is not Ready" in result.stderr and "Running, not Ready" in result.stderr
        assert "`vllmctl status` shows why" in result.stderr


# --- test-completions -------------------------------------------------------------------------


def test_streamed_chat_arrives_intact_with_timings(run: Run, installed: ClusterEnv) -> None:
    pace(installed, 0.05, 200.0)
    result = run("test-completions", "llama3", TRICKY)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == answer(TRICKY) + "\n"  # the prompt came back byte for byte
    # The answer first, then the timings (stdout and stderr as a terminal shows them).
    assert result.output.index(FILLER_TEXT) < result.output.index("time to first token")
    seen = stats(result.stderr)
    assert float(seen["time to first token"].removesuffix(" s")) >= 0.05
    assert float(seen["total time"].removesuffix(" s")) >= 0.05 + 0.9 * 10 / 200
    assert 50 < float(seen["tokens/s"]) < 400  # paced at 200 tokens/s
    completion_tokens = len(answer(TRICKY).split())
    assert seen["tokens"].startswith(f"{len(TRICKY.split())} prompt, {completion_tokens} completion,")
    assert "(finish: stop)" in seen["tokens"]
    assert requests_to(installed, "/v1/chat/completions") == 1


def test_no_stream_completions_and_defaults(run: Run, installed: ClusterEnv) -> None:
    whole = run("test-completions", "llama3", TRICKY, "--no-stream")
    assert whole.exit_code == 0, whole.stderr
    assert whole.stdout == answer(TRICKY) + "\n"
    assert "time to first token" not in whole.stderr and "total time" in whole.stderr
    legacy = run("test-completions", "llama3", TRICKY, "--completions", "--max-tokens", "3")
    assert legacy.exit_code == 0, legacy.stderr
    assert legacy.stdout == 'echo: Say "hi"\n'  # three tokens: `echo:`, ` Say`, ` "hi"`
    assert "(finish: length)" in legacy.stderr
    assert requests_to(installed, "/v1/completions") == 1
    default = run("test-completions", "llama3", "-o", "json")
    assert default.exit_code == 0, default.stderr
    data = json.loads(default.stdout)
    assert data["text"] == answer("Say hello in one sentence.") and data["usage"]["prompt_tokens"] == 5
    # Without MODEL and without a terminal: an error naming the argument and the choices.
    unasked = run("test-completions")
    assert unasked.exit_code == 2
    assert "MODEL (the first argument: one of llama3)" in unasked.stderr


def test_model_chosen_from_models_yaml_in_a_terminal(
    installed: ClusterEnv, models_file: Path, isolated: Path
) -> None:
    models_file.write_text(MODELS + "- name: qwen\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env.update(installed.env, VLLM_NAMESPACE=installed.namespace, TERM="xterm", NO_COLOR="1", COLUMNS="120")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "vllmctl", "test-completions"],
        cwd=str(isolated),
        env=env,
        encoding="utf-8",
        timeout=30,
    )
    child.expect("Which model")
    child.send("\x1b[B")  # arrow down to "qwen", which is not deployed
    child.send("\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    text = child.before
    assert "qwen: the router answered 404 Not Found: Model 'qwen' not found." in text
    assert f"The server serves: {', '.join(SERVED)}." in text


def test_server_errors_exit_1_with_the_servers_text(run: Run, installed: ClusterEnv) -> None:
    unknown = run("test-completions", "nope", "hi")
    assert unknown.exit_code == 1
    assert "Model 'nope' not found" in unknown.stderr
    assert f"The server serves: {', '.join(SERVED)}." in unknown.stderr
    r = router(installed)
    installed.sandbox.call(r.fail_next, 1, 503, "engine overloaded, try later")
    busy = run("test-completions", "llama3", "hi")
    assert busy.exit_code == 1
    assert "503 Service Unavailable: engine overloaded, try later" in busy.stderr
    assert "`vllmctl status`" in busy.stderr


def test_api_key_from_the_secret_and_a_wrong_one(run: Run, installed: ClusterEnv) -> None:
    created = run("set-api-key", "--secret-backend", "kubernetes", input="")
    assert created.exit_code == 0, created.stderr
    upgraded = run("upgrade", "--yes")  # the chart hands the key to the router and engines
    assert upgraded.exit_code == 0, upgraded.stderr
    key = run("get-api-key", "--secret-backend", "kubernetes").stdout.strip()
    listed = run("list-api-models")
    assert listed.exit_code == 0 and "llama3" in listed.stdout
    ok = run("test-completions", "llama3", "hi")  # the router answers 401 without the key
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout == answer("hi") + "\n"
    wrong = run("test-completions", "llama3", "hi", env={"VLLM_API_KEY": "not-the-key"})
    assert wrong.exit_code == 1
    assert "401 Unauthorized: Unauthorized" in wrong.stderr
    assert "the API key sent: VLLM_API_KEY" in wrong.stderr
    for result in (listed, ok, wrong):
        assert key not in result.output and "not-the-key" not in result.output


def test_repeat_and_concurrency_make_a_load_check(run: Run, installed: ClusterEnv) -> None:
    pace(installed, 0.02, 1000.0)
    result = run("test-completions", "llama3", "hi", "--repeat", "6", "--concurrency", "3")
    assert result.exit_code == 0, result.stderr
    assert "echo:" not in result.stdout  # no answers streamed in a load check
    rows = {line[:20].strip(): line[20:].strip() for line in result.stdout.splitlines()[1:]}
    assert rows["requests"] == "6 (0 failed), 3 at a time"
    assert rows["latency p50"].endswith(" s") and rows["latency p95"].endswith(" s")
    assert rows["throughput"].endswith("requests/s") and "tokens/s" in rows["throughput"]
    as_json = run("test-completions", "llama3", "hi", "--repeat", "4", "--concurrency", "2", "-o", "json")
    summary = json.loads(as_json.stdout)
    assert (summary["requests"], summary["failed"], summary["concurrency"]) == (4, 0, 2)
    assert summary["completion_tokens"] == 4 * len(answer("hi").split())
    assert summary["latency_p50"] <= summary["latency_p95"] and summary["ttft_p50"] >= 0.02
    assert summary["tokens_per_second"] > 0
    installed.sandbox.call(router(installed).fail_next, 2, 500, "boom")
    failing = run("test-completions", "llama3", "hi", "--repeat", "4", "-o", "json")
    assert failing.exit_code == 1
    assert json.loads(failing.stdout)["failed"] == 2
    assert "2 of 4 requests failed; the first: llama3: the router answered 500" in failing.stderr
    assert "boom" in failing.stderr
    assert requests_to(installed, "/v1/chat/completions") == 14


# --- port-forward -----------------------------------------------------------------------------


def test_port_already_in_use_is_a_clear_usage_error(run: Run, cluster: ClusterEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("port-forward", str(port))
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use: give another PORT argument" in result.stderr


def test_port_forward_serves_requests_survives_a_new_pod_and_stops_on_ctrl_c(
    installed: ClusterEnv, isolated: Path
) -> None:
    forward = vllmctl_process("port-forward", "0", cluster=installed, cwd=isolated)
    try:
        assert forward.stdout is not None
        url = forward.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), forward.stderr.read() if forward.stderr else ""
        # Sequential requests, on one kept-alive connection and on new ones.
        with httpx.Client(trust_env=False) as client:
            assert [m["id"] for m in client.get(url + "/v1/models").json()["data"]] == SERVED
            assert chat(client, url, TRICKY) == answer(TRICKY)
        for i in range(3):
            with httpx.Client(trust_env=False) as client:
                assert chat(client, url, f"one {i}", stream=True) == answer(f"one {i}")
        # Concurrent streams, each on its own connection (and WebSocket).
        results: dict[int, str] = {}

        def stream(i: int) -> None:
            with httpx.Client(trust_env=False) as client:
                results[i] = chat(client, url, f"many {i}", stream=True)

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert results == {i: answer(f"many {i}") for i in range(6)}

        # The router pod is replaced: the next request waits for the new one and gets through.
        (old,) = router_pods(installed)
        sb = installed.sandbox
        sb.call(sb.store.delete, R["Pod"], installed.namespace, old["metadata"]["name"])
        with httpx.Client(trust_env=False, timeout=20) as client:
            assert chat(client, url, "after") == answer("after")
        (new,) = router_pods(installed)
        assert new["metadata"]["name"] != old["metadata"]["name"]

        # A streamed answer through --base-url is written as it arrives, not at the end.
        pace(installed, 0.0, 25.0)
        completions = vllmctl_process(
            "test-completions", "llama3", "hi", "--base-url", url + "/v1", cluster=installed, cwd=isolated
        )
        assert completions.stdout is not None
        start = time.monotonic()
        first = completions.stdout.read(5)
        first_at = time.monotonic() - start
        rest, err = completions.communicate(timeout=20)
        assert completions.returncode == 0, err
        assert first + rest == answer("hi") + "\n"
        assert time.monotonic() - start - first_at >= 0.25  # 10 more tokens at 25/s came later

        forward.send_signal(signal.SIGINT)
        _, stderr = forward.communicate(timeout=15)
    finally:
        if forward.poll() is None:
            forward.kill()
            forward.communicate()
    assert forward.returncode == 130, stderr
    assert "Traceback" not in stderr and "Interrupted" in stderr
    assert f"router pod {old['metadata']['name']}" in stderr
    assert f"forwarding to router pod {new['metadata']['name']} now." in stderr
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as again:  # the port was given back
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_a_refused_pod_port_is_retried_and_the_request_replayed(installed: ClusterEnv) -> None:
    from vllmctl.cluster.kube import Kube
    from vllmctl.cluster.tunnel import open_router_tunnel

    ns, service = installed.namespace, "vllm-router-service"

    def target_port(port: int) -> None:
        ports = [{"name": "router-sport", "port": 80, "targetPort": port, "protocol": "TCP"}]
        kube.patch_merge("v1", "services", ns, service, {"spec": {"ports": ports}})

    events: list[str] = []
    with Kube.connect(None) as kube:
        target_port(9999)  # nothing listens there in the router pod
        with open_router_tunnel(kube, ns, "vllm", reconnect_timeout=10, on_event=events.append) as tunnel:
            assert tunnel.target_port == 9999
            replies: list[str] = []
            with httpx.Client(trust_env=False, timeout=20) as client:
                sender = threading.Thread(
                    target=lambda: replies.append(chat(client, tunnel.base_url, "again"))
                )
                sender.start()
                eventually(lambda: any("connection refused" in e for e in events))
                target_port(8000)  # fixed while the request waits: it is sent again, to the right port
                sender.join(20)
            assert replies == [answer("again")]
            assert tunnel.target_port == 8000
    assert len(events) == 1 and "error forwarding port 9999 to pod" in events[0], events
    assert requests_to(installed, "/v1/chat/completions") == 1  # delivered once


def test_a_base_url_off_this_machine_never_gets_the_clusters_key(
    run: Run, installed: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release's key goes only through a port-forward (loopback); a URL the user names
    elsewhere gets VLLM_API_KEY or nothing, though the cluster's Secret is right there."""
    from vllmctl.cli.endpoint import api_key
    from vllmctl.ui import App

    assert run("set-api-key", "--secret-backend", "kubernetes", input="").exit_code == 0
    stored = run("get-api-key", "--secret-backend", "kubernetes").stdout.strip()
    assert api_key(App(), None, "http://127.0.0.1:8000")[0] == stored  # a port-forward of one's own
    key, source = api_key(App(), None, "https://llm.example.com/v1")
    assert key is None and "only VLLM_API_KEY is sent" in source and "get-api-key" in source
    monkeypatch.setenv("VLLM_API_KEY", "mine")
    assert api_key(App(), None, "https://llm.example.com/v1") == ("mine", "VLLM_API_KEY")
