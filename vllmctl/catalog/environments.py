"""Environments: `--env NAME` (or VLLM_ENV) merges models.NAME.yaml over models.yaml and
takes NAME's settings from vllmctl.yaml; both files sit next to models.yaml.

Imported only when an environment is selected (or VLLM_REPLICA_COUNT is set), so a command
without one pays nothing for it. docs/environments.md describes the files and the rules.

The overlay is merged node by node into models.yaml's tree and the result goes through the
catalog's own validation, so a merged entry is checked exactly like one written in
models.yaml. Positions stay true: the overlay's nodes are moved past the end of
models.yaml's text, and `MergedText` maps an offset back to the file, line and column it
came from, so a problem names the file where the offending value is written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from vllmctl.catalog.schema import Problem, Validation, validate
from vllmctl.catalog.store import Catalog, gc_paused, load
from vllmctl.core.errors import CatalogError, UsageError
from vllmctl.core.fields import did_you_mean, int_check
from vllmctl.core.fileio import read_bytes, real_path
from vllmctl.core.setting_names import ENV_ENVIRONMENT, ENV_REPLICA_COUNT, Resolved, name_problem
from vllmctl.core.yamldoc import (
    MAP_TAG,
    SEQ_TAG,
    STR_TAG,
    Node,
    Position,
    YamlText,
    compose,
    construct,
    decode,
    find_key,
    is_empty_document,
    is_mapping,
    is_scalar,
    is_sequence,
    tag_of,
)

SETTINGS_FILE = "vllmctl.yaml"
# Environment names become part of a file name (models.NAME.yaml): no paths, no dots.
NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
NULL_TAG = "tag:yaml.org,2002:null"

# The keys an environment may set in vllmctl.yaml, and the setting each one sets.
ENVIRONMENT_KEYS: dict[str, str] = {
    "namespace": "namespace",
    "release": "release",
    "context": "context",
    "modelImage": "model_image",
    "modelTag": "model_tag",
    "storageClass": "storage_class",
    "chartVersion": "chart_version",
    "routerImage": "router_image",
    "routerTag": "router_tag",
    "routingLogic": "routing_logic",
    "sessionKey": "router_session_key",
    "prefixMinMatchLength": "router_prefix_min_match_length",
    "replicaCount": "replica_count",
    "networkPolicy": "network_policy",  # a mapping: NETWORK_POLICY_KEYS
    "routerAutoscaling": "router_autoscaling",  # a mapping: ROUTER_AUTOSCALING_KEYS
    # KV-cache offload (docs/kv-cache.md)
    "lmcacheImage": "lmcache_image",
    "lmcacheTag": "lmcache_tag",
    "cacheServer": "cache_server",
    "cacheServerMemory": "cache_server_memory",
    "sharedStorageSize": "shared_storage_size",
    "sharedStorageClass": "shared_storage_class",
    "sharedStorageNfs": "shared_storage_nfs",
    "sharedStorageHostPath": "shared_storage_host_path",
}
MAY_BE_EMPTY = {"storageClass"}  # "" is the cluster's default storage class
# networkPolicy's keys (docs/network-policy.md), and the setting each one sets.
NETWORK_POLICY_KEYS: dict[str, str] = {
    "allowedNamespaces": "network_policy_namespaces",
    "ingressNamespace": "network_policy_ingress_namespace",
    "prometheusNamespace": "network_policy_prometheus_namespace",
}

# routerAutoscaling's keys (the chart's routerSpec.autoscaling names; docs/routing.md), the
# setting each one sets, and its least value (Kubernetes refuses an HPA below it).
ROUTER_AUTOSCALING_KEYS: dict[str, tuple[str, int]] = {
    "minReplicas": ("router_min_replicas", 1),
    "maxReplicas": ("router_max_replicas", 1),
    "targetCPUUtilizationPercentage": ("router_target_cpu", 1),
}


def overlay_path(models_path: Path, name: str) -> Path:
    """models.yaml -> models.NAME.yaml, in the same directory."""
    return models_path.with_name(f"{models_path.stem}.{name}{models_path.suffix}")


def settings_path(models_path: Path) -> Path:
    """vllmctl.yaml next to the models file."""
    return models_path.parent / SETTINGS_FILE


def _selected_by(resolved: Resolved) -> str:
    return f"--env {resolved.raw}" if resolved.source == "flag" else f"{ENV_ENVIRONMENT}={resolved.raw}"


def check_name(resolved: Resolved) -> str:
    """The selected environment's name; one that could not be part of a file name is refused."""
    name = str(resolved.raw)
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"{_selected_by(resolved)}: {name!r} is not an environment name; use letters, digits, "
            "'-' and '_' (it names models.NAME.yaml)."
        )
    return name


# ---------------------------------------------------------------- vllmctl.yaml


class EnvironmentsFile(NamedTuple):
    """vllmctl.yaml as read: each environment's settings (setting name -> text)."""

    path: Path
    exists: bool
    environments: dict[str, dict[str, str]]
    where: str  # `file:line:column` of `environments:`, for messages ("" without one)


def read_settings_file(path: Path) -> EnvironmentsFile:
    """Read and check vllmctl.yaml; every problem is listed with file:line:column."""
    raw = read_bytes(real_path(path))
    if raw is None:
        return EnvironmentsFile(path, False, {}, "")
    doc = decode(path, raw)
    root = compose(doc)
    problems: list[Problem] = []
    environments: dict[str, dict[str, str]] = {}
    where = ""
    if is_empty_document(root):
        root = None
    if root is not None and not is_mapping(root):
        problems.append(
            Problem(
                doc.where(root.start_mark.index),
                "top level",
                "vllmctl.yaml is a mapping: 'environments:', then one mapping of settings per environment",
            )
        )
    for key_node, value in root.value if root is not None and is_mapping(root) else []:
        key = _text(key_node)
        at = doc.where(key_node.start_mark.index)
        if key != "environments":
            hint = did_you_mean(str(key), ["environments"]) or "; vllmctl.yaml holds only 'environments:'"
            problems.append(Problem(at, str(key), f"unknown key {key!r}{hint}"))
        elif where:
            problems.append(Problem(at, key, f"'environments' appears twice (first at {where}); keep one"))
        else:
            where = at
            environments = _environments(doc, value, problems)
    if problems:
        count = len(problems)
        raise CatalogError(
            f"{path} has {count} problem{'s' if count > 1 else ''}; fix them and try again.",
            details=[str(p) for p in problems],
        )
    return EnvironmentsFile(path, True, environments, where)


def _text(node: Node) -> str | None:
    """A plain text key's value; None for any other key."""
    return str(node.value) if is_scalar(node) and tag_of(node) == STR_TAG else None


def _is_null(node: Node) -> bool:
    return is_scalar(node) and tag_of(node) == NULL_TAG


def _environments(doc: YamlText, node: Node, problems: list[Problem]) -> dict[str, dict[str, str]]:
    environments: dict[str, dict[str, str]] = {}
    if _is_null(node):
        return environments
    if not is_mapping(node):
        problems.append(
            Problem(
                doc.where(node.start_mark.index),
                "environments",
                "must be a mapping of environment names to their settings (dev: {namespace: vllm-dev})",
            )
        )
        return environments
    for key_node, value in node.value:
        name = _text(key_node)
        at = doc.where(key_node.start_mark.index)
        if name is None or not NAME_RE.fullmatch(name):
            problems.append(
                Problem(
                    at,
                    f"environments.{key_node.value}",
                    f"{key_node.value!r} is not an environment name; use letters, digits, '-' and '_'",
                )
            )
        elif name in environments:
            problems.append(Problem(at, f"environments.{name}", f"{name!r} appears twice; keep one"))
        else:
            environments[name] = _environment(doc, name, value, problems)
    return environments


def _unknown_key(doc: YamlText, key_node: Node, where: str, keys: Iterable[str]) -> Problem:
    """A key of a vllmctl.yaml mapping that is not one of `keys`, at its line:column, with a
    did-you-mean or else the keys there are."""
    known = list(keys)
    hint = did_you_mean(str(key_node.value), known) or f"; the keys are {', '.join(known)}"
    return Problem(doc.where(key_node.start_mark.index), where, f"unknown key {key_node.value!r}{hint}")


def _environment(doc: YamlText, name: str, node: Node, problems: list[Problem]) -> dict[str, str]:
    """One environment's settings: setting name -> the text as written."""
    values: dict[str, str] = {}
    if _is_null(node):  # `dev:` with nothing under it: an environment with no settings
        return values
    if not is_mapping(node):
        problems.append(
            Problem(
                doc.where(node.start_mark.index),
                f"environments.{name}",
                f"must be a mapping of settings ({', '.join(ENVIRONMENT_KEYS)})",
            )
        )
        return values
    given: set[str] = set()
    for key_node, value in node.value:
        key = _text(key_node)
        path = f"environments.{name}.{key_node.value}"
        at = doc.where(key_node.start_mark.index)
        if key is None or key not in ENVIRONMENT_KEYS:
            problems.append(_unknown_key(doc, key_node, path, ENVIRONMENT_KEYS))
            continue
        if key in given:
            problems.append(Problem(at, path, f"{key!r} appears twice in this environment; keep one"))
            continue
        given.add(key)
        if key == "networkPolicy":
            values.update(_network_policy(doc, path, value, problems))
            continue
        if key == "routerAutoscaling":
            values.update(_router_autoscaling(doc, path, value, problems))
            continue
        problem = _setting_problem(key, value)
        if problem:
            problems.append(Problem(doc.where(value.start_mark.index), path, problem))
            continue
        values[ENVIRONMENT_KEYS[key]] = str(value.value)
    return values


def _network_policy(doc: YamlText, path: str, node: Node, problems: list[Problem]) -> dict[str, str]:
    """`networkPolicy: {allowedNamespaces: [...], ...}`: the policy on, with its namespaces."""
    from vllmctl.core.setting_names import namespace_problem

    example = "write e.g. networkPolicy: {allowedNamespaces: [apps]} ([]: only the release's namespace)"
    if not is_mapping(node) or tag_of(node) != MAP_TAG:
        problems.append(Problem(doc.where(node.start_mark.index), path, f"must be a mapping; {example}"))
        return {}
    values = {"network_policy": "true"}
    for key_node, value in node.value:
        key = _text(key_node)
        at = doc.where(value.start_mark.index)
        where = f"{path}.{key_node.value}"
        if key is None or key not in NETWORK_POLICY_KEYS:
            problems.append(_unknown_key(doc, key_node, where, NETWORK_POLICY_KEYS))
            continue
        setting = NETWORK_POLICY_KEYS[key]
        if setting in values:
            problems.append(Problem(at, where, f"{key!r} appears twice; keep one"))
            continue
        if key == "allowedNamespaces":
            if not is_sequence(value) or tag_of(value) != SEQ_TAG:
                problems.append(Problem(at, where, "must be a list of namespace names ([] for none)"))
                values[setting] = ""
                continue
            items = value.value
        else:
            items = [value]
        names = []
        for item in items:
            name = _text(item) if is_scalar(item) else None
            problem = "must be a namespace name" if name is None else namespace_problem(name)
            if problem:
                problems.append(Problem(doc.where(item.start_mark.index), where, problem))
            names.append(name or "")
        values[setting] = ",".join(names)
    if "network_policy_namespaces" not in values:
        problems.append(
            Problem(
                doc.where(node.start_mark.index),
                path,
                "allowedNamespaces is missing: list the namespaces whose pods may call the router, "
                "or [] to admit only the release's own namespace",
            )
        )
    return values


def _router_autoscaling(doc: YamlText, path: str, node: Node, problems: list[Problem]) -> dict[str, str]:
    """`routerAutoscaling: {minReplicas, maxReplicas, targetCPUUtilizationPercentage}`: the
    router's HPA on, with the bounds and target given (the others keep their defaults)."""
    example = "write e.g. routerAutoscaling: {minReplicas: 2, maxReplicas: 6} ({} for the defaults)"
    if not is_mapping(node) or tag_of(node) != MAP_TAG:
        problems.append(Problem(doc.where(node.start_mark.index), path, f"must be a mapping; {example}"))
        return {}
    values = {"router_autoscaling": "true"}
    numbers: dict[str, tuple[int, str]] = {}  # key -> (value, where), for min <= max
    for key_node, value in node.value:
        key = _text(key_node)
        where = f"{path}.{key_node.value}"
        if key is None or key not in ROUTER_AUTOSCALING_KEYS:
            problems.append(_unknown_key(doc, key_node, where, ROUTER_AUTOSCALING_KEYS))
            continue
        setting, least = ROUTER_AUTOSCALING_KEYS[key]
        at = doc.where(value.start_mark.index)
        if setting in values:
            problems.append(Problem(at, where, f"{key!r} appears twice; keep one"))
            continue
        number = construct(value) if is_scalar(value) else None
        problem = int_check(least)(number) if is_scalar(value) and not _is_null(value) else "must be a number"
        if problem:
            problems.append(Problem(at, where, problem))
            continue
        values[setting] = str(number)
        numbers[key] = (int(str(number)), at)
    low, high = numbers.get("minReplicas"), numbers.get("maxReplicas")
    if low and high and low[0] > high[0]:
        problems.append(
            Problem(
                high[1],
                f"{path}.maxReplicas",
                f"maxReplicas {high[0]} is below minReplicas {low[0]}; raise maxReplicas or lower "
                "minReplicas",
            )
        )
    return values


def _setting_problem(key: str, node: Node) -> str | None:
    if not is_scalar(node) or _is_null(node):
        kind = "a mapping" if is_mapping(node) else "a list" if is_sequence(node) else "an empty value"
        return f"must be a single value, not {kind}; write e.g. {key}: ..."
    if key == "replicaCount":
        return int_check(0)(construct(node))
    if not node.value and key not in MAY_BE_EMPTY:
        return "must not be empty; remove the key to keep the default"
    if problem := name_problem(ENVIRONMENT_KEYS[key], str(node.value)):
        return problem
    # Other values are kept as written (`chartVersion: 0.2` stays "0.2", not a float).
    return None


def apply_environment_settings(resolved: dict[str, Resolved]) -> None:
    """Fill in the selected environment's settings from vllmctl.yaml wherever neither a flag
    nor an env variable gave one; an environment neither file knows is an error."""
    name = check_name(resolved["env"])
    models_path = Path(resolved["models_file"].raw or "models.yaml").expanduser()
    found = read_settings_file(settings_path(models_path))
    values = found.environments.get(name)
    if values is None and not real_path(overlay_path(models_path, name)).is_file():
        raise UsageError(_unknown(resolved["env"], models_path, found))
    source = f"{found.path} (env {name})"
    for setting, text in (values or {}).items():
        if resolved[setting].source == "default":
            resolved[setting] = Resolved(text, source)


def _unknown(selected: Resolved, models_path: Path, found: EnvironmentsFile) -> str:
    name = str(selected.raw)
    if not found.exists:
        settings = f"there is no {found.path}"
    elif not found.environments:
        settings = f"{found.path} defines no environments"
    else:
        settings = f"{found.where} defines only {', '.join(found.environments)} under environments"
    known = sorted({*found.environments, *_overlay_names(models_path)})
    return (
        f"{_selected_by(selected)}: no environment {name!r}: there is no "
        f"{overlay_path(models_path, name)}, and {settings}{did_you_mean(name, known) or '.'} "
        f"An environment is a models.NAME.yaml next to {models_path.name}, an entry under "
        f"'environments:' in {SETTINGS_FILE}, or both (docs/environments.md)."
    )


def _overlay_names(models_path: Path) -> list[str]:
    """The environments that have a models.NAME.yaml next to the models file."""
    prefix, suffix = f"{models_path.stem}.", models_path.suffix
    names = []
    for path in models_path.parent.glob(f"{prefix}*{suffix}"):
        middle = path.name[len(prefix) : len(path.name) - len(suffix)]
        if NAME_RE.fullmatch(middle):
            names.append(middle)
    return names


# ---------------------------------------------------------------- models.NAME.yaml


class MergedText(YamlText):
    """models.yaml's text, with the overlay's offsets (moved past its end) mapped back to the
    overlay file: `where` names the file each node was written in."""

    def __init__(self, base: YamlText, overlay: YamlText) -> None:
        super().__init__(base.path, base.text, base.bom, base.newline)
        self.base = base
        self.overlay = overlay
        self.offset = len(base.text) + 1

    def position(self, index: int) -> Position:
        if index >= self.offset:
            return self.overlay.position(index - self.offset)
        return self.base.position(index)

    def where(self, index: int) -> str:
        if index >= self.offset:
            return self.overlay.where(index - self.offset)
        return self.base.where(index)

    @cached_property
    def aliases(self) -> list[int]:
        return self.base.aliases + [self.offset + at for at in self.overlay.aliases]


def load_catalog(settings: Any) -> Catalog:
    """models.yaml merged with the selected environment's models.NAME.yaml (if it has one),
    then replica counts from VLLM_REPLICA_COUNT or the environment's replicaCount."""
    base = load(settings.models_path)
    env = settings.resolved["env"]
    name = check_name(env) if env.raw else None
    catalog = base
    own_replicas: set[str] = set()
    if name is not None:
        path = overlay_path(settings.models_path, name)
        raw = read_bytes(real_path(path))
        base.label = f"{base.path} (env {name})"
        if raw is not None and base.exists:
            catalog, own_replicas = merge(base, path, raw, name)
    count = settings.replica_count
    if count is not None:
        if count < 0:
            raise UsageError(f"{ENV_REPLICA_COUNT}={count}: a replica count is 0 or more.")
        for model in catalog.models:
            if model.name not in own_replicas:
                model.data["replicaCount"] = count
    return catalog


def merge(base: Catalog, path: Path, raw: bytes, name: str) -> tuple[Catalog, set[str]]:
    """The catalog of models.yaml with the overlay's entries merged in, validated as a whole;
    and the models whose overlay entry sets its own replicaCount."""
    overlay = decode(path, raw)
    with gc_paused():
        overlay_root = compose(overlay)
        if is_empty_document(overlay_root):
            overlay_root = None
        base_root = None if is_empty_document(base.root) else base.root
        if base_root is not None and not is_sequence(base_root):
            return base, set()  # models.yaml is not a list: its own problem says so
        base_items = list(base_root.value) if base_root is not None else []
        by_name: dict[str, int] = {}
        for index, item in enumerate(base_items):
            pair = find_key(item, "name") if is_mapping(item) else None
            if pair is not None and is_scalar(pair[1]):
                by_name.setdefault(str(pair[1].value), index)
        problems: list[Problem] = []
        entries = _overlay_entries(overlay, overlay_root, base.path, by_name, problems)
        doc = MergedText(base.doc, overlay)
        if overlay_root is not None:
            _move(overlay_root, doc.offset)
        items = list(base_items)
        for model, item in entries:
            if model in by_name:
                items[by_name[model]] = _merged(items[by_name[model]], item, top=True)
            else:  # a model only this environment has: a complete entry, checked as one
                items.append(item)
        root = _sequence(base_root, items, base.path)
        found = validate(doc, root)
    catalog = Catalog(base.path, base.raw, doc, root, Validation(found.models, problems + found.problems))
    catalog.label = f"{base.path} with {path} (env {name})"
    own_replicas = {model for model, item in entries if _gives(item, "replicaCount")}
    return catalog, own_replicas


def _gives(entry: Node, key: str) -> bool:
    """Whether an overlay entry sets `key` (`key: null` removes it instead)."""
    pair = find_key(entry, key)
    return pair is not None and not _is_null(pair[1])


def _overlay_entries(
    doc: YamlText, root: Node | None, base_path: Path, by_name: dict[str, int], problems: list[Problem]
) -> list[tuple[str, Node]]:
    """The overlay's entries by model name; what cannot be merged is a problem."""
    if root is None:  # an empty file, or only comments: nothing changes
        return []
    if not is_sequence(root) or tag_of(root) != SEQ_TAG:
        found = "a mapping" if is_mapping(root) else "a single value" if is_scalar(root) else "a tagged list"
        problems.append(
            Problem(
                doc.where(root.start_mark.index),
                "top level",
                f"an environment's file is a list of entries like models.yaml ('- name: llama3' and "
                f"the fields that differ), found {found}",
            )
        )
        return []
    entries: list[tuple[str, Node]] = []
    lines: dict[str, int] = {}
    for index, item in enumerate(root.value):
        label = f"entries[{index}]"
        if not is_mapping(item) or tag_of(item) != MAP_TAG:
            problems.append(
                Problem(
                    doc.where(item.start_mark.index),
                    label,
                    "each entry is a mapping that names the model it changes ('- name: llama3')",
                )
            )
            continue
        pair = find_key(item, "name")
        if pair is not None and _text(pair[1]) is None:
            problems.append(
                Problem(
                    doc.where(pair[1].start_mark.index),
                    f"{label}.name",
                    f"must be the text name of a model of {base_path}, not "
                    f"{_node_kind(pair[1])}{_quote_hint(pair[1])}",
                )
            )
            continue
        if pair is None:
            problems.append(
                Problem(
                    doc.where(item.start_mark.index),
                    label,
                    f"name is missing: each entry names the model of {base_path} it changes ('name: ...')",
                )
            )
            continue
        model = str(pair[1].value)
        label = f"{label} ({model})"
        at = pair[1].start_mark.index
        if model in lines:
            problems.append(
                Problem(
                    doc.where(at),
                    f"{label}.name",
                    f"{model!r} already has an entry at line {lines[model]}; put its fields in one entry",
                )
            )
            continue
        lines[model] = doc.position(at).line
        if model not in by_name and find_key(item, "modelURL") is None:
            problems.append(
                Problem(
                    doc.where(at),
                    f"{label}.name",
                    f"there is no model {model!r} in {base_path}{did_you_mean(model, list(by_name)) or '.'} "
                    f"Fix the name to change a model of {base_path}; a model only this environment "
                    "has must be a complete entry (add its modelURL).",
                )
            )
            continue
        entries.append((model, item))
    return entries


def _node_kind(node: Node) -> str:
    if is_mapping(node):
        return "a mapping"
    if is_sequence(node):
        return "a list"
    return "an empty value" if _is_null(node) else f"the value {node.value}"


def _quote_hint(node: Node) -> str:
    return f"; quote it: name: '{node.value}'" if is_scalar(node) and not _is_null(node) else ""


def _move(root: Node, offset: int) -> None:
    """Move every node's marks `offset` characters on (each node once: aliases share nodes)."""
    from ruamel.yaml.error import StreamMark

    def moved(mark: Any) -> Any:
        return StreamMark(mark.name, mark.index + offset, mark.line, mark.column)

    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        node.start_mark, node.end_mark = moved(node.start_mark), moved(node.end_mark)
        if is_mapping(node):
            stack.extend(part for pair in node.value for part in pair)
        elif is_sequence(node):
            stack.extend(node.value)


def _merged(base: Node, overlay: Node, *, top: bool = False) -> Node:
    """A copy of the mapping `base` with the overlay's keys applied: a mapping under both
    merges key by key, anything else (lists included) is replaced, and null removes the key.
    Nodes keep their own positions; neither tree is changed."""
    pairs: list[tuple[Node, Node] | None] = list(base.value)
    index: dict[str, int] = {}
    for at, (key, _) in enumerate(base.value):
        text = _text(key)
        if text is not None:
            index.setdefault(text, at)
    given: set[str] = set()
    for key, value in overlay.value:
        text = _text(key)
        if text is None or text in given:  # validation names these (a key that is not text, twice)
            pairs.append((key, value))
            continue
        given.add(text)
        if top and text == "name":
            continue  # the same name: keep models.yaml's
        place = index.get(text)
        if place is None:
            if not _is_null(value):
                pairs.append((key, value))
            continue
        base_key, base_value = base.value[place]
        if _is_null(value):
            pairs[place] = None
        elif _mergeable(base_value) and _mergeable(value):
            pairs[place] = (base_key, _merged(base_value, value))
        else:
            pairs[place] = (key, value)
    merged = copy.copy(base)
    merged.value = [pair for pair in pairs if pair is not None]
    return merged


def _mergeable(node: Node) -> bool:
    return is_mapping(node) and tag_of(node) == MAP_TAG


def _sequence(base_root: Node | None, items: list[Node], path: Path) -> Node:
    """models.yaml's list node holding `items` (a new one when the file has no list yet)."""
    if base_root is not None:
        root = copy.copy(base_root)
        root.value = items
        return root
    from ruamel.yaml.error import StreamMark
    from ruamel.yaml.nodes import SequenceNode

    start = StreamMark(str(path), 0, 0, 0)
    return SequenceNode(SEQ_TAG, items, start, start)
