"""From models.yaml to a helm release: prepare the values and plan, then install, upgrade,
uninstall. Commands in cli/deploy.py call these; nothing here talks to the user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vllmctl.catalog.schema import Model
from vllmctl.chart.facts import SINCE, release_selector, router_deployment_name, version_tuple
from vllmctl.cluster import tools
from vllmctl.cluster.helm import ChartRef, DeployedRelease, Helm, private_values_file
from vllmctl.cluster.kubectl import Kubectl
from vllmctl.core.errors import CatalogError, UsageError
from vllmctl.render.plan import Plan, make_plan
from vllmctl.render.values import (
    API_KEY_SECRET,
    HF_TOKEN_SECRET,
    DeployedLabels,
    Rendered,
    default_render_input,
    render,
)


def load_models(settings: Any) -> list[Model]:
    """The valid models of models.yaml (merged with the selected environment's file); a
    missing or invalid file stops here."""
    from vllmctl.catalog.selected import load_selected

    catalog = load_selected(settings)
    if not catalog.exists:
        raise CatalogError(f"{settings.models_path} does not exist; add a model first (vllmctl add-model).")
    catalog.require_valid()
    return catalog.models


def chart_ref(settings: Any) -> ChartRef:
    """The chart helm gets: `--version` only for a repository or oci:// chart."""
    target = settings.chart_target
    return ChartRef(settings.chart, None if target.local else target.version, settings.chart_repo)


def helm_for(settings: Any) -> Helm:
    return Helm.find(settings.helm, settings.namespace, settings.release, settings.context)


def kubectl_for(settings: Any) -> Kubectl:
    return Kubectl.find(settings.kubectl, settings.context)


@dataclass
class Prepared:
    """What would be deployed, and how it differs from what is."""

    models: list[Model]
    rendered: Rendered
    deployed: DeployedRelease | None
    plan: Plan
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def decide_gated(settings: Any, models: list[Model]) -> Any:
    """Which models need the HuggingFace token (gated.decide: models.yaml, else the Hub)."""
    from vllmctl.apis.hub import DEFAULT_ENDPOINT
    from vllmctl.ops.gated import decide

    return decide(models, endpoint=settings.hf_endpoint or DEFAULT_ENDPOINT)


def prepare(
    settings: Any,
    *,
    helm: Helm | None,
    kubectl: Kubectl | None,
    gated: Callable[[list[Model]], list[str]] | None = None,
    previous: DeployedRelease | None = None,
    known_secrets: frozenset[str] = frozenset(),
) -> Prepared:
    """Render the values; with a cluster (helm given), against the deployed release.
    `gated(models)`: the models that need the hf-token Secret (decide_gated), asked once
    the cluster has answered, so an unreachable cluster fails before the Hub is asked.
    `previous`, without helm: what stands for the deployed release offline (`export`
    reads its own earlier files: what the GitOps reconciler deploys), with the same rules;
    `known_secrets`: the Secrets (hf-token, vllm-api-key) known to exist without a cluster
    (those the earlier export references)."""
    models = load_models(settings)
    deployed = helm.deployed() if helm else previous
    if helm or previous is not None:
        # An existing release keeps its chart version unless told otherwise (vllmctl.chart.version).
        settings.settle_chart(deployed.chart_version if deployed else None)
    notes: list[str] = []
    warnings: list[str] = []
    hf_token, api_key = _secret_references(settings, kubectl, notes, known_secrets)
    needing = gated(models) if gated is not None else []
    if needing and kubectl is not None and hf_token is None:
        hf_token = _gated_without_secret(settings, needing, notes, warnings)
    given = default_render_input(
        settings,
        hf_token=hf_token,
        api_key=api_key,
        deployed_labels=DeployedLabels.from_values(deployed.values) if deployed else None,
    )
    if deployed and given.deployed_labels == DeployedLabels(None, None):
        # Deployed with the chart's default labels (e.g. by the old scripts): keep them,
        # or the Deployments' selectors would change.
        notes.append(
            "the release uses the chart's default labels, shared by every release in the "
            "namespace; they are kept (Deployment selectors cannot change)."
        )
    rendered = render(models, given)
    plan = make_plan(
        settings.release,
        settings.namespace,
        deployed.values if deployed else None,
        rendered.values,
        deployed_chart=deployed.chart_version if deployed else None,
        target_chart=settings.chart_version,
        environment=settings.env or None,
    )
    return Prepared(models, rendered, deployed, plan, notes, warnings)


def _gated_without_secret(settings: Any, gated: list[str], notes: list[str], warnings: list[str]) -> Any:
    """The namespace has no hf-token Secret but gated models need one: install stores
    VLLM_HF_TOKEN (so the plan references the Secret it will create), syncs a token kept in
    Vault, or refuses."""
    from vllmctl.core.setting_names import ENV_HF_TOKEN

    names = ", ".join(gated)
    # The generic note about a missing hf-token Secret is replaced by what install will do.
    notes[:] = [n for n in notes if not n.startswith("no Secret hf-token")]
    if settings.hf_token:
        need = "needs" if len(gated) == 1 else "need"
        notes.append(
            f"{names} {need} the HuggingFace token: install stores {ENV_HF_TOKEN} as Secret hf-token."
        )
        return HF_TOKEN_SECRET
    warnings.append(
        f"{names} {'is' if len(gated) == 1 else 'are'} gated and namespace {settings.namespace} has no "
        f"Secret hf-token: install syncs a token kept in Vault, else refuses; store one with "
        f"`vllmctl set-hf-token` (or set {ENV_HF_TOKEN})."
    )
    return None


def _secret_references(
    settings: Any, kubectl: Kubectl | None, notes: list[str], known: frozenset[str] = frozenset()
) -> tuple[Any, Any]:
    """Secret references for the HF token and API key: when the setting says the Secret
    exists, or the cluster has it (or, offline, it is `known`). Never a literal: values end
    up stored in the release."""

    def present(flag: bool, name: str) -> bool:
        if flag or name in known:
            return True
        if kubectl is None:
            return False
        return kubectl.exists("secret", name, settings.namespace)

    hf_token = (
        HF_TOKEN_SECRET if present(settings.hf_token_from_secret, HF_TOKEN_SECRET.secret_name) else None
    )
    api_key = API_KEY_SECRET if present(settings.api_key_from_secret, API_KEY_SECRET.secret_name) else None
    if kubectl is None:
        if hf_token is None or api_key is None:
            notes.append(
                "offline: the Secrets hf-token and vllm-api-key are referenced only when "
                "VLLM_HF_TOKEN_FROM_SECRET / VLLM_API_KEY_FROM_SECRET say they exist "
                "(install, upgrade and plan look in the cluster)."
            )
        return hf_token, api_key
    if hf_token is None:
        notes.append(
            "no Secret hf-token: engines start without a HuggingFace token (gated models fail "
            "to download). Create it, or set VLLM_HF_TOKEN_FROM_SECRET=true if it exists."
        )
    if api_key is None and settings.api_key:
        notes.append("no Secret vllm-api-key yet: install and upgrade store VLLM_API_KEY as one.")
    elif api_key is None:
        notes.append("no Secret vllm-api-key: the endpoint accepts requests without an API key.")
    return hf_token, api_key


def rolling_models(prepared: Prepared) -> dict[str, int]:
    """The deployed models whose pods the upgrade replaces (a rolling update, with surge
    pods), with their deployed replica counts. Only replicaCount changing scales instead.
    With Recreate (models.yaml `strategy: recreate`) old pods stop first: nothing surges."""
    if prepared.deployed is None:
        return {}
    new_engine = prepared.rendered.values.get("servingEngineSpec") or {}
    if (new_engine.get("strategy") or {}).get("type") == "Recreate":
        return {}
    engine = prepared.deployed.values.get("servingEngineSpec") or {}
    deployed = {str(m.get("name")): m for m in engine.get("modelSpec") or [] if isinstance(m, dict)}
    # A release-wide engine value (labels, the API key reference, ...) changes every pod
    # template; the ServiceMonitor is an object of its own and changes none, and the
    # strategy is not part of the template.
    everything = any(
        path.startswith("servingEngineSpec.")
        and not path.startswith(("servingEngineSpec.serviceMonitor", "servingEngineSpec.strategy"))
        for path, _, _ in prepared.plan.other
    )
    rolling = {}
    for change in prepared.plan.models:
        if change.action != "change" or change.name not in deployed:
            continue
        # A model's PDB and its ScaledObject (keda) are objects of their own too.
        fields = {path.split(".")[0] for path, _, _ in change.fields}
        if everything or fields - {"replicaCount", "pdb", "keda"}:
            rolling[change.name] = int(deployed[change.name].get("replicaCount", 1) or 0)
    if everything:
        unchanged = {n for n in deployed if n not in {c.name for c in prepared.plan.models}}
        rolling.update({n: int(deployed[n].get("replicaCount", 1) or 0) for n in unchanged})
    return rolling


def gpu_fit(settings: Any, prepared: Prepared, kube: Any = None) -> Any:
    """Can the cluster's free GPUs hold every replica (per node), and the rolling update's
    surge pods? A gpufit.FitReport; gpufit.CannotReadNodes when nodes cannot be listed."""
    from vllmctl.cluster.kube import Kube
    from vllmctl.ops.gpufit import check_fit, needs_from_models, read_nodes

    if kube is None:
        with Kube.from_settings(settings) as own:
            nodes = read_nodes(own, namespace=settings.namespace, release=settings.release)
    else:
        nodes = read_nodes(kube, namespace=settings.namespace, release=settings.release)
    engine = prepared.rendered.values.get("servingEngineSpec") or {}
    needs = needs_from_models(prepared.models, engine.get("tolerations") or None)
    return check_fit(nodes, needs, rolling=rolling_models(prepared))


def check_features(settings: Any, models: list[Model], kubectl: Kubectl) -> None:
    """What the chart features need in the cluster (a CRD, a claim the sources read), checked
    before anything changes: helm would fail half-way, or the pods never start."""
    from vllmctl.cluster.kube import ServedKinds
    from vllmctl.features import registry
    from vllmctl.features.contexts import BeforeChange

    with ServedKinds(settings) as served:
        context = BeforeChange(settings, models, kubectl, served)
        for feature in registry.FEATURES:
            feature.before_change(context)


def pvc_policy_note(settings: Any, helm: Helm | None = None) -> str | None:
    """What happens to the model caches on uninstall, said plainly for old charts: for the
    chart being deployed, or with `helm`, for the release's deployed chart (what uninstall
    removes)."""
    if helm is None:
        chart = settings.chart_version
    else:
        deployed = helm.deployed()
        if deployed is None:
            return None
        chart = deployed.chart_version
    version = version_tuple(chart)
    if version is not None and version < SINCE["modelSpec.pvcAnnotations"]:
        return (
            f"chart {chart} cannot mark the model caches to be kept: "
            "`helm uninstall` deletes their PVCs (downloaded weights). Charts 0.1.10+ keep them."
        )
    return None


def apply(
    settings: Any,
    helm: Helm,
    kubectl: Kubectl,
    prepared: Prepared,
    *,
    install: bool,
    atomic: bool,
    replace_deployments: bool,
    notify: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """Run the install or upgrade, yielding helm's output lines as they come. On SIGINT or
    SIGTERM helm is asked to stop (it records the outcome; `notify` says so) and
    tools.ToolInterrupted follows."""
    if prepared.plan.blockers and not replace_deployments:
        raise UsageError("the upgrade cannot go through as is.", details=prepared.plan.blockers)
    chart = chart_ref(settings)
    if install:
        kubectl.ensure_namespace(settings.namespace)
    if chart.is_repo:
        tools.run(helm.repo_add_argv(chart))
        tools.run(helm.repo_update_argv(chart))
    if replace_deployments and prepared.plan.blockers:
        yield from replace_release_deployments(settings, kubectl)
    hint = f"Roll back with: vllmctl rollback -n {settings.namespace}"
    with private_values_file(prepared.rendered.text) as values:
        argv = helm.upgrade_argv(chart, values, install=install, timeout=settings.helm_timeout, atomic=atomic)
        hint = hint if not install or prepared.deployed else ""
        yield from tools.stream(argv, hint=hint, notify=notify or tools.warn_on_stderr)


def replace_release_deployments(settings: Any, kubectl: Kubectl) -> Iterator[str]:
    """Delete the release's engine and router Deployments, so helm recreates them."""
    engines = kubectl.names("deployment", settings.namespace, release_selector(settings.release))
    router = f"deployment.apps/{router_deployment_name(settings.release)}"
    names = [n.split("/", 1)[-1] for n in [*engines, router]]
    yield f"deleting Deployments {', '.join(names)} (their selectors change)"
    kubectl.delete("deployment", names, settings.namespace)


def upgrade_command(settings: Any, helm: Helm, *, install: bool, atomic: bool) -> list[str]:
    """The helm command line `install`/`upgrade` would run (values file shown as a placeholder)."""
    from pathlib import Path

    return helm.upgrade_argv(
        chart_ref(settings), Path("<values>"), install=install, timeout=settings.helm_timeout, atomic=atomic
    )


# --- uninstall: what is there is removed, what is gone already is said to be gone ---------


@dataclass(frozen=True)
class Present:
    """What `uninstall` finds before it changes anything."""

    release: bool  # helm lists the release (in any state)
    namespace: bool
    claims: list[str]  # the namespace's PVCs (asked only when the namespace may go)


def survey(settings: Any, helm: Helm, kubectl: Kubectl, *, claims: bool) -> Present:
    """Whether the release and the namespace exist, and (with `claims`) the namespace's
    PVCs. helm is asked first: a cluster out of reach is then one sentence."""
    release = helm.listed() is not None
    namespace = release or kubectl.exists("namespace", settings.namespace)
    found = kubectl.names("persistentvolumeclaim", settings.namespace) if claims and namespace else []
    return Present(release, namespace, [c.split("/", 1)[-1] for c in found])


def delete_release_secrets(settings: Any, kubectl: Kubectl) -> list[str]:
    """Delete the Secrets hf-token and vllm-api-key and the ExternalSecrets that make them;
    what was there and is now gone ("Secret hf-token", ...), [] when nothing was."""
    from vllmctl.secrets.specs import API_KEY, HF_TOKEN

    namespace, kinds = settings.namespace, (HF_TOKEN, API_KEY)
    # Listed first: deleting an ExternalSecret may take its Secret with it (owner reference).
    secrets = kubectl.existing("secret", [k.ref.secret_name for k in kinds], namespace)
    gone: list[str] = []
    if kubectl.exists("customresourcedefinition", "externalsecrets.external-secrets.io"):
        external = kubectl.delete("externalsecret", [k.external_secret for k in kinds], namespace)
        gone += [f"ExternalSecret {name}" for name in external]
    kubectl.delete("secret", secrets, namespace)
    return [*(f"Secret {name}" for name in secrets), *gone]
