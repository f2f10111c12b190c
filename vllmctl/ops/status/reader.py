"""What `vllmctl status` reports, gathered with a fixed number of calls: `StatusReader`
runs helm (`helm list`) and the plan check in threads while it reads models.yaml and the
cluster (vllmctl.ops.status.cluster) and asks the router what it serves; `build_report` then
puts it together with no further calls: each workload's replicas, pods and reasons
(vllmctl.ops.status.diagnose), the comparison with models.yaml (vllmctl.ops.status.compare), and
the problems, one line each."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vllmctl.chart.facts import (
    ENGINE_CONTAINER,
    engine_deployment_name,
    engine_service_name,
    router_deployment_name,
    router_service_name,
)
from vllmctl.core.errors import VllmctlError
from vllmctl.core.quantity import as_int
from vllmctl.ops.status.cluster import ClusterState, RouterCheck, ask_router, read_cluster, release_info
from vllmctl.ops.status.compare import PlanCheck, compare, comparison_problems, configured_models, plan_check
from vllmctl.ops.status.diagnose import (
    deployment_problems,
    pod_status,
    redactor,
    rolled_out,
    summarise,
)
from vllmctl.ops.status.objects import (
    containers_of,
    engine_ids,
    gpu_request,
    image_tag,
    parse_timestamp,
    service_info,
    short_age,
)
from vllmctl.ops.status.report import (
    Comparison,
    ModelStatus,
    Obj,
    ReleaseInfo,
    Replicas,
    RouterStatus,
    StatusReport,
)

if TYPE_CHECKING:
    from vllmctl.cluster.helm import Helm
    from vllmctl.cluster.kube import Kube


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
            from vllmctl.cluster.kube import Kube

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
            configured, notes = configured_models(s)
            cluster = read_cluster(kube, s.namespace, s.release)
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
        from vllmctl.ops.deploy import helm_for

        s = self.settings
        try:
            if self._helm is None:
                self._helm = helm_for(s)
            return release_info(self._helm)
        except VllmctlError as e:
            return ReleaseInfo(s.release, s.namespace, installed=None, error=e.message)

    def _plan(self) -> PlanCheck:
        """What `vllmctl plan` would change (used when the release is installed)."""
        from vllmctl.ops.deploy import helm_for

        try:
            if self._plan_helm is None:
                self._plan_helm = helm_for(self.settings)
        except VllmctlError as e:  # said by the release line already
            return PlanCheck(None, e.message)
        return plan_check(self.settings, self._plan_helm)


def _known_secrets(settings: Any) -> list[str]:
    """Values that must never be shown, should a log line hold one."""
    return [v for v in (settings.api_key, settings.hf_token) if v]


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
    clean = redactor(redact or [])
    names = list(configured or {})
    names += sorted(n for n in cluster.engines if n not in (configured or {}))
    models = [_model(name, cluster, configured, clean) for name in names]
    router = _router(cluster, router_check, clean)

    comparison = compare(models, router, configured, plan)
    if plan is not None and configured is not None and plan.note:
        notes = [*notes, plan.note]

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
        from vllmctl.ops.recovery import pending_advice

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
        for key, part in m.features.items():
            if part is not None and part.problem:
                problems.append(f"model {m.name}: {key}: {part.problem}")
    if router.found and not router.ready:
        problems.append("router: " + ("; ".join(router.problems) or "not Ready"))
    if router.found and router.reachable is False:
        problems.append(f"router: not reachable ({router.error})")
    if router.found and router.service is None:
        problems.append(f"router: its Service {router_service_name(release.name)} does not exist")
    problems += comparison_problems(c, installed=release.installed)
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
    _feature_parts(status, name, cluster, deployment)
    if deployment is None:
        if configured is not None and name in configured:
            status.served_names = sorted(configured[name])
        _run_by_feature(status)
        return status
    containers = containers_of(deployment)
    engine = next(
        (c for c in containers if c.get("name") == ENGINE_CONTAINER), containers[0] if containers else {}
    )
    status.gpus_per_replica, status.gpu_resource = gpu_request(containers)
    status.served_names = engine_ids(engine)
    pods = cluster.engine_pods.get(name, [])
    _fill_workload(status, deployment, engine, pods, cluster, clean)
    if status.gpu_resource:
        gpus = f"{status.gpus_per_replica} {status.gpu_resource}"
        for pod in status.pods:
            if pod.reason and f"Insufficient {status.gpu_resource}" in pod.reason:
                pod.reason += f" (each replica asks for {gpus}: free GPUs, add nodes or lower requestGPU)"
        status.problems = summarise(status.pods, deployment_problems(deployment, pods))
    return status


def _feature_parts(status: ModelStatus, name: str, cluster: ClusterState, deployment: Obj | None) -> None:
    """Each chart feature's part of a model's status (None: nothing about it, as for a
    model that is not deployed)."""
    from vllmctl.features import registry

    for feature in registry.FEATURES:
        if feature.status_key is None:
            continue
        reading = cluster.features.get(feature.name)
        known = reading is not None and (deployment is not None or feature.runs_models)
        status.features[feature.status_key] = (
            feature.model_status(reading, name, deployment or {}) if known else None  # type: ignore[arg-type]
        )


def _run_by_feature(status: ModelStatus) -> None:
    """A model without a Deployment that a feature's objects run (a RayCluster): deployed,
    one replica, ready as that feature says (its part's `workload` and `ready`), with the
    GPUs, image and pod phases its part gives (`gpus`, `gpu_resource`, `image`, `phases`)."""
    for part in status.features.values():
        workload = getattr(part, "workload", None)
        if workload:
            ready = bool(getattr(part, "ready", False))
            status.deployed, status.deployment, status.ready = True, str(workload), ready
            status.replicas = Replicas(desired=1, updated=1, ready=int(ready), available=int(ready))
            # The row's other columns, where the part gives them (its pods' GPUs, image, phases).
            status.gpus_per_replica = int(getattr(part, "gpus", 0) or 0)
            status.gpu_resource = getattr(part, "gpu_resource", None)
            status.image = getattr(part, "image", None)
            status.tag = image_tag(status.image)
            status.phases = dict(getattr(part, "phases", None) or {})
            return


def _router_features(status: RouterStatus, deployment: Obj, cluster: ClusterState) -> None:
    """What each chart feature reads from the router Deployment, and from what it read of
    its own beside it (`router_reading`)."""
    from vllmctl.features import registry
    from vllmctl.features.base import overriding

    for feature in overriding(registry.FEATURES, "router_status"):
        status.features.update(feature.router_status(deployment) or {})
    for feature in overriding(registry.FEATURES, "router_reading"):
        reading = cluster.features.get(feature.name)
        if reading is not None:
            status.features.update(feature.router_reading(reading, deployment) or {})


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
    containers = containers_of(d)
    _fill_workload(status, d, containers[0] if containers else {}, cluster.router_pods, cluster, clean)
    _router_features(status, d, cluster)
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
        desired=as_int(spec.get("replicas"), 1) or 0,
        updated=as_int(st.get("updatedReplicas")) or 0,
        ready=as_int(st.get("readyReplicas")) or 0,
        available=as_int(st.get("availableReplicas")) or 0,
    )
    status.ready = rolled_out(deployment)
    status.image = container.get("image")
    status.tag = image_tag(status.image)
    status.age = short_age(parse_timestamp(deployment["metadata"].get("creationTimestamp")))
    status.pods = [
        pod_status(
            p, cluster.events.get(p["metadata"]["name"], []), cluster.logs.get(p["metadata"]["name"]), clean
        )
        for p in sorted(pods, key=lambda p: p["metadata"]["name"])
    ]
    status.restarts = sum(p.restarts for p in status.pods)
    phases: dict[str, int] = {}
    for pod in status.pods:
        phases[pod.status] = phases.get(pod.status, 0) + 1
    status.phases = dict(sorted(phases.items()))
    status.problems = summarise(status.pods, deployment_problems(deployment, pods))
