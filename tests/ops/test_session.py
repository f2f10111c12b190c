"""test-completions --session ID (issue 17, section 1): the session header in force, sent
with every request; the engine that served, as the router's own log names it; refused
when the router does not route by session."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.router import HashRing, RouterStandIn
from vllmctl.core.errors import UsageError
from vllmctl.ops.session import router_args, session_header, value_problem
from vllmctl.settings import Settings

TWO_ENGINES = """\
- name: small
  modelURL: org/small
  gated: false
  replicaCount: 2
  requestGPU: 0
  requestCPU: 1
  requestMemory: 1Gi
"""
SESSION = {"VLLM_ROUTING_LOGIC": "session", "VLLM_ROUTER_SESSION_KEY": "x-user-id"}


# --- the header, without a cluster -----------------------------------------------------------


def test_a_session_id_must_fit_in_a_header() -> None:
    assert value_problem("user-42") is None
    assert value_problem("a b") is None  # spaces are fine inside a header value
    assert value_problem("") == "is empty"
    assert value_problem("x\r\nInjected: 1") == "holds a control or non-ASCII character"
    assert value_problem("ünï") == "holds a control or non-ASCII character"
    settings = Settings.resolve({}, environ=SESSION)
    with pytest.raises(UsageError, match=r"--session 'x\\ny' holds a control"):
        session_header(settings, None, "x\ny")


def test_with_base_url_the_settings_name_the_header() -> None:
    session = session_header(Settings.resolve({}, environ=SESSION), None, "alice")
    assert session == ("x-user-id", "alice", "VLLM_ROUTER_SESSION_KEY")
    with pytest.raises(UsageError) as default:
        session_header(Settings.resolve({}, environ={}), None, "alice")
    assert default.value.message.startswith(
        "--session needs session routing, and VLLM_ROUTING_LOGIC is roundrobin (the default)"
    )
    with pytest.raises(UsageError, match=r"VLLM_ROUTER_SESSION_KEY is not set"):
        session_header(Settings.resolve({}, environ={"VLLM_ROUTING_LOGIC": "session"}), None, "alice")


def test_the_command_refuses_before_sending_anything(run: Run, models_file: Path) -> None:
    models_file.write_text(TWO_ENGINES)
    result = run(
        "test-completions",
        "small",
        "--base-url",
        "http://127.0.0.1:9",
        "--session",
        "alice",
        env={"KUBECONFIG": "/nonexistent"},
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: --session needs session routing, and VLLM_ROUTING_LOGIC is roundrobin"
    )
    assert "Traceback" not in result.stderr


def test_router_args_pairs_flags_with_values() -> None:
    deployment = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"args": ["--routing-logic", "session", "--session-key", "x-user-id"]}]
                }
            }
        }
    }
    assert router_args(deployment) == {"--routing-logic": "session", "--session-key": "x-user-id"}
    assert router_args({}) == {}


def test_the_stand_ins_ring_keeps_a_session_and_moves_few_when_an_engine_goes() -> None:
    urls = [f"http://10.0.0.{i}:8000" for i in range(1, 5)]
    ring = HashRing(urls)
    before = {f"s{i}": ring.get_node(f"s{i}") for i in range(400)}
    assert before == {f"s{i}": HashRing(list(reversed(urls))).get_node(f"s{i}") for i in range(400)}
    assert set(before.values()) == set(urls)
    smaller = HashRing(urls[:3])
    moved = [s for s, url in before.items() if smaller.get_node(s) != url]
    assert all(before[s] == urls[3] for s in moved)  # only the gone engine's sessions move


# --- on the sandbox ------------------------------------------------------------------------------


@pytest.fixture
def two_engines(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> ClusterEnv:
    for key, value in SESSION.items():
        monkeypatch.setenv(key, value)
    models_file.write_text(TWO_ENGINES)
    result = run("install", "--yes", "--no-api-key")
    assert result.exit_code == 0, result.stderr
    return cluster


def ask(run: Run, session: str) -> dict[str, Any]:
    result = run("test-completions", "small", "hi", "--session", session, "-o", "json")
    assert result.exit_code == 0, result.stderr
    part: dict[str, Any] = json.loads(result.stdout)["session"]
    return part


def routed(cluster: ClusterEnv) -> dict[str, str]:
    """The stand-in's own record: request id -> the engine URL it chose."""
    r: RouterStandIn = cluster.sandbox.router(cluster.namespace)
    return dict(cluster.sandbox.call(lambda: [(x.request_id, x.url) for x in r.routed]))


def engine_pods(cluster: ClusterEnv) -> dict[str, str]:
    """Ready engine pods: name -> IP."""
    pods = cluster.sandbox.list("Pod", cluster.namespace)
    return {
        p["metadata"]["name"]: p["status"]["podIP"]
        for p in pods
        if p["metadata"].get("labels", {}).get("model") == "small"
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    }


def test_one_session_keeps_its_engine_and_sessions_spread(run: Run, two_engines: ClusterEnv) -> None:
    deadline = time.monotonic() + 10
    while len(engine_pods(two_engines)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pods = engine_pods(two_engines)
    assert len(pods) == 2

    first, again = ask(run, "alice"), ask(run, "alice")
    assert first["header"] == "x-user-id" and first["id"] == "alice"
    assert first["header_from"] == "the router's --session-key (Deployment vllm-deployment-router)"
    assert first["request_id"] != again["request_id"]
    assert first["engine"] == again["engine"] and first["engine_pod"] == again["engine_pod"]
    assert first["engine_pod"] in pods and first["engine"] == f"http://{pods[first['engine_pod']]}:8000"
    # what vllmctl read from the router's log is what the stand-in decided
    decided = routed(two_engines)
    assert decided[first["request_id"]] == decided[again["request_id"]] == first["engine"]

    seen = {ask(run, f"user-{i}")["engine_pod"] for i in range(12)}
    assert seen == set(pods)  # other sessions land on the other engine too

    text = run("test-completions", "small", "hi", "--session", "alice")
    assert text.exit_code == 0, text.stderr
    assert "session: x-user-id: alice (request " in text.stderr
    assert f"served by engine pod {first['engine_pod']} at {first['engine']} (router pod " in text.stderr


def test_a_router_that_does_not_route_by_session_is_refused(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(TWO_ENGINES)
    assert run("install", "--yes", "--no-api-key").exit_code == 0
    result = run("test-completions", "small", "--session", "alice")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: --session needs session routing, but the router (Deployment vllm-deployment-router) "
        "routes by roundrobin, which ignores any session header: set VLLM_ROUTING_LOGIC=session and "
        "VLLM_ROUTER_SESSION_KEY (e.g. x-user-id), then run vllmctl upgrade."
    )
    r: RouterStandIn = cluster.sandbox.router(cluster.namespace)
    assert cluster.sandbox.call(lambda: r.requests["/v1/chat/completions"]) == 0
