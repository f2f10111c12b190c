"""What an upgrade would change, model by model: the deployed release's values against new ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vllmctl.chart.facts import SINCE, version_tuple

# Chart 0.1.10 added app.kubernetes.io labels to the Deployment selectors, which
# Kubernetes does not let an update change (docs/chart-facts.md, section 4).
SELECTOR_CHANGE = SINCE["selector labels"]


@dataclass
class ModelChange:
    name: str
    action: str  # "add", "remove" or "change"
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)  # (path, old, new)
    model_url: str = ""


@dataclass
class Plan:
    """The differences between what is deployed and what would be."""

    release: str
    namespace: str
    exists: bool
    models: list[ModelChange]
    other: list[tuple[str, Any, Any]]  # release-wide values (router, engine labels, ...)
    blockers: list[str]
    environment: str | None = None  # --env / VLLM_ENV, named in the header
    chart: tuple[str, str] | None = None  # (deployed, target) chart versions when they differ

    @property
    def has_changes(self) -> bool:
        return bool(self.models or self.other or self.chart or not self.exists)

    def as_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "namespace": self.namespace,
            "environment": self.environment,
            "releaseExists": self.exists,
            "changes": self.has_changes,
            "models": [
                {
                    "name": m.name,
                    "action": m.action,
                    "fields": [{"path": p, "old": o, "new": n} for p, o, n in m.fields],
                }
                for m in self.models
            ],
            "release_values": [{"path": p, "old": o, "new": n} for p, o, n in self.other],
            "chart": {"old": self.chart[0], "new": self.chart[1]} if self.chart else None,
            "blockers": self.blockers,
        }

    def lines(self) -> list[str]:
        head = f"release {self.release} in namespace {self.namespace}"
        if self.environment:
            head = f"environment {self.environment}: {head}"
        if not self.exists:
            head += " (not installed yet: everything is added)"
        out = [f"Plan for {head}:"]
        if self.chart:
            out.append(f"  ~ chart vllm-stack {self.chart[0]} -> {self.chart[1]}")
        for change in self.models:
            if change.action == "add":
                out.append(f"  + {change.name} ({change.model_url})")
            elif change.action == "remove":
                out.append(f"  - {change.name}")
            else:
                details = "; ".join(f"{p} {_show(o)} -> {_show(n)}" for p, o, n in change.fields)
                out.append(f"  ~ {change.name}: {details}")
        for path, old, new in self.other:
            if path == "extraObjects":  # whole objects (the NetworkPolicies): named, not dumped
                out.append(f"  ~ {path}: {_objects_change(old, new)} (-o json shows them)")
                continue
            out.append(f"  ~ {path}: {_show(old)} -> {_show(new)}")
        if not self.has_changes:
            out.append("  no changes")
        out += [f"  ! {blocker}" for blocker in self.blockers]
        return out


def _objects_change(old: Any, new: Any) -> str:
    """`+ Kind name` for each object added, `- ` removed, `~ ` changed."""

    def named(objects: Any) -> dict[str, Any]:
        items = objects if isinstance(objects, list) else []
        return {
            f"{o.get('kind')} {(o.get('metadata') or {}).get('name')}" if isinstance(o, dict) else str(o): o
            for o in items
        }

    before, after = named(old), named(new)
    marks = [f"+ {k}" for k in after if k not in before] + [f"- {k}" for k in before if k not in after]
    marks += [f"~ {k}" for k in after if k in before and before[k] != after[k]]
    return ", ".join(marks) or "reordered"


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are compared whole."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _field_changes(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    before, after = flatten(old), flatten(new)
    return [
        (k, before.get(k), after.get(k))
        for k in dict.fromkeys([*before, *after])
        if before.get(k) != after.get(k)
    ]


def make_plan(
    release: str,
    namespace: str,
    deployed: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    deployed_chart: str | None = None,
    target_chart: str = "",
    environment: str | None = None,
) -> Plan:
    """Compare deployed values (None: no release) with new values."""
    old = deployed or {}
    old_models = {m.get("name"): m for m in (old.get("servingEngineSpec") or {}).get("modelSpec") or []}
    new_models = {m.get("name"): m for m in (new.get("servingEngineSpec") or {}).get("modelSpec") or []}
    models: list[ModelChange] = []
    for name, spec in new_models.items():
        if name not in old_models:
            models.append(ModelChange(str(name), "add", model_url=str(spec.get("modelURL", ""))))
        else:
            changed = _field_changes(old_models[name], spec)
            if changed:
                models.append(ModelChange(str(name), "change", changed))
    models += [ModelChange(str(n), "remove") for n in old_models if n not in new_models]

    def without_models(values: dict[str, Any]) -> dict[str, Any]:
        engine = {k: v for k, v in (values.get("servingEngineSpec") or {}).items() if k != "modelSpec"}
        return {**values, "servingEngineSpec": engine}

    other = _field_changes(without_models(old), without_models(new)) if deployed is not None else []
    blockers = []
    before, after = version_tuple(deployed_chart or ""), version_tuple(target_chart)
    if deployed is not None and before and after and before < SELECTOR_CHANGE <= after:
        blockers.append(
            f"chart {deployed_chart} -> {target_chart} changes the engine and router Deployments' "
            "selectors (0.1.10 added app.kubernetes.io labels to them), which Kubernetes refuses "
            "('field is immutable'). Upgrade with --replace-deployments: vllmctl deletes those "
            "Deployments first (the engines restart: a short outage; PVCs and Services stay)."
        )
    moved = deployed is not None and deployed_chart and target_chart and deployed_chart != target_chart
    chart = (str(deployed_chart), target_chart) if moved else None
    return Plan(release, namespace, deployed is not None, models, other, blockers, environment, chart)
