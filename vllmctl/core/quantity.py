"""Kubernetes resource quantities (`16Gi`, `500m`, `1.5`, `1e3`) parsed to exact Decimals.

The kubernetes client has `kubernetes.utils.parse_quantity`, but importing it loads the
whole client (about half a second), which `list-models` cannot afford. This module
follows the same grammar (k8s.io/apimachinery's resource.Quantity); a property test
checks that it agrees with the client's parser on generated input.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

_QUANTITY = re.compile(
    r"""
    (?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))
    (?:
        (?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)
      | [eE](?P<exponent>[+-]?[0-9]+)
      | (?P<decimal>[numkMGTPE]?)
    )
    """,
    re.VERBOSE,
)


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity; plain numbers are accepted as YAML gives them."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise QuantityError(f"{value!r} is not a quantity")
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity")
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise QuantityError(f"{value!r} is not a quantity") from None
    try:
        if match["binary"]:
            return number * (Decimal(1024) ** _BINARY[match["binary"]])
        if match["exponent"] is not None:
            return number.scaleb(int(match["exponent"]))
        return number.scaleb(_DECIMAL[match["decimal"] or ""])
    except ArithmeticError:  # an exponent past what Decimal holds, e.g. 1e9999999999
        raise QuantityError(f"{value!r} is out of range") from None


# The API server stores a quantity as an int64 count of milli-units (k8s.io/apimachinery's
# resource.Quantity): anything larger cannot be written to an object.
MAX_MILLI_UNITS = 2**63 - 1


def beyond_kubernetes(amount: Decimal) -> bool:
    """Whether a parsed quantity is too large for Kubernetes to hold (int64 milli-units)."""
    return abs(amount) * 1000 > MAX_MILLI_UNITS


def format_bytes(amount: Decimal) -> str:
    """A byte count in the largest binary unit that keeps it readable (`16Gi`, `1.5Ti`)."""
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        unit = Decimal(1024) ** power
        if amount >= unit:
            scaled = (amount / unit).quantize(Decimal("0.01")).normalize()
            return f"{scaled:f}{suffix}"
    return f"{amount.normalize():f}"


def as_int(value: Any, default: int | None = None) -> int | None:
    """A count as the API writes it (a number, or a number as text), else `default`."""
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
