"""The secret commands end to end against the sandbox: the real hvac and kubernetes
clients, Vault and the Kubernetes API stand-ins, ESO simulated."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.kube.api import Fault
from tests.sandbox.sandbox import Sandbox, SandboxConfig

TOKEN = "hf_" + "a1B2c3D4e5" * 4
OTHER_TOKEN = "hf_" + "z9Y8x7W6v5" * 4


def vault_value(cluster: ClusterEnv, path: str, key: str) -> Any:
    sb = cluster.sandbox
    data = sb.call(sb.vault.read_secret, "secret", path, sb.vault.root_token)
    return None if data is None else data.get(key)


def secret_value(cluster: ClusterEnv, name: str, key: str) -> str | None:
    secret = cluster.sandbox.get("Secret", cluster.namespace, name)
    if secret is None:
        return None
    return base64.b64decode(secret["data"][key]).decode()


def external_secret(cluster: ClusterEnv, name: str) -> dict[str, Any] | None:
    return cluster.sandbox.get("ExternalSecret", cluster.namespace, name, "external-secrets.io/v1")


# --- vault + ESO (the sandbox has both) ------------------------------------------------


@pytest.mark.usefixtures("namespace")
def test_set_get_delete_hf_token_through_vault_and_eso(run: Run, cluster: ClusterEnv) -> None:
    result = run("set-hf-token", "-v", input=TOKEN + "\n")
    assert result.exit_code == 0, result.stderr
    assert "secret backend: vault (the cluster serves ExternalSecrets" in result.stderr
    assert vault_value(cluster, "vllm/huggingface", "token") == TOKEN
    es = external_secret(cluster, "hf-token-external-secret")
    assert es is not None and es["status"]["conditions"][0]["reason"] == "SecretSynced"
    assert es["spec"]["secretStoreRef"] == {"name": "vault-secret-store", "kind": "ClusterSecretStore"}
    assert secret_value(cluster, "hf-token", "token") == TOKEN
    got = run("get-hf-token")
    assert (got.exit_code, got.stdout) == (0, TOKEN + "\n")
    # A new value reaches the Secret at once (force-sync), not after the 1h refresh.
    assert run("set-hf-token", input=OTHER_TOKEN).exit_code == 0
    assert secret_value(cluster, "hf-token", "token") == OTHER_TOKEN
    deleted = run("delete-hf-token", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert "recoverable with `vault kv undelete`" in deleted.stderr
    assert vault_value(cluster, "vllm/huggingface", "token") is None
    assert external_secret(cluster, "hf-token-external-secret") is None
    assert cluster.sandbox.get("Secret", cluster.namespace, "hf-token") is None
    missing = run("get-hf-token")
    assert missing.exit_code == 1 and missing.stdout == ""


@pytest.mark.usefixtures("namespace")
def test_set_api_key_generates_a_key_and_does_not_print_it(run: Run, cluster: ClusterEnv) -> None:
    result = run("set-api-key", input="")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    key = vault_value(cluster, "vllm/api-key", "api-key")
    assert isinstance(key, str) and len(key) == 48 and key.isalnum()
    assert key not in result.stderr
    assert secret_value(cluster, "vllm-api-key", "api-key") == key
    assert run("get-api-key").stdout == key + "\n"
    shown = run("set-api-key", "--show", input="")
    assert shown.exit_code == 0 and len(shown.stdout.strip()) == 48 and shown.stdout.strip() != key


@pytest.mark.usefixtures("namespace")
def test_create_and_delete_the_cluster_secret_keep_the_stored_value(run: Run, cluster: ClusterEnv) -> None:
    sb = cluster.sandbox
    sb.call(sb.vault.write_secret, "secret", "vllm/huggingface", {"token": TOKEN})
    result = run("create-hf-token-secret")
    assert result.exit_code == 0, result.stderr
    assert secret_value(cluster, "hf-token", "token") == TOKEN
    assert run("delete-hf-token-secret", "--yes").exit_code == 0
    assert cluster.sandbox.get("Secret", cluster.namespace, "hf-token") is None
    assert vault_value(cluster, "vllm/huggingface", "token") == TOKEN


@pytest.mark.usefixtures("namespace")
def test_an_external_secret_that_does_not_sync_is_reported_with_esos_reason(
    run: Run, cluster: ClusterEnv
) -> None:
    result = run("set-hf-token", input=TOKEN, env={"VLLM_SECRET_STORE": "no-such-store"})
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1].startswith(
        "error: the HuggingFace token was stored in Vault secret/vllm/huggingface, but the cluster's Secret "
        "was not updated: ExternalSecret hf-token-external-secret"
    ), result.stderr
    assert "SecretSyncedError" in result.stderr and "no-such-store" in result.stderr
    assert "Re-run the command once that is fixed; it converges." in result.stderr
    assert vault_value(cluster, "vllm/huggingface", "token") == TOKEN  # the write stands, as said
    again = run("set-hf-token", input=TOKEN)  # fixed: re-running converges
    assert again.exit_code == 0, again.stderr
    assert secret_value(cluster, "hf-token", "token") == TOKEN


@pytest.mark.usefixtures("namespace")
def test_hf_token_sanity_and_no_argument(run: Run, cluster: ClusterEnv) -> None:
    bad = run("set-hf-token", input="not-a-token")
    assert bad.exit_code == 2
    assert "does not look like a HuggingFace token" in bad.stderr and "--force" in bad.stderr
    assert "not-a-token" not in bad.stderr
    forced = run("set-hf-token", "--force", "--secret-backend", "kubernetes", input="not-a-token")
    assert forced.exit_code == 0, forced.stderr
    assert run("set-hf-token", TOKEN).exit_code == 2  # no positional value exists, by design


@pytest.mark.usefixtures("namespace")
def test_an_api_key_short_enough_to_guess_is_refused(run: Run, cluster: ClusterEnv) -> None:
    short = "x" * 15
    refused = run("set-api-key", input=short)
    assert refused.exit_code == 2
    assert "15 characters, short enough to guess" in refused.stderr and "--force" in refused.stderr
    assert short not in refused.stderr
    assert vault_value(cluster, "vllm/api-key", "api-key") is None
    forced = run("set-api-key", "--force", input=short)
    assert forced.exit_code == 0, forced.stderr
    assert vault_value(cluster, "vllm/api-key", "api-key") == short
    assert run("set-api-key", input="y" * 16).exit_code == 0


# --- Vault failures ----------------------------------------------------------------------


def test_a_sealed_vault(run: Run, cluster: ClusterEnv) -> None:
    sb = cluster.sandbox
    sb.call(setattr, sb.vault, "sealed", True)
    result = run("set-hf-token", "--secret-backend", "vault", input=TOKEN)
    assert result.exit_code == 3
    assert "is sealed" in result.stderr and "vault operator unseal" in result.stderr
    # auto does not fall back to Kubernetes Secrets (ESO would overwrite them): it says why
    auto = run("set-hf-token", input=TOKEN)
    assert auto.exit_code == 3
    assert "is sealed" in auto.stderr and "use --secret-backend kubernetes" in auto.stderr
    assert cluster.sandbox.get("Secret", cluster.namespace, "hf-token") is None


@pytest.mark.usefixtures("namespace")
def test_kubernetes_backend_refuses_a_secret_eso_keeps(run: Run, cluster: ClusterEnv) -> None:
    assert run("set-hf-token", input=TOKEN).exit_code == 0  # vault: ExternalSecret -> Secret hf-token
    result = run("set-hf-token", "--secret-backend", "kubernetes", input=OTHER_TOKEN)
    assert result.exit_code == 2
    assert "is kept by ExternalSecret hf-token-external-secret" in result.stderr
    assert secret_value(cluster, "hf-token", "token") == TOKEN


@pytest.mark.usefixtures("namespace")
def test_a_token_vault_refuses(run: Run, cluster: ClusterEnv) -> None:
    sb = cluster.sandbox
    sb.call(sb.vault.add_token, "limited-token", ["secret/data/other"])
    result = run(
        "set-hf-token", "--secret-backend", "vault", input=TOKEN, env={"VAULT_TOKEN": "limited-token"}
    )
    assert result.exit_code == 3
    assert "vault login" in result.stderr
    assert "limited-token" not in result.stderr and TOKEN not in result.stderr


def test_an_unreachable_vault(run: Run, cluster: ClusterEnv) -> None:
    result = run("get-hf-token", "--secret-backend", "vault", env={"VAULT_ADDR": "http://127.0.0.1:9"})
    assert result.exit_code == 3
    assert "http://127.0.0.1:9" in result.stderr and "VAULT_ADDR" in result.stderr


# --- Kubernetes Secrets --------------------------------------------------------------------


@pytest.mark.usefixtures("namespace")
def test_the_kubernetes_backend(run: Run, cluster: ClusterEnv) -> None:
    result = run("set-api-key", "--secret-backend", "kubernetes", input="k" * 40)
    assert result.exit_code == 0, result.stderr
    secret = cluster.sandbox.get("Secret", cluster.namespace, "vllm-api-key")
    assert secret is not None and secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "vllmctl"
    uid = secret["metadata"]["uid"]
    assert run("set-api-key", "--secret-backend", "kubernetes", input="j" * 40).exit_code == 0
    updated = cluster.sandbox.get("Secret", cluster.namespace, "vllm-api-key")
    assert updated is not None and updated["metadata"]["uid"] == uid  # updated in place, never re-created
    assert run("get-api-key", "--secret-backend", "kubernetes").stdout == "j" * 40 + "\n"
    assert vault_value(cluster, "vllm/api-key", "api-key") is None  # no backup unless asked
    assert run("delete-api-key", "--secret-backend", "kubernetes", "--yes").exit_code == 0
    assert cluster.sandbox.get("Secret", cluster.namespace, "vllm-api-key") is None


@pytest.mark.usefixtures("namespace")
def test_the_kubernetes_backend_keeps_a_vault_copy_when_asked(run: Run, cluster: ClusterEnv) -> None:
    result = run(
        "set-hf-token", "--secret-backend", "kubernetes", input=TOKEN, env={"VLLM_VAULT_BACKUP": "true"}
    )
    assert result.exit_code == 0, result.stderr
    assert vault_value(cluster, "vllm/huggingface", "token") == TOKEN
    assert external_secret(cluster, "hf-token-external-secret") is None


@pytest.mark.usefixtures("namespace")
def test_kubernetes_refusing_is_named(run: Run, cluster: ClusterEnv) -> None:
    sb = cluster.sandbox
    sb.call(sb.api.faults.append, Fault("PATCH", r"/secrets/", status=403))
    result = run("set-api-key", "--secret-backend", "kubernetes", input="k" * 40)
    assert result.exit_code == 3
    assert "secrets" in result.stderr and cluster.namespace in result.stderr and "RBAC" in result.stderr


@pytest.mark.usefixtures("namespace")
def test_auto_without_vault_addr_uses_kubernetes(run: Run, cluster: ClusterEnv, monkeypatch: Any) -> None:
    monkeypatch.delenv("VAULT_ADDR")
    result = run("set-hf-token", "-v", input=TOKEN)
    assert result.exit_code == 0, result.stderr
    assert "secret backend: kubernetes (the cluster serves ExternalSecrets, but VAULT_ADDR is not set)" in (
        result.stderr
    )


@pytest.fixture(scope="module")
def no_eso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path_factory.mktemp("no-eso"), SandboxConfig(gpu_nodes=1, eso=False)).start()
    yield sb
    sb.stop()


def test_without_eso_auto_uses_kubernetes_and_vault_is_refused(
    run: Run, cluster: ClusterEnv, no_eso: Sandbox, monkeypatch: Any
) -> None:
    for key, value in no_eso.env().items():
        monkeypatch.setenv(key, value)
    no_eso.create_namespace(cluster.namespace)
    result = run("set-hf-token", "-v", input=TOKEN)
    assert result.exit_code == 0, result.stderr
    assert "secret backend: kubernetes (the cluster does not serve ExternalSecrets" in result.stderr
    forced = run("set-hf-token", "--secret-backend", "vault", input=TOKEN)
    assert forced.exit_code == 3
    assert "the cluster does not serve ExternalSecrets (external-secrets.io)" in forced.stderr
    assert "--secret-backend kubernetes" in forced.stderr


# --- install wiring and rotation ------------------------------------------------------------

GATED = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  requestGPU: 1
  gated: true
"""


def test_install_with_a_gated_model_and_no_token(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(GATED)
    refused = run("install", "--yes")
    assert refused.exit_code == 2
    assert "llama3 is gated and no HuggingFace token is stored: run `vllmctl set-hf-token`" in refused.stderr
    assert cluster.sandbox.list("Deployment", cluster.namespace) == []  # nothing half-done
    result = run("install", "--yes", env={"VLLM_HF_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    assert vault_value(cluster, "vllm/huggingface", "token") == TOKEN
    engine = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-llama3-deployment-vllm")
    assert engine is not None
    env = engine["spec"]["template"]["spec"]["containers"][0]["env"]
    hf = next(e for e in env if e["name"] == "HF_TOKEN")
    assert hf["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert TOKEN not in json.dumps(engine)


def test_install_with_api_key_then_rotate(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(GATED.replace("  gated: true\n", "  gated: false\n"))  # not about the token
    result = run("install", "--yes", "--api-key")
    assert result.exit_code == 0, result.stderr
    first = run("get-api-key").stdout.strip()
    assert len(first) == 48 and first not in result.stderr + result.stdout
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert router is not None
    before = router["metadata"]["generation"]
    rotated = run("rotate-api-key", "--yes")
    assert rotated.exit_code == 0, rotated.stderr
    second = run("get-api-key").stdout.strip()
    assert second != first and second not in rotated.stderr
    assert "vllm-deployment-router" in rotated.stderr and "vllm-llama3-deployment-vllm" in rotated.stderr
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert router is not None and router["metadata"]["generation"] > before
    assert router["status"]["updatedReplicas"] == router["status"]["readyReplicas"] == 1
    assert cluster.sandbox.call(cluster.sandbox._api_key, cluster.namespace) == second


def env_from_secret(container: dict[str, Any], name: str) -> dict[str, str]:
    entry = next(e for e in container.get("env") or [] if e["name"] == name)
    return dict(entry["valueFrom"]["secretKeyRef"])


@pytest.mark.parametrize("with_eso", [True, False], ids=["vault-eso", "kubernetes-secrets"])
def test_set_then_install_wires_both_secrets_into_the_release(
    run: Run, models_file: Path, cluster: ClusterEnv, no_eso: Sandbox, monkeypatch: Any, with_eso: bool
) -> None:
    if not with_eso:
        for key, value in no_eso.env().items():
            monkeypatch.setenv(key, value)
    sandbox = cluster.sandbox if with_eso else no_eso
    sandbox.create_namespace(cluster.namespace)  # set-* refuse a namespace that does not exist
    models_file.write_text(GATED)
    assert run("set-hf-token", input=TOKEN).exit_code == 0
    assert run("set-api-key", input="k" * 48).exit_code == 0
    result = run("install", "--yes")
    assert result.exit_code == 0, result.stderr
    if with_eso:
        data = sandbox.call(sandbox.vault.read_secret, "secret", "vllm/huggingface", sandbox.vault.root_token)
        assert data == {"token": TOKEN}
        for name in ("hf-token-external-secret", "vllm-api-key-external-secret"):
            es = sandbox.get("ExternalSecret", cluster.namespace, name, "external-secrets.io/v1")
            assert es is not None and es["status"]["conditions"][0]["status"] == "True"
    else:
        assert sandbox.list("CustomResourceDefinition") == []
    hf = sandbox.get("Secret", cluster.namespace, "hf-token")
    assert hf is not None and base64.b64decode(hf["data"]["token"]).decode() == TOKEN
    engine = sandbox.get("Deployment", cluster.namespace, "vllm-llama3-deployment-vllm")
    router = sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert engine is not None and router is not None
    container = engine["spec"]["template"]["spec"]["containers"][0]
    assert env_from_secret(container, "HF_TOKEN") == {"name": "hf-token", "key": "token"}
    assert env_from_secret(container, "VLLM_API_KEY") == {"name": "vllm-api-key", "key": "api-key"}
    router_container = router["spec"]["template"]["spec"]["containers"][0]
    assert env_from_secret(router_container, "VLLM_API_KEY") == {"name": "vllm-api-key", "key": "api-key"}
    assert TOKEN not in json.dumps([engine, router]) and "k" * 48 not in json.dumps([engine, router])
    if not with_eso:
        sandbox.call(sandbox.store.delete, sandbox.api.by_kind("v1", "Namespace"), None, cluster.namespace)


@pytest.mark.parametrize(
    ("mount", "says"), [("kv1", "is not KV version 2"), ("kv-nope", "has no secrets engine")]
)
def test_a_mount_that_is_not_kv2_is_refused_before_writing(
    run: Run, cluster: ClusterEnv, mount: str, says: str
) -> None:
    import hvac.exceptions

    sb = cluster.sandbox
    sb.vault.enable_kv("kv1", version=1)  # a real KV version 1 mount (kv-nope does not exist)
    result = run("set-hf-token", "--secret-backend", "vault", input=TOKEN, env={"VLLM_VAULT_MOUNT": mount})
    assert result.exit_code == 3
    assert says in result.stderr and "VLLM_VAULT_MOUNT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and TOKEN not in result.stderr
    # Nothing landed in the KV v1 mount (a KV v2 write there would store a key `data/...`).
    with pytest.raises(hvac.exceptions.InvalidPath):
        sb.vault.client().secrets.kv.v1.list_secrets(path="", mount_point="kv1")


# --- a namespace that does not exist -------------------------------------------------------


def test_secret_commands_refuse_a_namespace_that_does_not_exist(run: Run, cluster: ClusterEnv) -> None:
    sb = cluster.sandbox
    sb.call(sb.vault.write_secret, "secret", "vllm/huggingface", {"token": TOKEN})
    refusal = (
        "error: namespace typo does not exist (--namespace/VLLM_NAMESPACE): check the name, or create "
        "it with `vllmctl create-namespace -n typo` (install creates it too).\n"
    )
    for argv, stdin in (
        (("set-api-key", "--secret-backend", "kubernetes", "-n", "typo"), "k" * 40),
        (("set-api-key", "-n", "typo"), "k" * 40),  # vault: refused before Vault is written
        (("create-hf-token-secret", "-n", "typo"), None),
        (("create-api-key-secret", "--secret-backend", "kubernetes", "-n", "typo"), "k" * 40),
    ):
        result = run(*argv, input=stdin)
        assert result.exit_code == 2, argv
        assert result.stderr.endswith(refusal), argv  # after the line naming the backend, if any
    assert sb.get("Namespace", None, "typo") is None
    assert vault_value(cluster, "vllm/api-key", "api-key") is None
    # the fix the message names, then the same command works (install creating the namespace
    # for its Secrets: test_install_with_api_key_then_rotate)
    ns = cluster.namespace
    assert run("create-namespace").exit_code == 0 and sb.get("Namespace", None, ns) is not None
    assert run("create-hf-token-secret").exit_code == 0
    assert secret_value(cluster, "hf-token", "token") == TOKEN
