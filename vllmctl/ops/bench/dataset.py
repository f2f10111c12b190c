"""`bench --dataset FILE`: a JSONL file of prompts, one JSON object a line, read and checked.

A line is one of the shapes benchmark datasets come in:

- `{"prompt": "..."}`: a completion prompt (vLLM's and guidellm's custom datasets);
- `{"text": "..."}`: the same, under the name text corpora use;
- `{"messages": [{"role": "user", "content": "..."}, ...]}`: an OpenAI-style conversation,
  sent to /v1/chat/completions as it is (a completion endpoint has no chat template to put
  it through);

with, optionally, `"output_len"` or `"max_tokens"` (a whole number >= 1): that line's output
length, instead of `--output-len`. Other keys (ids, labels) are ignored. Blank lines are
skipped. A file is all prompts or all conversations: one run measures one endpoint.

Every mistake is a UsageError naming `FILE:LINE` (and the column for bad JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllmctl.core.errors import UsageError

TEXT_KEYS = ("prompt", "text")
LENGTH_KEYS = ("output_len", "max_tokens")
# The roles OpenAI's chat API and vLLM's chat templates know.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MAX_BYTES = 1 << 30  # a dataset is read whole: refuse what would not fit in memory sensibly
EXAMPLE = '{"prompt": "Explain KV caching."}'


@dataclass(frozen=True)
class DatasetLine:
    """One prompt of the file, as written there."""

    line: int  # 1-based, for messages
    text: str  # the prompt; for a conversation, its messages' contents joined by newlines
    messages: tuple[Mapping[str, Any], ...] | None  # the conversation, for chat
    output_len: int | None  # the line's own output length, if it gives one


def read_dataset(path: Path) -> list[DatasetLine]:
    """Every prompt of the JSONL file at `path`, in file order."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UsageError(f"--dataset {name} is {size >> 20} MiB: bench reads at most 1 GiB of prompts.")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"--dataset {name} does not exist: give a JSONL file of prompts.") from None
    except IsADirectoryError:
        raise UsageError(f"--dataset {name} is a directory: give a JSONL file of prompts.") from None
    except OSError as error:
        raise UsageError(f"--dataset {name} cannot be read ({error.strerror or error}).") from None
    try:
        content = raw.decode("utf-8-sig")  # a BOM from Windows editors is not part of line 1's JSON
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UsageError(
            f"{name}:{line}: not UTF-8 text (byte {error.start}); save the file as UTF-8."
        ) from None
    lines: list[DatasetLine] = []
    kind: tuple[str, int] | None = None  # ("chat" or "prompt", the first line of that kind)
    # Split on newlines only: str.splitlines would also break at U+2028, which JSON strings may hold.
    for number, text in enumerate(content.split("\n"), start=1):
        if not text.strip():
            continue
        entry = _parse_line(name, number, text)
        this = "chat" if entry.messages is not None else "prompt"
        if kind is None:
            kind = (this, number)
        elif kind[0] != this:
            first = "conversations (messages)" if kind[0] == "chat" else "prompts (prompt or text)"
            raise UsageError(
                f"{name}:{number}: line {kind[1]} started a file of {first} and this line is not one; "
                "put prompts and conversations in separate files."
            )
        lines.append(entry)
    if not lines:
        raise UsageError(f"--dataset {name} has no prompts: write one JSON object a line, such as {EXAMPLE}.")
    return lines


def _parse_line(name: str, number: int, text: str) -> DatasetLine:
    where = f"{name}:{number}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{where}:{error.colno}: not JSON ({error.msg}); write one object a line, such as {EXAMPLE}."
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: a line must be a JSON object, such as {EXAMPLE}, not {_kind(data)}.")
    present = [key for key in (*TEXT_KEYS, "messages") if key in data]
    if not present:
        keys = ", ".join(sorted(data)[:5]) or "none"
        raise UsageError(f"{where}: no prompt, text or messages key (it has: {keys}); such as {EXAMPLE}.")
    if len(present) > 1:
        raise UsageError(f"{where}: give one of prompt, text and messages, not {' and '.join(present)}.")
    key = present[0]
    output_len = _output_len(where, data)
    if key == "messages":
        messages = _messages(where, data["messages"])
        joined = "\n".join(str(m["content"]) for m in messages)
        return DatasetLine(number, joined, messages, output_len)
    value = data[key]
    if not isinstance(value, str):
        raise UsageError(f"{where}: {key} must be a string, not {_kind(value)}.")
    if not value.strip():
        raise UsageError(f"{where}: {key} is empty; a benchmark prompt needs text.")
    return DatasetLine(number, value, None, output_len)


def _output_len(where: str, data: dict[str, Any]) -> int | None:
    given = {key: data[key] for key in LENGTH_KEYS if data.get(key) is not None}
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(
                f"{where}: {key} must be a whole number of tokens >= 1, not {json.dumps(value)}."
            )
    values = set(given.values())
    if len(values) > 1:
        raise UsageError(
            f"{where}: output_len and max_tokens differ ({' and '.join(map(str, given.values()))}); give one."
        )
    return values.pop() if values else None


def _messages(where: str, value: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list) or not value:
        raise UsageError(f'{where}: messages must be a non-empty list of {{"role", "content"}} objects.')
    checked = []
    for index, message in enumerate(value, start=1):
        if not isinstance(message, dict):
            raise UsageError(
                f"{where}: message {index} must be an object with role and content, not {_kind(message)}."
            )
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            known = ", ".join(sorted(ROLES))
            raise UsageError(f"{where}: message {index}'s role {json.dumps(role)} is not one of {known}.")
        if not isinstance(content, str):
            # Content parts (images, audio) would need a multimodal model: text only here.
            raise UsageError(f"{where}: message {index}'s content must be a string, not {_kind(content)}.")
        checked.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in checked):
        raise UsageError(f"{where}: the conversation has no user message.")
    return tuple(checked)


def _kind(value: Any) -> str:
    """A JSON value's type in JSON's words, for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
