"""The hostile-input corpus (tests/catalog/hostile/): every command that reads the file
refuses it with the expected exit code and file:line:column, no traceback, no internal
error, every file byte for byte as it was, and each run within 2 CPU seconds and 200 MB.

Each file is one kind of trouble, named by its prefix: syntax, types, quantities, names,
duplicates, aliases, tags, merge keys, document markers, line endings, encoding, top
level; `overlay-*` files are models.dev.yaml next to a valid models.yaml, `settings-*`
files are vllmctl.yaml. A few inputs are generated (too large to keep as files): deep
nesting and a file past the size limit.

The commands run in one subprocess per file (`hostile_driver.py`), which reports each
command's CPU time and its own peak RSS as the kernel counts it. CPU time rather than
wall time, so a loaded machine does not make the test flaky.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.conftest import Run
from vllmctl.core.fileio import MAX_FILE_BYTES

HERE = Path(__file__).parent
CORPUS = HERE / "hostile"
DRIVER = HERE / "hostile_driver.py"
VALID = b"- name: a\n  modelURL: org/a\n"
MAX_CPU_SECONDS = 2.0
MAX_RSS_MB = 200


class Hostile(NamedTuple):
    """One file of the corpus: what every command that reads it must say."""

    file: str  # in tests/catalog/hostile/, or a name for a generated input
    where: str  # "line:column" of the refusal
    expect: str  # a phrase of the message
    exit_code: int = 2
    # Refused before validation (syntax, bounds): remove-model refuses it too. (It needs
    # only parseable YAML otherwise, so that a broken entry can be removed.)
    unparseable: bool = False
    make: Callable[[], bytes] | None = None  # a generated input


def deep_flow() -> bytes:
    depth = 100_000  # past the C stack of libyaml's recursive composer (a crash before)
    return VALID + b"  annotations: {x: " + b"[" * depth + b"]" * depth + b"}\n"


def deep_block() -> bytes:
    lines = [f"{'  ' * (level + 2)}k{level}:" for level in range(400)]
    return VALID + b"  annotations:\n" + "\n".join(lines).encode() + b" end\n"


def too_large() -> bytes:
    entry = b"- name: m{}\n  modelURL: org/m\n"
    count = MAX_FILE_BYTES // len(entry) + 2
    return b"".join(entry.replace(b"{}", str(i).encode()) for i in range(count))


MODELS = [
    Hostile("syntax-unclosed-quote.yaml", "3:1", "while scanning a quoted scalar", unparseable=True),
    Hostile("syntax-tab-indent.yaml", "2:1", "found a tab character", unparseable=True),
    Hostile("syntax-bad-indent.yaml", "2:12", "mapping values are not allowed", unparseable=True),
    Hostile("types-name-number.yaml", "1:9", "not the number 123; quote it"),
    Hostile("types-replicas-text.yaml", "3:17", "must be a whole number, not the string 'two'"),
    Hostile("types-vllmconfig-list.yaml", "3:15", "must be a mapping of keys to values, not a list"),
    # The item, not the list, and no "not a list" about a list.
    Hostile("types-extraargs-number.yaml", "4:22", "every argument must be text, not the number 64"),
    # The chart ranges over a list of {name, value}: a mapping failed inside helm before.
    Hostile("types-env-mapping.yaml", "4:5", "must be a list of {name, value}"),
    Hostile("types-env-item-without-value.yaml", "4:7", "LOG_LEVEL needs a value"),
    Hostile("quantities-memory-past-int64.yaml", "3:18", "more than 1Pi per replica"),
    Hostile("quantities-memory-absurd.yaml", "3:16", "'2Pi' is more than 1Pi per replica"),
    Hostile("quantities-cpu-absurd.yaml", "3:15", "more than 10,000 CPUs per replica"),
    Hostile("quantities-pvc-past-int64.yaml", "3:15", "larger than any quantity Kubernetes can hold"),
    Hostile("quantities-exponent-overflow.yaml", "3:18", "is not a Kubernetes quantity"),
    # As text, the exponent reached Decimal, whose error escaped as an internal error.
    Hostile("quantities-exponent-past-decimal.yaml", "3:15", "is not a CPU quantity"),
    Hostile("names-uppercase.yaml", "1:9", "for example 'llama3'"),
    Hostile("names-too-long.yaml", "1:9", "is 41 characters; use at most 40"),
    Hostile("duplicates-key.yaml", "4:3", "'replicaCount' appears twice in this mapping"),
    Hostile("duplicates-name.yaml", "3:9", "already used by the model at line 1"),
    Hostile("duplicates-nested-key.yaml", "3:32", "'maxModelLen' appears twice in this mapping"),
    # The alias that takes the file past 100,000 repeated values: the x5 line's first *l4.
    Hostile("aliases-5-levels.yaml", "9:44", "past 100,000 repeated values", unparseable=True),
    Hostile("aliases-8-levels.yaml", "9:44", "past 100,000 repeated values", unparseable=True),
    Hostile("aliases-9-levels.yaml", "9:44", "past 100,000 repeated values", unparseable=True),
    Hostile("aliases-recursive.yaml", "3:30", "inside the value it names", unparseable=True),
    Hostile("aliases-undefined.yaml", "3:16", "found undefined alias", unparseable=True),
    Hostile("tags-python-object.yaml", "2:13", "remove the tag"),
    Hostile("tags-on-entry.yaml", "1:3", "the tag tag:yaml.org,2002:set is not allowed"),
    Hostile("tags-on-list.yaml", "1:1", "the tag tag:yaml.org,2002:omap is not allowed"),
    Hostile("merge-keys.yaml", "4:3", "merge keys (<<: *anchor) are not supported"),
    Hostile("markers-two-documents.yaml", "4:1", "more than one YAML document", unparseable=True),
    Hostile("markers-scalar-document.yaml", "1:5", "found a single value"),
    # Lines are counted by the file's own breaks: CR alone, or CRLF.
    Hostile("endings-cr-only.yaml", "3:3", "unknown key 'replicas'; did you mean 'replicaCount'?"),
    Hostile("endings-crlf.yaml", "3:3", "unknown key 'replicas'; did you mean 'replicaCount'?"),
    Hostile("encoding-latin1.yaml", "3:26", "not UTF-8 text (byte 0xe9)", unparseable=True),
    Hostile("top-mapping.yaml", "1:1", "found a mapping"),
    # Not "remove the tag" (there is none): the depth, where it is passed.
    Hostile("deep-flow", "3:117", "nested more than 100 levels", unparseable=True, make=deep_flow),
    Hostile("deep-block", "102:201", "nested more than 100 levels", unparseable=True, make=deep_block),
    Hostile("too-large", "", f"larger than {MAX_FILE_BYTES >> 20} MiB", unparseable=True, make=too_large),
]

OVERLAYS = [
    # The name's value, not "name is missing".
    Hostile("overlay-name-number.yaml", "1:9", "not the value 123; quote it"),
    Hostile("overlay-aliases-9-levels.yaml", "8:44", "past 100,000 repeated values"),
    Hostile("overlay-syntax.yaml", "3:1", "did not find expected ',' or ']'"),
    Hostile("overlay-top-mapping.yaml", "1:1", "found a mapping"),
    Hostile("overlay-env-mapping.yaml", "2:8", "must be a list of {name, value}"),
]

SETTINGS = [
    Hostile("settings-bad-namespace.yaml", "3:16", "'Bad_NS' is not a namespace name"),
    Hostile("settings-bad-release.yaml", "3:14", "'My.Release' is not a release name"),
    Hostile("settings-empty-context.yaml", "3:14", "must not be empty"),
    Hostile("settings-aliases-9-levels.yaml", "7:42", "past 100,000 repeated values"),
    Hostile("settings-syntax.yaml", "3:1", "did not find expected ',' or '}'"),
    Hostile("settings-list.yaml", "1:1", "vllmctl.yaml is a mapping"),
]

READING = [["validate"], ["list-models"], ["list-models", "-o", "json"], ["show-model", "a"], ["render"]]
EDITING = [
    ["add-model", "--yes", "--name", "extra", "--model-url", "org/extra"],
    ["set-model", "a", "replicaCount=2"],
]
ENV = ["--env", "dev"]


def content(case: Hostile) -> bytes:
    return case.make() if case.make is not None else (CORPUS / case.file).read_bytes()


def run_commands(directory: Path, commands: list[list[str]]) -> tuple[list[dict[str, Any]], float]:
    """Run the commands in one subprocess in `directory`: each one's result, and the
    process's peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, str(DRIVER)],
        input=json.dumps(commands),
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return report["results"], float(report["peak_mb"])


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def check_refusals(directory: Path, commands: list[list[str]], case: Hostile, file_name: str) -> None:
    before = snapshot(directory)
    results, peak_mb = run_commands(directory, commands)
    where = f"{file_name}:{case.where}:" if case.where else f"{file_name} "
    for result in results:
        shown = f"{' '.join(result['argv'])}\nstdout:\n{result['stdout']}\nstderr:\n{result['stderr']}"
        assert result["escaped"] is None, shown
        assert "Traceback" not in result["stdout"] + result["stderr"], shown
        assert "internal error" not in result["stderr"], shown
        assert "Warning" not in result["stderr"], shown  # e.g. ruamel's dozen lines about 1e3
        assert result["exit_code"] == case.exit_code, shown
        assert where in result["stderr"], shown
        assert case.expect in result["stderr"], shown
        assert result["cpu_seconds"] < MAX_CPU_SECONDS, shown
    assert peak_mb < MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
    assert snapshot(directory) == before  # byte for byte, and no file left behind


@pytest.mark.parametrize("case", MODELS, ids=lambda c: c.file)
def test_models_file(isolated: Path, case: Hostile) -> None:
    (isolated / "models.yaml").write_bytes(content(case))
    commands = READING + EDITING + ([["remove-model", "--yes", "a"]] if case.unparseable else [])
    check_refusals(isolated, commands, case, "models.yaml")


@pytest.mark.parametrize("case", OVERLAYS, ids=lambda c: c.file)
def test_overlay(isolated: Path, case: Hostile) -> None:
    (isolated / "models.yaml").write_bytes(VALID)
    (isolated / "models.dev.yaml").write_bytes(content(case))
    check_refusals(isolated, [[*argv, *ENV] for argv in READING], case, "models.dev.yaml")


@pytest.mark.parametrize("case", SETTINGS, ids=lambda c: c.file)
def test_settings_file(isolated: Path, case: Hostile) -> None:
    (isolated / "models.yaml").write_bytes(VALID)
    (isolated / "vllmctl.yaml").write_bytes(content(case))
    commands = [["config", *ENV], *([*argv, *ENV] for argv in READING)]
    check_refusals(isolated, commands, case, "vllmctl.yaml")


def test_every_corpus_file_has_its_expectation() -> None:
    listed = {case.file for case in MODELS + OVERLAYS + SETTINGS if case.make is None}
    assert listed == {path.name for path in CORPUS.iterdir()}


def alias_levels(levels: int) -> bytes:
    """The 530-byte file of the report: `x0: &l0 [lol]`, then each level nine aliases of the last."""
    lines = ["    x0: &l0 [lol]"]
    lines += [f"    x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return VALID + b"  annotations:\n" + "\n".join(lines).encode() + b"\n"


def test_nested_aliases_are_bounded_at_every_level(isolated: Path) -> None:
    """Levels 1-4 (at most 6,561 repeated values) are read; from level 5 on the file is
    refused at the same alias, in bounded time and memory, up to twelve levels."""
    for levels in range(1, 13):
        (isolated / "models.yaml").write_bytes(alias_levels(levels))
        (result,), peak_mb = run_commands(isolated, [["validate"]])
        shown = f"{levels} levels: {result}"
        assert "internal error" not in result["stderr"], shown
        if levels <= 4:
            assert result["exit_code"] == 0, shown
        else:
            assert result["exit_code"] == 2, shown
            assert "models.yaml:9:44: the alias *l4" in result["stderr"], shown
        # The report's figure: refused in < 0.5 s and < 100 MB (CPU time: not flaky).
        assert result["cpu_seconds"] < 0.5, shown
        assert peak_mb < 100, shown


def test_rendered_values_of_a_custom_template_are_bounded_too(run: Run, isolated: Path) -> None:
    """The values text vllmctl reads back comes from templates an operator may copy and edit."""
    from vllmctl.render.values import packaged_templates

    templates = isolated / "templates"
    shutil.copytree(packaged_templates(), templates)
    bomb = "\n".join(line.strip() for line in alias_levels(9).decode().splitlines()[3:])
    with (templates / "values.yaml.j2").open("a") as values:
        values.write("\n" + bomb + "\n")
    (isolated / "models.yaml").write_bytes(VALID)
    result = run("render", env={"VLLM_TEMPLATES_DIR": str(templates)})
    assert result.exit_code == 2, result.stdout[-500:]
    assert "the rendered values are not valid YAML (<rendered values>:" in result.stderr
    assert "past 100,000 repeated values" in result.stderr


def test_the_largest_file_read_stays_within_the_budget(isolated: Path) -> None:
    """The worst an accepted file costs: just under the size limit, with flow lists (which
    also get the bounds' event scan), read by validate and list-models."""
    entry = "- name: m{i}\n  modelURL: org/m{i}\n  vllmConfig: {{extraArgs: [--a]}}\n"
    count = (MAX_FILE_BYTES - 1024) // len(entry.format(i=99999))
    (isolated / "models.yaml").write_text("".join(entry.format(i=i) for i in range(count)))
    results, peak_mb = run_commands(isolated, [["validate"], ["list-models", "-o", "json"]])
    for result in results:
        assert result["exit_code"] == 0, result["stderr"]
        assert result["cpu_seconds"] < MAX_CPU_SECONDS * 2, result["cpu_seconds"]  # ~1 s measured
    assert f"is valid: {count} models" in results[0]["stderr"] + results[0]["stdout"]
    assert peak_mb < MAX_RSS_MB, peak_mb


@pytest.mark.parametrize("error", [MemoryError(), RecursionError(), ValueError("")], ids=repr)
def test_an_exception_without_text_still_makes_a_message(error: Exception) -> None:
    """The report's `internal error: IndexError`: a MemoryError has no text, and the problem
    formatter took the first of its (no) lines."""
    from vllmctl.catalog.schema import _construct_problem
    from vllmctl.core.yamldoc import YamlText

    doc = YamlText(Path("models.yaml"), "- name: a\n", False, "\n")
    problem = _construct_problem(doc, error, "models[0].annotations", "models.yaml:1:3")
    assert problem.where == "models.yaml:1:3"
    assert type(error).__name__ in problem.message
