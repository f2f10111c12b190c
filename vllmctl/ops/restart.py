"""Restarting a release's Deployments (rotate-api-key): whether the new pods can be placed
before anything changes, and following the rollout with the reason a pod waits, in the
words `status` uses. Nothing here talks to the user; `notify` is how progress is said."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vllmctl.core.errors import ExternalError
from vllmctl.ops.gpufit import FitReport, ReplicaNeed, check_fit, pod_gpus, read_nodes

Obj = dict[str, Any]
REPORT_EVERY = 5.0  # seconds between looks at the pods that are not Ready yet


def deployment_needs(deployments: Sequence[Obj]) -> tuple[list[ReplicaNeed], dict[str, int]]:
    """What each Deployment's pods ask for (its pod template, as it runs now), and those
    whose restart starts a new pod before an old one stops, with their ready replicas."""
    needs: list[ReplicaNeed] = []
    rolling: dict[str, int] = {}
    for deployment in deployments:
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        pod_spec = template.get("spec") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        name = str(labels.get("model") or deployment["metadata"]["name"])
        replicas = int(spec.get("replicas", 1) or 0)
        required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or {}
        terms = tuple(required.get("nodeSelectorTerms") or ()) or None
        needs.append(
            ReplicaNeed(
                model=name,
                replicas=replicas,
                per_replica=pod_gpus(template),
                tolerations=tuple(pod_spec.get("tolerations") or ()),
                node_terms=terms,
                terms_from="affinity",
                node_name=pod_spec.get("nodeName") or None,
            )
        )
        if surges(spec, replicas):
            rolling[name] = int((deployment.get("status") or {}).get("readyReplicas", 0) or 0)
    return needs, rolling


def surges(spec: Mapping[str, Any], replicas: int) -> bool:
    """Whether a restart must place a new pod while every old one still holds its GPUs: a
    RollingUpdate whose maxUnavailable comes to 0 pods (the deployment controller rounds a
    percentage down; 25% of 1 is 0). Recreate stops the old pods first."""
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return False
    rolling = strategy.get("rollingUpdate") or {}
    unavailable = _pods(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    surge = _pods(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    if unavailable == 0 and surge == 0:
        unavailable = 1  # the controller's own rule when both come to 0
    return unavailable == 0


def _pods(value: Any, replicas: int, *, round_up: bool) -> int:
    text = str(value)
    if text.endswith("%"):
        share = float(text[:-1]) * replicas / 100
        return int(-(-share // 1)) if round_up else int(share)
    return int(text)


def restart_fit(
    kube: Any, namespace: str, release: str, deployments: Sequence[Obj], staying: Sequence[str] = ()
) -> FitReport:
    """Can every restarted pod be placed: each replica on a node (this release's pods are
    replaced), and, for rolling restarts, the first new pod beside the running ones?
    `staying`: models of the release that are not restarted, whose pods keep their GPUs."""
    nodes = read_nodes(kube, namespace=namespace, release=release)
    if staying:
        nodes = _keep_held(kube, namespace, release, nodes, staying)
    needs, rolling = deployment_needs(deployments)
    report = check_fit(nodes, needs, rolling=rolling)
    # check_fit words the surge for an upgrade; here the same rolling update is a restart.
    report.warnings = [
        w._replace(message=w.message.replace("the upgrade's", "the restart's")) for w in report.warnings
    ]
    return report


def _keep_held(
    kube: Any, namespace: str, release: str, nodes: list[Any], staying: Sequence[str]
) -> list[Any]:
    """The nodes with the staying models' pods counted as others' (not replaced)."""
    from vllmctl.chart.facts import MODEL_LABEL, release_selector

    held: dict[str, dict[str, int]] = {}
    selector = f"{release_selector(release)},{MODEL_LABEL} in ({','.join(staying)})"
    for pod in kube.list("v1", "pods", namespace, label_selector=selector):
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            for name, count in pod_gpus(pod).items():
                held.setdefault(str(node), {})[name] = held.get(str(node), {}).get(name, 0) + count
    out = []
    for node in nodes:
        moved = held.get(node.name, {})
        others = {k: node.used_by_others.get(k, 0) + moved.get(k, 0) for k in {*node.used_by_others, *moved}}
        mine = {k: max(0, v - moved.get(k, 0)) for k, v in node.used_by_release.items()}
        out.append(node._replace(used_by_others=others, used_by_release=mine))
    return out


class RolloutTimeout(ExternalError):
    """The restarts did not finish in time; `waiting` says which pods wait and why."""

    def __init__(self, message: str, waiting: list[str]) -> None:
        super().__init__(message, details=waiting)
        self.waiting = waiting


def follow_rollout(
    kube: Any, namespace: str, names: Sequence[str], timeout: float, notify: Callable[[str], None]
) -> None:
    """Wait until every named Deployment runs only up-to-date, ready pods; every few
    seconds say (once per pod and reason) why a new pod is not Ready."""
    from vllmctl.cluster.kube import RolloutNotDone

    deadline = time.monotonic() + timeout
    said: set[str] = set()
    while True:
        left = deadline - time.monotonic()
        try:
            kube.wait_rollout(namespace, names, max(0.1, min(REPORT_EVERY, left)))
            return
        except RolloutNotDone as e:
            waiting = waiting_pods(kube, namespace, names)
            for line in waiting:
                if line not in said:
                    said.add(line)
                    notify(f"waiting: {line}")
            if time.monotonic() >= deadline:
                raise RolloutTimeout(
                    f"the restart of Deployments {e.behind} did not finish within {timeout:g} s", waiting
                ) from None


def waiting_pods(kube: Any, namespace: str, names: Sequence[str]) -> list[str]:
    """`<pod>: <why it is not Ready>` for the named Deployments' pods that are not Ready."""
    from vllmctl.ops.status.diagnose import pod_reason

    prefixes = tuple(f"{name}-" for name in names)
    pods = [
        p
        for p in kube.list("v1", "pods", namespace)
        if any(
            str(o.get("name", "")).startswith(prefixes) for o in p["metadata"].get("ownerReferences") or []
        )
    ]
    events: dict[str, list[Obj]] = {}
    for event in kube.list("v1", "events", namespace, field_selector="involvedObject.kind=Pod"):
        events.setdefault(str((event.get("involvedObject") or {}).get("name")), []).append(event)
    lines = []
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        reason = pod_reason(pod, events.get(pod["metadata"]["name"], []))
        if reason:
            lines.append(f"{pod['metadata']['name']}: {reason}")
    return lines
