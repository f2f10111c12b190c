"""status and endpoints against the sandbox: real helm, the real kubernetes client, pods
made to fail by PodFaults, and the router stand-in reached through a port-forward."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import yaml
from click.testing import Result

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv
from tests.sandbox.kube.controllers import PodFault

# `gated: false`: these tests are not about the HuggingFace token; without it install asks
# the Hub, which says the repo is gated, and wants a token (tests/secrets/test_old_tool.py).
LLAMA = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  gated: false
  requestGPU: 1
"""
QWEN = """\
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  requestGPU: 1
"""


def small(name: str) -> str:
    """A model that needs no GPU, so many fit on the sandbox's two nodes."""
    # `gated: false`: a made-up repo the Hub does not show would need the token.
    return (
        f"- name: {name}\n  modelURL: org/{name}\n  gated: false\n"
        "  requestGPU: 0\n  requestCPU: 1\n  requestMemory: 1Gi\n"
    )


def sh(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def deploy_without_waiting(run: Run, cluster: ClusterEnv, tmp_path: Path) -> None:
    """helm install without --wait: for releases that will never be Ready."""
    values = tmp_path / "values.yaml"
    rendered = run("render", "-o", str(values))
    assert rendered.exit_code == 0, rendered.stderr
    if cluster.sandbox.get("Namespace", None, cluster.namespace) is None:
        cluster.sandbox.create_namespace(cluster.namespace)
    sh(cluster.helm("upgrade", "--install", cluster.release, str(MINI_CHART), "--values", str(values)))


def status_json(run: Run) -> tuple[Result, dict[str, Any]]:
    result = run("status", "-o", "json")
    assert result.exit_code in (0, 1), result.stderr
    return result, json.loads(result.stdout)


def status_until(run: Run, done: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
    """`status -o json` again until `done` holds for its report."""
    deadline = time.monotonic() + timeout
    while True:
        _, report = status_json(run)
        if done(report):
            return report
        assert time.monotonic() < deadline, json.dumps(report, indent=1)
        time.sleep(0.1)


def model(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in report["models"] if m["name"] == name)


def reasons(report: dict[str, Any], name: str) -> list[str]:
    return [p["reason"] for p in model(report, name)["pods"] if p["reason"]]


# --- tests --------------------------------------------------------------------------------


def test_two_models_ready_and_served_then_models_yaml_drifts(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(LLAMA + QWEN)
    assert run("install", "--yes").exit_code == 0
    result = run("status")
    assert result.exit_code == 0, result.stdout + result.stderr
    text = result.stdout
    assert (
        "Release vllm in namespace " + cluster.namespace + ": revision 1, chart vllm-stack-0.1.8, deployed"
        in text
    )
    rows = {
        line.split()[0]: line.split() for line in text.splitlines() if line.startswith(("llama3 ", "qwen "))
    }
    assert rows["llama3"][1:5] == ["1/1", "1", "1", "1"]  # ready, up to date, available, GPUs
    assert rows["qwen"][-3:] == ["v0.10.1", "yes", "Ready"]  # tag, served by the router, status
    assert "vllm-deployment-router   1/1" in text
    assert "Service vllm-router-service: ClusterIP" in text
    assert (
        f"Base URL in the cluster: http://vllm-router-service.{cluster.namespace}.svc.cluster.local/v1"
        in text
    )
    assert (
        "Served (GET /v1/models): Qwen/Qwen2.5-1.5B-Instruct, llama3, meta-llama/Llama-3.1-8B-Instruct, qwen"
        in text
    )
    assert "models.yaml, the release and the router agree." in text
    assert text.rstrip().endswith("All Ready.")

    result, report = status_json(run)
    assert result.exit_code == 0
    assert report["ready"] is True and report["problems"] == []
    assert report["release"] | {"updated": None, "updated_age": None} == {
        "name": "vllm",
        "namespace": cluster.namespace,
        "installed": True,
        "revision": 1,
        "chart": "vllm-stack-0.1.8",
        "chart_version": "0.1.8",
        "app_version": report["release"]["app_version"],
        "status": "deployed",
        "updated": None,
        "updated_age": None,
        "error": None,
    }
    llama = model(report, "llama3")
    assert llama["replicas"] == {"desired": 1, "updated": 1, "ready": 1, "available": 1}
    assert (llama["ready"], llama["configured"], llama["deployed"], llama["serving"]) == (
        True,
        True,
        True,
        True,
    )
    assert (llama["gpus_per_replica"], llama["gpu_resource"], llama["tag"]) == (
        1,
        "nvidia.com/gpu",
        "v0.10.1",
    )
    assert llama["served_names"] == ["llama3", "meta-llama/Llama-3.1-8B-Instruct"]
    assert llama["phases"] == {"Running": 1} and llama["restarts"] == 0
    (pod,) = llama["pods"]
    assert pod["ready"] and pod["reason"] is None and pod["node"].startswith("gpu-node-")
    assert llama["service"]["dns"] == f"vllm-llama3-engine-service.{cluster.namespace}.svc.cluster.local"
    router = report["router"]
    assert (router["found"], router["ready"], router["reachable"], router["error"]) == (
        True,
        True,
        True,
        None,
    )
    assert router["served"] == [
        "Qwen/Qwen2.5-1.5B-Instruct",
        "llama3",
        "meta-llama/Llama-3.1-8B-Instruct",
        "qwen",
    ]
    assert router["service"]["name"] == "vllm-router-service"
    assert all(not names for names in report["comparison"].values())

    # A model added to models.yaml after the install, and one removed from it.
    models_file.write_text(LLAMA + small("mistral"))
    result = run("status")
    assert result.exit_code == 1
    assert "in models.yaml, not deployed (vllmctl upgrade): mistral" in result.stdout
    assert "deployed, not in models.yaml (vllmctl upgrade removes them): qwen" in result.stdout
    assert "served by the router, not in models.yaml: Qwen/Qwen2.5-1.5B-Instruct, qwen" in result.stdout
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert rows["mistral"].endswith("not deployed")
    _, report = status_json(run)
    assert report["comparison"] == {
        "configured_not_deployed": ["mistral"],
        "deployed_not_configured": ["qwen"],
        "deployed_not_serving": [],
        "serving_not_configured": ["Qwen/Qwen2.5-1.5B-Instruct", "qwen"],
        "plan": ["+ mistral (org/mistral)", "- qwen"],  # what `vllmctl plan` says
    }
    assert "the release differs from models.yaml: run vllmctl plan (2 changes)" in result.stdout
    assert [m["name"] for m in report["models"]] == ["llama3", "mistral", "qwen"]
    as_yaml = run("status", "-o", "yaml")
    assert as_yaml.exit_code == 1
    assert yaml.safe_load(as_yaml.stdout)["comparison"] == report["comparison"]
    assert report["ready"] is True  # the pods are; the drift is what exit code 1 reports
    assert any("mistral" in p for p in report["problems"])


def test_a_model_pending_for_gpus_says_why(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path
) -> None:
    # 3 GPUs per replica fit nowhere: the sandbox's nodes have 2 each.
    models_file.write_text(LLAMA + "- name: big\n  modelURL: org/big\n  gated: false\n  requestGPU: 3\n")
    deploy_without_waiting(run, cluster, tmp_path)
    report = status_until(run, lambda r: bool(reasons(r, "big")) and model(r, "llama3")["ready"])
    (reason,) = reasons(report, "big")
    assert reason.startswith(
        "Pending: cannot be scheduled: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu"
    )
    assert "each replica asks for 3 nvidia.com/gpu" in reason
    big = model(report, "big")
    assert (big["ready"], big["phases"], big["gpus_per_replica"]) == (False, {"Pending": 1}, 3)
    assert report["ready"] is False
    assert any(p.startswith("model big: Pending: cannot be scheduled") for p in report["problems"])
    result = run("status")
    assert result.exit_code == 1
    assert "Not Ready:" in result.stdout
    assert "  big: pod vllm-big-deployment-vllm-" in result.stdout
    assert "Insufficient nvidia.com/gpu" in result.stdout
    assert "llama3" not in result.stdout.split("Not Ready:")[1].split("ROUTER")[0]


def test_crashloop_image_pull_and_oom_in_plain_words(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path
) -> None:
    sb = cluster.sandbox
    assert sb.cluster is not None
    for fault in (
        PodFault("model=crashy", "crashloop", exit_code=3),
        PodFault("model=pully", "imagepull"),
        PodFault("model=oomy", "oomkilled"),
        PodFault("model=unready", "unready"),
    ):
        sb.call(sb.cluster.faults.append, fault)
    models_file.write_text("".join(small(n) for n in ("crashy", "pully", "oomy", "unready")))
    deploy_without_waiting(run, cluster, tmp_path)

    def explained(r: dict[str, Any]) -> bool:
        pods = {m["name"]: m["pods"] for m in r["models"]}
        # crashy's pod cycles (running, crashed, back-off): wait for a read in its back-off,
        # however slowly the machine runs the reads, so the words checked below are there.
        return (
            all(pods[n] and pods[n][0]["reason"] for n in ("crashy", "pully", "oomy", "unready"))
            and all(
                pods[n][0]["log_tail"] and pods[n][0]["exit_code"] is not None for n in ("crashy", "oomy")
            )
            and pods["crashy"][0]["reason"].startswith("CrashLoopBackOff")
        )

    report = status_until(run, explained)
    (crashy,) = model(report, "crashy")["pods"]
    assert crashy["reason"].startswith("CrashLoopBackOff: container vllm exited with code 3 (Error)")
    assert crashy["exit_code"] == 3 and crashy["status"] in ("CrashLoopBackOff", "Running")
    assert crashy["log_tail"][-1] == "ERROR:    Application startup failed. Exiting."
    assert "larger than the maximum number of tokens" in crashy["log_tail"][-2]
    (pully,) = model(report, "pully")["pods"]
    assert pully["status"] == "ImagePullBackOff"
    assert pully["reason"].startswith("ImagePullBackOff: cannot pull image vllm/vllm-openai:v0.10.1: ")
    assert "Failed to pull image" in pully["reason"] and pully["log_tail"] == []
    (oomy,) = model(report, "oomy")["pods"]
    assert "OOMKilled: container vllm ran out of memory and was killed (exit code 137)" in oomy["reason"]
    assert oomy["exit_code"] == 137
    assert oomy["log_tail"][-2].startswith("torch.OutOfMemoryError: CUDA out of memory")
    (unready,) = model(report, "unready")["pods"]
    assert (
        unready["reason"]
        == "running, not Ready: Readiness probe failed: HTTP probe failed with statuscode: 503"
    )

    # The table says the same.
    result = run("status")
    assert result.exit_code == 1
    text = result.stdout
    assert "crashy: pod vllm-crashy-deployment-vllm-" in text and "exited with code 3 (Error)" in text
    assert "      | ERROR:    Application startup failed. Exiting." in text
    assert "ImagePullBackOff: cannot pull image vllm/vllm-openai:v0.10.1" in text
    assert "ran out of memory and was killed (exit code 137)" in text
    assert "      | torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB." in text
    assert "Readiness probe failed: HTTP probe failed with statuscode: 503" in text


def test_api_requests_do_not_grow_with_the_number_of_models(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    api = cluster.sandbox.api

    def requests_of_status() -> list[tuple[str, str]]:
        before = cluster.sandbox.call(len, api.requests)
        result = run("status")
        assert result.exit_code == 0, result.stdout + result.stderr
        return list(cluster.sandbox.call(lambda: api.requests[before:]))

    models_file.write_text("".join(small(f"m{i}") for i in range(2)))
    assert run("install", "--yes").exit_code == 0
    with_two = requests_of_status()
    models_file.write_text("".join(small(f"m{i}") for i in range(6)))
    assert run("upgrade", "--yes").exit_code == 0
    with_six = requests_of_status()
    assert len(with_two) == len(with_six), (with_two, with_six)
    # one list per kind, never a GET per model
    # (no path names model m5's objects; a pod's random suffix may hold "m5", hence "-m5-")
    assert not [path for _, path in with_six if "-m5-" in path]
    assert sum("/events?" in path for _, path in with_six) == 1
    assert any("fieldSelector=involvedObject.kind%3DPod" in path for _, path in with_six)


def test_crashing_pods_cost_at_most_three_log_reads(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path
) -> None:
    sb = cluster.sandbox
    assert sb.cluster is not None
    sb.call(sb.cluster.faults.append, PodFault("model", "crashloop"))
    models_file.write_text("".join(small(f"c{i}") for i in range(5)))
    deploy_without_waiting(run, cluster, tmp_path)
    status_until(run, lambda r: sum(bool(p["log_tail"]) for m in r["models"] for p in m["pods"]) == 3)
    before = sb.call(len, sb.api.requests)
    _, report = status_json(run)
    logs = [path for _, path in sb.call(lambda: sb.api.requests[before:]) if "/log?" in path]
    assert len(logs) == 3
    crashing = [p for m in report["models"] for p in m["pods"] if "exited with code 1" in (p["reason"] or "")]
    assert len(crashing) == 5


def test_watch_ends_when_everything_is_ready(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path
) -> None:
    sb = cluster.sandbox
    assert sb.cluster is not None
    sb.call(sb.cluster.faults.append, PodFault("model=slow", "slow", ready_seconds=1.5))
    models_file.write_text(small("fast") + small("slow"))
    deploy_without_waiting(run, cluster, tmp_path)
    started = time.monotonic()
    result = run("status", "--watch", "--interval", "0.1", "--timeout", "20")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 15
    frames = result.stdout.split("\n---\n")
    assert len(frames) >= 2  # at least one not Ready, then the Ready one
    assert "All Ready." not in frames[0] and frames[-1].rstrip().endswith("All Ready.")
    assert result.stdout.count("All Ready.") == 1  # the final report, once
    # -o json waits too, and prints the final report only
    watched = run("status", "--watch", "--interval", "0.1", "-o", "json")
    assert watched.exit_code == 0 and json.loads(watched.stdout)["ready"] is True


def spawn(*args: str, cwd: Path) -> pexpect.spawn:
    """vllmctl in a terminal (where --watch redraws in place)."""
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "COLUMNS": "200", "LINES": "50"}
    return pexpect.spawn(
        sys.executable, ["-m", "vllmctl", *args], cwd=str(cwd), env=env, encoding="utf-8", timeout=30
    )


def test_watch_in_a_terminal_redraws_until_ready(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path
) -> None:
    sb = cluster.sandbox
    assert sb.cluster is not None
    # The model loads until the watch has drawn a frame saying so, however slowly the
    # machine starts the child (a fixed loading time made this test depend on load).
    sb.call(sb.cluster.faults.append, PodFault("model=slow", "slow", ready_seconds=600))
    models_file.write_text(small("slow"))
    deploy_without_waiting(run, cluster, tmp_path)
    child = spawn("status", "--watch", "--interval", "0.1", cwd=models_file.parent)
    child.expect_exact("not Ready", timeout=60)  # a frame drawn while the model loads
    sb.call(sb.cluster.faults.clear)  # now it finishes loading
    child.expect(pexpect.EOF)
    child.close()
    transcript = str(child.before)
    assert child.exitstatus == 0, transcript
    assert transcript.rstrip().endswith("All Ready.")  # and the last frame, left on the screen


def test_ctrl_c_ends_a_watch(run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path) -> None:
    models_file.write_text("- name: big\n  modelURL: org/big\n  gated: false\n  requestGPU: 3\n")
    deploy_without_waiting(run, cluster, tmp_path)
    child = spawn("status", "--watch", "--interval", "0.1", cwd=models_file.parent)
    child.expect_exact("Insufficient nvidia.com/gpu")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "Interrupted" in str(child.before)


def test_watch_gives_up_after_its_timeout(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path
) -> None:
    models_file.write_text("- name: big\n  modelURL: org/big\n  gated: false\n  requestGPU: 3\n")
    deploy_without_waiting(run, cluster, tmp_path)
    result = run("status", "--watch", "--interval", "0.1", "--timeout", "0.5")
    assert result.exit_code == 1
    assert "not everything was Ready within 0.5 s" in result.stderr
    assert result.stdout.rstrip().endswith("problems (see above).")
    as_json = run("status", "--watch", "--interval", "0.1", "--timeout", "0.3", "-o", "json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["ready"] is False


def test_no_release(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(LLAMA)
    result = run("status")
    assert result.exit_code == 1
    assert f"Release vllm in namespace {cluster.namespace}: not installed" in result.stdout
    assert "in models.yaml, not deployed (vllmctl install): llama3" in result.stdout
    _, report = status_json(run)
    assert report["release"]["installed"] is False and report["ready"] is False
    assert report["comparison"]["configured_not_deployed"] == ["llama3"]
    assert report["router"]["found"] is False


def test_endpoints_show_services_urls_and_examples_without_the_key(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path
) -> None:
    key = "sk-" + "Q7w" * 12
    cluster.sandbox.create_namespace(cluster.namespace)  # set-api-key needs it; install creates it
    stored = run("set-api-key", "--secret-backend", "kubernetes", "--stdin", input=key)
    assert stored.exit_code == 0, stored.stderr
    models_file.write_text(LLAMA + QWEN)
    assert run("install", "--yes").exit_code == 0  # the router and engines now require the key
    ns = cluster.namespace
    result = run("endpoints")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert key not in text + result.stderr
    base = f"http://vllm-router-service.{ns}.svc.cluster.local/v1"
    assert f"Base URL (clients in the cluster): {base}" in text
    assert f"vllm-router-service.{ns}.svc.cluster.local" in text
    assert f"vllm-llama3-engine-service.{ns}.svc.cluster.local" in text
    assert "80->8000/TCP (router-sport)" in text
    assert f"curl -sS {base}/chat/completions" in text
    assert '-H "Authorization: Bearer $(vllmctl get-api-key)"' in text
    assert '"model": "llama3"' in text
    assert 'export OPENAI_API_KEY="$(vllmctl get-api-key)"' in text
    assert f'client = OpenAI(base_url="{base}")' in text
    data = json.loads(run("endpoints", "-o", "json").stdout)
    assert key not in json.dumps(data)
    assert data["base_url"] == base
    assert data["router"]["dns"] == f"vllm-router-service.{ns}.svc.cluster.local"
    assert sorted(data["engines"]) == ["llama3", "qwen"]
    assert data["engines"]["qwen"]["ports"][0] == {
        "name": "service-port",
        "port": 80,
        "target_port": "container-port",
        "protocol": "TCP",
    }
    assert data["api_key"] == {
        "required": True,
        "secret": "vllm-api-key",
        "key": "api-key",
        "command": "vllmctl get-api-key",
    }
    assert data["notes"] == []
    assert "$(vllmctl get-api-key)" in data["examples"]["curl"]
    # and status, which reads the key to ask the router, never shows it either
    status = run("status", "-o", "json")
    assert status.exit_code == 0, status.stdout
    assert key not in status.stdout + status.stderr
    assert json.loads(status.stdout)["router"]["served"] == [
        "Qwen/Qwen2.5-1.5B-Instruct",
        "llama3",
        "meta-llama/Llama-3.1-8B-Instruct",
        "qwen",
    ]


def test_endpoints_say_when_the_release_has_no_api_key(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(LLAMA)
    assert run("install", "--yes").exit_code == 0
    result = run("endpoints")
    assert result.exit_code == 0, result.stderr
    assert "note: release vllm was deployed without an API key: requests need none" in result.stdout
    assert json.loads(run("endpoints", "-o", "json").stdout)["api_key"]["required"] is False


def test_endpoints_examples_name_a_model_that_is_ready(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: Any
) -> None:
    # "big" sorts first but fits on no node (3 GPUs): the examples must not send clients to it.
    models_file.write_text("- name: big\n  modelURL: org/big\n  gated: false\n  requestGPU: 3\n" + LLAMA)
    monkeypatch.setenv("VLLM_HELM_TIMEOUT", "2s")
    assert run("install", "--yes", "--force").exit_code == 3  # helm's --wait gives up on "big"
    report = json.loads(run("endpoints", "-o", "json").stdout)
    assert report["example_model"] == "llama3"


def test_endpoints_without_a_release(run: Run, cluster: ClusterEnv) -> None:
    result = run("endpoints")
    assert result.exit_code == 2
    assert "release vllm has no Services in namespace" in result.stderr


# --- reasons the sandbox does not simulate, from objects as the API server returns them ----


def pod(status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "creationTimestamp": "2025-01-01T00:00:00Z", **meta}, "status": status}


def warning(reason: str, message: str) -> dict[str, Any]:
    return {"type": "Warning", "reason": reason, "message": message, "lastTimestamp": "2025-01-01T00:00:01Z"}


def explain(p: dict[str, Any], events: list[dict[str, Any]] | None = None) -> str | None:
    from vllmctl.ops.status.diagnose import pod_status as _pod

    return _pod(p, events or [], None, lambda text: text).reason


def test_a_missing_secret_is_named() -> None:
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "hf-token" not found'}
    p = pod({"phase": "Pending", "containerStatuses": [{"name": "vllm", "state": {"waiting": waiting}}]})
    assert explain(p) == 'CreateContainerConfigError: container vllm: secret "hf-token" not found'


def test_an_evicted_pod_and_a_volume_that_does_not_mount() -> None:
    evicted = pod(
        {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}
    )
    assert explain(evicted) == "Evicted: The node was low on resource: memory."
    creating = pod(
        {
            "phase": "Pending",
            "containerStatuses": [{"name": "vllm", "state": {"waiting": {"reason": "ContainerCreating"}}}],
        }
    )
    mount = warning("FailedMount", 'MountVolume.SetUp failed for volume "vllm-storage": not bound')
    assert explain(creating, [mount]) == (
        'ContainerCreating: FailedMount: MountVolume.SetUp failed for volume "vllm-storage": not bound'
    )


def test_a_liveness_restart_and_a_terminating_pod() -> None:
    restarted = {
        "name": "vllm",
        "ready": False,
        "restartCount": 2,
        "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "Error"}},
    }
    p = pod({"phase": "Running", "containerStatuses": [restarted]})
    assert (
        explain(p)
        == "restarting after a crash: container vllm exited with code 137 (Error); restarted 2 times"
    )
    gone = pod({"phase": "Running"}, deletionTimestamp="2025-01-01T00:00:05Z")
    assert explain(gone) == "terminating (being replaced or scaled down)"


def test_names_and_selectors() -> None:
    from vllmctl.ops.status.cluster import label_selector_text
    from vllmctl.ops.status.diagnose import redactor as _redactor
    from vllmctl.ops.status.objects import image_tag
    from vllmctl.ops.status.objects import parse_helm_time as _parse_helm_time

    assert image_tag("registry.local:5000/vllm/vllm-openai:v0.10.1") == "v0.10.1"
    assert image_tag("registry.local:5000/vllm/vllm-openai") is None
    assert image_tag("vllm/vllm-openai@sha256:abc") == "sha256:abc"
    selector = {
        "matchLabels": {"release": "router", "environment": "router"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "old", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector_text(selector) == "environment=router,release=router,tier in (a,b),!old"
    when = _parse_helm_time("2025-11-23 10:00:00.123456789 +0100 CET")
    assert when is not None and when.isoformat() == "2025-11-23T10:00:00+01:00"
    assert _redactor(["s3cr3t-key"])("ERROR: bad key s3cr3t-key") == "ERROR: bad key [redacted]"


def test_status_compares_what_plan_compares_after_a_rollback(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(small("a"))
    assert run("install", "--yes", "--no-api-key").exit_code == 0  # revision 1: no Secret references
    assert run("set-api-key", "--secret-backend", "kubernetes", input="k" * 40).exit_code == 0
    assert run("upgrade", "--yes").exit_code == 0  # revision 2 references Secret vllm-api-key
    assert run("status").exit_code == 0
    assert run("rollback", "1", "--yes").exit_code == 0  # the names agree, the values do not
    plan = run("plan", "-o", "json")
    assert plan.exit_code == 1
    result = run("status")
    assert result.exit_code == 1, result.stdout
    assert "agree" not in result.stdout
    assert "the release differs from models.yaml: run vllmctl plan (" in result.stdout
    _, report = status_json(run)
    assert "the release differs from models.yaml: run vllmctl plan" in report["problems"]
    changed = [line.split(":")[0] for line in report["comparison"]["plan"]]
    planned = json.loads(plan.stdout)
    assert changed and len(changed) == len(planned["release_values"]) + len(planned["models"])
    assert "~ servingEngineSpec.vllmApiKey.secretName" in changed
