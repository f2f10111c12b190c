"""The status report's shape: plain dataclasses, so `-o json` (`as_json()`) holds the same
facts as the table. Built by vllmctl.ops.status.reader, read by cli/status.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Obj = dict[str, Any]


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
    # each chart feature's part (autoscaling: the ScaledObject that scales it), by its
    # status_key; None where the feature has nothing to say about this model
    features: dict[str, Any] = field(default_factory=dict)
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
    # what chart features read from the router Deployment (routing: the logic in force), by label
    features: dict[str, Any] = field(default_factory=dict)


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
        """The report as `-o json` prints it; each model's feature parts sit beside its
        other keys (after served_names), under each feature's own key."""
        shown = asdict(self)
        for model in shown["models"]:
            parts = model.pop("features")
            keys = list(model)
            at = keys.index("served_names") + 1
            ordered = {k: model[k] for k in keys[:at]} | parts | {k: model[k] for k in keys[at:]}
            model.clear()
            model.update(ordered)
        return shown
