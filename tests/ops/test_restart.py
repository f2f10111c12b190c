"""`vllmctl restart [MODEL...]` on the sandbox: a model's Deployment rolled after the GPU
fit (the models not restarted keep their GPUs), the others left alone, unknown names
refused. The multi-node case (a RayCluster restarted whole) is in
tests/features/test_multinode.py."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv

# gpu-node-1 and gpu-node-2 have 2 GPUs each: left takes one node, right one GPU of the other.
MODELS = (
    "- name: left\n  modelURL: Qwen/Qwen2.5-7B-Instruct\n  requestGPU: 2\n"
    "- name: right\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n  requestGPU: 1\n"
)


def restarted_at(cluster: ClusterEnv, name: str) -> str | None:
    d = cluster.sandbox.get("Deployment", cluster.namespace, name) or {}
    annotations = d["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations.get("kubectl.kubernetes.io/restartedAt")


def test_restart_rolls_only_the_named_model_after_the_gpu_fit(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(MODELS)
    assert run("install", "--yes", "--no-api-key").exit_code == 0

    # left's rolling restart needs 2 free GPUs on one node beside its running pod: right
    # keeps its GPU on the other node, so only 1 is free there.
    refused = run("restart", "left", "--yes", "--timeout", "20")
    assert refused.exit_code == 2, refused.stderr
    assert "the restart does not fit the cluster's free GPUs, so nothing was changed" in refused.stderr
    assert "needs 2 nvidia.com/gpu free on one node" in refused.stderr
    assert restarted_at(cluster, "vllm-left-deployment-vllm") is None

    done = run("restart", "right", "--yes", "--timeout", "60")
    assert done.exit_code == 0, done.stderr
    assert "Restarted vllm-right-deployment-vllm." in done.stderr
    assert restarted_at(cluster, "vllm-right-deployment-vllm") is not None
    assert restarted_at(cluster, "vllm-left-deployment-vllm") is None  # left alone
    assert restarted_at(cluster, "vllm-deployment-router") is None  # the router too

    unknown = run("restart", "nope", "--yes")
    assert unknown.exit_code == 2
    assert (
        "nope is not deployed in release vllm" in unknown.stderr
        and "deployed: left, right." in unknown.stderr
    )


class FakeKube:
    """One 2-GPU node; right's pod holds 1 GPU there, left's pod is Pending."""

    def __init__(self) -> None:
        gpu = {"nvidia.com/gpu": "1"}
        self.pods = [
            {
                "metadata": {
                    "name": "right-1",
                    "namespace": "ns",
                    "labels": {"helm-release-name": "vllm", "model": "right"},
                },
                "spec": {
                    "nodeName": "n1",
                    "containers": [{"name": "vllm", "resources": {"requests": gpu, "limits": gpu}}],
                },
                "status": {"phase": "Running"},
            }
        ]

    def list(
        self,
        api: str,
        plural: str,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, object]]:
        if plural == "nodes":
            return [
                {
                    "metadata": {"name": "n1", "labels": {}},
                    "spec": {},
                    "status": {
                        "allocatable": {"nvidia.com/gpu": "2"},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            ]
        if label_selector and "model in (right)" in label_selector:
            return [p for p in self.pods if p["metadata"]["labels"]["model"] == "right"]  # type: ignore[index]
        return self.pods


def test_the_models_not_restarted_keep_their_gpus_in_the_fit() -> None:
    from vllmctl.ops.restart import restart_fit

    gpus = {"nvidia.com/gpu": "2"}
    left = {
        "metadata": {"name": "vllm-left-deployment-vllm"},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": {"model": "left"}},
                "spec": {"containers": [{"name": "vllm", "resources": {"requests": gpus, "limits": gpus}}]},
            },
        },
    }
    assert restart_fit(FakeKube(), "ns", "vllm", [left]).ok  # as if right's pod went too
    kept = restart_fit(FakeKube(), "ns", "vllm", [left], staying=["right"])
    assert not kept.ok and "left" in kept.shortfalls[0].message
