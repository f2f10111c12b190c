"""What `vllmctl endpoints` reports: the release's Services with their DNS names, the base
URL clients in the cluster use, whether the router wants the API key, the ways in from
outside (the router Service's type and the chart's Ingress), and client examples (curl,
the OpenAI client) that never hold the key: `$(vllmctl get-api-key)` reads it when they run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from vllmctl.chart.facts import engine_service_model, router_deployment_name, router_service_name
from vllmctl.chart.inputs import API_KEY_SECRET as API_KEY_REF
from vllmctl.ops.status.cluster import engine_deployments, is_release_service
from vllmctl.ops.status.objects import CLUSTER_DOMAIN, containers_of, engine_ids, service_info
from vllmctl.ops.status.report import Obj, ServiceInfo

if TYPE_CHECKING:
    from vllmctl.cluster.kube import Kube


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
    external: list[Any] = field(default_factory=list)  # ways in from outside (exposure_access.ExternalAccess)

    def as_json(self) -> Obj:
        return asdict(self)


def endpoints(settings: Any, kube: Kube, *, domain: str = CLUSTER_DOMAIN) -> EndpointsReport:
    """The release's Services, the base URL clients use, and examples that never hold the key
    (it is read by `$(vllmctl get-api-key)` when they run)."""
    ns, release = settings.namespace, settings.release
    deployments = kube.list("apps/v1", "deployments", ns)
    services = [s for s in kube.list("v1", "services", ns) if is_release_service(s, release)]
    by_name = {s["metadata"]["name"]: service_info(s, ns, domain) for s in services}
    router = by_name.pop(router_service_name(release), None)
    engines = {str(engine_service_model(release, name)): info for name, info in sorted(by_name.items())}
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
        env = [e for c in containers_of(router_deployment) for e in c.get("env") or []]
        required = any(e.get("name") == "VLLM_API_KEY" for e in env)
        if not required:
            notes.append(
                f"release {release} was deployed without an API key: requests need none "
                "(the Authorization header is ignored)."
            )
    model = _example_model(engine_deployments(deployments, release))
    key = ApiKeyUse(required, API_KEY_REF.secret_name, API_KEY_REF.secret_key, "vllmctl get-api-key")
    examples = _examples(base or f"http://{router_service_name(release)}.{ns}.svc.{domain}/v1", model)
    raw_router = next((s for s in services if s["metadata"]["name"] == router_service_name(release)), None)
    external = _external(kube, ns, release, raw_router, notes)
    return EndpointsReport(release, ns, domain, base, model, router, engines, key, examples, notes, external)


def _external(kube: Kube, namespace: str, release: str, router: Obj | None, notes: list[str]) -> list[Any]:
    """The ways in from outside the cluster, as each chart feature made them (the router
    Service's type and the chart's Ingress); none without a router."""
    from vllmctl.features import registry

    if router is None:
        return []
    return [way for f in registry.FEATURES for way in f.ways_in(kube, namespace, release, router, notes)]


def _example_model(engines: dict[str, Obj]) -> str:
    """The first served name of a model with a ready replica (else of any), for the examples."""
    ready_first = sorted(engines, key=lambda n: (not _dig_ready(engines[n]), n))
    for name in ready_first:
        containers = containers_of(engines[name])
        ids = engine_ids(containers[0]) if containers else []
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
