"""The External Secrets Operator simulation: an ExternalSecret applied with kubectl is
synced from the sandbox's real OpenBao (written with the real hvac) into a Kubernetes
Secret, read with the ClusterSecretStore's own read-only token."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from typing import Any

import hvac
import hvac.exceptions
import pytest

from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.openbao import ESO_POLICY
from tests.sandbox.sandbox import STORE_NAME


def sh(argv: list[str], input: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, input=input, capture_output=True, text=True, check=False, timeout=60)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def external_secret(name: str, key: str, prop: str, target: str) -> str:
    return json.dumps(
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": name},
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": {"name": STORE_NAME, "kind": "ClusterSecretStore"},
                "target": {"name": target, "creationPolicy": "Owner"},
                "data": [{"secretKey": "token", "remoteRef": {"key": key, "property": prop}}],
            },
        }
    )


def ready(cluster: ClusterEnv, name: str) -> dict[str, Any]:
    es = cluster.sandbox.get("ExternalSecret", cluster.namespace, name, "external-secrets.io/v1")
    assert es is not None
    return next(c for c in es["status"]["conditions"] if c["type"] == "Ready")


def first_ready(cluster: ClusterEnv, name: str) -> dict[str, Any]:
    """The Ready condition of the first sync, once there is one."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        es = cluster.sandbox.get("ExternalSecret", cluster.namespace, name, "external-secrets.io/v1")
        if es and es.get("status"):
            break
        time.sleep(0.05)
    return ready(cluster, name)


def secret_value(cluster: ClusterEnv, name: str) -> str:
    secret = cluster.sandbox.get("Secret", cluster.namespace, name)
    assert secret is not None
    return base64.b64decode(secret["data"]["token"]).decode()


@pytest.fixture
def vault(cluster: ClusterEnv) -> hvac.Client:
    cluster.sandbox.create_namespace(cluster.namespace)
    env = cluster.sandbox.env()
    return hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"])


def test_the_cluster_secret_store_is_ready(cluster: ClusterEnv) -> None:
    out = sh([*cluster.kubectl("get", "clustersecretstore", STORE_NAME, "-o", "json")]).stdout
    conditions = json.loads(out)["status"]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in conditions] == [("Ready", "True", "Valid")]


def test_an_external_secret_syncs_from_vault(cluster: ClusterEnv, vault: hvac.Client) -> None:
    vault.secrets.kv.v2.create_or_update_secret("vllm/huggingface", secret={"token": "hf_first"})
    sh(
        cluster.kubectl("apply", "--server-side", "-f", "-"),
        external_secret("hf", "vllm/huggingface", "token", "hf-token"),
    )
    sh(cluster.kubectl("wait", "--for=condition=Ready", "externalsecret/hf", "--timeout=10s"))
    assert secret_value(cluster, "hf-token") == "hf_first"
    secret = cluster.sandbox.get("Secret", cluster.namespace, "hf-token")
    assert secret is not None and secret["metadata"]["ownerReferences"][0]["kind"] == "ExternalSecret"
    # A new value in Vault arrives on the next refresh, or at once with ESO's force-sync annotation.
    vault.secrets.kv.v2.create_or_update_secret("vllm/huggingface", secret={"token": "hf_second"})
    sh(cluster.kubectl("annotate", "externalsecret", "hf", f"force-sync={time.time()}", "--overwrite"))
    deadline = time.monotonic() + 10
    while secret_value(cluster, "hf-token") != "hf_second" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert secret_value(cluster, "hf-token") == "hf_second"
    # Deleting the ExternalSecret takes its owned Secret with it (the garbage collector).
    sh(cluster.kubectl("delete", "externalsecret", "hf"))
    assert cluster.sandbox.get("Secret", cluster.namespace, "hf-token") is None


def test_a_missing_vault_key_is_reported_on_the_external_secret(
    cluster: ClusterEnv, vault: hvac.Client
) -> None:
    sh(
        cluster.kubectl("apply", "--server-side", "-f", "-"),
        external_secret("key", "vllm/nothing-here", "api-key", "vllm-api-key"),
    )
    condition = first_ready(cluster, "key")
    assert (condition["status"], condition["reason"]) == ("False", "SecretSyncedError")
    assert "vllm/nothing-here" in condition["message"] and "Secret does not exist" in condition["message"]
    assert cluster.sandbox.get("Secret", cluster.namespace, "vllm-api-key") is None
    table = sh(cluster.kubectl("get", "externalsecret", "key")).stdout
    assert table.split("\n")[1].split()[-2:] == ["SecretSyncedError", "False"]
    # Once the key exists the retry succeeds (ESO requeues failed syncs).
    vault.secrets.kv.v2.create_or_update_secret("vllm/nothing-here", secret={"api-key": "k" * 48})
    sh(cluster.kubectl("wait", "--for=condition=Ready", "externalsecret/key", "--timeout=10s"))


def test_a_sealed_vault_makes_the_store_not_ready(cluster: ClusterEnv) -> None:
    sb = cluster.sandbox

    def seal(value: bool) -> None:
        sb.vault.sealed = value

    sb.call(seal, True)
    try:
        deadline = time.monotonic() + 10
        condition: dict[str, Any] = {}
        while time.monotonic() < deadline:
            store = sb.get("ClusterSecretStore", None, STORE_NAME, "external-secrets.io/v1")
            assert store is not None
            condition = store["status"]["conditions"][0]
            if condition["status"] == "False":
                break
            time.sleep(0.05)
        assert condition["reason"] == "ValidationFailed" and "sealed" in condition["message"]
    finally:
        sb.call(seal, False)
    sh(cluster.kubectl("wait", "--for=condition=Ready", f"clustersecretstore/{STORE_NAME}", "--timeout=10s"))


def test_the_store_reads_with_its_own_read_only_token(cluster: ClusterEnv, vault: hvac.Client) -> None:
    sb = cluster.sandbox
    token = sb.get("Secret", "external-secrets", "vault-token")
    assert token is not None
    eso_token = base64.b64decode(token["data"]["token"]).decode()
    assert eso_token != sb.vault.root_token
    as_eso = hvac.Client(url=sb.vault_url, token=eso_token)
    answer = as_eso.sys.get_capabilities(paths=["secret/data/vllm/huggingface", "secret/metadata/vllm"])
    assert answer["data"]["secret/data/vllm/huggingface"] == ["read"]
    assert answer["data"]["secret/metadata/vllm"] == ["deny"]
    with pytest.raises(hvac.exceptions.Forbidden):
        as_eso.secrets.kv.v2.create_or_update_secret("vllm/huggingface", secret={"token": "hf_x"})


def test_a_wrong_store_policy_is_a_sync_error(cluster: ClusterEnv, vault: hvac.Client) -> None:
    sb = cluster.sandbox
    vault.secrets.kv.v2.create_or_update_secret("vllm/huggingface", secret={"token": "hf_first"})
    # An operator's typo: the policy names another path, so ESO's token may read nothing here.
    sb.vault.add_policy(ESO_POLICY, 'path "secret/data/vlm/*" { capabilities = ["read"] }')
    sh(
        cluster.kubectl("apply", "--server-side", "-f", "-"),
        external_secret("hf", "vllm/huggingface", "token", "hf-token"),
    )
    condition = first_ready(cluster, "hf")
    assert (condition["status"], condition["reason"]) == ("False", "SecretSyncedError")
    assert "Code: 403" in condition["message"] and "permission denied" in condition["message"]
    assert "secret/data/vllm/huggingface" in condition["message"]
    assert cluster.sandbox.get("Secret", cluster.namespace, "hf-token") is None
    # The policy fixed, the retry syncs (ESO requeues failed syncs).
    sb.vault.add_policy(ESO_POLICY, 'path "secret/data/*" { capabilities = ["read"] }')
    sh(cluster.kubectl("wait", "--for=condition=Ready", "externalsecret/hf", "--timeout=10s"))
    assert secret_value(cluster, "hf-token") == "hf_first"
