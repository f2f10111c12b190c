"""models.yaml's engine fields: startup budget, accelerator, strategy and pdb, image and tag.

Each is validated (with file:line:column), rendered into chart values, rendered by the real
helm into objects (the mini chart at the version that has the key), and installed on the
sandbox, where the objects it changes are read back.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import Run
from tests.render.test_values import given_input, models
from tests.sandbox.fixtures import ClusterEnv, mini_chart_at
from vllmctl.catalog.store import parse
from vllmctl.core.errors import UsageError
from vllmctl.features import startup
from vllmctl.render.values import Rendered, render

needs_helm = pytest.mark.skipif(shutil.which("helm") is None, reason="scripts/test puts helm on PATH")
SMALL = "- name: small\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n"


def problems(text: str) -> list[str]:
    return [str(p) for p in parse(Path("models.yaml"), text.encode()).problems]


def rendered(text: str, **overrides: Any) -> Rendered:
    given = given_input()
    for key, value in overrides.items():
        setattr(given, key, value)
    return render(models(text), given)


def engine(text: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = rendered(text, **overrides).values["servingEngineSpec"]
    return spec


def spec_of(text: str, name: str = "small", **overrides: Any) -> dict[str, Any]:
    return next(m for m in engine(text, **overrides)["modelSpec"] if m["name"] == name)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("maxStartupSeconds: 29", "maxStartupSeconds: must be 30 or more, not 29"),
        ("maxStartupSeconds: '600'", "write 600 without quotes"),
        ("maxStartupSeconds: 100000", "must be at most 86400 (a day)"),
        ("accelerator: NVIDIA", "'NVIDIA' is spelt 'nvidia'"),
        ("accelerator: intel", "set requestGPUType (and runtimeClassName) instead"),
        ("accelerator: nvidia.com/mig-9g.10gb", "write it as nvidia.com/mig-<n>g.<m>gb"),
        ("accelerator: nvidia.com/mig-4g", "is not a MIG profile"),
        ("strategy: Recreate", "must be rolling or recreate, not the string 'Recreate'; write 'recreate'"),
        ("strategy: RollingUpdate", "write 'rolling'"),
        ("pdb: 'yes'", "must be true, false or a mapping of the chart's pdb keys"),
        ("pdb: {maxUnavailable: 0}", "the chart drops 0"),
        ("pdb: {minAvailable: 1, maxUnavailable: 1}", "not both"),
        ("pdb: {minAvailable: '150%'}", "from 0% to 100%"),
        ("pdb: {maxSurge: 1}", "unknown key 'maxSurge'"),
        ("image: vllm/vllm-openai:v0.9.2", "write image: vllm/vllm-openai and tag: 'v0.9.2'"),
        ("image: vllm/vllm-openai@sha256:abc", "has a digest"),
        ("image: Vllm/Openai", "is not an image repository"),
        ("tag: 0.10", "quote it: tag: '0.1'"),
        ("tag: 'v1 beta'", "is not an image tag"),
    ],
)
def test_bad_values_are_named_with_their_position(line: str, message: str) -> None:
    (problem,) = problems(SMALL + f"  {line}\n")
    assert problem.startswith("models.yaml:3:")
    assert message in problem, problem


@pytest.mark.parametrize(
    "line",
    [
        "maxStartupSeconds: 30",
        "maxStartupSeconds: 3600",
        "accelerator: nvidia",
        "accelerator: amd",
        "accelerator: gaudi",
        "accelerator: nvidia.com/gpu",
        "accelerator: nvidia.com/mig-4g.71gb",
        "accelerator: nvidia.com/mig-1g.10gb",
        "accelerator: amd.com/gpu",
        "accelerator: habana.ai/gaudi",
        "strategy: rolling",
        "strategy: recreate",
        "pdb: false",
        "pdb: true",
        "pdb: {maxUnavailable: 2}",
        "pdb: {minAvailable: '50%', labels: {team: ml}}",
        "image: registry.example.com:5000/vllm/vllm-openai",
        "image: ghcr.io/org/vllm_custom",
        "tag: v0.9.2-cu128",
        "tag: '0.10.1.1'",
    ],
)
def test_good_values_pass(line: str) -> None:
    assert problems(SMALL + f"  {line}\n") == []


def test_contradictions_between_fields_are_refused() -> None:
    text = SMALL + "  accelerator: amd\n  requestGPUType: nvidia.com/gpu\n"
    assert problems(text) == [
        "models.yaml:4:19: models[0] (small).requestGPUType: 'nvidia.com/gpu' contradicts accelerator "
        "'amd' (amd.com/gpu); keep one of the two"
    ]
    assert problems(SMALL + "  accelerator: amd\n  requestGPUType: amd.com/gpu\n") == []
    (problem,) = problems(SMALL + "  image: a/b\n  repository: c/d\n")
    assert problem.startswith("models.yaml:4:15:") and "contradicts image 'a/b'" in problem


# ------------------------------------------------------------------ 1. startup budget


@pytest.mark.parametrize(
    ("url", "billions", "seconds"),
    [
        ("Qwen/Qwen2.5-1.5B-Instruct", 1.5, 300),
        ("HuggingFaceTB/SmolLM2-135M", 0.135, 300),
        ("meta-llama/Llama-3.1-8B-Instruct", 8, 600),
        ("org/model-13b", 13, 600),
        ("Qwen/Qwen3-30B-A3B", 30, 1800),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56, 1800),
        ("meta-llama/Llama-3.1-70B-Instruct", 70, 1800),
        ("openai/gpt-oss-120b", 120, 3600),
        ("microsoft/phi-2", None, 600),
        ("pvc://models/llama-405B", 405, 3600),
    ],
)
def test_a_budget_is_guessed_from_the_size_in_the_name(
    url: str, billions: float | None, seconds: int
) -> None:
    assert startup.parameters_from_name(url) == billions
    assert startup.budget({"name": "m", "modelURL": url}, None, "VLLM_MAX_STARTUP_SECONDS").seconds == seconds


def test_the_release_probe_covers_the_slowest_model() -> None:
    big = "- name: big\n  modelURL: meta-llama/Llama-3.1-70B-Instruct\n"
    probe = engine(SMALL + big)["startupProbe"]
    assert probe == {
        "initialDelaySeconds": 15,
        "periodSeconds": 10,
        "failureThreshold": 180,
        "httpGet": {"path": "/health", "port": 8000},
    }
    # The entry's own budget wins over the guess; 305 s rounds up to 31 tries.
    assert engine(SMALL + "  maxStartupSeconds: 305\n")["startupProbe"]["failureThreshold"] == 31
    # The setting is the default of entries without one.
    assert engine(SMALL, max_startup_seconds=1200)["startupProbe"]["failureThreshold"] == 120
    own = SMALL + "  maxStartupSeconds: 2400\n"
    assert engine(own, max_startup_seconds=1200)["startupProbe"]["failureThreshold"] == 240


def test_the_charts_own_600_seconds_are_not_repeated() -> None:
    # An 8B model needs the chart's default probe: the values (and a plan) stay as they were.
    assert "startupProbe" not in engine("- name: l\n  modelURL: meta-llama/Llama-3.1-8B-Instruct\n")
    assert "startupProbe" not in engine(SMALL + "  maxStartupSeconds: 600\n")
    assert "startupProbe" not in engine("")


def test_a_bad_startup_setting_names_the_variable() -> None:
    with pytest.raises(UsageError, match=r"VLLM_MAX_STARTUP_SECONDS=10 must be a whole number of seconds"):
        engine(SMALL, max_startup_seconds=10)


# ------------------------------------------------------------------ 4. accelerators


def test_accelerators_become_the_charts_gpu_type_and_runtime_class() -> None:
    amd = spec_of(SMALL + "  accelerator: amd\n")
    assert (amd["requestGPUType"], amd["runtimeClassName"]) == ("amd.com/gpu", "")
    gaudi = spec_of(SMALL + "  accelerator: gaudi\n")
    assert (gaudi["requestGPUType"], gaudi["runtimeClassName"]) == ("habana.ai/gaudi", "")
    mig = spec_of(SMALL + "  accelerator: nvidia.com/mig-4g.71gb\n")
    assert (mig["requestGPUType"], mig["runtimeClassName"]) == ("nvidia.com/mig-4g.71gb", "nvidia")
    own = spec_of(SMALL + "  accelerator: amd\n  runtimeClassName: rocm\n")
    assert (own["requestGPUType"], own["runtimeClassName"]) == ("amd.com/gpu", "rocm")
    assert "requestGPUType" not in spec_of(SMALL) and "runtimeClassName" not in spec_of(SMALL)
    assert "accelerator" not in amd  # not a chart key


def test_the_gpu_fit_asks_for_the_same_resource() -> None:
    from vllmctl.ops.gpufit import NodeGpus, check_fit, needs_from_models

    (need,) = needs_from_models(models(SMALL + "  accelerator: amd\n  requestGPU: 2\n"))
    assert dict(need.per_replica) == {"amd.com/gpu": 2}
    nvidia = [NodeGpus("gpu-node-1", {"nvidia.com/gpu": 4})]
    (shortfall,) = check_fit(nvidia, [need]).shortfalls
    assert "no node has amd.com/gpu (the nodes offer nvidia.com/gpu)" in shortfall.message
    assert check_fit([NodeGpus("amd-1", {"amd.com/gpu": 2})], [need]).placements == {"small": ["amd-1"]}


# ------------------------------------------------------------------ 6. strategy and PDB

TWO = "- name: big\n  modelURL: meta-llama/Llama-3.1-8B-Instruct\n  replicaCount: 2\n"


def test_one_recreate_makes_the_release_recreate_and_says_so() -> None:
    result = rendered(SMALL + "  strategy: recreate\n" + TWO)
    assert result.values["servingEngineSpec"]["strategy"] == {"type": "Recreate"}
    assert any(w.startswith("big will also be updated by Recreate") for w in result.warnings)
    assert "strategy" not in engine(SMALL + "  strategy: rolling\n")  # the chart's RollingUpdate
    with pytest.raises(
        UsageError, match="small asks for recreate and big for rolling, but the chart has one"
    ):
        rendered(SMALL + "  strategy: recreate\n" + TWO + "  strategy: rolling\n")


def test_recreate_means_no_surge_warning() -> None:
    from vllmctl.ops.deploy import Prepared, rolling_models
    from vllmctl.render.plan import make_plan

    deployed = SimpleNamespace(values=rendered(SMALL + TWO, chart_version="0.1.12").values)
    changed = SMALL + "  vllmConfig: {maxModelLen: 4096}\n" + TWO

    def rolling(text: str) -> dict[str, int]:
        new = rendered(text, chart_version="0.1.12")
        plan = make_plan("vllm", "vllm", deployed.values, new.values)
        return rolling_models(Prepared(models(text), new, deployed, plan))  # type: ignore[arg-type]

    assert rolling(changed) == {"small": 1}  # its pods are replaced, surge first
    assert rolling(changed + "  strategy: recreate\n") == {}  # old pods stop first: no surge
    assert rolling(SMALL + TWO + "  pdb: false\n") == {}  # a PDB is no pod template change


def test_models_with_replicas_get_a_pdb_from_chart_0_1_11() -> None:
    assert spec_of(TWO, "big", chart_version="0.1.11")["pdb"] == {"enabled": True, "maxUnavailable": 1}
    assert "pdb" not in spec_of(SMALL, chart_version="0.1.12")  # one replica: nothing to keep up
    assert "pdb" not in spec_of(TWO + "  pdb: false\n", "big", chart_version="0.1.12")
    assert spec_of(SMALL + "  pdb: true\n", chart_version="0.1.12")["pdb"] == {
        "enabled": True,
        "maxUnavailable": 1,
    }
    own = spec_of(TWO + "  pdb: {minAvailable: '50%'}\n", "big", chart_version="0.1.12")
    assert own["pdb"] == {"enabled": True, "minAvailable": "50%"}


def test_older_charts_get_no_pdb_and_a_warning() -> None:
    result = rendered(TWO, chart_version="0.1.10")
    assert "pdb" not in result.values["servingEngineSpec"]["modelSpec"][0]
    assert any("big runs several replicas, but chart 0.1.10 makes no per-model" in w for w in result.warnings)
    assert not any("PodDisruptionBudget" in w for w in rendered(TWO + "  pdb: false\n").warnings)
    with pytest.raises(
        UsageError, match=r"big: pdb needs chart 0.1.11 or newer .* the chart version is 0.1.8"
    ):
        rendered(TWO + "  pdb: true\n")


# ------------------------------------------------------------------ 10. image pinning


def test_a_models_image_and_tag_override_the_settings() -> None:
    text = SMALL + "  image: registry.example.com/vllm\n  tag: v0.9.2\n" + TWO
    result = rendered(text, chart_version="0.1.12")
    small, big = result.values["servingEngineSpec"]["modelSpec"]
    assert (small["repository"], small["tag"]) == ("registry.example.com/vllm", "v0.9.2")
    assert (big["repository"], big["tag"]) == ("vllm/vllm-openai", "v0.11.0")
    assert not result.warnings


def test_the_flag_check_uses_the_models_own_tag() -> None:
    off = SMALL + "  vllmConfig: {enablePrefixCaching: false}\n"
    rendered(off)  # the setting's v0.11.0 knows the flag
    with pytest.raises(UsageError, match=r"small: vLLM v0.6.4 does not know --no-enable-prefix-caching"):
        rendered(off + "  tag: v0.6.4\n")


def test_unpinned_tags_are_warned_about_per_model() -> None:
    result = rendered(SMALL + "  tag: latest\n")
    assert result.warnings == [
        "small: the engine image tag 'latest' is not pinned to a vLLM release; "
        "pin the model's tag (e.g. v0.11.0)."
    ]
    # The setting's tag is not warned about when every model pins its own.
    assert not rendered(SMALL + "  tag: v0.10.1\n", tag="latest").warnings


def test_doctor_warns_on_latest_per_model() -> None:
    from vllmctl.core.findings import Report
    from vllmctl.doctor import release
    from vllmctl.settings import Settings

    settings = Settings.resolve({}, environ={"VLLM_MODEL_TAG": "v0.11.0"})
    report = Report()
    release.check_image(report, settings, models(SMALL + "  tag: latest\n" + TWO))
    (check,) = report.checks
    assert check.status == "warn"
    assert check.detail.startswith(
        "the engines run vllm/vllm-openai:latest (small); vllm/vllm-openai:v0.11.0 (big)"
    )
    assert check.fix == "set `tag` to a release on small in models.yaml"
    report = Report()
    release.check_image(report, settings, models(TWO))
    assert report.checks[0].status == "ok"


# ------------------------------------------------------------------ helm template

EVERYTHING = """\
- name: small
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  accelerator: amd
  image: registry.example.com/vllm-rocm
  tag: v0.9.2
- name: big
  modelURL: meta-llama/Llama-3.1-70B-Instruct
  replicaCount: 2
  accelerator: nvidia.com/mig-4g.71gb
  strategy: recreate
"""
TEMPLATE_ENV = {"VLLM_MODEL_TAG": "v0.11.0", "VLLM_RELEASE": "rel", "VLLM_NAMESPACE": "ns"}


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    from ruamel.yaml import YAML

    return {(o["kind"], o["metadata"]["name"]): o for o in YAML(typ="safe").load_all(text) if o}


@needs_helm
def test_helm_template_renders_every_field_into_objects(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(EVERYTHING)
    chart = mini_chart_at("0.1.12", tmp_path)
    result = run("template", env={**TEMPLATE_ENV, "VLLM_CHART": str(chart), "VLLM_CHART_VERSION": "0.1.12"})
    assert result.exit_code == 0, result.stderr
    assert "small will also be updated by Recreate" in result.stderr
    found = objects(result.stdout)
    small = found[("Deployment", "rel-small-deployment-vllm")]["spec"]
    big = found[("Deployment", "rel-big-deployment-vllm")]["spec"]
    assert small["strategy"] == big["strategy"] == {"type": "Recreate"}
    pod, container = small["template"]["spec"], small["template"]["spec"]["containers"][0]
    assert "runtimeClassName" not in pod  # accelerator: amd
    assert container["resources"]["limits"] == {"amd.com/gpu": "1"}
    assert container["image"] == "registry.example.com/vllm-rocm:v0.9.2"
    assert container["startupProbe"]["failureThreshold"] == 180  # 70B: 1800 s
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    pod, container = big["template"]["spec"], big["template"]["spec"]["containers"][0]
    assert pod["runtimeClassName"] == "nvidia"
    assert container["resources"]["limits"] == {"nvidia.com/mig-4g.71gb": "1"}
    assert container["image"] == "vllm/vllm-openai:v0.11.0"
    pdb = found[("PodDisruptionBudget", "rel-big-pdb-vllm")]["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": {**pod_labels(big), "model": "big"}}}
    assert ("PodDisruptionBudget", "rel-small-pdb-vllm") not in found


def pod_labels(deployment_spec: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment_spec["selector"]["matchLabels"]
    return labels


@needs_helm
def test_helm_template_on_an_old_chart_makes_no_pdb(run: Run, models_file: Path) -> None:
    from tests.sandbox.fixtures import MINI_CHART

    models_file.write_text(EVERYTHING)
    result = run(
        "template", env={**TEMPLATE_ENV, "VLLM_CHART": str(MINI_CHART), "VLLM_CHART_VERSION": "0.1.8"}
    )
    assert result.exit_code == 0, result.stderr
    assert (
        "big runs several replicas, but chart 0.1.8 makes no per-model PodDisruptionBudget" in result.stderr
    )
    assert not [key for key in objects(result.stdout) if key[0] == "PodDisruptionBudget"]


# ------------------------------------------------------------------ on the sandbox

# `gated: false`: these tests are not about the HuggingFace token; without it install asks
# the Hub, which says the repo is gated, and wants a token (tests/secrets/test_old_tool.py).
ON_CLUSTER = """\
- name: small
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  accelerator: amd
  tag: v0.9.2
  strategy: recreate
- name: pair
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  gated: false
  replicaCount: 2
  maxStartupSeconds: 1200
"""


def test_install_changes_the_cluster_as_the_fields_say(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.sandbox.kube.controllers import NodeSpec, R

    sandbox = cluster.sandbox
    assert sandbox.cluster is not None
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.12", tmp_path)))
    monkeypatch.setenv("VLLM_CHART_VERSION", "0.1.12")
    models_file.write_text(ON_CLUSTER)
    # Without a node offering amd.com/gpu, the GPU fit stops the install before helm.
    refused = run("install", "--yes", "--no-api-key")
    assert refused.exit_code == 2
    assert "no node has amd.com/gpu" in refused.stderr
    sandbox.call(sandbox.cluster.add_node, NodeSpec("amd-node-1", gpus=1, gpu_resource="amd.com/gpu"))
    try:
        result = run("install", "--yes", "--no-api-key")
        assert result.exit_code == 0, result.stderr
        ns = cluster.namespace
        small = sandbox.get("Deployment", ns, "vllm-small-deployment-vllm")
        pair = sandbox.get("Deployment", ns, "vllm-pair-deployment-vllm")
        assert small is not None and pair is not None
        assert small["spec"]["strategy"] == {"type": "Recreate"}
        assert pair["spec"]["strategy"] == {"type": "Recreate"}
        probe = pair["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
        assert (probe["periodSeconds"], probe["failureThreshold"]) == (10, 120)
        pods = {
            p["metadata"]["labels"]["model"]: p
            for p in sandbox.list("Pod", ns)
            if "model" in p["metadata"]["labels"]
        }
        amd_pod = pods["small"]
        assert amd_pod["spec"]["nodeName"] == "amd-node-1"
        assert "runtimeClassName" not in amd_pod["spec"]
        assert amd_pod["spec"]["containers"][0]["resources"]["limits"] == {"amd.com/gpu": "1"}
        assert amd_pod["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.9.2"
        assert pods["pair"]["spec"]["runtimeClassName"] == "nvidia"
        assert pods["pair"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.10.1"
        (pdb,) = sandbox.list("PodDisruptionBudget", ns)
        assert pdb["metadata"]["name"] == "vllm-pair-pdb-vllm"
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"]["model"] == "pair"
    finally:
        sandbox.call(sandbox.store.delete, R["Node"], None, "amd-node-1")


def test_the_commented_examples_are_valid() -> None:
    from tests.conftest import REPO

    text = (REPO / "models.example.yaml").read_text().split("# Examples", 1)[1]
    body = "\n".join(line[2:] if line.startswith("# ") else "" for line in text.splitlines()[1:])
    catalog = parse(Path("models.yaml"), body.encode())
    assert catalog.problems == []
    assert {"maxStartupSeconds", "accelerator", "strategy", "pdb", "image", "tag"} <= {
        key for model in catalog.models for key in model.data
    }


def test_a_copied_template_that_drops_the_engine_wide_values_is_caught(tmp_path: Path) -> None:
    from vllmctl.core.errors import CatalogError
    from vllmctl.render.values import packaged_templates

    text = (packaged_templates() / "values.yaml.j2").read_text()
    old = tmp_path / "old"
    old.mkdir()
    (old / "values.yaml.j2").write_text(text.replace("{%- if strategy %}", "{%- if false %}"))
    with pytest.raises(
        CatalogError, match=r"servingEngineSpec.strategy = null, not \{\"type\": \"Recreate\"\}"
    ):
        rendered(SMALL + "  strategy: recreate\n", templates_dir=old)
    (old / "values.yaml.j2").write_text(text.replace("{%- if startup_probe %}", "{%- if false %}"))
    with pytest.raises(CatalogError, match=r"no servingEngineSpec\.startupProbe, but the models' startup"):
        rendered(SMALL, templates_dir=old)
    # A probe of the template's own is the documented override.
    own = text.replace("startupProbe: {{ startup_probe | yaml }}", "startupProbe: {periodSeconds: 5}")
    (old / "values.yaml.j2").write_text(own)
    assert engine(SMALL, templates_dir=old)["startupProbe"] == {"periodSeconds": 5}
