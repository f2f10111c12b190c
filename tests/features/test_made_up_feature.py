"""A new chart feature is one module and one registry line (issue 16): the made-up
feature in made_up_feature.py, added to the registry here, is validated by the schema,
rendered, refused for an old chart, and checked by doctor, with no change to vllmctl."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ruamel.yaml import YAML

from tests.conftest import Run
from tests.features import made_up_feature
from tests.sandbox.fixtures import ClusterEnv
from vllmctl.core.errors import UsageError
from vllmctl.core.fields import Field
from vllmctl.features import registry
from vllmctl.features.base import Feature
from vllmctl.features.contexts import ModelValues

MODELS = """\
- name: qwen
  modelURL: Qwen/Qwen2.5-0.5B-Instruct
  gated: false
  costCenter: {center}
  podLabels:
    team: search
- name: smol
  modelURL: HuggingFaceTB/SmolLM2-135M-Instruct
  gated: false
"""


def refused_by_validate(run: Run, models_file: Path, text: str) -> str:
    """validate's stderr for `text` as models.yaml, which it must refuse (exit 2, no traceback)."""
    models_file.write_text(text)
    result = run("validate")
    assert result.exit_code == 2, result.stdout
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return result.stderr


@pytest.fixture
def with_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry line: what a real feature adds to vllmctl/features/registry.py."""
    monkeypatch.setattr(registry, "FEATURES", [*registry.FEATURES, made_up_feature.FEATURE])


def test_without_its_registry_line_the_field_is_unknown(run: Run, models_file: Path) -> None:
    said = refused_by_validate(run, models_file, MODELS.format(center="ml-research"))
    assert "models.yaml:4:3: models[0] (qwen).costCenter: unknown key 'costCenter'" in said


@pytest.mark.usefixtures("with_feature")
def test_its_field_is_checked_at_its_line_and_column(run: Run, models_file: Path) -> None:
    said = refused_by_validate(run, models_file, MODELS.format(center="ML Research"))
    assert (
        "models.yaml:4:15: models[0] (qwen).costCenter: must be a cost center like ml-research "
        "(lowercase letters, digits, '-'), not the string 'ML Research'"
    ) in said
    models_file.write_text(MODELS.format(center="ml-research").replace("costCenter", "costcenter"))
    assert "did you mean 'costCenter'?" in run("validate").stderr  # the schema knows the key


@pytest.mark.usefixtures("with_feature")
def test_it_renders_its_value_joined_with_the_entrys_own(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(MODELS.format(center="ml-research"))
    assert run("validate").exit_code == 0
    out = tmp_path / "values.yaml"
    assert run("render", "-o", str(out)).exit_code == 0
    specs = YAML(typ="safe").load(out.read_text())["servingEngineSpec"]["modelSpec"]
    assert specs[0]["podLabels"] == {"team": "search", made_up_feature.LABEL: "ml-research"}
    assert "podLabels" not in specs[1]


@pytest.mark.usefixtures("with_feature")
def test_its_chart_version_rule_is_reported_at_the_key_and_refused_by_render(
    run: Run, models_file: Path
) -> None:
    models_file.write_text(MODELS.format(center="ml-research"))
    env = {"VLLM_CHART_VERSION": "0.1.11"}
    result = run("validate", env=env)
    assert result.exit_code == 2
    assert "models.yaml:4:3: models[0] (qwen).costCenter: costCenter needs chart 0.1.12" in result.stderr
    rendered = run("render", env=env)
    assert rendered.exit_code == 2
    assert "qwen: costCenter needs chart 0.1.12 or newer (podLabels); it is 0.1.11." in rendered.stderr


@pytest.mark.usefixtures("with_feature")
def test_doctor_runs_its_check(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(MODELS.format(center="ml-research"))
    result = run("doctor", "-o", "json", "--secret-backend", "kubernetes")
    report = json.loads(result.stdout)
    found = [c for c in report["checks"] if c["name"] == "cost center"]
    assert found == [
        {
            "area": "release",
            "name": "cost center",
            "status": "warn",
            "detail": "no cost center: smol",
            "fix": "set costCenter",
        }
    ]


class Team(Feature):
    """A second made-up feature that joins the same modelSpec key, and asks for a key the
    entry may lack: both must work beside the first."""

    name = "team"
    fields: ClassVar[Mapping[str, Field]] = {"team": Field(made_up_feature.check_center, "the owning team")}
    merged_keys = ("podLabels",)

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        if "costCenter" in entry and "team" not in entry:
            return [("team", "give team with costCenter (the team answers for the bill)")]
        return []

    def model_values(self, model: ModelValues) -> None:
        if "team" in model.data:
            model.spec["podLabels"] = {
                **(model.spec.get("podLabels") or {}),
                "example.com/team": model.data["team"],
            }

    def merge(self, model: str, key: str, ours: Any, theirs: Any) -> Any:
        if isinstance(theirs, dict) and "example.com/team" in theirs:
            raise UsageError(f"{model}: podLabels sets example.com/team; give it as team instead.")
        return {**theirs, **ours} if isinstance(ours, dict) and isinstance(theirs, dict) else theirs


@pytest.fixture
def with_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "FEATURES", [*registry.FEATURES, made_up_feature.FEATURE, Team()])


@pytest.mark.usefixtures("with_two")
def test_two_features_join_one_key_in_registry_order(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(
        MODELS.format(center="ml-research").replace("  podLabels:", "  team: search\n  podLabels:")
    )
    out = tmp_path / "values.yaml"
    assert run("render", "-o", str(out)).exit_code == 0
    labels = YAML(typ="safe").load(out.read_text())["servingEngineSpec"]["modelSpec"][0]["podLabels"]
    assert labels == {"team": "search", made_up_feature.LABEL: "ml-research", "example.com/team": "search"}
    models_file.write_text(
        MODELS.format(center="ml-research").replace("  podLabels:", "  team: search\n  podLabels:")
        + "  podLabels:\n    example.com/team: other\n"
    )  # the second model's own label: the second feature's merge refuses it
    refused = run("render")
    assert refused.exit_code == 2
    assert "smol: podLabels sets example.com/team; give it as team instead." in refused.stderr


@pytest.mark.usefixtures("with_two")
def test_a_check_naming_a_key_the_entry_lacks_points_at_the_entry(run: Run, models_file: Path) -> None:
    said = refused_by_validate(run, models_file, MODELS.format(center="ml-research"))
    assert (
        "models.yaml:1:3: models[0] (qwen).team: give team with costCenter (the team answers for the bill)"
        in said
    )


@pytest.mark.usefixtures("with_feature")
def test_doctor_runs_its_check_without_a_cluster(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(MODELS.format(center="ml-research"))
    result = run("doctor", "-o", "json", env={"KUBECONFIG": str(tmp_path / "none")})
    report = json.loads(result.stdout)
    assert [c["detail"] for c in report["checks"] if c["name"] == "cost center"] == ["no cost center: smol"]
