"""The fields `add-model` asks for, shared by its flags and its prompts so both check alike."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vllmctl.catalog import schema

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


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


@dataclass(frozen=True)
class Question:
    """One field of a new entry: where it goes, its flag, its prompt, default and check."""

    path: tuple[str, ...]
    flag: str
    prompt: str
    default: Any
    check: Callable[[Any], str | None]
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


def _vllm(key: str) -> Callable[[Any], str | None]:
    return schema.VLLM_CONFIG_FIELDS[key].check


def _field(key: str) -> Callable[[Any], str | None]:
    return schema.FIELDS[key].check


D = schema.DEFAULTS
QUESTIONS: tuple[Question, ...] = (
    Question(("name",), "--name", "Model name (the API model id)", None, _field("name"), as_text),
    Question(
        ("modelURL",),
        "--model-url",
        "HuggingFace model id (org/model) or pvc://, s3://, oci:// URI",
        None,
        _field("modelURL"),
        as_text,
    ),
    Question(("requestGPU",), "--gpus", "GPUs per replica", D["requestGPU"], _field("requestGPU")),
    Question(("replicaCount",), "--replicas", "Replicas", D["replicaCount"], _field("replicaCount")),
    Question(("requestCPU",), "--cpu", "CPU request per replica", D["requestCPU"], _field("requestCPU")),
    Question(
        ("requestMemory",),
        "--memory",
        "Memory request per replica",
        D["requestMemory"],
        _field("requestMemory"),
    ),
    Question(("limitMemory",), "--limit-memory", "", None, _field("limitMemory")),
    Question(("pvcStorage",), "--storage", "Model cache volume size", D["pvcStorage"], _field("pvcStorage")),
    Question(
        ("vllmConfig", "maxModelLen"),
        "--max-model-len",
        "Max model length in tokens (blank: the model's own)",
        None,
        _vllm("maxModelLen"),
        engine_option=True,
    ),
    Question(
        ("vllmConfig", "dtype"),
        "--dtype",
        "dtype",
        None,
        _vllm("dtype"),
        as_text,
        engine_option=True,
        choices=schema.DTYPES,
    ),
    Question(
        ("vllmConfig", "tensorParallelSize"),
        "--tensor-parallel-size",
        "Tensor parallel size (blank: 1)",
        None,
        _vllm("tensorParallelSize"),
        engine_option=True,
    ),
    Question(
        ("vllmConfig", "gpuMemoryUtilization"),
        "--gpu-memory-utilization",
        "GPU memory utilization, 0-1 (blank: vLLM's 0.9)",
        None,
        _vllm("gpuMemoryUtilization"),
        engine_option=True,
    ),
)


# Keys of a new entry in the order the chart's own examples use (prompts ask GPUs early).
ENTRY_ORDER = (
    "name",
    "modelURL",
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
