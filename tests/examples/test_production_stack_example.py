"""docs/examples/production-stack/: every production-stack feature at once (issue 17, §5).

Its README's command, `vllmctl --models docs/examples/production-stack/models.yaml --env
stack template`, with only VLLM_CHART set, run here against the mini chart at 0.1.12 (the
check against the published 0.1.12 chart is in docs/chart-checks.md): the objects of every
feature are rendered, and `validate` finds nothing to say.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, Run
from tests.sandbox.fixtures import mini_chart_at
from tests.sandbox.kuberay import exec_argv

EXAMPLE = REPO / "docs" / "examples" / "production-stack"
needs_helm = pytest.mark.skipif(shutil.which("helm") is None, reason="scripts/test puts helm on PATH")


def command(run: Run, *args: str, chart: Path | None = None) -> Any:
    env = {"VLLM_CHART": str(chart)} if chart else None
    return run("--models", str(EXAMPLE / "models.yaml"), "--env", "stack", *args, env=env)


def test_the_example_validates_cleanly(run: Run) -> None:
    result = command(run, "validate")
    assert result.exit_code == 0, result.stderr
    assert "error" not in result.stderr


@needs_helm
def test_the_readme_command_renders_every_feature(run: Run, tmp_path: Path) -> None:
    result = command(run, "template", chart=mini_chart_at("0.1.12", tmp_path))
    assert result.exit_code == 0, result.stderr
    found = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout) if o}

    # the router: prefix-aware routing, its HPA
    router = found[("Deployment", "vllm-deployment-router")]["spec"]["template"]["spec"]["containers"][0]
    args = router["args"]
    assert args[args.index("--routing-logic") + 1] == "prefixaware"
    assert args[args.index("--prefix-min-match-length") + 1] == "256"
    hpa = found[("HorizontalPodAutoscaler", "vllm-router-hpa")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 4)

    # llama: LMCache offload to CPU, disk and the cache server, on the LMCache image
    engine = found[("Deployment", "vllm-llama-deployment-vllm")]["spec"]["template"]["spec"]["containers"][0]
    assert engine["image"].startswith("lmcache/vllm-openai:")
    env = {e["name"]: e.get("value") for e in engine["env"]}
    assert env["LMCACHE_MAX_LOCAL_CPU_SIZE"] == "20" and env["LMCACHE_MAX_LOCAL_DISK_SIZE"] == "30"
    assert env["LMCACHE_REMOTE_URL"] == "lm://vllm-cache-server-service:80"
    argv = [*engine.get("command", []), *engine.get("args", [])]
    assert "--kv-transfer-config" in argv
    assert ("Deployment", "vllm-deployment-cache-server") in found
    assert ("Service", "vllm-cache-server-service") in found
    assert ("PersistentVolumeClaim", "vllm-shared-pvc-storage-claim") in found

    # llama's adapters: one at start, one through the LoRA controller
    assert "sql=yard1/llama-2-7b-sql-lora-test" in argv
    adapter = found[("LoraAdapter", "vllm-llama-guard")]["spec"]
    assert adapter["baseModel"] == "llama"
    assert ("Deployment", "vllm-lora-controller") in found

    # llama-70b: a RayCluster of two nodes with 4 GPUs each, and no Deployment
    assert ("Deployment", "vllm-llama-70b-deployment-vllm") not in found
    ray = found[("RayCluster", "vllm-llama-70b-raycluster")]["spec"]
    (workers,) = ray["workerGroupSpecs"]
    assert workers["replicas"] == 1
    head = ray["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["resources"]["requests"]["nvidia.com/gpu"] == "4"
    script = found[("ConfigMap", "llama-70b-vllm-start-script")]["data"]["vllm-entrypoint.sh"]
    ray_argv = " ".join(exec_argv(script))  # as bash builds it from the chart's ARGS array
    assert "--tensor-parallel-size 4 --pipeline-parallel-size 2" in ray_argv
    assert "--served-model-name llama-70b" in ray_argv
