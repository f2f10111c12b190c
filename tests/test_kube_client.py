"""vllmctl.cluster.kube against the sandbox's Kubernetes API: the real kubernetes client, real
TLS, real watches; ESO and the deployment controller simulated (tests/sandbox/README.md)."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv
from tests.sandbox.kube.api import Fault
from tests.sandbox.kube.controllers import PodFault
from tests.sandbox.sandbox import STORE_NAME
from tests.sandbox.silent import kubeconfig_for, silent_server
from vllmctl.cluster.kube import RESTARTED_AT, Kube
from vllmctl.core.errors import EXIT_EXTERNAL, EXIT_USAGE, ExternalError, UsageError

OTHER_CONTEXT = "or use another context with --context."


@pytest.fixture
def kube(cluster: ClusterEnv) -> Iterator[Kube]:
    cluster.sandbox.create_namespace(cluster.namespace)
    with Kube.connect(None) as k:
        yield k


def kubeconfig(cluster: ClusterEnv) -> dict[str, Any]:
    return yaml.safe_load((cluster.sandbox.dir / "kubeconfig").read_text())  # type: ignore[no-any-return]


def use_kubeconfig(config: dict[str, Any], path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))


def secret(namespace: str, name: str, value: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"token": base64.b64encode(value.encode()).decode()},
    }


def external_secret(namespace: str, api_version: str, prop: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "ExternalSecret",
        "metadata": {"name": "es", "namespace": namespace},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": STORE_NAME, "kind": "ClusterSecretStore"},
            "target": {"name": "synced", "creationPolicy": "Owner"},
            "data": [{"secretKey": "v", "remoteRef": {"key": "vllm/x", "property": prop}}],
        },
    }


def refused(error: pytest.ExceptionInfo[ExternalError]) -> str:
    assert error.value.exit_code == EXIT_EXTERNAL
    return error.value.message


# --- connecting ---------------------------------------------------------------------------


def test_connect_names_the_contexts_when_one_is_unknown(cluster: ClusterEnv) -> None:
    with pytest.raises(UsageError) as error:
        Kube.connect("nope")
    assert error.value.exit_code == EXIT_USAGE
    where = cluster.sandbox.dir / "kubeconfig"
    assert error.value.message == (
        f"there is no context 'nope' in the kubeconfig {where}: use one of sandbox with --context."
    )
    with Kube.connect("sandbox") as kube:
        assert kube.context == "sandbox" and kube.server == cluster.sandbox.kube_url


def test_connect_without_or_with_a_broken_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match=r"^there is no kubeconfig at ~/\.kube/config: set KUBECONFIG"):
        Kube.connect(None)  # HOME is a fresh directory (tests/conftest.py)
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    with pytest.raises(UsageError, match=f"^KUBECONFIG={re.escape(str(missing))} names no existing file"):
        Kube.connect(None)
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nusers: [{name: u, user: {token: s3cr3t}\n")
    monkeypatch.setenv("KUBECONFIG", str(broken))
    with pytest.raises(UsageError) as error:
        Kube.connect(None)
    assert error.value.message.startswith(f"the kubeconfig is not valid YAML ({broken}, line ")
    assert "s3cr3t" not in error.value.message


def test_an_incomplete_context_is_reported_without_its_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "gone", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "s3cr3t-token"}}],
        "clusters": [],
    }
    use_kubeconfig(config, tmp_path / "config", monkeypatch)
    with pytest.raises(UsageError) as error:
        Kube.connect(None)
    # The client's own exception text quotes the whole entry, token included.
    assert error.value.message == (
        f"context 'c' in the kubeconfig {tmp_path / 'config'} is incomplete (its cluster, user, "
        f"certificate files or credential plugin): fix it, {OTHER_CONTEXT}"
    )
    config["current-context"] = "elsewhere"
    use_kubeconfig(config, tmp_path / "config", monkeypatch)
    with pytest.raises(
        UsageError, match=r"current context 'elsewhere' is not defined in .*: use one of c with"
    ):
        Kube.connect(None)


def test_connect_does_not_touch_the_clients_default_configuration(cluster: ClusterEnv) -> None:
    from kubernetes.client import Configuration

    sentinel = Configuration(host="https://sentinel.invalid")
    Configuration.set_default(sentinel)
    try:
        with Kube.connect(None) as kube:
            assert Configuration.get_default_copy().host == "https://sentinel.invalid"
            assert kube.get("v1", "namespaces", None, "default") is not None
    finally:
        Configuration.set_default(None)


# --- discovery ----------------------------------------------------------------------------


def test_served_versions_from_discovery(kube: Kube) -> None:
    assert kube.served_versions("external-secrets.io", "externalsecrets") == ["v1", "v1beta1"]
    assert kube.served_versions("external-secrets.io", "pushsecrets") == []  # group served, resource not
    assert kube.served_versions("nothing.example.com", "things") == []
    assert kube.served_versions("apps", "deployments") == ["v1"]


# --- objects ------------------------------------------------------------------------------


def test_apply_creates_then_updates_in_place(cluster: ClusterEnv, kube: Kube) -> None:
    ns = cluster.namespace
    created = kube.apply(secret(ns, "s", "first", a="1"), "secrets")
    uid = created["metadata"]["uid"]
    assert created["kind"] == "Secret" and base64.b64decode(created["data"]["token"]) == b"first"
    updated = kube.apply(secret(ns, "s", "second", b="2"), "secrets")
    stored = cluster.sandbox.get("Secret", ns, "s")
    assert stored is not None and stored["metadata"]["uid"] == updated["metadata"]["uid"] == uid
    assert base64.b64decode(stored["data"]["token"]) == b"second"
    assert stored["metadata"]["labels"] == {"b": "2"}  # the manager's old label is dropped: apply semantics
    calls = [(m, p) for m, p in cluster.sandbox.api.requests if f"/namespaces/{ns}/secrets" in p]
    assert [m for m, _ in calls] == ["PATCH", "PATCH"]  # never delete-then-create
    assert all("fieldManager=vllmctl" in p and "force=true" in p for _, p in calls)


def test_get_list_patch_and_delete(cluster: ClusterEnv, kube: Kube) -> None:
    ns = cluster.namespace
    assert kube.get("v1", "secrets", ns, "s") is None
    kube.apply(secret(ns, "s", "v", app="x"), "secrets")
    kube.apply(secret(ns, "t", "v", app="y"), "secrets")
    got = kube.get("v1", "secrets", ns, "s")
    assert got is not None and got["metadata"]["labels"] == {"app": "x"}
    (listed,) = kube.list("v1", "secrets", ns, "app=x")
    assert (listed["apiVersion"], listed["kind"], listed["metadata"]["name"]) == ("v1", "Secret", "s")
    assert sorted(s["metadata"]["name"] for s in kube.list("v1", "secrets", ns)) == ["s", "t"]
    patched = kube.patch_merge("v1", "secrets", ns, "t", {"metadata": {"labels": {"app": None, "k": "v"}}})
    assert patched["metadata"]["labels"] == {"k": "v"}
    assert kube.get("v1", "namespaces", None, ns) is not None  # cluster-scoped
    assert kube.delete("v1", "secrets", ns, "s") is True
    assert kube.delete("v1", "secrets", ns, "s") is False
    assert kube.get("v1", "secrets", ns, "s") is None
    # A 404 for a resource the server lacks is not "absent": it is an error.
    with pytest.raises(ExternalError) as error:
        kube.get("v1", "nothings", ns, "s")
    assert refused(error).startswith(f"Kubernetes could not get nothings in namespace {ns} (404 NotFound): ")


def test_response_bodies_are_not_logged(cluster: ClusterEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cluster.sandbox.create_namespace(cluster.namespace)
    with Kube.connect(None) as kube:  # the kubernetes client logs response bodies at DEBUG
        kube.apply(secret(cluster.namespace, "s", "hush"), "secrets")
        assert kube.get("v1", "secrets", cluster.namespace, "s") is not None
    assert caplog.records  # urllib3 logs each request line
    assert "aHVzaA" not in caplog.text


# --- refusals and failures ------------------------------------------------------------------


def test_a_403_names_the_verb_resource_and_namespace(cluster: ClusterEnv, kube: Kube) -> None:
    ns = cluster.namespace
    cluster.sandbox.call(cluster.sandbox.api.faults.append, Fault("PATCH", r"/secrets/", status=403, times=1))
    with pytest.raises(ExternalError) as error:
        kube.apply(secret(ns, "s", "hush"), "secrets")
    assert refused(error) == (
        f"Kubernetes refused to patch secrets in namespace {ns} (403 Forbidden: RBAC): "
        f"ask for that permission, {OTHER_CONTEXT}"
    )
    faults = cluster.sandbox.api.faults
    cluster.sandbox.call(faults.append, Fault("GET", r"/externalsecrets$", status=403, times=1))
    with pytest.raises(ExternalError) as error:
        kube.list("external-secrets.io/v1", "externalsecrets", ns)
    assert refused(error).startswith(
        f"Kubernetes refused to list externalsecrets.external-secrets.io in namespace {ns} "
    )
    cluster.sandbox.call(faults.append, Fault("DELETE", r"/namespaces/", status=403, times=1))
    with pytest.raises(ExternalError, match=r"^Kubernetes refused to delete namespaces \(403"):
        kube.delete("v1", "namespaces", None, ns)


def test_other_refusals_keep_the_status_message_but_no_object_data(cluster: ClusterEnv, kube: Kube) -> None:
    ns = cluster.namespace
    with pytest.raises(ExternalError) as error:
        kube.apply(secret(ns, "Bad_Name", "hush-hush"), "secrets")
    message = refused(error)
    assert message.startswith(f"Kubernetes could not patch secrets in namespace {ns} (422 Invalid): ")
    assert '"Bad_Name"' in message and "hush" not in message and "aHVza" not in message
    cluster.sandbox.call(
        cluster.sandbox.api.faults.append, Fault("GET", r"/configmaps/c$", status=500, times=1)
    )
    with pytest.raises(ExternalError) as error:
        kube.get("v1", "configmaps", ns, "c")
    assert refused(error) == (
        f"Kubernetes could not get configmaps in namespace {ns} (500 InternalError): "
        f"sandbox fault injected for GET /api/v1/namespaces/{ns}/configmaps/c."
    )


def test_rejected_credentials(cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = kubeconfig(cluster)
    config["users"][0]["user"]["token"] = "not-the-token"
    use_kubeconfig(config, tmp_path / "config", monkeypatch)
    with Kube.connect(None) as kube, pytest.raises(ExternalError) as error:
        kube.list("v1", "secrets", "default")
    assert refused(error) == (
        "Kubernetes rejected the credentials of context sandbox (401 Unauthorized): "
        f"log in to the cluster again, {OTHER_CONTEXT}"
    )


def test_an_unreachable_cluster_fails_fast(
    cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = kubeconfig(cluster)
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    use_kubeconfig(config, tmp_path / "config", monkeypatch)
    started = time.monotonic()
    with Kube.connect(None) as kube, pytest.raises(ExternalError) as error:
        kube.get("v1", "secrets", "default", "s")
    assert time.monotonic() - started < 2
    assert refused(error) == (
        f"Kubernetes is unreachable at https://127.0.0.1:{port} (connection refused): check that the "
        f"cluster is up and that context sandbox points at it, {OTHER_CONTEXT}"
    )


def test_an_untrusted_certificate(
    cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = kubeconfig(cluster)
    del config["clusters"][0]["cluster"]["certificate-authority-data"]  # the system CAs do not know it
    use_kubeconfig(config, tmp_path / "config", monkeypatch)
    with Kube.connect(None) as kube, pytest.raises(ExternalError) as error:
        kube.get("v1", "secrets", "default", "s")
    assert re.fullmatch(
        rf"Kubernetes at {cluster.sandbox.kube_url} failed TLS verification \(certificate verify failed: "
        rf"[^()]+\): check the certificate authority of context sandbox in the kubeconfig, {OTHER_CONTEXT}",
        refused(error),
    ), refused(error)


def test_a_server_that_does_not_answer(cluster: ClusterEnv, kube: Kube) -> None:
    kube.timeout = 0.5
    cluster.sandbox.call(
        cluster.sandbox.api.faults.append, Fault("GET", r"/configmaps/slow$", status=0, delay=1.5)
    )
    started = time.monotonic()
    with pytest.raises(ExternalError) as error:
        kube.get("v1", "configmaps", cluster.namespace, "slow")
    assert time.monotonic() - started < 1.4  # not retried
    assert refused(error) == (
        f"Kubernetes at {cluster.sandbox.kube_url} did not answer within 0.5 s: "
        f"check the cluster's health, {OTHER_CONTEXT}"
    )


# --- waiting --------------------------------------------------------------------------------


def engine_pods(cluster: ClusterEnv) -> dict[str, str]:
    """Engine pod name -> its ReplicaSet."""
    pods = cluster.sandbox.list("Pod", cluster.namespace)
    return {
        p["metadata"]["name"]: p["metadata"]["ownerReferences"][0]["name"]
        for p in pods
        if p["metadata"]["labels"].get("model") == "m"
    }


def test_restart_deployments_replaces_the_pods(cluster: ClusterEnv, kube: Kube) -> None:
    ns = cluster.namespace
    spec = {"name": "m", "repository": "vllm/vllm-openai", "tag": "v0.10.1", "modelURL": "org/m"}
    spec |= {"replicaCount": 1, "requestCPU": 1, "requestMemory": "1Gi", "requestGPU": 0}
    values = json.dumps({"servingEngineSpec": {"modelSpec": [spec]}})
    done = subprocess.run(
        ["helm", "install", "r", str(MINI_CHART), "-n", ns, "--wait", "-f", "-"],
        input=values,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    before = engine_pods(cluster)
    assert len(before) == 1

    names = ["r-m-deployment-vllm"]
    kube.restart_deployments(ns, names)
    deployment = kube.get("apps/v1", "deployments", ns, names[0])
    assert deployment is not None
    stamp = deployment["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", stamp)
    # A second restart within the same second still changes the template.
    kube.restart_deployments(ns, names)
    again = kube.get("apps/v1", "deployments", ns, names[0])
    assert again is not None and again["metadata"]["generation"] == deployment["metadata"]["generation"] + 1
    kube.wait_rollout(ns, names, timeout=10)
    after = engine_pods(cluster)
    assert len(after) == 1 and not set(after) & set(before)
    assert set(after.values()) != set(before.values())  # a new ReplicaSet
    done_status = kube.get("apps/v1", "deployments", ns, names[0])["status"]  # type: ignore[index]
    assert done_status["updatedReplicas"] == done_status["readyReplicas"] == 1

    # Once more, after the rollout: wait_rollout sees a new generation through. The new
    # pod loads until the fault is cleared, so the first wait cannot see it done however
    # the machine schedules the test and the controller.
    sb = cluster.sandbox
    sb.call(sb.cluster.faults.append, PodFault("model=m", "slow", ready_seconds=600))
    kube.restart_deployments(ns, names)
    with pytest.raises(ExternalError) as error:
        kube.wait_rollout(ns, names, timeout=0.01)
    assert refused(error).startswith(f"the rollout of Deployments {names[0]} (")
    sb.call(sb.cluster.faults.clear)
    kube.wait_rollout(ns, names, timeout=10)

    with pytest.raises(ExternalError) as error:
        kube.wait_rollout(ns, [names[0], "ghost"], timeout=0.3)
    assert refused(error) == (
        f"the rollout of Deployments ghost (absent) in namespace {ns} did not finish within 0.3 s: "
        f"see `kubectl --namespace {ns} get pods` for why."
    )


def test_a_server_that_accepts_and_never_answers_waits_the_timeout_it_names(run: Run, tmp_path: Path) -> None:
    """The TLS handshake never completes: urllib3 calls that a read timeout, and it used to be
    cut by the 10 s connect timeout while the message said 60 s. One setting governs both."""
    config = tmp_path / "kubeconfig"
    with silent_server() as port:
        config.write_text(kubeconfig_for(port))
        env = {"KUBECONFIG": str(config), "VLLM_KUBE_TIMEOUT": "1.5s"}
        started = time.monotonic()
        result = run("endpoints", env=env)
        took = time.monotonic() - started
        assert (result.exit_code, result.stderr) == (
            EXIT_EXTERNAL,
            f"error: Kubernetes at https://127.0.0.1:{port} did not answer within 1.5 s: check the "
            f"cluster's health, {OTHER_CONTEXT}\n",
        )
        assert 1.5 <= took < 4.0, took  # the figure named, once (not retried)
        shown = run("config", "-o", "json", env=env)
        (row,) = [r for r in json.loads(shown.stdout) if r["env"] == "VLLM_KUBE_TIMEOUT"]
        assert (row["value"], row["source"]) == ("1.5s", "env")
        for bad in ("soon", "0", "-3"):
            refused = run("endpoints", env={**env, "VLLM_KUBE_TIMEOUT": bad})
            assert refused.exit_code == EXIT_USAGE, bad
            assert refused.stderr.startswith(f"error: VLLM_KUBE_TIMEOUT={bad!r} "), refused.stderr
