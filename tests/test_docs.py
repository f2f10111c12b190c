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


# The old module's variables (its justfile's names and defaults, as issue 2 listed them).
OLD_VARIABLES = (
    "VLLM_MODELS_FILE",
    "VLLM_NAMESPACE",
    "VLLM_CHART_VERSION",
    "VLLM_HELM_TIMEOUT",
    "VLLM_MODEL_IMAGE",
    "VLLM_MODEL_TAG",
    "VLLM_STORAGE_CLASS",
    "VLLM_HF_TOKEN",
    "VLLM_API_KEY",
    "VLLM_HF_TOKEN_FROM_SECRET",
    "VLLM_API_KEY_FROM_SECRET",
    "VLLM_ROUTER_ENABLED",
    "VLLM_ROUTER_REPLICAS",
    "VLLM_ROUTER_REQUEST_CPU",
    "VLLM_ROUTER_REQUEST_MEMORY",
    "VLLM_ROUTER_LIMIT_MEMORY",
    "EXTERNAL_SECRETS_NAMESPACE",
    "K8S_VAULT_NAMESPACE",
)


def test_the_migration_guide_names_every_recipe_and_old_variable() -> None:
    guide = (REPO / "docs" / "migrating.md").read_text()
    recipes = re.findall(r"^([a-z][a-z-]*)(?: [^:\n]*)?:\s*$", (REPO / "vllm.just").read_text(), re.M)
    assert len(recipes) > 40
    for recipe in recipes:
        if recipe != "default":
            assert f"`{recipe}`" in guide or f"`vllmctl {recipe}" in guide, recipe
    for variable in OLD_VARIABLES:
        assert f"`{variable}`" in guide, variable


def test_the_readme_says_what_the_code_does_now() -> None:
    assert "later work" not in README  # the old opening promised commands that exist now
    for name in ("doctor", "estimate", "endpoints", "port-forward", "completion", "recover"):
        assert f"`vllmctl {name}" in README, name
    # "Run the tool" works on a Python that refuses pip outside a virtual environment, and
    # writes its models.yaml to a temporary directory, so the sandbox steps start afresh.
    run_block = README.split("**Run the tool**", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert "python3 -m venv .venv" in run_block and "mktemp -d" in run_block
    assert "--models" in run_block


def test_every_module_is_on_the_architecture_map() -> None:
    """docs/ARCHITECTURE.md names each module (its path, or its file name in a row that
    groups a feature's parts), so the map cannot fall behind a new or moved module."""
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    package = REPO / "vllmctl"
    missing = [
        path.relative_to(package).as_posix()
        for path in sorted(package.rglob("*.py"))
        if path.name != "__init__.py" or path.parent.name in ("cli", "doctor")
        if path.name != "__main__.py"
        if f"`{path.relative_to(package).as_posix()}`" not in doc and f"`{path.name}`" not in doc
    ]
    assert missing == [], f"not in docs/ARCHITECTURE.md: {missing}"


def test_every_module_path_the_docs_name_exists() -> None:
    """A path like `vllmctl/ops/gpufit.py` in the docs names a file that is there (modules
    move; the docs must move with them)."""
    missing = [
        f"{doc.relative_to(REPO)}: {path}"
        for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
        for path in sorted(set(re.findall(r"\bvllmctl/[a-z_/]+\.py\b", doc.read_text())))
        if not (REPO / path).is_file()
    ]
    assert missing == []
