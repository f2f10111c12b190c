"""How clients outside the cluster reach the router: its Service type and an Ingress.

Release-wide, so settings (VLLM_ROUTER_SERVICE_TYPE, VLLM_ROUTER_NODE_PORT,
VLLM_INGRESS_HOST, VLLM_INGRESS_CLASS, VLLM_INGRESS_TLS_SECRET) rather than models.yaml
fields. `router_values` checks them and gives what `templates/values.yaml.j2` places under
`routerSpec` (serviceType, nodePort, ingress); `check_exposure` is doctor's check. Reading
the deployed Service and Ingress back for `vllmctl endpoints` is `exposure_access`'s job.
docs/exposure.md tells the story.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import SINCE
from vllmctl.core.errors import VllmctlError, refuse_problems
from vllmctl.core.setting_names import (
    SUBDOMAIN_MAX,
    SUBDOMAIN_RE,
)

if TYPE_CHECKING:
    from vllmctl.chart.inputs import RenderInput
    from vllmctl.core.findings import Report

Obj = dict[str, Any]

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
NODE_PORT_SINCE = SINCE["routerSpec.nodePort"]
DEFAULT_NODE_PORTS = range(30000, 32768)  # the API server's default --service-node-port-range
# A DNS-1123 subdomain, as Kubernetes checks Ingress hosts and object names.
_LABEL_MAX = 63


class Exposure(NamedTuple):
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
    if len(value) > SUBDOMAIN_MAX:
        problems.append(f"{env} is {len(value)} characters long; {what} has at most {SUBDOMAIN_MAX}.")
    elif not SUBDOMAIN_RE.fullmatch(value):
        problems.append(
            f"{env}={value!r} is not {what}: lower-case letters, digits, '-' and '.', starting "
            "and ending with a letter or digit (Kubernetes' DNS-1123 rule)."
        )
    elif any(len(label) > _LABEL_MAX for label in value.split(".")):
        problems.append(f"{env}={value!r} has a part longer than {_LABEL_MAX} characters (a DNS limit).")


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
