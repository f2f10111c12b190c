"""The API stand-in as real clients see it: kubectl, helm 3 and 4, and the kubernetes
Python client, unchanged, against the session's sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.fixtures import MINI_CHART, ClusterEnv
from tests.sandbox.kube.api import Fault
from tests.sandbox.kube.controllers import PodFault
from tests.sandbox.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
HELM3 = REPO / ".tools" / "helm3" / "helm"


def sh(argv: list[str], input: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, input=input, capture_output=True, text=True, check=False, timeout=60)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def ns(cluster: ClusterEnv) -> ClusterEnv:
    cluster.sandbox.create_namespace(cluster.namespace)
    return cluster


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[Any]:
    from kubernetes import client as k8s
    from kubernetes import config

    api_client = config.new_client_from_config(str(sandbox.dir / "kubeconfig"))
    try:
        yield k8s
    finally:
        api_client.close()
    k8s.Configuration.set_default(None)


def core(sandbox: Sandbox) -> Any:
    from kubernetes import client as k8s
    from kubernetes import config

    return k8s.CoreV1Api(config.new_client_from_config(str(sandbox.dir / "kubeconfig")))


def values(*models: tuple[str, int, int]) -> str:
    specs = [
        {
            "name": n,
            "repository": "vllm/vllm-openai",
            "tag": "v0.10.1",
            "modelURL": f"org/{n}",
            "replicaCount": r,
            "requestCPU": 1,
            "requestMemory": "1Gi",
            "requestGPU": g,
        }
        for n, r, g in models
    ]
    return json.dumps({"servingEngineSpec": {"modelSpec": specs}})


# --- kubectl --------------------------------------------------------------------------


def test_kubectl_server_side_apply_get_patch_delete(ns: ClusterEnv) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}},
        "data": {"x": "1"},
    }
    out = sh(ns.kubectl("apply", "--server-side", "--field-manager=t", "-f", "-"), json.dumps(cm)).stdout
    assert out.strip() == "configmap/c serverside-applied"
    # A second apply by the same manager without label b removes it (SSA owns what it applied).
    cm["metadata"]["labels"] = {"a": "1"}
    sh(ns.kubectl("apply", "--server-side", "--field-manager=t", "-f", "-"), json.dumps(cm))
    got = json.loads(sh(ns.kubectl("get", "configmap", "c", "-o", "json")).stdout)
    assert got["metadata"]["labels"] == {"a": "1"}
    rv = int(got["metadata"]["resourceVersion"])
    sh(ns.kubectl("patch", "configmap", "c", "--type=merge", "-p", '{"data":{"y":"2"}}'))
    sh(ns.kubectl("patch", "configmap", "c", "--type=json", "-p", '[{"op":"remove","path":"/data/x"}]'))
    sh(ns.kubectl("label", "configmap", "c", "c=3"))  # a strategic merge patch
    got = json.loads(sh(ns.kubectl("get", "configmap", "c", "-o", "json")).stdout)
    assert got["data"] == {"y": "2"} and got["metadata"]["labels"] == {"a": "1", "c": "3"}
    assert int(got["metadata"]["resourceVersion"]) > rv
    assert sh(ns.kubectl("get", "cm", "-l", "c in (3,4),!b", "-o", "name")).stdout.strip() == "configmap/c"
    sh(ns.kubectl("delete", "configmap", "c"))
    missing = sh(ns.kubectl("get", "configmap", "c"), ok=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): configmaps "c" not found' in missing.stderr


def test_kubectl_create_uses_protobuf_and_conflicts_are_status_objects(ns: ClusterEnv) -> None:
    sh(ns.kubectl("create", "secret", "generic", "s", "--from-literal=k=v"))  # typed client: protobuf body
    assert ns.sandbox.get("Secret", ns.namespace, "s")["data"] == {"k": "dg=="}  # type: ignore[index]
    again = sh(ns.kubectl("create", "secret", "generic", "s", "--from-literal=k=v"), ok=False)
    assert again.stderr == 'error: failed to create secret secrets "s" already exists\n'
    bad = sh(ns.kubectl("create", "configmap", "Bad_Name"), ok=False)
    assert 'Invalid value: "Bad_Name"' in bad.stderr
    typo = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"prots": []}}
    strict = sh(ns.kubectl("apply", "--server-side", "-f", "-"), json.dumps(typo), ok=False)
    assert 'strict decoding error: unknown field "spec.prots"' in strict.stderr
    warned = sh(ns.kubectl("apply", "--server-side", "--validate=warn", "-f", "-"), json.dumps(typo))
    assert 'Warning: unknown field "spec.prots"' in warned.stderr
    bad_patch = sh(
        ns.kubectl("patch", "service", "s", "--type=json", "-p", '[{"op":"remove","path":"/nope"}]'), ok=False
    )
    assert bad_patch.stderr.startswith("The request is invalid: "), bad_patch.stderr  # a 422


def test_kubectl_wait_and_logs_follow_a_deployment(ns: ClusterEnv) -> None:
    sh(ns.helm("install", "r", str(MINI_CHART), "-f", "-"), values(("m", 1, 1)))
    sh(ns.kubectl("wait", "--for=condition=Available", "deployment/r-m-deployment-vllm", "--timeout=20s"))
    sh(ns.kubectl("wait", "--for=condition=Ready", "pod", "-l", "model=m", "--timeout=20s"))
    logs = sh(ns.kubectl("logs", "deployment/r-m-deployment-vllm", "--tail=50")).stdout
    assert "Starting to load model org/m" in logs and "Application startup complete." in logs
    follow = subprocess.Popen(
        ns.kubectl("logs", "-f", "-l", "model=m", "--tail=1"), stdout=subprocess.PIPE, text=True
    )
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline()
        second = follow.stdout.readline()  # a new line written while following
        assert first and "Avg prompt throughput" in second
    finally:
        follow.terminate()
        follow.wait(10)


@pytest.mark.parametrize("helm", ["helm", "helm3"])
def test_helm_install_upgrade_rollback_uninstall_with_wait(ns: ClusterEnv, helm: str) -> None:
    binary = shutil.which("helm") if helm == "helm" else str(HELM3)
    if binary is None or not Path(binary).exists():
        pytest.skip("scripts/install-tools installs both helm 4 and helm 3")
    base = [binary, "--namespace", ns.namespace]
    sh([*base, "install", "r", str(MINI_CHART), "--wait", "--timeout", "30s", "-f", "-"], values(("m", 1, 1)))
    sh([*base, "upgrade", "r", str(MINI_CHART), "--wait", "--timeout", "30s", "-f", "-"], values(("m", 2, 1)))
    deployment = ns.sandbox.get("Deployment", ns.namespace, "r-m-deployment-vllm")
    assert deployment is not None and deployment["status"]["readyReplicas"] == 2
    sh([*base, "rollback", "r", "1", "--wait", "--timeout", "30s"])
    deployment = ns.sandbox.get("Deployment", ns.namespace, "r-m-deployment-vllm")
    assert deployment is not None and deployment["spec"]["replicas"] == 1
    history = json.loads(sh([*base, "history", "r", "-o", "json"]).stdout)
    assert [h["status"] for h in history] == ["superseded", "superseded", "deployed"]
    sh([*base, "uninstall", "r", "--wait"])
    assert ns.sandbox.list("Deployment", ns.namespace) == []
    assert ns.sandbox.list("Pod", ns.namespace) == []  # the garbage collector took the ReplicaSets' pods


def test_helm_wait_times_out_when_gpus_run_out(ns: ClusterEnv) -> None:
    # 2 nodes x 2 GPUs: a 3-GPU replica fits nowhere, whatever the cluster-wide sum says.
    done = sh(
        ns.helm("install", "r", str(MINI_CHART), "--wait", "--timeout", "3s", "-f", "-"),
        values(("big", 1, 3)),
        ok=False,
    )
    assert done.returncode == 1
    pods = ns.sandbox.list("Pod", ns.namespace)
    big = next(p for p in pods if p["metadata"]["labels"].get("model") == "big")
    assert big["status"]["phase"] == "Pending"
    events = [e for e in ns.sandbox.list("Event", ns.namespace) if e["reason"] == "FailedScheduling"]
    assert events[0]["message"].startswith("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
    described = sh(ns.kubectl("get", "events", "--field-selector", "reason=FailedScheduling", "-o", "json"))
    assert len(json.loads(described.stdout)["items"]) == 1


def test_pod_faults_crashloop_and_image_pull(ns: ClusterEnv) -> None:
    assert ns.sandbox.cluster is not None
    ns.sandbox.call(
        ns.sandbox.cluster.faults.extend,
        [PodFault("model=crash", "oomkilled"), PodFault("model=pull", "imagepull")],
    )
    sh(ns.helm("install", "r", str(MINI_CHART), "-f", "-"), values(("crash", 1, 0), ("pull", 1, 0)))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        table = sh(ns.kubectl("get", "pods", "--no-headers")).stdout
        if "CrashLoopBackOff" in table and "ImagePullBackOff" in table:
            break
        time.sleep(0.1)
    assert "CrashLoopBackOff" in table and "ImagePullBackOff" in table, table
    name = next(
        p["metadata"]["name"]
        for p in ns.sandbox.list("Pod", ns.namespace)
        if p["metadata"]["labels"].get("model") == "crash"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the kubelet restarts it after the back-off, and it crashes again
        status = ns.sandbox.get("Pod", ns.namespace, name)["status"]["containerStatuses"][0]  # type: ignore[index]
        if status["restartCount"] >= 1 and "waiting" in status["state"]:
            break
        time.sleep(0.1)
    assert status["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert "CUDA out of memory" in sh(ns.kubectl("logs", name)).stdout
    assert "CUDA out of memory" in sh(ns.kubectl("logs", name, "--previous")).stdout
    backoff = [e for e in ns.sandbox.list("Event", ns.namespace) if e["reason"] == "BackOff"]
    assert backoff and backoff[0]["involvedObject"]["name"] == name


def test_api_faults_for_a_path(ns: ClusterEnv) -> None:
    ns.sandbox.call(ns.sandbox.api.faults.append, Fault("GET", r"/configmaps$", status=503, times=1))
    failed = sh(ns.kubectl("get", "configmaps"), ok=False)
    assert failed.returncode == 1
    assert "sandbox fault injected for GET" in failed.stderr, failed.stderr
    assert sh(ns.kubectl("get", "configmaps")).returncode == 0  # times=1: the next call succeeds


# --- the kubernetes Python client -------------------------------------------------------


def test_python_client_list_watch_and_log(ns: ClusterEnv) -> None:
    from kubernetes import watch

    api = core(ns.sandbox)
    seen: list[tuple[str, str]] = []
    started = threading.Event()

    def watching() -> None:
        w = watch.Watch()
        started.set()
        for event in w.stream(api.list_namespaced_config_map, ns.namespace, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=watching)
    thread.start()
    started.wait()
    time.sleep(0.3)
    api.create_namespaced_config_map(ns.namespace, {"metadata": {"name": "w", "labels": {"k": "v"}}})
    api.patch_namespaced_config_map("w", ns.namespace, {"data": {"a": "b"}})
    api.delete_namespaced_config_map("w", ns.namespace)
    thread.join(10)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    assert api.list_namespaced_config_map(ns.namespace, label_selector="k=v").items == []
    sh(ns.helm("install", "r", str(MINI_CHART), "--wait", "-f", "-"), values(("m", 1, 1)))
    (pod,) = api.list_namespaced_pod(ns.namespace, label_selector="model=m").items
    text = api.read_namespaced_pod_log(pod.metadata.name, ns.namespace, tail_lines=2)
    assert len(text.splitlines()) == 2


def through_port_forward(ns: ClusterEnv, pod: str, request: bytes) -> bytes:
    """Send one HTTP request to the pod's port 8000 over the kubernetes client's port-forward."""
    from kubernetes.stream import portforward

    api = core(ns.sandbox)
    forward = portforward(api.connect_get_namespaced_pod_portforward, pod, ns.namespace, ports="8000")
    sock = forward.socket(8000)
    try:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    finally:
        sock.close()
        forward.close()
    return raw


def router_pod(ns: ClusterEnv) -> str:
    (pod,) = core(ns.sandbox).list_namespaced_pod(ns.namespace, label_selector="environment=router").items
    return str(pod.metadata.name)


def test_python_client_port_forward_reaches_the_router(ns: ClusterEnv) -> None:
    sh(ns.helm("install", "r", str(MINI_CHART), "--wait", "-f", "-"), values(("m", 1, 1)))
    raw = through_port_forward(
        ns, router_pod(ns), b"GET /v1/models HTTP/1.1\r\nHost: router\r\nConnection: close\r\n\r\n"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert [m["id"] for m in json.loads(body)["data"]] == ["org/m"]


def test_namespace_deletion_empties_it(ns: ClusterEnv) -> None:
    sh(ns.kubectl("create", "configmap", "c"))
    sh(ns.kubectl("delete", "namespace", ns.namespace, "--wait=true", "--timeout=10s"))
    assert ns.sandbox.get("Namespace", None, ns.namespace) is None
    assert ns.sandbox.list("ConfigMap", ns.namespace) == []


def test_the_router_serves_the_namespaces_engines_and_its_api_key(ns: ClusterEnv) -> None:
    sh(ns.helm("install", "r", str(MINI_CHART), "--wait", "-f", "-"), values(("m", 1, 1)))
    sh(ns.kubectl("create", "secret", "generic", "vllm-api-key", "--from-literal=api-key=k123"))
    pod = router_pod(ns)

    def post(key: str | None) -> bytes:
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        body = b'{"model": "org/m", "prompt": "hi \\"there\\"", "max_tokens": 3}'
        head = (
            f"POST /v1/completions HTTP/1.1\r\nHost: r\r\nConnection: close\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return through_port_forward(ns, pod, head.encode() + body)

    assert post(None).startswith(b"HTTP/1.1 401")
    assert post("wrong").startswith(b"HTTP/1.1 401")
    answer = post("k123")
    assert answer.startswith(b"HTTP/1.1 200")
    assert 'echo: hi \\"there\\"' in answer.decode()
    assert ns.sandbox.router(ns.namespace).requests["/v1/completions"] == 3
