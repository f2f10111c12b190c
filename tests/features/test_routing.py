"""Routing (issue 17, section 1): the router's routing logic, session key and prefix match
as settings; checked by chart version and models, rendered into routerSpec, passed by the
chart as the router's args, shown by doctor and status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv, mini_chart_at
from vllmctl.catalog.store import parse
from vllmctl.core.errors import CatalogError, UsageError
from vllmctl.core.findings import Report
from vllmctl.features.routing_values import check_routing, routing_in_force
from vllmctl.render.values import default_render_input, packaged_templates, render
from vllmctl.settings import Settings

SMALL = (
    "- name: small\n  modelURL: org/small\n  gated: false\n"
    "  requestGPU: 0\n  requestCPU: 1\n  requestMemory: 1Gi\n"
)
CACHED = SMALL + "  lmcacheConfig:\n    enabled: true\n    cpuOffloadingBufferSize: '4'\n"
CHART_ENV = {"VLLM_CHART": str(MINI_CHART), "VLLM_MODEL_TAG": "v0.10.1"}  # 0.1.8


def rendered(models: str = SMALL, templates: Path | None = None, **env: str) -> Any:
    settings = Settings.resolve(
        {}, environ={"VLLM_MODEL_TAG": "v0.11.0", "VLLM_CHART_VERSION": "0.1.8", **env}
    )
    catalog = parse(Path("models.yaml"), models.encode())
    return render(catalog.models, default_render_input(settings, templates_dir=templates))


def router(models: str = SMALL, **env: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered(models, **env).values["routerSpec"]
    return spec


def refusal(models: str = SMALL, **env: str) -> str:
    with pytest.raises(UsageError) as caught:
        rendered(models, **env)
    return "\n".join([caught.value.message, *caught.value.details])


# --- good values ------------------------------------------------------------------------------


def test_the_default_render_is_unchanged() -> None:
    text = rendered().text
    assert '  routingLogic: "roundrobin"\n  resources: ' in text
    assert "sessionKey" not in text and "prefixMinMatchLength" not in text


def test_session_routing_with_its_header() -> None:
    spec = router(VLLM_ROUTING_LOGIC="session", VLLM_ROUTER_SESSION_KEY="x-user-id")
    assert (spec["routingLogic"], spec["sessionKey"]) == ("session", "x-user-id")


def test_prefixaware_with_a_minimum_match_on_chart_0_1_12() -> None:
    spec = router(
        VLLM_CHART_VERSION="0.1.12",
        VLLM_ROUTING_LOGIC="prefixaware",
        VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH="256",
    )
    assert (spec["routingLogic"], spec["prefixMinMatchLength"]) == ("prefixaware", 256)
    # 0 is the router's own default: left out, as the chart leaves the flag out
    zero = router(
        VLLM_CHART_VERSION="0.1.12", VLLM_ROUTING_LOGIC="prefixaware", VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH="0"
    )
    assert "prefixMinMatchLength" not in zero


def test_kvaware_with_lmcache_on_a_model() -> None:
    assert router(CACHED, VLLM_ROUTING_LOGIC="kvaware")["routingLogic"] == "kvaware"


# --- bad values: one sentence each, naming the setting and the fix -----------------------------


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"VLLM_ROUTING_LOGIC": "random"},
            "VLLM_ROUTING_LOGIC='random' is not a routing logic the router has; use one of roundrobin, "
            "session, prefixaware, kvaware, disaggregated_prefill, disaggregated_prefill_orchestrated.",
        ),
        (
            {"VLLM_ROUTING_LOGIC": "session"},
            "VLLM_ROUTING_LOGIC=session needs the header that names a session: set VLLM_ROUTER_SESSION_KEY "
            "(an environment's sessionKey in vllmctl.yaml), e.g. x-user-id; without it the router refuses "
            "to start.",
        ),
        (
            {"VLLM_ROUTING_LOGIC": "session", "VLLM_ROUTER_SESSION_KEY": "x user"},
            "VLLM_ROUTER_SESSION_KEY='x user' is not an HTTP header name (letters, digits and "
            "!#$%&'*+.^_`|~-, no spaces or colons); write e.g. x-user-id.",
        ),
        (
            {"VLLM_ROUTER_SESSION_KEY": "x-user-id"},
            "VLLM_ROUTER_SESSION_KEY is set but VLLM_ROUTING_LOGIC is roundrobin: only session routing "
            "reads it. Set VLLM_ROUTING_LOGIC=session, or unset VLLM_ROUTER_SESSION_KEY.",
        ),
        (
            {"VLLM_ROUTING_LOGIC": "kvaware"},
            "VLLM_ROUTING_LOGIC=kvaware routes by the engines' LMCache KV caches, and no model in "
            "models.yaml has kvCache (or lmcacheConfig); give the models kvCache, or use prefixaware.",
        ),
        (
            {"VLLM_ROUTING_LOGIC": "disaggregated_prefill"},
            "VLLM_ROUTING_LOGIC=disaggregated_prefill needs exactly one model with kvCache.role: prefill "
            "and one with kvCache.role: decode; models.yaml has 0 prefill (none) and 0 decode (none).",
        ),
        (
            {"VLLM_ROUTING_LOGIC": "prefixaware", "VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH": "256"},
            "VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH needs chart 0.1.12 or newer "
            "(routerSpec.prefixMinMatchLength); it is 0.1.8. Use chart 0.1.12 or newer (VLLM_CHART_VERSION, "
            "or a newer chart at VLLM_CHART), or unset VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH.",
        ),
        (
            {"VLLM_CHART_VERSION": "0.1.12", "VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH": "-1"},
            "VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH='-1' is not a whole number of characters (0 or more); "
            "write e.g. 256.",
        ),
        (
            {"VLLM_CHART_VERSION": "0.1.12", "VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH": "256"},
            "VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH is set but VLLM_ROUTING_LOGIC is roundrobin: only "
            "prefixaware routing reads it. Set VLLM_ROUTING_LOGIC=prefixaware, or unset "
            "VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH.",
        ),
        (
            {
                "VLLM_ROUTING_LOGIC": "session",
                "VLLM_ROUTER_SESSION_KEY": "x-user-id",
                "VLLM_ROUTER_ENABLED": "false",
            },
            "VLLM_ROUTING_LOGIC=session configures the router, but VLLM_ROUTER_ENABLED is false (the chart "
            "then makes no router). Enable the router, or unset the routing settings.",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_setting(env: dict[str, str], said: str) -> None:
    assert refusal(**env) == said


@pytest.mark.parametrize(
    ("chart", "verdict"),
    [
        ("0.1.8", "needs chart 0.1.11 or newer; it is 0.1.8"),
        ("0.1.10", "needs chart 0.1.11 or newer; it is 0.1.10"),
        ("0.1.11", "vLLM's own kv_transfer_params"),  # known there, refused: no such engines
        ("0.1.12", "vLLM's own kv_transfer_params"),
    ],
)
def test_orchestrated_prefill_is_gated_by_chart_version(chart: str, verdict: str) -> None:
    said = refusal(VLLM_CHART_VERSION=chart, VLLM_ROUTING_LOGIC="disaggregated_prefill_orchestrated")
    assert said.startswith("VLLM_ROUTING_LOGIC=disaggregated_prefill_orchestrated ")
    assert verdict in said


def test_every_problem_is_reported_at_once() -> None:
    lines = refusal(VLLM_ROUTING_LOGIC="session", VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH="x").splitlines()
    assert lines[0] == "2 problems with the router's routing settings:"


def test_a_copied_template_that_hard_wires_roundrobin_is_caught(tmp_path: Path) -> None:
    old = (packaged_templates() / "values.yaml.j2").read_text()
    old = old.replace("routingLogic: {{ router.routing_logic | yaml }}", 'routingLogic: "roundrobin"')
    (tmp_path / "values.yaml.j2").write_text(old)
    with pytest.raises(CatalogError, match=r'routerSpec.routingLogic = "roundrobin", not "prefixaware"'):
        rendered(templates=tmp_path, VLLM_ROUTING_LOGIC="prefixaware")


# --- vllmctl.yaml per environment ------------------------------------------------------------


def test_an_environment_sets_the_routing_and_its_mistakes_name_the_file(run: Run, models_file: Path) -> None:
    models_file.write_text(SMALL)
    settings = models_file.with_name("vllmctl.yaml")
    settings.write_text("environments:\n  prod:\n    routingLogic: session\n    sessionKey: x-user-id\n")
    out = run("--env", "prod", "render", env={"VLLM_CHART_VERSION": "0.1.8", "VLLM_MODEL_TAG": "v0.10.1"})
    assert out.exit_code == 0, out.stderr
    spec = yaml.safe_load(out.stdout)["routerSpec"]
    assert (spec["routingLogic"], spec["sessionKey"]) == ("session", "x-user-id")

    settings.write_text("environments:\n  prod:\n    routingLogic: kvaware\n")
    bad = run("--env", "prod", "render", env={"VLLM_CHART_VERSION": "0.1.8", "VLLM_MODEL_TAG": "v0.10.1"})
    assert bad.exit_code == 2
    assert (
        "error: routingLogic: kvaware (of environment prod in vllmctl.yaml) routes by the engines' LMCache "
        "KV caches, and no model in models.yaml has kvCache (or lmcacheConfig)"
    ) in bad.stderr
    assert "Traceback" not in bad.stderr


# --- what the chart makes (helm template on the mini chart) ------------------------------------


def router_args(run: Run, models_file: Path, models: str = SMALL, **env: str) -> list[str]:
    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    models_file.write_text(models)
    result = run("template", env={**CHART_ENV, **env})
    assert result.exit_code == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (deployment,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "vllm-deployment-router"
    ]
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def after(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_helm_template_passes_the_default_roundrobin(run: Run, models_file: Path) -> None:
    args = router_args(run, models_file)
    assert after(args, "--routing-logic") == "roundrobin"
    assert "--session-key" not in args


def test_helm_template_passes_session_routing_and_its_key(run: Run, models_file: Path) -> None:
    args = router_args(run, models_file, VLLM_ROUTING_LOGIC="session", VLLM_ROUTER_SESSION_KEY="x-user-id")
    assert (after(args, "--routing-logic"), after(args, "--session-key")) == ("session", "x-user-id")
    assert routing_in_force({"spec": {"template": {"spec": {"containers": [{"args": args}]}}}}) == {
        "routing": "session (session key x-user-id)"
    }


def test_helm_template_of_chart_0_1_12_passes_the_prefix_match(
    run: Run, models_file: Path, tmp_path: Path
) -> None:
    args = router_args(
        run,
        models_file,
        VLLM_CHART=str(mini_chart_at("0.1.12", tmp_path)),
        VLLM_CHART_VERSION="0.1.12",
        VLLM_ROUTING_LOGIC="prefixaware",
        VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH="512",
    )
    assert (after(args, "--routing-logic"), after(args, "--prefix-min-match-length")) == (
        "prefixaware",
        "512",
    )


def test_template_refuses_before_helm_runs(run: Run, models_file: Path) -> None:
    models_file.write_text(SMALL)
    result = run("template", env={**CHART_ENV, "VLLM_ROUTING_LOGIC": "kvaware"})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: VLLM_ROUTING_LOGIC=kvaware routes by the engines' LMCache")
    assert "Traceback" not in result.stderr


# --- doctor and status ------------------------------------------------------------------------


def doctor_row(models: str = SMALL, **env: str) -> tuple[str, str]:
    settings = Settings.resolve({}, environ={"VLLM_CHART_VERSION": "0.1.8", **env})
    report = Report()
    check_routing(report, settings, parse(Path("models.yaml"), models.encode()).models, True)
    (check,) = report.checks
    assert (check.area, check.name) == ("release", "routing")
    return check.status, check.detail


def test_doctor_shows_the_routing_in_force() -> None:
    assert doctor_row() == ("ok", "routingLogic roundrobin (the default)")
    assert doctor_row(VLLM_ROUTING_LOGIC="session", VLLM_ROUTER_SESSION_KEY="x-user-id") == (
        "ok",
        "routingLogic session (VLLM_ROUTING_LOGIC), session key header x-user-id",
    )


def test_doctor_fails_a_setting_the_chart_version_lacks() -> None:
    status, detail = doctor_row(VLLM_ROUTING_LOGIC="prefixaware", VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH="64")
    assert status == "fail"
    assert detail.startswith("VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH needs chart 0.1.12 or newer")


def test_install_then_status_shows_the_routing_in_force(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        **CHART_ENV,
        "VLLM_ROUTING_LOGIC": "session",
        "VLLM_ROUTER_SESSION_KEY": "x-user-id",
    }.items():
        monkeypatch.setenv(key, value)
    models_file.write_text(SMALL)
    doctor = run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes")
    row = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "routing")
    assert (row["status"], row["detail"]) == (
        "ok",
        "routingLogic session (VLLM_ROUTING_LOGIC), session key header x-user-id",
    )
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    deployment = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert deployment is not None
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert after(args, "--routing-logic") == "session"

    assert "Router routing: session (session key x-user-id)" in run("status").stdout
    data = json.loads(run("status", "-o", "json").stdout)
    assert data["router"]["features"] == {"routing": "session (session key x-user-id)"}
