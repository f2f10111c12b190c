"""The docs stay true mechanically: every command, flag and variable is documented."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO
from vllmctl.catalog.questions import QUESTIONS
from vllmctl.catalog.schema import FIELDS, VLLM_CONFIG_FIELDS
from vllmctl.cli import COMMANDS, cli
from vllmctl.settings import SPECS

ALIASES = {"diff": "plan"}
README = (REPO / "README.md").read_text()
MODELS_DOC = (REPO / "docs" / "models-yaml.md").read_text()


def test_every_command_is_in_the_readme() -> None:
    for name in COMMANDS:
        assert f"`vllmctl {name}" in README, name


def test_every_add_model_flag_is_in_the_readme() -> None:
    for question in QUESTIONS:
        assert question.flag in README, question.flag


def test_every_setting_is_in_the_readme() -> None:
    for spec in SPECS:
        assert re.search(rf"\| `{spec.env}` \| `?{re.escape(spec.default or '')}", README), spec.env


def test_every_field_is_in_the_models_doc() -> None:
    for key in [*FIELDS, *VLLM_CONFIG_FIELDS]:
        assert f"`{key}`" in MODELS_DOC, key


def test_every_field_is_in_the_readme_field_reference() -> None:
    for key in FIELDS:
        assert re.search(rf"^\| `{key}` \| [^|]+ \| [^|]+ \| [^|]+ \|$", README, re.M), key
    for key in VLLM_CONFIG_FIELDS:
        assert re.search(rf"^\| `vllmConfig\.[^|]*\b{key}\b[^|]*` \|", README, re.M), key


def test_ci_runs_the_readme_test_command() -> None:
    assert "scripts/test" in README
    assert "bash scripts/test" in (REPO / ".ci" / "run").read_text()


def test_the_help_listing_matches_each_commands_docstring() -> None:
    import click

    with click.Context(cli) as ctx:
        for name, (_, help_line) in COMMANDS.items():
            command = cli.get_command(ctx, name)
            assert command is not None and command.name in (name, ALIASES.get(name))
            assert (command.help or "").splitlines()[0] == help_line, name


def test_the_feature_pages_model_examples_are_valid() -> None:
    """Every complete models.yaml example in docs/features.md (a list whose entries have a
    modelURL) passes validation; overlays and vllmctl.yaml snippets are checked elsewhere."""
    from vllmctl.catalog.store import parse

    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "features.md").read_text(), re.S)
    checked = 0
    for block in blocks:
        if not block.lstrip().startswith("- name:") or "modelURL" not in block:
            continue
        catalog = parse(Path("features.md"), block.encode())
        assert not catalog.problems, [str(p) for p in catalog.problems]
        checked += 1
    assert checked >= 6
