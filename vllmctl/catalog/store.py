"""The models catalog (models.yaml): load and validate it, and apply edits as transactions."""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vllmctl.catalog.schema import Model, Problem, Validation, validate
from vllmctl.core.errors import CatalogError, ConcurrentEditError, UsageError
from vllmctl.core.fields import did_you_mean
from vllmctl.core.fileio import atomic_write, locked, read_bytes, real_path, remove_stale_temp_files
from vllmctl.core.yamldoc import (
    IndentStyle,
    Node,
    YamlText,
    compose,
    decode,
    detect_style,
    find_key,
)

__all__ = [
    "ANY_CONTENT",
    "Catalog",
    "Model",
    "Problem",
    "adding",
    "apply_edit",
    "edit_text",
    "load",
    "parse",
    "removing",
    "setting",
]


class Catalog:
    """A parsed models.yaml: the text, its node tree, and what validation found."""

    def __init__(
        self, path: Path, raw: bytes | None, doc: YamlText, root: Node | None, validation: Validation
    ) -> None:
        self.path = path
        self.raw = raw  # None: the file does not exist (yet)
        self.doc = doc
        self.root = root
        self.validation = validation
        # How messages name the catalog: an environment's says which files it merges.
        self.label = str(path)

    @property
    def exists(self) -> bool:
        return self.raw is not None

    @property
    def models(self) -> list[Model]:
        return self.validation.models

    @property
    def problems(self) -> list[Problem]:
        return self.validation.problems

    @property
    def style(self) -> IndentStyle:
        return detect_style(self.doc.text, self.root)

    def names(self) -> list[str]:
        """Names of all entries that have one, valid or not, in file order."""
        return [name for name in map(_name_of, self.items()) if name is not None]

    def items(self) -> list[Node]:
        if self.root is None or self.root.id != "sequence":
            return []
        return list(self.root.value)

    def index_of(self, name: str) -> int:
        """Position of the entry called `name`; a clear error when there is none."""
        for index, item in enumerate(self.items()):
            if _name_of(item) == name:
                return index
        known = self.names()
        listing = ", ".join(known) if known else "none yet"
        raise UsageError(
            f"no model named {name!r} in {self.label}{did_you_mean(name, known)} (models: {listing})."
        )

    def model(self, name: str) -> Model:
        """The valid entry called `name`."""
        self.require_valid()
        index = self.index_of(name)
        return next(m for m in self.models if m.index == index)

    def require_valid(self, problems: list[Problem] | None = None) -> None:
        """Stop with every problem listed when the file is not valid (`problems`: these
        instead of validation's own, e.g. with the chart version's added)."""
        problems = self.problems if problems is None else problems
        if problems:
            count = len(problems)
            raise CatalogError(
                f"{self.label} has {count} problem{'s' if count > 1 else ''}; "
                "fix them and try again (nothing was changed).",
                details=[str(p) for p in problems],
            )


def _name_of(item: Node) -> str | None:
    """The `name` of a list item, valid or not; None when it has no plain name."""
    pair = find_key(item, "name") if item.id == "mapping" else None
    return str(pair[1].value) if pair and pair[1].id == "scalar" else None


def parse(path: Path, raw: bytes | None) -> Catalog:
    """Parse bytes read from `path` (None: a missing file, read as an empty list)."""
    doc = decode(path, raw or b"")
    with gc_paused():
        root = compose(doc)
        return Catalog(path, raw, doc, root, validate(doc, root))


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a parse makes tens of thousands of objects and
    no cycles, and the collections it would trigger cost ~10% on large files."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def load(path: Path) -> Catalog:
    """Read and parse models.yaml; a missing file is an empty catalog (`exists` is False)."""
    target = real_path(path)
    raw = read_bytes(target)
    if raw is not None:
        remove_stale_temp_files(target)
    return parse(path, raw)


Edit = Callable[[Catalog], str]
ANY_CONTENT = object()  # `apply_edit(based_on=...)`: apply the edit to whatever the file holds
_INDEX = re.compile(r"models\[\d+\] ?")
_LINE = re.compile(r"line \d+")


def apply_edit(
    path: Path,
    edit: Edit,
    *,
    based_on: bytes | object | None = ANY_CONTENT,
    create_from: bytes | None = None,
    parsed: Catalog | None = None,
) -> Catalog:
    """Run one edit under the lock, check the result, write it atomically; return it parsed.

    `based_on`: the bytes the user saw when answering prompts; if the file no longer
    holds them, nothing is written. Without prompts, the edit applies to the file as
    read under the lock, so concurrent vllmctl runs lose nothing.
    `create_from`: the text to start from when the file does not exist.
    `parsed`: the caller's parse of the file, reused if the file still holds those bytes.
    An edit that adds problems to the file is refused.
    """
    target = real_path(path)
    with locked(target):
        current = read_bytes(target)
        if based_on is not ANY_CONTENT and current != based_on:
            raise ConcurrentEditError(
                f"{path} changed on disk since vllmctl read it; nothing was written. Run the command again."
            )
        if parsed is not None and parsed.raw is not None and parsed.raw == current:
            before = parsed
        else:
            before = parse(path, current if current is not None else create_from)
        after = edit_text(before, edit)
        atomic_write(target, after.doc.encode(), expected=current)
        return after


def edit_text(before: Catalog, edit: Edit) -> Catalog:
    """Run `edit` on a parsed catalog and check its result: parseable, and no new problems."""
    aliases = before.doc.aliases
    if aliases:
        raise CatalogError(
            f"{before.doc.where(aliases[0])}: this file uses YAML aliases (*name), which vllmctl "
            "does not edit (an alias shares its anchor's place in the file, so an edit could land "
            "in the wrong entry). Write the values out instead of the alias, or edit the file by hand."
        )
    after = parse_after_edit(before.path, before.doc, edit(before))
    introduced = _new_problems(before.problems, after.problems)
    if introduced:
        raise CatalogError(
            f"the change would make {before.path} invalid; nothing was written.",
            details=[f"{p.key_path}: {p.message}" for p in introduced],
        )
    return after


def parse_after_edit(path: Path, doc: YamlText, new_text: str) -> Catalog:
    """Parse an edit's result; a failure here is vllmctl's bug, and nothing gets written."""
    raw = doc.encode(new_text)
    try:
        return parse(path, raw)
    except CatalogError as exc:  # pragma: no cover - guards against a faulty splice
        raise CatalogError(
            f"vllmctl produced text it cannot parse back ({exc.message}); nothing was written. "
            "Please report this with your models.yaml."
        ) from exc


def _comparable(problem: Problem) -> tuple[str, str]:
    # An edit elsewhere moves entries and lines: compare problems without those numbers.
    return (_INDEX.sub("", problem.key_path), _LINE.sub("", problem.message))


def _new_problems(before: list[Problem], after: list[Problem]) -> list[Problem]:
    """Problems in `after` that `before` did not have (line numbers may have moved)."""
    seen = [_comparable(p) for p in before]
    introduced = []
    for problem in after:
        key = _comparable(problem)
        if key in seen:
            seen.remove(key)
        else:
            introduced.append(problem)
    return introduced


# ---------------------------------------------------------------- the edits commands make


def adding(entry: dict[str, Any]) -> Edit:
    """Edit: append `entry` after the last model."""
    from vllmctl.catalog.edits import add_entry

    return lambda current: add_entry(current.doc, current.root, current.style, entry)


def removing(name: str) -> Edit:
    """Edit: remove the model called `name`."""
    from vllmctl.catalog.edits import remove_entry

    def edit(current: Catalog) -> str:
        assert current.root is not None  # index_of found the entry, so there is a list
        return remove_entry(current.doc, current.root, current.index_of(name))

    return edit


def setting(name: str, assignments: list[tuple[list[str], Any]]) -> Edit:
    """Edit: set each key path of the model called `name`, one after the other."""
    from vllmctl.catalog.edits import set_value

    def edit(current: Catalog) -> str:
        for path, value in assignments:
            entry = current.items()[current.index_of(name)]
            text = set_value(current.doc, entry, path, value, current.style)
            current = parse_after_edit(current.path, current.doc, text)
        return current.doc.text

    return edit
