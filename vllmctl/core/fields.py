"""The shape of a models.yaml field (its check and its help text), and the patterns of
values several packages check (HuggingFace repo ids, the model source URI schemes).

Apart from the schema so that the chart features, which own some of the fields, can
declare them without importing the schema that collects them (vllmctl.features.base).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

# A HuggingFace repo id: "org/name", letters, digits, '-', '_', '.', no '--' or '..'.
REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
# What a modelURL may be besides a repo id (vllmctl.features.sources, docs/model-sources.md).
URI_SCHEMES = ("pvc://", "s3://", "oci://")
Check = Callable[[Any], str | None]


class At(str):
    """A check's problem inside its value, with where: list indexes and mapping keys from
    the value down (`At("...", (1, "source"))`: the second item's `source` value), so the
    schema points at that node's line:column rather than the field's."""

    path: tuple[int | str, ...]

    def __new__(cls, message: str, path: tuple[int | str, ...]) -> At:
        made = super().__new__(cls, message)
        made.path = path
        return made


class Field(NamedTuple):
    """A key vllmctl understands: its check returns the problem text, or None when fine."""

    check: Check
    help: str
    children: dict[str, Field] | None = None


def kind_of(value: Any) -> str:
    """A value as a message names it: `the string 'x'`, `a mapping`, `an empty value`."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def int_check(minimum: int) -> Check:
    """The check of a whole number of at least `minimum` (a quoted number is told to lose
    its quotes)."""

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = f"; write {str(value).strip()} without quotes" if is_int_text(value) else ""
            return f"must be a whole number, not {kind_of(value)}{hint}"
        if value < minimum:
            return f"must be {minimum} or more, not {value}"
        return None

    return check


def is_int_text(value: Any) -> bool:
    """Whether `value` is a whole number written as text ('4')."""
    return isinstance(value, str) and value.strip().isdigit()


def did_you_mean(key: str, known: list[str]) -> str:
    """`; did you mean 'x'?` for the known key closest to a mistyped one ('' if none is)."""
    lowered = {k.lower(): k for k in known}
    if key.lower() in lowered:
        return f"; did you mean {lowered[key.lower()]!r}?"
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
