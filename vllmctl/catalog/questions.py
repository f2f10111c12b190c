"""The fields `add-model` asks for, shared by its flags and its prompts so both check alike."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from vllmctl.catalog.constants import DEFAULTS, DTYPES

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# A model page's address as a browser shows it, e.g. https://huggingface.co/org/model,
# .../tree/main or .../blob/main/config.json: the repo id is its first two path segments.
_HUB_PAGE = re.compile(r"https?://(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<path>[^?#]*)(?:[?#].*)?", re.I)
# Hub pages that are not models: their repo ids would name something else.
_NOT_MODELS = ("datasets", "spaces", "docs", "models", "collections", "papers", "organizations")


def as_text(text: str) -> Any:
    return text


def as_number_or_text(text: str) -> Any:
    """`6` -> 6, `0.5` -> 0.5, `500m` -> '500m': what the value would be if typed in YAML."""
    stripped = text.strip()
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    return stripped


def as_model_url(text: str) -> Any:
    """A repo id, URI, or a pasted Hub page address (`https://huggingface.co/org/model`, also
    with /tree/..., /blob/... or a trailing slash) as the repo id `org/model`."""
    stripped = text.strip()
    page = _HUB_PAGE.fullmatch(stripped)
    if page is None:
        return stripped
    segments = [s for s in page["path"].split("/") if s]
    if len(segments) < 2 or segments[0].lower() in _NOT_MODELS:
        return stripped  # left for the schema's check to explain
    return f"{segments[0]}/{segments[1]}"


class Question(NamedTuple):
    """One field of a new entry: where it goes, its flag, its prompt, default and check."""

    path: tuple[str, ...]
    flag: str
    prompt: str
    default: Any
    convert: Callable[[str], Any] = as_number_or_text
    engine_option: bool = False  # asked only when the user wants to set engine options
    choices: tuple[str, ...] = ()

    @property
    def param(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def parse(self, text: str) -> tuple[Any, str | None]:
        """The value for `text`, and the problem with it (None when fine)."""
        if not text.strip():
            return None, "give a value"
        value = self.convert(text)
        return value, self.check(value)

    def check(self, value: Any) -> str | None:
        """The schema's check of this field (imported only when a value is checked)."""
        from vllmctl.catalog import schema

        fields = schema.VLLM_CONFIG_FIELDS if self.path[0] == "vllmConfig" else schema.FIELDS
        return fields[self.path[-1]].check(value)


D = DEFAULTS
QUESTIONS: tuple[Question, ...] = (
    Question(("name",), "--name", "Model name (the API model id)", None, as_text),
    Question(
        ("modelURL",),
        "--model-url",
        "HuggingFace model id (org/model) or pvc://, s3://, oci:// URI",
        None,
        as_model_url,
    ),
    Question(("requestGPU",), "--gpus", "GPUs per replica", D["requestGPU"]),
    Question(("replicaCount",), "--replicas", "Replicas", D["replicaCount"]),
    Question(("requestCPU",), "--cpu", "CPU request per replica", D["requestCPU"]),
    Question(
        ("requestMemory",),
        "--memory",
        "Memory request per replica",
        D["requestMemory"],
    ),
    Question(("limitMemory",), "--limit-memory", "", None),
    Question(("pvcStorage",), "--storage", "Model cache volume size", D["pvcStorage"]),
    Question(
        ("vllmConfig", "maxModelLen"),
        "--max-model-len",
        "Max model length in tokens (blank: the model's own)",
        None,
        engine_option=True,
    ),
    Question(
        ("vllmConfig", "dtype"),
        "--dtype",
        "dtype",
        None,
        as_text,
        engine_option=True,
        choices=DTYPES,
    ),
    Question(
        ("vllmConfig", "tensorParallelSize"),
        "--tensor-parallel-size",
        "Tensor parallel size (blank: 1)",
        None,
        engine_option=True,
    ),
    Question(
        ("vllmConfig", "gpuMemoryUtilization"),
        "--gpu-memory-utilization",
        "GPU memory utilization, 0-1 (blank: vLLM's 0.9)",
        None,
        engine_option=True,
    ),
)


# Keys of a new entry in the order the chart's own examples use (prompts ask GPUs early).
ENTRY_ORDER = (
    "name",
    "modelURL",
    "gated",  # recorded by add-model from the Hub's answer, next to the repo it is about
    "replicaCount",
    "requestCPU",
    "requestMemory",
    "limitMemory",
    "requestGPU",
    "pvcStorage",
    "vllmConfig",
)


def build_entry(values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """A models.yaml entry from answers, keys in ENTRY_ORDER; unset answers left out."""
    entry: dict[str, Any] = {}
    for question in sorted(QUESTIONS, key=lambda q: ENTRY_ORDER.index(q.path[0])):
        value = values.get(question.path)
        if value is None:
            continue
        target = entry
        for key in question.path[:-1]:
            target = target.setdefault(key, {})
        target[question.path[-1]] = value
    return entry


def with_field(entry: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """`entry` with `key: value` added, keys in ENTRY_ORDER (unknown keys last)."""
    merged = {**entry, key: value}
    rank = {name: i for i, name in enumerate(ENTRY_ORDER)}
    return dict(sorted(merged.items(), key=lambda item: rank.get(item[0], len(rank))))


# Fields a cross-field problem also involves besides the one it is reported at, so asking
# again offers both (e.g. fewer tensor-parallel GPUs, or more GPUs).
_ALSO_INVOLVED: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {
    ("vllmConfig", "tensorParallelSize"): (("requestGPU",),),
    ("limitMemory",): (("requestMemory",),),
}


class EntryProblem(NamedTuple):
    """A problem of a new entry as a whole, and the questions that can fix it."""

    key: str  # e.g. "vllmConfig.tensorParallelSize"
    message: str
    questions: tuple[Question, ...]  # empty: no question of add-model sets that key


def entry_problems(entry: dict[str, Any]) -> list[EntryProblem]:
    """What the schema finds wrong with `entry` on its own: after each answer was checked
    alone, these are the problems between fields (tensorParallelSize vs requestGPU, ...)."""
    from pathlib import Path

    from vllmctl.catalog.edits import add_entry
    from vllmctl.catalog.store import parse
    from vllmctl.core.yamldoc import decode, detect_style

    empty = decode(Path("new entry"), b"")
    text = add_entry(empty, None, detect_style("", None), entry)  # the text add-model will splice in
    by_path = {q.path: q for q in QUESTIONS}
    found = []
    for problem in parse(empty.path, empty.encode(text)).validation.problems:
        key = problem.key_path.split(".", 1)[1] if "." in problem.key_path else problem.key_path
        path = tuple(key.split("."))
        involved = [path, *_ALSO_INVOLVED.get(path, ())]
        questions = tuple(by_path[p] for p in involved if p in by_path)
        found.append(EntryProblem(key, problem.message, questions))
    return found
