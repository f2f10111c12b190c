"""check_fit and its parts, without a cluster: nodes and needs are built by hand."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllmctl.core.errors import ExternalError
from vllmctl.ops import gpufit
from vllmctl.ops.gpufit import (
    CannotReadNodes,
    NodeGpus,
    ReplicaNeed,
    check_fit,
    is_gpu_resource,
    matches_terms,
    needs_from_models,
    pod_gpus,
    tolerates,
)

GPU = "nvidia.com/gpu"
MIG = "nvidia.com/mig-3g.40gb"
AMD = "amd.com/gpu"


def cluster(count: int, gpus: int, resource: str = GPU, **kw: Any) -> list[NodeGpus]:
    return [NodeGpus(f"gpu-node-{i + 1}", {resource: gpus}, **kw) for i in range(count)]


def model(name: str, gpus: int = 1, replicas: int = 1, **entry: Any) -> ReplicaNeed:
    return ReplicaNeed.from_model({"name": name, "replicaCount": replicas, "requestGPU": gpus, **entry})


def messages(report: gpufit.FitReport) -> list[str]:
    return [f.message for f in report.shortfalls]


def assert_valid(report: gpufit.FitReport, nodes: list[NodeGpus], needs: list[ReplicaNeed]) -> None:
    """Every replica placed, on a node that allows it, within what the plan may use."""
    by_name = {n.name: n for n in nodes}
    used: dict[str, dict[str, int]] = {}
    for need in needs:
        if not need.replicas or not need.per_replica:
            continue
        where = report.placements[need.model]
        assert len(where) == need.replicas
        for node in where:
            assert gpufit._refusal(need, by_name[node]) is None
            for resource, amount in need.per_replica.items():
                used.setdefault(node, {})[resource] = used.get(node, {}).get(resource, 0) + amount
    for node, amounts in used.items():
        for resource, amount in amounts.items():
            assert amount <= by_name[node].free().get(resource, 0)
            assert report.left[node][resource] == by_name[node].free()[resource] - amount


# --- the cases -----------------------------------------------------------------------------


def test_a_4_gpu_replica_does_not_fit_on_2_nodes_of_2() -> None:
    report = check_fit(cluster(2, 2), [model("big", gpus=4)])
    assert not report.ok
    assert report.shortfalls[0].models == ("big",)
    assert messages(report) == [
        "big needs 4 nvidia.com/gpu on one node for each replica, but the most free on any node "
        "is 2 (gpu-node-1: 2, gpu-node-2: 2)."
    ]
    assert report.placements == {}


FIVE_GPUS = {
    "5 x 1": (
        [model("small", replicas=5)],
        "small needs 5 nvidia.com/gpu for its 5 replicas, but the nodes have 4 free "
        "(gpu-node-1: 2, gpu-node-2: 2).",
    ),
    "2 x 2 + 1": (
        [model("pair", gpus=2, replicas=2), model("one")],
        "the models need 5 nvidia.com/gpu in total (pair: 4, one: 1), the nodes have 4 free "
        "(gpu-node-1: 2, gpu-node-2: 2).",
    ),
}


@pytest.mark.parametrize("case", FIVE_GPUS, ids=list(FIVE_GPUS))
def test_5_gpus_in_total_do_not_fit_on_2_nodes_of_2(case: str) -> None:
    needs, message = FIVE_GPUS[case]
    report = check_fit(cluster(2, 2), needs)
    assert not report.ok
    assert messages(report) == [message]
    assert report.lines()[:2] == ["GPU fit: the models cannot all be scheduled:", f"  - {message}"]


@pytest.mark.parametrize("case", FIVE_GPUS, ids=list(FIVE_GPUS))
def test_the_same_models_fit_on_2_nodes_of_4(case: str) -> None:
    needs, _ = FIVE_GPUS[case]
    nodes = cluster(2, 4)
    report = check_fit(nodes, needs)
    assert report.ok, messages(report)
    assert report.search == "greedy"
    assert_valid(report, nodes, needs)
    assert report.lines()[0].startswith("GPU fit: every replica has a node (")


def test_2x4_placement_is_best_fit_largest_first() -> None:
    nodes = cluster(2, 4)
    report = check_fit(nodes, [model("one"), model("pair", gpus=2, replicas=2)])
    assert report.placements == {"one": ["gpu-node-2"], "pair": ["gpu-node-1", "gpu-node-1"]}
    assert report.left == {"gpu-node-1": {GPU: 0}, "gpu-node-2": {GPU: 3}}
    assert report.lines() == [
        "GPU fit: every replica has a node (3 replicas of 2 models on 2 nodes).",
        "  one: 1 on gpu-node-2",
        "  pair: 2 on gpu-node-1",
        "free per node (allocatable minus what other pods hold; this release's pods are replaced):",
        "  gpu-node-1: nvidia.com/gpu 4 of 4, 0 left",
        "  gpu-node-2: nvidia.com/gpu 4 of 4, 3 left",
    ]


def test_fragmented_free_gpus_cannot_hold_a_2_gpu_replica() -> None:
    # 3 GPUs free in total, but one per node.
    nodes = cluster(3, 2, used_by_others={GPU: 1})
    report = check_fit(nodes, [model("pair", gpus=2)])
    assert messages(report) == [
        "pair needs 2 nvidia.com/gpu on one node for each replica, but the most free on any node "
        "is 1 (gpu-node-1: 1, gpu-node-2: 1, gpu-node-3: 1); other pods hold 1 on gpu-node-1, "
        "1 on gpu-node-2, 1 on gpu-node-3."
    ]
    assert report.free == {f"gpu-node-{i}": {GPU: 1} for i in (1, 2, 3)}


def test_this_releases_pods_are_replaced_but_other_pods_are_not() -> None:
    mine = cluster(2, 2, used_by_release={GPU: 2})
    assert check_fit(mine, [model("pair", gpus=2, replicas=2)]).ok
    theirs = cluster(2, 2, used_by_others={GPU: 2})
    report = check_fit(theirs, [model("pair", gpus=2, replicas=2)])
    assert messages(report) == [
        "pair needs 2 nvidia.com/gpu on one node for each replica, but the most free on any node "
        "is 0 (gpu-node-1: 0, gpu-node-2: 0); other pods hold 2 on gpu-node-1, 2 on gpu-node-2."
    ]


def test_models_without_gpus_need_nothing() -> None:
    report = check_fit([], [model("cpu", gpus=0), model("off", replicas=0)])
    assert report.ok
    assert report.without_gpus == ["cpu", "off"]
    assert report.placements == {}


# --- where replicas may run ---------------------------------------------------------------------

LABELS = {"pool": "a100", "gpus": "8", "zone": "z1"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "pool", "operator": "In", "values": ["a100", "h100"]}, True),
        ({"key": "pool", "operator": "In", "values": ["h100"]}, False),
        ({"key": "pool", "operator": "NotIn", "values": ["h100"]}, True),
        ({"key": "absent", "operator": "NotIn", "values": ["x"]}, True),
        ({"key": "pool", "operator": "NotIn", "values": ["a100"]}, False),
        ({"key": "pool", "operator": "Exists"}, True),
        ({"key": "absent", "operator": "Exists"}, False),
        ({"key": "absent", "operator": "DoesNotExist"}, True),
        ({"key": "pool", "operator": "DoesNotExist"}, False),
        ({"key": "gpus", "operator": "Gt", "values": ["4"]}, True),
        ({"key": "gpus", "operator": "Gt", "values": ["8"]}, False),
        ({"key": "gpus", "operator": "Lt", "values": ["9"]}, True),
        ({"key": "pool", "operator": "Gt", "values": ["1"]}, False),  # not a number
        ({"key": "absent", "operator": "Lt", "values": ["9"]}, False),
        ({"key": "pool", "operator": "Sideways", "values": ["a100"]}, False),
    ],
)
def test_node_selector_operators(expression: dict[str, Any], expected: bool) -> None:
    assert matches_terms([{"matchExpressions": [expression]}], "n1", LABELS) is expected


def test_terms_are_ored_and_expressions_anded() -> None:
    pool = {"key": "pool", "operator": "In", "values": ["a100"]}
    wrong_zone = {"key": "zone", "operator": "In", "values": ["z2"]}
    assert not matches_terms([{"matchExpressions": [pool, wrong_zone]}], "n1", LABELS)
    assert matches_terms([{"matchExpressions": [wrong_zone]}, {"matchExpressions": [pool]}], "n1", LABELS)
    assert not matches_terms([{}], "n1", LABELS)  # an empty term matches nothing
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    assert matches_terms([by_name], "n1", {})
    assert not matches_terms([by_name], "n2", {})


def test_node_selector_terms_choose_the_nodes() -> None:
    nodes = [
        NodeGpus("gpu-node-1", {GPU: 2}, labels={"pool": "a100"}),
        NodeGpus("gpu-node-2", {GPU: 2}, labels={"pool": "h100"}),
    ]
    h100 = [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["h100"]}]}]
    report = check_fit(nodes, [model("big", nodeSelectorTerms=h100)])
    assert report.placements == {"big": ["gpu-node-2"]}
    report = check_fit(nodes, [model("big", replicas=3, nodeSelectorTerms=h100)])
    assert messages(report) == [
        "big needs 3 nvidia.com/gpu for its 3 replicas, but the nodes big may use have 2 free "
        "(gpu-node-2: 2)."
    ]
    b200 = [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["b200"]}]}]
    report = check_fit(nodes, [model("big", nodeSelectorTerms=b200)])
    assert messages(report) == ["no node matches big's nodeSelectorTerms."]
    report = check_fit(nodes, [model("big", gpus=4, nodeSelectorTerms=h100)])
    assert messages(report) == [
        "big needs 4 nvidia.com/gpu on one node for each replica, but the most free on any node "
        "big may use is 2 (gpu-node-2: 2)."
    ]


def test_affinity_wins_over_node_selector_terms_and_node_name_suppresses_them() -> None:
    terms = [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["h100"]}]}]
    affinity_terms = [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a100"]}]}]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": affinity_terms}
        }
    }
    need = model("m", nodeSelectorTerms=terms, affinity=affinity)
    assert need.node_terms == tuple(affinity_terms)
    assert need.terms_from == "affinity"
    # An affinity without required node affinity still replaces nodeSelectorTerms.
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    assert model("m", nodeSelectorTerms=terms, affinity=preferred).node_terms is None
    pinned = model("m", nodeSelectorTerms=terms, nodeName="gpu-node-2")
    assert (pinned.node_terms, pinned.node_name) == (None, "gpu-node-2")
    # ... but an affinity stays next to a nodeName, and the kubelet checks it.
    both = model("m", affinity=affinity, nodeName="gpu-node-2")
    assert both.node_terms == tuple(affinity_terms)
    nodes = [NodeGpus("gpu-node-1", {GPU: 2}, labels={"pool": "a100"}), NodeGpus("gpu-node-2", {GPU: 2})]
    assert messages(check_fit(nodes, [model("m", affinity=affinity)])) == []
    assert messages(
        check_fit(
            nodes,
            [
                model(
                    "m",
                    affinity={
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
                        }
                    },
                )
            ],
        )
    ) == ["no node matches m's affinity."]


def test_node_name() -> None:
    tainted = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}
    evicting = {"key": "maintenance", "effect": "NoExecute"}
    nodes = [
        NodeGpus("gpu-node-1", {GPU: 2}),
        NodeGpus("gpu-node-2", {GPU: 2}, taints=(tainted,), cordoned=True),
        NodeGpus("gpu-node-3", {GPU: 2}, taints=(evicting,)),
        NodeGpus("cpu-node", {}),
    ]
    # The scheduler is bypassed: NoSchedule taints and cordons do not matter, NoExecute does.
    assert check_fit(nodes, [model("m", replicas=2, nodeName="gpu-node-2")]).placements == {
        "m": ["gpu-node-2", "gpu-node-2"]
    }
    assert messages(check_fit(nodes, [model("m", nodeName="gpu-node-3")])) == [
        "m's nodeName gpu-node-3 cannot take it: gpu-node-3 has the taint maintenance:NoExecute, "
        "which m does not tolerate."
    ]
    assert messages(check_fit(nodes, [model("m", nodeName="gpu-node-9")])) == [
        "m's nodeName gpu-node-9 is not a node of the cluster."
    ]
    assert messages(check_fit(nodes, [model("m", nodeName="cpu-node")])) == [
        "m's nodeName cpu-node has no nvidia.com/gpu."
    ]
    assert messages(check_fit(nodes, [model("m", gpus=2, replicas=2, nodeName="gpu-node-1")])) == [
        "m needs 4 nvidia.com/gpu for its 2 replicas, but the nodes m may use have 2 free (gpu-node-1: 2)."
    ]
    assert messages(check_fit(nodes, [model("m", gpus=3, nodeName="gpu-node-1")])) == [
        "m needs 3 nvidia.com/gpu on one node for each replica, but the most free on its nodeName "
        "gpu-node-1 is 2 (gpu-node-1: 2)."
    ]


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "value": "ml"}, True),  # Equal by default, any effect
        ({"key": "dedicated", "value": "web"}, False),
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # every taint
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_tolerations(toleration: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}) is expected


def test_taints_need_a_toleration() -> None:
    dedicated = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}
    soft = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    nodes = [
        NodeGpus("gpu-node-1", {GPU: 2}, taints=(dedicated,)),
        NodeGpus("gpu-node-2", {GPU: 2}, taints=(soft,), cordoned=True),
        NodeGpus("gpu-node-3", {GPU: 2}, ready=False),
    ]
    report = check_fit(nodes, [model("big")])
    assert messages(report) == [
        "no node can take big: gpu-node-1 has the taint dedicated=ml:NoSchedule, which big does not "
        "tolerate; gpu-node-2 is cordoned; gpu-node-3 is NotReady."
    ]
    toleration = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    # chart 0.1.11+: per-model tolerations are appended to servingEngineSpec.tolerations ...
    needs = needs_from_models([{"name": "big", "requestGPU": 1, "tolerations": [toleration]}])
    assert check_fit(nodes, needs).placements == {"big": ["gpu-node-1"]}
    needs = needs_from_models([{"name": "big", "requestGPU": 1}], global_tolerations=[toleration])
    assert check_fit(nodes, needs).placements == {"big": ["gpu-node-1"]}
    other = {"key": "x", "operator": "Exists"}
    appended = needs_from_models([{"name": "big", "tolerations": [other]}], global_tolerations=[toleration])
    assert appended[0].tolerations == (toleration, other)
    # ... or replace them with tolerationsPolicy: override.
    entry = {"name": "big", "tolerations": [other], "tolerationsPolicy": "override"}
    overridden = needs_from_models([entry], global_tolerations=[toleration])
    assert overridden[0].tolerations == (other,)
    assert not check_fit(nodes, overridden).ok
    # A cordon is the taint node.kubernetes.io/unschedulable to the scheduler.
    cordon = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    assert check_fit(nodes, [model("big", tolerations=[cordon])]).placements == {"big": ["gpu-node-2"]}


def test_mig_profiles_are_their_own_resources() -> None:
    nodes = [NodeGpus("gpu-node-1", {GPU: 2}), NodeGpus("mig-node", {"nvidia.com/mig-1g.10gb": 7, MIG: 2})]
    report = check_fit(nodes, [model("small", replicas=2, requestGPUType=MIG)])
    assert report.placements == {"small": ["mig-node", "mig-node"]}
    report = check_fit(nodes[:1], [model("small", requestGPUType=MIG)])
    assert messages(report) == [
        "small needs 1 nvidia.com/mig-3g.40gb per replica, but no node has nvidia.com/mig-3g.40gb "
        "(the nodes offer nvidia.com/gpu)."
    ]
    report = check_fit(nodes, [model("small", replicas=3, requestGPUType=MIG), model("big", 2)])
    assert messages(report) == [
        "small needs 3 nvidia.com/mig-3g.40gb for its 3 replicas, but the nodes have 2 free (mig-node: 2)."
    ]


def test_amd_gpus() -> None:
    nodes = cluster(2, 8, AMD)
    assert check_fit(nodes, [model("llama", 8, 2, requestGPUType=AMD)]).ok
    assert messages(check_fit(nodes, [model("llama", 1)])) == [
        "llama needs 1 nvidia.com/gpu per replica, but no node has nvidia.com/gpu "
        "(the nodes offer amd.com/gpu)."
    ]
    assert messages(check_fit([NodeGpus("cpu", {})], [model("llama")])) == [
        "llama needs 1 nvidia.com/gpu per replica, but no node has nvidia.com/gpu (the nodes offer no GPUs)."
    ]


def test_mixed_vendors_are_placed_per_resource() -> None:
    nodes = [NodeGpus("amd-1", {AMD: 4}), NodeGpus("nv-1", {GPU: 4})]
    report = check_fit(nodes, [model("a", 4, requestGPUType=AMD), model("n", 2, 2)])
    assert report.placements == {"a": ["amd-1"], "n": ["nv-1", "nv-1"]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (GPU, True),
        ("nvidia.com/mig-1g.5gb", True),
        ("nvidia.com/gpu.shared", True),  # time-slicing with renamed resources
        (AMD, True),
        ("gpu.intel.com/i915", True),
        ("gpu.intel.com/xe", True),
        ("habana.ai/gaudi", True),
        ("nvidia.com/gpumem", False),  # HAMi: a share of memory, not a GPU
        ("nvidia.com/gpucores", False),
        ("example.com/fpga", False),
        ("cpu", False),
        ("hugepages-2Mi", False),
        ("kubernetes.io/batch", False),
    ],
)
def test_gpu_resource_names(name: str, expected: bool) -> None:
    assert is_gpu_resource(name) is expected


def test_any_extended_resource_a_model_names_is_checked() -> None:
    nodes = [NodeGpus("fpga-1", {"example.com/fpga": 2})]
    report = check_fit(nodes, [model("odd", 2, requestGPUType="example.com/fpga")])
    assert report.ok
    assert report.resources == ["example.com/fpga"]


# --- the search ---------------------------------------------------------------------------------


def test_the_search_finds_a_placement_best_fit_misses() -> None:
    # Best fit puts a 3 on the 4-node and a 3 plus a 2 on the 6-node: the last 2 finds no room.
    # The search finds 2 + 2 and 3 + 3.
    nodes = [
        NodeGpus("gpu-node-1", {GPU: 8}, used_by_others={GPU: 4}),
        NodeGpus("gpu-node-2", {GPU: 8}, used_by_others={GPU: 2}),
    ]
    needs = [model("three", 3, 2), model("two", 2, 2)]
    choice, stuck = gpufit._greedy([0, 0, 1, 1], [(3,), (2,)], [[0, 1], [0, 1]], [[4], [6]])
    assert (choice, stuck) == (None, 1)
    report = check_fit(nodes, needs)
    assert report.ok, messages(report)
    assert report.search == "search"
    assert report.placements == {"three": ["gpu-node-2", "gpu-node-2"], "two": ["gpu-node-1", "gpu-node-1"]}
    assert_valid(report, nodes, needs)


def test_the_search_proves_a_packing_impossible() -> None:
    # 6 free for 3 x 2, each replica fits, yet 3 + 3 cannot hold three 2s.
    nodes = cluster(2, 4, used_by_others={GPU: 1})
    report = check_fit(nodes, [model("pair", 2, 3)])
    assert report.search == "search"
    assert messages(report) == [
        "the replicas (pair: 3 x 2 nvidia.com/gpu) cannot all be placed: each fits on some node and "
        "the totals suffice, but no arrangement of whole replicas fits the free nvidia.com/gpu per "
        "node (gpu-node-1: 3, gpu-node-2: 3)."
    ]


def test_a_search_that_runs_out_of_steps_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpufit, "SEARCH_STEPS", 1)
    report = check_fit(cluster(2, 4, used_by_others={GPU: 1}), [model("pair", 2, 3)])
    assert report.search == "incomplete"
    assert not report.ok
    assert "a placement may exist, but it was not found" in messages(report)[0]


def test_constraints_are_placed_first() -> None:
    # Only gpu-node-2 has the label; the unconstrained model must leave it room.
    nodes = [NodeGpus("gpu-node-1", {GPU: 2}), NodeGpus("gpu-node-2", {GPU: 2}, labels={"fast": "1"})]
    fast = [{"matchExpressions": [{"key": "fast", "operator": "Exists"}]}]
    report = check_fit(nodes, [model("any", 2), model("picky", 2, nodeSelectorTerms=fast)])
    assert report.placements == {"any": ["gpu-node-1"], "picky": ["gpu-node-2"]}


# --- the rolling update's surge -----------------------------------------------------------------


def test_surge_without_room_is_a_warning() -> None:
    nodes = cluster(2, 2, used_by_release={GPU: 2})
    needs = [model("big", 2, 2), model("other", 0)]
    report = check_fit(nodes, needs, rolling={"big": 2, "other": 1, "gone": 1})
    assert report.ok  # the end state fits
    assert [w.models for w in report.warnings] == [("big",)]
    warning = report.warnings[0].message
    assert warning.startswith(
        "big: the upgrade's rolling update (the chart's RollingUpdate, maxSurge 100%, maxUnavailable 0) "
        "starts a new pod before it stops an old one, so a new replica needs 2 nvidia.com/gpu free on "
        "one node while its 2 current replicas keep theirs; the most free now on a node it may use is 0 "
        "(gpu-node-1: 0, gpu-node-2: 0): 2 more nvidia.com/gpu needed."
    )
    assert "it deadlocks" in warning
    assert "strategy {type: Recreate}" in warning
    assert "short outage" in warning
    assert f"warning: {warning}" in report.lines()


def test_surge_with_room_for_one_new_replica_is_fine() -> None:
    nodes = [NodeGpus("gpu-node-1", {GPU: 2}, used_by_release={GPU: 2}), NodeGpus("gpu-node-2", {GPU: 4})]
    report = check_fit(nodes, [model("big", 2, 1)], rolling={"big": 1})
    assert report.warnings == []
    # One GPU short: the warning says how many more are needed.
    tight = [NodeGpus("gpu-node-1", {GPU: 2}, used_by_release={GPU: 1}, used_by_others={GPU: 0})]
    report = check_fit(tight, [model("big", 2, 1)], rolling={"big": 1})
    assert "1 more nvidia.com/gpu needed" in report.warnings[0].message
    # Models that the upgrade does not replace roll nothing.
    assert check_fit(tight, [model("big", 2, 1)]).warnings == []


def test_surge_is_not_checked_for_a_model_that_does_not_fit() -> None:
    report = check_fit(cluster(1, 2, used_by_release={GPU: 2}), [model("big", 4)], rolling={"big": 1})
    assert not report.ok
    assert report.warnings == []


# --- what a pod and a model entry ask for ------------------------------------------------------------


def test_pod_gpus_is_the_schedulers_arithmetic() -> None:
    pod = {
        "spec": {
            "initContainers": [
                {"name": "fetch", "resources": {"limits": {GPU: "3"}}},
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {GPU: "1"}}},
                {"name": "warm", "resources": {"requests": {GPU: "1"}}},
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {GPU: "1", "cpu": "2"}, "limits": {GPU: "1"}}},
                {"name": "b", "resources": {"limits": {GPU: "1", "memory": "1Gi"}}},
                {"name": "c"},
            ],
            "overhead": {"example.com/vm": "1", "cpu": "100m"},
        }
    }
    # containers 1 + 1, plus the sidecar 1 = 3; init: fetch 3 alone, warm 1 beside the sidecar 1.
    assert pod_gpus(pod) == {GPU: 3, "example.com/vm": 1}
    pod["spec"]["initContainers"][0]["resources"] = {"limits": {GPU: "4"}}
    assert pod_gpus(pod) == {GPU: 4, "example.com/vm": 1}
    assert pod_gpus({"spec": {"containers": [{"name": "x", "resources": {"limits": {"cpu": "1"}}}]}}) == {}


def test_needs_from_a_model_entry() -> None:
    need = ReplicaNeed.from_model({"name": "m", "replicaCount": 2, "requestGPU": 2, "requestGPUType": AMD})
    assert (need.model, need.replicas, dict(need.per_replica)) == ("m", 2, {AMD: 2})
    # chart 0.1.9+: resources replaces requestGPU (which effective() fills with its default).
    raw = {"limits": {GPU: 4, "memory": "64Gi"}, "requests": {"cpu": "8"}}
    assert dict(ReplicaNeed.from_model({"name": "m", "requestGPU": 1, "resources": raw}).per_replica) == {
        GPU: 4
    }
    init = {"name": "dl", "image": "x", "resources": {"limits": {GPU: 2}}}
    assert dict(
        ReplicaNeed.from_model({"name": "m", "requestGPU": 1, "initContainer": init}).per_replica
    ) == {GPU: 2}
    assert ReplicaNeed.from_model({"name": "m", "enabled": False}).replicas == 0
    assert ReplicaNeed.from_model({"name": "m", "raySpec": {"enabled": False}}).skipped is None
    ray = ReplicaNeed.from_model({"name": "m", "raySpec": {"headNode": {}}})
    report = check_fit(cluster(1, 1), [ray])
    assert report.ok
    assert report.notes == [
        "m is not checked: it runs as a RayCluster (raySpec), whose head and worker pods this check does "
        "not model."
    ]


def test_needs_from_catalog_models(tmp_path: Path) -> None:
    from vllmctl.catalog.store import parse

    text = "- name: a\n  modelURL: org/a\n- name: b\n  modelURL: org/b\n  requestGPU: 2\n  replicaCount: 3\n"
    models = parse(tmp_path / "models.yaml", text.encode()).models
    needs = needs_from_models(models)
    assert [(n.model, n.replicas, dict(n.per_replica)) for n in needs] == [
        ("a", 1, {GPU: 1}),
        ("b", 3, {GPU: 2}),
    ]


def test_json_and_errors() -> None:
    nodes = cluster(2, 2)
    report = check_fit(nodes, [model("big", 4), model("none", 0)])
    data = json.loads(json.dumps(report.as_json()))
    assert data["ok"] is False
    assert data["shortfalls"][0]["models"] == ["big"]
    assert data["nodes"][0] == {
        "name": "gpu-node-1",
        "ready": True,
        "cordoned": False,
        "allocatable": {GPU: 2},
        "used_by_others": {},
        "used_by_release": {},
        "free": {GPU: 2},
        "left": {},
    }
    assert data["without_gpus"] == ["none"]
    assert issubclass(CannotReadNodes, ExternalError)
    assert CannotReadNodes("x").exit_code == 3


# --- properties --------------------------------------------------------------------------------------

RESOURCES = [GPU, AMD]
POOLS = ["a", "b"]
TAINT = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}


@st.composite
def scenarios(draw: Any) -> tuple[list[NodeGpus], list[ReplicaNeed]]:
    nodes = []
    for i in range(draw(st.integers(1, 3))):
        allocatable = {
            r: draw(st.integers(0, 4)) for r in draw(st.sets(st.sampled_from(RESOURCES), max_size=2))
        }
        others = {r: draw(st.integers(0, a)) for r, a in allocatable.items()}
        nodes.append(
            NodeGpus(
                f"n{i}",
                allocatable,
                used_by_others=others,
                used_by_release={r: draw(st.integers(0, 2)) for r in allocatable},
                labels={"pool": draw(st.sampled_from(POOLS))},
                taints=(TAINT,) if draw(st.booleans()) else (),
                cordoned=draw(st.integers(0, 5)) == 0,
                ready=draw(st.integers(0, 5)) != 0,
            )
        )
    needs = []
    for k in range(draw(st.integers(1, 3))):
        entry: dict[str, Any] = {
            "name": f"m{k}",
            "replicaCount": draw(st.integers(0, 2)),
            "requestGPU": draw(st.integers(0, 3)),
            "requestGPUType": draw(st.sampled_from(RESOURCES)),
        }
        if draw(st.booleans()):
            pools = draw(st.lists(st.sampled_from(POOLS), min_size=1, max_size=2))
            entry["nodeSelectorTerms"] = [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": pools}]}
            ]
        if draw(st.booleans()):
            entry["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
        needs.append(ReplicaNeed.from_model(entry))
    return nodes, needs


def _may_run(need: ReplicaNeed, node: NodeGpus) -> bool:
    """An independent reading of the rules the scenarios use."""
    if not node.ready or node.cordoned:
        return False
    if need.node_terms is not None:
        pools = need.node_terms[0]["matchExpressions"][0]["values"]
        if node.labels.get("pool") not in pools:
            return False
    return not node.taints or bool(need.tolerations)


def _exists(nodes: list[NodeGpus], needs: list[ReplicaNeed]) -> bool:
    replicas = [need for need in needs for _ in range(need.replicas) if need.per_replica]
    options = [[n for n in nodes if _may_run(need, n)] for need in replicas]
    for chosen in itertools.product(*options):
        used: dict[tuple[str, str], int] = {}
        for need, node in zip(replicas, chosen, strict=True):
            for r, a in need.per_replica.items():
                used[node.name, r] = used.get((node.name, r), 0) + a
        if all(
            a <= next(n for n in nodes if n.name == name).free().get(r, 0) for (name, r), a in used.items()
        ):
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_an_ok_placement_is_valid_and_found_whenever_one_exists(
    scenario: tuple[list[NodeGpus], list[ReplicaNeed]],
) -> None:
    nodes, needs = scenario
    report = check_fit(nodes, needs, rolling={n.model: 1 for n in needs})
    if report.ok:
        assert_valid(report, nodes, needs)
        for need in needs:
            for node in report.placements.get(need.model, []):
                assert _may_run(need, next(n for n in nodes if n.name == node))
    assert report.ok is _exists(nodes, needs), report.lines()
    assert report.search != "incomplete"
    for finding in report.shortfalls + report.warnings:
        assert finding.models and all(m in finding.message for m in finding.models)
