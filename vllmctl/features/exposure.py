"""How clients outside the cluster reach the router: its Service type and an Ingress.

Release-wide, so settings (VLLM_ROUTER_SERVICE_TYPE, VLLM_ROUTER_NODE_PORT,
VLLM_INGRESS_HOST, VLLM_INGRESS_CLASS, VLLM_INGRESS_TLS_SECRET) rather than models.yaml
fields. `router_values` checks them and gives what `templates/values.yaml.j2` places under
`routerSpec` (serviceType, nodePort, ingress); `external_access` reads the deployed
Service and Ingress back for `vllmctl endpoints`; `check_exposure` is doctor's check.
docs/exposure.md tells the story.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllmctl.chart.facts import ROUTER_PORT_NAME, SINCE, ingress_name
from vllmctl.core.errors import VllmctlError, refuse_problems
from vllmctl.core.setting_names import (
    ENV_INGRESS_CLASS,
    ENV_INGRESS_HOST,
    ENV_INGRESS_TLS_SECRET,
    ENV_ROUTER_NODE_PORT,
    ENV_ROUTER_SERVICE_TYPE,
)
from vllmctl.features.base import Contribution, DoctorContext, Feature, ReleaseValues

if TYPE_CHECKING:
    from vllmctl.chart.inputs import RenderInput
    from vllmctl.core.findings import Report

Obj = dict[str, Any]

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
NODE_PORT_SINCE = SINCE["routerSpec.nodePort"]
DEFAULT_NODE_PORTS = range(30000, 32768)  # the API server's default --service-node-port-range
INGRESS_API = "networking.k8s.io/v1"
# A DNS-1123 subdomain, as Kubernetes checks Ingress hosts and object names.
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SUBDOMAIN_MAX = 253
_LABEL_MAX = 63


@dataclass
class Exposure:
    """What the values get under routerSpec, and what the operator should know."""

    service_type: str
    node_port: int | None
    ingress: Obj | None  # routerSpec.ingress, or None: no Ingress
    warnings: list[str]


def router_values(given: RenderInput, chart: tuple[int, ...] | None) -> Exposure:
    """Check the exposure settings of `given` (raw texts; None or "" when unset) and build
    the router's values. Every problem is reported at once."""
    problems: list[str] = []
    warnings: list[str] = []
    router_enabled = given.router_enabled
    service_type = _service_type(given.router_service_type, problems)
    node_port = _node_port(
        given.router_node_port, service_type, given.chart_version, chart, problems, warnings
    )
    host = _text(given.ingress_host)
    klass = _text(given.ingress_class)
    tls = _text(given.ingress_tls_secret)
    if host:
        _check_host(host, problems)
    if klass:
        _check_name("VLLM_INGRESS_CLASS", klass, "an IngressClass name", problems)
        if not host:
            problems.append(
                "VLLM_INGRESS_CLASS is set but VLLM_INGRESS_HOST is not: vllmctl makes the Ingress "
                "only for a host name. Set VLLM_INGRESS_HOST, or unset VLLM_INGRESS_CLASS."
            )
    if tls:
        _check_name("VLLM_INGRESS_TLS_SECRET", tls, "a Secret name", problems)
        if not host:
            problems.append(
                "VLLM_INGRESS_TLS_SECRET is set but VLLM_INGRESS_HOST is not: a certificate is "
                "for a host name. Set VLLM_INGRESS_HOST (the name the certificate covers)."
            )
    if not router_enabled and (host or service_type != "ClusterIP"):
        what = "VLLM_INGRESS_HOST" if host else f"VLLM_ROUTER_SERVICE_TYPE={service_type}"
        problems.append(
            f"{what} exposes the router, but VLLM_ROUTER_ENABLED is false (the chart then makes "
            "no router Service and no Ingress). Enable the router, or unset it."
        )
    refuse_problems(problems, "the router's exposure settings")
    ingress: Obj | None = None
    if host:
        ingress = {"enabled": True}
        if klass:
            ingress["className"] = klass
        ingress["hosts"] = [{"host": host, "paths": [{"path": "/", "pathType": "Prefix"}]}]
        if tls:
            ingress["tls"] = [{"secretName": tls, "hosts": [host]}]
    return Exposure(service_type, node_port, ingress, warnings)


def _text(raw: Any) -> str:
    return str(raw).strip() if raw is not None else ""


def _service_type(raw: Any, problems: list[str]) -> str:
    text = _text(raw) or "ClusterIP"
    for known in SERVICE_TYPES:
        if text.lower() == known.lower():
            return known
    problems.append(
        f"VLLM_ROUTER_SERVICE_TYPE={text!r} is not a Service type vllmctl can expose the router "
        f"with; use one of {', '.join(SERVICE_TYPES)}."
    )
    return "ClusterIP"


def _node_port(
    raw: Any,
    service_type: str,
    chart_text: str,
    chart: tuple[int, ...] | None,
    problems: list[str],
    warnings: list[str],
) -> int | None:
    text = _text(raw)
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        problems.append(
            f"VLLM_ROUTER_NODE_PORT={text!r} is not a port number (1-65535, usually 30000-32767)."
        )
        return None
    port = int(text)
    if service_type != "NodePort":
        problems.append(
            f"VLLM_ROUTER_NODE_PORT is set but VLLM_ROUTER_SERVICE_TYPE is {service_type}: the chart "
            "sets the node port only on a NodePort Service. Set VLLM_ROUTER_SERVICE_TYPE=NodePort, "
            "or unset VLLM_ROUTER_NODE_PORT."
        )
    if chart is not None and chart < NODE_PORT_SINCE:
        problems.append(
            f"VLLM_ROUTER_NODE_PORT needs chart 0.1.11 or newer (older charts have no "
            f"routerSpec.nodePort and would ignore it); VLLM_CHART_VERSION is {chart_text}. Raise "
            "the chart version, or unset VLLM_ROUTER_NODE_PORT and let Kubernetes choose the port "
            "(`vllmctl endpoints` shows it)."
        )
    if port not in DEFAULT_NODE_PORTS:
        warnings.append(
            f"VLLM_ROUTER_NODE_PORT={port} is outside Kubernetes' default node port range "
            "(30000-32767): the API server refuses it unless the cluster's "
            "--service-node-port-range includes it."
        )
    return port


def _check_host(host: str, problems: list[str]) -> None:
    import ipaddress

    where = f"VLLM_INGRESS_HOST={host!r}"
    if "://" in host:
        bare = host.split("://", 1)[1].split("/", 1)[0]
        problems.append(
            f"{where} holds a scheme; give the host name only (VLLM_INGRESS_HOST={bare}). "
            "https comes from VLLM_INGRESS_TLS_SECRET."
        )
        return
    if "/" in host:
        problems.append(f"{where} holds a path; give the host name only (the Ingress serves every path).")
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        problems.append(
            f"{where} is an IP address; Kubernetes accepts only DNS names as Ingress hosts. Use "
            "a name that resolves to the ingress controller, or VLLM_ROUTER_SERVICE_TYPE=LoadBalancer."
        )
        return
    if ":" in host:
        problems.append(
            f"{where} holds a port; give the host name only (the ingress controller's ports apply)."
        )
        return
    if host.startswith("*."):
        problems.append(
            f"{where} is a wildcard: it has no single address for clients. Give the host name "
            "clients use (e.g. vllm.example.com)."
        )
        return
    if host != host.lower():
        problems.append(f"{where} has upper-case letters; host names are lower case ({host.lower()}).")
        return
    _check_name("VLLM_INGRESS_HOST", host, "a DNS name (letters, digits, '-' and '.')", problems)


def _check_name(env: str, value: str, what: str, problems: list[str]) -> None:
    """A DNS-1123 subdomain, as the API server checks host names and object names."""
    if len(value) > _SUBDOMAIN_MAX:
        problems.append(f"{env} is {len(value)} characters long; {what} has at most {_SUBDOMAIN_MAX}.")
    elif not _SUBDOMAIN.fullmatch(value):
        problems.append(
            f"{env}={value!r} is not {what}: lower-case letters, digits, '-' and '.', starting "
            "and ending with a letter or digit (Kubernetes' DNS-1123 rule)."
        )
    elif any(len(label) > _LABEL_MAX for label in value.split(".")):
        problems.append(f"{env}={value!r} has a part longer than {_LABEL_MAX} characters (a DNS limit).")


# --- reading it back ------------------------------------------------------------------------


@dataclass
class ExternalAccess:
    """One way in from outside the cluster, as deployed."""

    kind: str  # "Ingress", "LoadBalancer" or "NodePort"
    name: str  # the Ingress or Service
    url: str | None  # the base URL (.../v1) clients use; None until it is known
    state: str  # "ready", or "pending" while the cluster has not given an address yet
    address: str | None = None  # the load balancer's (or ingress controller's) IP or host name
    node_port: int | None = None  # NodePort: the port open on every node
    detail: str = ""


def external_access(router_service: Obj | None, ingress: Obj | None) -> list[ExternalAccess]:
    """The router's ways in from outside: the Ingress (per host), then its Service when it
    is a NodePort or LoadBalancer one."""
    found = _ingress_access(ingress) if ingress is not None else []
    access = _service_access(router_service) if router_service is not None else None
    return [*found, access] if access is not None else found


def _lb_address(obj: Obj) -> str | None:
    for entry in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        address = entry.get("ip") or entry.get("hostname")
        if address:
            return str(address)
    return None


def _router_port(service: Obj) -> Obj:
    ports = (service.get("spec") or {}).get("ports") or []
    return next((p for p in ports if p.get("name") == ROUTER_PORT_NAME), ports[0] if ports else {})


def _service_access(service: Obj) -> ExternalAccess | None:
    spec = service.get("spec") or {}
    kind = str(spec.get("type") or "ClusterIP")
    name = str(service["metadata"]["name"])
    port = _router_port(service)
    if kind == "LoadBalancer":
        address = _lb_address(service)
        if address is None:
            return ExternalAccess(
                kind,
                name,
                None,
                "pending",
                detail="no external address yet: the cluster's load balancer controller sets it",
            )
        number = int(port.get("port") or 80)
        host = f"[{address}]" if ":" in address else address
        url = f"http://{host}" + ("" if number == 80 else f":{number}") + "/v1"
        return ExternalAccess(kind, name, url, "ready", address=address)
    if kind == "NodePort":
        node_port = port.get("nodePort")
        if not node_port:
            return ExternalAccess(kind, name, None, "pending", detail="no node port allocated yet")
        detail = f"port {node_port} on every node: http://<node address>:{node_port}/v1"
        return ExternalAccess(kind, name, None, "ready", node_port=int(node_port), detail=detail)
    return None


def _ingress_access(ingress: Obj) -> list[ExternalAccess]:
    spec = ingress.get("spec") or {}
    name = str(ingress["metadata"]["name"])
    tls_hosts = {str(h) for t in spec.get("tls") or [] for h in t.get("hosts") or []}
    address = _lb_address(ingress)
    klass = spec.get("ingressClassName")
    found = []
    for rule in spec.get("rules") or []:
        host = rule.get("host")
        if not host:
            continue
        secure = host in tls_hosts
        url = f"{'https' if secure else 'http'}://{host}/v1"
        said = [f"class {klass}" if klass else "the cluster's default IngressClass"]
        said.append("TLS" if secure else "no TLS")
        said.append(f"address {address}" if address else "no address yet: the ingress controller sets it")
        found.append(
            ExternalAccess(
                "Ingress",
                name,
                url,
                "ready" if address else "pending",
                address=address,
                detail=", ".join(said),
            )
        )
    return found


# --- doctor -----------------------------------------------------------------------------

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


def check_exposure(report: Report, kube: Any, settings: Any) -> None:
    """doctor: the settings themselves, and that the IngressClass and the TLS Secret an
    Ingress names exist (else it is created and silently serves nothing, or serves without
    the certificate)."""
    from vllmctl.chart.facts import version_tuple
    from vllmctl.chart.inputs import default_render_input
    from vllmctl.core.findings import FAIL, OK, WARN

    given = default_render_input(settings)
    try:
        exposure = router_values(given, version_tuple(settings.chart_version))
    except VllmctlError as e:
        report.add("cluster", "exposure", FAIL, e.message, "fix the VLLM_ROUTER_* / VLLM_INGRESS_* settings")
        return
    for warning in exposure.warnings:
        report.add("cluster", "exposure", WARN, warning)
    if exposure.ingress is None:
        report.add("cluster", "exposure", OK, f"router Service {exposure.service_type}, no Ingress")
        return
    host = exposure.ingress["hosts"][0]["host"]
    try:
        classes = kube.list("networking.k8s.io/v1", "ingressclasses", None)
        tls = exposure.ingress.get("tls") or []
        secret = tls[0]["secretName"] if tls else None
        found_secret = kube.get("v1", "secrets", settings.namespace, secret) if secret else None
    except VllmctlError as e:
        report.add("cluster", "exposure", WARN, f"Ingress for {host}: could not check its class: {e.message}")
        return
    names = [str((c.get("metadata") or {}).get("name")) for c in classes]
    wanted = exposure.ingress.get("className")
    defaults = [
        n
        for n, c in zip(names, classes, strict=True)
        if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
    ]
    if wanted and wanted not in names:
        shown = ", ".join(names) or "none"
        report.add(
            "cluster",
            "exposure",
            FAIL,
            f"the Ingress for {host} names IngressClass {wanted}, which the cluster does not have "
            f"(it has: {shown}); no controller would serve it",
            "set VLLM_INGRESS_CLASS to one of those, or install that ingress controller",
        )
    elif not wanted and not defaults:
        report.add(
            "cluster",
            "exposure",
            WARN,
            f"the Ingress for {host} names no class and the cluster has no default IngressClass",
            "set VLLM_INGRESS_CLASS (`kubectl get ingressclass` lists them)",
        )
    elif secret and found_secret is None:
        report.add(
            "cluster",
            "exposure",
            WARN,
            f"the Ingress for {host} uses TLS Secret {secret}, which is not in {settings.namespace} yet; "
            "the controller serves its default certificate until it is",
            f"create it (e.g. with cert-manager) in namespace {settings.namespace}",
        )
    else:
        scheme = "https" if secret else "http"
        report.add("cluster", "exposure", OK, f"Ingress {scheme}://{host}/v1 (class {wanted or defaults[0]})")


# --- the feature ----------------------------------------------------------------------------


class RouterExposure(Feature):
    name = "exposure"
    settings = (
        ENV_ROUTER_SERVICE_TYPE,
        ENV_ROUTER_NODE_PORT,
        ENV_INGRESS_HOST,
        ENV_INGRESS_CLASS,
        ENV_INGRESS_TLS_SECRET,
    )

    def release_values(self, release: ReleaseValues) -> Contribution:
        exposure = router_values(release.given, release.chart.version)
        service_type = exposure.service_type
        return Contribution(
            context={
                "router": {
                    "service_type": service_type,
                    "node_port": exposure.node_port,
                    "ingress": exposure.ingress,
                }
            },
            placed={
                "routerSpec.serviceType": service_type if service_type != "ClusterIP" else None,
                "routerSpec.nodePort": exposure.node_port,
                "routerSpec.ingress": exposure.ingress,
            },
            warnings=exposure.warnings,
        )

    def doctor(self, report: Report, context: DoctorContext) -> None:
        if context.kube is not None and context.chart_decided:
            check_exposure(report, context.kube, context.settings)

    def ways_in(
        self, kube: Any, namespace: str, release: str, router_service: Obj, notes: list[str]
    ) -> list[Any]:
        """The router Service's type, and the chart's Ingress (one GET; the chart makes it only
        with a router)."""
        ingress = None
        try:
            ingress = kube.get(INGRESS_API, "ingresses", namespace, ingress_name(release))
        except VllmctlError as e:
            notes.append(f"could not read the Ingress {ingress_name(release)}: {e.message}")
        return list(external_access(router_service, ingress))


FEATURE = RouterExposure()
