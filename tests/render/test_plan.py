"""`plan`: a model-level diff of a stored release's values against what models.yaml renders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.render.test_values import given_input, models
from vllmctl.render.plan import make_plan
from vllmctl.render.values import DeployedLabels, render

DEPLOYED: dict[str, Any] = json.loads((REPO / "tests" / "fixtures" / "release-values.json").read_text())

NOW = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  replicaCount: 2
  vllmConfig: {maxModelLen: 8192}
- name: qwen
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
"""


def planned(text: str, deployed: dict[str, Any] | None = DEPLOYED, **env: str) -> Any:
    given = given_input(**env)
    if deployed is not None:
        given.deployed_labels = DeployedLabels.from_values(deployed)
    values = render(models(text), given).values
    return make_plan(
        "vllm", "vllm", deployed, values, deployed_chart="0.1.8", target_chart=given.chart_version
    )


def test_added_removed_and_changed_models() -> None:
    plan = planned(NOW)
    assert plan.lines() == [
        "Plan for release vllm in namespace vllm:",
        "  ~ llama3: replicaCount 1 -> 2; vllmConfig.maxModelLen 4096 -> 8192",
        "  + qwen (Qwen/Qwen2.5-1.5B-Instruct)",
        "  - retired",
    ]
    assert plan.has_changes


def test_nothing_to_do() -> None:
    same = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  vllmConfig: {maxModelLen: 4096}
- name: retired
  modelURL: org/retired
"""
    plan = planned(same)
    assert not plan.has_changes
    assert plan.lines()[-1] == "  no changes"


def test_router_changes_are_shown() -> None:
    plan = planned(NOW, VLLM_ROUTER_REPLICAS="3", VLLM_ROUTER_LIMIT_MEMORY="1Gi")
    assert ("routerSpec.replicaCount", 1, 3) in plan.other
    assert ("routerSpec.resources.limits.memory", "768Mi", "1Gi") in plan.other


def test_no_release_yet_means_everything_is_added() -> None:
    plan = planned(NOW, deployed=None)
    assert [m.action for m in plan.models] == ["add", "add"]
    assert (
        plan.lines()[0] == "Plan for release vllm in namespace vllm (not installed yet: everything is added):"
    )


def test_json_carries_the_same_facts() -> None:
    data = planned(NOW).as_json()
    assert data["changes"] is True
    llama = next(m for m in data["models"] if m["name"] == "llama3")
    assert {"path": "replicaCount", "old": 1, "new": 2} in llama["fields"]
    assert [m["action"] for m in data["models"]] == ["change", "add", "remove"]


def test_a_chart_upgrade_that_changes_selectors_is_a_blocker() -> None:
    plan = planned(NOW, VLLM_CHART_VERSION="0.1.10")
    assert len(plan.blockers) == 1
    assert "0.1.8 -> 0.1.10 changes the engine and router Deployments' selectors" in plan.blockers[0]
    assert "--replace-deployments" in plan.blockers[0]
    assert not planned(NOW, VLLM_CHART_VERSION="0.1.9").blockers


def test_the_fixture_is_what_render_produces(tmp_path: Path) -> None:
    # Keeps the stored release honest: it is vllmctl's own output for those models.
    old = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  vllmConfig: {maxModelLen: 4096}
- name: retired
  modelURL: org/retired
"""
    assert render(models(old), given_input()).values == DEPLOYED
