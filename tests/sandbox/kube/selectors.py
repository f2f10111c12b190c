"""Label and field selectors, in the string syntax the API server accepts in query params.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-joined.
Field selectors: `path=value`, `path==value`, `path!=value` on a few dotted paths, as the
real server allows per kind (metadata.name/namespace everywhere, and those listed below).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, str]], bool]


class SelectorError(ValueError):
    pass


_SET_RE = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|=|!=)\s*([\w.-]*))?\s*$")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_labels(text: str | None) -> Predicate:
    if not text:
        return lambda labels: True
    preds: list[Predicate] = []
    for part in _split_top(text):
        m = _SET_RE.match(part)
        if not m:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
        neg, key, set_op, values, op, value = m.groups()
        if neg:
            if set_op or op:
                raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
            preds.append(lambda lb, k=key: k not in lb)
        elif set_op:
            vals = {v.strip() for v in values.split(",") if v.strip()}
            if set_op == "in":
                preds.append(lambda lb, k=key, vs=vals: lb.get(k) in vs)
            else:
                preds.append(lambda lb, k=key, vs=vals: lb.get(k) not in vs)
        elif op in ("=", "=="):
            preds.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif op == "!=":
            preds.append(lambda lb, k=key, v=value: lb.get(k) != v)
        else:
            preds.append(lambda lb, k=key: k in lb)
    return lambda labels: all(p(labels) for p in preds)


def match_labels_selector(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions) against labels.

    An empty or missing selector matches everything, as for Deployments' pods."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _get(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return str(cur).lower()
    return str(cur)


# Besides metadata.name and metadata.namespace, the fields the real server indexes per kind.
FIELD_PATHS: dict[str, set[str]] = {
    "Pod": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "Event": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "Secret": {"type"},
    "Namespace": {"status.phase"},
    "Node": {"spec.unschedulable"},
    "ReplicaSet": {"status.replicas"},
}


def parse_fields(text: str | None, kind: str) -> Callable[[dict[str, Any]], bool]:
    if not text:
        return lambda obj: True
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_PATHS.get(kind, set())
    preds: list[Callable[[dict[str, Any]], bool]] = []
    for part in text.split(","):
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid selector: {part!r}; can't understand {part!r}")
        path, op, value = m.groups()
        if path not in allowed:
            raise SelectorError(f"field label not supported: {path}")
        if op == "!=":
            preds.append(lambda o, p=path, v=value: _get(o, p) != v)
        else:
            preds.append(lambda o, p=path, v=value: _get(o, p) == v)
    return lambda obj: all(p(obj) for p in preds)
