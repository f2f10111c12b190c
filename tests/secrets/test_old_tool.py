"""A user of the old just module moving over: an old models.yaml (no `gated:` fields) and
the old tool's variables keep their meaning (issue 13), end to end against the sandbox."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv
from tests.secrets.test_commands import TOKEN, env_from_secret, secret_value, vault_value

# As the old tool wrote it: no `gated:` anywhere.
OLD_MODELS = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  requestGPU: 1
- name: mistral
  modelURL: mistralai/Mistral-7B-Instruct-v0.3
  requestGPU: 1
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  requestGPU: 1
"""
QWEN_ONLY = """\
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  requestGPU: 1
"""
API_KEY = "k" * 24 + "K" * 24


def engine(cluster: ClusterEnv, model: str) -> dict[str, Any] | None:
    return cluster.sandbox.get("Deployment", cluster.namespace, f"vllm-{model}-deployment-vllm")


def hub_asks(cluster: ClusterEnv) -> list[str]:
    """The model-info requests the Hub stand-in saw, by path without the query."""
    sb = cluster.sandbox
    made = sb.call(lambda: list(sb.hub.requests))
    return [r.path.split("?")[0] for r in made if r.path.startswith("/api/models/")]


# --- A. gated models from an old models.yaml --------------------------------------------------


def test_an_old_models_yaml_asks_the_hub_and_refuses_gated_models_without_a_token(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(OLD_MODELS)
    refused = run("install", "--yes")
    assert refused.exit_code == 2, refused.stderr
    assert "llama3, mistral are gated and no HuggingFace token is stored" in refused.stderr
    assert "vllmctl set-hf-token" in refused.stderr and "nothing was changed" in refused.stderr
    assert "qwen" not in refused.stderr.split("error:")[-1]  # the Hub says Qwen is public
    assert cluster.sandbox.list("Deployment", cluster.namespace) == []
    assert cluster.sandbox.get("Secret", cluster.namespace, "hf-token") is None
    # once per repo, and anonymously: the token is not needed to learn that it is needed
    assert sorted(hub_asks(cluster)) == [
        "/api/models/Qwen/Qwen2.5-1.5B-Instruct",
        "/api/models/meta-llama/Llama-3.1-8B-Instruct",
        "/api/models/mistralai/Mistral-7B-Instruct-v0.3",
    ]


def test_vllm_hf_token_at_install_is_stored_and_wired_as_set_hf_token_would(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: Any
) -> None:
    models_file.write_text(OLD_MODELS)
    plan = run("plan", env={"VLLM_HF_TOKEN": TOKEN})
    assert plan.exit_code == 1, plan.stderr
    assert "llama3, mistral need the HuggingFace token: install stores VLLM_HF_TOKEN" in plan.stderr
    sb = cluster.sandbox
    sb.call(sb.hub.requests.clear)
    result = run("install", "--yes", env={"VLLM_HF_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    # install renders twice (again once the Secret exists) but asks the Hub once per repo
    assert sorted(hub_asks(cluster)) == [
        "/api/models/Qwen/Qwen2.5-1.5B-Instruct",
        "/api/models/meta-llama/Llama-3.1-8B-Instruct",
        "/api/models/mistralai/Mistral-7B-Instruct-v0.3",
    ]
    made = sb.call(lambda: list(sb.hub.requests))
    assert all(r.token is None for r in made)  # asked anonymously: the token goes nowhere else
    assert vault_value(cluster, "vllm/huggingface", "token") == TOKEN  # as set-hf-token stores it
    assert secret_value(cluster, "hf-token", "token") == TOKEN
    for name in ("llama3", "mistral"):
        deployment = engine(cluster, name)
        assert deployment is not None
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert env_from_secret(container, "HF_TOKEN") == {"name": "hf-token", "key": "token"}
        assert TOKEN not in json.dumps(deployment)
    assert TOKEN not in result.stderr + result.stdout


def test_a_bad_vllm_hf_token_at_install_is_refused_as_set_hf_token_refuses_it(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(OLD_MODELS)
    result = run("install", "--yes", env={"VLLM_HF_TOKEN": "hf_x"})
    assert result.exit_code == 2
    assert "does not look like a HuggingFace token" in result.stderr and "hf_x" not in result.stderr
    assert cluster.sandbox.list("Deployment", cluster.namespace) == []


def test_plan_says_install_would_refuse(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(OLD_MODELS)
    plan = run("plan")
    assert plan.exit_code == 1, plan.stderr
    assert "warning: llama3, mistral are gated and namespace" in plan.stderr
    assert "has no Secret hf-token: install syncs a token kept in Vault, else refuses" in plan.stderr


def test_without_the_hub_the_old_tools_organisations_count_as_gated(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: Any
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # refused at once: the offline path
    models_file.write_text(OLD_MODELS)
    refused = run("install", "--yes")
    assert refused.exit_code == 2, refused.stderr
    assert "could not ask the HuggingFace Hub whether the models without `gated:` (llama3, mistral" in (
        refused.stderr
    )
    assert "llama3, mistral count as gated by the old tool's rule" in refused.stderr
    assert "llama3, mistral are gated and no HuggingFace token is stored" in refused.stderr
    assert refused.stderr.count("could not ask the HuggingFace Hub") == 1  # one warning, not one per model
    assert cluster.sandbox.list("Deployment", cluster.namespace) == []


def test_a_repo_the_hub_does_not_show_needs_the_token(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    """Private (or misspelt): only a token downloads a private repo, so it is not deployed
    without one."""
    models_file.write_text("- name: private\n  modelURL: acme/private-model\n  requestGPU: 1\n")
    refused = run("install", "--yes")
    assert refused.exit_code == 2, refused.stderr
    assert "does not show acme/private-model to an anonymous caller" in refused.stderr
    assert "private is gated and no HuggingFace token is stored" in refused.stderr
    assert cluster.sandbox.list("Deployment", cluster.namespace) == []


def test_an_explicit_gated_field_is_trusted_without_asking(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    # The user said so: no question to the Hub, and no token needed.
    models_file.write_text(OLD_MODELS.replace("requestGPU: 1\n", "requestGPU: 1\n  gated: false\n"))
    result = run("install", "--yes")
    assert result.exit_code == 0, result.stderr
    assert hub_asks(cluster) == []
    assert engine(cluster, "llama3") is not None


def test_upgrade_adding_an_old_style_gated_model_is_refused_and_changes_nothing(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(QWEN_ONLY)
    assert run("install", "--yes").exit_code == 0
    models_file.write_text(OLD_MODELS)
    refused = run("upgrade", "--yes")
    assert refused.exit_code == 2, refused.stderr
    assert "llama3, mistral are gated and no HuggingFace token is stored" in refused.stderr
    assert engine(cluster, "llama3") is None
    history = run("history", "-o", "json")
    assert [h["revision"] for h in json.loads(history.stdout)] == [1]


# --- B. the old tool's variables ------------------------------------------------------------


def test_vllm_api_key_at_install_protects_the_endpoint(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(QWEN_ONLY)
    plan = run("plan", env={"VLLM_API_KEY": API_KEY})
    assert "install and upgrade store VLLM_API_KEY" in plan.stderr and API_KEY not in plan.stderr
    result = run("install", "--yes", env={"VLLM_API_KEY": API_KEY})
    assert result.exit_code == 0, result.stderr
    assert vault_value(cluster, "vllm/api-key", "api-key") == API_KEY
    assert secret_value(cluster, "vllm-api-key", "api-key") == API_KEY
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert router is not None
    container = router["spec"]["template"]["spec"]["containers"][0]
    assert env_from_secret(container, "VLLM_API_KEY") == {"name": "vllm-api-key", "key": "api-key"}
    assert cluster.sandbox.call(cluster.sandbox._api_key, cluster.namespace) == API_KEY
    assert API_KEY not in result.stderr + result.stdout


def test_vllm_api_key_at_upgrade_protects_an_open_endpoint(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(QWEN_ONLY)
    assert run("install", "--yes").exit_code == 0
    assert cluster.sandbox.get("Secret", cluster.namespace, "vllm-api-key") is None
    result = run("upgrade", "--yes", env={"VLLM_API_KEY": API_KEY})
    assert result.exit_code == 0, result.stderr
    assert secret_value(cluster, "vllm-api-key", "api-key") == API_KEY
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert router is not None
    container = router["spec"]["template"]["spec"]["containers"][0]
    assert env_from_secret(container, "VLLM_API_KEY") == {"name": "vllm-api-key", "key": "api-key"}


def test_install_help_says_what_vllm_api_key_does(run: Run) -> None:
    shown = run("install", "--help")
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.split())
    assert "VLLM_API_KEY set protects the endpoint with that key" in text
    assert "default: yes when VLLM_API_KEY is set" in text


def test_retired_namespace_variables_are_not_shown_and_warned_about_once(run: Run) -> None:
    env = {"EXTERNAL_SECRETS_NAMESPACE": "eso", "K8S_VAULT_NAMESPACE": "vault"}
    result = run("config", "-o", "json", env=env)
    assert result.exit_code == 0, result.stderr
    shown = {row["env"] for row in json.loads(result.stdout)}
    assert not shown & set(env)
    assert result.stderr.count("EXTERNAL_SECRETS_NAMESPACE is set but vllmctl does not use it") == 1
    assert "API discovery" in result.stderr
    assert result.stderr.count("K8S_VAULT_NAMESPACE is set but vllmctl does not use it") == 1
    assert "VAULT_ADDR" in result.stderr
    quiet = run("config")
    assert "does not use it" not in quiet.stderr


@pytest.mark.usefixtures("namespace")
def test_auto_says_which_backend_it_chose_on_every_write(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: Any
) -> None:
    monkeypatch.delenv("VAULT_ADDR")
    said = "secret backend: kubernetes (the cluster serves ExternalSecrets, but VAULT_ADDR is not set"
    for args, stdin in (
        (("set-hf-token",), TOKEN),
        (("set-api-key",), API_KEY),
        (("create-hf-token-secret",), TOKEN),
        (("delete-api-key-secret", "--yes"), ""),
        (("delete-hf-token", "--yes"), ""),
    ):
        result = run(*args, input=stdin)  # no -v
        assert result.exit_code == 0, (args, result.stderr)
        assert result.stderr.count(said) == 1, (args, result.stderr)
    models_file.write_text(QWEN_ONLY)
    installed = run("install", "--yes", env={"VLLM_API_KEY": API_KEY})
    assert installed.exit_code == 0, installed.stderr
    assert installed.stderr.count(said) == 1
    read = run("get-api-key")  # a read: said with -v only
    assert read.stdout == API_KEY + "\n" and said not in read.stderr


@pytest.mark.parametrize("value", ["10 minutes", "10", "1h30", "-5m", "0s"])
def test_a_helm_timeout_helm_would_refuse_stops_install_before_anything_changes(
    run: Run, models_file: Path, cluster: ClusterEnv, value: str
) -> None:
    models_file.write_text(QWEN_ONLY)
    result = run("install", "--yes", "--api-key", env={"VLLM_HELM_TIMEOUT": value})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: VLLM_HELM_TIMEOUT={value!r} is not a duration helm takes"), (
        result.stderr
    )
    assert "10m, 1h30m or 90s" in result.stderr
    assert cluster.sandbox.list("Deployment", cluster.namespace) == []
    assert cluster.sandbox.get("Secret", cluster.namespace, "vllm-api-key") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("500ms", 0.5), ("2h45m30s", 9930)],
)
def test_go_durations_helm_takes(text: str, seconds: float) -> None:
    from vllmctl.settings import duration_seconds

    assert duration_seconds(text) == seconds


def test_a_valid_helm_timeout_reaches_helm(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(QWEN_ONLY)
    result = run("install", "--yes", "--dry-run", env={"VLLM_HELM_TIMEOUT": "1h30m"})
    assert result.exit_code == 0, result.stderr
    assert "--timeout 1h30m" in result.stderr


@pytest.mark.parametrize("command", ["set-hf-token", "set-api-key", "create-hf-token-secret"])
def test_the_old_positional_secret_is_refused_with_the_reason_and_never_echoed(
    run: Run, command: str
) -> None:
    value = "hf_" + "Positional9Secret" * 2
    result = run(command, value, input="")
    assert result.exit_code == 2
    assert value not in result.stderr + result.stdout
    assert base64.b64encode(value.encode()).decode() not in result.stderr
    line = result.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("error: the ")
    assert "is never an argument (every user of this machine can read command lines" in line
    assert "standard input" in line and "VLLM_" in line and "at a terminal to be asked" in line
    assert "unexpected extra argument" not in line
    # a value that looks like a long option is not echoed either (click would name it)
    dashed = run(command, "--" + value, input="")
    assert dashed.exit_code == 2 and value not in dashed.stderr
