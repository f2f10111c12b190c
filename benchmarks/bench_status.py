#!/usr/bin/env python3
"""`vllmctl status` on a release of many models, against the sandbox (a simulated cluster).

Starts a sandbox (tests/sandbox), installs the test chart (tests/charts/vllm-stack-mini)
with `--models` small models (no GPU, so they all fit): `vllmctl render`, then `helm
upgrade --install` without --wait, and waits until every Deployment is Ready. Then it
pauses the sandbox's controllers: their pass over hundreds of objects takes seconds and
holds the stand-in's one event loop, so every API request would wait for it, and the
benchmark would time the simulation instead of vllmctl (a real API server answers while
its controllers work). The cluster's state stays as it is; the router stand-in still
answers through port-forwards.

It times `vllmctl status -o json` as a user runs it: a subprocess, from interpreter start
to exit, 1 warm-up run then `--runs` timed runs. Each run's report is checked (every
model Ready and served). It also counts the API requests of a run (helm's included),
which do not depend on the number of models, and times the gathering alone (in-process,
already connected).

    PATH=.tools/bin:$PATH python3 benchmarks/bench_status.py [--models 200] [--runs 7]

A report, not a test: the exit code is 0 whatever the timings (1 if a run fails).
Target: median <= 1.5 s for 200 models.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TARGET_SECONDS = 1.5


def models_yaml(count: int) -> str:
    return "".join(
        f"- name: m{i:03d}\n  modelURL: org/model-{i:03d}\n  requestGPU: 0\n  requestCPU: 1\n"
        "  requestMemory: 1Gi\n"
        for i in range(count)
    )


def vllmctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vllmctl", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=600,
    )


def deploy(sb: Any, env: dict[str, str], tmp: Path, count: int) -> None:
    """Install without waiting, then wait here: helm's --wait re-reads every object."""
    values = tmp / "values.yaml"
    rendered = vllmctl(env, "render", "-o", str(values))
    if rendered.returncode != 0:
        raise SystemExit(f"render failed:\n{rendered.stderr}")
    sb.create_namespace(env["VLLM_NAMESPACE"])
    helm = [
        "helm", "upgrade", "--install", env["VLLM_RELEASE"], env["VLLM_CHART"],
        "--namespace", env["VLLM_NAMESPACE"], "--values", str(values),
    ]  # fmt: skip
    installed = subprocess.run(helm, env=env, capture_output=True, text=True, check=False, timeout=600)
    if installed.returncode != 0:
        raise SystemExit(f"helm failed:\n{installed.stderr}")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        deployments = sb.list("Deployment", env["VLLM_NAMESPACE"])
        ready = [d for d in deployments if (d.get("status") or {}).get("readyReplicas") == 1]
        if len(deployments) == count + 1 and len(ready) == count + 1:  # the router too
            return
        time.sleep(1.0)
    raise SystemExit("the Deployments did not become Ready within 15 minutes")


def check(done: subprocess.CompletedProcess[str], count: int) -> None:
    if done.returncode != 0:
        raise SystemExit(
            f"vllmctl status failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr}"
        )
    report = json.loads(done.stdout)
    ready = sum(m["ready"] and m["serving"] for m in report["models"])
    if ready != count or not report["ready"]:
        raise SystemExit(f"expected {count} models Ready and served, found {ready}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    from tests.sandbox.fixtures import MINI_CHART
    from tests.sandbox.sandbox import Sandbox, SandboxConfig

    tools = REPO / ".tools" / "bin"
    os.environ["PATH"] = f"{tools}{os.pathsep}{os.environ['PATH']}"
    with (
        tempfile.TemporaryDirectory(prefix="bench-status-") as tmp,
        Sandbox(Path(tmp) / "sandbox", SandboxConfig(gpu_nodes=2, gpus_per_node=2)) as sb,
    ):
        models = Path(tmp) / "models.yaml"
        models.write_text(models_yaml(args.models))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "VAULT_", "KUBECONFIG"))},
            **sb.env(),
            "VLLM_NAMESPACE": "bench",
            "VLLM_RELEASE": "vllm",
            "VLLM_CHART": str(MINI_CHART),
            "VLLM_CHART_VERSION": "0.1.8",
            "VLLM_MODEL_TAG": "v0.10.1",
            "VLLM_MODELS_FILE": str(models),
            "VLLM_HELM_TIMEOUT": "10m",
            "NO_COLOR": "1",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        started = time.monotonic()
        deploy(sb, env, Path(tmp), args.models)
        print(f"{args.models} models Ready after {time.monotonic() - started:.1f} s", file=sys.stderr)
        assert sb.cluster is not None
        sb.call(setattr, sb.cluster.timing, "tick", 24 * 3600.0)  # pause the controllers
        time.sleep(1.0)  # the pass under way, if any, ends

        check(vllmctl(env, "status", "-o", "json"), args.models)  # warm-up (bytecode, caches)
        before = sb.call(len, sb.api.requests)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            done = vllmctl(env, "status", "-o", "json")
            times.append(time.perf_counter() - start)
            check(done, args.models)
        requests = (sb.call(len, sb.api.requests) - before) / args.runs

        gathering = in_process(env, args.runs)

    median = statistics.median(times)
    verdict = "met" if median <= TARGET_SECONDS else "MISSED"
    print(
        f"vllmctl status, {args.models} models (subprocess): median {median:.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {args.runs} runs; "
        f"target <= {TARGET_SECONDS} s: {verdict}"
    )
    print(f"  gathering alone (in-process, connected): median {statistics.median(gathering):.2f} s")
    print(f"  API requests per run (helm's included): {requests:g}")
    return 0


def in_process(env: dict[str, str], runs: int) -> list[float]:
    """StatusReader.read() alone: no interpreter start, imports or kubeconfig loading."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        from vllmctl.ops.status import StatusReader
        from vllmctl.settings import Settings

        with StatusReader(Settings.resolve({})) as reader:
            reader.read()  # connects
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                reader.read()
                times.append(time.perf_counter() - start)
        return times
    finally:
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    sys.exit(main())
