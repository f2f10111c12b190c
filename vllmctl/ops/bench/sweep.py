"""--sweep concurrency=1,2,4 or --sweep rate=1,2,4: the load shapes of a sweep, one per point."""

from __future__ import annotations

import dataclasses
import math

from vllmctl.core.errors import UsageError
from vllmctl.ops.bench.runner import LoadShape

PARAMETERS = ("concurrency", "rate")


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """`concurrency=1,2,4` -> ("concurrency", [1, 2, 4]); rates may be decimals or inf."""
    name, eq, values = text.partition("=")
    name = name.strip().lower()
    if not eq or name not in PARAMETERS or not values.strip():
        raise UsageError(f"--sweep {text!r}: give concurrency=1,2,4 or rate=1,2,4.")
    points: list[float] = []
    for part in values.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        good = value >= 1 and value.is_integer() if name == "concurrency" else value > 0
        if math.isnan(value) or not good:
            need = "whole numbers from 1" if name == "concurrency" else "positive numbers (or inf)"
            raise UsageError(f"--sweep {text!r}: {part.strip()!r} is not valid; {name} takes {need}.")
        points.append(value)
    return name, points


def shape_at(shape: LoadShape, parameter: str, value: float) -> LoadShape:
    if parameter == "concurrency":
        return dataclasses.replace(shape, concurrency=int(value))
    return dataclasses.replace(shape, rate=value)
