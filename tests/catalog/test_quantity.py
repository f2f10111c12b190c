"""Our quantity parser agrees with the kubernetes client's parse_quantity."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as client_parse

from vllmctl.core.quantity import QuantityError, format_bytes, parse_quantity

NUMBER = st.from_regex(r"[+-]?([0-9]{1,6}(\.[0-9]{0,4})?|\.[0-9]{1,4})", fullmatch=True)
SUFFIX = st.sampled_from(
    ["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u"]
)
EXPONENT = st.from_regex(r"[eE][+-]?[0-9]{1,2}", fullmatch=True)


@settings(max_examples=300)
@given(number=NUMBER, suffix=st.one_of(SUFFIX, EXPONENT))
def test_grammar_values_agree(number: str, suffix: str) -> None:
    text = number + suffix
    assert parse_quantity(text) == client_parse(text)


# Suffixes the Python client accepts but the API server (apimachinery) rejects: we follow
# the server, since a value it rejects would fail at install time.
CLIENT_ONLY = re.compile(r"(K|[kmnu]i)$|\s|[eE][+-]?[0-9]+[^0-9]")  # odd suffixes, space, exponent+suffix


@settings(max_examples=500)
@given(text=st.text(alphabet="0123456789.+-eEkKMGTPimnu ", max_size=8))
def test_acceptance_agrees_on_arbitrary_text(text: str) -> None:
    try:
        expected: Decimal | None = client_parse(text)
    except ValueError:
        expected = None
    try:
        ours: Decimal | None = parse_quantity(text)
    except QuantityError:
        ours = None
    if ours is None and expected is not None:
        assert CLIENT_ONLY.search(text), f"we reject {text!r}, which the client accepts"
    else:
        assert ours == expected


@pytest.mark.parametrize("value", [6, 0.5, 16])
def test_yaml_numbers_are_quantities(value: float) -> None:
    assert parse_quantity(value) == client_parse(str(value))


def test_booleans_are_not_quantities() -> None:
    with pytest.raises(QuantityError):
        parse_quantity(True)


def test_format_bytes() -> None:
    assert format_bytes(parse_quantity("16Gi")) == "16Gi"
    assert format_bytes(parse_quantity("1536Mi")) == "1.5Gi"
    assert format_bytes(Decimal(16)) == "16"
