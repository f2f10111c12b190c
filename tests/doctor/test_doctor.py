"""doctor, and the GPU-fit refusal of plan and install, against the sandbox (2 nodes x 2
GPUs) and a wider one (2 x 4), with the Hub stand-in answering for the models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv, release_on, running_sandbox
from tests.sandbox.kube.controllers import R
from tests.sandbox.sandbox import Sandbox, SandboxConfig

TOKEN = "hf_" + "d" * 37  # granted nothing
GRANTED = "hf_" + "e" * 37  # granted the gated Llama

PUBLIC = """\
- name: qwen
  modelURL: Qwen/Qwen2.5-0.5B-Instruct
  requestGPU: 1
"""
GATED = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  requestGPU: 1
  gated: true
"""
# The two cases: one replica wider than any node, and more GPUs than the cluster has.
WIDE_REPLICA = """\
- name: big
  modelURL: Qwen/Qwen2.5-7B-Instruct
  requestGPU: 4
"""
FIVE_GPUS = """\
- name: pair
  modelURL: Qwen/Qwen2.5-7B-Instruct
  requestGPU: 2
  replicaCount: 2
- name: one
  modelURL: Qwen/Qwen2.5-0.5B-Instruct
  requestGPU: 1
"""


def doctor(run: Run, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    result = run("doctor", "-o", "json", *args, env=env)
    return result.exit_code, json.loads(result.stdout), result.stderr


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in report["checks"] if c["name"] == name]
    assert found, f"no check {name!r} in {[c['name'] for c in report['checks']]}"
    return found[0]  # type: ignore[no-any-return]


def model(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in report["models"] if m["name"] == name)  # type: ignore[no-any-return]


def test_a_ready_setup_passes(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(PUBLIC)
    assert run("create-namespace").exit_code == 0  # set-api-key refuses a namespace that does not exist
    assert run("set-api-key", "--secret-backend", "kubernetes").exit_code == 0
    code, report, _ = doctor(run, "--secret-backend", "kubernetes")
    assert code == 0, report
    assert check(report, "GPU fit")["status"] == "ok"
    row = model(report, "qwen")
    assert row["gpus"]["status"] == "ok" and "gpu-node-" in row["gpus"]["detail"]
    assert row["access"] == {"status": "ok", "detail": "public"}
    assert row["memory"]["status"] == "ok" and row["memory"]["detail"].startswith("fits A100-80GB")
    assert check(report, "namespace")["status"] == "ok"  # set-api-key created it
    strict, report, _ = doctor(run, "--secret-backend", "kubernetes", "--strict")
    assert strict == 0, [c for c in report["checks"] if c["status"] != "ok"]


def test_warnings_fail_only_with_strict(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    models_file.write_text(PUBLIC)
    monkeypatch.setenv("VLLM_MODEL_TAG", "latest")
    code, report, _ = doctor(run, "--secret-backend", "kubernetes", "--offline")
    assert code == 0
    assert check(report, "image tag")["status"] == "warn"
    assert check(report, "api key")["status"] == "warn"
    assert doctor(run, "--secret-backend", "kubernetes", "--offline", "--strict")[0] == 1


def test_the_human_report_names_each_fix(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(WIDE_REPLICA)
    result = run("doctor")
    assert result.exit_code == 2
    assert "FAIL  big" in result.stdout
    assert "big needs 4 nvidia.com/gpu on one node" in result.stdout
    assert "fix: `vllmctl install` creates it" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].endswith("failures.")


@pytest.mark.parametrize(
    ("models", "named"),
    [
        (WIDE_REPLICA, ["big needs 4 nvidia.com/gpu on one node", "the most free on any node is 2"]),
        (FIVE_GPUS, ["need 5 nvidia.com/gpu in total", "4 free"]),
    ],
)
def test_models_that_do_not_fit_stop_doctor_plan_and_install_before_helm(
    run: Run, models_file: Path, cluster: ClusterEnv, models: str, named: list[str]
) -> None:
    models_file.write_text(models)
    code, report, _ = doctor(run, "--offline")
    assert code == 2
    assert check(report, "GPU fit")["status"] == "fail"
    shown = json.dumps(report)
    assert all(text in shown for text in named), shown

    plan = run("plan")
    assert plan.exit_code == 2
    assert "do not fit the cluster's free GPUs" in plan.stderr
    assert all(text in plan.stderr for text in named), plan.stderr
    assert "Plan for release vllm" in plan.stdout  # the plan is still shown

    install = run("install", "--yes", "--no-api-key")
    assert install.exit_code == 2
    assert all(text in install.stderr for text in named), install.stderr
    assert "nothing was changed" in install.stderr
    # helm never ran: no release, not even the namespace.
    assert cluster.sandbox.get("Namespace", None, cluster.namespace) is None

    forced = run("plan", "--force")
    assert forced.exit_code == 1  # the plan has changes; the shortfall is only a warning
    assert "going ahead (--force)" in forced.stderr


def test_gated_model_without_access_is_reported_with_the_link(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = cluster.sandbox.hub
    cluster.sandbox.call(hub.add_token, TOKEN)
    models_file.write_text(GATED + PUBLIC)
    monkeypatch.setenv("VLLM_HF_TOKEN", TOKEN)
    code, report, _ = doctor(run, "--secret-backend", "kubernetes")
    assert code == 2
    llama = model(report, "llama3")
    assert llama["access"]["status"] == "fail"
    assert (
        f"request access at {cluster.sandbox.hub_url}/meta-llama/Llama-3.1-8B-Instruct"
        in llama["access"]["detail"]
    )
    assert model(report, "qwen")["access"]["status"] == "ok"
    assert TOKEN not in json.dumps(report)


def test_a_stored_token_with_access_passes(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    cluster.sandbox.call(cluster.sandbox.hub.add_token, GRANTED, ["meta-llama/Llama-3.1-8B-Instruct"])
    assert run("create-namespace").exit_code == 0
    assert run("set-hf-token", "--secret-backend", "kubernetes", input=GRANTED + "\n").exit_code == 0
    models_file.write_text(GATED)
    code, report, stderr = doctor(run, "--secret-backend", "kubernetes")
    assert code == 0, report
    llama = model(report, "llama3")
    assert llama["access"] == {"status": "ok", "detail": "gated, the token has access"}, stderr
    assert llama["memory"]["status"] == "ok"
    assert check(report, "hf token")["status"] == "ok"
    assert GRANTED not in json.dumps(report) + stderr


def test_an_unreachable_hub_is_a_warning(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    models_file.write_text(PUBLIC)
    code, report, _ = doctor(run, "--secret-backend", "kubernetes")
    assert check(report, "HuggingFace Hub")["status"] == "warn"
    assert model(report, "qwen")["access"]["status"] == "skip"
    assert code == 0


def test_memory_that_does_not_fit_names_the_fix(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_GPU_TYPE", "T4")
    models_file.write_text("- name: qwen7\n  modelURL: Qwen/Qwen2.5-7B-Instruct\n  requestGPU: 1\n")
    code, report, _ = doctor(run, "--secret-backend", "kubernetes")
    assert code == 2
    row = model(report, "qwen7")
    assert row["memory"]["status"] == "fail" and "does not fit T4" in row["memory"]["detail"]
    assert any("maxModelLen" in fix or "tensorParallelSize" in fix for fix in row["fixes"])


def test_rbac_denials_name_the_verb_and_resource(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(PUBLIC)
    cluster.sandbox.api.denied.update({("create", "roles"), ("get", "pods/log")})
    code, report, _ = doctor(run, "--offline", "--secret-backend", "kubernetes")
    assert code == 2
    permissions = check(report, "permissions")
    assert permissions["status"] == "fail"
    assert "create roles.rbac.authorization.k8s.io" in permissions["detail"]
    assert "get pods/log" in permissions["detail"]
    assert (
        f"kubectl auth can-i create roles.rbac.authorization.k8s.io -n {cluster.namespace}"
        in permissions["fix"]
    )


def test_restricted_pod_security_fails(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(PUBLIC)
    cluster.sandbox.call(
        cluster.sandbox.store.create,
        R["Namespace"],
        None,
        {
            "metadata": {
                "name": cluster.namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        },
    )
    code, report, _ = doctor(run, "--offline", "--secret-backend", "kubernetes")
    assert code == 2
    namespace = check(report, "namespace")
    assert namespace["status"] == "fail" and "'restricted'" in namespace["detail"]
    assert "pod-security.kubernetes.io/enforce=baseline" in namespace["fix"]


def test_vault_problems_fail_the_secret_checks(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    models_file.write_text(PUBLIC)
    vault = cluster.sandbox.vault
    cluster.sandbox.call(vault.add_token, "limited-token", ["secret/data/other/"])
    monkeypatch.setenv("VAULT_TOKEN", "limited-token")
    code, report, _ = doctor(run, "--offline")
    assert code == 2
    found = check(report, "vault")
    assert found["status"] == "fail"
    assert "secret/vllm/huggingface: create, read, update" in found["detail"]

    vault.sealed = True
    code, report, _ = doctor(run, "--offline")
    assert check(report, "vault")["status"] == "fail"
    assert "sealed" in check(report, "vault")["detail"]


def test_vault_capabilities_come_from_the_tokens_real_policy(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    models_file.write_text(PUBLIC)
    vault = cluster.sandbox.vault
    # A token that may only read both secrets: doctor names what it lacks on each.
    reader = vault.add_token(allowed_paths=["secret/data/vllm/"], capabilities=("read", "list"))
    monkeypatch.setenv("VAULT_TOKEN", reader)
    code, report, _ = doctor(run, "--offline")
    assert code == 2
    found = check(report, "vault")
    assert found["status"] == "fail"
    assert found["detail"].endswith(
        "lacks secret/vllm/huggingface: create, update; secret/vllm/api-key: create, update"
    ), found["detail"]
    assert reader not in json.dumps(report)
    # One that may write the HF token but only read the API key: only the API key lacks.
    hf_rules = 'path "secret/data/vllm/huggingface" { capabilities = ["create", "read", "update"] }'
    vault.add_policy("hf-writer", hf_rules)
    vault.add_policy("key-reader", 'path "secret/data/vllm/api-key" { capabilities = ["read"] }')
    mixed = vault.add_token(policies=["hf-writer", "key-reader"])
    monkeypatch.setenv("VAULT_TOKEN", mixed)
    code, report, _ = doctor(run, "--offline")
    assert check(report, "vault")["detail"].endswith("lacks secret/vllm/api-key: create, update")
    # A non-root token whose policy allows both: the check passes.
    writer = vault.add_token(allowed_paths=["secret/data/vllm/"], capabilities=("create", "read", "update"))
    monkeypatch.setenv("VAULT_TOKEN", writer)
    code, report, _ = doctor(run, "--offline")
    assert check(report, "vault")["status"] == "ok", check(report, "vault")


def test_no_cluster_still_checks_the_rest(
    run: Run, models_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    models_file.write_text("- name: Bad Name\n  modelURL: x\n")
    code, report, _ = doctor(run, "--offline")
    assert code == 2
    assert check(report, "context")["status"] == "fail"
    assert check(report, "models.yaml")["status"] == "fail"
    assert (
        "1" in check(report, "models.yaml")["detail"] or "problem" in check(report, "models.yaml")["detail"]
    )
    assert check(report, "image tag")["status"] == "warn"


# --- the same files on 2 nodes x 4 GPUs fit ------------------------------------------------


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    config = SandboxConfig(gpu_nodes=2, gpus_per_node=4, eso=False)
    with running_sandbox(tmp_path_factory.mktemp("wide"), config) as sb:
        yield sb


@pytest.mark.parametrize("models", [WIDE_REPLICA, FIVE_GPUS])
def test_the_same_models_fit_on_two_nodes_of_four(
    run: Run, models_file: Path, wide: Sandbox, monkeypatch: pytest.MonkeyPatch, models: str
) -> None:
    namespace = f"wide-{len(models)}"
    with release_on(wide, monkeypatch, namespace, MINI_CHART, "0.1.8"):
        models_file.write_text(models)
        code, report, _ = doctor(run, "--offline")
        assert check(report, "GPU fit")["status"] == "ok", report
        assert code == 0
        plan = run("plan")
        assert plan.exit_code == 1, plan.stderr  # changes to make, nothing refused
        install = run("install", "--yes", "--no-api-key")
        assert install.exit_code == 0, install.stderr


def test_a_rolling_update_without_room_for_its_surge_pod_is_a_warning(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    two = "- name: {0}\n  modelURL: Qwen/Qwen2.5-7B-Instruct\n  requestGPU: 2\n"
    models_file.write_text(two.format("left") + two.format("right"))
    assert run("install", "--yes", "--no-api-key").exit_code == 0  # each fills one node
    assert run("set-model", "left", "vllmConfig.maxModelLen=8192").exit_code == 0
    upgrade = run("upgrade", "--yes", "--dry-run")
    assert upgrade.exit_code == 0, upgrade.stderr
    assert "left" in upgrade.stderr and "Recreate" in upgrade.stderr
    code, report, _ = doctor(run, "--offline")
    assert code == 0  # a warning: the update would wait, not fail
    assert model(report, "left")["gpus"]["status"] == "warn"
    assert model(report, "right")["gpus"]["status"] == "ok"


def test_an_ingress_class_the_cluster_lacks_fails(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    models_file.write_text(PUBLIC)
    monkeypatch.setenv("VLLM_INGRESS_HOST", "llm.example.com")
    monkeypatch.setenv("VLLM_INGRESS_CLASS", "nginx")
    code, report, _ = doctor(run, "--offline", "--secret-backend", "kubernetes")
    assert code == 2
    exposure = check(report, "exposure")
    assert exposure["status"] == "fail" and "IngressClass nginx" in exposure["detail"]

    cluster.sandbox.call(
        cluster.sandbox.store.create, R["IngressClass"], None, {"metadata": {"name": "nginx"}}
    )
    try:
        code, report, _ = doctor(run, "--offline", "--secret-backend", "kubernetes")
        assert check(report, "exposure") == {
            "area": "cluster",
            "name": "exposure",
            "status": "ok",
            "detail": "Ingress http://llm.example.com/v1 (class nginx)",
            "fix": "",
        }
    finally:
        cluster.sandbox.call(cluster.sandbox.store.delete, R["IngressClass"], None, "nginx")


def test_a_startup_budget_below_the_models_size_is_a_warning(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    # Llama-3.1-70B (70.6B parameters on the Hub): 3600 s suggested; the entry allows 300 s.
    cluster.sandbox.call(cluster.sandbox.hub.add_token, GRANTED, ["meta-llama/Llama-3.1-70B-Instruct"])
    models_file.write_text(
        "- name: big\n  modelURL: meta-llama/Llama-3.1-70B-Instruct\n  requestGPU: 1\n"
        "  gated: true\n  maxStartupSeconds: 300\n"
    )
    _code, report, _ = doctor(run, "--secret-backend", "kubernetes", env={"VLLM_HF_TOKEN": GRANTED})
    budget = check(report, "startup budget big")
    assert budget["status"] == "warn"
    assert "70.6B parameters" in budget["detail"] and "300 s" in budget["detail"]
    assert budget["fix"] == "vllmctl set-model big maxStartupSeconds=3600"


def test_a_token_the_hub_rejects_is_said_once_and_public_models_are_still_checked(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(GATED + PUBLIC)
    unknown = "hf_" + "f" * 37  # never added to the Hub stand-in: 401 Invalid credentials
    code, report, stderr = doctor(run, "--secret-backend", "kubernetes", env={"VLLM_HF_TOKEN": unknown})
    assert code == 2
    assert check(report, "hf token at the Hub")["status"] == "fail"
    assert (
        model(report, "llama3")["access"]["detail"] == "gated, and the stored HuggingFace token is rejected"
    )
    assert model(report, "qwen")["access"] == {"status": "ok", "detail": "public"}
    assert model(report, "qwen")["memory"]["status"] == "ok"
    assert unknown not in json.dumps(report) + stderr


# --- the chart version, the repository's index and the router image ----------------------


def offline_doctor(run: Run, tmp_path: Path, *args: str, **env: str) -> dict[str, Any]:
    """doctor with no cluster (its checks of the chart need none)."""
    _, report, _ = doctor(run, *args, env={"KUBECONFIG": str(tmp_path / "missing"), **env})
    return report


def test_doctor_reports_the_chart_version_and_where_it_came_from(
    run: Run, models_file: Path, tmp_path: Path
) -> None:
    from tests.sandbox.fixtures import mini_chart_at

    models_file.write_text(PUBLIC)
    chart = mini_chart_at("0.1.11", tmp_path)
    local = check(offline_doctor(run, tmp_path, VLLM_CHART=str(chart)), "chart")
    assert local == {
        "area": "release",
        "name": "chart",
        "status": "ok",
        "detail": f"chart {chart} 0.1.11 (from {chart}/Chart.yaml)",
        "fix": "",
    }
    given = check(offline_doctor(run, tmp_path, "--offline", VLLM_CHART_VERSION="0.1.9"), "chart")
    assert given["detail"] == "chart vllm/vllm-stack 0.1.9 (from VLLM_CHART_VERSION)"
    default = check(offline_doctor(run, tmp_path, "--offline"), "chart")
    assert default["detail"].startswith("chart vllm/vllm-stack 0.1.12 (from default: the newest chart")
    clash = check(offline_doctor(run, tmp_path, VLLM_CHART=str(chart), VLLM_CHART_VERSION="0.1.9"), "chart")
    assert clash["status"] == "fail" and "VLLM_CHART_VERSION=0.1.9 disagrees" in clash["detail"]


def test_doctor_warns_about_a_router_on_latest(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(PUBLIC)
    pinned = check(offline_doctor(run, tmp_path, "--offline"), "router image")
    assert pinned["status"] == "ok"
    assert pinned["detail"] == "the router runs lmcache/lmstack-router:v0.1.12"
    latest = check(offline_doctor(run, tmp_path, "--offline", VLLM_ROUTER_TAG="latest"), "router image")
    assert latest["status"] == "warn"
    assert latest["detail"].startswith("the router image tag 'latest' is not pinned")
    assert "VLLM_ROUTER_TAG" in latest["fix"]


@pytest.fixture
def chart_repository(tmp_path: Path) -> Iterator[str]:
    """A helm repository's index (our own text, the format helm repo index writes) served
    over HTTP on 127.0.0.1, listing vllm-stack 0.1.8, 0.1.12 and 0.1.13."""
    import http.server
    import threading
    from functools import partial

    root = tmp_path / "repo"
    root.mkdir()
    entries = "".join(
        f"  - name: vllm-stack\n    version: {v}\n    urls: [vllm-stack-{v}.tgz]\n"
        for v in ("0.1.13", "0.1.12", "0.1.8")
    )
    (root / "index.yaml").write_text(f"apiVersion: v1\nentries:\n  vllm-stack:\n{entries}")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_doctor_says_when_the_repository_has_a_newer_chart(
    run: Run, models_file: Path, tmp_path: Path, chart_repository: str
) -> None:
    models_file.write_text(PUBLIC)
    old = offline_doctor(run, tmp_path, VLLM_CHART_REPO=chart_repository, VLLM_CHART_VERSION="0.1.8")
    assert check(old, "chart index") == {
        "area": "release",
        "name": "chart index",
        "status": "warn",
        "detail": f"a newer chart is in {chart_repository}: 0.1.12, 0.1.13 (target 0.1.8)",
        "fix": "VLLM_CHART_VERSION=0.1.12 vllmctl plan shows the upgrade and its hazards",
    }
    newest = check(offline_doctor(run, tmp_path, VLLM_CHART_REPO=chart_repository), "chart index")
    assert newest["status"] == "ok"
    assert newest["detail"] == (
        f"{chart_repository} has 0.1.13, newer than vllmctl is tested with (0.1.12); 0.1.12 stays the target"
    )
    # An index that cannot be read is skipped, not failed; --offline does not ask.
    gone = check(offline_doctor(run, tmp_path, VLLM_CHART_REPO="http://127.0.0.1:9"), "chart index")
    assert gone["status"] == "skip" and gone["detail"].startswith(
        "could not read http://127.0.0.1:9/index.yaml"
    )
    offline = offline_doctor(run, tmp_path, "--offline", VLLM_CHART_REPO=chart_repository)
    assert "chart index" not in [c["name"] for c in offline["checks"]]
