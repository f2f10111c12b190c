"""The four patch types, applied the way the API server applies them (approximately).

- JSON patch (RFC 6902): the `jsonpatch` library, exact.
- Merge patch (RFC 7386): exact.
- Strategic merge patch: merge patch, except that lists of objects whose items carry a
  merge key (`name` for containers, env, ports, volumes...; `type` for conditions) are
  merged item by item, and `$patch: delete` / `$retainKeys` / `$setElementOrder` directives
  are honoured or dropped. Real servers take the merge key from the Go types per field;
  here the item key alone decides, which agrees for every list vllmctl and the chart use.
- Server-side apply: see `apply()`.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

MERGE_KEYS = ("name", "type", "containerPort", "port", "mountPath", "devicePath", "ip", "topologyKey")


class PatchError(ValueError):
    pass


def json_patch(obj: dict[str, Any], ops: Any) -> dict[str, Any]:
    try:
        return jsonpatch.apply_patch(obj, ops, in_place=False)  # type: ignore[no-any-return]
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as e:
        raise PatchError(str(e)) from e


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in MERGE_KEYS:
        if all(key in i for i in items if "$patch" not in i):
            return key
    return None


def strategic_merge(target: Any, patch: Any) -> Any:
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        result = dict(target) if isinstance(target, dict) else {}
        retain = patch.get("$retainKeys")
        for key, value in patch.items():
            if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
                continue
            if key.startswith("$deleteFromPrimitiveList/"):
                name = key.split("/", 1)[1]
                result[name] = [v for v in result.get(name) or [] if v not in value]
                continue
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value)
        if isinstance(retain, list):
            result = {k: v for k, v in result.items() if k in retain}
        return result
    if isinstance(patch, list) and isinstance(target, list):
        key = _merge_key(patch + target)
        if key is None:
            return copy.deepcopy(patch)
        merged = [copy.deepcopy(i) for i in target]
        for item in patch:
            idx = next((n for n, t in enumerate(merged) if t.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    merged.pop(idx)
            elif idx is None:
                merged.append(strategic_merge({}, item))
            else:
                merged[idx] = strategic_merge(merged[idx], item)
        return merged
    return copy.deepcopy(patch)


def _prune(obj: Any, old: Any, new: Any) -> Any:
    """Remove from obj the fields present in `old` (a manager's last applied config) but
    absent from `new` (its config now): what server-side apply does for owned fields."""
    if not isinstance(obj, dict) or not isinstance(old, dict):
        return obj
    new = new if isinstance(new, dict) else {}
    out = dict(obj)
    for key, old_value in old.items():
        if key not in new:
            out.pop(key, None)
        elif key in out:
            if isinstance(old_value, list) and isinstance(out[key], list):
                mk = _merge_key(old_value)
                if mk:
                    keep = {i.get(mk) for i in new[key] if isinstance(i, dict)}
                    out[key] = [
                        i
                        for i in out[key]
                        if not isinstance(i, dict)
                        or i.get(mk) in keep
                        or i.get(mk) not in {o.get(mk) for o in old_value}
                    ]
            else:
                out[key] = _prune(out[key], old_value, new[key])
    return out


def apply(live: dict[str, Any] | None, config: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    """Server-side apply by one field manager, approximated.

    Real SSA tracks field ownership per manager (managedFields) and reports conflicts.
    Here each manager's last applied configuration is remembered; fields it applied
    before and no longer does are removed, then the new configuration is merged in
    strategically. Conflicts between managers are not detected (documented)."""
    base = _prune(copy.deepcopy(live) if live else {}, last, config)
    return strategic_merge(base, config)  # type: ignore[no-any-return]
