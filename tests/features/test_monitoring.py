"""Monitoring (issue 8, item 8): ServiceMonitors for engines and router and the chart's
Grafana dashboards, as settings; refused on charts without them, made by the chart, and
doctor's word on whether the cluster serves ServiceMonitors."""

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
from tests.sandbox.fixtures import ClusterEnv, mini_chart_at, release_on, running_sandbox
from tests.sandbox.sandbox import Sandbox, SandboxConfig
from vllmctl.catalog.store import parse
from vllmctl.core.errors import UsageError
from vllmctl.ops.deploy import rolling_models
from vllmctl.render.plan import make_plan
from vllmctl.render.values import default_render_input, render
from vllmctl.settings import Settings

# `gated: false`: a made-up repo the Hub does not show would need the token.
SMALL = (
    "- name: small\n  modelURL: org/small\n  gated: false\n"
    "  requestGPU: 0\n  requestCPU: 1\n  requestMemory: 1Gi\n"
)
SM_API = "monitoring.coreos.com/v1"
ON = {"VLLM_MONITORING": "true", "VLLM_GRAFANA_DASHBOARDS": "true"}


def values(**env: str) -> dict[str, Any]:
    # 0.1.8 unless a test asks for another (vllmctl's default is the newest tested).
    settings = Settings.resolve(
        {}, environ={"VLLM_MODEL_TAG": "v0.11.0", "VLLM_CHART_VERSION": "0.1.8", **env}
    )
    catalog = parse(Path("models.yaml"), SMALL.encode())
    return render(catalog.models, default_render_input(settings)).values


# --- settings -------------------------------------------------------------------------------


def test_off_by_default_nothing_reaches_the_chart() -> None:
    got = values(VLLM_CHART_VERSION="0.1.12")
    assert "serviceMonitor" not in got["servingEngineSpec"]
    assert "serviceMonitor" not in got["routerSpec"]
    assert "grafanaDashboards" not in got


@pytest.mark.parametrize("chart", ["0.1.11", "0.1.12"])
def test_on_for_engines_router_and_dashboards(chart: str) -> None:
    got = values(VLLM_CHART_VERSION=chart, **ON)
    assert got["servingEngineSpec"]["serviceMonitor"] == {"enabled": True}
    assert got["routerSpec"]["serviceMonitor"] == {"enabled": True}
    assert got["grafanaDashboards"] == {"enabled": True}


def test_each_setting_alone() -> None:
    only_monitors = values(VLLM_CHART_VERSION="0.1.11", VLLM_MONITORING="1")
    assert "grafanaDashboards" not in only_monitors
    only_dashboards = values(VLLM_CHART_VERSION="0.1.11", VLLM_GRAFANA_DASHBOARDS="yes")
    assert "serviceMonitor" not in only_dashboards["routerSpec"]


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"VLLM_MONITORING": "true"},
            "VLLM_MONITORING needs chart 0.1.11 or newer (older charts make no ServiceMonitors and "
            "would ignore it); VLLM_CHART_VERSION is 0.1.8. Raise the chart version, or set "
            "VLLM_MONITORING=false.",
        ),
        (
            {"VLLM_GRAFANA_DASHBOARDS": "on", "VLLM_CHART_VERSION": "0.1.10"},
            "VLLM_GRAFANA_DASHBOARDS needs chart 0.1.11 or newer",
        ),
        ({"VLLM_MONITORING": "maybe"}, "VLLM_MONITORING='maybe' is not a boolean; use true or false."),
    ],
)
def test_refused_where_the_chart_has_none_or_the_value_is_no_boolean(env: dict[str, str], said: str) -> None:
    with pytest.raises(UsageError) as caught:
        values(**env)
    assert said in caught.value.message


def test_both_refusals_at_once() -> None:
    with pytest.raises(UsageError) as caught:
        values(**ON)
    assert caught.value.message == "2 problems with the monitoring settings:"
    assert [d.split(" ", 1)[0] for d in caught.value.details] == [
        "VLLM_MONITORING",
        "VLLM_GRAFANA_DASHBOARDS",
    ]


def test_turning_monitoring_on_rolls_no_engine() -> None:
    # The ServiceMonitor is an object of its own: the engines' pods stay, so GPU fit counts
    # no surge for them.
    before = values(VLLM_CHART_VERSION="0.1.12")
    after = values(VLLM_CHART_VERSION="0.1.12", **ON)
    plan = make_plan("vllm", "ns", before, after)
    assert [p for p, _, _ in plan.other] == [
        "servingEngineSpec.serviceMonitor.enabled",
        "routerSpec.serviceMonitor.enabled",
        "grafanaDashboards.enabled",
    ]
    prepared = SimpleNamespace(
        deployed=SimpleNamespace(values=before), plan=plan, rendered=SimpleNamespace(values=after)
    )
    assert rolling_models(prepared) == {}  # type: ignore[arg-type]


# --- what the chart makes (helm template on the mini chart at 0.1.12) ---------------------------


def test_helm_template_makes_two_service_monitors_and_the_dashboards(
    run: Run, models_file: Path, tmp_path: Path
) -> None:
    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    models_file.write_text(SMALL)
    env = {"VLLM_CHART": str(mini_chart_at("0.1.12", tmp_path)), "VLLM_CHART_VERSION": "0.1.12", **ON}
    result = run("template", env={"VLLM_MODEL_TAG": "v0.10.1", **env})
    assert result.exit_code == 0, result.stderr
    objects = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}
    engine = objects[("ServiceMonitor", "vllm-engine-servicemonitor")]
    assert engine["spec"]["endpoints"] == [
        {"port": "service-port", "honorLabels": False, "interval": "30s", "scrapeTimeout": "25s"}
    ]
    assert engine["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "vllm",
        "app.kubernetes.io/component": "serving-engine",
        "app.kubernetes.io/part-of": "vllm-stack",
        # servingEngineSpec.labels: the chart's defaults merged with vllmctl's
        "environment": "test",
        "release": "test",
        "vllmctl.io/release": "vllm",
    }
    router = objects[("ServiceMonitor", "vllm-router-servicemonitor")]
    assert router["spec"]["endpoints"][0]["port"] == "router-sport"
    assert router["metadata"]["labels"]["app.kubernetes.io/part-of"] == "vllm-stack"
    dashboards = objects[("ConfigMap", "vllm-grafana-vllm-dashboard")]
    assert dashboards["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert "vllm:num_requests_waiting" in dashboards["data"]["vllm-dashboard.json"]


# --- on a cluster with the Prometheus Operator's CRD ---------------------------------------------


@pytest.fixture(scope="module")
def operator_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running_sandbox(
        tmp_path_factory.mktemp("prometheus"), SandboxConfig(prometheus_operator=True, eso=False)
    ) as sb:
        yield sb


@pytest.fixture
def monitored(
    operator_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The environment of a 0.1.12 release on the sandbox that serves ServiceMonitors."""
    namespace = f"mon-{request.node.name.replace('_', '-')[:40].strip('-')}"
    with release_on(
        operator_sandbox, monkeypatch, namespace, mini_chart_at("0.1.12", tmp_path), "0.1.12", **ON
    ):
        yield namespace


def doctor_check(run: Run) -> dict[str, Any]:
    result = run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes")
    report = json.loads(result.stdout)
    return next(c for c in report["checks"] if c["name"] == "monitoring")  # type: ignore[no-any-return]


def test_install_makes_the_service_monitors_and_dashboards(
    run: Run, models_file: Path, operator_sandbox: Sandbox, monitored: str
) -> None:
    sb, ns = operator_sandbox, monitored
    models_file.write_text(SMALL)
    check = doctor_check(run)
    assert check["status"] == "ok"
    assert check["detail"] == (
        "the cluster serves ServiceMonitors (monitoring.coreos.com/v1): engines and router get one"
    )
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    engine = sb.get("ServiceMonitor", ns, "vllm-engine-servicemonitor", api_version=SM_API)
    router = sb.get("ServiceMonitor", ns, "vllm-router-servicemonitor", api_version=SM_API)
    assert engine is not None and router is not None
    assert engine["spec"]["endpoints"][0]["port"] == "service-port"
    assert router["spec"]["endpoints"][0]["port"] == "router-sport"
    dashboards = sb.get("ConfigMap", ns, "vllm-grafana-vllm-dashboard")
    assert dashboards is not None and dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"

    # Turned off again: helm deletes them.
    upgraded = run("upgrade", "--yes", "--no-api-key", env={"VLLM_MONITORING": "false"})
    assert upgraded.exit_code == 0, upgraded.stderr
    assert sb.get("ServiceMonitor", ns, "vllm-engine-servicemonitor", api_version=SM_API) is None
    assert sb.get("ConfigMap", ns, "vllm-grafana-vllm-dashboard") is not None  # still asked for


def test_without_the_crd_doctor_warns_and_install_refuses(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.12", tmp_path)))
    monkeypatch.setenv("VLLM_CHART_VERSION", "0.1.12")
    models_file.write_text(SMALL)
    assert doctor_check(run) == {
        "area": "cluster",
        "name": "monitoring",
        "status": "ok",
        "detail": "VLLM_MONITORING is off (the cluster serves no ServiceMonitors (monitoring.coreos.com/v1))",
        "fix": "",
    }
    monkeypatch.setenv("VLLM_MONITORING", "true")
    check = doctor_check(run)
    assert check["status"] == "warn"
    assert "VLLM_MONITORING is on, but the cluster does not serve ServiceMonitors" in check["detail"]
    assert "install the Prometheus Operator" in check["fix"]
    # install stops before anything changes (helm would fail half-way through)
    refused = run("install", "--yes", "--no-api-key")
    assert refused.exit_code == 2
    assert (
        "error: VLLM_MONITORING is on, but the cluster does not serve ServiceMonitors "
        "(monitoring.coreos.com/v1), so helm could not create them; nothing was changed."
    ) in refused.stderr
    assert cluster.sandbox.get("Namespace", None, cluster.namespace) is None


def test_doctor_fails_on_a_chart_without_monitoring(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(SMALL)
    result = run(
        "doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes", env={"VLLM_MONITORING": "1"}
    )
    assert result.exit_code == 2
    found = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "monitoring")
    assert found["status"] == "fail"
    assert found["detail"].startswith("VLLM_MONITORING needs chart 0.1.11 or newer")
