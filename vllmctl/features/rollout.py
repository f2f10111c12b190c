"""Rollouts and disruptions: models.yaml's `strategy` and `pdb` as chart values.

The chart's Deployment strategy is release-wide (`servingEngineSpec.strategy`), so a
model that asks for `recreate` gives every engine Recreate; an explicit `rolling` beside
it is a contradiction the chart cannot express, and is refused. Per-model
PodDisruptionBudgets exist from chart 0.1.11 (`modelSpec[].pdb`); older charts' release
PDB has no selector and protects nothing, which render says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from vllmctl.chart.facts import SINCE, ChartAt
from vllmctl.core.errors import UsageError
from vllmctl.core.fields import Field, kind_of
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.features.contexts import Contribution, ModelValues, ReleaseValues

STRATEGIES = ("rolling", "recreate")
RECREATE = {"type": "Recreate"}
PDB_SINCE = SINCE["modelSpec.pdb"]
PDB_KEYS = ("enabled", "minAvailable", "maxUnavailable", "labels", "annotations")
DEFAULT_PDB = {"enabled": True, "maxUnavailable": 1}


class Strategy(NamedTuple):
    """The release's engine strategy (None: the chart's RollingUpdate) and what to tell."""

    values: dict[str, str] | None
    warnings: list[str]


def release_strategy(entries: Iterable[Mapping[str, Any]]) -> Strategy:
    """One strategy for every engine, from the entries' `strategy` keys."""
    asked: dict[str, list[str]] = {choice: [] for choice in STRATEGIES}
    silent: list[str] = []
    for entry in entries:
        choice = entry.get("strategy")
        asked.get(str(choice), silent).append(str(entry.get("name")))
    if not asked["recreate"]:
        return Strategy(None, [])
    if asked["rolling"]:
        raise UsageError(
            f"strategy: {_names(asked['recreate'])} ask{'s' if len(asked['recreate']) == 1 else ''} "
            f"for recreate and {_names(asked['rolling'])} for rolling, but the chart has one "
            "strategy for every engine (servingEngineSpec.strategy). Give the models one strategy, "
            "or remove `strategy: rolling` to let them follow."
        )
    warnings = []
    if silent:
        warnings.append(
            f"{_names(silent)} will also be updated by Recreate (old pods stop before new ones "
            f"start: a short outage per update), because {_names(asked['recreate'])} asked for "
            "it and the chart's strategy is release-wide."
        )
    return Strategy(dict(RECREATE), warnings)


def _names(names: list[str]) -> str:
    return ", ".join(names)


def pdb(entry: Mapping[str, Any], chart: tuple[int, ...] | None, chart_text: str) -> dict[str, Any] | None:
    """The entry's `pdb` modelSpec value, or None for none. An entry running more than one
    replica gets {enabled: true, maxUnavailable: 1} unless it says `pdb: false`."""
    given = entry.get("pdb")
    name = str(entry.get("name"))
    if given is False:
        return None
    if given is None:
        if _most_replicas(entry) <= 1 or (chart is not None and chart < PDB_SINCE):
            return None
        return dict(DEFAULT_PDB)
    if chart is not None and chart < PDB_SINCE:
        raise UsageError(
            f"{name}: pdb needs chart 0.1.11 or newer (the chart silently ignores it before); "
            f"VLLM_CHART_VERSION is {chart_text}. Raise the chart version or remove pdb."
        )
    if given is True:
        return dict(DEFAULT_PDB)
    values = {"enabled": True, **given}
    if "minAvailable" not in values and "maxUnavailable" not in values:
        values["maxUnavailable"] = 1
    return values


def no_pdb_warning(
    entries: Iterable[Mapping[str, Any]], chart: tuple[int, ...] | None, chart_text: str
) -> str | None:
    """What to say when models run several replicas on a chart without per-model PDBs."""
    if chart is None or chart >= PDB_SINCE:
        return None
    several = [str(e.get("name")) for e in entries if "pdb" not in e and _most_replicas(e) > 1]
    if not several:
        return None
    return (
        f"{_names(several)} run{'s' if len(several) == 1 else ''} several replicas, but chart "
        f"{chart_text} makes no per-model PodDisruptionBudget (its release-wide PDB selects no "
        "pods), so a node drain may stop every replica at once. Charts 0.1.11+ get one "
        "(maxUnavailable 1); set `pdb: false` on the model to silence this."
    )


def pdb_problem(value: Any) -> str | None:
    """Why a models.yaml `pdb` value is wrong (the schema's check), or None."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, dict):
        return (
            "must be true, false or a mapping of the chart's pdb keys "
            f"({', '.join(PDB_KEYS)}), not {type(value).__name__} {value!r}"
        )
    unknown = [key for key in value if key not in PDB_KEYS]
    if unknown:
        return f"unknown key {unknown[0]!r}; the chart reads {', '.join(PDB_KEYS)}"
    if "enabled" in value and not isinstance(value["enabled"], bool):
        return "enabled must be true or false"
    if "minAvailable" in value and "maxUnavailable" in value:
        return "give minAvailable or maxUnavailable, not both (the chart uses only maxUnavailable then)"
    for key, least in (("maxUnavailable", 1), ("minAvailable", 0)):
        if key in value and (problem := _amount_problem(key, value[key], least)):
            return problem
    for key in ("labels", "annotations"):
        if key in value and not (
            isinstance(value[key], dict) and all(isinstance(v, str) for v in value[key].values())
        ):
            return f"{key} must be a mapping of text to text"
    return None


def _amount_problem(key: str, amount: Any, least: int) -> str | None:
    if isinstance(amount, str) and amount.endswith("%") and amount[:-1].isdigit():
        if int(amount[:-1]) > 100 or (least and int(amount[:-1]) < 1):
            return f"{key} {amount!r} must be a percentage from {least or 0}% to 100%"
        return None
    if isinstance(amount, bool) or not isinstance(amount, int):
        return f"{key} must be a whole number or a percentage like '50%', not {amount!r}"
    if amount < least:
        why = (
            " (the chart drops 0 and would make a PDB that allows every eviction)"
            if key == "maxUnavailable"
            else ""
        )
        return f"{key} must be {least} or more, not {amount}{why}"
    return None


def _most_replicas(entry: Mapping[str, Any]) -> int:
    """The most replicas an entry runs: its maxReplicas when it autoscales."""
    from vllmctl.features.autoscaling import bounds

    limits = bounds(entry)
    return limits[1] if limits else _int(entry.get("replicaCount", 1))


def check_strategy(value: Any) -> str | None:
    """models.yaml's strategy: rolling or recreate (a Kubernetes spelling is corrected)."""
    if value in STRATEGIES:
        return None
    word = str(value).lower().replace("update", "")
    hint = f"; write {word!r}" if word in STRATEGIES else ""
    return f"must be {' or '.join(STRATEGIES)}, not {kind_of(value)}{hint}"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


class Rollouts(Feature):
    name = "rollouts"
    fields: ClassVar[Mapping[str, Field]] = {
        "strategy": Field(check_strategy, "how updates replace pods: rolling or recreate"),
        "pdb": Field(pdb_problem, "PodDisruptionBudget: true, false or the chart's pdb keys"),
    }

    def chart_problems(self, entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
        if entry.get("pdb") not in (None, False) and chart.before(PDB_SINCE):
            return [
                (
                    "pdb",
                    "pdb needs chart 0.1.11 or newer (the chart silently ignores it before); the chart "
                    f"version is {chart.text}. Raise the chart version or remove pdb.",
                )
            ]
        return []

    def model_values(self, model: ModelValues) -> None:
        if (values := pdb(model.entry, model.chart.version, model.chart.text)) is not None:
            model.spec["pdb"] = values

    def release_values(self, release: ReleaseValues) -> Contribution:
        from vllmctl.features.contexts import Contribution

        strategy = release_strategy(release.entries)
        warnings = list(strategy.warnings)
        if no_pdb := no_pdb_warning(release.entries, release.chart.version, release.chart.text):
            warnings.append(no_pdb)
        return Contribution(
            context={"strategy": strategy.values},
            placed={"servingEngineSpec.strategy": strategy.values},
            warnings=warnings,
        )


FEATURE = Rollouts()
