"""Router scaling (issue 17, section 1): the router's own HPA (routerSpec.autoscaling, the
chart's hpa-router.yaml) and its CPU limit, as settings and a vllmctl.yaml mapping; checked,
rendered, made by the chart, judged by doctor, scaled in the sandbox and shown by status."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv, mini_chart_at
from tests.sandbox.hpa import METRICS_RESOURCES
from tests.sandbox.sandbox import Sandbox
from vllmctl.catalog.store import parse
from vllmctl.core.errors import CatalogError, UsageError
from vllmctl.core.findings import Report
from vllmctl.features.router_scaling_values import check_metrics_api, check_router_scaling, hpa_summary
from vllmctl.render.values import default_render_input, packaged_templates, render
from vllmctl.settings import Settings

SMALL = (
    "- name: small\n  modelURL: org/small\n  gated: false\n"
    "  requestGPU: 0\n  requestCPU: 1\n  requestMemory: 1Gi\n"
)
CHART_ENV = {"VLLM_CHART": str(MINI_CHART), "VLLM_MODEL_TAG": "v0.10.1"}  # 0.1.8
ON = {"VLLM_ROUTER_AUTOSCALING": "true"}


def rendered(templates: Path | None = None, **env: str) -> Any:
    settings = Settings.resolve(
        {}, environ={"VLLM_MODEL_TAG": "v0.11.0", "VLLM_CHART_VERSION": "0.1.12", **env}
    )
    catalog = parse(Path("models.yaml"), SMALL.encode())
    return render(catalog.models, default_render_input(settings, templates_dir=templates))


def router(**env: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered(**env).values["routerSpec"]
    return spec


def refusal(**env: str) -> str:
    with pytest.raises(UsageError) as caught:
        rendered(**env)
    return "\n".join([caught.value.message, *caught.value.details])


# --- good values ------------------------------------------------------------------------------


def test_off_by_default_and_the_render_is_unchanged() -> None:
    spec = router()
    assert "autoscaling" not in spec
    assert spec["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "768Mi"},
    }


def test_on_with_the_chart_defaults() -> None:
    assert router(**ON)["autoscaling"] == {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 3,
        "targetCPUUtilizationPercentage": 80,
    }


def test_bounds_target_and_cpu_limit_as_given() -> None:
    spec = router(
        **ON,
        VLLM_ROUTER_MIN_REPLICAS="2",
        VLLM_ROUTER_MAX_REPLICAS="6",
        VLLM_ROUTER_TARGET_CPU_UTILIZATION="150",
        VLLM_ROUTER_REQUEST_CPU="500m",
        VLLM_ROUTER_LIMIT_CPU="1",
    )
    assert spec["autoscaling"] == {
        "enabled": True,
        "minReplicas": 2,
        "maxReplicas": 6,
        "targetCPUUtilizationPercentage": 150,
    }
    assert spec["resources"]["limits"] == {"memory": "768Mi", "cpu": "1"}
    assert spec["resources"]["requests"]["cpu"] == "500m"


def test_a_cpu_limit_alone_needs_no_autoscaling() -> None:
    spec = router(VLLM_ROUTER_LIMIT_CPU="2")
    assert spec["resources"]["limits"]["cpu"] == "2" and "autoscaling" not in spec


def test_old_charts_warn_that_upgrades_reset_the_router_to_min_replicas() -> None:
    old = rendered(VLLM_CHART_VERSION="0.1.10", VLLM_ROUTER_MIN_REPLICAS="2", **ON).warnings
    assert any(w.startswith("chart 0.1.10 writes the router HPA's minReplicas (2) as the") for w in old)
    assert not [w for w in rendered(**ON).warnings if "HPA" in w]


# --- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {**ON, "VLLM_ROUTER_MIN_REPLICAS": "0"},
            "VLLM_ROUTER_MIN_REPLICAS='0' is not a whole number of router replicas, 1 or more "
            "(Kubernetes refuses an HPA with 0).",
        ),
        (
            {**ON, "VLLM_ROUTER_MAX_REPLICAS": "many"},
            "VLLM_ROUTER_MAX_REPLICAS='many' is not a whole number of router replicas",
        ),
        (
            {**ON, "VLLM_ROUTER_TARGET_CPU_UTILIZATION": "0"},
            "VLLM_ROUTER_TARGET_CPU_UTILIZATION='0' is not a share of the router's CPU request in "
            "percent, 1 or more; write e.g. 80.",
        ),
        (
            {**ON, "VLLM_ROUTER_MIN_REPLICAS": "5"},
            "the router's HPA would have minReplicas above maxReplicas (VLLM_ROUTER_MIN_REPLICAS=5, "
            "maxReplicas 3 (default)); raise VLLM_ROUTER_MAX_REPLICAS or lower VLLM_ROUTER_MIN_REPLICAS.",
        ),
        (
            {"VLLM_ROUTER_MAX_REPLICAS": "4"},
            "VLLM_ROUTER_MAX_REPLICAS is set but VLLM_ROUTER_AUTOSCALING is off: only the router's HPA "
            "reads it.",
        ),
        (
            {**ON, "VLLM_ROUTER_ENABLED": "false"},
            "VLLM_ROUTER_AUTOSCALING=true scales the router, but VLLM_ROUTER_ENABLED is false: the chart "
            "would still make the HPA (hpa-router.yaml checks only autoscaling.enabled)",
        ),
        (
            {**ON, "VLLM_ROUTER_REPLICAS": "2"},
            "VLLM_ROUTER_REPLICAS=2 has no effect while the router autoscales: its HPA owns the replica "
            "count",
        ),
        (
            {**ON, "VLLM_ROUTER_REQUEST_CPU": ""},
            "VLLM_ROUTER_AUTOSCALING=true targets CPU utilization, a share of the router's CPU request, "
            "and VLLM_ROUTER_REQUEST_CPU is empty",
        ),
        (
            {**ON, "VLLM_ROUTER_REQUEST_CPU": "lots"},
            "VLLM_ROUTER_REQUEST_CPU='lots' is not a CPU quantity above 0; write e.g. 500m.",
        ),
        (
            {"VLLM_ROUTER_LIMIT_CPU": "two"},
            "VLLM_ROUTER_LIMIT_CPU='two' is not a CPU quantity above 0; write e.g. 2 or 1500m.",
        ),
        (
            {"VLLM_ROUTER_LIMIT_CPU": "50m"},
            "VLLM_ROUTER_LIMIT_CPU=50m is below VLLM_ROUTER_REQUEST_CPU=100m: Kubernetes refuses a limit "
            "below the request.",
        ),
        (
            {**ON, "VLLM_ROUTER_LIMIT_CPU": "150m", "VLLM_ROUTER_TARGET_CPU_UTILIZATION": "200"},
            "VLLM_ROUTER_TARGET_CPU_UTILIZATION=200 can never be reached: the CPU limit "
            "(VLLM_ROUTER_LIMIT_CPU=150m) caps the router at 150% of its request (100m)",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_setting(env: dict[str, str], said: str) -> None:
    assert said in refusal(**env)


def test_a_bad_boolean_names_its_variable() -> None:
    with pytest.raises(UsageError, match=r"VLLM_ROUTER_AUTOSCALING='maybe' is not a boolean"):
        rendered(VLLM_ROUTER_AUTOSCALING="maybe")


def test_every_problem_is_reported_at_once() -> None:
    text = refusal(**ON, VLLM_ROUTER_MIN_REPLICAS="0", VLLM_ROUTER_REPLICAS="3", VLLM_ROUTER_LIMIT_CPU="x")
    assert text.startswith("3 problems with the router's scaling settings:")


def test_a_copied_template_that_drops_the_hpa_is_caught(tmp_path: Path) -> None:
    old = (packaged_templates() / "values.yaml.j2").read_text()
    (tmp_path / "values.yaml.j2").write_text(
        old.replace("  autoscaling: {{ router.autoscaling | yaml }}", "")
    )
    with pytest.raises(CatalogError, match=r"routerSpec\.autoscaling\.enabled"):
        rendered(templates=tmp_path, **ON)


# --- vllmctl.yaml per environment ------------------------------------------------------------


def test_an_environment_turns_the_hpa_on(run: Run, models_file: Path) -> None:
    models_file.write_text(SMALL)
    models_file.with_name("vllmctl.yaml").write_text(
        "environments:\n  prod:\n    routerAutoscaling:\n      minReplicas: 2\n      maxReplicas: 5\n"
        "  dev:\n    routerAutoscaling: {}\n"
    )
    env = {"VLLM_CHART_VERSION": "0.1.12", "VLLM_MODEL_TAG": "v0.10.1"}
    prod = run("--env", "prod", "render", env=env)
    assert prod.exit_code == 0, prod.stderr
    assert yaml.safe_load(prod.stdout)["routerSpec"]["autoscaling"] == {
        "enabled": True,
        "minReplicas": 2,
        "maxReplicas": 5,
        "targetCPUUtilizationPercentage": 80,
    }
    dev = run("--env", "dev", "render", env=env)
    assert yaml.safe_load(dev.stdout)["routerSpec"]["autoscaling"]["maxReplicas"] == 3
    # a flag or variable still wins over the file
    flagged = run("--env", "prod", "render", env={**env, "VLLM_ROUTER_MAX_REPLICAS": "7"})
    assert yaml.safe_load(flagged.stdout)["routerSpec"]["autoscaling"]["maxReplicas"] == 7


@pytest.mark.parametrize(
    ("written", "said"),
    [
        (
            "    routerAutoscaling:\n      minReplicas: 0\n",
            "vllmctl.yaml:4:20: environments.prod.routerAutoscaling.minReplicas: must be 1 or more, not 0",
        ),
        (
            "    routerAutoscaling:\n      minReplicas: 4\n      maxReplicas: 2\n",
            "vllmctl.yaml:5:20: environments.prod.routerAutoscaling.maxReplicas: maxReplicas 2 is below "
            "minReplicas 4; raise maxReplicas or lower minReplicas",
        ),
        (
            "    routerAutoscaling:\n      targetCPU: 70\n",
            "vllmctl.yaml:4:7: environments.prod.routerAutoscaling.targetCPU: unknown key 'targetCPU'",
        ),
        (
            "    routerAutoscaling: true\n",
            "vllmctl.yaml:3:24: environments.prod.routerAutoscaling: must be a mapping",
        ),
    ],
)
def test_mistakes_in_vllmctl_yaml_name_the_file_line_and_column(
    run: Run, models_file: Path, written: str, said: str
) -> None:
    models_file.write_text(SMALL)
    models_file.with_name("vllmctl.yaml").write_text("environments:\n  prod:\n" + written)
    result = run("--env", "prod", "render", env={"VLLM_CHART_VERSION": "0.1.12", "VLLM_MODEL_TAG": "v0.10.1"})
    assert result.exit_code == 2
    assert said in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cross_check_names_the_environment_key(run: Run, models_file: Path) -> None:
    models_file.write_text(SMALL)
    models_file.with_name("vllmctl.yaml").write_text(
        "environments:\n  prod:\n    routerAutoscaling:\n      minReplicas: 4\n"
    )
    result = run("--env", "prod", "render", env={"VLLM_CHART_VERSION": "0.1.12", "VLLM_MODEL_TAG": "v0.10.1"})
    assert result.exit_code == 2
    assert (
        "error: the router's HPA would have minReplicas above maxReplicas (routerAutoscaling.minReplicas: 4 "
        "(of environment prod in vllmctl.yaml), maxReplicas 3 (default))"
    ) in result.stderr
    off = run(
        "--env",
        "prod",
        "render",
        env={"VLLM_CHART_VERSION": "0.1.12", "VLLM_MODEL_TAG": "v0.10.1", "VLLM_ROUTER_ENABLED": "false"},
    )
    assert "routerAutoscaling of environment prod in vllmctl.yaml scales the router, but" in off.stderr


# --- what the chart makes (helm template on the mini chart) ------------------------------------


def objects(run: Run, models_file: Path, **env: str) -> list[dict[str, Any]]:
    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    models_file.write_text(SMALL)
    result = run("template", env={**CHART_ENV, **env})
    assert result.exit_code == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def the(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


HPA = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm-deployment-router"},
    "minReplicas": 2,
    "maxReplicas": 5,
    "metrics": [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ],
}
SCALING = {
    **ON,
    "VLLM_ROUTER_MIN_REPLICAS": "2",
    "VLLM_ROUTER_MAX_REPLICAS": "5",
    "VLLM_ROUTER_TARGET_CPU_UTILIZATION": "70",
    "VLLM_ROUTER_LIMIT_CPU": "1",
}


def test_helm_template_of_chart_0_1_8_makes_the_hpa_and_writes_min_replicas(
    run: Run, models_file: Path
) -> None:
    docs = objects(run, models_file, **SCALING)
    hpa = the(docs, "HorizontalPodAutoscaler", "vllm-router-hpa")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"] == HPA
    router = the(docs, "Deployment", "vllm-deployment-router")
    assert router["spec"]["replicas"] == 2  # minReplicas, before 0.1.11
    assert router["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "1",
        "memory": "768Mi",
    }


def test_helm_template_of_chart_0_1_12_leaves_replicas_to_the_hpa(
    run: Run, models_file: Path, tmp_path: Path
) -> None:
    chart = {"VLLM_CHART": str(mini_chart_at("0.1.12", tmp_path)), "VLLM_CHART_VERSION": "0.1.12"}
    docs = objects(run, models_file, **SCALING, **chart)
    assert the(docs, "HorizontalPodAutoscaler", "vllm-router-hpa")["spec"] == HPA
    assert "replicas" not in the(docs, "Deployment", "vllm-deployment-router")["spec"]
    plain = objects(run, models_file, **chart)
    assert not [d for d in plain if d["kind"] == "HorizontalPodAutoscaler"]
    assert the(plain, "Deployment", "vllm-deployment-router")["spec"]["replicas"] == 1


# --- doctor ------------------------------------------------------------------------------------


def doctor_rows(**env: str) -> list[tuple[str, str, str]]:
    settings = Settings.resolve({}, environ={"VLLM_CHART_VERSION": "0.1.12", **env})
    report = Report()
    check_router_scaling(report, settings, True)
    return [(c.name, c.status, c.detail) for c in report.checks]


def test_doctor_says_nothing_when_the_router_does_not_autoscale() -> None:
    assert doctor_rows() == []


def test_doctor_shows_the_hpa_or_the_mistake() -> None:
    assert doctor_rows(**ON) == [
        ("router scaling", "ok", "the router's HPA keeps 1-3 replicas at 80% of its 100m CPU request")
    ]
    ((name, status, detail),) = doctor_rows(**ON, VLLM_ROUTER_REPLICAS="2")
    assert (name, status) == ("router scaling", "fail")
    assert detail.startswith("VLLM_ROUTER_REPLICAS=2 has no effect while the router autoscales")
    ((_, old, _),) = doctor_rows(**ON, VLLM_CHART_VERSION="0.1.9")
    assert old == "warn"


class FakeKube:
    def __init__(self, versions: list[str]) -> None:
        self.versions = versions

    def served_versions(self, group: str, plural: str) -> list[str]:
        assert (group, plural) == ("metrics.k8s.io", "pods")
        return self.versions


def test_doctor_warns_without_the_metrics_api() -> None:
    report = Report()
    check_metrics_api(report, FakeKube([]))
    check_metrics_api(report, FakeKube(["v1beta1"]))
    missing, served = report.checks
    assert (missing.status, missing.area) == ("warn", "cluster")
    assert missing.detail.startswith("the cluster does not serve the resource metrics API (metrics.k8s.io)")
    assert "metrics-server" in missing.fix
    assert (served.status, served.detail) == (
        "ok",
        "metrics.k8s.io/v1beta1 is served: the router's HPA can read CPU",
    )


def test_the_hpa_summary_reads_spec_and_status() -> None:
    hpa = {
        "spec": {**HPA},
        "status": {
            "currentReplicas": 3,
            "desiredReplicas": 4,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 95}}}
            ],
        },
    }
    assert hpa_summary(hpa) == "3 replicas (desired 4, 2-5), CPU 95% of 70% target"


# --- on the sandbox: install, scale, status ----------------------------------------------------


@pytest.fixture
def metrics_server(cluster: ClusterEnv) -> Iterator[Sandbox]:
    """The session's sandbox serving metrics.k8s.io for this test only."""
    sb = cluster.sandbox
    sb.call(setattr, sb.api, "aggregated", list(METRICS_RESOURCES))
    try:
        yield sb
    finally:
        sb.call(setattr, sb.api, "aggregated", [])
        sb.call(sb.hpa.utilization.clear)


def wait_for(what: str, probe: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def router_replicas(sb: Sandbox, namespace: str) -> int:
    deployment = sb.get("Deployment", namespace, "vllm-deployment-router")
    return int((deployment or {}).get("spec", {}).get("replicas", -1))


def test_install_makes_the_hpa_which_scales_the_router_and_status_shows_it(
    run: Run, models_file: Path, cluster: ClusterEnv, metrics_server: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, ns = metrics_server, cluster.namespace
    for key, value in {**SCALING, "VLLM_ROUTER_MIN_REPLICAS": "1", "VLLM_ROUTER_MAX_REPLICAS": "4"}.items():
        monkeypatch.setenv(key, value)
    models_file.write_text(SMALL)
    doctor = json.loads(run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes").stdout)
    rows = {c["name"]: (c["status"], c["detail"]) for c in doctor["checks"]}
    assert rows["metrics API"] == ("ok", "metrics.k8s.io/v1beta1 is served: the router's HPA can read CPU")
    assert rows["router scaling"][1] == "the router's HPA keeps 1-4 replicas at 70% of its 100m CPU request"

    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    hpa = sb.get("HorizontalPodAutoscaler", ns, "vllm-router-hpa")
    assert hpa is not None and hpa["spec"]["maxReplicas"] == 4
    assert router_replicas(sb, ns) == 1

    # Load: the router pods use 200% of their CPU request against a 70% target.
    sb.call(sb.hpa.utilization.__setitem__, (ns, "vllm-deployment-router"), 200)
    wait_for("the HPA scales the router to its maximum", lambda: router_replicas(sb, ns) == 4)
    wait_for(
        "the HPA counts 4 running routers",
        lambda: (
            (sb.get("HorizontalPodAutoscaler", ns, "vllm-router-hpa") or {})
            .get("status", {})
            .get("currentReplicas")
            == 4
        ),
    )
    status = run("status", "-o", "json")
    assert json.loads(status.stdout)["router"]["features"]["autoscaling"] == (
        "4 replicas (desired 4, 1-4), CPU 200% of 70% target"
    )
    assert "Router autoscaling: 4 replicas (desired 4, 1-4), CPU 200% of 70% target" in run("status").stdout

    # The load goes: back to the minimum.
    sb.call(sb.hpa.utilization.__setitem__, (ns, "vllm-deployment-router"), 5)
    wait_for("the HPA scales the router back to one", lambda: router_replicas(sb, ns) == 1)


def test_without_the_metrics_api_doctor_warns_and_status_says_why_nothing_scales(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, ns = cluster.sandbox, cluster.namespace
    for key, value in ON.items():
        monkeypatch.setenv(key, value)
    models_file.write_text(SMALL)
    doctor = json.loads(run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes").stdout)
    row = next(c for c in doctor["checks"] if c["name"] == "metrics API")
    assert row["status"] == "warn" and "will not scale it" in row["detail"]
    assert run("install", "--yes", "--no-api-key").exit_code == 0
    sb.call(sb.hpa.utilization.__setitem__, (ns, "vllm-deployment-router"), 300)
    try:
        wait_for(
            "the HPA reports that it cannot read CPU",
            lambda: "FailedGetResourceMetric" in run("status").stdout,
        )
        assert router_replicas(sb, ns) == 1
        text = json.loads(run("status", "-o", "json").stdout)["router"]["features"]["autoscaling"]
        assert text.startswith("1 replicas (desired 1, 1-3), CPU unknown of 80% target; ScalingActive False")
        assert "pods.metrics.k8s.io" in text
    finally:
        sb.call(sb.hpa.utilization.clear)
