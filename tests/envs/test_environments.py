"""Environments (--env / VLLM_ENV): models.NAME.yaml merged over models.yaml, and each
environment's settings from vllmctl.yaml; what every reading command sees, the errors,
the precedence, and one install into a dev namespace on the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.conftest import REPO, Run
from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.kube.controllers import R

BASE = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  replicaCount: 3
  requestGPU: 1
  limitMemory: 32Gi
  vllmConfig:
    maxModelLen: 32768
    dtype: bfloat16
    extraArgs: ["--enable-auto-tool-choice", "--tool-call-parser", "llama3_json"]
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
"""
DEV = """\
# dev: small context, no memory limit, fewer engine arguments
- name: llama3
  limitMemory: null
  vllmConfig:
    maxModelLen: 4096
    extraArgs: ["--enforce-eager"]
"""
PROD = """\
- name: llama3
  requestMemory: 24Gi
- name: llama3-canary
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  replicaCount: 1
"""
SETTINGS = """\
environments:
  dev:
    namespace: vllm-dev
    replicaCount: 1
  prod:
    namespace: vllm-prod
    release: serving
    modelTag: v0.10.1
    storageClass: fast-ssd
    chartVersion: 0.1.12
"""


@pytest.fixture
def catalog(isolated: Path) -> Path:
    """models.yaml, models.dev.yaml, models.prod.yaml and vllmctl.yaml in the working directory."""
    for name, text in {
        "models.yaml": BASE,
        "models.dev.yaml": DEV,
        "models.prod.yaml": PROD,
        "vllmctl.yaml": SETTINGS,
    }.items():
        (isolated / name).write_text(text)
    return isolated


def models(run: Run, *args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    result = run("list-models", "-o", "json", *args, env=env)
    assert result.exit_code == 0, result.stderr
    return {m["name"]: m for m in json.loads(result.stdout)}


def settings(run: Run, *args: str, env: dict[str, str] | None = None) -> dict[str, tuple[Any, str]]:
    result = run("config", "-o", "json", *args, env=env)
    assert result.exit_code == 0, result.stderr
    return {row["name"]: (row["value"], row["source"]) for row in json.loads(result.stdout)}


def failure(run: Run, *args: str, env: dict[str, str] | None = None) -> str:
    result = run(*args, env=env)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    return result.stderr


# ---------------------------------------------------------------- merging


def test_an_overlay_overrides_only_what_it_gives(run: Run, catalog: Path) -> None:
    base, dev = models(run), models(run, "--env", "dev")
    llama = dev["llama3"]
    # vllmConfig merges key by key; a list is replaced whole; null removes a key
    assert llama["vllmConfig"] == {"maxModelLen": 4096, "dtype": "bfloat16", "extraArgs": ["--enforce-eager"]}
    assert "limitMemory" not in llama and base["llama3"]["limitMemory"] == "32Gi"
    # dev's replicaCount (vllmctl.yaml) applies to every model; the rest stays as in models.yaml
    assert {m["replicaCount"] for m in dev.values()} == {1}
    assert llama["modelURL"] == base["llama3"]["modelURL"] and dev["qwen"]["requestGPU"] == 1
    # prod: one field changed, and a model only prod has, appended after models.yaml's
    prod = models(run, "--env", "prod")
    assert list(prod) == ["llama3", "qwen", "llama3-canary"]
    assert prod["llama3"]["requestMemory"] == "24Gi" and prod["llama3"]["replicaCount"] == 3
    # models.yaml itself is what a command without an environment sees
    assert list(base) == ["llama3", "qwen"] and base["llama3"]["vllmConfig"]["maxModelLen"] == 32768


def test_an_overlay_entry_replica_count_wins_over_the_environment(run: Run, catalog: Path) -> None:
    (catalog / "models.dev.yaml").write_text("- name: qwen\n  replicaCount: 2\n")
    dev = models(run, "--env", "dev")
    assert (dev["llama3"]["replicaCount"], dev["qwen"]["replicaCount"]) == (1, 2)
    # VLLM_REPLICA_COUNT, an env variable, wins over vllmctl.yaml, and works without an environment
    assert models(run, "--env", "dev", env={"VLLM_REPLICA_COUNT": "0"})["llama3"]["replicaCount"] == 0
    assert {m["replicaCount"] for m in models(run, env={"VLLM_REPLICA_COUNT": "2"}).values()} == {2}


def test_show_model_and_validate_see_the_merge(run: Run, catalog: Path) -> None:
    shown = run("show-model", "llama3", "--env", "dev", "-o", "json")
    assert json.loads(shown.stdout)["vllmConfig"]["maxModelLen"] == 4096
    valid = run("validate", "--env", "prod")
    assert valid.exit_code == 0
    assert "models.yaml with models.prod.yaml (env prod) is valid: 3 models" in valid.stderr
    # an environment with settings only (no models.staging.yaml) is models.yaml as is
    (catalog / "vllmctl.yaml").write_text(SETTINGS + "  staging: {namespace: vllm-staging}\n")
    assert list(models(run, "--env", "staging")) == ["llama3", "qwen"]


# ---------------------------------------------------------------- errors, with file:line:column


def test_problems_name_the_file_and_position_where_the_value_is_written(run: Run, catalog: Path) -> None:
    (catalog / "models.dev.yaml").write_text(
        "- name: llama3\n"
        "  requestGPu: 2\n"  # a typo: unknown key
        "  vllmConfig:\n"
        "    maxModelLen: 0\n"  # invalid value
        "    tensorParallelSize: 2\n"  # does not divide models.yaml's requestGPU: 1
    )
    (catalog / "models.yaml").write_text(BASE.replace("requestGPU: 1", "requestGPU: one"))
    stderr = failure(run, "validate", "--env", "dev")
    assert "error: models.yaml with models.dev.yaml (env dev) has 4 problems" in stderr
    assert (
        "models.dev.yaml:2:3: models[0] (llama3).requestGPu: unknown key 'requestGPu'; did you mean" in stderr
    )
    assert "models.dev.yaml:4:18: models[0] (llama3).vllmConfig.maxModelLen: must be 1 or more" in stderr
    assert "models.yaml:4:15: models[0] (llama3).requestGPU: must be a whole number" in stderr
    # a file without the environment has only its own problem
    assert "has 1 problem;" in failure(run, "validate")


def test_an_overlay_entry_for_an_unknown_model(run: Run, catalog: Path) -> None:
    (catalog / "models.dev.yaml").write_text("- name: lama3\n  replicaCount: 2\n")
    stderr = failure(run, "list-models", "--env", "dev")
    assert (
        "models.dev.yaml:1:9: entries[0] (lama3).name: there is no model 'lama3' in models.yaml; "
        "did you mean 'llama3'? Fix the name" in stderr
    )
    assert "must be a complete entry (add its modelURL)" in stderr
    # complete, it is a model only dev has, and validated as one
    (catalog / "models.dev.yaml").write_text("- name: Lama3\n  modelURL: org/lama\n")
    assert "models.dev.yaml:1:9: models[2].name: 'Lama3' is not a valid name" in failure(
        run, "validate", "--env", "dev"
    )


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ("llama3:\n  replicaCount: 2\n", "models.dev.yaml:1:1: top level: an environment's file is a list"),
        ("- replicaCount: 2\n", "models.dev.yaml:1:3: entries[0]: name is missing"),
        ("- just-a-name\n", "models.dev.yaml:1:3: entries[0]: each entry is a mapping"),
        (
            "- name: qwen\n  replicaCount: 2\n- name: qwen\n  requestGPU: 2\n",
            "models.dev.yaml:3:9: entries[1] (qwen).name: 'qwen' already has an entry at line 1",
        ),
        ("- name: qwen\n  replicaCount: [\n", "models.dev.yaml:3:1: YAML syntax error"),
    ],
)
def test_a_malformed_overlay(run: Run, catalog: Path, overlay: str, expected: str) -> None:
    (catalog / "models.dev.yaml").write_text(overlay)
    assert expected in failure(run, "render", "--env", "dev")


def test_settings_file_problems(run: Run, catalog: Path) -> None:
    (catalog / "vllmctl.yaml").write_text(
        "environments:\n"
        "  dev:\n"
        "    namespce: vllm-dev\n"
        "    replicaCount: many\n"
        "    modelTag: [v1]\n"
        "  a.b: {}\n"
        "environment: {}\n"
    )
    stderr = failure(run, "config", "--env", "dev")
    assert "error: vllmctl.yaml has 5 problems" in stderr
    for line in (
        "vllmctl.yaml:3:5: environments.dev.namespce: unknown key 'namespce'; did you mean 'namespace'?",
        "vllmctl.yaml:4:19: environments.dev.replicaCount: must be a whole number",
        "vllmctl.yaml:5:15: environments.dev.modelTag: must be a single value, not a list",
        "vllmctl.yaml:6:3: environments.a.b: 'a.b' is not an environment name",
        "vllmctl.yaml:7:1: environment: unknown key 'environment'; did you mean 'environments'?",
    ):
        assert line in stderr


def test_an_unknown_environment_names_both_files(run: Run, catalog: Path) -> None:
    stderr = failure(run, "list-models", "--env", "prd")
    assert (
        "error: --env prd: no environment 'prd': there is no models.prd.yaml, and vllmctl.yaml:1:1 "
        "defines only dev, prod under environments; did you mean 'prod'?"
    ) in stderr
    (catalog / "vllmctl.yaml").unlink()
    stderr = failure(run, "list-models", env={"VLLM_ENV": "stage"})
    assert (
        "VLLM_ENV=stage: no environment 'stage': there is no models.stage.yaml, and there is no vllmctl.yaml"
        in (stderr)
    )
    assert "an environment name" in failure(run, "list-models", "--env", "../prod")


# ---------------------------------------------------------------- settings


def test_precedence_flag_then_env_then_vllmctl_yaml_then_default(run: Run, catalog: Path) -> None:
    prod = settings(run, "--env", "prod")
    assert prod["namespace"] == ("vllm-prod", "vllmctl.yaml (env prod)")
    assert prod["model_tag"] == ("v0.10.1", "vllmctl.yaml (env prod)")
    assert prod["chart_version"] == ("0.1.12", "vllmctl.yaml (env prod)")  # text as written
    assert prod["storage_class"] == ("fast-ssd", "vllmctl.yaml (env prod)")
    assert prod["release"] == ("serving", "vllmctl.yaml (env prod)")
    assert prod["env"] == ("prod", "flag")
    assert prod["model_image"] == ("vllm/vllm-openai", "default")
    overridden = settings(
        run, "--env", "prod", "-n", "mine", env={"VLLM_NAMESPACE": "theirs", "VLLM_MODEL_TAG": "v1"}
    )
    assert overridden["namespace"] == ("mine", "flag")
    assert overridden["model_tag"] == ("v1", "env")
    # VLLM_ENV selects the same, and --env given before the command works too
    by_variable = settings(run, env={"VLLM_ENV": "dev"})
    assert by_variable["namespace"] == ("vllm-dev", "vllmctl.yaml (env dev)")
    assert by_variable["replica_count"] == ("1", "vllmctl.yaml (env dev)")
    assert by_variable["env"] == ("dev", "env")
    before = run("--env", "dev", "config", "-o", "json")
    assert {r["name"]: r["value"] for r in json.loads(before.stdout)}["namespace"] == "vllm-dev"
    # no environment: vllmctl.yaml is not read
    assert settings(run)["namespace"] == ("vllm", "default")


def test_files_next_to_another_models_file(run: Run, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "catalog.yaml").write_text(BASE)
    (other / "catalog.dev.yaml").write_text(DEV)
    (other / "vllmctl.yaml").write_text(SETTINGS)
    found = models(run, "--models", str(other / "catalog.yaml"), "--env", "dev")
    assert found["llama3"]["vllmConfig"]["maxModelLen"] == 4096
    config = settings(run, "--models", str(other / "catalog.yaml"), "--env", "dev")
    assert config["namespace"] == ("vllm-dev", f"{other / 'vllmctl.yaml'} (env dev)")


def render_values(run: Run, *args: str) -> tuple[str, dict[str, Any]]:
    result = run("render", *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout, YAML(typ="safe").load(result.stdout)


def test_render_dev_and_prod(run: Run, catalog: Path) -> None:
    dev_text, dev = render_values(run, "--env", "dev")
    prod_text, prod = render_values(run, "--env", "prod")
    assert 'release "vllm" in namespace "vllm-dev"' in dev_text
    assert 'release "serving" in namespace "vllm-prod"' in prod_text

    def spec(values: dict[str, Any], name: str) -> dict[str, Any]:
        return next(m for m in values["servingEngineSpec"]["modelSpec"] if m["name"] == name)

    assert [spec(dev, n)["replicaCount"] for n in ("llama3", "qwen")] == [1, 1]
    assert [spec(prod, n)["replicaCount"] for n in ("llama3", "qwen", "llama3-canary")] == [3, 1, 1]
    assert spec(dev, "llama3")["vllmConfig"]["maxModelLen"] == "4096"
    assert spec(prod, "llama3")["vllmConfig"]["maxModelLen"] == "32768"
    assert spec(prod, "llama3")["tag"] == "v0.10.1"
    assert spec(prod, "llama3")["storageClass"] == "fast-ssd"
    assert spec(dev, "llama3")["tag"] == "latest"


def test_helm_template_dev_and_prod(run: Run, catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's objects per environment: dev's Deployment with 1 replica and a short
    context, prod's with 3 replicas, the pinned image and prod's release name."""
    import shutil

    from tests.sandbox.fixtures import MINI_CHART

    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    monkeypatch.setenv("VLLM_CHART", str(MINI_CHART))
    monkeypatch.setenv("VLLM_MODEL_TAG", "v0.10.1")  # dev's engines: a tag the flag check knows

    def deployment(env: str, name: str) -> dict[str, Any]:
        result = run("template", "--env", env, env={"VLLM_CHART_VERSION": "0.1.8"})
        assert result.exit_code == 0, result.stderr
        objects = [o for o in YAML(typ="safe").load_all(result.stdout) if o]
        return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)

    dev = deployment("dev", "vllm-llama3-deployment-vllm")
    prod = deployment("prod", "serving-llama3-deployment-vllm")
    assert dev["spec"]["replicas"] == 1 and prod["spec"]["replicas"] == 3
    dev_engine, prod_engine = (d["spec"]["template"]["spec"]["containers"][0] for d in (dev, prod))
    assert "4096" in dev_engine["command"] and "32768" in prod_engine["command"]
    assert prod_engine["image"] == "vllm/vllm-openai:v0.10.1"


# ---------------------------------------------------------------- editing commands


@pytest.mark.parametrize(
    "args",
    [
        ("set-model", "llama3", "replicaCount=1"),
        ("remove-model", "qwen", "--yes"),
        ("add-model", "--yes", "--offline", "--name", "phi", "--model-url", "microsoft/phi-4"),
    ],
)
def test_editing_commands_refuse_while_an_environment_is_selected(
    run: Run, catalog: Path, args: tuple[str, ...]
) -> None:
    stderr = failure(run, *args, "--env", "dev")
    assert (
        f"error: {args[0]} edits models.yaml, which every environment shares, but --env dev selects "
        "the environment 'dev'. To change every environment, run it without --env; to change dev "
        "alone, edit models.dev.yaml"
    ) in stderr
    result = run(*args, env={"VLLM_ENV": "dev"})
    assert result.exit_code == 2 and "run it with VLLM_ENV unset" in result.stderr
    assert (catalog / "models.yaml").read_text() == BASE
    assert (catalog / "models.dev.yaml").read_text() == DEV
    # without an environment they edit models.yaml, as always
    assert run(*args).exit_code == 0
    assert (catalog / "models.yaml").read_text() != BASE


def test_no_environment_imports_nothing_more(isolated: Path) -> None:
    (isolated / "models.yaml").write_text(BASE)
    code = (
        "import sys\nfrom vllmctl.cli import cli\n"
        "try:\n    cli.main(['list-models'], prog_name='vllmctl')\nexcept SystemExit:\n    pass\n"
        "print('vllmctl.catalog.environments' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=isolated, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "False"


# ---------------------------------------------------------------- on the sandbox


def test_install_dev_puts_dev_replicas_into_the_dev_namespace(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_ns = f"{cluster.namespace}-dev"
    monkeypatch.delenv("VLLM_NAMESPACE")  # an env variable would win over vllmctl.yaml
    models_file.write_text(
        "- name: qwen\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n  replicaCount: 3\n"
        "  vllmConfig:\n    maxModelLen: 32768\n"
    )
    (models_file.parent / "models.dev.yaml").write_text(
        "- name: qwen\n  vllmConfig:\n    maxModelLen: 2048\n"
    )
    (models_file.parent / "vllmctl.yaml").write_text(
        f"environments:\n  dev:\n    namespace: {dev_ns}\n    replicaCount: 1\n"
    )
    try:
        result = run("install", "--env", "dev", "--yes")
        assert result.exit_code == 0, result.stderr
        assert f"namespace {dev_ns}" in result.stderr
        deployment = cluster.sandbox.get("Deployment", dev_ns, "vllm-qwen-deployment-vllm")
        assert deployment is not None
        assert deployment["spec"]["replicas"] == 1 and deployment["status"]["readyReplicas"] == 1
        (engine,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "2048" in engine["command"]
        assert cluster.sandbox.get("Deployment", cluster.namespace, "vllm-qwen-deployment-vllm") is None
        plan = run("plan", "--env", "dev")
        assert plan.exit_code == 0, plan.stderr
        assert plan.stdout.startswith(f"Plan for environment dev: release vllm in namespace {dev_ns}:")
        assert "no changes" in plan.stdout
    finally:
        if cluster.sandbox.get("Namespace", None, dev_ns) is not None:
            cluster.sandbox.call(cluster.sandbox.store.delete, R["Namespace"], None, dev_ns)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_documented_examples_are_valid(run: Run, isolated: Path, environment: str) -> None:
    for example in (REPO / "docs" / "examples").iterdir():
        if example.is_file():  # production-stack/ is an example of its own (its own test)
            (isolated / example.name).write_text(example.read_text())
    result = run("validate", "--env", environment)
    assert result.exit_code == 0, result.stderr
    replicas = {m["replicaCount"] for m in models(run, "--env", environment).values()}
    assert replicas == ({1} if environment == "dev" else {1, 3})
