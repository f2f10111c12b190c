"""rotate-api-key on a cluster whose GPUs are all in use (issue 14, item 3): refused with
the numbers before anything changes; with --force, the wait reports why the new pods are
Pending and the timeout says what state the key and the pods are in."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv

TWO_GPUS = "- name: {0}\n  modelURL: Qwen/Qwen2.5-7B-Instruct\n  requestGPU: 2\n"
FULL = TWO_GPUS.format("left") + TWO_GPUS.format("right")  # fills both 2-GPU nodes


def generations(cluster: ClusterEnv) -> dict[str, int]:
    return {
        d["metadata"]["name"]: d["metadata"]["generation"]
        for d in cluster.sandbox.list("Deployment", cluster.namespace)
    }


def test_a_restart_that_cannot_be_placed_is_refused_before_the_key_changes(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(FULL)
    assert run("install", "--yes", "--api-key").exit_code == 0
    key, before = run("get-api-key").stdout.strip(), generations(cluster)
    started = time.monotonic()
    refused = run("rotate-api-key", "--yes", "--timeout", "20")  # main waited the whole timeout
    assert time.monotonic() - started < 10
    assert refused.exit_code == 2, refused.stderr
    assert "does not fit the cluster's free GPUs, so the key was not rotated" in refused.stderr
    # the numbers: what a new pod needs, the most free on a node, the shortfall
    assert "left: the restart's rolling update" in refused.stderr
    assert "needs 2 nvidia.com/gpu free on one node" in refused.stderr
    assert "the most free now on a node it may use is 0 (gpu-node-1: 0, gpu-node-2: 0)" in refused.stderr
    assert "strategy: recreate" in refused.stderr and "--force" in refused.stderr
    assert run("get-api-key").stdout.strip() == key
    assert generations(cluster) == before  # nothing restarted


def test_forced_rotation_reports_the_pending_reason_and_the_state_on_timeout(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(FULL)
    assert run("install", "--yes", "--api-key").exit_code == 0
    key = run("get-api-key").stdout.strip()
    started = time.monotonic()
    forced = run("rotate-api-key", "--yes", "--force", "--timeout", "6")
    took = time.monotonic() - started
    assert forced.exit_code == 3, forced.stderr
    assert 6 <= took < 20
    err = forced.stderr
    assert "rotating anyway (--force)" in err
    # while waiting: why the new pods wait, in status's words
    assert "waiting: vllm-left-deployment-vllm-" in err
    reason = "Pending: cannot be scheduled: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu"
    assert f"{reason}\n" in err.split("error:")[0]  # said while waiting
    assert "  vllm-right-deployment-vllm-" in err.split("error:")[1]  # and again under the error
    # on timeout: the key's state, the pods' state, what to do
    assert "the API key was rotated (stored and synced; `vllmctl get-api-key` prints it)" in err
    assert "did not finish within 6 s" in err
    assert "vllm-left-deployment-vllm (1/1 updated, 1/1 ready, 1 old)" in err  # the old pod serves
    assert "accept only the old key" in err and "`vllmctl status`" in err
    assert run("get-api-key").stdout.strip() != key


def test_with_recreate_the_restart_fits(run: Run, models_file: Path, cluster: ClusterEnv) -> None:
    models_file.write_text(FULL.replace("requestGPU: 2\n", "requestGPU: 2\n  strategy: recreate\n"))
    assert run("install", "--yes", "--api-key").exit_code == 0
    key = run("get-api-key").stdout.strip()
    rotated = run("rotate-api-key", "--yes", "--timeout", "60")
    assert rotated.exit_code == 0, rotated.stderr
    assert run("get-api-key").stdout.strip() != key
    for name in ("vllm-left-deployment-vllm", "vllm-right-deployment-vllm"):
        deployment = cluster.sandbox.get("Deployment", cluster.namespace, name)
        assert deployment is not None and deployment["status"].get("updatedReplicas") == 1


def test_which_restarts_need_surge_room() -> None:
    from vllmctl.ops.restart import surges

    assert surges({}, 1)  # the API's default, 25%/25%: 0 unavailable for one replica
    assert not surges({}, 4)  # 25% of 4 is one pod that may go first
    assert surges(
        {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}}, 3
    )
    assert not surges({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}, 1)
    assert not surges(
        {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}, 1
    )
    assert not surges({"strategy": {"type": "Recreate"}}, 2)
