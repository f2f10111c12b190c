"""install / upgrade / plan / history / rollback / uninstall end to end: vllmctl runs the
real helm and kubectl against the sandbox's API stand-in, and the tests read back what
a cluster would hold."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv, mini_chart_at

# `gated: false`: these tests are not about the HuggingFace token; without it install asks
# the Hub, which says the repo is gated, and wants a token (tests/secrets/test_old_tool.py).
MODELS = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  gated: false
  requestGPU: 1
  pvcStorage: 20Gi
"""
QWEN = """\
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  requestGPU: 1
"""


def sh(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def release_secrets(cluster: ClusterEnv) -> list[dict[str, Any]]:
    return [
        s for s in cluster.sandbox.list("Secret", cluster.namespace) if s.get("type") == "helm.sh/release.v1"
    ]


def decode_release(secret: dict[str, Any]) -> dict[str, Any]:
    """Helm's storage format: base64 (Secret data) of base64 of gzipped JSON."""
    raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    return json.loads(gzip.decompress(raw))  # type: ignore[no-any-return]


def engine(cluster: ClusterEnv, model: str) -> dict[str, Any] | None:
    return cluster.sandbox.get("Deployment", cluster.namespace, f"vllm-{model}-deployment-vllm")


def test_install_creates_a_ready_release(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(MODELS)
    result = run("install", "--yes")
    assert result.exit_code == 0, result.stderr
    # helm stored the release as helm does: a Secret per revision, labelled, type helm.sh/release.v1
    (secret,) = release_secrets(cluster)
    assert secret["metadata"]["labels"]["owner"] == "helm"
    assert secret["metadata"]["labels"]["status"] == "deployed"
    release = decode_release(secret)
    assert release["name"] == "vllm" and release["version"] == 1
    assert release["config"]["servingEngineSpec"]["modelSpec"][0]["name"] == "llama3"
    # --wait returned only once the engine and the router were Available
    deployment = engine(cluster, "llama3")
    assert deployment is not None and deployment["status"]["readyReplicas"] == 1
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert router is not None and router["status"]["availableReplicas"] == 1
    # the router stand-in serves what the engine's command line names (--served-model-name)
    assert cluster.sandbox.call(cluster.sandbox._served_models, cluster.namespace) == [
        "llama3",
        "meta-llama/Llama-3.1-8B-Instruct",
    ]
    # the namespace carries vllmctl's Pod Security labels
    ns = cluster.sandbox.get("Namespace", None, cluster.namespace)
    assert ns is not None and ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    # and the everyday tools agree
    listed = json.loads(sh(cluster.helm("list", "--output", "json")))
    assert [(r["name"], r["status"], r["revision"]) for r in listed] == [("vllm", "deployed", "1")]
    assert "STATUS: deployed" in sh(cluster.helm("status", "vllm"))
    pods = sh(cluster.kubectl("get", "pods"))
    assert pods.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sum(" 1/1 " in line and "Running" in line for line in pods.splitlines()) == 2


def test_upgrade_after_add_model_and_plan_against_the_release(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0
    plan = run("plan")
    assert plan.exit_code == 0, plan.stderr
    assert "no changes" in (plan.stdout + plan.stderr).lower()
    add = run(
        "add-model", "--name", "qwen", "--model-url", "Qwen/Qwen2.5-1.5B-Instruct", "--gpus", "1", "--yes"
    )
    assert add.exit_code == 0, add.stderr
    plan = run("plan")
    assert plan.exit_code == 1, plan.stderr  # 1: something would change, like diff
    assert "qwen" in plan.stdout
    result = run("upgrade", "--yes")
    assert result.exit_code == 0, result.stderr
    deployment = engine(cluster, "qwen")
    assert deployment is not None and deployment["status"]["readyReplicas"] == 1
    assert sorted(decode_release(s)["version"] for s in release_secrets(cluster)) == [1, 2]


def test_history_and_rollback(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0
    models_file.write_text(MODELS + QWEN)
    assert run("upgrade", "--yes").exit_code == 0
    history = run("history", "-o", "json")
    assert history.exit_code == 0, history.stderr
    assert [h["revision"] for h in json.loads(history.stdout)] == [1, 2]
    result = run("rollback", "1", "--yes")
    assert result.exit_code == 0, result.stderr
    assert engine(cluster, "qwen") is None  # revision 1 had only llama3
    assert engine(cluster, "llama3") is not None
    statuses = {
        decode_release(s)["version"]: decode_release(s)["info"]["status"] for s in release_secrets(cluster)
    }
    assert statuses == {1: "superseded", 2: "superseded", 3: "deployed"}


def test_uninstall_removes_the_release_and_keeps_the_namespace(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0
    result = run("uninstall", "--yes")
    assert result.exit_code == 0, result.stderr
    assert release_secrets(cluster) == []
    assert engine(cluster, "llama3") is None
    assert cluster.sandbox.get("Namespace", None, cluster.namespace) is not None
    # chart 0.1.8 ignores pvcAnnotations: helm deletes the model cache, and vllmctl said so
    assert cluster.sandbox.list("PersistentVolumeClaim", cluster.namespace) == []
    assert "deletes their PVCs" in result.stderr
    assert json.loads(sh(cluster.helm("list", "--output", "json"))) == []


def test_uninstall_keeps_model_caches_with_charts_that_honour_the_keep_policy(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: Any, tmp_path: Path
) -> None:
    # vllmctl annotates PVCs with helm.sh/resource-policy: keep for charts 0.1.10+ (read
    # from the chart's Chart.yaml), and helm leaves them behind.
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.10", tmp_path)))
    models_file.write_text(MODELS)
    result = run("install", "--yes")
    assert result.exit_code == 0, result.stderr
    assert run("uninstall", "--yes").exit_code == 0
    (claim,) = cluster.sandbox.list("PersistentVolumeClaim", cluster.namespace)
    assert claim["metadata"]["name"] == "vllm-llama3-storage-claim"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert engine(cluster, "llama3") is None


def test_uninstall_with_delete_namespace_removes_everything(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0
    result = run("uninstall", "--delete-namespace", "--yes")
    assert result.exit_code == 0, result.stderr
    assert cluster.sandbox.get("Namespace", None, cluster.namespace) is None
    assert cluster.sandbox.list("PersistentVolumeClaim", cluster.namespace) == []


# --- second runs: what is gone is said to be gone, the rest still done ----------------------


def test_uninstall_again_deletes_what_is_left_and_says_what_was_gone(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes", "--api-key").exit_code == 0  # Vault + ESO: an ExternalSecret too
    assert run("uninstall", "--yes").exit_code == 0  # the release goes; Secrets and namespace stay
    ns = cluster.namespace
    assert cluster.sandbox.get("Secret", ns, "vllm-api-key") is not None

    again = run("uninstall", "--delete-secrets", "--delete-namespace", "--yes")
    assert again.exit_code == 0, again.stderr
    assert f"Release vllm is not installed in namespace {ns}: nothing to uninstall." in again.stderr
    assert "Deleted Secret vllm-api-key, ExternalSecret vllm-api-key-external-secret." in again.stderr
    assert f"Deleted namespace {ns}." in again.stderr
    assert cluster.sandbox.get("Namespace", None, ns) is None

    third = run("uninstall", "--delete-secrets", "--delete-namespace", "--yes")
    assert third.exit_code == 0, third.stderr
    assert third.stderr.splitlines() == [
        f"Release vllm is not installed in namespace {ns}: nothing to uninstall.",
        f"No Secret hf-token or vllm-api-key in namespace {ns}: none to delete.",
        f"Namespace {ns} does not exist: nothing to delete.",
    ]
    plain = run("uninstall")  # nothing to do: no question asked, even without a terminal
    assert (plain.exit_code, plain.stderr) == (
        0,
        f"Release vllm is not installed in namespace {ns}: nothing to uninstall.\n",
    )


def test_delete_namespace_that_does_not_exist(run: Run, cluster: ClusterEnv) -> None:
    result = run("delete-namespace", "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"Namespace {cluster.namespace} does not exist: nothing to delete.\n"
    cluster.sandbox.create_namespace(cluster.namespace)
    deleted = run("delete-namespace", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert f"Deleted namespace {cluster.namespace}." in deleted.stderr
    assert cluster.sandbox.get("Namespace", None, cluster.namespace) is None


def test_rollback_with_one_revision_or_to_one_helm_does_not_have(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0
    result = run("rollback", "--yes")
    assert (result.exit_code, result.stderr) == (
        2,
        "error: release vllm has only revision 1; nothing to roll back to.\n",
    )
    missing = run("rollback", "7", "--yes")
    assert (missing.exit_code, missing.stderr) == (
        2,
        "error: release vllm has no revision 7 (helm keeps 1): `vllmctl history` lists them.\n",
    )
    models_file.write_text(MODELS + QWEN)
    assert run("upgrade", "--yes").exit_code == 0
    back = run("rollback", "--yes")  # the previous revision, named
    assert back.exit_code == 0, back.stderr
    assert "Rolled vllm back to revision 1." in back.stderr
    assert engine(cluster, "qwen") is None


def spawn(*args: str, cwd: Path) -> Any:
    """vllmctl at a terminal, with the sandbox's environment (set by the `cluster` fixture)."""
    import os
    import sys

    import pexpect

    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "COLUMNS": "200", "LINES": "50"}
    return pexpect.spawn(
        sys.executable, ["-m", "vllmctl", *args], cwd=str(cwd), env=env, encoding="utf-8", timeout=60
    )


def finish(child: Any) -> tuple[int, str]:
    import pexpect

    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus), str(child.before)


def test_upgrade_at_a_terminal_asks_after_the_plan(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0
    models_file.write_text(MODELS + QWEN)
    child = spawn("upgrade", "--no-api-key", cwd=models_file.parent)
    child.expect_exact("+ qwen (Qwen/Qwen2.5-1.5B-Instruct)")  # the plan first
    child.expect_exact(f"Upgrade release vllm in namespace {cluster.namespace} as planned?")
    child.send("n")
    code, transcript = finish(child)
    assert code == 0, transcript
    assert "Release vllm was not changed." in transcript
    assert len(release_secrets(cluster)) == 1 and engine(cluster, "qwen") is None

    child = spawn("upgrade", "--no-api-key", cwd=models_file.parent)
    child.expect_exact("as planned?")
    child.send("y")
    code, transcript = finish(child)
    assert code == 0, transcript
    assert "Release vllm is deployed" in transcript
    assert engine(cluster, "qwen") is not None
    # --yes asks nothing; without a terminal upgrade goes ahead, as install does
    models_file.write_text(MODELS)
    assert run("upgrade").exit_code == 0
    assert engine(cluster, "qwen") is None
