"""Rendering models.yaml into vllm-stack values: the contract, and that no input escapes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllmctl.catalog.store import parse
from vllmctl.core.errors import UsageError
from vllmctl.render.values import (
    API_KEY_SECRET,
    HF_TOKEN_SECRET,
    DeployedLabels,
    RenderInput,
    default_render_input,
    render,
    to_yaml,
)
from vllmctl.settings import Settings

LLAMA = "- name: llama3\n  modelURL: meta-llama/Llama-3.1-8B-Instruct\n"


def models(text: str) -> list[Any]:
    catalog = parse(Path("models.yaml"), text.encode())
    assert not catalog.problems, catalog.problems
    return catalog.models


def given_input(**env: str) -> RenderInput:
    # Pinned to the chart these tests were written for (the default is the newest tested).
    environ = {"VLLM_MODEL_TAG": "v0.11.0", "VLLM_CHART_VERSION": "0.1.8", **env}
    return default_render_input(Settings.resolve({}, environ=environ))


def specs(text: str, **overrides: Any) -> list[dict[str, Any]]:
    given = given_input()
    for key, value in overrides.items():
        setattr(given, key, value)
    result: list[dict[str, Any]] = render(models(text), given).values["servingEngineSpec"]["modelSpec"]
    return result


def test_a_model_gets_every_field_the_chart_needs() -> None:
    (spec,) = specs(LLAMA + "  limitMemory: 20Gi\n  vllmConfig: {maxModelLen: 8192}\n")
    assert spec == {
        "name": "llama3",
        "repository": "vllm/vllm-openai",
        "tag": "v0.11.0",
        "modelURL": "meta-llama/Llama-3.1-8B-Instruct",
        "replicaCount": 1,
        "requestCPU": 6,
        "requestMemory": "16Gi",
        "requestGPU": 1,
        "limitMemory": "20Gi",
        "pvcStorage": "50Gi",
        "pvcAccessMode": ["ReadWriteOnce"],
        "vllmConfig": {
            "maxModelLen": "8192",
            "enablePrefixCaching": True,
            "extraArgs": ["--served-model-name", "llama3", "meta-llama/Llama-3.1-8B-Instruct"],
        },
    }


def test_release_wide_values() -> None:
    given = given_input(VLLM_ROUTER_REPLICAS="2", VLLM_RELEASE="prod")
    given.api_key = API_KEY_SECRET
    values = render(models(LLAMA), given).values
    engine, router = values["servingEngineSpec"], values["routerSpec"]
    assert engine["runtimeClassName"] == "nvidia"
    assert engine["labels"] == {"vllmctl.io/release": "prod"}
    assert engine["vllmApiKey"] == {"secretName": "vllm-api-key", "secretKey": "api-key"}
    assert router == {
        "enableRouter": True,
        "replicaCount": 2,
        "repository": "lmcache/lmstack-router",
        "tag": "0.1.8",  # the router released with chart 0.1.8, not the chart's `latest`
        "serviceType": "ClusterIP",
        "routingLogic": "roundrobin",
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "768Mi"}},
        "labels": {"vllmctl.io/release": "prod"},
        "vllmApiKey": {"secretName": "vllm-api-key", "secretKey": "api-key"},
    }


def test_no_api_key_means_no_key_at_all() -> None:
    # Chart 0.1.11+ fails to render with `vllmApiKey: null`.
    values = render(models(LLAMA), given_input()).values
    assert "vllmApiKey" not in values["servingEngineSpec"]
    assert "vllmApiKey" not in values["routerSpec"]


def test_secrets_are_referenced_never_inlined() -> None:
    (spec,) = specs(LLAMA, hf_token=HF_TOKEN_SECRET)
    assert spec["hf_token"] == {"secretName": "hf-token", "secretKey": "token"}


def test_served_model_name_is_the_models_yaml_name() -> None:
    (spec,) = specs(LLAMA)
    assert spec["vllmConfig"]["extraArgs"] == [
        "--served-model-name",
        "llama3",
        "meta-llama/Llama-3.1-8B-Instruct",
    ]


def test_a_served_model_name_of_the_entrys_own_is_respected() -> None:
    (spec,) = specs(LLAMA + "  vllmConfig: {extraArgs: ['--served-model-name=mine']}\n")
    assert spec["vllmConfig"]["extraArgs"] == ["--served-model-name=mine"]


def test_non_hub_urls_are_not_a_second_served_name() -> None:
    (spec,) = specs("- name: local\n  modelURL: pvc://models/llama\n")
    assert spec["vllmConfig"]["extraArgs"] == ["--served-model-name", "local"]


def test_prefix_caching_stays_on_unless_the_entry_turns_it_off() -> None:
    (on,) = specs(LLAMA)
    (off,) = specs(LLAMA + "  vllmConfig: {enablePrefixCaching: false}\n")
    assert on["vllmConfig"]["enablePrefixCaching"] is True
    assert off["vllmConfig"]["enablePrefixCaching"] is False


def test_numbers_go_to_the_chart_as_strings() -> None:
    # The chart prints 1000000 as "1e+06", which vLLM refuses.
    (spec,) = specs(LLAMA + "  vllmConfig: {maxModelLen: 1000000, gpuMemoryUtilization: 0.9}\n")
    assert spec["vllmConfig"]["maxModelLen"] == "1000000"
    assert spec["vllmConfig"]["gpuMemoryUtilization"] == "0.9"


def test_pass_through_keys_reach_the_chart_and_win() -> None:
    text = LLAMA + "  tolerations: [{key: gpu, operator: Exists}]\n  tag: v0.10.0\n"
    (spec,) = specs(text, chart_version="0.1.11")
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert spec["tag"] == "v0.10.0"


def test_a_key_the_chart_version_does_not_read_is_refused() -> None:
    with pytest.raises(
        UsageError, match=r"llama3: tolerations needs chart 0.1.11 or newer .* the chart version is 0.1.8"
    ):
        specs(LLAMA + "  tolerations: []\n", chart_version="0.1.8")


def test_model_caches_are_kept_where_the_chart_can() -> None:
    (old,) = specs(LLAMA, chart_version="0.1.9")
    (new,) = specs(LLAMA, chart_version="0.1.10")
    assert "pvcAnnotations" not in old
    assert new["pvcAnnotations"] == {"helm.sh/resource-policy": "keep"}


def test_storage_class_only_when_set() -> None:
    (spec,) = specs(LLAMA, storage_class="fast-ssd")
    assert spec["storageClass"] == "fast-ssd"
    assert "storageClass" not in specs(LLAMA)[0]


def test_a_deployed_release_keeps_its_labels() -> None:
    deployed = DeployedLabels(engine={"environment": "test", "release": "test"}, router=None)
    values = render(models(LLAMA), _with(deployed_labels=deployed)).values
    assert values["servingEngineSpec"]["labels"] == {"environment": "test", "release": "test"}
    assert "labels" not in values["routerSpec"]


def _with(**overrides: Any) -> RenderInput:
    given = given_input()
    for key, value in overrides.items():
        setattr(given, key, value)
    return given


def test_release_and_name_together_must_fit_the_charts_names() -> None:
    long_name = "m" * 40
    with pytest.raises(UsageError, match="49 characters together; the chart needs at most 48"):
        render(models(f"- name: {long_name}\n  modelURL: org/m\n"), _with(release="release-x"))


def test_flags_the_image_does_not_accept_are_refused() -> None:
    off = LLAMA + "  vllmConfig: {enablePrefixCaching: false}\n"
    with pytest.raises(UsageError, match=r"vLLM v0.6.4 does not know --no-enable-prefix-caching"):
        render(models(off), _with(tag="v0.6.4"))
    render(models(off), _with(tag="v0.6.5"))
    removed = LLAMA + "  vllmConfig: {extraArgs: [--disable-log-requests]}\n"
    with pytest.raises(UsageError, match=r"no longer accepts --disable-log-requests"):
        render(models(removed), _with(tag="v0.17.0"))
    render(models(removed), _with(tag="v0.16.0"))
    render(models(removed), _with(tag="v0.33.0"))  # accepted again


def test_an_unpinned_image_is_warned_about() -> None:
    result = render(models(LLAMA), _with(tag="latest"))
    assert any("'latest' is not pinned" in w for w in result.warnings)
    assert not render(models(LLAMA), _with(tag="v0.11.0")).warnings


def test_an_empty_catalog_renders_an_empty_model_list() -> None:
    assert render([], given_input()).values["servingEngineSpec"]["modelSpec"] == []


def test_the_template_can_be_customised(tmp_path: Path) -> None:
    from vllmctl.render.values import packaged_templates

    custom = tmp_path / "templates"
    custom.mkdir()
    text = (packaged_templates() / "values.yaml.j2").read_text()
    (custom / "values.yaml.j2").write_text(text + "extraObjects: []\n")
    assert render(models(LLAMA), _with(templates_dir=custom)).values["extraObjects"] == []


def test_a_template_that_loses_a_model_is_caught(tmp_path: Path) -> None:
    from vllmctl.core.errors import CatalogError

    (tmp_path / "values.yaml.j2").write_text("servingEngineSpec:\n  modelSpec: []\n")
    with pytest.raises(CatalogError, match="do not hold exactly the models"):
        render(models(LLAMA), _with(templates_dir=tmp_path))


def test_a_broken_template_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "values.yaml.j2").write_text("x: {{ nothing_here }}\n")
    with pytest.raises(UsageError, match=r"values.yaml.j2:1: template error: 'nothing_here' is undefined"):
        render(models(LLAMA), _with(templates_dir=tmp_path))


# ------------------------------------------------------------------ no input escapes

HOSTILE = [
    'quo"te',
    "single'quote",
    "new\nline",
    "{{ 7*7 }}",
    "{% raw %}",
    "# not a comment",
    "key: value",
    "- list item",
    "tab\there",
    "é模型🚀",
    "line\u2028separator",
    "&anchor *alias !tag",
    "}]\nmalicious: true",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_in_pass_through_values_come_back_exactly(text: str) -> None:
    entry = LLAMA + f"  env: [{{name: NOTE, value: {to_yaml(text)}}}]\n"
    entry += f"  podAnnotations: {{note: {to_yaml(text)}}}\n"
    (spec,) = specs(entry)
    assert spec["env"] == [{"name": "NOTE", "value": text}]
    assert spec["podAnnotations"] == {"note": text}
    assert set(spec) <= {*specs(LLAMA)[0], "env", "podAnnotations"}


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_and_urls_fail_validation(text: str) -> None:
    catalog = parse(Path("models.yaml"), f"- name: {to_yaml(text)}\n  modelURL: {to_yaml(text)}\n".encode())
    assert {p.key_path.split(".")[-1] for p in catalog.problems} == {"name", "modelURL"}


@pytest.mark.parametrize("char", ["\x85", "\x7f", "\x9b"])  # (U+FFFE: the YAML reader refuses it)
def test_characters_helm_would_drop_are_refused(char: str) -> None:
    entry = LLAMA + f"  env: [{{name: NOTE, value: {to_yaml('a' + char)}}}]\n"
    with pytest.raises(UsageError, match=r"llama3: env holds the character .* which helm drops or changes"):
        specs(entry)


HELM_SAFE = st.characters(exclude_categories=["Cs"], exclude_characters="\x7f\x85\ufffe\uffff")


@settings(max_examples=200, deadline=None)
@given(text=st.text(HELM_SAFE, max_size=40).filter(lambda t: not any("\x80" <= c <= "\x9f" for c in t)))
def test_any_string_survives_rendering(text: str) -> None:
    entry = LLAMA + f"  env: [{{name: NOTE, value: {to_yaml(text)}}}]\n  chatTemplate: {to_yaml(text)}\n"
    (spec,) = specs(entry)
    assert spec["env"][0]["value"] == text
    assert spec["chatTemplate"] == text
