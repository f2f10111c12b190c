"""Files the editing commands must handle, through the CLI: document markers, an empty flow
list, CR line endings, explicit keys, and temp files a killed writer left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Run
from vllmctl.core.fileio import locked

ADD = ("add-model", "--yes", "--name", "extra", "--model-url", "org/extra")
ENTRY = "- name: a\n  modelURL: org/a\n"


@pytest.mark.parametrize(
    ("text", "left"),
    [
        ("---\n" + ENTRY, "---\n"),
        ("---\n" + ENTRY + "...\n", "---\n...\n"),
        ("--- # models\n" + ENTRY + "...\n# after\n", "--- # models\n...\n# after\n"),
        ("!!seq\n" + ENTRY, "!!seq\n[]\n"),
    ],
    ids=["start-marker", "start-and-end-markers", "markers-and-comments", "tagged-list"],
)
def test_removing_the_last_model_keeps_the_markers_and_an_empty_list(
    run: Run, models_file: Path, text: str, left: str
) -> None:
    models_file.write_text(text)
    removed = run("remove-model", "--yes", "a")
    assert removed.exit_code == 0, removed.stderr
    assert models_file.read_text() == left
    valid = run("validate")
    assert valid.exit_code == 0, valid.stderr
    assert "0 models" in valid.stdout + valid.stderr
    # And the list can grow again, inside the markers.
    assert run(*ADD).exit_code == 0
    assert "- name: extra\n" in models_file.read_text()
    assert run("validate").exit_code == 0


@pytest.mark.parametrize("text", ["---\n", "---\n...\n", "---", "--- # nothing yet\n...\n"])
def test_a_file_holding_only_markers_is_an_empty_list(run: Run, models_file: Path, text: str) -> None:
    models_file.write_text(text)
    assert run("validate").exit_code == 0
    assert run("list-models", "-o", "json").stdout.strip() == "[]"
    added = run(*ADD)
    assert added.exit_code == 0, added.stderr
    new_text = models_file.read_text()
    assert new_text.startswith("---")
    assert new_text.rstrip().endswith("...") == text.rstrip().endswith("...")  # the entry goes inside
    assert run("validate").exit_code == 0


@pytest.mark.parametrize(
    "text", ["[]\n", "# empty\n[]  # none yet\n", "[]", "  []\n", "---\n[]\n...\n"], ids=repr
)
def test_add_then_remove_leaves_an_empty_flow_list_empty(run: Run, models_file: Path, text: str) -> None:
    """The entry takes the place of "[]"; removing it leaves a file that still reads as an
    empty list (not "[]" byte for byte: that would put "[]" into every comments-only file
    add then remove must give back, docs/models-yaml.md)."""
    models_file.write_text(text)
    assert run(*ADD).exit_code == 0
    assert "- name: extra" in models_file.read_text()
    assert run("remove-model", "--yes", "extra").exit_code == 0
    assert run("list-models", "-o", "json").stdout.strip() == "[]"
    assert run("validate").exit_code == 0
    assert "[]" not in models_file.read_text()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "# a\n\n# b\n"], ids=repr)
def test_add_then_remove_gives_a_comments_only_file_back(run: Run, models_file: Path, text: str) -> None:
    models_file.write_text(text)
    assert run(*ADD).exit_code == 0
    assert run("remove-model", "--yes", "extra").exit_code == 0
    assert models_file.read_bytes() == text.encode()


def test_cr_only_line_endings_are_kept(run: Run, models_file: Path) -> None:
    models_file.write_bytes(ENTRY.replace("\n", "\r").encode())
    assert run(*ADD).exit_code == 0
    data = models_file.read_bytes()
    assert b"\n" not in data
    assert data.startswith(ENTRY.replace("\n", "\r").encode())
    assert b"\r- name: extra\r  modelURL: org/extra\r" in data
    assert run("remove-model", "--yes", "extra").exit_code == 0
    assert models_file.read_bytes() == ENTRY.replace("\n", "\r").encode()


def test_explicit_keys_are_refused_by_set_model_at_the_key(run: Run, models_file: Path) -> None:
    text = "- ? name\n  : a\n  modelURL: org/a\n"
    models_file.write_text(text)
    assert run("validate").exit_code == 0  # readable: only editing it is refused
    result = run("set-model", "a", "replicaCount=2")
    assert result.exit_code == 2
    assert "models.yaml:1:3: this key is written in the explicit form" in result.stderr
    assert "cannot parse back" not in result.stderr
    assert models_file.read_text() == text


def test_a_reading_command_removes_temp_files_a_killed_writer_left(run: Run, models_file: Path) -> None:
    models_file.write_text(ENTRY)
    stale = models_file.parent / ".models.yaml.k9x2abcd.tmp"
    stale.write_text("- name: half-writ")
    other = models_file.parent / ".other.yaml.k9x2abcd.tmp"  # not ours: stays
    other.write_text("x")
    assert run("list-models").exit_code == 0
    assert not stale.exists()
    assert other.exists()


def test_a_live_writers_temp_file_is_left_alone(run: Run, models_file: Path) -> None:
    models_file.write_text(ENTRY)
    live = models_file.parent / ".models.yaml.live1234.tmp"
    live.write_text("- name: being written")
    with locked(models_file):  # a writer at work holds the lock
        assert run("list-models").exit_code == 0
        assert live.exists()
    assert run("validate").exit_code == 0
    assert not live.exists()
