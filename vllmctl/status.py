"""What `vllmctl status` and `vllmctl endpoints` report, gathered with a fixed number of calls.

Status reads the release from helm (`helm list`, in a thread while the API is asked) and
the cluster with one list per kind, whatever the number of models: the namespace's
Deployments and Services, the release's engine pods (label `helm-release-name`), the
router's pods (its Deployment's selector), the namespace's Pod events (one field
selector), and the release's KEDA ScaledObjects (with the namespace's HPAs when there are
any). Only crashing pods cost more: the last lines of their logs, for at most
LOG_PODS of them. Then the router is asked what it serves (GET /v1/models through a
port-forward), and all of it is compared with models.yaml.

Everything not Ready gets its reason in plain words, from the pod's conditions, its
containers' states and the scheduler's and kubelet's events. The report is plain data
(dataclasses, `as_json()`), so `-o json` holds the same facts as the table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vllmctl.errors import VllmctlError

if TYPE_CHECKING:
    from vllmctl.exposure import ExternalAccess
    from vllmctl.helm import Helm
    from vllmctl.kube import Kube

Obj = dict[str, Any]

LOG_PODS = 3  # crashing pods whose log tails are read, at most
LOG_LINES = 5  # lines of each
RECONNECT_SECONDS = 5.0  # a router pod that goes away mid-check: how long to wait for another
CLUSTER_DOMAIN = "cluster.local"
API_KEY_SECRET, API_KEY_KEY = "vllm-api-key", "api-key"  # as vllmctl.tunnel reads it
ENGINE_CONTAINER = "vllm"
RELEASE_POD_LABEL = "helm-release-name"  # on engine pods, in every chart version
MODEL_POD_LABEL = "model"
DIFFERS = "the release differs from models.yaml: run vllmctl plan"
CRASHING = ("CrashLoopBackOff", "RunContainerError", "Error", "OOMKilled")
PULLING = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")


# --- the report ---------------------------------------------------------------------------


@dataclass
class ReleaseInfo:
    """The helm release, as `helm list` shows it."""

    name: str
    namespace: str
    installed: bool | None  # None: helm could not be asked (see `error`)
    revision: int | None = None
    chart: str | None = None
    chart_version: str | None = None
    app_version: str | None = None
    status: str | None = None
    updated: str | None = None
    updated_age: str | None = None
    error: str | None = None


@dataclass
class PodStatus:
    name: str
    phase: str
    status: str  # kubectl's STATUS column: Running, Pending, CrashLoopBackOff...
    ready: bool
    restarts: int
    age: str
    created: str | None
    node: str | None
    reason: str | None = None  # why it is not Ready, in plain words
    exit_code: int | None = None  # of the last terminated instance
    log_tail: list[str] = field(default_factory=list)


@dataclass
class ServicePort:
    name: str
    port: int
    target_port: str
    protocol: str


@dataclass
class ServiceInfo:
    name: str
    type: str
    cluster_ip: str | None
    dns: str
    url: str  # http://<dns>[:port], on the first port
    ports: list[ServicePort]


@dataclass
class Replicas:
    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0


@dataclass
class AutoscalingStatus:
    """A model's KEDA ScaledObject and the HPA KEDA runs for it."""

    scaled_object: str
    min_replicas: int  # spec.minReplicaCount (KEDA's default 0)
    max_replicas: int  # spec.maxReplicaCount (KEDA's default 100)
    current: int | None  # the HPA's currentReplicas, else the Deployment's
    desired: int | None  # the HPA's desiredReplicas
    ready: bool | None  # the ScaledObject's Ready condition; None: not reported yet
    active: bool | None  # a trigger is active
    hpa: str | None = None
    query: str | None = None  # the first trigger's Prometheus query
    target: str | None = None  # its threshold, per replica
    value: str | None = None  # the metric's current value per replica (the HPA's view)
    problem: str | None = None  # why autoscaling does not work, in plain words


@dataclass
class ModelStatus:
    name: str
    configured: bool  # in models.yaml
    deployed: bool  # an engine Deployment of this release exists
    deployment: str
    ready: bool = False
    replicas: Replicas = field(default_factory=Replicas)
    gpus_per_replica: int = 0
    gpu_resource: str | None = None
    image: str | None = None
    tag: str | None = None
    age: str | None = None
    restarts: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what is wrong, in plain words
    served_names: list[str] = field(default_factory=list)  # the ids its engine serves
    autoscaling: AutoscalingStatus | None = None  # when a ScaledObject scales it
    serving: bool | None = None  # listed by the router; None: the router was not asked
    service: ServiceInfo | None = None
    pods: list[PodStatus] = field(default_factory=list)


@dataclass
class RouterStatus:
    deployment: str
    found: bool
    ready: bool = False
    replicas: Replicas = field(default_factory=Replicas)
    image: str | None = None
    tag: str | None = None
    age: str | None = None
    restarts: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    pods: list[PodStatus] = field(default_factory=list)
    service: ServiceInfo | None = None
    base_url: str | None = None  # what clients in the cluster use
    reachable: bool | None = None  # None: not asked
    served: list[str] = field(default_factory=list)  # GET /v1/models ids
    error: str | None = None  # why it could not be asked


@dataclass
class Comparison:
    configured_not_deployed: list[str] = field(default_factory=list)
    deployed_not_configured: list[str] = field(default_factory=list)
    deployed_not_serving: list[str] = field(default_factory=list)
    serving_not_configured: list[str] = field(default_factory=list)  # served ids
    # What `vllmctl plan` would change (its lines: the same comparison of the deployed
    # values with models.yaml's); [] when they agree, None when not compared.
    plan: list[str] | None = None


@dataclass
class StatusReport:
    release: ReleaseInfo
    ready: bool  # every deployed model and the router Ready
    problems: list[str]  # one line each; empty when all is well
    models: list[ModelStatus]
    router: RouterStatus
    comparison: Comparison
    notes: list[str] = field(default_factory=list)
    models_file: str | None = None  # None: no models.yaml to compare with

    def as_json(self) -> Obj:
        return asdict(self)


# --- gathering ----------------------------------------------------------------------------


class StatusReader:
    """Reads the status of one release, again and again for --watch: one connection, helm
    found once. Use it as a context manager; it connects on the first read."""

    def __init__(self, settings: Any, kube: Kube | None = None) -> None:
        self.settings = settings
        self._kube = kube
        self._owns_kube = kube is None
        self._helm: Helm | None = None
        self._plan_helm: Helm | None = None  # the plan's own, in its own thread

    def __enter__(self) -> StatusReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._kube is not None and self._owns_kube:
            self._kube.close()
            self._kube = None

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            from vllmctl.kube import Kube

            self._kube = Kube.from_settings(self.settings)  # imports the client: ~0.4 s
        return self._kube

    def read(self, *, check_router: bool = True, check_plan: bool = True) -> StatusReport:
        """One report. helm runs in one thread (from the start: it needs no connection),
        the plan (`check_plan`) in another, the router check in a third, while this one
        reads models.yaml and the API."""
        from concurrent.futures import ThreadPoolExecutor

        s = self.settings
        secrets = _known_secrets(s)
        with ThreadPoolExecutor(max_workers=3) as pool:
            release_future = pool.submit(self._release)
            plan_future = pool.submit(self._plan) if check_plan else None  # helm and kubectl again
            kube = self.kube
            router_future = (
                pool.submit(ask_router, kube, s.namespace, s.release, s.api_key, secrets=secrets)
                if check_router
                else None
            )
            configured, notes = _configured(s)
            cluster = _read_cluster(kube, s.namespace, s.release)
            router_check = router_future.result() if router_future else None
            release = release_future.result()
            plan = plan_future.result() if plan_future and release.installed else None
        if cluster.router is None:
            router_check = None  # no router to ask: its absence is the report
        elif router_check and not (cluster.router.get("status") or {}).get("readyReplicas"):
            router_check = RouterCheck(None, "no router pod is Ready")
        return build_report(
            release=release,
            cluster=cluster,
            configured=configured,
            router_check=router_check,
            notes=notes,
            models_file=str(s.models_path) if configured is not None else None,
            redact=secrets,
            plan=plan,
        )

    def _release(self) -> ReleaseInfo:
        from vllmctl.deploy import helm_for

        s = self.settings
        try:
            if self._helm is None:
                self._helm = helm_for(s)
            return release_info(self._helm)
        except VllmctlError as e:
            return ReleaseInfo(s.release, s.namespace, installed=None, error=e.message)

    def _plan(self) -> PlanCheck:
        """What `vllmctl plan` would change (used when the release is installed)."""
        from vllmctl.deploy import helm_for

        try:
            if self._plan_helm is None:
                self._plan_helm = helm_for(self.settings)
        except VllmctlError as e:  # said by the release line already
            return PlanCheck(None, e.message)
        return plan_check(self.settings, self._plan_helm)


@dataclass
class PlanCheck:
    lines: list[str] | None  # the plan's changes ([]: none); None: not compared
    note: str | None = None  # why not


def plan_check(settings: Any, helm: Helm) -> PlanCheck:
    """The comparison `vllmctl plan` makes (deploy.prepare: the values models.yaml renders
    against the deployed ones), so status and plan cannot disagree."""
    from vllmctl.deploy import kubectl_for, prepare

    if not settings.models_path.exists() and not settings.env:
        return PlanCheck(None)  # the report already says there is nothing to compare with
    try:
        plan = prepare(settings, helm=helm, kubectl=kubectl_for(settings)).plan
    except VllmctlError as e:
        return PlanCheck(None, f"the release's values were not compared with models.yaml: {e.message}")
    if not (plan.has_changes or plan.blockers):
        return PlanCheck([])
    return PlanCheck([line.strip() for line in plan.lines()[1:]])


@dataclass
class RouterCheck:
    served: list[str] | None  # None: not reachable
    error: str | None


def ask_router(
    kube: Kube, namespace: str, release: str, api_key: str | None, *, secrets: list[str]
) -> RouterCheck:
    """GET /v1/models through a port-forward to the router, with the API key given or the
    namespace's (added to `secrets`, to be kept out of the report). A failure is an answer
    here (the rest of the report stands), so every one becomes its reason."""
    try:
        from vllmctl.openai_api import list_models
        from vllmctl.tunnel import open_router_tunnel, router_api_key
    except ImportError as e:  # a partial installation
        return RouterCheck(None, f"vllmctl cannot ask it: {e}")
    if not api_key:
        try:
            api_key = router_api_key(kube, namespace)
        except (VllmctlError, ValueError):  # unreadable (RBAC): the router lists models without one
            api_key = None
    if api_key:
        secrets.append(api_key)
    try:
        with open_router_tunnel(kube, namespace, release, reconnect_timeout=RECONNECT_SECONDS) as tunnel:
            cards = list_models(tunnel.base_url, api_key)
    except VllmctlError as e:
        return RouterCheck(None, e.message)
    except Exception as e:  # the report must survive whatever the check runs into
        return RouterCheck(None, f"{type(e).__name__}: {e}")
    served = sorted({str(card.get("id")) for card in cards if isinstance(card, dict) and card.get("id")})
    return RouterCheck(served, None)


def release_info(helm: Helm) -> ReleaseInfo:
    """The release from `helm list` (every state); `installed=False` when there is none."""
    entry = helm.listed()
    if entry is None:
        return ReleaseInfo(helm.release, helm.namespace, installed=False)
    chart = str(entry.get("chart") or "")
    version = chart.rsplit("-", 1)[-1] if "-" in chart else None
    updated = str(entry.get("updated") or "") or None
    when = _parse_helm_time(updated) if updated else None
    return ReleaseInfo(
        helm.release,
        helm.namespace,
        installed=True,
        revision=_int(entry.get("revision")),
        chart=chart or None,
        chart_version=version,
        app_version=str(entry.get("app_version") or "") or None,
        status=str(entry.get("status") or "") or None,
        updated=updated,
        updated_age=_age(when) if when else None,
    )


def _configured(settings: Any) -> tuple[dict[str, set[str]] | None, list[str]]:
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
    ids: dict[str, set[str]] = {name: {name} for name in catalog.names()}
    for model in catalog.models:
        url = model.data.get("modelURL")
        if isinstance(url, str):
            ids[model.name].add(url)
        extra = (model.data.get("vllmConfig") or {}).get("extraArgs")
        if isinstance(extra, list):
            ids[model.name].update(_served_names([str(a) for a in extra]))
    return ids, notes


def _known_secrets(settings: Any) -> list[str]:
    """Values that must never be shown, should a log line hold one."""
    return [v for v in (settings.api_key, settings.hf_token) if v]


# --- reading the cluster ------------------------------------------------------------------


@dataclass
class ClusterState:
    """The release's objects, each kind listed once."""

    release: str
    namespace: str
    engines: dict[str, Obj]  # model name -> engine Deployment
    router: Obj | None
    engine_pods: dict[str, list[Obj]]  # model name -> its pods
    router_pods: list[Obj]
    services: dict[str, Obj]  # name -> Service, this release's
    events: dict[str, list[Obj]]  # pod name -> its events, oldest first
    logs: dict[str, list[str]]  # pod name -> last log lines (crashing pods only)
    scaled_objects: dict[str, Obj] = field(default_factory=dict)  # model name -> its ScaledObject
    hpas: dict[str, Obj] = field(default_factory=dict)  # name -> HPA (only when there are ScaledObjects)
    notes: list[str] = field(default_factory=list)  # what could not be read


def engine_deployment_name(release: str, model: str) -> str:
    return f"{release}-{model}-deployment-vllm"


def router_deployment_name(release: str) -> str:
    return f"{release}-deployment-router"


def router_service_name(release: str) -> str:
    return f"{release}-router-service"


def engine_service_name(release: str, model: str) -> str:
    return f"{release}-{model}-engine-service"


def _read_cluster(kube: Kube, namespace: str, release: str) -> ClusterState:
    deployments = kube.list("apps/v1", "deployments", namespace)
    engines = _engines(deployments, release)
    router = next((d for d in deployments if d["metadata"]["name"] == router_deployment_name(release)), None)
    engine_pods: dict[str, list[Obj]] = {}
    for pod in kube.list("v1", "pods", namespace, label_selector=f"{RELEASE_POD_LABEL}={release}"):
        model = (pod["metadata"].get("labels") or {}).get(MODEL_POD_LABEL)
        if model:
            engine_pods.setdefault(model, []).append(pod)
    router_pods: list[Obj] = []
    selector = label_selector_text((router or {}).get("spec", {}).get("selector"))
    if router is not None and selector:
        # Chart 0.1.8/0.1.9 select router pods by routerSpec.labels alone, the same for
        # every release by default: keep those of our Deployment's ReplicaSets.
        ours = f"{router_deployment_name(release)}-"
        router_pods = [
            p
            for p in kube.list("v1", "pods", namespace, label_selector=selector)
            if all(
                str(o.get("name", "")).startswith(ours) for o in p["metadata"].get("ownerReferences") or []
            )
        ]
    services = {
        s["metadata"]["name"]: s
        for s in kube.list("v1", "services", namespace)
        if _release_service(s, release)
    }
    names = {p["metadata"]["name"] for pods in engine_pods.values() for p in pods}
    names.update(p["metadata"]["name"] for p in router_pods)
    events: dict[str, list[Obj]] = {}
    for event in kube.list("v1", "events", namespace, field_selector="involvedObject.kind=Pod"):
        pod_name = str((event.get("involvedObject") or {}).get("name"))
        if pod_name in names:
            events.setdefault(pod_name, []).append(event)
    for listed in events.values():
        listed.sort(key=_event_time)
    logs: dict[str, list[str]] = {}
    every_pod = [*[p for pods in engine_pods.values() for p in pods], *router_pods]
    for pod, container, previous in _crashing(every_pod)[:LOG_PODS]:
        logs[pod["metadata"]["name"]] = kube.pod_log_tail(
            namespace, pod["metadata"]["name"], container, lines=LOG_LINES, previous=previous
        )
    scaled_objects, hpas, notes = _autoscalers(kube, namespace, release)
    return ClusterState(
        release, namespace, engines, router, engine_pods, router_pods, services, events, logs,
        scaled_objects, hpas, notes,
    )  # fmt: skip


def _autoscalers(
    kube: Kube, namespace: str, release: str
) -> tuple[dict[str, Obj], dict[str, Obj], list[str]]:
    """The release's ScaledObjects by model (one list; none when KEDA's CRD is not served,
    a 404), and the namespace's HPAs (one more list, only when there are ScaledObjects)."""
    from vllmctl import autoscaling

    try:
        listed = kube.list(
            f"{autoscaling.GROUP}/{autoscaling.VERSION}",
            autoscaling.PLURAL,
            namespace,
            label_selector=f"{RELEASE_POD_LABEL}={release}",
        )
    except VllmctlError as e:
        if (getattr(e, "status", None) or {}).get("code") == 404:
            return {}, {}, []
        return {}, {}, [f"could not read the ScaledObjects: {e.message}"]
    found = {
        str((so["metadata"].get("labels") or {}).get(MODEL_POD_LABEL)): so
        for so in listed
        if (so["metadata"].get("labels") or {}).get(MODEL_POD_LABEL)
    }
    if not found:
        return {}, {}, []
    try:
        hpas = {
            h["metadata"]["name"]: h
            for h in kube.list("autoscaling/v2", "horizontalpodautoscalers", namespace)
        }
    except VllmctlError as e:
        return found, {}, [f"could not read the HorizontalPodAutoscalers: {e.message}"]
    return found, hpas, []


def _engines(deployments: list[Obj], release: str) -> dict[str, Obj]:
    """Engine Deployments `<release>-<model>-deployment-vllm` of this release (a selector
    naming another release is another release's, whose name shares our prefix)."""
    pattern = re.compile(rf"{re.escape(release)}-(.+)-deployment-vllm")
    found: dict[str, Obj] = {}
    for d in deployments:
        match = pattern.fullmatch(d["metadata"]["name"])
        if not match:
            continue
        labels = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if labels.get(RELEASE_POD_LABEL, release) != release:
            continue
        found[str(labels.get(MODEL_POD_LABEL) or match.group(1))] = d
    return found


def _release_service(service: Obj, release: str) -> bool:
    name = service["metadata"]["name"]
    if name == router_service_name(release):
        return True
    selector = (service.get("spec") or {}).get("selector") or {}
    return (
        name.startswith(f"{release}-")
        and name.endswith("-engine-service")
        and str(selector.get(RELEASE_POD_LABEL, release)) == release
    )


def label_selector_text(selector: Obj | None) -> str:
    """A Deployment's metav1.LabelSelector in the query syntax (`a=b,c in (d,e)`)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _crashing(pods: Iterable[Obj]) -> list[tuple[Obj, str, bool]]:
    """(pod, container, previous?) for the containers that crashed and are not Ready:
    whose log explains the crash. A waiting container's log is its last instance's; a
    restarted, running one has it as `previous`."""
    found = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("ready"):
                continue
            state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated")
            waiting = (state.get("waiting") or {}).get("reason")
            terminated = state.get("terminated")
            crashed = waiting == "CrashLoopBackOff" or (waiting in CRASHING and last)
            if crashed or (terminated and terminated.get("exitCode")):
                found.append((pod, cs["name"], False))
            elif "running" in state and last and last.get("exitCode"):
                found.append((pod, cs["name"], True))
            else:
                continue
            break
    return found


# --- building the report ------------------------------------------------------------------


def build_report(
    *,
    release: ReleaseInfo,
    cluster: ClusterState,
    configured: dict[str, set[str]] | None,
    router_check: RouterCheck | None,
    notes: list[str],
    models_file: str | None = None,
    redact: list[str] | None = None,
    plan: PlanCheck | None = None,
) -> StatusReport:
    """The report from what was read: no further calls."""
    clean = _redactor(redact or [])
    names = list(configured or {})
    names += sorted(n for n in cluster.engines if n not in (configured or {}))
    models = [_model(name, cluster, configured, clean) for name in names]
    router = _router(cluster, router_check, clean)

    comparison = Comparison()
    if plan is not None and configured is not None:
        comparison.plan = plan.lines
        notes = [*notes, plan.note] if plan.note else notes
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

    deployed = [m for m in models if m.deployed]
    ready = bool(release.installed is not False and (deployed or router.found))
    ready = ready and all(m.ready for m in deployed) and (router.ready or not router.found)
    problems = _problems(release, models, router, comparison)
    notes = [*notes, *cluster.notes]
    return StatusReport(release, ready, problems, models, router, comparison, notes, models_file)


def _problems(
    release: ReleaseInfo, models: list[ModelStatus], router: RouterStatus, c: Comparison
) -> list[str]:
    problems = []
    if release.installed is False:
        problems.append(f"release {release.name} is not installed in namespace {release.namespace}")
    elif release.status and release.status != "deployed":
        from vllmctl.recovery import pending_advice

        advice = pending_advice(release.status)
        problems.append(
            f"helm reports release {release.name} as {release.status} (revision {release.revision})"
            + (f": {advice}" if advice else "")
        )
    if release.error:
        problems.append(f"helm: {release.error}")
    for m in models:
        if m.deployed and not m.ready:
            problems.append(f"model {m.name}: " + ("; ".join(m.problems) or "not Ready"))
    for m in models:
        if m.autoscaling and m.autoscaling.problem:
            problems.append(f"model {m.name}: autoscaling: {m.autoscaling.problem}")
    if router.found and not router.ready:
        problems.append("router: " + ("; ".join(router.problems) or "not Ready"))
    if router.found and router.reachable is False:
        problems.append(f"router: not reachable ({router.error})")
    if router.found and router.service is None:
        problems.append(f"router: its Service {router_service_name(release.name)} does not exist")
    deploy = "install" if release.installed is False else "upgrade"
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


def _model(
    name: str, cluster: ClusterState, configured: dict[str, set[str]] | None, clean: Callable[[str], str]
) -> ModelStatus:
    deployment = cluster.engines.get(name)
    status = ModelStatus(
        name=name,
        configured=configured is not None and name in configured,
        deployed=deployment is not None,
        deployment=(deployment or {}).get("metadata", {}).get("name")
        or engine_deployment_name(cluster.release, name),
    )
    service = cluster.services.get(engine_service_name(cluster.release, name))
    status.service = service_info(service, cluster.namespace) if service else None
    if deployment is None:
        if configured is not None and name in configured:
            status.served_names = sorted(configured[name])
        return status
    containers = _containers(deployment)
    engine = next(
        (c for c in containers if c.get("name") == ENGINE_CONTAINER), containers[0] if containers else {}
    )
    status.gpus_per_replica, status.gpu_resource = _gpus(containers)
    status.served_names = _engine_ids(engine)
    if name in cluster.scaled_objects:
        status.autoscaling = autoscaling_status(cluster.scaled_objects[name], cluster.hpas, deployment)
    pods = cluster.engine_pods.get(name, [])
    _fill_workload(status, deployment, engine, pods, cluster, clean)
    if status.gpu_resource:
        gpus = f"{status.gpus_per_replica} {status.gpu_resource}"
        for pod in status.pods:
            if pod.reason and f"Insufficient {status.gpu_resource}" in pod.reason:
                pod.reason += f" (each replica asks for {gpus}: free GPUs, add nodes or lower requestGPU)"
        status.problems = _summarise(status.pods, _deployment_problems(deployment, pods))
    return status


def _router(cluster: ClusterState, check: RouterCheck | None, clean: Callable[[str], str]) -> RouterStatus:
    name = router_deployment_name(cluster.release)
    d = cluster.router
    status = RouterStatus(deployment=name, found=d is not None)
    service = cluster.services.get(router_service_name(cluster.release))
    if service:
        status.service = service_info(service, cluster.namespace)
        status.base_url = status.service.url + "/v1"
    if d is None:
        return status
    containers = _containers(d)
    _fill_workload(status, d, containers[0] if containers else {}, cluster.router_pods, cluster, clean)
    if check is not None:
        status.reachable = check.served is not None
        status.served = check.served or []
        status.error = clean(check.error) if check.error else None
    return status


def _fill_workload(
    status: ModelStatus | RouterStatus,
    deployment: Obj,
    container: Obj,
    pods: list[Obj],
    cluster: ClusterState,
    clean: Callable[[str], str],
) -> None:
    spec, st = deployment.get("spec") or {}, deployment.get("status") or {}
    status.replicas = Replicas(
        desired=_int(spec.get("replicas"), 1) or 0,
        updated=_int(st.get("updatedReplicas")) or 0,
        ready=_int(st.get("readyReplicas")) or 0,
        available=_int(st.get("availableReplicas")) or 0,
    )
    status.ready = _rolled_out(deployment)
    status.image = container.get("image")
    status.tag = image_tag(status.image)
    status.age = _age(_timestamp(deployment["metadata"].get("creationTimestamp")))
    status.pods = [
        _pod(p, cluster.events.get(p["metadata"]["name"], []), cluster.logs.get(p["metadata"]["name"]), clean)
        for p in sorted(pods, key=lambda p: p["metadata"]["name"])
    ]
    status.restarts = sum(p.restarts for p in status.pods)
    phases: dict[str, int] = {}
    for pod in status.pods:
        phases[pod.status] = phases.get(pod.status, 0) + 1
    status.phases = dict(sorted(phases.items()))
    status.problems = _summarise(status.pods, _deployment_problems(deployment, pods))


def _rolled_out(deployment: Obj) -> bool:
    """Every desired replica up to date, Ready and available, and no old ones left."""
    spec, st = deployment.get("spec") or {}, deployment.get("status") or {}
    if (_int(st.get("observedGeneration")) or 0) < (_int(deployment["metadata"].get("generation")) or 0):
        return False
    want = _int(spec.get("replicas"), 1) or 0
    counts = [
        _int(st.get(k)) or 0 for k in ("updatedReplicas", "readyReplicas", "availableReplicas", "replicas")
    ]
    return counts == [want] * 4


def _deployment_problems(deployment: Obj, pods: list[Obj]) -> list[str]:
    problems = []
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            problems.append(f"cannot create pods: {cond.get('message') or cond.get('reason')}")
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            problems.append(f"the rollout is stuck: {cond.get('message')}")
    want = _int((deployment.get("spec") or {}).get("replicas"), 1) or 0
    if want and not pods and not problems:
        problems.append(f"no pods yet ({want} wanted)")
    return problems


def _summarise(pods: list[PodStatus], extra: list[str]) -> list[str]:
    """One line per distinct reason, with how many pods share it."""
    counts: dict[str, int] = {}
    for pod in pods:
        if pod.reason:
            counts[pod.reason] = counts.get(pod.reason, 0) + 1
    lines = [reason if n == 1 else f"{n} pods: {reason}" for reason, n in counts.items()]
    return [*extra, *lines]


# --- one pod, in plain words --------------------------------------------------------------


def _pod(pod: Obj, events: list[Obj], log: list[str] | None, clean: Callable[[str], str]) -> PodStatus:
    meta, st = pod["metadata"], pod.get("status") or {}
    statuses = [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]
    ready = _condition(st, "Ready") == "True"
    restarts = sum(_int(cs.get("restartCount")) or 0 for cs in st.get("containerStatuses") or [])
    created = meta.get("creationTimestamp")
    result = PodStatus(
        name=meta["name"],
        phase=st.get("phase") or "Pending",
        status=_status_column(pod),
        ready=ready,
        restarts=restarts,
        age=_age(_timestamp(created)),
        created=created,
        node=(pod.get("spec") or {}).get("nodeName"),
    )
    for cs in statuses:
        terminated = (cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get(
            "terminated"
        )
        if terminated and terminated.get("exitCode") is not None:
            result.exit_code = _int(terminated.get("exitCode"))
            break
    if not ready:
        result.reason = clean(_why_not_ready(pod, statuses, events))
        result.log_tail = [clean(line) for line in log or []]
    return result


def _why_not_ready(pod: Obj, statuses: list[Obj], events: list[Obj]) -> str:
    meta, st = pod["metadata"], pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "terminating (being replaced or scaled down)"
    if st.get("reason"):  # Evicted, NodeLost, ...
        return f"{st['reason']}: {st.get('message') or 'no message'}"
    if st.get("phase") == "Succeeded":
        return "its containers exited (Succeeded); a server should not"
    if _condition(st, "PodScheduled") == "False":
        message = _last_event(events, "FailedScheduling") or _condition_message(st, "PodScheduled")
        return f"Pending: cannot be scheduled: {_scheduler_words(message)}"
    for cs in statuses:
        if cs.get("ready"):
            continue
        why = _why_container(cs, events)
        if why:
            return why
    if not statuses:
        warning = _last_warning(events)
        return f"Pending: {warning}" if warning else "Pending: waiting for the kubelet to start it"
    return "not Ready yet"


def _why_container(cs: Obj, events: list[Obj]) -> str | None:
    name = cs.get("name")
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    restarts = _int(cs.get("restartCount")) or 0
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason") or ""
    if reason == "CrashLoopBackOff" or (reason in CRASHING and last):
        return _crash_words(name, last, restarts, "CrashLoopBackOff: ")
    if reason in PULLING:
        failed = _last_event(events, "Failed", containing="pull") or waiting.get("message") or ""
        image = cs.get("image") or "its image"
        return f"{reason}: cannot pull image {image}" + (f": {failed}" if failed else "")
    if reason in ("ContainerCreating", "PodInitializing"):
        warning = _last_warning(events)
        return f"{reason}: {warning}" if warning else f"{reason}: starting"
    if reason:
        detail = waiting.get("message") or _last_warning(events)
        return f"{reason}: container {name}" + (f": {detail}" if detail else "")
    terminated = state.get("terminated")
    if terminated:
        return _crash_words(name, terminated, restarts, "")
    if "running" in state:
        unhealthy = _last_event(events, "Unhealthy")
        if unhealthy:
            return f"running, not Ready: {unhealthy}"
        if last and last.get("exitCode"):
            return _crash_words(name, last, restarts, "restarting after a crash: ")
        return "running, not Ready yet (loading the model?)"
    return None


def _crash_words(name: Any, terminated: Obj, restarts: int, prefix: str) -> str:
    code, why = terminated.get("exitCode"), terminated.get("reason") or "Error"
    times = f"; restarted {restarts} time{'s' if restarts != 1 else ''}" if restarts else ""
    if why == "OOMKilled":
        return (
            f"{prefix}OOMKilled: container {name} ran out of memory and was killed "
            f"(exit code {code}){times}; raise its memory limit (limitMemory)"
        )
    message = terminated.get("message")
    return f"{prefix}container {name} exited with code {code} ({why}){times}" + (
        f": {message}" if message else ""
    )


def _scheduler_words(message: str) -> str:
    """kube-scheduler's message without its preemption postscript."""
    message = message.split(" preemption:")[0].strip()
    return message.rstrip(".") or "no reason given"


def _status_column(pod: Obj) -> str:
    """What `kubectl get pods` shows as STATUS."""
    st = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    column = st.get("reason") or st.get("phase") or "Pending"
    for cs in st.get("initContainerStatuses") or []:
        state = cs.get("state") or {}
        if (state.get("terminated") or {}).get("exitCode"):
            return "Init:" + (state["terminated"].get("reason") or "Error")
        if (state.get("waiting") or {}).get("reason") not in (None, "PodInitializing"):
            return "Init:" + str(state["waiting"]["reason"])
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            column = state["waiting"]["reason"]
        elif state.get("terminated"):
            t = state["terminated"]
            column = t.get("reason") or f"ExitCode:{t.get('exitCode')}"
    return str(column)


def _condition(status: Obj, kind: str) -> str | None:
    return next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _condition_message(status: Obj, kind: str) -> str:
    return next(
        (
            str(c.get("message") or c.get("reason") or "")
            for c in status.get("conditions") or []
            if c.get("type") == kind
        ),
        "",
    )


def _last_event(events: list[Obj], reason: str, containing: str = "") -> str | None:
    for event in reversed(events):
        message = str(event.get("message") or "")
        if event.get("reason") == reason and containing.lower() in message.lower():
            return message.strip()
    return None


def _last_warning(events: list[Obj]) -> str | None:
    for event in reversed(events):
        if event.get("type") == "Warning":
            return f"{event.get('reason')}: {str(event.get('message') or '').strip()}"
    return None


def _event_time(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("series") or {}).get("lastObservedTime")
        or event["metadata"].get("creationTimestamp")
        or ""
    )


# --- autoscaling --------------------------------------------------------------------------


def autoscaling_status(scaled_object: Obj, hpas: dict[str, Obj], deployment: Obj) -> AutoscalingStatus:
    """What KEDA says about one model: bounds, replicas now and wanted, the metric, and why
    it does not work when it does not (the ScaledObject not Ready, the HPA unable to scale)."""
    spec, st = scaled_object.get("spec") or {}, scaled_object.get("status") or {}
    name = scaled_object["metadata"]["name"]
    hpa_name = st.get("hpaName") or f"keda-hpa-{name}"
    hpa = hpas.get(hpa_name)
    hpa_status = (hpa or {}).get("status") or {}
    trigger = next(iter(spec.get("triggers") or []), None) or {}
    metadata = trigger.get("metadata") or {}
    conditions = {c.get("type"): c for c in st.get("conditions") or []}
    ready = _condition_bool(conditions.get("Ready"))
    result = AutoscalingStatus(
        scaled_object=name,
        min_replicas=_int(spec.get("minReplicaCount"), 0) or 0,
        max_replicas=_int(spec.get("maxReplicaCount"), 100) or 0,
        current=_int(
            hpa_status.get("currentReplicas"), _int((deployment.get("status") or {}).get("replicas"), 0)
        ),
        desired=_int(hpa_status.get("desiredReplicas")),
        ready=ready,
        active=_condition_bool(conditions.get("Active")),
        hpa=hpa_name if hpa else None,
        query=str(metadata["query"]) if metadata.get("query") else None,
        target=str(metadata["threshold"]) if metadata.get("threshold") is not None else None,
        value=_metric_value(hpa_status),
    )
    said = conditions.get("Ready") or {}
    scaling = next((c for c in hpa_status.get("conditions") or [] if c.get("type") == "ScalingActive"), None)
    if ready is False:
        why = said.get("message") or said.get("reason") or "no reason given"
        result.problem = f"ScaledObject {name} is not Ready: {why}"
    elif _condition_bool(scaling) is False and scaling is not None:
        result.problem = (
            f"the HPA {hpa_name} cannot scale: {scaling.get('message') or scaling.get('reason')} "
            "(is Prometheus reachable at the trigger's serverAddress?)"
        )
    elif ready and hpa is None:
        result.problem = f"KEDA reports ScaledObject {name} Ready, but its HPA {hpa_name} does not exist"
    return result


def _condition_bool(condition: Obj | None) -> bool | None:
    status = (condition or {}).get("status")
    return True if status == "True" else False if status == "False" else None


def _metric_value(hpa_status: Obj) -> str | None:
    """The first metric's current value per replica, as a plain number ("2.4" from "2400m")."""
    from vllmctl.catalog.quantity import QuantityError, parse_quantity

    for metric in hpa_status.get("currentMetrics") or []:
        current = (metric.get("external") or metric.get("pods") or metric.get("object") or {}).get("current")
        raw = (current or {}).get("averageValue") or (current or {}).get("value")
        if raw is None:
            continue
        try:
            return f"{float(parse_quantity(str(raw))):g}"
        except QuantityError:
            return str(raw)
    return None


# --- containers, images, Services ---------------------------------------------------------


def _containers(deployment: Obj) -> list[Obj]:
    return list(
        ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    )


def _gpus(containers: list[Obj]) -> tuple[int, str | None]:
    """GPUs per replica: the extended resources named `<vendor>/gpu`, limits before requests."""
    total, resource = 0, None
    for c in containers:
        resources = c.get("resources") or {}
        for kind in ("limits", "requests"):
            found = {k: v for k, v in (resources.get(kind) or {}).items() if str(k).endswith("/gpu")}
            if found:
                for key, value in found.items():
                    total += _int(value) or 0
                    resource = resource or key
                break
    return total, resource


def _engine_ids(container: Obj) -> list[str]:
    """The ids vLLM serves the model under: every --served-model-name, else the model."""
    argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    names = _served_names(argv)
    if names:
        return names
    if "serve" in argv and argv.index("serve") + 1 < len(argv):
        return [argv[argv.index("serve") + 1]]
    return []


def _served_names(argv: list[str]) -> list[str]:
    names: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("--served-model-name="):
            names.extend(arg.split("=", 1)[1].split())
        elif arg == "--served-model-name":
            for value in argv[i + 1 :]:
                if value.startswith("-"):
                    break
                names.extend(value.split())
    return names


def image_tag(image: str | None) -> str | None:
    """`repo/name:tag` -> `tag`; a digest stays a digest; None without either."""
    if not image:
        return None
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def service_info(service: Obj, namespace: str, domain: str = CLUSTER_DOMAIN) -> ServiceInfo:
    spec = service.get("spec") or {}
    name = service["metadata"]["name"]
    dns = f"{name}.{namespace}.svc.{domain}"
    ports = [
        ServicePort(
            name=str(p.get("name") or ""),
            port=_int(p.get("port")) or 0,
            target_port=str(p.get("targetPort", p.get("port"))),
            protocol=str(p.get("protocol") or "TCP"),
        )
        for p in spec.get("ports") or []
    ]
    first = ports[0].port if ports else 80
    url = f"http://{dns}" + ("" if first == 80 else f":{first}")
    return ServiceInfo(name, str(spec.get("type") or "ClusterIP"), spec.get("clusterIP"), dns, url, ports)


# --- endpoints ----------------------------------------------------------------------------


@dataclass
class ApiKeyUse:
    required: bool | None  # the router has VLLM_API_KEY; None: no router to ask
    secret: str
    key: str
    command: str


@dataclass
class EndpointsReport:
    release: str
    namespace: str
    cluster_domain: str
    base_url: str | None
    example_model: str
    router: ServiceInfo | None
    engines: dict[str, ServiceInfo]
    api_key: ApiKeyUse
    examples: dict[str, str]
    notes: list[str] = field(default_factory=list)
    external: list[ExternalAccess] = field(default_factory=list)  # ways in from outside the cluster

    def as_json(self) -> Obj:
        return asdict(self)


def endpoints(settings: Any, kube: Kube, *, domain: str = CLUSTER_DOMAIN) -> EndpointsReport:
    """The release's Services, the base URL clients use, and examples that never hold the key
    (it is read by `$(vllmctl get-api-key)` when they run)."""
    ns, release = settings.namespace, settings.release
    deployments = kube.list("apps/v1", "deployments", ns)
    services = [s for s in kube.list("v1", "services", ns) if _release_service(s, release)]
    by_name = {s["metadata"]["name"]: service_info(s, ns, domain) for s in services}
    router = by_name.pop(router_service_name(release), None)
    prefix, suffix = f"{release}-", "-engine-service"
    engines = {name[len(prefix) : -len(suffix)]: info for name, info in sorted(by_name.items())}
    notes = []
    base = router.url + "/v1" if router else None
    if router is None and engines:
        first = next(iter(engines.values()))
        base = first.url + "/v1"
        notes.append(
            f"release {release} has no router Service; the examples talk to one engine ({first.name})."
        )
    router_deployment = next(
        (d for d in deployments if d["metadata"]["name"] == router_deployment_name(release)), None
    )
    required = None
    if router_deployment is not None:
        env = [e for c in _containers(router_deployment) for e in c.get("env") or []]
        required = any(e.get("name") == "VLLM_API_KEY" for e in env)
        if not required:
            notes.append(
                f"release {release} was deployed without an API key: requests need none "
                "(the Authorization header is ignored)."
            )
    model = _example_model(_engines(deployments, release))
    key = ApiKeyUse(required, API_KEY_SECRET, API_KEY_KEY, "vllmctl get-api-key")
    examples = _examples(base or f"http://{router_service_name(release)}.{ns}.svc.{domain}/v1", model)
    raw_router = next((s for s in services if s["metadata"]["name"] == router_service_name(release)), None)
    external = _external(kube, ns, release, raw_router, notes)
    return EndpointsReport(release, ns, domain, base, model, router, engines, key, examples, notes, external)


def _external(
    kube: Kube, namespace: str, release: str, router: Obj | None, notes: list[str]
) -> list[ExternalAccess]:
    """The router's ways in from outside: its Service's type, and the chart's Ingress (one
    more GET, only when there is a router; an Ingress is made only with it)."""
    from vllmctl.exposure import INGRESS_API, external_access, ingress_name

    if router is None:
        return []
    ingress = None
    try:
        ingress = kube.get(INGRESS_API, "ingresses", namespace, ingress_name(release))
    except VllmctlError as e:
        notes.append(f"could not read the Ingress {ingress_name(release)}: {e.message}")
    return external_access(router, ingress)


def _example_model(engines: dict[str, Obj]) -> str:
    """The first served name of a model with a ready replica (else of any), for the examples."""
    ready_first = sorted(engines, key=lambda n: (not _dig_ready(engines[n]), n))
    for name in ready_first:
        containers = _containers(engines[name])
        ids = _engine_ids(containers[0]) if containers else []
        if ids:
            return ids[0]
    return "MODEL"


def _dig_ready(deployment: Obj) -> bool:
    return bool((deployment.get("status") or {}).get("readyReplicas"))


def _examples(base_url: str, model: str) -> dict[str, str]:
    import json
    import shlex

    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello."}]})
    curl = (
        f"curl -sS {shlex.quote(base_url + '/chat/completions')} \\\n"
        '  -H "Authorization: Bearer $(vllmctl get-api-key)" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}"
    )
    python = (
        '# export OPENAI_API_KEY="$(vllmctl get-api-key)"   (pip install openai)\n'
        "from openai import OpenAI\n"
        "\n"
        f"client = OpenAI(base_url={json.dumps(base_url)})  # the key from OPENAI_API_KEY\n"
        "reply = client.chat.completions.create(\n"
        f"    model={json.dumps(model)},\n"
        '    messages=[{"role": "user", "content": "Say hello."}],\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
    return {"curl": curl, "python": python}


# --- small helpers ------------------------------------------------------------------------


def _redactor(secrets: list[str]) -> Callable[[str], str]:
    values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def clean(text: str) -> str:
        for value in values:
            text = text.replace(value, "[redacted]")
        return text

    return clean


def _int(value: Any, default: int | None = None) -> int | None:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(str(text)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


_HELM_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.\d+)?\s*([+-]\d{4}|Z)?")


def _parse_helm_time(text: str) -> datetime | None:
    """helm list's `2025-11-23 10:00:00.123456789 +0000 UTC`."""
    match = _HELM_TIME.match(text.strip())
    if not match:
        return None
    day, clock, offset = match.groups()
    zone = "+0000" if offset in (None, "Z") else offset
    try:
        return datetime.strptime(f"{day} {clock} {zone}", "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        return None


def _age(when: datetime | None, now: float | None = None) -> str:
    """kubectl's short ages: 42s, 7m, 5h, 3d."""
    if when is None:
        return "?"
    seconds = max(0, int((now if now is not None else time.time()) - when.timestamp()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def pod_reason(pod: Obj, events: list[Obj]) -> str | None:
    """Why one pod is not Ready, in the words of `status` (None when it is Ready): for
    commands that wait for pods (rotate-api-key's restarts)."""
    st = pod.get("status") or {}
    if _condition(st, "Ready") == "True":
        return None
    statuses = [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]
    return _why_not_ready(pod, statuses, sorted(events, key=_event_time))
