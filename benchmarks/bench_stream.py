#!/usr/bin/env python3
"""What vllmctl's port-forward and SSE client add per streamed token, against the router
stand-in's own pacing. Target: <= 5 ms per token (median).

It starts the whole sandbox (tests/sandbox: Kubernetes API stand-in, controllers, router
stand-in), creates a router Deployment + Service and one engine Deployment in a namespace
(no helm needed), then streams chat completions two ways:

- direct: vllmctl's client (httpx + httpx-sse) straight to the router stand-in's port;
- tunnel: the same client through `open_router_tunnel` (local listener -> the kubernetes
  client's port-forward WebSocket -> the API stand-in -> the router stand-in).

For each way it records when every token arrived and reports medians over the runs:

- paced: the router sends `--rate` tokens/s; the measured gap between tokens minus the
  nominal 1/rate is the overhead per token (and the stand-in's own timer slack, which the
  direct way shows on its own);
- unpaced: the router sends as fast as it can; the time per token is the whole cost of
  moving one SSE event end to end;
- first token: the request's time to its first token (a new connection each run, so the
  tunnel's WebSocket handshake is included).

    python3 benchmarks/bench_stream.py [--runs 15] [--tokens 200] [--rate 200] [--json FILE]

A report, not a test: the exit code is 1 only when a stream came back wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.sandbox and vllmctl from this checkout

from tests.sandbox.kube.controllers import R  # noqa: E402
from tests.sandbox.router import RouterStandIn  # noqa: E402
from tests.sandbox.sandbox import Sandbox  # noqa: E402
from vllmctl.apis.openai_api import Client, CompletionRequest  # noqa: E402
from vllmctl.cluster.kube import Kube  # noqa: E402
from vllmctl.cluster.tunnel import open_router_tunnel  # noqa: E402

NAMESPACE, RELEASE, MODEL = "bench", "vllm", "bench/model"
TARGET_MS = 5.0
ROUTER_LABELS = {"environment": "router", "release": "router"}


def deploy(sb: Sandbox) -> None:
    """A router (Deployment + Service) and one engine serving MODEL, as the chart names them."""
    sb.create_namespace(NAMESPACE)

    def deployment(name: str, labels: dict[str, str], container: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        }

    router = {
        "name": "router-container",
        "image": "lmcache/lmstack-router",
        "ports": [{"name": "router-cport", "containerPort": 8000}],
    }
    engine = {"name": "vllm", "image": "vllm/vllm-openai", "command": ["vllm", "serve", MODEL]}
    service = {
        "metadata": {"name": f"{RELEASE}-router-service"},
        "spec": {
            "selector": ROUTER_LABELS,
            "ports": [{"name": "router-sport", "port": 80, "targetPort": 8000}],
        },
    }
    sb.call(
        sb.store.create,
        R["Deployment"],
        NAMESPACE,
        deployment(f"{RELEASE}-deployment-router", ROUTER_LABELS, router),
    )
    sb.call(
        sb.store.create,
        R["Deployment"],
        NAMESPACE,
        deployment(f"{RELEASE}-bench-deployment-vllm", {"model": "bench"}, engine),
    )
    sb.call(sb.store.create, R["Service"], NAMESPACE, service)
    deadline = time.monotonic() + 30
    while sb.call(sb._served_models, NAMESPACE) != [MODEL] or not any(
        (d.get("status") or {}).get("readyReplicas")
        for d in sb.list("Deployment", NAMESPACE)
        if "router" in d["metadata"]["name"]
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the sandbox did not make the router and engine Ready in 30 s")
        time.sleep(0.05)


def stream_once(base_url: str, prompt: str, tokens: int) -> list[float]:
    """One streamed chat completion on a new connection; the arrival time of each piece."""
    arrivals: list[float] = []
    start = time.perf_counter()
    request = CompletionRequest(MODEL, prompt, chat=True, max_tokens=tokens, stream=True)
    with Client(base_url, max_connections=1) as client:
        completion = client.complete(
            request, on_text=lambda _text: arrivals.append(time.perf_counter() - start)
        )
    if completion.usage is None or completion.usage.completion_tokens != tokens or len(arrivals) != tokens:
        raise SystemExit(f"wrong stream: {len(arrivals)} pieces, usage {completion.usage}, wanted {tokens}")
    return arrivals


def measure(
    base_url: str, router: RouterStandIn, sb: Sandbox, *, runs: int, tokens: int, rate: float
) -> dict[str, float]:
    prompt = " ".join(f"w{i}" for i in range(tokens))  # the echo alone is long enough

    def set_rate(value: float) -> None:
        router.ttft, router.tokens_per_second = 0.0, value

    result: dict[str, list[float]] = {"paced_gap_ms": [], "unpaced_per_token_ms": [], "first_token_ms": []}
    for paced in (True, False):
        sb.call(set_rate, rate if paced else 0.0)
        stream_once(base_url, prompt, tokens)  # warm-up
        for _ in range(runs):
            arrivals = stream_once(base_url, prompt, tokens)
            per_token = (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1) * 1000
            if paced:
                result["paced_gap_ms"].append(per_token)
                result["first_token_ms"].append(arrivals[0] * 1000)
            else:
                result["unpaced_per_token_ms"].append(per_token)
    return {k: statistics.median(v) for k, v in result.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=200, help="tokens per streamed answer")
    parser.add_argument("--rate", type=float, default=200.0, help="the router's pacing, tokens/s")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Sandbox(Path(tmp)) as sb:
        deploy(sb)
        router = sb.router(NAMESPACE)
        direct_url = f"http://127.0.0.1:{sb.routers[NAMESPACE][1]}"
        os.environ["KUBECONFIG"] = sb.env()["KUBECONFIG"]
        numbers = {
            "direct": measure(direct_url, router, sb, runs=args.runs, tokens=args.tokens, rate=args.rate)
        }
        with Kube.connect(None) as kube, open_router_tunnel(kube, NAMESPACE, RELEASE) as tunnel:
            numbers["tunnel"] = measure(
                tunnel.base_url, router, sb, runs=args.runs, tokens=args.tokens, rate=args.rate
            )

    nominal = 1000 / args.rate
    print(
        f"{args.runs} runs of {args.tokens} tokens each; medians. "
        f"Router pacing {args.rate:g} tokens/s = {nominal:.3f} ms/token."
    )
    print(f"{'':28}{'direct':>10}{'tunnel':>10}{'tunnel - direct':>18}")
    rows = [
        ("gap between tokens, paced", "paced_gap_ms"),
        ("per token, unpaced", "unpaced_per_token_ms"),
        ("first token (new conn.)", "first_token_ms"),
    ]
    for label, key in rows:
        d, t = numbers["direct"][key], numbers["tunnel"][key]
        print(f"{label:28}{d:>8.3f}ms{t:>8.3f}ms{t - d:>16.3f}ms")
    overhead = {
        "paced_over_nominal_ms": numbers["tunnel"]["paced_gap_ms"] - nominal,
        "paced_over_direct_ms": numbers["tunnel"]["paced_gap_ms"] - numbers["direct"]["paced_gap_ms"],
        "unpaced_per_token_ms": numbers["tunnel"]["unpaced_per_token_ms"],
    }
    worst = max(overhead.values())
    print(
        f"overhead per token through the tunnel: {overhead['paced_over_nominal_ms']:.3f} ms over the pacing, "
        f"{overhead['paced_over_direct_ms']:.3f} ms over direct; {overhead['unpaced_per_token_ms']:.3f} ms "
        f"per token unpaced (all of it). "
        f"Target <= {TARGET_MS:g} ms: {'met' if worst <= TARGET_MS else 'MISSED'}."
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "medians": numbers, "overhead": overhead}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
