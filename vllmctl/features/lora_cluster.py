"""LoRA adapters in the cluster: what install checks before helm (the claims of pvc://
adapters, the hf-token Secret the LoRA controller reads), doctor's row (the LoraAdapter
kind served where the controller loads adapters, the claims), and what `status` reads back
(the adapters the engine was started with, and the LoraAdapter objects' loaded pods).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vllmctl.chart.facts import ENGINE_CONTAINER, release_selector
from vllmctl.core.errors import UsageError, VllmctlError
from vllmctl.core.findings import FAIL, OK, WARN, Report
from vllmctl.features import lora_values as lv
from vllmctl.features.contexts import FeatureReading

if TYPE_CHECKING:
    from vllmctl.features.base import Entry
    from vllmctl.features.contexts import BeforeChange, DoctorContext

Obj = dict[str, Any]
NAME = "lora"
KIND_TEXT = f"{lv.KIND} ({lv.GROUP}/{lv.VERSION})"


def _late(models: Sequence[Entry]) -> list[str]:
    """The models with an adapter the controller loads."""
    return [m.name for m in models if any(not a.at_start for a in lv.adapters(m.data))]


def _claims(models: Sequence[Entry]) -> dict[str, list[str]]:
    """Each claim a pvc:// adapter reads, with the models using it."""
    found: dict[str, list[str]] = {}
    for m in models:
        for a in lv.adapters(m.data):
            if not a.hub and m.name not in found.setdefault(a.claim, []):
                found[a.claim].append(m.name)
    return found


def require_present(context: BeforeChange) -> None:
    """Before install or upgrade: stop when a pvc:// adapter's claim is not in the namespace
    (the engine could not start)."""
    models = [m for m in context.models if lv.KEY in m.data]
    if not models:
        return
    namespace = context.settings.namespace
    missing = []
    claims = _claims(models)
    if claims:
        present = {n.split("/", 1)[-1] for n in context.kubectl.names("persistentvolumeclaim", namespace)}
        missing += [
            f"PersistentVolumeClaim {claim} (adapters of {', '.join(users)})"
            for claim, users in claims.items()
            if claim not in present
        ]
    # The hf-token Secret the controller reads for Hub adapters is install's to store (or
    # refuse without), as for a gated model: Feature.needs_hf_token, ops/gated.py. Checking
    # it here, before install creates the namespace and stores the token, was a dead end.
    if missing:
        raise UsageError(
            f"{len(missing)} object{'s' if len(missing) != 1 else ''} the LoRA adapters need "
            f"{'are' if len(missing) != 1 else 'is'} not in namespace {namespace}; nothing was "
            "changed (docs/lora.md):",
            details=missing,
        )


def served(kube: Any) -> bool:
    """Whether the cluster serves LoraAdapter in the version the chart writes."""
    return lv.VERSION in kube.served_versions(lv.GROUP, lv.PLURAL)


def check(report: Report, context: DoctorContext) -> None:
    """One row: the adapters declared; where the controller loads some, the LoraAdapter
    kind served (helm creates it from the chart's crds/ on a first install only, never on
    upgrade); the claims pvc:// adapters read."""
    models = [m for m in context.models or [] if lv.KEY in m.data]
    count = sum(len(lv.adapters(m.data)) for m in models)
    said = f"{count} adapter{'s' if count != 1 else ''} on {', '.join(m.name for m in models)}"
    if context.kube is None:
        report.add("cluster", NAME, OK, f"{said} (cluster not checked)")
        return
    late = _late(models)
    if late:
        try:
            is_served = served(context.kube)
        except VllmctlError as e:
            report.add("cluster", NAME, WARN, f"{said}; could not ask for {KIND_TEXT}: {e.message}")
            return
        if not is_served:
            report.add(
                "cluster",
                NAME,
                WARN,
                f"{said}; {', '.join(late)} load adapters through the LoRA controller, and the cluster "
                f"does not serve {KIND_TEXT}: helm creates it from the chart's crds/ on a first install, "
                "but never on an upgrade",
                "on an existing release apply the chart's crds/crd-lora-adapter.yaml, or set atStart: true",
            )
            return
        said += f"; the cluster serves {KIND_TEXT}"
    namespace = context.settings.namespace
    claims = _claims(models)
    missing = []
    for claim in claims:
        try:
            if context.kube.get("v1", "persistentvolumeclaims", namespace, claim) is None:
                missing.append(claim)
        except VllmctlError:
            continue  # cannot tell: say nothing against it
    if missing:
        report.add(
            "cluster",
            NAME,
            FAIL,
            f"{said}; namespace {namespace} has no PersistentVolumeClaim {', '.join(missing)} "
            "(pvc:// adapters)",
            "create the claims holding the adapters, or change their source",
        )
        return
    report.add("cluster", NAME, OK, said)


# ------------------------------------------------------------------ status


@dataclass
class Served:
    """One adapter of a deployed model."""

    name: str
    source: str  # the path vLLM was given, or the LoraAdapter's repository / adapterPath
    loaded_by: str  # "engine start" or "controller"
    loaded_on: int | None = None  # pods the controller reports it loaded on (None: at start)
    phase: str | None = None  # the LoraAdapter's status.phase


@dataclass
class LoraStatus:
    adapters: list[Served] = field(default_factory=list)
    problem: str | None = None


def read_adapters(kube: Any, namespace: str, release: str) -> FeatureReading:
    """The release's LoraAdapter objects (one list; none when the kind is not served)."""
    try:
        listed = kube.list(
            f"{lv.GROUP}/{lv.VERSION}", lv.PLURAL, namespace, label_selector=release_selector(release)
        )
    except VllmctlError as e:
        if (getattr(e, "status", None) or {}).get("code") == 404:
            return FeatureReading()
        return FeatureReading(notes=[f"could not read the LoraAdapters: {e.message}"])
    return FeatureReading({"adapters": listed}) if listed else FeatureReading()


def started_with(deployment: Obj) -> list[tuple[str, str]]:
    """The (name, path) pairs after the engine container's --lora-modules."""
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    found: list[tuple[str, str]] = []
    for container in containers:
        if container.get("name") != ENGINE_CONTAINER:
            continue
        argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
        if "--lora-modules" not in argv:
            continue
        for arg in argv[argv.index("--lora-modules") + 1 :]:
            if arg.startswith("--"):
                break
            name, _, path = arg.partition("=")
            found.append((name, path))
    return found


def model_adapters(reading: FeatureReading, model: str, deployment: Obj) -> LoraStatus | None:
    """One model's adapters: those its engine started with, and the controller's."""
    result = LoraStatus([Served(name, path, "engine start") for name, path in started_with(deployment)])
    for adapter in reading.objects.get("adapters") or []:
        spec, st = adapter.get("spec") or {}, adapter.get("status") or {}
        if spec.get("baseModel") != model:
            continue
        source = spec.get("adapterSource") or {}
        name = str(source.get("adapterName") or adapter["metadata"]["name"])
        loaded = [a for a in st.get("loadedAdapters") or [] if a.get("name") == name]
        result.adapters.append(
            Served(
                name,
                str(source.get("repository") or source.get("adapterPath") or ""),
                "controller",
                len(loaded),
                st.get("phase"),
            )
        )
    if not result.adapters:
        return None
    replicas = (deployment.get("status") or {}).get("readyReplicas") or 0
    waiting = [
        a.name for a in result.adapters if a.loaded_by == "controller" and replicas and not a.loaded_on
    ]
    if waiting:
        result.problem = (
            f"the LoRA controller has not loaded {', '.join(waiting)} on any Ready engine "
            "(`kubectl logs deploy/<release>-lora-controller` says why)"
        )
    return result


def adapters_table(parts: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for model, part in parts.items():
        for a in part.adapters:
            loaded = (
                "at start" if a.loaded_on is None else f"{a.loaded_on} pod{'s' if a.loaded_on != 1 else ''}"
            )
            rows.append([model, a.name, a.loaded_by, loaded, a.source])
    return ["model", "adapter", "loaded by", "loaded", "source"], rows
