"""kvaware's LMCache controller and disaggregated prefill's roles (issue 17, sections 1 and
2): `kvCache.role` checked at its key, the controller's ports and the prefill/decode pair
rendered per chart version, passed by (the mini chart's mirror of) the chart to the router
and the engines, and installed into the sandbox."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv, mini_chart_at
from vllmctl.catalog.store import parse
from vllmctl.chart.inputs import API_KEY_SECRET
from vllmctl.core.errors import UsageError
from vllmctl.render.values import default_render_input, render
from vllmctl.settings import Settings

KV = (
    "- name: qwen\n  modelURL: org/qwen\n  gated: false\n  requestGPU: 2\n  requestMemory: 48Gi\n"
    "  vllmConfig:\n    tensorParallelSize: 2\n  kvCache:\n    cpuOffload: 20Gi\n"
)
PAIR = """\
- name: llama-prefill
  modelURL: org/llama
  gated: false
  requestMemory: 32Gi
  kvCache:
    role: prefill
- name: llama-decode
  modelURL: org/llama
  gated: false
  requestMemory: 32Gi
  kvCache:
    role: decode
"""


def rendered(models: str, api_key: bool = False, **env: str) -> Any:
    settings = Settings.resolve(
        {}, environ={"VLLM_MODEL_TAG": "v0.11.0", "VLLM_CHART_VERSION": "0.1.12", **env}
    )
    catalog = parse(Path("models.yaml"), models.encode())
    assert not catalog.problems, catalog.problems
    given = default_render_input(settings)
    if api_key:  # as install gives it when the Secret exists
        given = dataclasses.replace(given, api_key=API_KEY_SECRET)
    return render(catalog.models, given)


def refusal(models: str, api_key: bool = False, **env: str) -> str:
    with pytest.raises(UsageError) as caught:
        rendered(models, api_key, **env)
    return "\n".join([caught.value.message, *caught.value.details])


def problems(models: str) -> list[str]:
    return [str(p) for p in parse(Path("models.yaml"), models.encode()).problems]


# --- kvaware: the LMCache controller -----------------------------------------------------------


def test_kvaware_wires_the_controller_on_chart_0_1_12() -> None:
    values = rendered(KV, VLLM_ROUTING_LOGIC="kvaware").values
    config = values["servingEngineSpec"]["modelSpec"][0]["lmcacheConfig"]
    assert config == {
        "enabled": True,
        "cpuOffloadingBufferSize": "20",
        "enableController": True,
        "controllerPort": 9000,
        "workerPorts": "8001,8002",  # one per tensor-parallel rank
        "controllerReplyPort": 9001,
    }
    router = values["routerSpec"]
    assert (router["lmcacheControllerPort"], router["lmcacheControllerReplyPort"]) == (9000, 9001)
    assert router["extraPorts"] == [
        {"name": "lmcache-reply", "port": 9001, "targetPort": 9001, "protocol": "TCP"}
    ]


@pytest.mark.parametrize("chart", ["0.1.8", "0.1.10"])
def test_kvaware_before_0_1_11_has_no_reply_port(chart: str) -> None:
    values = rendered(KV, VLLM_ROUTING_LOGIC="kvaware", VLLM_CHART_VERSION=chart).values
    config = values["servingEngineSpec"]["modelSpec"][0]["lmcacheConfig"]
    assert "controllerReplyPort" not in config and config["controllerPort"] == 9000
    assert values["routerSpec"]["lmcacheControllerPort"] == 9000
    assert (
        "lmcacheControllerReplyPort" not in values["routerSpec"] and "extraPorts" not in values["routerSpec"]
    )


def test_without_kvaware_no_controller_keys() -> None:
    values = rendered(KV).values
    assert "enableController" not in values["servingEngineSpec"]["modelSpec"][0]["lmcacheConfig"]
    assert "lmcacheControllerPort" not in values["routerSpec"]


def test_kvaware_refuses_more_than_one_router() -> None:
    said = refusal(KV, VLLM_ROUTING_LOGIC="kvaware", VLLM_ROUTER_REPLICAS="2")
    assert said.startswith("VLLM_ROUTING_LOGIC=kvaware runs LMCache's controller inside the router")


# --- disaggregated prefill: roles -------------------------------------------------------------


def test_a_prefill_decode_pair_renders_the_chart_keys_and_router_labels() -> None:
    result = rendered(PAIR, VLLM_ROUTING_LOGIC="disaggregated_prefill")
    assert any("hostIPC and hostPID" in w for w in result.warnings)
    values = result.values
    prefill, decode = (m["lmcacheConfig"] for m in values["servingEngineSpec"]["modelSpec"])
    assert (prefill["kvRole"], prefill["nixlRole"], prefill["nixlPeerHost"]) == (
        "kv_producer",
        "sender",
        "vllm-llama-decode-engine-service",
    )
    assert (decode["kvRole"], decode["nixlRole"], decode["nixlPeerHost"]) == (
        "kv_consumer",
        "receiver",
        "0.0.0.0",
    )
    assert prefill["enablePD"] is True and "cpuOffloadingBufferSize" not in prefill
    assert values["routerSpec"]["extraArgs"] == [
        "--prefill-model-labels",
        "llama-prefill",
        "--decode-model-labels",
        "llama-decode",
    ]


def test_the_pair_with_an_api_key_adds_openai_api_key_on_0_1_12_and_is_refused_before() -> None:
    env = {"VLLM_ROUTING_LOGIC": "disaggregated_prefill"}
    router = rendered(PAIR, True, **env).values["routerSpec"]
    assert router["env"] == [
        {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "vllm-api-key", "key": "api-key"}}}
    ]
    said = refusal(PAIR, True, VLLM_CHART_VERSION="0.1.11", **env)
    assert "sends the prefill and decode requests with $OPENAI_API_KEY" in said
    assert "routerSpec.env is 0.1.12+" in said


@pytest.mark.parametrize(
    ("models", "env", "said"),
    [
        (
            KV,
            {"VLLM_ROUTING_LOGIC": "disaggregated_prefill"},
            "needs exactly one model with kvCache.role: prefill",
        ),
        (PAIR, {}, "kvCache.role on llama-prefill (prefill), llama-decode (decode) makes engines"),
        (
            PAIR.replace(
                "modelURL: org/llama\n  gated: false\n  requestMemory: 32Gi\n  kvCache:\n    role: decode",
                "modelURL: org/other\n  gated: false\n  requestMemory: 32Gi\n  kvCache:\n    role: decode",
            ),
            {"VLLM_ROUTING_LOGIC": "disaggregated_prefill"},
            "must serve the same modelURL",
        ),
        (
            PAIR.replace(
                "  requestMemory: 32Gi\n  kvCache:\n    role: prefill",
                "  requestMemory: 32Gi\n  replicaCount: 2\n  kvCache:\n    role: prefill",
            ),
            {"VLLM_ROUTING_LOGIC": "disaggregated_prefill"},
            "llama-prefill: VLLM_ROUTING_LOGIC=disaggregated_prefill needs replicaCount 1",
        ),
        (PAIR, {"VLLM_ROUTING_LOGIC": "disaggregated_prefill_orchestrated"}, "vLLM's own kv_transfer_params"),
    ],
)
def test_bad_pairs_are_refused_with_the_reason(models: str, env: dict[str, str], said: str) -> None:
    assert said in refusal(models, **env)


def test_role_values_are_checked_at_the_key() -> None:
    found = problems(PAIR.replace("role: prefill", "role: producer"))
    assert len(found) == 1 and "models.yaml:6:11" in found[0]
    assert "must be prefill or decode" in found[0]
    mixed = problems(PAIR.replace("    role: decode", "    role: decode\n    cpuOffload: 4Gi"))
    assert len(mixed) == 1 and "role and cpuOffload do not go together" in mixed[0]


# --- helm template against the mini chart, and a sandbox install ------------------------------


def objects(run: Run, models_file: Path, models: str, **env: str) -> dict[str, Any]:
    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    models_file.write_text(models)
    result = run("template", env={"VLLM_CHART": str(MINI_CHART), "VLLM_MODEL_TAG": "v0.10.1", **env})
    assert result.exit_code == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def container(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return found


def env_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container(obj).get("env") or []}


def test_helm_template_of_0_1_12_gives_router_and_engine_the_controller(
    run: Run, models_file: Path, tmp_path: Path
) -> None:
    chart = str(mini_chart_at("0.1.12", tmp_path))
    found = objects(
        run, models_file, KV, VLLM_CHART=chart, VLLM_CHART_VERSION="0.1.12", VLLM_ROUTING_LOGIC="kvaware"
    )
    args = container(found["Deployment/vllm-deployment-router"])["args"]
    assert args[args.index("--lmcache-controller-port") + 1] == "9000"
    assert args[args.index("--lmcache-controller-reply-port") + 1] == "9001"
    env = env_of(found["Deployment/vllm-qwen-deployment-vllm"])
    assert env["LMCACHE_ENABLE_CONTROLLER"] == "True"
    assert env["LMCACHE_CONTROLLER_PULL_URL"] == "vllm-router-service:9000"
    assert env["LMCACHE_CONTROLLER_REPLY_URL"] == "vllm-router-service:9001"
    assert env["LMCACHE_LMCACHE_WORKER_PORTS"] == "8001,8002"
    ports = {p["name"]: p["port"] for p in found["Service/vllm-router-service"]["spec"]["ports"]}
    assert (ports["lmcache-port"], ports["lmcache-reply"]) == (9000, 9001)


def test_helm_template_gives_the_router_the_pd_labels_and_the_engines_their_roles(
    run: Run, models_file: Path
) -> None:
    found = objects(run, models_file, PAIR, VLLM_ROUTING_LOGIC="disaggregated_prefill")
    args = container(found["Deployment/vllm-deployment-router"])["args"]
    assert args[args.index("--prefill-model-labels") + 1] == "llama-prefill"
    assert args[args.index("--decode-model-labels") + 1] == "llama-decode"
    prefill = found["Deployment/vllm-llama-prefill-deployment-vllm"]
    env = env_of(prefill)
    assert (env["LMCACHE_NIXL_ROLE"], env["LMCACHE_NIXL_RECEIVER_HOST"]) == (
        "sender",
        "vllm-llama-decode-engine-service",
    )
    assert env["LMCACHE_LOCAL_CPU"] == "False"
    assert (
        prefill["spec"]["template"]["spec"]["hostIPC"],
        prefill["spec"]["template"]["spec"]["hostPID"],
    ) == (
        True,
        True,
    )
    transfer = container(prefill)["command"]
    assert '"kv_role":"kv_producer"' in transfer[transfer.index("--kv-transfer-config") + 1]


def test_install_gives_the_router_and_engines_the_controller(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "VLLM_CHART": str(MINI_CHART),
        "VLLM_MODEL_TAG": "v0.10.1",
        "VLLM_ROUTING_LOGIC": "kvaware",
    }.items():
        monkeypatch.setenv(key, value)
    models_file.write_text(
        KV.replace("requestGPU: 2", "requestGPU: 1").replace("tensorParallelSize: 2", "tensorParallelSize: 1")
    )
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    engine = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-qwen-deployment-vllm")
    assert router is not None and engine is not None
    args = container(router)["args"]
    assert args[args.index("--lmcache-controller-port") + 1] == "9000"
    env = env_of(engine)
    assert env["LMCACHE_CONTROLLER_PULL_URL"] == "vllm-router-service:9000"
    assert env["LMCACHE_LMCACHE_WORKER_PORTS"] == "8001"
    assert "Router routing: kvaware" in run("status").stdout


# --- with the network policy on ----------------------------------------------------------------

POLICY = {"VLLM_NETWORK_POLICY": "true", "VLLM_NETWORK_POLICY_NAMESPACES": "apps"}


def policy_rules(models: str, **env: str) -> dict[str, list[Any]]:
    objects = rendered(models, **POLICY, **env).values["extraObjects"]
    return {o["metadata"]["name"]: o["spec"]["ingress"] for o in objects}


def test_kvaware_admits_the_controller_and_worker_traffic() -> None:
    rules = policy_rules(KV, VLLM_ROUTING_LOGIC="kvaware")
    engines, router = rules["vllm-engines-from-router"], rules["vllm-router-from-allowed"]
    workers = [r for r in engines if r.get("ports") and r["ports"][0]["port"] == 8001]
    assert [p["port"] for p in workers[0]["ports"]] == [8001, 8002]
    assert workers[0]["from"][0]["podSelector"] == engines[0]["from"][0]["podSelector"]  # the router's
    (from_engines,) = [r for r in router if r["ports"][0]["port"] == 9000]
    assert [p["port"] for p in from_engines["ports"]] == [9000, 9001]
    assert from_engines["from"] == [{"podSelector": {"matchLabels": {"helm-release-name": "vllm"}}}]


def test_a_prefill_decode_pair_admits_engine_to_engine_traffic() -> None:
    engines = policy_rules(PAIR, VLLM_ROUTING_LOGIC="disaggregated_prefill")["vllm-engines-from-router"]
    assert {"from": [{"podSelector": {"matchLabels": {"helm-release-name": "vllm"}}}]} in engines


# --- doctor and status ------------------------------------------------------------------------


def test_doctor_and_status_show_the_pair_and_the_controller() -> None:
    from vllmctl.core.findings import Report
    from vllmctl.features.routing_values import check_routing, routing_in_force

    for models, logic, said in (
        (PAIR, "disaggregated_prefill", "prefill llama-prefill -> decode llama-decode"),
        (KV, "kvaware", "LMCache controller on the router's port 9000"),
    ):
        settings = Settings.resolve({}, environ={"VLLM_CHART_VERSION": "0.1.12", "VLLM_ROUTING_LOGIC": logic})
        report = Report()
        check_routing(report, settings, parse(Path("models.yaml"), models.encode()).models, True)
        (check,) = report.checks
        assert check.status == "ok" and said in check.detail, check.detail
    args = [
        "--routing-logic",
        "disaggregated_prefill",
        "--prefill-model-labels",
        "p",
        "--decode-model-labels",
        "d",
    ]
    deployment = {"spec": {"template": {"spec": {"containers": [{"args": args}]}}}}
    assert routing_in_force(deployment) == {"routing": "disaggregated_prefill (prefill p, decode d)"}


# --- multi-node models (the chart's RayCluster path) ----------------------------------------

BIG = """\
- name: big
  modelURL: org/big
  gated: false
  requestGPU: 4
  requestMemory: 64Gi
  vllmConfig: {tensorParallelSize: 4, pipelineParallelSize: 2}
  kvCache:
"""


def test_a_role_on_a_multi_node_model_is_refused_at_the_key() -> None:
    (found,) = problems(BIG + "    role: prefill\n")
    assert "models.yaml:8:5" in found and "kvCache.role needs a one-node model" in found


def test_kvaware_refuses_a_multi_node_kv_cache_model() -> None:
    said = refusal(BIG + "    cpuOffload: 20Gi\n", VLLM_ROUTING_LOGIC="kvaware")
    assert "big run as the chart's RayCluster" in said and "<release>-<model>-service" in said


def test_install_of_the_pair_gives_the_router_its_labels_and_the_engines_their_roles(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "VLLM_CHART": str(MINI_CHART),
        "VLLM_MODEL_TAG": "v0.10.1",
        "VLLM_ROUTING_LOGIC": "disaggregated_prefill",
    }.items():
        monkeypatch.setenv(key, value)
    models_file.write_text(PAIR)
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    prefill = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-llama-prefill-deployment-vllm")
    decode = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-llama-decode-deployment-vllm")
    assert router is not None and prefill is not None and decode is not None
    args = container(router)["args"]
    assert args[args.index("--prefill-model-labels") + 1] == "llama-prefill"
    assert env_of(prefill)["LMCACHE_NIXL_RECEIVER_HOST"] == "vllm-llama-decode-engine-service"
    assert env_of(decode)["LMCACHE_NIXL_ROLE"] == "receiver"
    assert prefill["spec"]["template"]["spec"]["hostIPC"] is True
    assert "prefill llama-prefill, decode llama-decode" in run("status").stdout
