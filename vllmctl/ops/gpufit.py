"""GPU fit: can every replica of every model be placed on the cluster's nodes, before helm runs?

A replica is one pod, and a pod's GPUs must all come from ONE node: two nodes with 2 free
GPUs each cannot run a replica that asks for 4. The core here does no I/O: `NodeGpus`
(what a node offers and what pods hold), `ReplicaNeed` (what a model's replicas ask for,
where they may run), `check_fit` (a placement, or why there is none, plus the rolling
update's surge) and `FitReport`. `read_nodes` reads nodes and pods through vllmctl.cluster.kube.
docs/gpu-fit.md says exactly what is checked and what is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_CEILING
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import RELEASE_LABEL
from vllmctl.core.errors import ExternalError
from vllmctl.core.quantity import QuantityError, parse_quantity
from vllmctl.features.accelerators import gpu_resource
from vllmctl.features.autoscaling import bounds as autoscaling_bounds
from vllmctl.features.multinode_values import stages as pipeline_stages

if TYPE_CHECKING:
    from vllmctl.catalog.schema import Model
    from vllmctl.cluster.kube import Kube

Obj = dict[str, Any]
Amounts = Mapping[str, int]

# Accelerators vLLM serves on whose device plugins' resource names do not say "gpu".
OTHER_ACCELERATORS = frozenset(
    {
        "habana.ai/gaudi",
        "aws.amazon.com/neuron",
        "aws.amazon.com/neuroncore",
        "aws.amazon.com/neurondevice",
        "google.com/tpu",
    }
)
# The pods that hold resources, as the scheduler counts them: all but finished ones.
ACTIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"  # what a cordon means to the scheduler
# The exhaustive search stops after this many tries of a replica on a node (well under a
# second); beyond it the report says a placement may exist but was not found.
SEARCH_STEPS = 100_000
SEARCH_MAX_REPLICAS = 400  # one recursion level per replica
LISTED_NODES = 8  # nodes named in one message; the rest are counted
EMPTY: Mapping[str, Any] = MappingProxyType({})
SURGE_FIX = (
    "`strategy: recreate` on the model in models.yaml (the chart's servingEngineSpec.strategy "
    "{type: Recreate}, for every engine of the release) avoids that, at the cost of a short "
    "outage while the model restarts"
)


# --- resource names ---------------------------------------------------------------------------


def is_extended_resource(name: str) -> bool:
    """A device plugin's resource (`vendor.domain/name`), not a built-in one (cpu, memory,
    hugepages-*, *.kubernetes.io/*)."""
    domain, slash, local = name.partition("/")
    if not slash or not domain or not local:
        return False
    return domain != "kubernetes.io" and not domain.endswith(".kubernetes.io")


def is_gpu_resource(name: str) -> bool:
    """Whether an extended resource counts whole GPUs (or accelerators): `<vendor>/gpu`,
    `<vendor>/gpu.*` (renamed shares), `<vendor>/mig-*` (MIG profiles), `gpu.<vendor>/*`
    (Intel's gpu.intel.com/i915, /xe) and the accelerators in OTHER_ACCELERATORS. HAMi's
    `nvidia.com/gpumem` and `gpucores` are shares of a GPU, not GPUs, and do not count."""
    if not is_extended_resource(name):
        return False
    domain, _, local = name.partition("/")
    return (
        local == "gpu"
        or local.startswith(("gpu.", "mig-"))
        or domain.startswith("gpu.")
        or name in OTHER_ACCELERATORS
    )


def _count(value: Any) -> int:
    """An extended resource quantity as a whole number (the API server allows no fractions)."""
    try:
        amount = parse_quantity(value)
    except QuantityError:
        return 0
    return max(0, int(amount.to_integral_value(rounding=ROUND_CEILING)))


def _container_amounts(resources: Any) -> dict[str, int]:
    """Extended resources one container asks for: its requests, or its limits where it gives
    no request (the API server copies such limits into the requests)."""
    if not isinstance(resources, Mapping):
        return {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    amounts: dict[str, int] = {}
    for name in {**limits, **requests}:
        if is_extended_resource(str(name)):
            value = requests[name] if name in requests else limits[name]
            if (count := _count(value)) > 0:
                amounts[str(name)] = count
    return amounts


def _add(total: dict[str, int], more: Amounts) -> None:
    for name, count in more.items():
        total[name] = total.get(name, 0) + count


def _peak(total: dict[str, int], other: Amounts) -> None:
    for name, count in other.items():
        total[name] = max(total.get(name, 0), count)


def _pod_amounts(containers: Sequence[Amounts], init: Sequence[tuple[Amounts, bool]]) -> dict[str, int]:
    """The scheduler's arithmetic: the app containers and sidecars (restartable init
    containers) run together; each other init container runs alone beside the sidecars
    started before it; a pod needs the larger of the two, per resource."""
    running: dict[str, int] = {}
    for amounts in containers:
        _add(running, amounts)
    peak: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    for amounts, sidecar in init:
        if sidecar:
            _add(sidecars, amounts)
            _add(running, amounts)
            _peak(peak, sidecars)
        else:
            alone = dict(sidecars)
            _add(alone, amounts)
            _peak(peak, alone)
    _peak(running, peak)
    return {name: count for name, count in running.items() if count > 0}


def pod_gpus(pod: Mapping[str, Any]) -> dict[str, int]:
    """The extended resources a pod holds on its node, as the scheduler computes them
    (containers, init containers and sidecars, plus the pod's overhead)."""
    spec = pod.get("spec") or {}
    containers = [_container_amounts(c.get("resources")) for c in spec.get("containers") or []]
    init = [
        (_container_amounts(c.get("resources")), c.get("restartPolicy") == "Always")
        for c in spec.get("initContainers") or []
    ]
    amounts = _pod_amounts(containers, init)
    _add(amounts, {k: _count(v) for k, v in (spec.get("overhead") or {}).items() if is_extended_resource(k)})
    return amounts


# --- nodes and needs -----------------------------------------------------------------------


class NodeGpus(NamedTuple):
    """One node as the fit sees it. `allocatable` holds every extended resource the node
    offers (GPUs by `is_gpu_resource`, and any other device plugin's), as whole numbers."""

    name: str
    allocatable: Amounts
    used_by_others: Amounts = EMPTY  # held by pods that are not this release's engines
    used_by_release: Amounts = EMPTY  # held by this release's engine pods (the plan replaces them)
    labels: Mapping[str, str] = EMPTY
    taints: tuple[Mapping[str, Any], ...] = ()
    cordoned: bool = False  # spec.unschedulable (kubectl cordon)
    ready: bool = True  # the Ready condition is True

    def free(self) -> dict[str, int]:
        """What the plan may use: allocatable minus what other pods hold."""
        return {r: max(0, a - self.used_by_others.get(r, 0)) for r, a in self.allocatable.items()}

    def free_now(self) -> dict[str, int]:
        """What is free at this moment: allocatable minus what every pod holds."""
        return {
            r: max(0, a - self.used_by_others.get(r, 0) - self.used_by_release.get(r, 0))
            for r, a in self.allocatable.items()
        }


class ReplicaNeed(NamedTuple):
    """What each replica of one model asks for, and the nodes it may run on."""

    model: str
    replicas: int
    per_replica: Amounts  # extended resource -> amount, for one replica (empty: no GPU)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    # Required node selector terms (ORed); None: any node. From the entry's affinity or
    # nodeSelectorTerms (terms_from says which, for messages).
    node_terms: tuple[Mapping[str, Any], ...] | None = None
    terms_from: str = "nodeSelectorTerms"
    node_name: str | None = None  # the chart's nodeName: the pod bypasses the scheduler
    skipped: str | None = None  # why the fit leaves the model out
    max_replicas: int | None = None  # autoscaling's maxReplicas (`replicas` is its minReplicas)
    gang: bool = False  # a RayCluster's pods (`replicas` = its nodes): placed together, never rolled

    @classmethod
    def from_model(
        cls, entry: Mapping[str, Any], global_tolerations: Sequence[Mapping[str, Any]] | None = None
    ) -> ReplicaNeed:
        """From a models.yaml entry with defaults filled in (`Model.effective()`), as the
        chart renders its Deployment; `global_tolerations` is servingEngineSpec.tolerations."""
        name = str(entry.get("name") or "")
        replicas = _int(entry.get("replicaCount", 1))
        if entry.get("enabled") is False:  # chart 0.1.11+: no Deployment at all
            replicas = 0
        # Autoscaled: minReplicas must fit; room for maxReplicas is only warned about.
        limits = autoscaling_bounds(entry)
        if limits is not None:
            replicas = limits[0]
        node_name = str(entry["nodeName"]) if entry.get("nodeName") else None
        terms: tuple[Mapping[str, Any], ...] | None = None
        terms_from = "nodeSelectorTerms"
        affinity = entry.get("affinity")
        if affinity:  # the chart takes the entry's affinity whole and drops nodeSelectorTerms
            terms_from = "affinity"
            node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
            required = (
                node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
                if isinstance(node_affinity, Mapping)
                else None
            )
            if isinstance(required, Mapping):
                terms = tuple(required.get("nodeSelectorTerms") or ())
        elif entry.get("nodeSelectorTerms") and node_name is None:
            terms = tuple(entry["nodeSelectorTerms"])
        skipped = None
        ray = entry.get("raySpec")
        if "raySpec" in entry and not (isinstance(ray, Mapping) and ray.get("enabled") is False):
            skipped = (
                "it runs as a RayCluster (raySpec), whose head and worker pods this check does not model"
            )
        need = cls(
            model=name,
            replicas=max(0, replicas),
            per_replica=_entry_amounts(entry),
            tolerations=_tolerations(entry, global_tolerations),
            node_terms=terms,
            terms_from=terms_from,
            node_name=node_name,
            skipped=skipped,
            max_replicas=limits[1] if limits is not None else None,
        )
        return as_gang(need, entry)


# --- multi-node models (a RayCluster) ---------------------------------------------------


def as_gang(need: ReplicaNeed, entry: Mapping[str, Any]) -> ReplicaNeed:
    """A model with pipelineParallelSize as the chart's RayCluster: its head and each
    worker are one pod of `tensorParallelSize` GPUs (requestGPU, the same on every node),
    which vLLM needs all at once; a model disabled (enabled: false) has none."""
    nodes = pipeline_stages(entry)
    if nodes is None:
        return need
    return need._replace(replicas=0 if entry.get("enabled") is False else nodes, gang=True, skipped=None)


def gang_notes(active: Sequence[ReplicaNeed], report: FitReport) -> None:
    """Say for each multi-node model how its pods are placed together, and on which nodes."""
    for need in active:
        if not need.gang:
            continue
        resource, count = _main_resource(need)
        workers = need.replicas - 1
        shape = (
            f"{need.replicas} pods (the Ray head and {workers} worker{'s' * (workers != 1)}) of "
            f"{count} {resource}"
        )
        where = report.placements.get(need.model)
        if report.ok and where:
            # Which pod is the head is the scheduler's choice: only the nodes are known.
            counts: dict[str, int] = {}
            for node in where:
                counts[node] = counts.get(node, 0) + 1
            taken = ", ".join(f"{node} ({n} pod{'s' * (n != 1)})" for node, n in counts.items())
            report.gangs[need.model] = f"placed as a gang, {shape} all at once: it would take {taken}."
        else:
            report.gangs[need.model] = f"needs {shape} all at once (a RayCluster starts only whole)."


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _entry_amounts(entry: Mapping[str, Any]) -> dict[str, int]:
    """One replica's extended resources, as the chart writes the engine pod: `resources`
    (chart 0.1.9+) replaces requestGPU/requestGPUType (or `accelerator`, mapped as render
    maps it); the optional initContainer runs first."""
    resources = entry.get("resources")
    if isinstance(resources, Mapping):
        engine = _container_amounts(resources)
    else:
        count = _int(entry.get("requestGPU", 1))
        engine = {gpu_resource(entry): count} if count > 0 else {}
    init = entry.get("initContainer")
    first = _container_amounts(init.get("resources")) if isinstance(init, Mapping) else {}
    return _pod_amounts([engine], [(first, False)] if first else [])


def _tolerations(
    entry: Mapping[str, Any], global_tolerations: Sequence[Mapping[str, Any]] | None
) -> tuple[Mapping[str, Any], ...]:
    """The chart's rule (0.1.11+): the entry's tolerations are appended to the global ones,
    or replace them with tolerationsPolicy: override."""
    shared = [t for t in global_tolerations or () if isinstance(t, Mapping)]
    own = [t for t in entry.get("tolerations") or () if isinstance(t, Mapping)]
    if own and str(entry.get("tolerationsPolicy") or "append") == "override":
        return tuple(own)
    return tuple(shared + own)


def needs_from_models(
    models: Iterable[Model | Mapping[str, Any]],
    global_tolerations: Sequence[Mapping[str, Any]] | None = None,
) -> list[ReplicaNeed]:
    """One ReplicaNeed per model (`Model`s, or their `effective()` dicts)."""
    return [
        ReplicaNeed.from_model(m if isinstance(m, Mapping) else m.effective(), global_tolerations)
        for m in models
    ]


# --- where a replica may run -----------------------------------------------------------------


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' rule: the effect matches (or the toleration names none), the key matches
    (or the toleration names none), and Exists ignores the value where Equal compares it."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and str(toleration.get("value") or "") == str(taint.get("value") or "")


def _requirement(requirement: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    key = str(requirement.get("key") or "")
    operator = requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or ()]
    present = key in fields
    value = fields.get(key)
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, bound = int(str(value)), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def matches_terms(terms: Sequence[Mapping[str, Any]], node: str, labels: Mapping[str, str]) -> bool:
    """Required node selector terms: any term matches; within a term every matchExpression
    (on labels) and matchField (on metadata.name) holds; a term with neither matches nothing."""
    fields = {"metadata.name": node}
    for term in terms:
        expressions = term.get("matchExpressions") or ()
        matched_fields = term.get("matchFields") or ()
        if not expressions and not matched_fields:
            continue
        if all(_requirement(e, labels) for e in expressions) and all(
            _requirement(f, fields) for f in matched_fields
        ):
            return True
    return False


def _taint_text(taint: Mapping[str, Any]) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def _refusal(need: ReplicaNeed, node: NodeGpus) -> tuple[str, str] | None:
    """Why the node cannot take the model's pods whatever its free GPUs, as (kind, phrase
    after the node's name); None when it can."""
    if not node.ready:
        return "ready", "is NotReady"
    if need.node_name is not None and node.name != need.node_name:
        return "nodename", f"is not {need.model}'s nodeName"
    if need.node_terms is not None and not matches_terms(need.node_terms, node.name, node.labels):
        return "terms", f"does not match {need.model}'s {need.terms_from}"
    # A pod with a nodeName skips the scheduler; the kubelet refuses only NoExecute taints.
    effects = ("NoExecute",) if need.node_name is not None else ("NoSchedule", "NoExecute")
    if node.cordoned and need.node_name is None:
        cordon = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
        if not any(tolerates(t, cordon) for t in need.tolerations):
            return "cordoned", "is cordoned"
    for taint in node.taints:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in need.tolerations):
            return "taint", f"has the taint {_taint_text(taint)}, which {need.model} does not tolerate"
    return None


# --- the report --------------------------------------------------------------------------------


class Finding(NamedTuple):
    """One problem, in one plain sentence, with the models it is about."""

    models: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


class FitReport:
    """What check_fit found. `ok` when every replica has a node; `placements` gives the node
    of each replica; `free` is per node and resource what the plan may use, `left` what
    stays free after the placement."""

    def __init__(self, nodes: Sequence[NodeGpus]) -> None:
        self.nodes = list(nodes)
        self.placements: dict[str, list[str]] = {}
        self.free: dict[str, dict[str, int]] = {n.name: n.free() for n in nodes}
        self.left: dict[str, dict[str, int]] = {}
        self.shortfalls: list[Finding] = []
        self.warnings: list[Finding] = []  # the rolling update's surge
        self.notes: list[str] = []  # models left out of the check
        self.without_gpus: list[str] = []  # models that ask for no GPU (or run no replica)
        self.search = "none"  # how the placement was found: greedy, search, incomplete
        self.resources: list[str] = []  # the resources shown per node
        self.gangs: dict[str, str] = {}  # multi-node models: how their pods are placed together

    @property
    def ok(self) -> bool:
        return not self.shortfalls

    def lines(self) -> list[str]:
        """The report as text lines for a terminal."""
        out: list[str] = []
        placed = sum(len(where) for where in self.placements.values())
        if self.ok:
            out.append(
                f"GPU fit: every replica has a node ({placed} replica{'s' * (placed != 1)} of "
                f"{len(self.placements)} model{'s' * (len(self.placements) != 1)} on "
                f"{len(self.nodes)} node{'s' * (len(self.nodes) != 1)})."
            )
            for model, where in self.placements.items():
                counts: dict[str, int] = {}
                for name in where:
                    counts[name] = counts.get(name, 0) + 1
                spread = ", ".join(f"{n} on {name}" for name, n in counts.items())
                out.append(f"  {model}: {spread}")
                if model in self.gangs:
                    out.append(f"    {self.gangs[model]}")
        else:
            out.append("GPU fit: the models cannot all be scheduled:")
            out.extend(f"  - {finding}" for finding in self.shortfalls)
        if self.without_gpus:
            out.append(f"  no GPU needed: {', '.join(self.without_gpus)}")
        if self.nodes:
            out.append(
                "free per node (allocatable minus what other pods hold; this release's pods are replaced):"
            )
            for node in self.nodes:
                state = "" if node.ready else " (NotReady)"
                state += " (cordoned)" if node.cordoned else ""
                cells = []
                for resource in self.resources:
                    total = node.allocatable.get(resource, 0)
                    if not total:
                        continue
                    cell = f"{resource} {self.free[node.name].get(resource, 0)} of {total}"
                    if self.ok and self.left:
                        cell += f", {self.left[node.name].get(resource, 0)} left"
                    cells.append(cell)
                out.append(f"  {node.name}{state}: {'; '.join(cells) or 'no GPUs'}")
        else:
            out.append("the cluster has no nodes.")
        out.extend(f"warning: {finding}" for finding in self.warnings)
        out.extend(f"note: {note}" for note in self.notes)
        return out

    def as_json(self) -> Obj:
        """The report as plain data, for `-o json`."""
        return {
            "ok": self.ok,
            "placements": {model: list(where) for model, where in self.placements.items()},
            "nodes": [
                {
                    "name": n.name,
                    "ready": n.ready,
                    "cordoned": n.cordoned,
                    "allocatable": dict(n.allocatable),
                    "used_by_others": dict(n.used_by_others),
                    "used_by_release": dict(n.used_by_release),
                    "free": dict(self.free[n.name]),
                    "left": dict(self.left.get(n.name, {})),
                }
                for n in self.nodes
            ],
            "shortfalls": [f._asdict() | {"models": list(f.models)} for f in self.shortfalls],
            "warnings": [f._asdict() | {"models": list(f.models)} for f in self.warnings],
            "notes": list(self.notes),
            "without_gpus": list(self.without_gpus),
            "search": self.search,
            "gangs": dict(self.gangs),
        }


# --- the check --------------------------------------------------------------------------------


def _listing(pairs: Iterable[tuple[str, int]]) -> str:
    """`gpu-node-1: 2, gpu-node-2: 2`: most first, at most LISTED_NODES, the rest counted."""
    ordered = sorted(pairs, key=lambda p: (-p[1], p[0]))
    shown = ", ".join(f"{name}: {count}" for name, count in ordered[:LISTED_NODES])
    more = len(ordered) - LISTED_NODES
    return shown + (f" and {more} more" if more > 0 else "")


def _amounts_text(amounts: Amounts) -> str:
    return " and ".join(f"{count} {name}" for name, count in amounts.items())


def _main_resource(need: ReplicaNeed) -> tuple[str, int]:
    return max(need.per_replica.items(), key=lambda item: item[1])


def _fits(free: Amounts, need: Amounts) -> bool:
    return all(free.get(r, 0) >= a for r, a in need.items())


def check_fit(
    nodes: Sequence[NodeGpus],
    needs: Sequence[ReplicaNeed],
    *,
    rolling: Mapping[str, int] | None = None,
) -> FitReport:
    """Place every replica of every need on a node that allows it and has its GPUs free
    (allocatable minus other pods' use; this release's pods are replaced by the plan).
    `rolling` maps the models whose pods an upgrade replaces to their ready replicas: for
    those, whether the chart's RollingUpdate has room for a new pod beside the old ones."""
    report = FitReport(nodes)
    active: list[ReplicaNeed] = []
    for need in needs:
        if need.skipped:
            report.notes.append(f"{need.model} is not checked: {need.skipped}.")
        elif need.replicas <= 0 or not need.per_replica:
            report.without_gpus.append(need.model)
        else:
            active.append(need)
    free = [n.free() for n in nodes]
    allowed: list[list[int]] = []
    troubled: set[str] = set()
    for need in active:
        indices, problem = _admissible(need, nodes, free)
        allowed.append(indices)
        if problem:
            report.shortfalls.append(Finding((need.model,), problem))
            troubled.add(need.model)
    _totals(active, allowed, nodes, free, troubled, report)
    if not report.shortfalls and active:
        _place(active, allowed, nodes, free, report)
    for model, ready in (rolling or {}).items():
        for need, indices in zip(active, allowed, strict=True):
            if need.model == model and model not in troubled and not need.gang:
                _surge(need, ready, [nodes[i] for i in indices], report)
    if report.ok:
        for need in active:
            if need.max_replicas is not None and need.max_replicas > need.replicas:
                _headroom(need, active, nodes, report)
    gang_notes(active, report)
    needed = {r for need in active for r in need.per_replica}
    offered = {r for n in nodes for r, a in n.allocatable.items() if a > 0 and is_gpu_resource(r)}
    report.resources = sorted(needed | offered)
    return report


def _admissible(
    need: ReplicaNeed, nodes: Sequence[NodeGpus], free: Sequence[Amounts]
) -> tuple[list[int], str | None]:
    """The nodes the need's pods may use (whatever is free), and the problem that stops even
    one replica from being placed, if any."""
    m = need.model
    resources = list(need.per_replica)
    names = [n.name for n in nodes]
    if need.node_name is not None and need.node_name not in names:
        return [], f"{m}'s nodeName {need.node_name} is not a node of the cluster."
    having = [i for i, n in enumerate(nodes) if all(n.allocatable.get(r, 0) > 0 for r in resources)]
    if not having:
        missing = [r for r in resources if not any(n.allocatable.get(r, 0) > 0 for n in nodes)]
        offered = sorted({r for n in nodes for r, a in n.allocatable.items() if a > 0 and is_gpu_resource(r)})
        hint = f"the nodes offer {', '.join(offered)}" if offered else "the nodes offer no GPUs"
        if missing:
            return [], (
                f"{m} needs {_amounts_text(need.per_replica)} per replica, but no node has "
                f"{' or '.join(missing)} ({hint})."
            )
        return [], f"{m} needs {_amounts_text(need.per_replica)} on one node, but no node has all of them."
    if need.node_name is not None:
        pinned = names.index(need.node_name)
        if pinned not in having:
            return [], f"{m}'s nodeName {need.node_name} has no {' or '.join(resources)}."
        having = [pinned]
        refusal = _refusal(need, nodes[pinned])
        if refusal is not None:
            return [], f"{m}'s nodeName {need.node_name} cannot take it: {need.node_name} {refusal[1]}."
    refusals = {i: _refusal(need, nodes[i]) for i in having}
    indices = [i for i in having if refusals[i] is None]
    if not indices:
        where = "no node" if len(having) == len(nodes) else f"no node with {' and '.join(resources)}"
        reasons = [(nodes[i].name, r) for i, r in refusals.items() if r is not None]
        # Not matching the selector is the least telling reason: named only when it is the only one.
        telling = [(name, phrase) for name, (kind, phrase) in reasons if kind != "terms"]
        if not telling:
            return [], f"{where} matches {m}'s {need.terms_from}."
        parts = [f"{name} {phrase}" for name, phrase in telling[:LISTED_NODES]]
        more = len(telling) - LISTED_NODES
        tail = f"; and {more} more" if more > 0 else ""
        if len(telling) < len(reasons):
            tail += f" (the other nodes do not match {m}'s {need.terms_from})"
        return [], f"{where} can take {m}: {'; '.join(parts)}{tail}."
    if any(_fits(free[i], need.per_replica) for i in indices):
        return indices, None
    if need.node_name is not None:
        where = f"its nodeName {need.node_name}"
    else:
        where = f"any node {m} may use" if len(indices) < len(having) else "any node"
    short = [
        (r, a, max(free[i].get(r, 0) for i in indices))
        for r, a in need.per_replica.items()
        if max(free[i].get(r, 0) for i in indices) < a
    ]
    if not short:
        return indices, (
            f"{m} needs {_amounts_text(need.per_replica)} on one node for each replica, but no "
            f"node {m} may use has all of them free at once."
        )
    resource, amount, most = short[0]
    listing = _listing((nodes[i].name, free[i].get(resource, 0)) for i in indices)
    held = [
        f"{nodes[i].used_by_others.get(resource, 0)} on {nodes[i].name}"
        for i in indices
        if nodes[i].allocatable.get(resource, 0) >= amount and nodes[i].used_by_others.get(resource, 0)
    ]
    hint = f"; other pods hold {', '.join(held[:LISTED_NODES])}" if held else ""
    return indices, (
        f"{m} needs {amount} {resource} on one node for each replica, but the most free on "
        f"{where} is {most} ({listing}){hint}."
    )


def _totals(
    active: Sequence[ReplicaNeed],
    allowed: Sequence[list[int]],
    nodes: Sequence[NodeGpus],
    free: Sequence[Amounts],
    troubled: set[str],
    report: FitReport,
) -> None:
    """Sums: one model's replicas against the free GPUs of the nodes it may use, then all
    models against every node any of them may use, per resource."""
    resources = sorted({r for need in active for r in need.per_replica})
    for resource in resources:
        users = [
            (need, idx) for need, idx in zip(active, allowed, strict=True) if resource in need.per_replica
        ]
        alone = False
        for need, idx in users:
            if need.model in troubled:
                continue
            demand = need.replicas * need.per_replica[resource]
            have = sum(free[i].get(resource, 0) for i in idx)
            if demand > have:
                alone = True
                having = [i for i, n in enumerate(nodes) if n.allocatable.get(resource, 0) > 0]
                which = "the nodes" if set(idx) >= set(having) else f"the nodes {need.model} may use"
                listing = _listing((nodes[i].name, free[i].get(resource, 0)) for i in idx)
                report.shortfalls.append(
                    Finding(
                        (need.model,),
                        f"{need.model} needs {demand} {resource} for its {need.replicas} replicas, "
                        f"but {which} have {have} free ({listing}).",
                    )
                )
                troubled.add(need.model)
        if alone:
            continue
        demand = sum(need.replicas * need.per_replica[resource] for need, _ in users)
        union = sorted({i for _, idx in users for i in idx})
        have = sum(free[i].get(resource, 0) for i in union)
        if demand > have and len(users) > 1:
            models = tuple(need.model for need, _ in users)
            each = ", ".join(f"{n.model}: {n.replicas * n.per_replica[resource]}" for n, _ in users)
            listing = _listing((nodes[i].name, free[i].get(resource, 0)) for i in union)
            report.shortfalls.append(
                Finding(
                    models,
                    f"the models need {demand} {resource} in total ({each}), the nodes have "
                    f"{have} free ({listing}).",
                )
            )
            troubled.update(models)


class _GaveUp(Exception):
    """The exhaustive search used up its steps."""


def _place(
    active: Sequence[ReplicaNeed],
    allowed: Sequence[list[int]],
    nodes: Sequence[NodeGpus],
    free: Sequence[Amounts],
    report: FitReport,
) -> None:
    """Largest replicas first (the most constrained first among equals), each on the node it
    fits best (the least left over); when that fails, an exhaustive search."""
    resources = sorted({r for need in active for r in need.per_replica})
    vectors = [tuple(need.per_replica.get(r, 0) for r in resources) for need in active]
    items = sorted(
        (k for k, need in enumerate(active) for _ in range(need.replicas)),
        key=lambda k: (-sum(vectors[k]), len(allowed[k]), active[k].model),
    )
    capacity = [[f.get(r, 0) for r in resources] for f in free]
    choice, stuck = _greedy(items, vectors, allowed, capacity)
    report.search = "greedy"
    if choice is None:
        report.search = "search"
        if len(items) > SEARCH_MAX_REPLICAS:
            report.search = "incomplete"
        else:
            try:
                choice = _search(items, vectors, allowed, capacity)
            except _GaveUp:
                report.search = "incomplete"
    if choice is None:
        report.shortfalls.append(_packing_failure(active, stuck, nodes, free, report.search == "incomplete"))
        return
    left = [list(c) for c in capacity]
    for k, i in zip(items, choice, strict=True):
        report.placements.setdefault(active[k].model, []).append(nodes[i].name)
        for r, amount in enumerate(vectors[k]):
            left[i][r] -= amount
    ordered = {need.model: sorted(report.placements.get(need.model, [])) for need in active}
    report.placements = ordered
    report.left = {
        node.name: {**free[i], **{r: left[i][j] for j, r in enumerate(resources)}}
        for i, node in enumerate(nodes)
    }


def _greedy(
    items: Sequence[int],
    vectors: Sequence[tuple[int, ...]],
    allowed: Sequence[list[int]],
    capacity: Sequence[list[int]],
) -> tuple[list[int] | None, int]:
    """Best fit: each replica on the allowed node with the least left over. Returns the
    node of each item, or None and the need index of the first replica that found none."""
    free = [list(c) for c in capacity]
    choice = []
    for k in items:
        vector, best, best_slack = vectors[k], -1, 0
        for i in allowed[k]:
            if all(free[i][r] >= a for r, a in enumerate(vector)):
                slack = sum(free[i][r] - a for r, a in enumerate(vector) if a)
                if best < 0 or slack < best_slack:
                    best, best_slack = i, slack
        if best < 0:
            return None, k
        for r, a in enumerate(vector):
            free[best][r] -= a
        choice.append(best)
    return choice, -1


def _search(
    items: Sequence[int],
    vectors: Sequence[tuple[int, ...]],
    allowed: Sequence[list[int]],
    capacity: Sequence[list[int]],
) -> list[int] | None:
    """Every placement, depth first, until one fits; None when none exists. Pruned three
    ways: nodes alike (same free GPUs, same models allowed) are tried once per replica;
    a state (replicas left, the multiset of nodes' free GPUs) that failed once is not tried
    again (this also skips reorderings of one model's interchangeable replicas); and a
    branch stops when a model's remaining replicas exceed what its nodes have free."""
    count = len(capacity)
    kinds_of = [tuple(i in allowed[k] for k in range(len(vectors))) for i in range(count)]
    kind_ids = {kind: n for n, kind in enumerate(sorted(set(kinds_of)))}
    kind = [kind_ids[k] for k in kinds_of]
    free = [list(c) for c in capacity]
    remaining = [0] * len(vectors)
    for k in items:
        remaining[k] += 1
    choice: list[int] = []
    failed: set[tuple[int, tuple[tuple[int, tuple[int, ...]], ...]]] = set()
    steps = 0

    def bounded() -> bool:
        for k, left in enumerate(remaining):
            if not left:
                continue
            for r, a in enumerate(vectors[k]):
                if a and left * a > sum(free[i][r] for i in allowed[k]):
                    return False
        return True

    def descend(position: int) -> bool:
        nonlocal steps
        if position == len(items):
            return True
        state = (position, tuple(sorted((kind[i], tuple(free[i])) for i in range(count))))
        if state in failed:
            return False
        k = items[position]
        vector = vectors[k]
        candidates = sorted(
            (sum(free[i][r] - a for r, a in enumerate(vector) if a), i)
            for i in allowed[k]
            if all(free[i][r] >= a for r, a in enumerate(vector))
        )
        tried = set()
        for _, i in candidates:
            alike = (kind[i], tuple(free[i]))
            if alike in tried:
                continue
            tried.add(alike)
            steps += 1
            if steps > SEARCH_STEPS:
                raise _GaveUp
            for r, a in enumerate(vector):
                free[i][r] -= a
            remaining[k] -= 1
            choice.append(i)
            if bounded() and descend(position + 1):
                return True
            choice.pop()
            remaining[k] += 1
            for r, a in enumerate(vector):
                free[i][r] += a
        failed.add(state)
        return False

    return list(choice) if descend(0) else None


def _packing_failure(
    active: Sequence[ReplicaNeed],
    stuck: int,
    nodes: Sequence[NodeGpus],
    free: Sequence[Amounts],
    incomplete: bool,
) -> Finding:
    """Each replica fits somewhere and the sums suffice, but the replicas do not pack."""
    resources = set(active[stuck].per_replica)
    involved = [need for need in active if resources & set(need.per_replica)]
    sizes = ", ".join(f"{n.model}: {n.replicas} x {_amounts_text(n.per_replica)}" for n in involved)
    ordered = sorted(resources)
    per_node = {
        r: _listing((n.name, free[i].get(r, 0)) for i, n in enumerate(nodes) if n.allocatable.get(r, 0))
        for r in ordered
    }
    if len(ordered) == 1:
        where = f"the free {ordered[0]} per node ({per_node[ordered[0]]})"
    else:
        where = f"the free GPUs per node ({'; '.join(f'{r} on {text}' for r, text in per_node.items())})"
    models = tuple(n.model for n in involved)
    if incomplete:
        return Finding(
            models,
            f"vllmctl found no placement for every replica ({sizes}) within {SEARCH_STEPS:,} search "
            f"steps on {where}; a placement may exist, but it was not found.",
        )
    return Finding(
        models,
        f"the replicas ({sizes}) cannot all be placed: each fits on some node and the totals "
        f"suffice, but no arrangement of whole replicas fits {where}.",
    )


def _surge(need: ReplicaNeed, ready: int, nodes: Sequence[NodeGpus], report: FitReport) -> None:
    """The chart's RollingUpdate (maxSurge 100%, maxUnavailable 0) removes an old pod only
    after a new one is Ready, so the first new pod must fit beside every pod running now."""
    now = [(node.name, node.free_now()) for node in nodes]
    if any(_fits(free, need.per_replica) for _, free in now):
        return
    resource, amount = _main_resource(need)
    most = max((free.get(resource, 0) for _, free in now), default=0)
    if most >= amount:  # this resource fits somewhere; another one is short
        resource, amount = next(
            (r, a) for r, a in need.per_replica.items() if max(f.get(r, 0) for _, f in now) < a
        )
        most = max(free.get(resource, 0) for _, free in now)
    listing = _listing((name, free.get(resource, 0)) for name, free in now)
    current = f"its {ready} current replica{'s' * (ready != 1)} keep" if ready else "its current pods keep"
    report.warnings.append(
        Finding(
            (need.model,),
            f"{need.model}: the upgrade's rolling update (the chart's RollingUpdate, maxSurge 100%, "
            f"maxUnavailable 0) starts a new pod before it stops an old one, so a new replica needs "
            f"{amount} {resource} free on one node while {current} theirs; the most free now on a "
            f"node it may use is {most} ({listing}): {amount - most} more {resource} needed. Without "
            f"them the update waits for GPUs that never free up (it deadlocks); {SURGE_FIX}.",
        )
    )


def _headroom(
    need: ReplicaNeed, active: Sequence[ReplicaNeed], nodes: Sequence[NodeGpus], report: FitReport
) -> None:
    """An autoscaled model's replicas above minReplicas: how many fit beside every other
    model's, counted up one at a time (no more tries than the free GPUs allow)."""
    most = need.max_replicas or need.replicas
    fits = need.replicas
    while fits < most:
        trial = [n._replace(replicas=fits + 1 if n.model == need.model else n.replicas) for n in active]
        if not check_fit(nodes, [n._replace(max_replicas=None) for n in trial]).ok:
            break
        fits += 1
    if fits >= most:
        return
    resource, amount = _main_resource(need)
    report.warnings.append(
        Finding(
            (need.model,),
            f"{need.model}: autoscaling may run up to {most} replicas of {amount} {resource}, but "
            f"only {fits} fit on the free GPUs now; replicas beyond that would stay Pending. Lower "
            "maxReplicas, or add GPUs.",
        )
    )


# --- reading the cluster ------------------------------------------------------------------------


class CannotReadNodes(ExternalError):
    """Listing nodes or the pods of every namespace was refused (403), so the fit cannot be
    checked; callers usually show this as a warning and go on."""


def _forbidden(error: ExternalError) -> bool:
    return getattr(error.__cause__, "status", None) == 403 or " (403 " in error.message


def read_nodes(kube: Kube, *, namespace: str, release: str) -> list[NodeGpus]:
    """The nodes (by name) with their extended resources, labels, taints and state, and what
    running pods hold: this release's engine pods (label helm-release-name=<release> in
    `namespace`) apart from every other pod. Finished pods and unscheduled ones hold nothing."""
    try:
        node_objects = kube.list("v1", "nodes", None)
    except ExternalError as e:
        if _forbidden(e):
            raise CannotReadNodes(
                f"the GPU fit is not checked: it lists the cluster's nodes (a ClusterRole's "
                f"permission), and {e.message}"
            ) from e
        raise
    try:
        pods = kube.list("v1", "pods", None, field_selector=ACTIVE_PODS)
    except ExternalError as e:
        if _forbidden(e):
            raise CannotReadNodes(
                f"the GPU fit is not checked: it lists the pods of every namespace (to see what "
                f"other workloads hold), and {e.message}"
            ) from e
        raise
    others: dict[str, dict[str, int]] = {}
    mine: dict[str, dict[str, int]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        meta = pod.get("metadata") or {}
        ours = meta.get("namespace") == namespace and (meta.get("labels") or {}).get(RELEASE_LABEL) == release
        _add((mine if ours else others).setdefault(str(node), {}), pod_gpus(pod))
    result = []
    for obj in sorted(node_objects, key=lambda o: str((o.get("metadata") or {}).get("name"))):
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        name = str(meta.get("name") or "")
        allocatable = {
            str(r): _count(v)
            for r, v in (status.get("allocatable") or {}).items()
            if is_extended_resource(str(r))
        }
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
        )
        result.append(
            NodeGpus(
                name=name,
                allocatable=allocatable,
                used_by_others=others.get(name, {}),
                used_by_release=mine.get(name, {}),
                labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
                taints=tuple(t for t in spec.get("taints") or () if isinstance(t, Mapping)),
                cordoned=bool(spec.get("unschedulable")),
                ready=ready,
            )
        )
    return result
