"""Durations as people write them for kubectl and helm: Go's `90s`, `10m`, `1h30m`, `1.5h`."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")  # Go accepts both micro signs
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PLAIN = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def go_seconds(text: str) -> float | None:
    """A Go duration in seconds (`1h30m` -> 5400.0); None when the text is not one."""
    position, total = 0, 0.0
    while position < len(text):
        part = _PART.match(text, position)
        if part is None:
            return None
        total += float(part.group(1)) * _SECONDS[part.group(2)]
        position = part.end()
    return total if text else None


def seconds(text: str) -> float | None:
    """A duration or a plain number of seconds (`30`, `2.5`, `30s`, `2m`); None otherwise."""
    text = text.strip()
    return float(text) if _PLAIN.fullmatch(text) else go_seconds(text)
