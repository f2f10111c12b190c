"""The chart version vllmctl renders for is the chart helm installs: a local chart's own
Chart.yaml (directory or .tgz), else VLLM_CHART_VERSION, the deployed release's version,
or the newest tested; and the router image pinned to that version. Through the CLI, against
the sandbox where a cluster is involved."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv, mini_chart_at

# `gated: false`: these tests are about the chart version, not the HuggingFace token.
MODELS = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  gated: false
  requestGPU: 1
  pvcStorage: 20Gi
"""
KEEP = "helm.sh/resource-policy"


def sh(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def helm_chart(cluster: ClusterEnv) -> str:
    (release,) = json.loads(sh(cluster.helm("list", "--output", "json")))
    return str(release["chart"])


def dry_run_command(run: Run, **env: str) -> str:
    result = run("install", "--yes", "--dry-run", env=env or None)
    assert result.exit_code == 0, result.stderr
    return next(line for line in result.stderr.splitlines() if line.startswith("helm command:"))


def packaged(chart: Path, target: Path) -> Path:
    """The chart as `helm package` lays it out: <name>/... in a gzipped tar, here with a
    vendored dependency's own Chart.yaml first (as 0.1.11+ packages hold two)."""
    dependency = b"apiVersion: v2\nname: prometheus-adapter\nversion: 5.3.0\n"
    with tarfile.open(target, "w:gz") as archive:
        info = tarfile.TarInfo("vllm-stack/charts/prometheus-adapter/Chart.yaml")
        info.size = len(dependency)
        archive.addfile(info, io.BytesIO(dependency))
        archive.add(chart, arcname="vllm-stack")
    return target


def config_row(run: Run, name: str, **env: str) -> dict[str, Any]:
    result = run("config", "-o", "json", env=env or None)
    assert result.exit_code == 0, result.stderr
    return next(r for r in json.loads(result.stdout) if r["name"] == name)  # type: ignore[no-any-return]


def test_a_directory_chart_at_0_1_12_keeps_the_caches_and_gets_no_version_flag(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The reproduction: VLLM_CHART a 0.1.12 directory, VLLM_CHART_VERSION unset.
    chart = mini_chart_at("0.1.12", tmp_path)
    monkeypatch.setenv("VLLM_CHART", str(chart))
    models_file.write_text(MODELS)
    assert "--version" not in dry_run_command(run)  # meaningless for a directory
    assert config_row(run, "chart_version") | {"env": ""} == {
        "name": "chart_version",
        "env": "",
        "value": "0.1.12",
        "source": str(chart / "Chart.yaml"),
    }
    result = run("install", "--yes")
    assert result.exit_code == 0, result.stderr
    assert helm_chart(cluster) == "vllm-stack-0.1.12"
    assert run("uninstall", "--yes").exit_code == 0
    (claim,) = cluster.sandbox.list("PersistentVolumeClaim", cluster.namespace)
    assert claim["metadata"]["annotations"][KEEP] == "keep"


def test_a_chart_version_that_disagrees_with_the_chart_file_is_refused(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chart = mini_chart_at("0.1.12", tmp_path)
    monkeypatch.setenv("VLLM_CHART", str(chart))
    monkeypatch.setenv("VLLM_CHART_VERSION", "0.1.8")
    models_file.write_text(MODELS)
    for command in (["install", "--yes"], ["render"], ["validate"]):
        result = run(*command)
        assert result.exit_code == 2, command
        assert result.stderr.splitlines()[-1] == (
            f"error: VLLM_CHART_VERSION=0.1.8 disagrees with the chart VLLM_CHART={chart}, whose "
            "Chart.yaml says 0.1.12: helm installs the chart's own version. Unset VLLM_CHART_VERSION "
            "(vllmctl reads the version from the chart), or point VLLM_CHART at a 0.1.8 chart."
        )
    assert cluster.sandbox.get("Namespace", None, cluster.namespace) is None  # nothing changed
    # doctor reports it as the chart's failure, and goes on with what does not need it.
    doctor = run("doctor", "-o", "json", "--offline")
    assert doctor.exit_code == 2
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["chart"]["status"] == "fail"
    assert checks["chart"]["detail"].startswith("VLLM_CHART_VERSION=0.1.8 disagrees with the chart")
    assert checks["permissions"]["status"] == "ok"
    assert checks["routing"]["status"] == "skip"  # judged by chart version: not while it is in doubt
    assert run("render", env={"VLLM_CHART_VERSION": "0.1.12"}).exit_code == 0  # agreeing is fine


def test_a_packaged_chart_is_read_from_its_archive(run: Run, models_file: Path, tmp_path: Path) -> None:
    archive = packaged(mini_chart_at("0.1.11", tmp_path), tmp_path / "vllm-stack-0.1.11.tgz")
    models_file.write_text(MODELS + "  tolerations: []\n")  # a 0.1.11 key
    env = {"VLLM_CHART": str(archive), "VLLM_MODEL_TAG": "v0.10.1"}
    row = config_row(run, "chart_version", **env)
    assert (row["value"], row["source"]) == ("0.1.11", f"{archive}:Chart.yaml")
    rendered = run("render", env=env)
    assert rendered.exit_code == 0, rendered.stderr
    assert '"helm.sh/resource-policy": "keep"' in rendered.stdout
    assert 'tag: "v0.1.11"' in rendered.stdout  # the router released with 0.1.11
    broken = tmp_path / "broken.tgz"
    with tarfile.open(broken, "w:gz") as tar:
        info = tarfile.TarInfo("vllm-stack/values.yaml")
        tar.addfile(info, io.BytesIO(b""))
    result = run("render", env={**env, "VLLM_CHART": str(broken)})
    assert result.exit_code == 2
    assert "holds no <chart>/Chart.yaml" in result.stderr


def test_a_new_release_gets_the_newest_tested_chart(run: Run, models_file: Path) -> None:
    models_file.write_text(MODELS)
    rendered = run("render", env={"VLLM_MODEL_TAG": "v0.10.1"})
    assert rendered.exit_code == 0
    assert '"helm.sh/resource-policy": "keep"' in rendered.stdout  # 0.1.12, not the old tool's 0.1.8
    row = config_row(run, "chart_version")
    assert row["value"] == "0.1.12" and row["source"].startswith(
        "default: the newest chart vllmctl is tested"
    )


def test_an_existing_release_keeps_its_deployed_chart_version(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.9", tmp_path)))
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0
    # Now from the repository, with no VLLM_CHART_VERSION: the release stays at 0.1.9.
    monkeypatch.setenv("VLLM_CHART", "vllm/vllm-stack")
    plan = run("plan")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert plan.stdout.splitlines()[1:] == ["  no changes"]
    assert " --version 0.1.9 " in dry_run_command(run)
    doctor = json.loads(run("doctor", "-o", "json").stdout)
    chart = next(c for c in doctor["checks"] if c["name"] == "chart")
    assert (
        chart["detail"] == "chart vllm/vllm-stack 0.1.9 (from the deployed release vllm (vllm-stack-0.1.9))"
    )
    # A release not installed yet gets the newest tested chart.
    assert " --version 0.1.12 " in dry_run_command(run, VLLM_NAMESPACE=f"{cluster.namespace}-new")


def test_a_chart_version_over_a_deployed_0_1_8_shows_the_upgrade_and_its_selector_hazard(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0  # the mini chart, 0.1.8
    monkeypatch.setenv("VLLM_CHART", "vllm/vllm-stack")
    monkeypatch.setenv("VLLM_CHART_VERSION", "0.1.10")
    plan = run("plan")
    assert plan.exit_code == 1
    lines = plan.stdout.splitlines()
    assert lines[1] == "  ~ chart vllm-stack 0.1.8 -> 0.1.10"
    assert "  ~ llama3: pvcAnnotations.helm.sh/resource-policy (unset) -> keep" in lines
    assert "  ~ routerSpec.tag: 0.1.8 -> v0.1.10" in lines
    assert lines[-1].startswith(
        "  ! chart 0.1.8 -> 0.1.10 changes the engine and router Deployments' selectors"
    )
    as_json = json.loads(run("plan", "-o", "json").stdout)
    assert as_json["chart"] == {"old": "0.1.8", "new": "0.1.10"}


def test_the_router_image_is_pinned_to_the_chart_and_shown_by_status(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes").exit_code == 0
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert router is not None
    assert router["spec"]["template"]["spec"]["containers"][0]["image"] == "lmcache/lmstack-router:0.1.8"
    status = run("status", "-o", "json")
    assert json.loads(status.stdout)["router"]["tag"] == "0.1.8"
    table = run("status").stdout.splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("ROUTER"))
    assert table[header].split()[-1] == "TAG" and table[header + 1].split()[-1] == "0.1.8"
    # VLLM_ROUTER_IMAGE / VLLM_ROUTER_TAG override it.
    env = {"VLLM_ROUTER_IMAGE": "registry.example/router", "VLLM_ROUTER_TAG": "v0.1.9"}
    assert run("upgrade", "--yes", env=env).exit_code == 0
    router = cluster.sandbox.get("Deployment", cluster.namespace, "vllm-deployment-router")
    assert router is not None
    assert router["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/router:v0.1.9"


def test_a_router_on_latest_is_warned_about(run: Run, models_file: Path) -> None:
    models_file.write_text(MODELS)
    result = run("render", env={"VLLM_MODEL_TAG": "v0.10.1", "VLLM_ROUTER_TAG": "latest"})
    assert result.exit_code == 0
    assert 'tag: "latest"' in result.stdout
    assert "warning: the router image tag 'latest' is not pinned" in result.stderr
    unknown = run("render", env={"VLLM_MODEL_TAG": "v0.10.1", "VLLM_CHART_VERSION": "0.1.13"})
    assert "no router image tag is known for chart 0.1.13" in unknown.stderr
    assert "  tag:" not in unknown.stdout.split("routerSpec:")[1]  # the chart's own default


def test_the_mini_chart_says_0_1_8() -> None:
    # The fixtures rely on it: `cluster` points VLLM_CHART at it and sets no version.
    assert "\nversion: 0.1.8\n" in (MINI_CHART / "Chart.yaml").read_text()


def test_a_hostile_chart_yaml_is_refused_quickly(run: Run, models_file: Path, tmp_path: Path) -> None:
    """Chart.yaml is a file vllmctl reads too: the bounds on aliases and size hold there."""
    models_file.write_text(MODELS)
    bomb = "version: 0.1.12\nx0: &l0 [lol]\n" + "".join(
        f"x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)
    )
    chart = tmp_path / "bomb"
    chart.mkdir()
    (chart / "Chart.yaml").write_text(bomb)
    result = run("render", env={"VLLM_CHART": str(chart)})
    assert result.exit_code == 2
    assert f"{chart / 'Chart.yaml'}:" in result.stderr and "alias" in result.stderr
    assert "Traceback" not in result.stderr
    archive = tmp_path / "huge.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"version: 0.1.12\n" + b"#" * (2 * 1024 * 1024)
        info = tarfile.TarInfo("vllm-stack/Chart.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result = run("render", env={"VLLM_CHART": str(archive)})
    assert result.exit_code == 2
    assert "larger than 1 MiB" in result.stderr
