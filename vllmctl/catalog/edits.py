"""Edits of models.yaml as text splices: add an entry, remove one, set a value in one.

Each function returns the new text; it replaces only the characters of the entry (or
the value) it changes, so every other byte of the file stays as it was. The caller
parses and validates the result before anything is written.
"""

from __future__ import annotations

from typing import Any

from vllmctl.core.errors import CatalogError
from vllmctl.core.yamldoc import (
    IndentStyle,
    MappingNode,
    Node,
    ScalarNode,
    YamlText,
    content_end,
    ends_with_break,
    find_dash,
    find_key,
    is_empty_document,
    is_mapping,
    is_scalar,
    is_sequence,
    line_end,
    line_start,
)


def _require_block_list(doc: YamlText, root: Node | None) -> None:
    if root is not None and is_sequence(root) and root.flow_style and root.value:
        raise CatalogError(
            f"{doc.where(root.start_mark.index)}: the list of models is written in flow style "
            "([...]); vllmctl edits block lists ('- name: ...') only; rewrite it as one."
        )


def _insert_lines(text: str, at: int, block: str, newline: str) -> str:
    """Insert whole lines at `at`, the start of a line or the end of the text.

    At the end of a text that lacks a final line break, the break goes before the
    block instead of after it, so removing the block again restores the text exactly.
    """
    if at == len(text) and at > 0 and not ends_with_break(text, at):
        return text + newline + block[: -len(newline)]
    return text[:at] + block + text[at:]


def add_entry(doc: YamlText, root: Node | None, style: IndentStyle, entry: dict[str, Any]) -> str:
    """The text with `entry` appended after the last model, in the file's own layout."""
    _require_block_list(doc, root)
    text = doc.text
    if root is not None and is_sequence(root) and root.flow_style:
        # An empty "[]": the new list takes its place, at its column, and whatever followed
        # it on the line (a comment) follows the entry's last line, so that removing the
        # entry again (`remove_entry` writes "[]" back) restores the file byte for byte.
        start, end = root.start_mark.index, root.end_mark.index
        column = start - line_start(text, start)
        if text[start - column : start].strip(" \t"):
            # "--- []": a block list cannot start on the marker's line; it goes below it.
            block = style.dump_item(entry, doc.newline)
            return text[:start].rstrip(" \t") + doc.newline + block[: -len(doc.newline)] + text[end:]
        block = style._replace(dash_column=column).dump_item(entry, doc.newline)
        return text[:start] + block[column : -len(doc.newline)] + text[end:]
    block = style.dump_item(entry, doc.newline)
    if is_empty_document(root):
        # Nothing, or `---` (then maybe `...`) around nothing: the entry goes where the value
        # would be, i.e. before a `...` end marker, not after it (that would start a new document).
        at = len(text) if root is None else root.start_mark.index
        if at < len(text) and not (at == 0 or ends_with_break(text, at)):
            at = line_end(text, at)
        return _insert_lines(text, at, block, doc.newline)
    assert root is not None
    return _insert_lines(text, line_end(text, content_end(text, root.value[-1])), block, doc.newline)


def entry_span(doc: YamlText, root: Node, index: int) -> tuple[int, int]:
    """The characters of list item `index`: from its dash's line to the end of its last line."""
    text = doc.text
    item = root.value[index]
    region_start = root.start_mark.index if index == 0 else content_end(text, root.value[index - 1])
    dash = find_dash(text, region_start, item.start_mark.index)
    start = line_start(text, dash)
    if text[start:dash].strip(" \t"):
        start = dash  # something precedes the dash on its line (e.g. '--- - name: a')
    end = line_end(text, content_end(text, item))
    if end == len(text) and not ends_with_break(text, end) and start > 0:
        # The item ends the file without a final line break: take the break before it.
        start -= 2 if text[start - 2 : start] == "\r\n" else 1
    return start, end


def remove_entry(doc: YamlText, root: Node, index: int) -> str:
    """The text without list item `index` (comments around it stay).

    Removing the only entry leaves the file as it was before a first entry was added to
    it: comments and document markers (`---`, `...`) alone, which read as an empty list,
    so a comments-only file such as models.example.yaml comes back byte for byte. Only
    when something else would be left with no value after it (a tag or an anchor on the
    list) does "[]" take the entry's place, to keep the file a list.
    """
    _require_block_list(doc, root)
    text = doc.text
    start, end = entry_span(doc, root, index)
    without = text[:start] + text[end:]
    if len(root.value) == 1 and not _only_comments_and_markers(without):
        item = root.value[0]
        dash = find_dash(text, root.start_mark.index, item.start_mark.index)
        return text[:dash] + "[]" + text[content_end(text, item) :]
    return without


def _only_comments_and_markers(text: str) -> bool:
    """Whether `text` holds nothing but blank lines, comments and document markers."""
    for line in text.splitlines():
        content = line.strip()
        for marker in ("---", "..."):
            if content == marker or content.startswith(marker + " "):
                content = content[len(marker) :].strip()
        if content and not content.startswith("#"):
            return False
    return True


def set_value(doc: YamlText, entry: MappingNode, path: list[str], value: Any, style: IndentStyle) -> str:
    """The text with `path` (e.g. ['vllmConfig', 'maxModelLen']) set to `value` in `entry`."""
    mapping = entry
    for depth, key in enumerate(path):
        _refuse_explicit_keys(doc, mapping)
        pair = find_key(mapping, key)
        rest = path[depth:]
        if pair is None:
            return _insert_key(doc, mapping, rest, value, style)
        key_node, value_node = pair
        if depth == len(path) - 1 or not is_mapping(value_node):
            if depth < len(path) - 1 and not _is_empty(value_node):
                raise CatalogError(
                    f"{doc.where(value_node.start_mark.index)}: {'.'.join(path[: depth + 1])} "
                    f"is not a mapping, so it cannot hold {'.'.join(path[depth + 1 :])}."
                )
            return _replace_pair(doc, mapping, key_node, value_node, _nest(rest, value), style)
        mapping = value_node
    raise AssertionError("unreachable: the loop returns")  # pragma: no cover


def _refuse_explicit_keys(doc: YamlText, mapping: MappingNode) -> None:
    """Stop at a key written in YAML's explicit form (`? key` then `: value`): a splice of
    `key: value` over it would leave the indicators behind, so such entries are not edited."""
    text = doc.text
    for key_node, _ in mapping.value:
        before = text[line_start(text, key_node.start_mark.index) : key_node.start_mark.index].rstrip(" \t")
        if before.endswith("?"):
            at = line_start(text, key_node.start_mark.index) + len(before) - 1
            raise CatalogError(
                f"{doc.where(at)}: this key is written in the explicit form ('? key' and ': value' "
                "lines), which vllmctl does not edit; write it as 'key: value' and try again."
            )


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    nested: Any = value
    for key in reversed(path):
        nested = {key: nested}
    return dict(nested)


def _is_empty(node: Node) -> bool:
    return is_scalar(node) and node.tag.endswith(":null")


def _replace_pair(
    doc: YamlText,
    parent: MappingNode,
    key_node: ScalarNode,
    value_node: Node,
    pair: dict[str, Any],
    style: IndentStyle,
) -> str:
    """Replace `key: <old value>` with the new pair; text after the old value's end stays."""
    text = doc.text
    ((key, value),) = pair.items()
    if is_scalar(value_node) and value_node.style in ('"', "'") and isinstance(value, str):
        pair = {key: _quoted(value, value_node.style)}  # keep the quoting the user chose
    start = key_node.start_mark.index
    end = content_end(text, value_node) if not _is_empty(value_node) else key_node.end_mark.index
    if _is_empty(value_node):
        # `key:` with no value: the pair ends after the colon that follows the key.
        colon = text.index(":", end)
        end = colon + 1
    flow = bool(parent.flow_style)
    rendered = _render_pair(pair, style, doc.newline, flow, indent=key_node.start_mark.column)
    return text[:start] + rendered + text[end:]


def _quoted(value: str, quote: str) -> Any:
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

    return DoubleQuotedScalarString(value) if quote == '"' else SingleQuotedScalarString(value)


def _render_pair(pair: dict[str, Any], style: IndentStyle, newline: str, flow: bool, indent: int) -> str:
    """`key: value` text whose first line starts at the cursor and later lines at `indent`."""
    dumped = style.dump(pair, newline, flow=flow)
    if flow:
        return dumped.strip()[1:-1].strip()  # drop the braces the dumper adds around the pair
    lines = dumped.rstrip("\r\n").split(newline)
    return (newline + " " * indent).join(lines)


def _insert_key(doc: YamlText, mapping: MappingNode, path: list[str], value: Any, style: IndentStyle) -> str:
    """Add a new key (with any missing parent mappings) at the end of `mapping`."""
    text = doc.text
    pair = _nest(path, value)
    if mapping.flow_style:
        close = mapping.end_mark.index - 1  # the '}'
        rendered = _render_pair(pair, style, doc.newline, flow=True, indent=0)
        separator = ", " if mapping.value else ""
        return text[:close].rstrip(" ") + separator + rendered + text[close:]
    first_key = mapping.value[0][0]
    column = first_key.start_mark.column
    rendered = _render_pair(pair, style, doc.newline, flow=False, indent=column)
    at = line_end(text, content_end(text, mapping))
    return _insert_lines(text, at, " " * column + rendered + doc.newline, doc.newline)
