"""A corpus of malformed models.yaml files: every command that reads the file refuses it
the same way: exit 2, `models.yaml:line:column` and a useful message on stderr, no
traceback, and the file left byte for byte as it was.

Lines and columns are 1-based and point at the offending key or value (for YAML syntax
errors: where libyaml stops, with the construct it was reading named in the message).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Run

COMMANDS = {
    "validate": ("validate",),
    "list-models": ("list-models",),
    "add-model": ("add-model", "--yes", "--name", "extra-model", "--model-url", "org/extra"),
}


def case(
    case_id: str,
    text: str | bytes,
    line: int,
    column: int | None,
    expect: str,
    *,
    bug: str | None = None,
) -> object:
    """One malformed file; `bug` marks a vllmctl defect (strict xfail, so a fix shows up)."""
    marks = [pytest.mark.xfail(reason=bug, strict=True)] if bug else []
    return pytest.param(text, line, column, expect, id=case_id, marks=marks)


def entry(*extra: str) -> str:
    """A valid first entry (lines 1-2) followed by `extra` lines (from line 3)."""
    return "".join(line + "\n" for line in ("- name: a", "  modelURL: org/a", *extra))


CASES = [
    # ------------------------------------------------------------ broken YAML syntax
    # The quote opened at 1:9 is still open at the end of the file (line 3, column 1).
    case(
        "unclosed-double-quote",
        '- name: "llama3\n  modelURL: org/model\n',
        3,
        None,
        "while scanning a quoted scalar at line 1",
    ),
    case(
        "unclosed-single-quote",
        "- name: 'llama3\n  modelURL: org/model\n",
        3,
        None,
        "while scanning a quoted scalar at line 1",
    ),
    # The flow mapping opened on line 3 reaches the end of the file.
    case(
        "unclosed-flow-mapping",
        entry("  vllmConfig: {maxModelLen: 4096"),
        4,
        None,
        "did not find expected ',' or '}' (while parsing a flow mapping at line 3)",
    ),
    # A flow sequence's plain scalars may span lines: `--bar\n- name` is one scalar, and
    # the ':' after it (5:7) is where the list, opened on line 4, goes wrong.
    case(
        "unclosed-flow-sequence",
        entry("  vllmConfig:", "    extraArgs: [--foo, --bar", "- name: b", "  modelURL: org/b"),
        5,
        7,
        "did not find expected ',' or ']' (while parsing a flow sequence at line 4)",
    ),
    case(
        "unclosed-flow-sequence-top-level",
        "[{name: a, modelURL: org/a}\n",
        2,
        None,
        "did not find expected ',' or ']'",
    ),
    # Indented one more than modelURL: a continuation of its value, whose ':' is at 3:14.
    case(
        "indent-too-deep", entry("   requestGPU: 1"), 3, 14, "mapping values are not allowed in this context"
    ),
    # Indented between the dash (column 1) and the keys (column 3).
    case(
        "indent-too-shallow",
        entry(" requestGPU: 1"),
        3,
        2,
        "did not find expected '-' indicator (while parsing a block collection at line 1)",
    ),
    case("tab-indentation", "- name: a\n\tmodelURL: org/a\n", 2, 1, "tab character"),
    # `org/m: extra`: the second ':' starts a mapping inside a plain scalar.
    case(
        "colon-inside-plain-scalar",
        "- name: a\n  modelURL: org/m: extra\n",
        2,
        18,
        "mapping values are not allowed in this context",
    ),
    case(
        "two-documents", entry("---", "- name: b", "  modelURL: org/b"), 3, 1, "more than one YAML document"
    ),
    case("undefined-alias", "- name: *nope\n  modelURL: org/a\n", 1, 9, "undefined alias"),
    case("invalid-utf8", b"- name: a\n  modelURL: org/\xff\n", 2, 17, "not UTF-8 text (byte 0xff)"),
    case(
        "latin1-comment", b"- name: a\n  modelURL: org/a\n  # caf\xe9\n", 3, 8, "not UTF-8 text (byte 0xe9)"
    ),
    case("utf16-file", "- name: a\n  modelURL: org/a\n".encode("utf-16"), 1, 1, "not UTF-8 text"),
    # "- name: a # café " is 17 characters (18 bytes): the bad byte is character 18.
    case(
        "invalid-utf8-after-multibyte",
        "- name: a # caf\u00e9 ".encode() + b"\xff\n",
        1,
        18,
        "not UTF-8 text (byte 0xff)",
    ),
    # An ANSI colour code pasted into the file: \x1b is the 18th character of line 2.
    case(
        "control-character",
        entry().replace("org/a", "org/a\x1b[0m"),
        2,
        18,
        "control character",
    ),
    # ------------------------------------------------------------ wrong top level
    case("top-level-mapping", "name: a\nmodelURL: org/a\n", 1, 1, "must be a list of models"),
    case(
        "top-level-mapping-after-comment",
        "# models\nmodels:\n  - name: a\n    modelURL: org/a\n",
        2,
        1,
        "found a mapping",
    ),
    case("top-level-scalar", "just some text\n", 1, 1, "found a single value"),
    case("list-of-strings", "- llama3\n- qwen\n", 1, 3, "found the value 'llama3'"),
    case(
        "list-with-nested-list",
        entry("- - name: b", "    modelURL: org/b"),
        3,
        3,
        "each model must be a mapping with name and modelURL, found a list",
    ),
    # ------------------------------------------------------------ wrong types
    case("replica-count-quoted", entry('  replicaCount: "2"'), 3, 17, "write 2 without quotes"),
    case("replica-count-negative", entry("  replicaCount: -1"), 3, 17, "must be 0 or more, not -1"),
    case("request-gpu-float", entry("  requestGPU: 1.5"), 3, 15, "must be a whole number, not float 1.5"),
    case("request-gpu-bool", entry("  requestGPU: true"), 3, 15, "not the boolean true"),
    case("request-cpu-word", entry("  requestCPU: lots"), 3, 15, "'lots' is not a CPU quantity"),
    case("request-cpu-zero", entry("  requestCPU: 0"), 3, 15, "must be more than 0"),
    case(
        "request-cpu-list",
        entry("  requestCPU: [2]"),
        3,
        15,
        "requestCPU",
    ),
    case("request-memory-bytes", entry("  requestMemory: 16"), 3, 18, "16 means 16 bytes; give a unit"),
    case("request-memory-gb", entry("  requestMemory: 16GB"), 3, 18, "did you mean '16Gi'?"),
    # An empty value is reported just after its key's ':' (as for `name:` below).
    case(
        "request-memory-empty",
        entry("  requestMemory:"),
        3,
        17,
        "requestMemory",
    ),
    case("pvc-storage-empty-string", entry('  pvcStorage: ""'), 3, 15, "'' is not a Kubernetes quantity"),
    case("gated-yes", entry("  gated: yes"), 3, 10, "must be true or false, not the string 'yes'"),
    case(
        "vllm-config-list",
        entry("  vllmConfig:", "    - maxModelLen: 4096"),
        4,
        5,
        "must be a mapping of keys to values, not a list",
    ),
    case(
        "gpu-memory-utilization-zero",
        entry("  vllmConfig:", "    gpuMemoryUtilization: 0"),
        4,
        27,
        "must be more than 0 and at most 1",
    ),
    case(
        "gpu-memory-utilization-above-one",
        entry("  vllmConfig:", "    gpuMemoryUtilization: 1.5"),
        4,
        27,
        "not 1.5",
    ),
    case(
        "tensor-parallel-vs-gpus",
        entry("  requestGPU: 2", "  vllmConfig:", "    tensorParallelSize: 3"),
        5,
        25,
        "3 does not divide requestGPU 2",
    ),
    case(
        "dtype-unknown", entry("  vllmConfig:", "    dtype: fp7"), 4, 12, "'fp7' is not a dtype vLLM accepts"
    ),
    case(
        "max-model-len-negative",
        entry("  vllmConfig:", "    maxModelLen: -1"),
        4,
        18,
        "must be 1 or more, not -1",
    ),
    case(
        "extra-args-string",
        entry("  vllmConfig:", "    extraArgs: --enforce-eager"),
        4,
        16,
        "must be a list of strings",
    ),
    case(
        "limit-below-request",
        entry("  requestMemory: 32Gi", "  limitMemory: 16Gi"),
        4,
        16,
        "16Gi is less than requestMemory 32Gi",
    ),
    # Line counting past a block scalar and a blank line, in the second entry.
    case(
        "error-after-block-scalar",
        entry(
            "  chatTemplate: |",
            "    line one",
            "    line two",
            "",
            "- name: b",
            "  modelURL: org/b",
            "  requestGPU: -1",
        ),
        9,
        15,
        "must be 0 or more, not -1",
    ),
    case(
        "flow-entry-after-astral-character",
        '- {name: a, env: [{name: "\u00e9\U0001f999"}], modelURL: bad url}\n',
        1,
        44,
        "'bad url' is not a HuggingFace repo id",
    ),
    case("crlf-line-breaks", "- name: a\r\n  modelURL: bad\r\n", 2, 13, "is not a HuggingFace repo id"),
    case("cr-line-breaks", "- name: a\r  modelURL: bad\r", 2, 13, "is not a HuggingFace repo id"),
    case("bom-not-counted", b"\xef\xbb\xbf- name: Bad\n  modelURL: org/a\n", 1, 9, "for example 'bad'"),
    # ------------------------------------------------------------ bad names
    case("name-uppercase", "- name: Llama3\n  modelURL: org/a\n", 1, 9, "for example 'llama3'"),
    case("name-underscore", "- name: my_model\n  modelURL: org/a\n", 1, 9, "for example 'my-model'"),
    case("name-trailing-dash", "- name: llama-\n  modelURL: org/a\n", 1, 9, "'llama-' is not a valid name"),
    case(
        "name-too-long", f"- name: {'a' * 41}\n  modelURL: org/a\n", 1, 9, "is 41 characters; use at most 40"
    ),
    case(
        "name-escaped-newline",
        '- name: "llama\\n3"\n  modelURL: org/a\n',
        1,
        9,
        "'llama\\n3' is not a valid name",
    ),
    case("name-with-quote", '- name: llama"3\n  modelURL: org/a\n', 1, 9, "is not a valid name"),
    case("name-accented", "- name: mod\u00e8le\n  modelURL: org/a\n", 1, 9, "is not a valid name"),
    case("name-emoji", "- name: llama\U0001f999\n  modelURL: org/a\n", 1, 9, "for example 'llama'"),
    case("name-empty-string", '- name: ""\n  modelURL: org/a\n', 1, 9, "'' is not a valid name"),
    case("name-empty-value", "- name:\n  modelURL: org/a\n", 1, 8, "must be a text name, not an empty value"),
    case(
        "name-number",
        "- name: 123\n  modelURL: org/a\n",
        1,
        9,
        "must be a text name, not the number 123; quote it: name: '123'",
    ),
    # ------------------------------------------------------------ bad modelURL
    case("model-url-no-org", "- name: a\n  modelURL: llama3\n", 2, 13, "is not a HuggingFace repo id"),
    case("model-url-http", "- name: a\n  modelURL: http://x/y\n", 2, 13, "uses an unsupported scheme"),
    case("model-url-spaces", "- name: a\n  modelURL: org/my model\n", 2, 13, "is not a HuggingFace repo id"),
    case("model-url-trailing-slash", "- name: a\n  modelURL: org/\n", 2, 13, "'org/' is not a HuggingFace"),
    case("model-url-empty-uri", "- name: a\n  modelURL: s3://\n", 2, 13, "is not a valid URI"),
    # ------------------------------------------------------------ duplicate names and keys
    case(
        "duplicate-name",
        entry("- name: b", "  modelURL: org/b", "- name: a", "  modelURL: org/c"),
        5,
        9,
        "is already used by the model at line 1",
    ),
    case(
        "duplicate-name-quoted",
        entry("- name: 'a'", "  modelURL: org/b"),
        3,
        9,
        "is already used by the model at line 1",
    ),
    # `*n` is the same node as `&n a`: the second use must still be reported where it is.
    case(
        "duplicate-name-via-alias",
        "- name: &n a\n  modelURL: org/a\n- name: *n\n  modelURL: org/b\n",
        3,
        9,
        "is already used by the model at line 1",
    ),
    case("duplicate-key", entry("  requestGPU: 1", "  requestGPU: 2"), 4, 3, "'requestGPU' appears twice"),
    case("duplicate-name-key", entry("  name: b"), 3, 3, "'name' appears twice"),
    case(
        "duplicate-vllm-config-key",
        entry("  vllmConfig:", "    maxModelLen: 1", "    maxModelLen: 2"),
        5,
        5,
        "'maxModelLen' appears twice",
    ),
    # ------------------------------------------------------------ unknown keys
    case("unknown-key-modelUrl", "- name: a\n  modelUrl: org/a\n", 2, 3, "did you mean 'modelURL'?"),
    case("unknown-key-replicas", entry("  replicas: 2"), 3, 3, "did you mean 'replicaCount'?"),
    case(
        "unknown-key-vllmconfig",
        entry("  vllmconfig:", "    maxModelLen: 4096"),
        3,
        3,
        "did you mean 'vllmConfig'?",
    ),
    case(
        "unknown-vllm-config-key",
        entry("  vllmConfig:", "    maxModelLength: 4096"),
        4,
        5,
        "did you mean 'maxModelLen'?",
    ),
    case("unknown-key-no-suggestion", entry("  flavour: vanilla"), 3, 3, "unknown key 'flavour'; remove it"),
    case("non-text-key", entry("  2: x"), 3, 3, "the key '2' must be text; quote it"),
    # ------------------------------------------------------------ YAML tags
    case(
        "python-tag-on-value",
        "- name: a\n  modelURL: !!python/object:os.system org/a\n",
        2,
        13,
        "remove the tag",
    ),
    case(
        "python-tag-on-gpu",
        entry("  requestGPU: !!python/object/apply:os.system [echo hi]"),
        3,
        15,
        "remove the tag",
    ),
    case(
        "python-tag-on-entry",
        "- !!python/object:os.system\n  name: a\n  modelURL: org/a\n",
        1,
        3,
        "remove the tag",
    ),
    case(
        "python-tag-on-top-level",
        "!!python/object:os.system\n- name: a\n  modelURL: org/a\n",
        1,
        1,
        "remove the tag",
    ),
    # ------------------------------------------------------------ missing fields
    case("missing-name", "- modelURL: org/a\n", 1, 3, "name is missing"),
    case("missing-model-url", "- name: a\n  requestGPU: 1\n", 1, 3, "modelURL is missing"),
    case("missing-name-second-entry", entry("- modelURL: org/b"), 3, 3, "name is missing"),
    case("empty-flow-entry", "- {}\n", 1, 3, "name is missing"),
    case("empty-entry", entry("-"), 3, 2, "each model must be a mapping"),
]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(("text", "line", "column", "expect"), CASES)
def test_malformed_file_is_refused(
    run: Run,
    models_file: Path,
    command: str,
    text: str | bytes,
    line: int,
    column: int | None,
    expect: str,
) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    models_file.write_bytes(data)

    result = run(*COMMANDS[command])

    shown = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert "internal error" not in result.stderr, shown
    assert result.exit_code == 2, shown
    where = f"models.yaml:{line}:{column}:" if column is not None else f"models.yaml:{line}:"
    assert where in result.stderr, shown
    assert expect in result.stderr, shown
    assert models_file.read_bytes() == data
    assert sorted(p.name for p in models_file.parent.iterdir()) == ["models.yaml"]


def test_count() -> None:
    assert len(CASES) >= 40


def test_refused_tag_is_not_also_reported_missing(run: Run, models_file: Path) -> None:
    models_file.write_text("- name: a\n  modelURL: !!python/object:os.system org/a\n")
    result = run("validate")
    assert result.exit_code == 2
    assert "remove the tag" in result.stderr
    assert "is missing" not in result.stderr, result.stderr
