"""render / template / plan / install as a user runs them, with the real helm binary.

`template` runs against tests/charts/vllm-stack-mini, our own chart that mirrors the
production-stack chart's values contract (docs/chart-checks.md records the hand check
against the real chart). Commands that need a cluster are run end to end by the sandbox
tests; here they must fail clearly without one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Run

MINI_CHART = REPO / "tests" / "charts" / "vllm-stack-mini"
HELM3 = REPO / ".tools" / "helm3" / "helm"  # scripts/install-tools puts helm 3 there
needs_helm = pytest.mark.skipif(shutil.which("helm") is None, reason="scripts/test puts helm on PATH")

MODELS = """\
# two models
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  requestGPU: 2
  limitMemory: 32Gi
  vllmConfig: {maxModelLen: 8192, tensorParallelSize: 2}
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  env: [{name: NOTE, value: "say \\"hi\\"\\nthen {{ stop }}"}]
"""
ENV = {"VLLM_MODEL_TAG": "v0.11.0", "VLLM_RELEASE": "rel", "VLLM_NAMESPACE": "ns"}


def load_all(text: str) -> list[dict[str, Any]]:
    from ruamel.yaml import YAML

    return [doc for doc in YAML(typ="safe").load_all(text) if doc]


def test_render_prints_values_and_notes(run: Run, models_file: Path) -> None:
    models_file.write_text(MODELS)
    result = run("render", env=ENV)
    assert result.exit_code == 0, result.stderr
    (values,) = load_all(result.stdout)
    assert [m["name"] for m in values["servingEngineSpec"]["modelSpec"]] == ["llama3", "qwen"]
    assert values["servingEngineSpec"]["modelSpec"][1]["env"][0]["value"] == 'say "hi"\nthen {{ stop }}'
    assert "offline: the Secrets hf-token and vllm-api-key are referenced only when" in result.stderr


def test_render_to_a_file(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(MODELS)
    out = tmp_path / "values.yaml"
    result = run("render", "-o", str(out), env=ENV)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "Wrote the values for 2 models" in result.stderr
    assert load_all(out.read_text())[0]["routerSpec"]["enableRouter"] is True


def test_render_references_secrets_when_told_they_exist(run: Run, models_file: Path) -> None:
    models_file.write_text(MODELS)
    env = {
        **ENV,
        "VLLM_HF_TOKEN_FROM_SECRET": "true",
        "VLLM_API_KEY_FROM_SECRET": "1",
        "VLLM_HF_TOKEN": "hf_x",
    }
    result = run("render", env=env)
    (values,) = load_all(result.stdout)
    assert values["servingEngineSpec"]["modelSpec"][0]["hf_token"] == {
        "secretName": "hf-token",
        "secretKey": "token",
    }
    assert values["routerSpec"]["vllmApiKey"] == {"secretName": "vllm-api-key", "secretKey": "api-key"}
    assert "hf_x" not in result.stdout + result.stderr


def test_render_without_models_yaml(run: Run) -> None:
    result = run("render")
    assert result.exit_code == 2
    assert "models.yaml does not exist; add a model first" in result.stderr


def test_render_refuses_an_invalid_catalog(run: Run, models_file: Path) -> None:
    models_file.write_text("- name: x\n  modelURL: org/x\n  replicaCount: many\n")
    result = run("render")
    assert result.exit_code == 2
    assert "models.yaml:3:17" in result.stderr
    assert result.stdout == ""


@needs_helm
def test_template_builds_one_engine_per_model_with_the_real_helm(run: Run, models_file: Path) -> None:
    models_file.write_text(MODELS)
    result = run("template", env={**ENV, "VLLM_CHART": str(MINI_CHART), "VLLM_CHART_VERSION": "0.1.8"})
    assert result.exit_code == 0, result.stderr
    objects = load_all(result.stdout)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == {
        "rel-llama3-deployment-vllm",
        "rel-qwen-deployment-vllm",
        "rel-deployment-router",
    }
    llama = deployments["rel-llama3-deployment-vllm"]["spec"]["template"]["spec"]["containers"][0]
    command = " ".join(llama.get("command", []) + llama.get("args", []))
    assert "vllm serve meta-llama/Llama-3.1-8B-Instruct" in command
    assert "--served-model-name llama3 meta-llama/Llama-3.1-8B-Instruct" in command
    assert "--enable-prefix-caching" in command and "--no-enable-prefix-caching" not in command
    assert "--tensor-parallel-size 2" in command
    assert str(llama["resources"]["requests"]["nvidia.com/gpu"]) == "2"  # the chart quotes it
    assert llama["resources"]["limits"]["memory"] == "32Gi"
    qwen = deployments["rel-qwen-deployment-vllm"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "NOTE", "value": 'say "hi"\nthen {{ stop }}'} in qwen["env"]
    router = deployments["rel-deployment-router"]["spec"]["template"]["spec"]["containers"][0]
    assert "vllmctl.io/release=rel" in " ".join(router.get("args", []))


@needs_helm
def test_helm_lint_accepts_the_values(run: Run, models_file: Path, tmp_path: Path) -> None:
    import subprocess

    models_file.write_text(MODELS)
    values = tmp_path / "values.yaml"
    assert run("render", "-o", str(values), env=ENV).exit_code == 0
    lint = subprocess.run(
        ["helm", "lint", str(MINI_CHART), "--values", str(values)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@needs_helm
def test_cluster_commands_fail_clearly_without_a_cluster(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(MODELS)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "current-context: c\n"
    )
    helms = [{}, {"VLLM_HELM": str(HELM3)}] if HELM3.exists() else [{}]  # helm 4 and 3 word it apart
    for command, helm in (
        (c, h) for c in ("plan", "install", "upgrade", "history", "rollback", "uninstall") for h in helms
    ):
        result = run(command, "--yes", env={**ENV, "KUBECONFIG": str(kubeconfig), **helm})
        assert result.exit_code == 3, (command, result.stderr)
        # one sentence with the fix, not helm's "helm failed (exit 1): Error: kubernetes cluster
        # unreachable: Get ...: dial tcp ...: connect: connection refused"
        assert result.stderr == (
            "error: Kubernetes is unreachable at https://127.0.0.1:9 (connection refused), as helm "
            "found: check that the cluster is up and that the kubeconfig's current context points "
            "at it, or use another context with --context.\n"
        ), command
    # kubectl's words, likewise (apply names the URL it asked, get only the host and port)
    for command, server in (("create-namespace", "https://127.0.0.1:9"), ("delete-namespace", "127.0.0.1:9")):
        result = run(command, "--yes", env={**ENV, "KUBECONFIG": str(kubeconfig)})
        assert (result.exit_code, result.stderr) == (
            3,
            f"error: Kubernetes is unreachable at {server} (connection refused), as kubectl found: check "
            "that the cluster is up and that the kubeconfig's current context points at it, or use another "
            "context with --context.\n",
        ), command


def test_a_missing_helm_says_how_to_get_it(run: Run, models_file: Path) -> None:
    models_file.write_text(MODELS)
    result = run("template", env={**ENV, "VLLM_HELM": "/nonexistent/helm"})
    assert result.exit_code == 2
    assert "cannot find '/nonexistent/helm' (from the settings). Install helm 3.8 or newer" in result.stderr


@needs_helm
@pytest.mark.parametrize("helm", ["helm", "helm3"])
def test_remove_helm_repo_for_a_local_chart_or_a_repo_already_gone(
    run: Run, tmp_path: Path, helm: str
) -> None:
    if helm == "helm3" and not HELM3.exists():
        pytest.skip("scripts/install-tools puts helm 3 in .tools/helm3")
    binary = {"VLLM_HELM": str(HELM3)} if helm == "helm3" else {}
    local = run("remove-helm-repo", env={"VLLM_CHART": str(MINI_CHART), **binary})
    assert (local.exit_code, local.stderr) == (
        0,
        f"VLLM_CHART={MINI_CHART} is a local chart: there is no helm repository to remove.\n",
    )
    config = tmp_path / "repositories.yaml"
    env = {"VLLM_CHART": "vllm/vllm-stack", "HELM_REPOSITORY_CONFIG": str(config), **binary}
    none = run("remove-helm-repo", env=env)  # helm: "no repositories configured"
    assert (none.exit_code, none.stderr) == (0, "helm has no repository vllm: nothing to remove.\n")
    entry = "- name: {0}\n  url: https://example.invalid/{0}\n"
    config.write_text("apiVersion: v1\nrepositories:\n" + entry.format("vllm") + entry.format("other"))
    removed = run("remove-helm-repo", env=env)
    assert (removed.exit_code, removed.stderr) == (0, "Removed helm repo vllm.\n")
    again = run("remove-helm-repo", env=env)  # helm: "no repo named "vllm" found"
    assert (again.exit_code, again.stderr) == (0, "helm has no repository vllm: nothing to remove.\n")
    assert "other" in config.read_text()
