"""Network policy: the engines answer only this release's router, the router only the
namespaces the operator names.

Release-wide, so settings (VLLM_NETWORK_POLICY, VLLM_NETWORK_POLICY_NAMESPACES,
VLLM_NETWORK_POLICY_INGRESS_NAMESPACE, VLLM_NETWORK_POLICY_PROMETHEUS_NAMESPACE, or an
environment's `networkPolicy:` in vllmctl.yaml). The chart has no NetworkPolicy template;
`objects` builds two NetworkPolicies that `templates/values.yaml.j2` places in the chart's
top-level `extraObjects` (chart 0.1.10+; older charts would ignore it, so they are refused).
Both are of type Ingress only: egress (the Hub, S3, DNS, the API server) stays open.
docs/network-policy.md tells what is allowed and what is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import ENGINE_PORT, RELEASE_LABEL, ROUTER_PORT
from vllmctl.chart.facts import SINCE as _SINCE
from vllmctl.core.errors import UsageError, VllmctlError, refuse_problems
from vllmctl.core.setting_names import ENV_NETWORK_POLICY as ENV_ON
from vllmctl.core.setting_names import ENV_NETWORK_POLICY_INGRESS_NAMESPACE as ENV_INGRESS
from vllmctl.core.setting_names import ENV_NETWORK_POLICY_NAMESPACES as ENV_NAMESPACES
from vllmctl.core.setting_names import ENV_NETWORK_POLICY_PROMETHEUS_NAMESPACE as ENV_PROMETHEUS
from vllmctl.core.setting_names import namespace_problem
from vllmctl.features.multinode_values import stages as pipeline_stages

if TYPE_CHECKING:
    from vllmctl.chart.inputs import DeployedLabels, RenderInput
    from vllmctl.core.findings import Report

Obj = dict[str, Any]

SINCE = _SINCE["extraObjects"]
API_VERSION = "networking.k8s.io/v1"
# The ports the pods listen on: the chart's containerPort defaults, which vllmctl never
# changes. A policy names the pod's port, not the Service's (80).
# Set by the API server on every namespace (Kubernetes 1.21+), so no labelling is needed.
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
# The chart puts this on every engine pod (Ray's too), in every version, and on no router pod.
ENGINE_RELEASE_LABEL = RELEASE_LABEL
MANAGED_BY = "vllmctl.io/managed-by"
DEFAULT_PROMETHEUS_NAMESPACE = "monitoring"
# Models whose engines talk to each other: Ray's head and workers, LMCache's KV transfer.
ENGINE_TO_ENGINE_KEYS = ("raySpec", "lmcacheConfig", "kvCache")


def engines_policy_name(release: str) -> str:
    """The NetworkPolicy on the engine pods."""
    return f"{release}-engines-from-router"


def router_policy_name(release: str) -> str:
    """The NetworkPolicy on the router pods."""
    return f"{release}-router-from-allowed"


class NetworkPolicies(NamedTuple):
    """What the values get: the two objects for `extraObjects` (None: off), and warnings."""

    objects: list[Obj] | None
    warnings: list[str]


def parse_namespaces(raw: str | None) -> list[str] | None:
    """`ns1, ns2` -> ["ns1", "ns2"]; "" -> [] (only the release's own namespace); None: unset."""
    if raw is None:
        return None
    if not raw.strip():
        return []
    return [part.strip() for part in raw.split(",")]


def _check(env: str, name: str, problems: list[str]) -> bool:
    problem = namespace_problem(name)
    if problem:
        problems.append(f"{env}: {problem}.")
    return problem is None


def objects(
    given: RenderInput, chart: tuple[int, ...] | None, labels: DeployedLabels, entries: list[Obj]
) -> NetworkPolicies:
    """Check the network policy settings of `given` and build the two NetworkPolicies.
    Every problem is reported at once."""
    if not given.network_policy:
        return NetworkPolicies(None, [])
    problems: list[str] = []
    warnings: list[str] = []
    if chart is not None and chart < SINCE:
        problems.append(
            f"{ENV_ON} needs chart 0.1.10 or newer (the policies reach the cluster through the "
            "chart's extraObjects, which older charts do not have and would ignore); "
            f"VLLM_CHART_VERSION is {given.chart_version}. Raise the chart version, or set {ENV_ON}=false."
        )
    allowed = parse_namespaces(given.network_policy_namespaces)
    if allowed is None:
        problems.append(
            f"{ENV_ON} is on but {ENV_NAMESPACES} is not set: list the namespaces whose pods may call "
            f"the router (e.g. {ENV_NAMESPACES}=apps,batch), or set it empty ({ENV_NAMESPACES}=) to "
            "admit only the release's own namespace."
        )
        allowed = []
    for name in allowed:
        _check(ENV_NAMESPACES, name, problems)
    sources = [given.namespace, *allowed]
    ingress_namespace = _text(given.network_policy_ingress_namespace)
    if _text(given.ingress_host):
        if not ingress_namespace:
            problems.append(
                f"VLLM_INGRESS_HOST makes an Ingress, and {ENV_ON} admits to the router only the "
                f"namespaces it is told: set {ENV_INGRESS} to the namespace your ingress controller "
                "runs in (e.g. ingress-nginx), or the Ingress could not reach the router."
            )
        elif _check(ENV_INGRESS, ingress_namespace, problems):
            sources.append(ingress_namespace)
    prometheus = _text(given.network_policy_prometheus_namespace) or DEFAULT_PROMETHEUS_NAMESPACE
    if given.monitoring and _check(ENV_PROMETHEUS, prometheus, problems):
        sources.append(prometheus)
    if not given.router_enabled:
        problems.append(
            f"{ENV_ON} admits traffic to the engines only from the router, but VLLM_ROUTER_ENABLED "
            f"is false: nothing could reach them. Enable the router, or set {ENV_ON}=false."
        )
    refuse_problems(problems, "the network policy settings")
    service_type = _text(given.router_service_type) or "ClusterIP"
    if service_type.lower() in ("nodeport", "loadbalancer"):
        warnings.append(
            f"VLLM_ROUTER_SERVICE_TYPE={service_type}: the router's network policy admits pods of "
            f"the namespaces in {ENV_NAMESPACES} only, so most network plugins refuse clients "
            "outside the cluster; add a policy for their addresses (docs/network-policy.md)."
        )
    release = given.release
    router = router_selector(release, labels.router)
    engines = engines_selector(release)
    port = [{"protocol": "TCP", "port": ENGINE_PORT}]
    engine_rules: list[Obj] = [{"from": [{"podSelector": router}], "ports": port}]
    if given.monitoring:
        engine_rules.append({"from": [_namespaces([prometheus])], "ports": port})
    if any(key in entry for entry in entries for key in ENGINE_TO_ENGINE_KEYS) or any(
        pipeline_stages(entry)
        for entry in entries  # a multi-node model: vllmctl writes its raySpec
    ):
        # Ray's head and workers and LMCache's KV transfer use ports of their own.
        engine_rules.append({"from": [{"podSelector": engines}]})
    router_rules: list[Obj] = [
        {"from": [_namespaces(sources)], "ports": [{"protocol": "TCP", "port": ROUTER_PORT}]}
    ]
    if _text(given.routing_logic) == "kvaware":
        # kvaware (docs/kv-cache.md): the engines' LMCache workers report to the controller in
        # the router, which asks them back on their worker ports (one per tensor-parallel rank).
        from vllmctl.chart.facts import (
            LMCACHE_CONTROLLER_PORT,
            LMCACHE_CONTROLLER_REPLY_PORT,
            LMCACHE_WORKER_PORT,
        )

        ranks = max(int((e.get("vllmConfig") or {}).get("tensorParallelSize") or 1) for e in entries or [{}])
        workers = [{"protocol": "TCP", "port": LMCACHE_WORKER_PORT + rank} for rank in range(ranks)]
        engine_rules.append({"from": [{"podSelector": router}], "ports": workers})
        controller = [LMCACHE_CONTROLLER_PORT, LMCACHE_CONTROLLER_REPLY_PORT]
        router_rules.append(
            {
                "from": [{"podSelector": engines}],
                "ports": [{"protocol": "TCP", "port": p} for p in controller],
            }
        )
    policies = [
        _policy(engines_policy_name(release), given, engines, engine_rules),
        _policy(router_policy_name(release), given, router, router_rules),
    ]
    import json

    if "{{" in json.dumps(policies):  # the chart renders extraObjects through `tpl`
        raise UsageError("the network policy's objects would hold '{{', which helm takes for a template.")
    return NetworkPolicies(policies, warnings)


def engines_selector(release: str) -> Obj:
    """The release's engine pods."""
    return {"matchLabels": {ENGINE_RELEASE_LABEL: release}}


def router_selector(release: str, router_labels: dict[str, str] | None) -> Obj:
    """The release's router pods.

    vllmctl gives engines and router the same release label, so the engines (which carry
    helm-release-name) are left out by an expression. A release deployed with other labels
    keeps them (Deployment selectors are immutable), and the chart's defaults are the same
    in every release, so then the chart's own router labels (0.1.10+) say which release.
    """
    from vllmctl.chart.inputs import RELEASE_LABEL

    if (router_labels or {}).get(RELEASE_LABEL) == release:
        return {
            "matchLabels": {RELEASE_LABEL: release},
            "matchExpressions": [{"key": ENGINE_RELEASE_LABEL, "operator": "DoesNotExist"}],
        }
    return {"matchLabels": {"app.kubernetes.io/instance": release, "app.kubernetes.io/component": "router"}}


def _namespaces(names: list[str]) -> Obj:
    unique = list(dict.fromkeys(names))
    if len(unique) == 1:
        return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: unique[0]}}}
    return {
        "namespaceSelector": {
            "matchExpressions": [{"key": NAMESPACE_LABEL, "operator": "In", "values": unique}]
        }
    }


def _policy(name: str, given: RenderInput, selector: Obj, rules: list[Obj]) -> Obj:
    from vllmctl.chart.inputs import RELEASE_LABEL

    return {
        "apiVersion": API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": given.namespace,
            "labels": {MANAGED_BY: "vllmctl", RELEASE_LABEL: given.release},
        },
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": rules},
    }


def _text(raw: Any) -> str:
    return str(raw).strip() if raw is not None else ""


# --- doctor -------------------------------------------------------------------------------

# DaemonSets of network plugins that enforce NetworkPolicy, by name (any namespace).
ENFORCING_CNIS = {
    "calico-node": "Calico",
    "canal": "Canal (Calico's policy engine)",
    "cilium": "Cilium",
    "anetd": "GKE Dataplane V2 (Cilium)",
    "antrea-agent": "Antrea",
    "kube-router": "kube-router",
    "weave-net": "Weave Net",
    "azure-npm": "Azure Network Policy Manager",
}
# Plugins that do not enforce it on their own.
NON_ENFORCING_CNIS = {"kube-flannel-ds": "flannel", "kube-flannel": "flannel"}
CNI_NAMESPACES = ("kube-system", "calico-system")


def refusal(settings: Any) -> str | None:
    """Why the network policy settings would be refused when rendering, or None."""
    from vllmctl.chart.facts import version_tuple
    from vllmctl.chart.inputs import DeployedLabels, default_render_input

    given = default_render_input(settings)
    try:
        objects(given, version_tuple(str(settings.chart_version)), DeployedLabels(None, None), [])
    except VllmctlError as e:
        return " ".join([e.message, *e.details])
    return None


def find_cnis(kube: Any) -> tuple[list[str], list[str]]:
    """The network plugins found by their DaemonSets in kube-system and calico-system:
    (those that enforce NetworkPolicy, those that do not). A hint, not proof: plugins are
    named freely, and managed clusters turn enforcement on and off outside the cluster."""
    enforcing: list[str] = []
    other: list[str] = []
    for namespace in CNI_NAMESPACES:
        for daemonset in kube.list("apps/v1", "daemonsets", namespace):
            name = str((daemonset.get("metadata") or {}).get("name") or "")
            if name in ENFORCING_CNIS:
                enforcing.append(f"{ENFORCING_CNIS[name]} ({namespace}/{name})")
            elif name in NON_ENFORCING_CNIS:
                other.append(f"{NON_ENFORCING_CNIS[name]} ({namespace}/{name})")
    return enforcing, other


def check_network_policy(report: Report, kube: Any, settings: Any) -> None:
    """With VLLM_NETWORK_POLICY on: whether the settings render, and a hint on whether the
    cluster enforces NetworkPolicy. That cannot be detected reliably (the API server stores
    policies whether or not a network plugin applies them), so the plugins' DaemonSets by
    their usual names are the evidence, and the detail says it is a hint."""
    from vllmctl.core.findings import FAIL, OK, WARN

    name = "network policy"
    if not settings.network_policy:
        if settings.network_policy_namespaces is not None:
            report.add(
                "cluster",
                name,
                WARN,
                f"{ENV_NAMESPACES} is set but {ENV_ON} is off: no NetworkPolicy is made",
                f"set {ENV_ON}=true, or unset {ENV_NAMESPACES}",
            )
        return
    refused = refusal(settings)
    if refused:
        report.add("cluster", name, FAIL, refused, "fix the settings named (docs/network-policy.md)")
        return
    looked = f"DaemonSets in {' and '.join(CNI_NAMESPACES)}"
    try:
        enforcing, other = find_cnis(kube)
    except VllmctlError as e:
        report.add(
            "cluster",
            name,
            WARN,
            f"could not list {looked} to see the network plugin ({e.message}); the NetworkPolicies "
            "work only with a plugin that enforces them",
            "check that your cluster's network plugin implements NetworkPolicy (docs/network-policy.md)",
        )
        return
    if enforcing:
        report.add(
            "cluster",
            name,
            OK,
            f"found {', '.join(enforcing)}, a network plugin that enforces NetworkPolicy (a hint "
            "from its DaemonSet: whether it enforces here cannot be checked from the API)",
        )
    elif other:
        report.add(
            "cluster",
            name,
            WARN,
            f"found {', '.join(other)}, which does not enforce NetworkPolicy: the policies would be "
            "stored but not applied",
            "add a plugin that enforces NetworkPolicy (e.g. Calico beside flannel, as Canal)",
        )
    else:
        report.add(
            "cluster",
            name,
            WARN,
            f"no known network plugin among the {looked} ({', '.join(sorted(ENFORCING_CNIS))}); "
            "without one that enforces NetworkPolicy the policies are stored but not applied, and "
            "vllmctl cannot detect enforcement reliably",
            "check that your cluster's network plugin implements NetworkPolicy (managed clusters "
            "often need it switched on)",
        )
