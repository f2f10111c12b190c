"""What a models.yaml entry may hold, and validation that names file:line:column and the fix.

The keys are the vllm-stack chart's `servingEngineSpec.modelSpec[]` keys, so an entry
reads like the chart values it becomes. Keys vllmctl validates itself are in FIELDS (its own
and the chart features');
other modelSpec keys of the chart pass through to the values unchanged (CHART_KEYS,
checked against the chart's values.schema.json, see docs/chart-facts.md); anything else
is an error with a did-you-mean.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from vllmctl.catalog.constants import DEFAULTS, DTYPES
from vllmctl.chart.facts import CHART_KEYS
from vllmctl.core.fields import At, Check, Field, did_you_mean, int_check
from vllmctl.core.fields import kind_of as _type_name
from vllmctl.core.quantity import (
    MAX_MILLI_UNITS,
    QuantityError,
    beyond_kubernetes,
    format_bytes,
    parse_quantity,
)
from vllmctl.core.yamldoc import (
    MAP_TAG,
    SEQ_TAG,
    STR_TAG,
    Constructor,
    MappingNode,
    Node,
    YamlText,
    find_key,
    first_line,
    is_empty_document,
    is_mapping,
    is_scalar,
    is_sequence,
    tag_of,
)
from vllmctl.features import registry
from vllmctl.features.base import Feature, overriding

# Derived object names ("<release>-<name>-deployment-vllm", 63 max) must stay valid.
NAME_MAX = 40
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MIN_MEMORY = Decimal(1024**2)
MERGE_TAG = "tag:yaml.org,2002:merge"


class Problem(NamedTuple):
    """One thing wrong with the file: where, which key, and what to do."""

    where: str
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key_path}: {self.message}"


def check_name(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"must be a text name, not the number {value}; quote it: name: '{value}'"
    if not isinstance(value, str):
        return f"must be a text name, not {_type_name(value)}"
    if len(value) > NAME_MAX:
        return f"{value!r} is {len(value)} characters; use at most {NAME_MAX}"
    if not NAME_RE.fullmatch(value):
        ascii_name = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
        suggestion = re.sub(r"[^a-z0-9-]+", "-", ascii_name.lower()).strip("-")[:NAME_MAX].strip("-")
        hint = f"; for example {suggestion!r}" if suggestion and NAME_RE.fullmatch(suggestion) else ""
        return (
            f"{value!r} is not a valid name: use lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit{hint}"
        )
    return None


def _not_a_quantity(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"must be a quantity like 16Gi or 500m, not {_type_name(value)}"
    return None


# Requests no node can satisfy: more is a unit mistake (16Ei for 16Gi), not a big model.
MAX_CPU = Decimal(10_000)
MAX_MEMORY = Decimal(1024**5)  # 1 PiB per replica


def check_cpu(value: Any) -> str | None:
    if problem := _not_a_quantity(value):
        return problem
    try:
        amount = parse_quantity(value)
    except QuantityError:
        return f"{value!r} is not a CPU quantity; use cores like 6 or 0.5, or millicores like 500m"
    if amount <= 0:
        return f"must be more than 0, not {value!r}"
    if amount > MAX_CPU:
        return (
            f"{value!r} is more than {MAX_CPU:,} CPUs per replica, more than any node has; "
            "give cores like 6 or millicores like 500m"
        )
    return None


def memory_check(maximum: Decimal | None) -> Check:
    """A memory quantity's check; `maximum`: the most that makes sense for the field."""

    def check(value: Any) -> str | None:
        if problem := _not_a_quantity(value):
            return problem
        try:
            amount = parse_quantity(value)
        except QuantityError:
            hint = ""
            if isinstance(value, str):
                fixed = re.sub(r"([KMGTPE])[bB]?$", r"\1i", value.strip())
                if fixed != value and _is_quantity(fixed):
                    hint = f"; did you mean {fixed!r}?"
            return f"{value!r} is not a Kubernetes quantity; use a binary suffix like 16Gi{hint}"
        if amount < MIN_MEMORY:
            return f"{value!r} means {format_bytes(amount)} bytes; give a unit, e.g. '{value}Gi'"
        if maximum is not None and amount > maximum:
            return (
                f"{value!r} is more than {format_bytes(maximum)} per replica, which no node has; "
                "check the unit (e.g. 64Gi)"
            )
        if beyond_kubernetes(amount):
            return (
                f"{value!r} is larger than any quantity Kubernetes can hold "
                f"({format_bytes(Decimal(MAX_MILLI_UNITS) / 1000)}); check the unit (e.g. 500Gi)"
            )
        return None

    return check


check_memory = memory_check(MAX_MEMORY)


def _is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
    except QuantityError:
        return False
    return True


def check_dtype(value: Any) -> str | None:
    if value not in DTYPES:
        import difflib

        close = difflib.get_close_matches(str(value), DTYPES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{value!r} is not a dtype vLLM accepts; use one of {', '.join(DTYPES)}{hint}"
    return None


def check_fraction(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number between 0 and 1, not {_type_name(value)}"
    if not 0 < value <= 1:
        return f"must be more than 0 and at most 1 (a fraction of GPU memory), not {value}"
    return None


def check_bool(value: Any) -> str | None:
    if not isinstance(value, bool):
        return f"must be true or false, not {_type_name(value)}"
    return None


def check_str_list(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"must be a list of strings (one per argument), not {_type_name(value)}"
    for item in value:
        if not isinstance(item, str):
            if isinstance(item, int | float) and not isinstance(item, bool):
                return f"every argument must be text, not the number {item}; quote it: '{item}'"
            return f"every argument must be text, not {_type_name(item)}"
    return None


def check_mapping(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"must be a mapping of keys to values, not {_type_name(value)}"
    return None


def check_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"must be text, not {_type_name(value)}"
    return None


# An image repository as `docker pull` takes it, without tag or digest: an optional
# registry host (with port), then lowercase path components.
IMAGE_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def check_image(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"must be an image repository like vllm/vllm-openai, not {_type_name(value)}"
    if "@" in value:
        return (
            f"{value!r} has a digest; the chart writes the image as repository:tag, so give the "
            "repository here and a tag in `tag`"
        )
    repository, colon, tag = value.rpartition(":")
    if colon and "/" not in tag and IMAGE_RE.fullmatch(repository):
        return f"{value!r} includes a tag; write image: {repository} and tag: {tag!r}"
    if not IMAGE_RE.fullmatch(value):
        return (
            f"{value!r} is not an image repository; write it like vllm/vllm-openai or "
            "registry.example.com:5000/vllm/vllm-openai (lowercase path)"
        )
    return None


def check_tag(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"must be text, not the number {value}; quote it: tag: '{value}'"
    if not isinstance(value, str) or not TAG_RE.fullmatch(value):
        return f"{value!r} is not an image tag: letters, digits, '_', '.' and '-', up to 128, e.g. v0.11.0"
    return None


# The vllmConfig keys the chart turns into `vllm serve` flags. Others would be dropped
# silently by the chart, so they are errors here; anything else goes in extraArgs.
# pipelineParallelSize is read only by the chart's RayCluster: the multinode feature
# (features/multinode.py) renders one for a model that has it.
VLLM_CONFIG_FIELDS: dict[str, Field] = {
    "maxModelLen": Field(int_check(1), "context length in tokens (--max-model-len)"),
    "dtype": Field(check_dtype, "weight dtype (--dtype)"),
    "tensorParallelSize": Field(int_check(1), "GPUs one replica spans (--tensor-parallel-size)"),
    "pipelineParallelSize": Field(
        int_check(2), "nodes one replica spans, as a KubeRay RayCluster (--pipeline-parallel-size)"
    ),
    "gpuMemoryUtilization": Field(check_fraction, "share of GPU memory vLLM may use"),
    "enablePrefixCaching": Field(check_bool, "prefix caching (vLLM's default: on)"),
    "enableChunkedPrefill": Field(check_bool, "chunked prefill"),
    "maxNumSeqs": Field(int_check(1), "maximum concurrent sequences (--max-num-seqs)"),
    "maxLoras": Field(int_check(1), "LoRA adapters per batch (--max-loras)"),
    "runner": Field(check_text, "model runner (--runner; chart 0.1.9+)"),
    "convert": Field(check_text, "model conversion (--convert; chart 0.1.9+)"),
    "v0": Field(check_text, 'set "1" to use vLLM\'s V0 engine'),
    "extraArgs": Field(check_str_list, "more `vllm serve` arguments, one per item"),
}

CORE_FIELDS: dict[str, Field] = {
    "name": Field(check_name, "the model's name: API model id and Kubernetes name"),
    "replicaCount": Field(int_check(0), "engine replicas"),
    "requestCPU": Field(check_cpu, "CPU request per replica"),
    "requestMemory": Field(check_memory, "memory request per replica"),
    "limitMemory": Field(check_memory, "memory limit per replica"),
    "requestGPU": Field(int_check(0), "GPUs per replica"),
    "pvcStorage": Field(memory_check(None), "size of the model cache volume"),
    "gated": Field(check_bool, "the model needs a HuggingFace token"),
    "image": Field(check_image, "engine image repository (default VLLM_MODEL_IMAGE)"),
    "tag": Field(check_tag, "engine image tag (default VLLM_MODEL_TAG)"),
    "vllmConfig": Field(check_mapping, "vLLM engine options", VLLM_CONFIG_FIELDS),
}


def all_fields() -> dict[str, Field]:
    """models.yaml's fields: the core ones, then those the chart features own (model
    sources, autoscaling, ...), each checked by its feature. Read from the registry at each
    call, so no feature is named here."""
    merged = dict(CORE_FIELDS)
    for feature in registry.FEATURES:
        merged.update(feature.fields)
    return merged


class _AllFields(Mapping[str, Field]):
    """`all_fields()` as a mapping, for callers that only look keys up."""

    def __getitem__(self, key: str) -> Field:
        return all_fields()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(all_fields())

    def __len__(self) -> int:
        return len(all_fields())


FIELDS: Mapping[str, Field] = _AllFields()
REQUIRED = ("name", "modelURL")


class Model:
    """One validated entry: its values as written, and where it sits in the file."""

    __slots__ = ("data", "index", "node")

    def __init__(self, index: int, data: dict[str, Any], node: MappingNode) -> None:
        self.index = index
        self.data = data
        self.node = node

    @property
    def name(self) -> str:
        return str(self.data["name"])

    def effective(self) -> dict[str, Any]:
        """The entry with vllmctl's defaults filled in, in the file's key order."""
        merged = dict(self.data)
        for key, default in DEFAULTS.items():
            merged.setdefault(key, default)
        return merged


class Validation(NamedTuple):
    """What validating the file found: the models that are whole, and every problem."""

    models: list[Model]
    problems: list[Problem]


def validate(doc: YamlText, root: Node | None) -> Validation:
    """Check every entry; collect all problems rather than stopping at the first."""
    models: list[Model] = []
    problems: list[Problem] = []
    if root is None or is_empty_document(root):
        return Validation(models, problems)
    if not is_sequence(root):
        found = "a mapping" if is_mapping(root) else "a single value"
        problems.append(
            Problem(
                doc.where(root.start_mark.index),
                "top level",
                f"models.yaml must be a list of models ('- name: ...'), found {found}",
            )
        )
        return Validation(models, problems)
    if tag_of(root) != SEQ_TAG:
        problems.append(Problem(doc.where(root.start_mark.index), "top level", _tag_refused(tag_of(root))))
        return Validation(models, problems)
    first_seen: dict[str, int] = {}
    construct = Constructor()
    fields = all_fields()
    # the features with checks across an entry's keys (most have none: skip their calls)
    checking = overriding(registry.FEATURES, "entry_problems")
    serving = overriding(registry.FEATURES, "served_ids")
    # Every model's name first, so that an adapter clashes with a model written after it too.
    ids: dict[str, tuple[str, int]] = {}
    for entry in root.value:
        pair = find_key(entry, "name") if is_mapping(entry) else None
        if pair and is_scalar(pair[1]) and isinstance(pair[1].value, str):
            line = doc.position(pair[1].start_mark.index).line
            ids.setdefault(pair[1].value, (f"the name of model {pair[1].value}", line))
    for index, item in enumerate(root.value):
        label = f"models[{index}]"
        if is_mapping(item) and tag_of(item) != MAP_TAG:
            problems.append(Problem(doc.where(item.start_mark.index), label, _tag_refused(tag_of(item))))
            continue
        if not is_mapping(item):
            problems.append(
                Problem(
                    doc.where(item.start_mark.index),
                    label,
                    f"each model must be a mapping with name and modelURL, found {_node_kind(item)}",
                )
            )
            continue
        name_pair = find_key(item, "name")
        name: str | None = name_pair[1].value if name_pair and is_scalar(name_pair[1]) else None
        if isinstance(name, str) and check_name(name) is None:
            label = f"{label} ({name})"
        entry_problems: list[Problem] = []
        data, present = _check_mapping(doc, construct, item, fields, label, entry_problems, top=True)
        if name is not None and name_pair and data.get("name") == name and check_name(name) is None:
            name_at = value_index(doc, *name_pair)
            if name in first_seen:
                entry_problems.append(
                    Problem(
                        doc.where(name_at),
                        f"{label}.name",
                        f"the name {name!r} is already used by the model at line "
                        f"{first_seen[name]}; names must be unique",
                    )
                )
            else:
                first_seen[name] = doc.position(name_at).line
        for key in REQUIRED:
            if key not in present:
                entry_problems.append(
                    Problem(doc.where(item.start_mark.index), label, f"{key} is missing; add '{key}: ...'")
                )
        entry_problems.extend(_cross_checks(doc, item, data, label, checking))
        entry_problems.extend(_id_clashes(doc, item, data, label, ids, serving))
        problems.extend(entry_problems)
        if not entry_problems:
            models.append(Model(index, data, item))
    return Validation(models, problems)


def _id_clashes(
    doc: YamlText,
    item: MappingNode,
    data: dict[str, Any],
    label: str,
    ids: dict[str, tuple[str, int]],
    features: list[Feature],
) -> list[Problem]:
    """The API model ids a feature adds to an entry (a LoRA adapter's name) that are already
    a model's name or another such id: a request for it would be ambiguous. `ids` holds
    every model's name (each with what it is and its line), and collects the added ids."""
    name = data.get("name")
    problems: list[Problem] = []
    for feature in features:
        for served, path, what in feature.served_ids(data):
            node = _node_at(item, path)
            line = doc.position(node.start_mark.index).line
            owner = ids.get(served)
            if owner is None:
                ids[served] = (f"{what} of model {name}", line)
                continue
            other = "this model's name" if served == name else owner[0]
            problems.append(
                Problem(
                    doc.where(node.start_mark.index),
                    label + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path),
                    f"{what} {served!r} is already {other} (line {owner[1]}); it is a model id in the "
                    "API, so a request for it would be ambiguous: rename one of them",
                )
            )
    return problems


def _node_kind(node: Node) -> str:
    if is_sequence(node):
        return "a list"
    if is_scalar(node) and node.tag.endswith(":null"):
        return "an empty entry"
    return f"the value {node.value!r}" if is_scalar(node) else "something else"


def _value_node(mapping: MappingNode, key: str) -> Node:
    """The value node of a key the caller knows is there."""
    pair = find_key(mapping, key)
    if pair is None:
        raise KeyError(key)
    return pair[1]


def value_index(doc: YamlText, key_node: Node, value_node: Node) -> int:
    """Where a key's value starts. An alias (`*x`) shares its anchor's node, and so its
    position, which lies before the key: then find the alias itself after the key."""
    start: int = value_node.start_mark.index
    key_end: int = key_node.end_mark.index
    if start >= key_end:
        return start
    return next((at for at in doc.aliases if at >= key_end), int(key_node.start_mark.index))


def _node_at(node: Node, path: tuple[int | str, ...]) -> Node:
    """The node `path` leads to from `node` (list indexes, mapping keys: the key's value),
    as far as the nodes go."""
    for step in path:
        if isinstance(step, int) and is_sequence(node) and step < len(node.value):
            node = node.value[step]
        elif isinstance(step, str) and is_mapping(node) and (pair := find_key(node, step)):
            node = pair[1]
        else:
            break
    return node


def _first_bad_item(node: Node, value: Any, check: Check) -> Node:
    """The node to point at for a list's problem: its first item that fails the check on
    its own (e.g. the number in `extraArgs: [--x, 64]`), else the list itself."""
    if check is not check_str_list:  # only list checks judge items one by one
        return node
    if isinstance(value, list) and is_sequence(node) and len(node.value) == len(value):
        for item_node, item in zip(node.value, value, strict=True):
            if check([item]) is not None:
                return item_node
    return node


def check_env(node: Node, value: Any) -> tuple[Node, str] | None:
    """`env` as the chart reads it: a list of {name, value} (or {name, valueFrom}); the
    chart ranges over it, so a mapping would fail inside helm's template."""
    if isinstance(value, dict):
        first = next(iter(value), "NAME")
        return node, (
            "must be a list of {name, value} (the chart's container env), not a mapping; "
            f"write e.g. env: [{{name: {first}, value: '{value.get(first, '...')}'}}]"
        )
    if not isinstance(value, list):
        return node, f"must be a list of {{name, value}}, not {_type_name(value)}"
    items = node.value if is_sequence(node) and len(node.value) == len(value) else [node] * len(value)
    for item_node, item in zip(items, value, strict=True):
        if not isinstance(item, dict):
            return (
                item_node,
                f"each variable must be a mapping {{name: ..., value: ...}}, not {_type_name(item)}",
            )
        if not isinstance(item.get("name"), str) or not item["name"]:
            return item_node, "each variable needs a name (name: MY_VARIABLE)"
        if "value" not in item and "valueFrom" not in item:
            return item_node, f"{item['name']} needs a value (value: '...') or a valueFrom"
        if "value" in item and not isinstance(item["value"], str | int | float):
            return item_node, f"the value of {item['name']} must be text, not {_type_name(item['value'])}"
    return None


# Chart keys vllmctl passes through but checks first, where a wrong shape would only
# fail inside helm: key -> a check of (value node, value) giving the node to point at.
CHART_KEY_CHECKS: dict[str, Callable[[Node, Any], tuple[Node, str] | None]] = {"env": check_env}


def _check_mapping(
    doc: YamlText,
    construct: Constructor,
    node: MappingNode,
    fields: dict[str, Field],
    label: str,
    problems: list[Problem],
    top: bool = False,
) -> tuple[dict[str, Any], set[str]]:
    """The mapping's valid values, and every key it has (valid or not)."""
    data: dict[str, Any] = {}
    present: set[str] = set()
    known = list(fields) + (list(CHART_KEYS) if top else [])
    # Positions are formatted only where a problem is reported: most keys have none.
    for key_node, value_node in node.value:
        if not is_scalar(key_node) or tag_of(key_node) != STR_TAG:
            problems.append(Problem(doc.where(key_node.start_mark.index), label, _key_problem(key_node)))
            continue
        key = key_node.value
        path = f"{label}.{key}"
        if key in present:
            problems.append(
                Problem(
                    doc.where(key_node.start_mark.index),
                    path,
                    f"{key!r} appears twice in this mapping; keep one",
                )
            )
            continue
        present.add(key)
        try:
            value = construct(value_node)
        except Exception as exc:  # ruamel's ConstructorError: a tag, or a duplicate key inside
            problems.append(_construct_problem(doc, exc, path, _value_at(doc, key_node, value_node)))
            continue
        spec = fields.get(key)
        if spec is None:
            if top and key in CHART_KEYS:
                chart_check = CHART_KEY_CHECKS.get(key)
                found = chart_check(value_node, value) if chart_check else None
                if found is not None:
                    at = found[0] if found[0] is not value_node else None
                    where = (
                        doc.where(at.start_mark.index)
                        if at is not None
                        else _value_at(doc, key_node, value_node)
                    )
                    problems.append(Problem(where, path, found[1]))
                    continue
                data[key] = value
                continue
            hint = did_you_mean(key, known) or "; remove it (docs/models-yaml.md lists the keys)"
            problems.append(Problem(doc.where(key_node.start_mark.index), path, f"unknown key {key!r}{hint}"))
            continue
        message = spec.check(value)
        if message and spec.children and is_mapping(value_node):
            # A mistyped key is what makes a mapping incomplete ({cpuOfload: 4Gi} lacks
            # cpuOffload): name it at its own line:column first; the whole-value message is
            # for keys that are all known.
            inner: list[Problem] = []
            _check_mapping(doc, construct, value_node, spec.children, path, inner)
            if inner:
                problems.extend(inner)
                continue
        if message:
            bad = _first_bad_item(value_node, value, spec.check)
            if isinstance(message, At):  # the check says where inside the value
                bad = _node_at(value_node, message.path)
            where = (
                _value_at(doc, key_node, value_node) if bad is value_node else doc.where(bad.start_mark.index)
            )
            problems.append(Problem(where, path, message))
            continue
        data[key] = value
        if spec.children and is_mapping(value_node):
            _check_mapping(doc, construct, value_node, spec.children, path, problems)
    return data, present


def _where_in(doc: YamlText, key_node: Node, value_node: Node, bad: Node) -> str:
    """Where to point for a problem of `bad`: the value itself, or one node inside it."""
    return _value_at(doc, key_node, value_node) if bad is value_node else doc.where(bad.start_mark.index)


def _value_at(doc: YamlText, key_node: Node, value_node: Node) -> str:
    return doc.where(value_index(doc, key_node, value_node))


def _key_problem(key_node: Node) -> str:
    if tag_of(key_node) == MERGE_TAG:
        return "merge keys (<<: *anchor) are not supported; write the keys out in each entry"
    if is_scalar(key_node):
        return f"the key {key_node.value!r} must be text; quote it: '{key_node.value}'"
    return "keys must be plain text, not a list or mapping"


def _construct_problem(doc: YamlText, exc: Exception, path: str, value_at: str) -> Problem:
    problem = str(getattr(exc, "problem", None) or first_line(exc))
    duplicate = re.search(r'duplicate key "(.*?)"', problem)
    mark = getattr(exc, "problem_mark", None)
    if duplicate and mark is not None:
        key = duplicate.group(1)
        return Problem(
            doc.where(mark.index), f"{path}.{key}", f"{key!r} appears twice in this mapping; keep one"
        )
    if not hasattr(exc, "problem"):  # not ruamel's: no tag is involved (compose bounds the rest)
        return Problem(value_at, path, f"this value cannot be read ({problem}); write it as plain YAML")
    return Problem(value_at, path, _tag_message(exc))


def _tag_refused(tag: str) -> str:
    return f"the tag {tag} is not allowed here; remove the tag"


def _tag_message(exc: Exception) -> str:
    problem = getattr(exc, "problem", None) or first_line(exc)
    return f"{problem}; remove the tag and write a plain value"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cross_checks(
    doc: YamlText, item: MappingNode, data: dict[str, Any], label: str, features: list[Feature]
) -> list[Problem]:
    """Checks that involve two fields: GPUs vs tensor parallelism, memory limit vs request,
    image vs repository, and each feature's own (autoscaling vs keda, accelerator vs
    requestGPUType, a model source's keys...)."""
    problems: list[Problem] = []
    config = data.get("vllmConfig")
    gpus = data.get("requestGPU", DEFAULTS["requestGPU"])
    tp = config.get("tensorParallelSize") if isinstance(config, dict) else None
    if isinstance(tp, int) and _is_int(tp) and _is_int(gpus) and tp >= 1 and (tp > gpus or gpus % tp):
        node = _value_node(_value_node(item, "vllmConfig"), "tensorParallelSize")
        problems.append(
            Problem(
                doc.where(node.start_mark.index),
                f"{label}.vllmConfig.tensorParallelSize",
                f"{tp} does not divide requestGPU {gpus}{'' if 'requestGPU' in data else ' (the default)'}; "
                f"set requestGPU to a multiple of {tp} or lower tensorParallelSize",
            )
        )
    for feature in features:  # the checks across keys each feature owns
        for key, message in feature.entry_problems(data):
            pair = find_key(item, key)  # a key the entry lacks ("give maxReplicas"): the entry
            at = pair[1].start_mark.index if pair else item.start_mark.index
            problems.append(Problem(doc.where(at), f"{label}.{key}", message))
    if "image" in data and "repository" in data and data["image"] != data["repository"]:
        node = _value_node(item, "repository")
        problems.append(
            Problem(
                doc.where(node.start_mark.index),
                f"{label}.repository",
                f"{data['repository']!r} contradicts image {data['image']!r}; keep image",
            )
        )
    request, limit = data.get("requestMemory", DEFAULTS["requestMemory"]), data.get("limitMemory")
    if limit is None or check_memory(limit) or check_memory(request):
        return problems
    if parse_quantity(limit) < parse_quantity(request):
        node = _value_node(item, "limitMemory")
        problems.append(
            Problem(
                doc.where(node.start_mark.index),
                f"{label}.limitMemory",
                f"{limit} is less than requestMemory {request}; raise limitMemory or lower the request",
            )
        )
    return problems
