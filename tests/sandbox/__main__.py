"""`python -m tests.sandbox --dir DIR`: run the sandbox in the foreground.

It writes DIR/kubeconfig and DIR/env (export lines for KUBECONFIG, VAULT_ADDR,
VAULT_TOKEN and HF_ENDPOINT), prints one line when ready, and stops cleanly on SIGTERM or Ctrl-C.
This is a SIMULATED cluster for trying and testing vllmctl: nothing runs a model. Vault is
a real OpenBao dev server (in memory, gone when the sandbox stops).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from tests.sandbox.sandbox import Sandbox, SandboxConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="where to write kubeconfig and env")
    parser.add_argument("--gpu-nodes", type=int, default=2, help="number of GPU nodes (default 2)")
    parser.add_argument("--gpus-per-node", type=int, default=2, help="GPUs on each node (default 2)")
    parser.add_argument("--gpu-resource", default="nvidia.com/gpu", help="the nodes' GPU resource name")
    parser.add_argument(
        "--no-eso",
        dest="eso",
        action="store_false",
        help="do not install the External Secrets Operator (CRDs and ClusterSecretStore)",
    )
    parser.add_argument(
        "--gitops",
        action="store_true",
        help="serve Flux's HelmRelease/HelmRepository and Argo CD's Application CRDs",
    )
    parser.add_argument("--prometheus-operator", action="store_true", help="install the ServiceMonitor CRD")
    parser.add_argument("--keda", action="store_true", help="install KEDA's ScaledObject CRD (simulated)")
    parser.add_argument(
        "--metrics-server",
        action="store_true",
        help="serve the resource metrics API (metrics.k8s.io) the simulated HPA controller needs",
    )
    parser.add_argument(
        "--lora", action="store_true", help="install the chart's LoraAdapter CRD (simulated controller)"
    )
    parser.add_argument(
        "--kuberay", action="store_true", help="install KubeRay's RayCluster CRD (its operator simulated)"
    )
    args = parser.parse_args(argv)
    config = SandboxConfig(
        gpu_nodes=args.gpu_nodes,
        gpus_per_node=args.gpus_per_node,
        gpu_resource=args.gpu_resource,
        eso=args.eso,
        gitops=args.gitops,
        prometheus_operator=args.prometheus_operator,
        keda=args.keda,
        metrics_server=args.metrics_server,
        lora=args.lora,
        kuberay=args.kuberay,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sandbox = Sandbox(args.dir, config).start()
    try:
        print(
            "sandbox ready (simulated cluster, real OpenBao): "
            f"API {sandbox.kube_url}, Vault {sandbox.vault_url}, "
            f"Hub {sandbox.hub_url}; "
            f"run: source {sandbox.dir / 'env'}",
            flush=True,
        )
        stop.wait()
    finally:
        sandbox.stop()
    print("sandbox stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
