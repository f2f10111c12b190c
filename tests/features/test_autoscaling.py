"""Autoscaling (issue 8, item 5): models.yaml's `autoscaling` as the chart's KEDA ScaledObject.

Validated with positions, rendered into `modelSpec[].keda` (refused on chart 0.1.8), made
into a ScaledObject by the real helm on the mini chart, installed on a sandbox that serves
KEDA's CRD (its KEDA simulation makes the HPA and scales), and shown by `status`.
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
from tests.render.test_values import models
from tests.sandbox.fixtures import ClusterEnv, mini_chart_at, release_on, running_sandbox
from tests.sandbox.sandbox import Sandbox, SandboxConfig
from vllmctl.core.errors import UsageError

needs_helm = pytest.mark.skipif(shutil.which("helm") is None, reason="scripts/test puts helm on PATH")
SMALL = "- name: small\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n"
SCALED = SMALL + "  autoscaling: {minReplicas: 1, maxReplicas: 3}\n"
SO_API = "keda.sh/v1alpha1"
NEW = {"chart_version": "0.1.12"}


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("value", "column", "message"),
    [
        ("3", 16, "must be a mapping like {minReplicas: 1, maxReplicas: 4, metric: waiting}"),
        ("{minReplicas: 2}", 16, "give maxReplicas, the most replicas the autoscaler may run"),
        ("{minReplicas: 0, maxReplicas: 2}", 30, "minReplicas 0 (scale to zero) is not supported"),
        ("{minReplicas: 3, maxReplicas: 2}", 16, "minReplicas 3 is more than maxReplicas 2"),
        ("{maxReplicas: 0}", 30, "maxReplicas: must be 1 or more, not 0"),
        ("{maxReplicas: '4'}", 30, "must be a whole number, not the string '4'; write 4 without quotes"),
        ("{maxReplicas: 2, metric: queue}", 41, "must be one of waiting, running, kvCache, not the string"),
        ("{maxReplicas: 2, metric: kvcache}", 41, "write 'kvCache'"),
        ("{maxReplicas: 2, metric: running}", 16, "give a target for metric running"),
        ("{maxReplicas: 2, target: 0}", 41, "target: must be above 0, not 0"),
        ("{maxReplicas: 2, target: '5'}", 41, "write 5 without quotes"),
        ("{maxReplicas: 2, metric: kvCache, target: 80}", 16, "target 80 is more than 1: kvCache is a share"),
        ("{maxReplicas: 2, minreplicas: 1}", 33, "unknown key 'minreplicas'; did you mean 'minReplicas'?"),
    ],
)
def test_bad_values_are_named_with_their_position(value: str, column: int, message: str) -> None:
    (problem,) = problems(SMALL + f"  autoscaling: {value}\n")
    assert problem.startswith(f"models.yaml:3:{column}: models[0] (small).autoscaling"), problem
    assert message in problem, problem


@pytest.mark.parametrize(
    "value",
    [
        "{maxReplicas: 1}",
        "{minReplicas: 2, maxReplicas: 2}",
        "{minReplicas: 1, maxReplicas: 8, metric: waiting, target: 2.5}",
        "{maxReplicas: 4, metric: running, target: 48}",
        "{maxReplicas: 4, metric: kvCache}",
        "{maxReplicas: 4, metric: kvCache, target: 0.75}",
    ],
)
def test_good_values_pass(value: str) -> None:
    assert problems(SMALL + f"  autoscaling: {value}\n") == []


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("  keda: {enabled: true}\n", "small).keda", "give autoscaling or keda, not both"),
        ("  raySpec: {}\n", "small).autoscaling", "the chart makes no ScaledObject for a model with raySpec"),
        ("  enabled: false\n", "small).autoscaling", "the model is disabled (enabled: false)"),
    ],
)
def test_keys_that_contradict_autoscaling(extra: str, where: str, message: str) -> None:
    (problem,) = problems(SCALED + extra)
    assert where in problem and message in problem, problem


def test_list_models_shows_the_bounds(run: Run, models_file: Path) -> None:
    models_file.write_text(SCALED + "- name: fixed\n  modelURL: org/fixed\n  replicaCount: 2\n")
    rows = [line.split() for line in run("list-models").stdout.splitlines()]
    assert [(row[0], row[3]) for row in rows[1:]] == [("small", "1-3"), ("fixed", "2")]


# ------------------------------------------------------------------ values


def test_the_chart_gets_a_keda_trigger_on_the_models_own_metric() -> None:
    spec = spec_of(SCALED, namespace="prod", **NEW)
    assert spec["replicaCount"] == 1
    assert spec["keda"] == {
        "enabled": True,
        "minReplicaCount": 1,
        "maxReplicaCount": 3,
        "triggers": [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                    "query": 'sum(vllm:num_requests_waiting{model_name="small",namespace="prod"})',
                    "threshold": "5",
                },
            }
        ],
    }
    assert "keda" not in spec_of(SMALL, **NEW)


def test_each_metric_has_its_query_and_threshold() -> None:
    def trigger(value: str, **overrides: Any) -> dict[str, str]:
        spec = spec_of(SMALL + f"  autoscaling: {value}\n", **{**NEW, **overrides})
        metadata: dict[str, str] = spec["keda"]["triggers"][0]["metadata"]
        return metadata

    running = trigger("{maxReplicas: 4, metric: running, target: 48}")
    assert running["query"] == 'sum(vllm:num_requests_running{model_name="small",namespace="vllm"})'
    assert running["threshold"] == "48"
    kv = trigger("{maxReplicas: 4, metric: kvCache}", prometheus_url="https://prom.example.com/")
    assert kv["query"] == (
        'sum(vllm:kv_cache_usage_perc{model_name="small",namespace="vllm"}) or '
        'sum(vllm:gpu_cache_usage_perc{model_name="small",namespace="vllm"})'
    )
    assert (kv["threshold"], kv["serverAddress"]) == ("0.8", "https://prom.example.com/")
    assert trigger("{maxReplicas: 2, target: 2.5}")["threshold"] == "2.5"
    # The metric's model_name is the first served name, the entry's own when it gives one.
    own = SMALL + "  autoscaling: {maxReplicas: 2}\n  vllmConfig: {extraArgs: [--served-model-name, qwen]}\n"
    assert 'model_name="qwen"' in spec_of(own, **NEW)["keda"]["triggers"][0]["metadata"]["query"]


def test_chart_0_1_8_has_no_keda_and_is_refused() -> None:
    with pytest.raises(UsageError) as caught:
        rendered(SCALED)  # the tests' chart version, 0.1.8
    assert caught.value.message == (
        "small: autoscaling needs chart 0.1.9 or newer, the first with KEDA support "
        "(modelSpec[].keda); the chart version is 0.1.8. Raise the chart version, or remove "
        "autoscaling and set replicaCount."
    )


def test_what_render_warns_about() -> None:
    old = rendered(SCALED + "  replicaCount: 2\n", chart_version="0.1.10")
    assert old.values["servingEngineSpec"]["modelSpec"][0]["replicaCount"] == 1
    assert old.warnings[:2] == [
        "small: replicaCount 2 is not used: autoscaling runs 1 to 3 replicas (the chart gets "
        "minReplicas as replicaCount).",
        "small: chart 0.1.10 keeps `replicas` on the engine Deployment beside KEDA, so every upgrade "
        "sets the replica count back to minReplicas until KEDA scales it again (charts 0.1.11+ "
        "leave the count to KEDA).",
    ]
    assert rendered(SCALED, **NEW).warnings == []
    # Up to 3 replicas: a PodDisruptionBudget, as for replicaCount 3.
    assert spec_of(SCALED, **NEW)["pdb"] == {"enabled": True, "maxUnavailable": 1}


def test_a_bad_prometheus_address_names_the_variable() -> None:
    with pytest.raises(
        UsageError, match=r"VLLM_PROMETHEUS_URL='prometheus:9090' is not the http\(s\) address"
    ):
        rendered(SCALED, prometheus_url="prometheus:9090", **NEW)
    rendered(SMALL, prometheus_url="prometheus:9090", **NEW)  # unused without autoscaling


def test_turning_autoscaling_on_replaces_no_pod() -> None:
    from vllmctl.ops.deploy import rolling_models
    from vllmctl.render.plan import make_plan

    before = rendered(SMALL + "  replicaCount: 2\n", **NEW).values
    after = rendered(SCALED, **NEW)
    plan = make_plan("vllm", "vllm", before, after.values)
    prepared = SimpleNamespace(deployed=SimpleNamespace(values=before), plan=plan, rendered=after)
    assert rolling_models(prepared) == {}  # type: ignore[arg-type]


def test_the_gpu_fit_needs_min_replicas_and_warns_below_max() -> None:
    from vllmctl.ops.gpufit import NodeGpus, check_fit, needs_from_models

    text = SMALL + "  requestGPU: 2\n  autoscaling: {minReplicas: 2, maxReplicas: 4}\n"
    (need,) = needs_from_models(models(text))
    assert (need.replicas, need.max_replicas) == (2, 4)
    nodes = [NodeGpus(f"gpu-node-{i}", {"nvidia.com/gpu": 2}) for i in (1, 2, 3)]
    report = check_fit(nodes, [need])
    assert report.ok and len(report.placements["small"]) == 2
    assert [w.message for w in report.warnings] == [
        "small: autoscaling may run up to 4 replicas of 2 nvidia.com/gpu, but only 3 fit on the free "
        "GPUs now; replicas beyond that would stay Pending. Lower maxReplicas, or add GPUs."
    ]
    assert not check_fit(nodes[:1], [need]).ok  # minReplicas must fit
    assert check_fit([*nodes, NodeGpus("gpu-node-4", {"nvidia.com/gpu": 2})], [need]).warnings == []


# ------------------------------------------------------------------ helm template

TEMPLATE_ENV = {"VLLM_MODEL_TAG": "v0.11.0", "VLLM_RELEASE": "rel", "VLLM_NAMESPACE": "ns"}


def template(run: Run, version: str, tmp_path: Path) -> Any:
    chart = mini_chart_at(version, tmp_path)
    return run("template", env={**TEMPLATE_ENV, "VLLM_CHART": str(chart), "VLLM_CHART_VERSION": version})


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(text) if o}


@needs_helm
def test_helm_template_makes_the_scaled_object(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(SCALED + "- name: fixed\n  modelURL: org/fixed\n  replicaCount: 2\n")
    result = template(run, "0.1.12", tmp_path)
    assert result.exit_code == 0, result.stderr
    found = objects(result.stdout)
    scaled = found[("ScaledObject", "rel-small-scaledobject")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["metadata"]["labels"]["model"] == "small"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "rel-small-deployment-vllm",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 3)
    assert spec["triggers"][0]["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{model_name="small",namespace="ns"})'
    )
    # 0.1.11+: KEDA owns the count; a model without autoscaling keeps its replicas.
    assert "replicas" not in found[("Deployment", "rel-small-deployment-vllm")]["spec"]
    assert found[("Deployment", "rel-fixed-deployment-vllm")]["spec"]["replicas"] == 2
    assert ("ScaledObject", "rel-fixed-scaledobject") not in found


@needs_helm
def test_helm_template_on_older_charts(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(SCALED)
    result = template(run, "0.1.10", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "chart 0.1.10 keeps `replicas` on the engine Deployment beside KEDA" in result.stderr
    found = objects(result.stdout)
    assert ("ScaledObject", "rel-small-scaledobject") in found
    assert found[("Deployment", "rel-small-deployment-vllm")]["spec"]["replicas"] == 1
    refused = template(run, "0.1.8", tmp_path)
    assert refused.exit_code == 2
    assert "error: small: autoscaling needs chart 0.1.9 or newer" in refused.stderr
    assert refused.stdout == ""


# ------------------------------------------------------------------ on a cluster with KEDA


@pytest.fixture(scope="module")
def keda_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path_factory.mktemp("keda"), SandboxConfig(keda=True, eso=False)) as sb:
        yield sb


@pytest.fixture
def on_keda(
    keda_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The environment of a 0.1.12 release on the sandbox that serves ScaledObjects."""
    namespace = f"keda-{request.node.name.replace('_', '-')[:40].strip('-')}"
    with release_on(keda_sandbox, monkeypatch, namespace, mini_chart_at("0.1.12", tmp_path), "0.1.12"):
        yield namespace


ON_CLUSTER = """\
- name: small
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  requestGPU: 0
  requestCPU: 1
  requestMemory: 1Gi
  autoscaling: {minReplicas: 1, maxReplicas: 3}
"""


def doctor_check(run: Run) -> dict[str, Any]:
    result = run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes")
    return next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "autoscaling")  # type: ignore[no-any-return]


def autoscaled(run: Run) -> dict[str, Any]:
    result = run("status", "-o", "json")
    (model,) = json.loads(result.stdout)["models"]
    scaling: dict[str, Any] = model["autoscaling"]
    return scaling


def hpa_sees(sb: Sandbox, namespace: str, replicas: int) -> None:
    """Wait (a few controller ticks) until KEDA's HPA counts `replicas` current replicas."""
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        hpa = sb.get("HorizontalPodAutoscaler", namespace, "keda-hpa-vllm-small-scaledobject")
        if ((hpa or {}).get("status") or {}).get("currentReplicas") == replicas:
            return
        time.sleep(0.05)
    raise AssertionError(f"the HPA never counted {replicas} replicas: {hpa}")


def reconcile(sb: Sandbox) -> None:
    """One pass of the controllers (and the KEDA simulation) now, not at the next tick."""
    assert sb.cluster is not None
    sb.call(sb.cluster.reconcile)


def test_install_makes_the_scaled_object_and_status_shows_it(
    run: Run, models_file: Path, keda_sandbox: Sandbox, on_keda: str
) -> None:
    sb, ns = keda_sandbox, on_keda
    models_file.write_text(ON_CLUSTER)
    check = doctor_check(run)
    assert (check["status"], check["name"]) == ("warn", "autoscaling")
    assert check["detail"] == (
        "the cluster serves ScaledObjects (keda.sh/v1alpha1); KEDA queries Prometheus at "
        "http://prometheus-operated.monitoring.svc:9090 (the default), but there is no Service "
        "prometheus-operated in namespace monitoring: small would not scale"
    )
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    scaled = sb.get("ScaledObject", ns, "vllm-small-scaledobject", api_version=SO_API)
    assert scaled is not None and scaled["spec"]["maxReplicaCount"] == 3
    assert sb.get("HorizontalPodAutoscaler", ns, "keda-hpa-vllm-small-scaledobject") is not None

    status = autoscaled(run)
    assert {k: status[k] for k in ("scaled_object", "min_replicas", "max_replicas", "current", "ready")} == {
        "scaled_object": "vllm-small-scaledobject",
        "min_replicas": 1,
        "max_replicas": 3,
        "current": 1,
        "ready": True,
    }
    assert (status["hpa"], status["target"], status["problem"]) == (
        "keda-hpa-vllm-small-scaledobject",
        "5",
        None,
    )

    # 12 requests waiting, 5 per replica: KEDA's HPA runs 3.
    sb.keda.metrics[(ns, "vllm-small-scaledobject")] = 12.0
    hpa_sees(sb, ns, 3)
    deployment = sb.get("Deployment", ns, "vllm-small-deployment-vllm")
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    table = run("status").stdout  # exit 1 while the new replicas start
    header = table.index("AUTOSCALED")
    assert table[header:].splitlines()[:2] == [
        "AUTOSCALED   CURRENT   MIN   MAX   DESIRED   METRIC/REPLICA   TARGET   KEDA",
        "small        3         1     3     3         4                5        Ready, active",
    ]
    assert autoscaled(run)["value"] == "4"  # 12 over 3 replicas

    # Autoscaling taken away: helm deletes the ScaledObject, the HPA goes with it.
    models_file.write_text(ON_CLUSTER.replace("  autoscaling: {minReplicas: 1, maxReplicas: 3}\n", ""))
    upgraded = run("upgrade", "--yes", "--no-api-key")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert sb.get("ScaledObject", ns, "vllm-small-scaledobject", api_version=SO_API) is None
    reconcile(sb)
    assert sb.get("HorizontalPodAutoscaler", ns, "keda-hpa-vllm-small-scaledobject") is None


def test_without_keda_doctor_fails_and_install_refuses(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.12", tmp_path)))
    monkeypatch.setenv("VLLM_CHART_VERSION", "0.1.12")
    models_file.write_text(ON_CLUSTER)
    check = doctor_check(run)
    assert check["status"] == "fail"
    assert check["detail"] == (
        "small autoscales, but the cluster does not serve ScaledObjects (keda.sh/v1alpha1): install "
        "and upgrade would fail when helm creates them"
    )
    refused = run("install", "--yes", "--no-api-key")
    assert refused.exit_code == 2
    assert (
        "error: models.yaml asks for autoscaling, but the cluster does not serve ScaledObjects"
        in refused.stderr
    )
    assert cluster.sandbox.get("Namespace", None, cluster.namespace) is None
