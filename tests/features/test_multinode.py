"""Multi-node serving (issue 17, section 4): `vllmConfig.pipelineParallelSize` as the chart's
KubeRay RayCluster.

Validated with positions, rendered into `raySpec` + `replicaCount` (the workers), gated by
chart version, made into a RayCluster by the real helm on the mini chart, installed on a
sandbox that serves KubeRay's CRD (its KubeRay simulation makes the head and worker pods),
refused before helm without the CRD, read back by status, checked by doctor; the GPU fit
places its pods as a gang and the estimate splits the weights across the stages.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.features.test_engine_fields import problems, rendered, spec_of
from tests.sandbox.fixtures import ClusterEnv, mini_chart_at, release_on, running_sandbox
from tests.sandbox.kuberay import exec_argv
from tests.sandbox.sandbox import Sandbox, SandboxConfig
from vllmctl.core.errors import UsageError
from vllmctl.ops.estimate import GiB
from vllmctl.ops.gpufit import NodeGpus, ReplicaNeed, check_fit
from vllmctl.ops.memory import Gpu, estimate_entry

needs_helm = pytest.mark.skipif(shutil.which("helm") is None, reason="scripts/test puts helm on PATH")
RC_API = "ray.io/v1"
BIG = """\
- name: big
  modelURL: meta-llama/Llama-3.1-70B-Instruct
  requestGPU: 4
  requestCPU: 8
  requestMemory: 64Gi
  vllmConfig: {tensorParallelSize: 4, pipelineParallelSize: 2, maxModelLen: 8192}
"""
NEW = {"chart_version": "0.1.12"}


def at(text: str, needle: str) -> str:
    """models.yaml:LINE:COLUMN of the first `needle` in `text`."""
    before = text[: text.index(needle)]
    return f"models.yaml:{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("old", "new", "needle", "where", "message"),
    [
        ("pipelineParallelSize: 2", "pipelineParallelSize: 1", "1, max", "vllmConfig.pipelineParallelSize",
         "must be 2 or more, not 1"),
        ("pipelineParallelSize: 2", "pipelineParallelSize: '2'", "'2'", "vllmConfig.pipelineParallelSize",
         "write 2 without quotes"),
        ("  requestGPU: 4\n", "  requestGPU: 8\n", "8", "requestGPU",
         "requestGPU is the GPUs of each node and must equal tensorParallelSize. Set requestGPU: 4"),
        ("  requestCPU: 8\n", "  requestCPU: 8\n  replicaCount: 2\n", "2\n",
         "replicaCount",
         "so it has one replica; vllmctl writes the chart's replicaCount (the worker count, 1)"),
        ("  requestCPU: 8\n", "  requestCPU: 8\n  autoscaling: {maxReplicas: 2}\n", "{maxReplicas",
         "autoscaling",
         "the chart makes no ScaledObject for a RayCluster"),
        ("  requestCPU: 8\n", "  requestCPU: 8\n  nodeName: gpu-node-1\n", "gpu-node-1", "nodeName",
         "would put the head and every worker on that one node"),
        ("  requestCPU: 8\n", "  requestCPU: 8\n  pdb: true\n", "true", "pdb",
         "selects labels the RayCluster's pods do not carry"),
        ("maxModelLen: 8192}", "maxModelLen: 8192, enablePrefixCaching: false}", "{tensor", "vllmConfig",
         "never turns prefix caching off; remove enablePrefixCaching and add '--no-enable-prefix-caching'"),
        ("maxModelLen: 8192}", "maxModelLen: 8192, runner: pooling}", "{tensor", "vllmConfig",
         "does not pass vllmConfig.runner; write '--runner' and its value in extraArgs"),
        ("  requestCPU: 8\n", "  requestCPU: 8\n  raySpec: {enabled: false}\n", "{enabled",
         "raySpec",
         "but raySpec.enabled is false"),
        ("  requestCPU: 8\n", "  requestCPU: 8\n  raySpec: {headNode: {requestGPU: 2}}\n", "{headNode",
         "raySpec",
         "vllmctl writes raySpec.headNode.requestGPU from the entry's own requestGPU"),
    ],
)  # fmt: skip
def test_bad_values_are_named_with_their_position(
    old: str, new: str, needle: str, where: str, message: str
) -> None:
    text = BIG.replace(old, new)
    (problem,) = problems(text)
    assert problem.startswith(f"{at(text, needle)}: models[0] (big).{where}"), problem
    assert message in problem, problem


def test_tensor_parallel_must_still_divide_the_default_gpu() -> None:
    text = BIG.replace("  requestGPU: 4\n", "")
    (problem,) = problems(text)
    assert "vllmConfig.tensorParallelSize: 4 does not divide requestGPU 1 (the default)" in problem


@pytest.mark.parametrize(
    "text",
    [
        BIG,
        BIG.replace("pipelineParallelSize: 2", "pipelineParallelSize: 4"),
        BIG.replace("  requestCPU: 8\n", "  requestCPU: 8\n  replicaCount: 1\n"),
        BIG.replace(
            "  requestCPU: 8\n", "  requestCPU: 8\n  raySpec: {headNode: {initContainer: {name: i}}}\n"
        ),
        "- name: two\n  modelURL: org/two\n  vllmConfig: {pipelineParallelSize: 2}\n",  # 1 GPU per node
    ],
)
def test_good_values_pass(text: str) -> None:
    assert problems(text) == []


# ------------------------------------------------------------------ values


def test_the_chart_gets_a_head_and_one_worker_per_further_stage() -> None:
    spec = spec_of(BIG.replace("pipelineParallelSize: 2", "pipelineParallelSize: 3"), "big", **NEW)
    assert spec["replicaCount"] == 2  # the workers: the head is the first of 3 nodes
    assert spec["requestGPU"] == 4
    assert spec["raySpec"] == {
        "enabled": True,
        "headNode": {"requestCPU": 8, "requestMemory": "64Gi", "requestGPU": 4},
    }
    config = spec["vllmConfig"]
    assert (config["pipelineParallelSize"], config["tensorParallelSize"]) == ("3", "4")
    assert config["v1"] == "1"  # else the chart's Ray path sets VLLM_USE_V1=0
    assert spec["pvcAccessMode"] == ["ReadWriteMany"]  # every node mounts the model cache


def test_the_entrys_own_access_mode_wins() -> None:
    text = BIG.replace("  requestCPU: 8\n", "  requestCPU: 8\n  pvcAccessMode: [ReadWriteOnce]\n")
    assert spec_of(text, "big", **NEW)["pvcAccessMode"] == ["ReadWriteOnce"]


def test_a_one_node_model_is_unchanged() -> None:
    spec = spec_of("- name: small\n  modelURL: org/small\n", **NEW)
    assert "raySpec" not in spec and "v1" not in spec["vllmConfig"]


def test_the_gpu_type_and_limits_reach_the_head_too() -> None:
    text = BIG.replace("  requestCPU: 8\n", "  requestCPU: 8\n  accelerator: amd\n  limitMemory: 80Gi\n")
    head = spec_of(text, "big", **NEW)["raySpec"]["headNode"]
    assert head["requestGPUType"] == "amd.com/gpu" and head["limitMemory"] == "80Gi"


def test_a_hand_written_ray_spec_adds_to_vllmctls() -> None:
    text = BIG.replace(
        "  requestCPU: 8\n", "  requestCPU: 8\n  raySpec: {headNode: {initContainer: {name: i}}}\n"
    )
    ray = spec_of(text, "big", **NEW)["raySpec"]
    assert ray == {
        "enabled": True,
        "headNode": {
            "initContainer": {"name": "i"},
            "requestCPU": 8,
            "requestMemory": "64Gi",
            "requestGPU": 4,
        },
    }


def test_resources_reach_the_ray_nodes_only_from_chart_0_1_12() -> None:
    block = "  resources: {requests: {cpu: '8', memory: 64Gi, nvidia.com/gpu: '4'}}\n"
    text = BIG.replace("  requestCPU: 8\n", "  requestCPU: 8\n" + block)
    head = spec_of(text, "big", **NEW)["raySpec"]["headNode"]
    assert head["resources"] == {"requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "4"}}
    with pytest.raises(UsageError) as refused:
        rendered(text, chart_version="0.1.11")
    assert "big: chart 0.1.11's RayCluster ignores `resources`" in refused.value.message


def test_validate_reports_the_version_gate_at_the_key(run: Run, models_file: Path) -> None:
    block = "  resources: {requests: {cpu: '8'}}\n"
    text = BIG.replace("  requestCPU: 8\n", "  requestCPU: 8\n" + block)
    models_file.write_text(text)
    result = run("validate", env={"VLLM_CHART_VERSION": "0.1.10"})
    assert result.exit_code == 2
    assert (
        f"{at(text, 'resources:')}: models[0] (big).resources: chart 0.1.10's RayCluster ignores"
        in result.stderr
    )


def test_a_hand_written_ray_spec_needs_enabled_from_chart_0_1_11() -> None:
    text = "- name: r\n  modelURL: org/r\n  raySpec: {headNode: {requestCPU: 1, requestMemory: 1Gi}}\n"
    assert spec_of(text, "r", chart_version="0.1.10")["raySpec"]["headNode"]["requestCPU"] == 1
    with pytest.raises(UsageError) as refused:
        rendered(text, chart_version="0.1.11")
    assert "chart 0.1.11 makes a RayCluster only when raySpec.enabled is true" in refused.value.message


# ------------------------------------------------------------------ helm template (mini chart)

TEMPLATE_ENV = {"VLLM_MODEL_TAG": "v0.11.0", "VLLM_RELEASE": "rel", "VLLM_NAMESPACE": "ns"}


def template(run: Run, version: str, tmp_path: Path) -> Any:
    chart = mini_chart_at(version, tmp_path)
    return run("template", env={**TEMPLATE_ENV, "VLLM_CHART": str(chart), "VLLM_CHART_VERSION": version})


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(text) if o}


@needs_helm
@pytest.mark.parametrize("version", ["0.1.8", "0.1.12"])
def test_helm_template_makes_the_ray_cluster(
    run: Run, models_file: Path, tmp_path: Path, version: str
) -> None:
    models_file.write_text(BIG + "- name: small\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n")
    result = template(run, version, tmp_path)
    assert result.exit_code == 0, result.stderr
    found = objects(result.stdout)
    assert ("Deployment", "rel-big-deployment-vllm") not in found
    assert ("Deployment", "rel-small-deployment-vllm") in found
    rc = found[("RayCluster", "rel-big-raycluster")]
    assert rc["apiVersion"] == "ray.io/v1"
    assert rc["metadata"]["labels"]["model"] == "big"
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["name"] == "vllm-ray-head" and head["image"] == "vllm/vllm-openai:v0.11.0"
    env = {e["name"]: e.get("value") for e in head["env"]}
    assert env["EXPECTED_NODES"] == "2" and env["VLLM_USE_V1"] == "1"
    assert head["resources"]["requests"]["nvidia.com/gpu"] == "4"
    (workers,) = rc["spec"]["workerGroupSpecs"]
    assert (workers["groupName"], workers["replicas"]) == ("ray", 1)
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    script = found[("ConfigMap", "big-vllm-start-script")]["data"]["vllm-entrypoint.sh"]
    argv = " ".join(exec_argv(script))  # as bash builds it from the chart's ARGS array
    assert "--distributed-executor-backend ray" in argv
    assert "--tensor-parallel-size 4 --pipeline-parallel-size 2" in argv
    assert "--served-model-name big" in argv


@needs_helm
def test_helm_template_refuses_resources_on_an_old_chart(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(BIG + "  resources: {requests: {cpu: '8'}}\n")
    refused = template(run, "0.1.11", tmp_path)
    assert refused.exit_code == 2
    assert "big: chart 0.1.11's RayCluster ignores `resources`" in refused.stderr
    assert refused.stdout == ""


# ------------------------------------------------------------------ GPU fit and estimate


def test_the_gpu_fit_places_the_stages_as_a_gang_and_names_the_nodes() -> None:
    entry = {**yaml.safe_load(BIG)[0], "replicaCount": 1}
    need = ReplicaNeed.from_model(entry)
    assert (need.replicas, dict(need.per_replica), need.gang, need.skipped) == (
        2,
        {"nvidia.com/gpu": 4},
        True,
        None,
    )
    nodes = [NodeGpus("gpu-node-1", {"nvidia.com/gpu": 4}), NodeGpus("gpu-node-2", {"nvidia.com/gpu": 4})]
    report = check_fit(nodes, [need], rolling={"big": 1})
    assert report.ok and sorted(report.placements["big"]) == ["gpu-node-1", "gpu-node-2"]
    assert report.warnings == []  # a RayCluster has no rolling surge
    assert report.gangs == {
        "big": "placed as a gang, 2 pods (the Ray head and 1 worker) of 4 nvidia.com/gpu all at once: it "
        "would take gpu-node-1 (1 pod), gpu-node-2 (1 pod)."
    }
    assert report.lines()[1:3] == ["  big: 1 on gpu-node-1, 1 on gpu-node-2", f"    {report.gangs['big']}"]
    short = check_fit(nodes[:1], [need])
    assert not short.ok
    assert "big needs 8 nvidia.com/gpu for its 2 replicas, but the nodes have 4 free" in str(
        short.shortfalls[0]
    )
    assert short.gangs["big"].endswith("all at once (a RayCluster starts only whole).")


def test_a_disabled_multi_node_model_needs_no_gpu() -> None:
    entry = {**yaml.safe_load(BIG)[0], "enabled": False}
    assert ReplicaNeed.from_model(entry).replicas == 0


LLAMA_70B = {
    "hidden_size": 8192,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "intermediate_size": 28672,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}


def test_the_estimate_splits_the_weights_across_the_stages() -> None:
    facts = SimpleNamespace(
        parameters=70_553_706_496, parameter_dtypes={"BF16": 70_553_706_496}, config=LLAMA_70B
    )
    gpu = Gpu("H100 80GB", 80 * GiB, True, "test")
    entry = yaml.safe_load(BIG)[0]
    one_node = estimate_entry(
        {**entry, "vllmConfig": {"tensorParallelSize": 4, "maxModelLen": 8192}}, facts, gpu
    )
    staged = estimate_entry(entry, facts, gpu)
    assert staged.weights == -(-one_node.weights // 2)  # half the weights on each stage's GPUs
    assert staged.kv_bytes_per_token * 2 == one_node.kv_bytes_per_token  # 40 of 80 layers' KV cache
    assert staged.lines()[0] == (
        "pipeline: one of 2 stages (pipelineParallelSize), each in its own Ray pod: 40 of 80 layers and "
        "about 35,276,853,248 of 70,553,706,496 parameters per stage"
    )
    assert staged.as_json()["pipelineStage"].startswith("one of 2 stages")
    assert "pipelineStage" not in one_node.as_json()


# ------------------------------------------------------------------ on a cluster with KubeRay


@pytest.fixture(scope="module")
def ray_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    config = SandboxConfig(kuberay=True, eso=False, gpu_nodes=2, gpus_per_node=2)
    with running_sandbox(tmp_path_factory.mktemp("kuberay"), config) as sb:
        yield sb


@pytest.fixture
def on_ray(
    ray_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The environment of a 0.1.12 release on the sandbox that serves RayClusters."""
    namespace = f"ray-{request.node.name.replace('_', '-')[:40].strip('-')}"
    with release_on(ray_sandbox, monkeypatch, namespace, mini_chart_at("0.1.12", tmp_path), "0.1.12"):
        yield namespace


ON_CLUSTER = """\
- name: big
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  requestGPU: 2
  requestCPU: 1
  requestMemory: 1Gi
  vllmConfig: {tensorParallelSize: 2, pipelineParallelSize: 2}
"""


def doctor_check(run: Run) -> dict[str, Any]:
    result = run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes")
    return next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "multi-node")  # type: ignore[no-any-return]


def wait_for(condition: Any, what: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_install_makes_the_ray_cluster_and_its_pods_and_status_reads_them(
    run: Run, models_file: Path, ray_sandbox: Sandbox, on_ray: str
) -> None:
    sb, ns = ray_sandbox, on_ray
    models_file.write_text(ON_CLUSTER)
    check = doctor_check(run)
    assert (check["status"], check["detail"]) == (
        "ok",
        "the cluster serves RayClusters (ray.io/v1) (big: 2 nodes x 2 GPUs)",
    )
    fit = json.loads(run("plan", "-o", "json").stdout)["gpuFit"]
    assert sorted(fit["placements"]["big"]) == ["gpu-node-1", "gpu-node-2"]
    assert fit["gangs"]["big"].startswith(
        "placed as a gang, 2 pods (the Ray head and 1 worker) of 2 nvidia.com/gpu"
    )
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    rc = sb.get("RayCluster", ns, "vllm-big-raycluster", api_version=RC_API)
    assert rc is not None and rc["spec"]["workerGroupSpecs"][0]["replicas"] == 1
    assert sb.get("Deployment", ns, "vllm-big-deployment-vllm") is None

    def pods() -> list[dict[str, Any]]:
        return [
            p
            for p in sb.list("Pod", ns)
            if p["metadata"]["labels"].get("ray.io/cluster") == "vllm-big-raycluster"
        ]

    def state() -> str | None:
        found = sb.get("RayCluster", ns, "vllm-big-raycluster", api_version=RC_API) or {}
        return (found.get("status") or {}).get("state")  # type: ignore[no-any-return]

    wait_for(lambda: state() == "ready", "the RayCluster is ready")
    kinds = sorted(p["metadata"]["labels"]["ray.io/node-type"] for p in pods())
    assert kinds == ["head", "worker"]
    assert sorted(p["spec"]["nodeName"] for p in pods()) == ["gpu-node-1", "gpu-node-2"]  # 2 GPUs each

    status = run("status", "-o", "json")
    assert status.exit_code == 0, status.stdout + status.stderr
    (model,) = json.loads(status.stdout)["models"]
    assert (model["deployed"], model["ready"], model["deployment"]) == (True, True, "vllm-big-raycluster")
    ray = model["ray"]
    assert {k: ray[k] for k in ("raycluster", "state", "head_ready", "workers_desired", "workers_ready")} == {
        "raycluster": "vllm-big-raycluster",
        "state": "ready",
        "head_ready": True,
        "workers_desired": 1,
        "workers_ready": 1,
    }
    assert ray["head_pod"].startswith("vllm-big-raycluster-head-") and ray["problem"] is None
    # The row counts the RayCluster's GPUs (head 2 + 1 worker x 2) and shows the head's tag.
    head_image = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert (model["gpus_per_replica"], model["gpu_resource"]) == (4, "nvidia.com/gpu")
    assert model["image"] == head_image and model["tag"] == head_image.rsplit(":", 1)[1]
    assert model["phases"] == {"Running": 2}
    # The head serves what the chart's start script (its ARGS array) names: --served-model-name.
    assert model["served_names"] == ["Qwen/Qwen2.5-1.5B-Instruct", "big"] and model["serving"] is True
    answer = run("test-completions", "big", "hello ray", "--no-stream")
    assert answer.exit_code == 0, answer.stderr
    table = run("status").stdout
    row = next(line.split() for line in table.splitlines() if line.startswith("big "))
    assert row[4] == "4" and row[5:7] == ["2", "Running"] and head_image.endswith(":" + row[-3])
    header = table.index("RAY ")
    assert table[header:].splitlines()[:2] == [
        "RAY   RAYCLUSTER            STATE   HEAD    WORKERS",
        "big   vllm-big-raycluster   ready   ready   1/1",
    ]

    # A worker lost: KubeRay makes another, which (a fault) never gets Ready; status says so.
    from tests.sandbox.kube.controllers import PodFault, R

    assert sb.cluster is not None
    (worker,) = [p for p in pods() if p["metadata"]["labels"]["ray.io/node-type"] == "worker"]
    sb.call(sb.cluster.faults.append, PodFault("ray.io/node-type=worker", "unready"))
    try:
        sb.call(sb.store.delete, R["Pod"], ns, worker["metadata"]["name"])
        wait_for(lambda: len(pods()) == 2, "KubeRay made a new worker")
        lost = run("status", "-o", "json")
        assert lost.exit_code == 1
        report = json.loads(lost.stdout)
        assert report["models"][0]["ray"]["problem"] == "0 of 1 workers ready"
        assert "model big: ray: 0 of 1 workers ready" in report["problems"]
    finally:
        sb.call(sb.cluster.faults.clear)

    # Uninstalled: helm deletes the RayCluster, its pods go with it.
    assert run("uninstall", "--yes").exit_code == 0
    assert sb.get("RayCluster", ns, "vllm-big-raycluster", api_version=RC_API) is None
    wait_for(lambda: not pods(), "the Ray pods are gone")


def test_without_kuberay_doctor_fails_and_install_refuses(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.12", tmp_path)))
    monkeypatch.setenv("VLLM_CHART_VERSION", "0.1.12")
    models_file.write_text(ON_CLUSTER)
    check = doctor_check(run)
    assert check["status"] == "fail"
    assert check["detail"] == (
        "big runs as a RayCluster, but the cluster does not serve RayClusters (ray.io/v1): install and "
        "upgrade would fail when helm creates it"
    )
    refused = run("install", "--yes", "--no-api-key")
    assert refused.exit_code == 2
    assert (
        "error: big runs as a RayCluster, but the cluster does not serve RayClusters (ray.io/v1), so helm "
        "could not create it; nothing was changed." in refused.stderr
    )
    assert cluster.sandbox.get("Namespace", None, cluster.namespace) is None


def test_the_network_policy_lets_the_ray_pods_talk_to_each_other() -> None:
    from tests.features.test_network_policy import ENGINES, ON, policies

    rules = policies(BIG, **ON)[ENGINES]["spec"]["ingress"]
    assert {"from": [{"podSelector": {"matchLabels": {"helm-release-name": "vllm"}}}]} in rules


def test_a_chart_before_0_1_8_is_refused_at_vllm_config(run: Run, models_file: Path) -> None:
    models_file.write_text(BIG)
    result = run("validate", env={"VLLM_CHART_VERSION": "0.1.7"})
    assert result.exit_code == 2
    assert (
        f"{at(BIG, 'vllmConfig:')}: models[0] (big).vllmConfig: pipelineParallelSize is rendered as the "
        "chart's RayCluster, which vllmctl knows from chart 0.1.8; the chart version is 0.1.7."
    ) in result.stderr


# ------------------------------------------------------ operating it: rotate-api-key, logs


def ray_pods_of(sb: Sandbox, ns: str) -> list[dict[str, Any]]:
    return [
        p
        for p in sb.list("Pod", ns)
        if p["metadata"]["labels"].get("ray.io/cluster") == "vllm-big-raycluster"
        and not p["metadata"].get("deletionTimestamp")
    ]


def ray_ready(sb: Sandbox, ns: str) -> bool:
    found = sb.get("RayCluster", ns, "vllm-big-raycluster", api_version=RC_API) or {}
    return (found.get("status") or {}).get("state") == "ready" and len(ray_pods_of(sb, ns)) == 2


def started_keys(sb: Sandbox, ns: str) -> dict[str, str | None]:
    """Each Ray pod's VLLM_API_KEY as its container started with it (the sandbox's
    kubelet reads the Secret at container start, as a real one does)."""
    assert sb.cluster is not None
    started = sb.call(lambda: {uid: dict(env) for uid, env in sb.cluster.started_env.items()})  # type: ignore[union-attr]
    keys = {}
    for pod in ray_pods_of(sb, ns):
        containers = started.get(pod["metadata"]["uid"]) or {}
        (env,) = containers.values() or [{}]
        keys[pod["metadata"]["name"]] = env.get("VLLM_API_KEY")
    return keys


def test_rotating_the_api_key_restarts_the_ray_pods_and_logs_follow_the_head(
    run: Run, models_file: Path, ray_sandbox: Sandbox, on_ray: str
) -> None:
    sb, ns = ray_sandbox, on_ray
    models_file.write_text(ON_CLUSTER)
    installed = run("install", "--yes", "--api-key")
    assert installed.exit_code == 0, installed.stderr
    wait_for(lambda: ray_ready(sb, ns), "the RayCluster is ready")
    old_key = run("get-api-key").stdout.strip()
    wait_for(lambda: len(started_keys(sb, ns)) == 2 and None not in started_keys(sb, ns).values(), "started")
    before = started_keys(sb, ns)
    assert set(before.values()) == {old_key}
    head = next(n for n in before if "-head-" in n)
    worker = next(n for n in before if "-worker-" in n)

    # logs: the head's container by default, a worker with --worker N, every node with --all-nodes
    shown = run("logs", "big", "--no-follow", "--tail", "-1")
    assert shown.exit_code == 0, shown.stderr
    assert {line.split("]")[0] for line in shown.stdout.splitlines()} == {f"[{head}"}
    assert "Uvicorn running" in shown.stdout
    one = run("logs", "big", "--no-follow", "--worker", "1", "-c", "vllm-ray-worker")
    assert one.exit_code == 0, one.stderr
    assert {line.split("]")[0] for line in one.stdout.splitlines()} == {f"[{worker}"}
    both = run("logs", "big", "--no-follow", "--all-nodes")
    assert {line.split("]")[0] for line in both.stdout.splitlines()} == {f"[{head}", f"[{worker}"}
    beyond = run("logs", "big", "--no-follow", "--worker", "2")
    assert beyond.exit_code == 2
    assert f"--worker 2: model big has 1 worker pod now ({worker}); --worker takes 1 to 1." in beyond.stderr
    clash = run("logs", "big", "--worker", "1", "--all-nodes")
    assert clash.exit_code == 2 and "give one of them" in clash.stderr

    # rotate-api-key: every Ray pod replaced together, the new ones started with the new key
    rotated = run("rotate-api-key", "--yes", "--timeout", "60")
    assert rotated.exit_code == 0, rotated.stderr
    assert (
        "Rotated the API key; restarted vllm-deployment-router, "
        "RayCluster vllm-big-raycluster (head and 1 worker)."
    ) in rotated.stderr
    new_key = run("get-api-key").stdout.strip()
    assert new_key != old_key
    after = started_keys(sb, ns)
    assert len(after) == 2 and not set(after) & set(before)  # new pods, none of the old
    assert set(after.values()) == {new_key}  # where the stand-in checks it: the key each started with
    assert ray_ready(sb, ns)
    status = json.loads(run("status", "-o", "json").stdout)
    assert status["models"][0]["ready"] is True

    # logs follow the new head by default
    new_head = next(n for n in after if "-head-" in n)
    shown = run("logs", "big", "--no-follow", "--tail", "1")
    assert [line.split("]")[0] for line in shown.stdout.splitlines()] == [f"[{new_head}"]


def test_a_ray_restart_that_does_not_finish_says_what_waits(
    run: Run, models_file: Path, ray_sandbox: Sandbox, on_ray: str
) -> None:
    from tests.sandbox.kube.controllers import PodFault

    sb, ns = ray_sandbox, on_ray
    models_file.write_text(ON_CLUSTER)
    assert run("install", "--yes", "--api-key").exit_code == 0
    wait_for(lambda: ray_ready(sb, ns), "the RayCluster is ready")
    assert sb.cluster is not None
    sb.call(sb.cluster.faults.append, PodFault("ray.io/node-type=worker", "unready"))
    try:
        rotated = run("rotate-api-key", "--yes", "--timeout", "4")
    finally:
        sb.call(sb.cluster.faults.clear)
    assert rotated.exit_code == 3, rotated.stderr
    err = rotated.stderr
    assert "the API key was rotated (stored and synced" in err
    assert (
        "the restart of RayClusters vllm-big-raycluster (head ready, 0/1 new workers ready) "
        "did not finish within 4 s"
    ) in err
    assert "serves again once KubeRay's new head and workers are Ready" in err
    assert "waiting: vllm-big-raycluster-ray-worker-" in err


def test_without_a_ray_cluster_the_ray_log_flags_are_refused(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text("- name: small\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n  requestGPU: 1\n")
    assert run("install", "--yes", "--no-api-key").exit_code == 0
    refused = run("logs", "small", "--no-follow", "--worker", "1")
    assert refused.exit_code == 2
    assert (
        "--worker is for a multi-node model (a RayCluster); model small runs as a Deployment"
        in refused.stderr
    )
    assert run("logs", "small", "--no-follow").exit_code == 0  # no RayCluster CRD served: no 404 trouble


def test_restart_replaces_the_head_and_every_worker_together(
    run: Run, models_file: Path, ray_sandbox: Sandbox, on_ray: str
) -> None:
    sb, ns = ray_sandbox, on_ray
    models_file.write_text(ON_CLUSTER)
    assert run("install", "--yes", "--no-api-key").exit_code == 0
    wait_for(lambda: ray_ready(sb, ns), "the RayCluster is ready")
    before = {p["metadata"]["uid"] for p in ray_pods_of(sb, ns)}
    restarted = run("restart", "big", "--yes", "--timeout", "60")
    assert restarted.exit_code == 0, restarted.stderr
    assert "Restarted RayCluster vllm-big-raycluster (head and 1 worker)." in restarted.stderr
    after = ray_pods_of(sb, ns)
    assert len(after) == 2 and not {p["metadata"]["uid"] for p in after} & before
    assert ray_ready(sb, ns)
    assert (
        sb.get("Deployment", ns, "vllm-deployment-router")["spec"]["template"]["metadata"]
        .get(  # type: ignore[index]
            "annotations", {}
        )
        .get("kubectl.kubernetes.io/restartedAt")
        is None
    )  # only the model asked for


def test_logs_without_permission_to_list_rayclusters_still_shows_the_other_models() -> None:
    from vllmctl.cluster.logs import ray_models
    from vllmctl.core.errors import ExternalError

    class Refusing:
        def list(self, api: str, plural: str, namespace: str, **_: Any) -> list[Any]:
            raise ExternalError(
                "Kubernetes refused to list rayclusters.ray.io in namespace ns (403 Forbidden: RBAC)"
            )

    said: list[str] = []
    assert ray_models(Refusing(), "ns", "vllm", said.append) == {}
    assert said == [
        "multi-node models are not looked for: Kubernetes refused to list rayclusters.ray.io in namespace ns "
        "(403 Forbidden: RBAC)"
    ]
