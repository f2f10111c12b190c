"""Comparing the release with models.yaml: the models it names (with the ids each would be
served under), what is configured, deployed and served where the three disagree, and the
plan check (`deploy.prepare`, the comparison `vllmctl plan` makes, so status and plan
cannot disagree), with the problems status reports about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllmctl.core.errors import VllmctlError
from vllmctl.core.fields import REPO_ID_RE
from vllmctl.ops.status.objects import served_model_names
from vllmctl.ops.status.report import Comparison, ModelStatus, RouterStatus

if TYPE_CHECKING:
    from vllmctl.cluster.helm import Helm

DIFFERS = "the release differs from models.yaml: run vllmctl plan"


def configured_models(settings: Any) -> tuple[dict[str, set[str]] | None, list[str]]:
    """models.yaml's names, each with the ids it would be served under; None without a
    file. A file with problems still names its models: status is for diagnosis."""
    from vllmctl.catalog.selected import load_selected

    path = settings.models_path
    try:
        catalog = load_selected(settings)  # with --env, the environment's merge
    except VllmctlError as e:
        return None, [f"models.yaml could not be read: {e.message}"]
    if not catalog.exists:
        return None, [f"there is no {path}: nothing to compare the release with."]
    notes = []
    if catalog.problems:
        count = len(catalog.problems)
        notes.append(f"{path} has {count} problem{'s' if count > 1 else ''} (`vllmctl validate` lists them).")
    from vllmctl.features import registry
    from vllmctl.features.base import overriding

    serving = overriding(registry.FEATURES, "served_ids")
    ids: dict[str, set[str]] = {name: {name} for name in catalog.names()}
    for model in catalog.models:
        ids[model.name] = set(engine_names(model.name, model.data))
        for feature in serving:  # what else the model is served under (its LoRA adapters)
            ids[model.name].update(served for served, _, _ in feature.served_ids(model.data))
    return ids, notes


def engine_names(name: str, data: dict[str, Any]) -> list[str]:
    """The ids render makes the engine serve (render.values._vllm_config): the entry's own
    --served-model-name in extraArgs, else its name and its repo id. What a model run
    without a Deployment (a RayCluster, whose args are in a ConfigMap) is judged by."""
    extra = (data.get("vllmConfig") or {}).get("extraArgs")
    given = served_model_names([str(a) for a in extra]) if isinstance(extra, list) else []
    if given:
        return given
    url = data.get("modelURL")
    return [name, url] if isinstance(url, str) and REPO_ID_RE.fullmatch(url) and url != name else [name]


def compare(
    models: list[ModelStatus],
    router: RouterStatus,
    configured: dict[str, set[str]] | None,
    plan: PlanCheck | None,
) -> Comparison:
    """Where models.yaml, the deployed engines and the router's list disagree. Marks each
    deployed model `serving` when the router could be asked."""
    comparison = Comparison()
    if plan is not None and configured is not None:
        comparison.plan = plan.lines
    if configured is not None:
        comparison.configured_not_deployed = [m.name for m in models if m.configured and not m.deployed]
        comparison.deployed_not_configured = [m.name for m in models if m.deployed and not m.configured]
    if router.reachable:
        served = set(router.served)
        for m in models:
            if m.deployed:
                m.serving = bool(served & set(m.served_names))
        comparison.deployed_not_serving = [
            m.name for m in models if m.deployed and m.replicas.desired and not m.serving
        ]
        if configured is not None:
            known = set().union(*configured.values()) if configured else set()
            for m in models:
                if m.configured:
                    known.update(m.served_names)
            comparison.serving_not_configured = sorted(served - known)
    return comparison


def comparison_problems(c: Comparison, *, installed: bool | None) -> list[str]:
    """One line per disagreement, each saying which command settles it."""
    problems = []
    deploy = "install" if installed is False else "upgrade"
    for title, names in (
        (f"in models.yaml but not deployed (vllmctl {deploy} deploys them)", c.configured_not_deployed),
        ("deployed but not in models.yaml (vllmctl upgrade removes them)", c.deployed_not_configured),
        ("deployed but not served by the router", c.deployed_not_serving),
        ("served by the router but in no model of models.yaml", c.serving_not_configured),
    ):
        if names:
            problems.append(f"{title}: {', '.join(names)}")
    if c.plan:
        problems.append(DIFFERS)
    return problems


@dataclass
class PlanCheck:
    lines: list[str] | None  # the plan's changes ([]: none); None: not compared
    note: str | None = None  # why not


def plan_check(settings: Any, helm: Helm) -> PlanCheck:
    """The comparison `vllmctl plan` makes (deploy.prepare: the values models.yaml renders
    against the deployed ones), so status and plan cannot disagree."""
    from vllmctl.ops.deploy import kubectl_for, prepare

    if not settings.models_path.exists() and not settings.env:
        return PlanCheck(None)  # the report already says there is nothing to compare with
    try:
        plan = prepare(settings, helm=helm, kubectl=kubectl_for(settings)).plan
    except VllmctlError as e:
        return PlanCheck(None, f"the release's values were not compared with models.yaml: {e.message}")
    if not (plan.has_changes or plan.blockers):
        return PlanCheck([])
    return PlanCheck([line.strip() for line in plan.lines()[1:]])
