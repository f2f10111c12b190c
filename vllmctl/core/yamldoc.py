"""models.yaml as text plus a positioned node tree, and byte-exact edits spliced into that text.

Why not load and re-dump? ruamel.yaml's round-trip mode keeps comments but still
re-emits the whole file (spacing, some quoting and line breaks can move) and takes
1.7 s for a 1,000-model file. Instead the file is composed by libyaml (through
ruamel.yaml.clib: 80 ms for 1,000 models), every node keeps its character offsets, and
an edit replaces exactly the characters of the entry or value it changes. Everything
else is, by construction, the same bytes. ruamel.yaml's emitter writes the new text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from vllmctl.core.errors import CatalogError

# ruamel's node classes (filled in by libyaml's composer) declare few of the attributes
# they carry (`id`, `style`, `flow_style`, marks), so nodes are typed loosely here.
Node = Any
MappingNode = Any
ScalarNode = Any
SequenceNode = Any

# The line breaks libyaml recognises (YAML 1.1): node marks count lines by these, so
# "start of line" and "end of line" must use the same set.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_BREAK_CHARS = "\r\n\x85\u2028\u2029"
BOM = "\ufeff"


class Position(NamedTuple):
    """A 1-based line and column in the file, for messages."""

    line: int
    column: int


class YamlText:
    """The decoded file: its text without a BOM, and the conventions edits must follow."""

    def __init__(self, path: Path, text: str, bom: bool, newline: str) -> None:
        self.path = path
        self.text = text
        self.bom = bom
        self.newline = newline

    def encode(self, text: str | None = None) -> bytes:
        """The file's bytes for `text` (default: the current text), BOM restored."""
        body = self.text if text is None else text
        return ((BOM if self.bom else "") + body).encode("utf-8")

    @cached_property
    def _line_starts(self) -> list[int]:
        return [0] + [match.end() for match in _LINE_BREAK.finditer(self.text)]

    def position(self, index: int) -> Position:
        """The line and column of a character offset, counted as libyaml counts them."""
        line = bisect_right(self._line_starts, index) - 1
        return Position(line + 1, index - self._line_starts[line] + 1)

    @cached_property
    def aliases(self) -> list[int]:
        """Offsets of the aliases (`*name`) in the text. An alias node is the very node of
        its anchor, with the anchor's position, so edits cannot be spliced around one;
        callers refuse to edit such files. (`compose` fills this in when it scans.)"""
        return _check_bounds(self) if "*" in self.text else []

    def where(self, index: int) -> str:
        """`file:line:column` of a character offset."""
        pos = self.position(index)
        return f"{self.path}:{pos.line}:{pos.column}"


def decode(path: Path, data: bytes) -> YamlText:
    """Decode the file's bytes as UTF-8, keeping its BOM and newline convention."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Everything before the bad byte decoded fine: count lines and columns in characters.
        head = data[: exc.start].decode("utf-8")
        line = head.count("\n") + 1
        column = len(head) - (head.rfind("\n") + 1) + 1
        raise CatalogError(
            f"{path}:{line}:{column}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save it as UTF-8."
        ) from None
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    return YamlText(path, text, bom, newline_of(text))


def newline_of(text: str) -> str:
    """The file's own line ending, from its first line break: CRLF, CR alone (old Mac
    files) or LF; LF also for a file without one, or whose first is a YAML 1.1 break."""
    match = re.search("\r\n|[\r\n]", text)
    return match.group() if match else "\n"


def compose(doc: YamlText) -> Node | None:
    """Parse the text into libyaml's node tree; None for a document with no content.

    Text that could nest deeper than MAX_DEPTH or holds aliases is scanned first
    (`_check_bounds`): libyaml's composer recurses once per level (a hundred thousand
    nested `[` overflow the C stack), and aliases can make a few hundred bytes stand for
    millions of values.
    """
    from ruamel.yaml.cyaml import CSafeLoader
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    try:
        if _may_exceed_bounds(doc.text):
            doc.__dict__["aliases"] = _check_bounds(doc)  # fills the `aliases` cache too
        node: Node | None = CSafeLoader(doc.text).get_single_node()
    except MarkedYAMLError as exc:
        raise CatalogError(_syntax_message(doc, exc)) from None
    except ReaderError as exc:  # a character YAML does not allow, e.g. a pasted ESC
        character = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise CatalogError(
            f"{doc.where(exc.position)}: the character {character!r} is not allowed in YAML "
            "(control characters are not); delete it."
        ) from None
    except YAMLError as exc:  # pragma: no cover - libyaml reports the others with marks
        raise CatalogError(f"{doc.path}: not valid YAML: {first_line(exc)}") from None
    return node


# How deep values may nest, and how many values aliases may add to what is written.
# models.yaml needs a handful of levels (affinity, the deepest chart key, about ten); the
# alias limit follows the Kubernetes API server, which refuses YAML whose aliases expand
# it far past its own size. docs/models-yaml.md ("Limits") documents both.
MAX_DEPTH = 100
MAX_ALIAS_NODES = 100_000
# A block collection nested in another starts at a greater column, or at the same one
# for a list under a mapping key: so a line prefix of spaces and indicators shorter
# than this keeps block nesting within half of MAX_DEPTH.
_DEEP_PREFIX = re.compile(rf"^[ \t?:-]{{{MAX_DEPTH // 4}}}", re.MULTILINE)


def _may_exceed_bounds(text: str) -> bool:
    """Whether the text might hold an alias or nest past MAX_DEPTH (cheap, no parse):
    every flow level needs a '[' or '{', and every two block levels one more column."""
    if "*" in text:
        return True
    return text.count("[") + text.count("{") > MAX_DEPTH // 2 or _DEEP_PREFIX.search(text) is not None


class _Open:
    """A collection being scanned: how many values it stands for so far, and its anchor."""

    __slots__ = ("anchor", "size")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.size = 1


def _check_bounds(doc: YamlText) -> list[int]:
    """Scan the events once: refuse nesting past MAX_DEPTH and aliases that add more than
    MAX_ALIAS_NODES values, at the offending line:column; return the aliases' offsets.

    Each anchor's expanded size is known when its value ends, so an alias costs one
    addition, and a value aliased inside itself is caught while it is still open.
    """
    from ruamel.yaml.cyaml import CSafeLoader

    loader = CSafeLoader(doc.text)
    sizes: dict[str, int] = {}
    stack: list[_Open] = []
    added = 0
    aliases: list[int] = []
    while (event := loader.get_event()) is not None:
        kind = type(event).__name__
        if kind in ("SequenceStartEvent", "MappingStartEvent"):
            if len(stack) >= MAX_DEPTH:
                raise CatalogError(
                    f"{doc.where(event.start_mark.index)}: values are nested more than {MAX_DEPTH} "
                    "levels deep here, past what vllmctl reads (a model entry needs a few); "
                    "flatten this value."
                )
            stack.append(_Open(event.anchor))
            continue
        if kind in ("SequenceEndEvent", "MappingEndEvent"):
            done = stack.pop()
            if done.anchor is not None:
                sizes[done.anchor] = done.size
            size = done.size
        elif kind == "ScalarEvent":
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif kind == "AliasEvent":
            at = event.start_mark.index
            aliases.append(at)
            if any(open_.anchor == event.anchor for open_ in stack):
                raise CatalogError(
                    f"{doc.where(at)}: the alias *{event.anchor} is inside the value it names, "
                    "which would repeat without end; write the value out instead."
                )
            size = sizes.get(event.anchor, 1)  # an undefined alias: the composer names it
            added += size
            if added > MAX_ALIAS_NODES:
                raise CatalogError(
                    f"{doc.where(at)}: the alias *{event.anchor} takes the aliases in this file past "
                    f"{MAX_ALIAS_NODES:,} repeated values (each alias repeats its anchor's whole "
                    f"value; this one {size:,}); write the values out, or use fewer nested aliases."
                )
        elif kind == "StreamEndEvent":
            break
        else:
            continue
        if stack:
            stack[-1].size += size
    return aliases


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, for a message; its class name when it has
    none (a MemoryError or RecursionError may carry no text at all)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _syntax_message(doc: YamlText, exc: Any) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{doc.path}:{mark.line + 1}:{mark.column + 1}" if mark else str(doc.path)
    problem = exc.problem or exc.context or "invalid YAML"
    if "expected a single document" in str(exc):
        problem = "the file holds more than one YAML document (---); keep one list of models"
    context = ""
    if exc.context and exc.context_mark and exc.problem:
        context = f" ({exc.context} at line {exc.context_mark.line + 1})"
    return f"{where}: YAML syntax error: {problem}{context}; fix the YAML and try again."


STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
NULL_TAG = "tag:yaml.org,2002:null"


def is_empty_document(root: Node | None) -> bool:
    """Whether the file holds no value at all: nothing, only comments, or document markers
    around nothing (`---`, `---` then `...`), which libyaml composes as an empty null.
    vllmctl reads such a file as an empty list of models."""
    if root is None:
        return True
    return bool(is_scalar(root) and root.value == "" and not root.style and tag_of(root) == NULL_TAG)


def tag_of(node: Node) -> str:
    """The node's resolved tag. (`node.tag` formats a new string on every access.)"""
    return str(node.ctag.suffix)


class Constructor:
    """Builds plain Python values from nodes: ruamel's safe constructor, with fast paths
    for the scalars that make up nearly all of models.yaml (plain strings and decimal
    integers), which cost a tenth of the general path on a 1,000-model file.

    An aliased node (libyaml gives every alias its anchor's very node) is built once and
    the value shared, so aliases cost what the file says, not what they expand to."""

    def __init__(self) -> None:
        import warnings

        from ruamel.yaml.cyaml import CSafeLoader
        from ruamel.yaml.error import MantissaNoDotYAML1_1Warning

        # A fresh one per parse: ruamel caches every constructed node, keeping trees alive.
        self._loader = CSafeLoader("")
        # ruamel warns on stderr, in a dozen lines, about floats like 1e3; the value is
        # read as YAML 1.1 says and checked like any other.
        warnings.simplefilter("ignore", MantissaNoDotYAML1_1Warning)
        self._built: dict[int, Any] = {}

    def __call__(self, node: Node) -> Any:
        kind = node.id
        if kind != "scalar":
            built = self._built.get(id(node), self)
            if built is not self:
                return built
        value = self._build(node, kind)
        if kind != "scalar":
            self._built[id(node)] = value  # the nodes live as long as this constructor
        return value

    def _build(self, node: Node, kind: str) -> Any:
        tag = tag_of(node)
        if kind == "scalar":
            value = node.value
            if tag == STR_TAG:
                return value
            if tag == INT_TAG and value.isascii() and value.isdigit() and (value == "0" or value[0] != "0"):
                return int(value)
        elif kind == "mapping" and tag == MAP_TAG:
            keys = [
                key.value if key.id == "scalar" and tag_of(key) == STR_TAG else None for key, _ in node.value
            ]
            if None not in keys and len(set(keys)) == len(keys):  # else: ruamel reports it
                return {key: self(value) for key, (_, value) in zip(keys, node.value, strict=True)}
        elif kind == "sequence" and tag == SEQ_TAG:
            return [self(item) for item in node.value]
        return self._loader.construct_object(node, deep=True)


def construct(node: Node) -> Any:
    """The plain Python value of one node."""
    return Constructor()(node)


# ---------------------------------------------------------------- positions of nodes


def is_scalar(node: Node) -> bool:
    return bool(node.id == "scalar")


def is_mapping(node: Node) -> bool:
    return bool(node.id == "mapping")


def is_sequence(node: Node) -> bool:
    return bool(node.id == "sequence")


def content_end(text: str, node: Node) -> int:
    """Offset just after the node's last character of content.

    A block collection's own end mark lies at the next token, past trailing blank
    lines and comments, so the end is taken from its last child instead. A block
    scalar's (`|`, `>`) end mark lies past its trailing line breaks, which may reach
    into the comment lines after it: step back to its last line of text.
    """
    if is_scalar(node):
        end: int = node.end_mark.index
        if node.style in ("|", ">"):
            while end > node.start_mark.index and text[end - 1] in _BREAK_CHARS + " \t":
                end -= 1
        return end
    if getattr(node, "flow_style", False) or not node.value:
        return int(node.end_mark.index)
    last = node.value[-1]
    return content_end(text, last[1] if is_mapping(node) else last)


def line_start(text: str, index: int) -> int:
    """Offset of the first character of the line holding `index`."""
    i = index
    while i > 0 and text[i - 1] not in _BREAK_CHARS:
        i -= 1
    return i


def line_end(text: str, index: int) -> int:
    """Offset just past the line break ending the line that holds `index` (or EOF)."""
    if index > 0 and text[index - 1] in _BREAK_CHARS and index == len(text):
        return index
    match = _LINE_BREAK.search(text, index)
    return match.end() if match else len(text)


def ends_with_break(text: str, index: int) -> bool:
    """Whether the character before `index` is a line break."""
    return index > 0 and text[index - 1] in _BREAK_CHARS


def find_dash(text: str, region_start: int, item_start: int) -> int:
    """Offset of the `-` that introduces a block sequence item starting at `item_start`.

    Between the previous item's content (or the sequence start) and the item, the text
    holds only white space, comments and that one dash: the last line whose first
    non-blank character is `-` has it.
    """
    segments = []
    start = region_start
    for match in _LINE_BREAK.finditer(text, region_start, item_start):
        segments.append((start, match.start()))
        start = match.end()
    segments.append((start, item_start))
    for seg_start, seg_end in reversed(segments):
        body = text[seg_start:seg_end]
        stripped = body.lstrip(" \t")
        if stripped.startswith("-") and (len(stripped) == 1 or stripped[1] in " \t"):
            return seg_start + len(body) - len(stripped)
    raise CatalogError(f"cannot locate the '-' of the list item at offset {item_start}")


# ---------------------------------------------------------------- the style of the file


class IndentStyle(NamedTuple):
    """How the file lays out its list and the blocks inside entries, so new text matches."""

    dash_column: int = 0  # column of the '-' of each model
    key_offset: int = 2  # from that dash to the entry's keys
    mapping_step: int = 2  # nested mapping indent
    sequence_indent: int = 4  # nested list: from its key to the item content
    sequence_dash: int = 2  # nested list: from its key to the '-'

    def dump(self, value: Any, newline: str, flow: bool = False) -> str:
        """YAML text for `value` (a mapping), laid out in this style from column 0."""
        import io

        from ruamel.yaml import YAML

        yaml = YAML(typ="rt", pure=True)  # "rt" keeps the key order it is given
        yaml.default_flow_style = flow
        yaml.allow_unicode = True
        yaml.width = 1 << 20  # never fold long strings across lines
        yaml.indent(mapping=self.mapping_step, sequence=self.sequence_indent, offset=self.sequence_dash)
        stream = io.StringIO()
        yaml.dump(_quote_ambiguous(value), stream)
        out = stream.getvalue()
        if out.endswith("...\n"):
            out = out[: -len("...\n")]
        return out.replace("\n", newline)

    def dump_item(self, entry: dict[str, Any], newline: str) -> str:
        """A whole list item: '- ' at the file's dash column, keys at its key column."""
        lines = self.dump(entry, newline).rstrip("\r\n").split(newline)
        first = " " * self.dash_column + "-" + " " * (self.key_offset - 1) + lines[0]
        rest = [" " * (self.dash_column + self.key_offset) + line if line else line for line in lines[1:]]
        return newline.join([first, *rest]) + newline


# Plain words that YAML 1.1 readers (yq, PyYAML, go-yaml v2) take for booleans, while
# YAML 1.2 reads them as strings: quote them so every reader sees the same string.
_YAML11_BOOLS = frozenset(["y", "yes", "n", "no", "on", "off", "true", "false"])


def _quote_ambiguous(value: Any) -> Any:
    """Force the quoting under which every YAML reader reads back the same string.

    Line breaks and control characters go in double quotes, as escapes: ruamel may
    otherwise write a NEL or U+2028 raw, which libyaml (YAML 1.1) folds into a space.
    """
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

    if isinstance(value, dict):
        return {k: _quote_ambiguous(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_quote_ambiguous(v) for v in value]
    if isinstance(value, str):
        if any(ch in _BREAK_CHARS or ch < " " or "\x7f" <= ch <= "\x9f" for ch in value):
            return DoubleQuotedScalarString(value)
        if value.lower() in _YAML11_BOOLS:
            return SingleQuotedScalarString(value)
    return value


def detect_style(text: str, root: SequenceNode | None) -> IndentStyle:
    """Read the indentation the file already uses, so new entries look like old ones."""
    if root is None or not root.value or not is_sequence(root) or root.flow_style:
        return IndentStyle()
    first = root.value[0]
    dash = find_dash(text, root.start_mark.index, first.start_mark.index)
    dash_column = dash - line_start(text, dash)
    key_offset = first.start_mark.column - dash_column
    if not is_mapping(first) or first.flow_style or key_offset < 2:
        return IndentStyle(dash_column=dash_column)
    found: dict[str, int] = {}
    for entry in root.value:
        _nested_layout(text, entry, found)
        if len(found) == 3:
            break
    default = IndentStyle()
    step = found.get("mapping_step", default.mapping_step)
    return IndentStyle(
        dash_column=dash_column,
        key_offset=key_offset,
        mapping_step=step,
        sequence_indent=found.get("sequence_indent", step + 2),
        sequence_dash=found.get("sequence_dash", step),
    )


def _nested_layout(text: str, entry: Node, found: dict[str, int]) -> None:
    """Note the first nested block mapping's and block list's indentation in `entry`."""
    if not is_mapping(entry) or entry.flow_style:
        return
    for key, value in entry.value:
        column = key.start_mark.column
        if is_mapping(value) and not value.flow_style and value.value:
            found.setdefault("mapping_step", max(1, value.value[0][0].start_mark.column - column))
        elif is_sequence(value) and not value.flow_style and value.value:
            item = value.value[0]
            dash = find_dash(text, value.start_mark.index, item.start_mark.index)
            found.setdefault("sequence_dash", dash - line_start(text, dash) - column)
            found.setdefault("sequence_indent", item.start_mark.column - column)


def mapping_items(node: MappingNode) -> Iterator[tuple[ScalarNode, Node]]:
    """Key/value node pairs of a mapping whose keys are scalars."""
    for key, value in node.value:
        if is_scalar(key):
            yield key, value


def find_key(node: MappingNode, key: str) -> tuple[ScalarNode, Node] | None:
    """The key/value node pair for `key` in a mapping, if present."""
    for key_node, value in mapping_items(node):
        if key_node.value == key:
            return key_node, value
    return None
