"""Property: any sequence of add/remove/set keeps every byte outside the edited entry.

After each step the text must parse, the models must be exactly what a plain dict
model of the operations predicts (so strings with quotes, newlines, '#', ': ' or
unicode come back unchanged), and the bytes that changed must lie inside the entry
that was edited (for an add: nothing existing changes at all). Right after an add,
removing the new entry must give back the previous bytes.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.catalog import samples
from tests.catalog.textdiff import is_insertion_into_list, only_replaced
from vllmctl.catalog.edits import entry_span
from vllmctl.catalog.store import Catalog, adding, edit_text, parse, removing, setting
from vllmctl.core.errors import CatalogError

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,12}[a-z0-9]", fullmatch=True)
# Any text that can live in a UTF-8 file: quotes, newlines, '#', ': ', '{{ }}', emoji...
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
SET_PATHS: list[tuple[list[str], st.SearchStrategy[Any]]] = [
    (["replicaCount"], st.integers(0, 8)),
    (["requestMemory"], st.sampled_from(["8Gi", "16Gi", "1536Mi", "64Gi"])),
    (["vllmConfig", "maxModelLen"], st.integers(1, 131072)),
    (["vllmConfig", "dtype"], st.sampled_from(["auto", "bfloat16", "half"])),
    (["podAnnotations"], st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), TEXT, max_size=2)),
    (["env"], st.lists(st.fixed_dictionaries({"name": st.just("NOTE"), "value": TEXT}), max_size=2)),
]


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(NAMES)
    entry: dict[str, Any] = {"name": name, "modelURL": "org/" + re.sub("-+", "-", name)}  # HF forbids "--"
    if draw(st.booleans()):
        entry["replicaCount"] = draw(st.integers(0, 4))
    if draw(st.booleans()):
        entry["vllmConfig"] = {"maxModelLen": draw(st.integers(1, 65536))}
    if draw(st.booleans()):
        entry["env"] = [{"name": "NOTE", "value": draw(TEXT)}]
    return entry


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, Any, Any]]:
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["add", "add", "remove", "set", "set"]))
        if kind == "add":
            steps.append(("add", draw(entries()), None))
        elif kind == "remove":
            steps.append(("remove", draw(st.integers(0, 99)), None))
        else:
            path, values = draw(st.sampled_from(SET_PATHS))
            steps.append(("set", draw(st.integers(0, 99)), (path, draw(values))))
    return steps


def catalog_of(text: str) -> Catalog:
    return parse(Path("models.yaml"), text.encode("utf-8"))


def models_of(catalog: Catalog) -> dict[str, dict[str, Any]]:
    assert not catalog.problems, catalog.problems
    return {m.name: m.data for m in catalog.models}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(sorted(samples.ALL)), steps=operations())
def test_edits_keep_untouched_bytes(base: str, steps: list[tuple[str, Any, Any]]) -> None:
    catalog = catalog_of(samples.ALL[base])
    oracle = models_of(catalog)
    for kind, arg, extra in steps:
        old = catalog.doc.text
        if kind == "add":
            if arg["name"] in oracle:
                continue
            after = edit_text(catalog, adding(arg))
            assert is_insertion_into_list(old, after.doc.text), "an add changed existing text"
            assert edit_text(after, removing(arg["name"])).doc.text == old
            oracle[arg["name"]] = arg
        else:
            names = catalog.names()
            if not names:
                continue
            name = names[arg % len(names)]
            assert catalog.root is not None
            span = entry_span(catalog.doc, catalog.root, catalog.index_of(name))
            if kind == "remove":
                after = edit_text(catalog, removing(name))
                del oracle[name]
            else:
                path, value = extra
                try:
                    after = edit_text(catalog, setting(name, [(path, value)]))
                except CatalogError:
                    continue  # refused (e.g. invalid combination): nothing to check
                target = oracle[name]
                for key in path[:-1]:
                    target = target.setdefault(key, {})
                target[path[-1]] = copy.deepcopy(value)
            assert only_replaced(old, after.doc.text, *span), f"{kind} {name} changed text outside its entry"
        assert models_of(after) == oracle
        catalog = after
