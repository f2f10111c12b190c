"""How clients outside the cluster reach the router, read back from the deployed router
Service (its type: a node port, a load balancer's address) and the chart's Ingress (its
hosts, with TLS or not): what `vllmctl endpoints` lists. Apart from `exposure` so that
reading models.yaml, which imports every feature, does not define these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vllmctl.chart.facts import ROUTER_PORT_NAME

Obj = dict[str, Any]


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
