"""read_nodes against the sandbox, and check_fit's verdicts against the sandbox's scheduler
(first node by name that fits, per node, counting limits or requests: tests/sandbox/kube/controllers.py).

Pods are written into the sandbox's store directly, as a ReplicaSet controller would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.kube.api import Fault
from tests.sandbox.kube.controllers import NodeSpec, R
from tests.sandbox.sandbox import Sandbox, SandboxConfig
from vllmctl.cluster.kube import Kube
from vllmctl.core.errors import ExternalError
from vllmctl.ops.gpufit import CannotReadNodes, NodeGpus, check_fit, needs_from_models, read_nodes

GPU = "nvidia.com/gpu"
RELEASE = "vllm"


def pod(
    name: str,
    gpus: int,
    *,
    release: str = "other",
    node: str | None = None,
    selector: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
    phase: str = "Pending",
    requests: bool = False,
) -> dict[str, Any]:
    amounts = {GPU: str(gpus)}
    resources = {"requests": amounts, "limits": amounts} if requests else {"limits": amounts}
    spec: dict[str, Any] = {
        "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.1", "resources": resources}]
    }
    if node:
        spec["nodeName"] = node  # bound already: the sandbox's scheduler and kubelet leave it alone
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    labels = {"helm-release-name": release, "model": name}
    return {"metadata": {"name": name, "labels": labels}, "spec": spec, "status": {"phase": phase}}


def on(node: str) -> dict[str, str]:
    return {"kubernetes.io/hostname": node}


def create(sb: Sandbox, namespace: str, *pods: dict[str, Any]) -> None:
    for p in pods:
        sb.call(sb.store.create, R["Pod"], namespace, p)


def scheduled(sb: Sandbox, namespace: str, names: list[str], timeout: float = 3.0) -> dict[str, str | None]:
    """Each pod's node once the scheduler has decided about all of them (None: Unschedulable)."""
    deadline = time.monotonic() + timeout
    while True:
        pods = {p["metadata"]["name"]: p for p in sb.list("Pod", namespace)}
        nodes: dict[str, str | None] = {}
        for name in names:
            p = pods[name]
            refused = any(
                c.get("type") == "PodScheduled" and c.get("status") == "False"
                for c in (p.get("status") or {}).get("conditions") or ()
            )
            if p["spec"].get("nodeName") or refused:
                nodes[name] = p["spec"].get("nodeName")
        if len(nodes) == len(names):
            return nodes
        assert time.monotonic() < deadline, f"the sandbox did not schedule {sorted(set(names) - set(nodes))}"
        time.sleep(0.02)


def settled(sb: Sandbox, namespace: str, timeout: float = 5.0) -> None:
    """Wait until no pod of another namespace holds a node: earlier tests' namespaces are
    emptied a tick after they are deleted."""
    deadline = time.monotonic() + timeout
    while any(p["spec"].get("nodeName") for p in sb.list("Pod") if p["metadata"]["namespace"] != namespace):
        assert time.monotonic() < deadline, "pods of other tests still hold the sandbox's nodes"
        time.sleep(0.02)


def read(namespace: str) -> dict[str, NodeGpus]:
    with Kube.connect(None) as kube:
        return {n.name: n for n in read_nodes(kube, namespace=namespace, release=RELEASE)}


# --- the session sandbox: 2 nodes x 2 nvidia.com/gpu ----------------------------------------------


def test_free_gpus_with_pods_of_another_release(cluster: ClusterEnv) -> None:
    sb, ns = cluster.sandbox, cluster.namespace
    sb.create_namespace(ns)
    settled(sb, ns)
    empty = read(ns)
    assert list(empty) == ["gpu-node-1", "gpu-node-2"]
    assert all(n.allocatable == {GPU: 2} and n.ready and not n.cordoned for n in empty.values())
    assert empty["gpu-node-1"].labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert [n.free() for n in empty.values()] == [{GPU: 2}, {GPU: 2}]

    create(
        sb,
        ns,
        pod("other-a", 1, selector=on("gpu-node-1")),
        pod("other-b", 2, selector=on("gpu-node-2")),
        pod("mine", 1, release=RELEASE, selector=on("gpu-node-1"), requests=True),
        # Finished pods hold nothing, wherever they ran.
        pod("finished", 2, node="gpu-node-1", phase="Succeeded"),
    )
    placed = scheduled(sb, ns, ["other-a", "other-b", "mine"])
    assert placed == {"other-a": "gpu-node-1", "other-b": "gpu-node-2", "mine": "gpu-node-1"}
    create(sb, ns, pod("waiting", 1))  # no room left: Pending, holding nothing
    assert scheduled(sb, ns, ["waiting"]) == {"waiting": None}

    nodes = read(ns)
    one, two = nodes["gpu-node-1"], nodes["gpu-node-2"]
    assert (dict(one.used_by_others), dict(one.used_by_release)) == ({GPU: 1}, {GPU: 1})
    assert (dict(two.used_by_others), dict(two.used_by_release)) == ({GPU: 2}, {})
    assert (one.free(), two.free()) == ({GPU: 1}, {GPU: 0})  # this release's pod will be replaced
    assert (one.free_now(), two.free_now()) == ({GPU: 0}, {GPU: 0})

    # The fit agrees with the scheduler: a 2-GPU replica has no node, a 1-GPU replica has one.
    report = check_fit(list(nodes.values()), needs_from_models([{"name": "pair", "requestGPU": 2}]))
    assert [f.message for f in report.shortfalls] == [
        "pair needs 2 nvidia.com/gpu on one node for each replica, but the most free on any node is 1 "
        "(gpu-node-1: 1, gpu-node-2: 0); other pods hold 1 on gpu-node-1, 2 on gpu-node-2."
    ]
    sb.call(sb.store.delete, R["Pod"], ns, "mine")
    sb.call(sb.store.delete, R["Pod"], ns, "waiting")
    create(sb, ns, pod("pair", 2, release=RELEASE))
    assert scheduled(sb, ns, ["pair"]) == {"pair": None}
    single = check_fit(list(nodes.values()), needs_from_models([{"name": "single", "requestGPU": 1}]))
    assert single.placements == {"single": ["gpu-node-1"]}
    create(sb, ns, pod("single", 1, release=RELEASE))
    assert scheduled(sb, ns, ["single"]) == {"single": "gpu-node-1"}


def test_a_403_on_nodes_or_pods_is_a_cannot_read_nodes_error(cluster: ClusterEnv) -> None:
    sb, ns = cluster.sandbox, cluster.namespace
    sb.call(sb.api.faults.append, Fault("GET", r"^/api/v1/nodes$", status=403, times=1))
    with Kube.connect(None) as kube, pytest.raises(CannotReadNodes) as refused:
        read_nodes(kube, namespace=ns, release=RELEASE)
    assert refused.value.exit_code == 3
    assert refused.value.message.startswith(
        "the GPU fit is not checked: it lists the cluster's nodes (a ClusterRole's permission), and "
        "Kubernetes refused to list nodes (403 Forbidden: RBAC)"
    )
    sb.call(sb.api.faults.append, Fault("GET", r"^/api/v1/pods$", status=403, times=1))
    with Kube.connect(None) as kube, pytest.raises(CannotReadNodes, match="pods of every namespace"):
        read_nodes(kube, namespace=ns, release=RELEASE)
    # Other failures stay what they are.
    sb.call(sb.api.faults.append, Fault("GET", r"^/api/v1/nodes$", status=500, times=1))
    with Kube.connect(None) as kube, pytest.raises(ExternalError) as failed:
        read_nodes(kube, namespace=ns, release=RELEASE)
    assert not isinstance(failed.value, CannotReadNodes)


# --- a second sandbox: 2 nodes x 4 nvidia.com/gpu ------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path_factory.mktemp("gpufit"), SandboxConfig(gpu_nodes=2, gpus_per_node=4, eso=False))
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def big_ns(big: Sandbox, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[str]:
    for key, value in big.env().items():
        monkeypatch.setenv(key, value)
    namespace = f"fit-{request.node.name.replace('_', '-')[:40].strip('-')}"
    big.create_namespace(namespace)
    yield namespace
    big.call(big.store.delete, R["Namespace"], None, namespace)
    settled(big, "-")


FIVE = [
    {"name": "pair", "requestGPU": 2, "replicaCount": 2},
    {"name": "one", "requestGPU": 1},
]


def test_the_models_that_do_not_fit_on_2x2_fit_on_2x4(big: Sandbox, big_ns: str) -> None:
    nodes = read(big_ns)
    assert [dict(n.allocatable) for n in nodes.values()] == [{GPU: 4}, {GPU: 4}]
    report = check_fit(list(nodes.values()), needs_from_models(FIVE))
    assert report.ok, report.lines()
    assert report.placements == {"pair": ["gpu-node-1", "gpu-node-1"], "one": ["gpu-node-2"]}
    # The scheduler finds room for every replica too, largest first.
    create(big, big_ns, pod("pair-1", 2), pod("pair-2", 2))
    assert set(scheduled(big, big_ns, ["pair-1", "pair-2"]).values()) == {"gpu-node-1"}
    create(big, big_ns, pod("one", 1))
    assert scheduled(big, big_ns, ["one"]) == {"one": "gpu-node-2"}
    after = read(big_ns)
    assert [dict(n.used_by_others) for n in after.values()] == [{GPU: 4}, {GPU: 1}]


def test_same_release_name_elsewhere_is_another_workload(big: Sandbox, big_ns: str) -> None:
    elsewhere = f"{big_ns[:50]}-b"
    big.create_namespace(elsewhere)
    try:
        create(big, elsewhere, pod("twin", 3, release=RELEASE, selector=on("gpu-node-2")))
        assert scheduled(big, elsewhere, ["twin"]) == {"twin": "gpu-node-2"}
        create(big, big_ns, pod("mine", 3, release=RELEASE, selector=on("gpu-node-2"), requests=True))
        assert scheduled(big, big_ns, ["mine"]) == {"mine": None}  # 3 + 3 > 4
        nodes = read(big_ns)
        assert dict(nodes["gpu-node-2"].used_by_others) == {GPU: 3}
        assert dict(nodes["gpu-node-2"].used_by_release) == {}  # pending: holds nothing
    finally:
        big.call(big.store.delete, R["Namespace"], None, elsewhere)


def test_labels_taints_and_cordons_are_read(big: Sandbox, big_ns: str) -> None:
    taint = {"key": "dedicated", "value": "infer", "effect": "NoSchedule"}
    spec = NodeSpec("gpu-node-3", gpus=8, labels={"pool": "h100"}, taints=[taint])
    assert big.cluster is not None
    big.call(big.cluster.add_node, spec)
    try:
        nodes = read(big_ns)
        three = nodes["gpu-node-3"]
        assert three.labels["pool"] == "h100"
        assert three.taints == (taint,)
        assert dict(three.allocatable) == {GPU: 8}
        h100 = [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["h100"]}]}]
        picky = {"name": "picky", "requestGPU": 8, "nodeSelectorTerms": h100}
        report = check_fit(list(nodes.values()), needs_from_models([picky]))
        assert [f.message for f in report.shortfalls] == [
            "no node can take picky: gpu-node-3 has the taint dedicated=infer:NoSchedule, which picky "
            "does not tolerate (the other nodes do not match picky's nodeSelectorTerms)."
        ]
        toleration = {"key": "dedicated", "operator": "Equal", "value": "infer", "effect": "NoSchedule"}
        report = check_fit(list(nodes.values()), needs_from_models([picky], global_tolerations=[toleration]))
        assert report.placements == {"picky": ["gpu-node-3"]}
        # The scheduler agrees (the sandbox's speaks nodeSelector, not affinity).
        create(
            big,
            big_ns,
            pod("untolerated", 8, selector={"pool": "h100"}),
            pod("tolerated", 8, selector={"pool": "h100"}, tolerations=[toleration]),
        )
        assert scheduled(big, big_ns, ["untolerated", "tolerated"]) == {
            "untolerated": None,
            "tolerated": "gpu-node-3",
        }
        node = big.get("Node", None, "gpu-node-3")
        assert node is not None
        node["spec"]["unschedulable"] = True
        big.call(big.store.update, R["Node"], None, "gpu-node-3", node)
        assert read(big_ns)["gpu-node-3"].cordoned
    finally:
        big.call(big.store.delete, R["Node"], None, "gpu-node-3")
