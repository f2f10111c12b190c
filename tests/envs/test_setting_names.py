"""Namespace, release and context names are checked from every source (flag, env variable,
vllmctl.yaml) before anything uses them, as Kubernetes and helm would check them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Run

ENTRY = "- name: a\n  modelURL: org/a\n"


@pytest.fixture
def catalog(models_file: Path) -> Path:
    models_file.write_text(ENTRY)
    return models_file


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--namespace", "Bad_NS"], {}, "--namespace Bad_NS: 'Bad_NS' is not a namespace name"),
        ([], {"VLLM_NAMESPACE": "Bad_NS"}, "VLLM_NAMESPACE=Bad_NS: 'Bad_NS' is not a namespace name"),
        ([], {"VLLM_NAMESPACE": "a" * 64}, "a namespace name has at most 63"),
        ([], {"VLLM_RELEASE": "Vllm"}, "VLLM_RELEASE=Vllm: 'Vllm' is not a release name"),
        ([], {"VLLM_RELEASE": "my.release"}, "'my.release' is not a release name"),
        ([], {"VLLM_RELEASE": "r" * 54}, "helm allows at most 53"),
        ([], {"VLLM_KUBE_CONTEXT": "a\tb"}, "VLLM_KUBE_CONTEXT=a\tb: 'a\\tb' holds a control character"),
    ],
    ids=["ns-flag", "ns-env", "ns-long", "release-upper", "release-dot", "release-long", "context"],
)
def test_bad_names_are_refused_by_render_and_config(
    run: Run, catalog: Path, args: list[str], env: dict[str, str], said: str
) -> None:
    if not said.startswith("VLLM_KUBE"):  # render uses only namespace and release
        rendered = run("render", *args, env=env)
        assert rendered.exit_code == 2, rendered.stdout
        assert said in rendered.stderr
        assert "internal error" not in rendered.stderr
    shown = run("config", *args, env=env)
    assert shown.exit_code == 2
    assert said in shown.stderr
    assert "SETTING" in shown.stdout  # the table is shown first, as given


def test_a_bad_namespace_in_vllmctl_yaml_is_refused_at_its_line(run: Run, catalog: Path) -> None:
    (catalog.parent / "vllmctl.yaml").write_text("environments:\n  dev:\n    namespace: Bad_NS\n")
    for command in (["validate"], ["config"], ["render"], ["list-models"]):
        result = run(*command, "--env", "dev")
        assert result.exit_code == 2, command
        assert "vllmctl.yaml:3:16: environments.dev.namespace: 'Bad_NS' is not a namespace name" in (
            result.stderr
        )


def test_context_names_are_not_dns_names(run: Run, catalog: Path) -> None:
    """kubeconfig context names are free text (EKS writes ARNs, others 'team/prod')."""
    for context in ("arn:aws:eks:eu-west-1:123456789012:cluster/Prod", "Team Prod", "kind-kind"):
        result = run("config", "-o", "json", env={"VLLM_KUBE_CONTEXT": context})
        assert result.exit_code == 0, result.stderr
        assert context in result.stdout


def test_good_names_pass(run: Run, catalog: Path) -> None:
    env = {"VLLM_NAMESPACE": "llm-serving", "VLLM_RELEASE": "vllm-2"}
    assert run("render", env=env).exit_code == 0
    assert run("config", env=env).exit_code == 0
