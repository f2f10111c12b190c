"""Edits touch only the entry they change: every other byte stays, add+remove restores the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalog import samples
from tests.catalog.textdiff import is_insertion
from vllmctl.catalog.store import Catalog, adding, edit_text, parse, removing, setting
from vllmctl.core.errors import CatalogError

NEW = {"name": "added", "modelURL": "org/added", "replicaCount": 1, "vllmConfig": {"maxModelLen": 2048}}


def catalog_of(text: str) -> Catalog:
    return parse(Path("models.yaml"), text.encode("utf-8"))


def text_of(catalog: Catalog) -> str:
    return catalog.doc.encode().decode("utf-8")


@pytest.mark.parametrize("name", list(samples.ALL))
def test_add_then_remove_restores_every_byte(name: str) -> None:
    original = samples.ALL[name]
    added = edit_text(catalog_of(original), adding(NEW))
    assert "added" in added.names()
    removed = edit_text(added, removing("added"))
    assert text_of(removed) == original


@pytest.mark.parametrize("name", list(samples.ALL))
def test_add_inserts_without_changing_existing_text(name: str) -> None:
    original = samples.ALL[name]
    new_text = text_of(edit_text(catalog_of(original), adding(NEW)))
    assert is_insertion(original, new_text), f"existing text changed:\n{new_text}"


def test_added_entry_follows_the_files_indentation() -> None:
    new_text = text_of(edit_text(catalog_of(samples.INDENTED), adding(NEW)))
    assert new_text.endswith(
        "    - name: added\n"
        "      modelURL: org/added\n"
        "      replicaCount: 1\n"
        "      vllmConfig:\n"
        "          maxModelLen: 2048\n"
    )


def test_added_entry_goes_after_the_last_model_and_before_trailing_comments() -> None:
    new_text = text_of(edit_text(catalog_of(samples.RICH), adding(NEW)))
    assert "    - {name: VLLM_LOGGING_LEVEL, value: DEBUG}\n- name: added\n" in new_text
    assert new_text.endswith("# trailing comment after the last entry\n#   with an indented second line\n")


def test_crlf_files_get_crlf_lines() -> None:
    new_text = edit_text(catalog_of(samples.CRLF), adding(NEW)).doc.text
    assert "- name: added\r\n  modelURL: org/added\r\n" in new_text
    assert "\n" not in new_text.replace("\r\n", "")


def test_bom_is_kept() -> None:
    after = edit_text(catalog_of(samples.BOM), adding(NEW))
    assert after.doc.encode().startswith("\ufeff# with".encode())


def test_remove_middle_entry_keeps_neighbours_and_comments() -> None:
    new_text = text_of(edit_text(catalog_of(samples.RICH), removing("qwen-coder")))
    assert "qwen-coder" not in new_text
    assert "  # GPU nodes are tainted\n" in new_text  # a comment above the entry is the user's
    assert "# - name: retired\n" in new_text
    before, after = samples.RICH.split("- name: 'qwen-coder'")
    assert new_text.startswith(before)
    assert new_text.endswith(after[after.index("\n# - name: retired") :])


def test_remove_last_entry_keeps_trailing_comments() -> None:
    new_text = text_of(edit_text(catalog_of(samples.RICH), removing("embed")))
    assert new_text.endswith("\n# trailing comment after the last entry\n#   with an indented second line\n")
    assert "bge-m3" not in new_text


def test_remove_only_entry_without_final_newline() -> None:
    assert text_of(edit_text(catalog_of(samples.NO_FINAL_NEWLINE), removing("solo"))) == ""


def test_set_replaces_only_the_value() -> None:
    new_text = text_of(edit_text(catalog_of(samples.RICH), setting("llama3", [(["replicaCount"], 3)])))
    assert new_text == samples.RICH.replace("  replicaCount: 2\n", "  replicaCount: 3\n", 1)


def test_set_inside_a_flow_mapping_keeps_it_flow() -> None:
    edit = setting(
        "llama3", [(["vllmConfig", "maxModelLen"], 4096), (["vllmConfig", "gpuMemoryUtilization"], 0.8)]
    )
    new_text = text_of(edit_text(catalog_of(samples.RICH), edit))
    expected = "vllmConfig: {maxModelLen: 4096, dtype: bfloat16, gpuMemoryUtilization: 0.8}   # flow style"
    assert expected in new_text
    assert new_text.replace(expected, "") == samples.RICH.replace(
        "vllmConfig: {maxModelLen: 8192, dtype: bfloat16}   # flow style", ""
    )


def test_set_keeps_the_quoting_style_of_a_string() -> None:
    edit = setting("llama3", [(["modelURL"], "meta-llama/Llama-3.2-3B-Instruct")])
    new_text = text_of(edit_text(catalog_of(samples.RICH), edit))
    assert '  modelURL: "meta-llama/Llama-3.2-3B-Instruct"\n' in new_text


def test_set_adds_a_key_after_the_last_one_of_a_nested_block() -> None:
    edit = setting("qwen-coder", [(["vllmConfig", "dtype"], "half")])
    new_text = text_of(edit_text(catalog_of(samples.RICH), edit))
    assert "    tensorParallelSize: 2\n    dtype: half\n\n# - name: retired" in new_text


def test_set_creates_missing_parent_mappings() -> None:
    edit = setting("embed", [(["vllmConfig", "maxModelLen"], 1024)])
    new_text = text_of(edit_text(catalog_of(samples.RICH), edit))
    assert (
        "    - {name: VLLM_LOGGING_LEVEL, value: DEBUG}\n  vllmConfig:\n    maxModelLen: 1024\n" in new_text
    )


def test_set_a_list_value_replaces_the_block() -> None:
    tolerations = [{"key": "gpu", "operator": "Exists"}]
    new_text = text_of(
        edit_text(catalog_of(samples.RICH), setting("qwen-coder", [(["tolerations"], tolerations)]))
    )
    assert "  tolerations:\n    - key: gpu\n      operator: Exists\n  chatTemplate: |\n" in new_text


def test_set_an_invalid_value_is_refused_with_the_problem() -> None:
    with pytest.raises(CatalogError) as caught:
        edit_text(catalog_of(samples.RICH), setting("llama3", [(["vllmConfig", "dtype"], "fp7")]))
    assert "nothing was written" in caught.value.message
    assert any("not a dtype" in line for line in caught.value.details)


def test_strings_that_yaml_1_1_reads_as_booleans_are_quoted() -> None:
    new_text = text_of(edit_text(catalog_of(""), adding({"name": "on", "modelURL": "org/on"})))
    assert new_text == "- name: 'on'\n  modelURL: org/on\n"


def test_flow_style_list_is_refused_for_edits() -> None:
    with pytest.raises(CatalogError, match=r"models.yaml:1:1: .*flow style"):
        edit_text(catalog_of("[{name: a, modelURL: o/a}]\n"), adding(NEW))


def test_empty_flow_list_becomes_a_block_list() -> None:
    assert text_of(edit_text(catalog_of("[]\n"), adding({"name": "x", "modelURL": "o/x"}))) == (
        "- name: x\n  modelURL: o/x\n"
    )


def test_files_with_aliases_are_read_but_not_edited() -> None:
    text = (
        "- name: a\n  modelURL: org/a\n  vllmConfig: &cfg {maxModelLen: 1024}\n"
        "- name: b\n  modelURL: org/b\n  vllmConfig: *cfg\n"
    )
    catalog = catalog_of(text)
    assert not catalog.problems
    assert catalog.models[1].data["vllmConfig"] == {"maxModelLen": 1024}
    with pytest.raises(CatalogError, match=r"models.yaml:6:15: this file uses YAML aliases"):
        edit_text(catalog, adding(NEW))
