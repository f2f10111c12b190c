"""The whole sandbox: a Kubernetes API stand-in with its simulated controllers and
kubelets, the External Secrets Operator simulation, vLLM router stand-ins and a
HuggingFace Hub stand-in, all on one event loop in a background thread, and a real
OpenBao dev server (`openbao.py`) as Vault.

`Sandbox(...).start()` serves them on free 127.0.0.1 ports and writes `kubeconfig` and
`env` into a directory; `stop()` ends every server, stream, thread and the bao process.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import shlex
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import yaml
from aiohttp import web

from tests.sandbox.eso import ExternalSecrets
from tests.sandbox.hpa import METRICS_RESOURCES, HorizontalPodAutoscalers
from tests.sandbox.hub import HubStandIn
from tests.sandbox.keda import Keda
from tests.sandbox.kube.api import KubeApi
from tests.sandbox.kube.controllers import Cluster, NodeSpec, R, Timing
from tests.sandbox.kube.portforward import handle_portforward
from tests.sandbox.kube.resources import BUILTINS, Resource
from tests.sandbox.kube.store import Obj, Store
from tests.sandbox.kuberay import KubeRay
from tests.sandbox.kuberay import served_models as kuberay_served
from tests.sandbox.loop import LoopThread
from tests.sandbox.lora import LoraController
from tests.sandbox.lora import served as served_adapters
from tests.sandbox.openbao import OpenBao
from tests.sandbox.router import RouterStandIn

MANIFESTS = Path(__file__).parent / "manifests"
CRD = next(r for r in BUILTINS if r.kind == "CustomResourceDefinition")
STORE_NAME = "vault-secret-store"
ESO_NAMESPACE = "external-secrets"
API_KEY_SECRET = ("vllm-api-key", "api-key")  # what vllmctl and the chart use


@dataclass
class SandboxConfig:
    gpu_nodes: int = 2
    gpus_per_node: int = 2
    gpu_resource: str = "nvidia.com/gpu"
    eso: bool = True  # install the External Secrets CRDs and a Vault ClusterSecretStore
    gitops: bool = False  # serve HelmRelease, HelmRepository and Application as plain CRDs (no controller)
    prometheus_operator: bool = False  # install the ServiceMonitor CRD
    keda: bool = False  # install KEDA's ScaledObject CRD (tests/sandbox/keda.py simulates KEDA)
    # serve the resource metrics API (metrics.k8s.io, as metrics-server does) that the HPA
    # controller (tests/sandbox/hpa.py) needs to scale on CPU
    metrics_server: bool = False
    lora: bool = False  # install the chart's LoraAdapter CRD (tests/sandbox/lora.py simulates its controller)
    kuberay: bool = False  # install KubeRay's RayCluster CRD (tests/sandbox/kuberay.py simulates it)
    timing: Timing = field(default_factory=Timing)
    router_ttft: float = 0.0
    router_tokens_per_second: float = 0.0


class Sandbox:
    def __init__(self, directory: Path, config: SandboxConfig | None = None) -> None:
        self.dir = Path(directory).resolve()  # env and kubeconfig hold absolute paths
        self.config = config or SandboxConfig()
        self.token = secrets.token_hex(16)
        self.loop = LoopThread()
        self.store = Store()
        self.api = KubeApi(self.store, self.token)
        self.ca = trustme.CA()  # signs the API's and OpenBao's TLS certificates
        self.vault = OpenBao(self.dir, self.ca)  # a real Vault API: the bao process, started by start()
        self.hub = HubStandIn()
        self.routers: dict[str, tuple[RouterStandIn, int]] = {}  # namespace -> router and its port
        # The local port of each port-forwarded connection to a router stand-in -> (namespace,
        # pod), so a routing line lands in the log of the pod the connection came through.
        self._forwarded: dict[int, tuple[str, str]] = {}
        self._router_locks: dict[str, asyncio.Lock] = {}
        self.cluster: Cluster | None = None
        self.keda = Keda(self.store, lambda *args: self.cluster.event(*args) if self.cluster else None)
        self.hpa = HorizontalPodAutoscalers(
            self.store,
            lambda *args: self.cluster.event(*args) if self.cluster else None,
            lambda: any(r.group == "metrics.k8s.io" for r in self.api.aggregated),
        )
        self.kube_url = self.vault_url = self.vault_tls_url = self.hub_url = ""
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Sandbox:
        self.dir.mkdir(parents=True, exist_ok=True)
        ca = self.ca
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        (self.dir / "ca.crt").write_bytes(ca.cert_pem.bytes())
        self.api.logs_handler = self._logs
        self.api.portforward_handler = self._portforward
        kube_port = self.loop.serve(self.api.app(), ssl_context=context)
        self.api.address = f"127.0.0.1:{kube_port}"
        self.kube_url = f"https://127.0.0.1:{kube_port}"
        try:
            self.vault.start()
            self.vault_url, self.vault_tls_url = self.vault.url, self.vault.tls_url
            self.hub_url = f"http://127.0.0.1:{self.loop.serve(self.hub.app())}"
            self.loop.call(self._populate)
            self._write_files(ca)
        except BaseException:
            self.stop()  # no loop thread or bao process outlives a failed start
            raise
        return self

    def stop(self) -> None:
        self.loop.stop()
        self.vault.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _populate(self) -> None:
        c = self.config
        nodes = [
            NodeSpec(f"gpu-node-{i + 1}", gpus=c.gpus_per_node, gpu_resource=c.gpu_resource)
            for i in range(c.gpu_nodes)
        ]
        self.cluster = Cluster(self.store, nodes, c.timing)
        for name in ("default", "kube-system"):
            self.store.create(R["Namespace"], None, {"metadata": {"name": name}})
        self.cluster.reconcilers.append(ExternalSecrets(self.store, self.cluster.event))
        if c.eso:
            self.install_eso()
        if c.gitops:
            self.apply_manifests(MANIFESTS / "gitops-crds.yaml")
        if c.prometheus_operator:
            self.apply_manifests(MANIFESTS / "prometheus-operator-crds.yaml")
        self.cluster.reconcilers.append(self.keda)
        if c.keda:
            self.apply_manifests(MANIFESTS / "keda-crds.yaml")
        self.cluster.reconcilers.append(self.hpa)
        if c.metrics_server:
            self.api.aggregated = list(METRICS_RESOURCES)
        self.cluster.reconcilers.append(LoraController(self.store, self.cluster.event))
        if c.lora:
            self.apply_manifests(MANIFESTS / "lora-crds.yaml")
        self.cluster.reconcilers.append(KubeRay(self.store, self.cluster.event))
        if c.kuberay:
            self.apply_manifests(MANIFESTS / "kuberay-crds.yaml")
        self._tasks.append(asyncio.get_running_loop().create_task(self.cluster.run()))

    def install_eso(self) -> None:
        """ESO's CRDs, its namespace, and a ClusterSecretStore reading OpenBao with a token
        kept in a Secret, whose policy may only read secret/data/*: a cluster where an
        operator has set ESO up."""

        self.apply_manifests(MANIFESTS / "external-secrets-crds.yaml")
        self.store.create(R["Namespace"], None, {"metadata": {"name": ESO_NAMESPACE}})
        self.store.create(
            R["Secret"],
            ESO_NAMESPACE,
            {"metadata": {"name": "vault-token"}, "stringData": {"token": self.vault.eso_token}},
        )
        assert self.cluster is not None
        self.cluster.reconcile()  # CRDs become Established, so their kinds are served
        self.store.create(
            self.api.by_kind("external-secrets.io/v1", "ClusterSecretStore"),
            None,
            {
                "metadata": {"name": STORE_NAME},
                "spec": {
                    "provider": {
                        "vault": {
                            "server": self.vault_url,
                            "path": "secret",
                            "version": "v2",
                            "auth": {
                                "tokenSecretRef": {
                                    "name": "vault-token",
                                    "key": "token",
                                    "namespace": ESO_NAMESPACE,
                                }
                            },
                        }
                    }
                },
            },
        )

    def apply_manifests(self, path: Path) -> None:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "CustomResourceDefinition":
                self.store.create(CRD, None, doc)

    def _write_files(self, ca: trustme.CA) -> None:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "sandbox",
            "preferences": {},
            "clusters": [
                {
                    "name": "sandbox",
                    "cluster": {
                        "server": self.kube_url,
                        "certificate-authority-data": base64.b64encode(ca.cert_pem.bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": "sandbox-admin", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "sandbox",
                    "context": {"cluster": "sandbox", "user": "sandbox-admin", "namespace": "default"},
                }
            ],
        }
        path = self.dir / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
        path.chmod(0o600)
        env = self.dir / "env"
        env.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env().items()))
        env.chmod(0o600)

    def env(self) -> dict[str, str]:

        return {
            "KUBECONFIG": str(self.dir / "kubeconfig"),
            "VAULT_ADDR": self.vault_url,
            "VAULT_TOKEN": self.vault.root_token,
            "HF_ENDPOINT": self.hub_url,
        }

    # --- what tests reach for -------------------------------------------------------------

    def call(self, fn: Any, *args: Any) -> Any:
        """Run fn(*args) on the sandbox's loop thread (where its state may be touched)."""
        return self.loop.call(fn, *args)

    def create_namespace(self, name: str) -> None:
        self.call(self.store.create, R["Namespace"], None, {"metadata": {"name": name}})

    def get(self, kind: str, namespace: str | None, name: str, api_version: str | None = None) -> Obj | None:
        res = self._res(kind, api_version)
        return self.call(self.store.find, res, namespace, name)  # type: ignore[no-any-return]

    def list(self, kind: str, namespace: str | None = None, api_version: str | None = None) -> list[Obj]:
        res = self._res(kind, api_version)
        return self.call(self.store.list, res, namespace)  # type: ignore[no-any-return]

    def _res(self, kind: str, api_version: str | None) -> Resource:
        if api_version:
            return self.call(self.api.by_kind, api_version, kind)  # type: ignore[no-any-return]
        return R[kind]

    def router(self, namespace: str) -> RouterStandIn:
        return self.loop.run(self._router(namespace))[0]

    # --- wiring between the stand-ins -------------------------------------------------------

    async def _logs(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        assert self.cluster is not None
        pod = self.store.get(R["Pod"], namespace, name)
        return await self.cluster.logs.serve(request, pod)

    async def _portforward(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        pod = self.store.get(R["Pod"], namespace, name)

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            live = self.store.find(R["Pod"], namespace, name)
            if live is None or (live.get("status") or {}).get("phase") != "Running":
                raise ConnectionRefusedError(f"pod {name} is not running")
            declared = {
                p.get("containerPort")
                for c in live["spec"].get("containers") or []
                for p in c.get("ports") or []
            }
            if port not in declared and port != 8000:
                raise ConnectionRefusedError(f"nothing listens on port {port} in pod {name}")
            _, router_port = await self._router(namespace)
            reader, writer = await asyncio.open_connection("127.0.0.1", router_port)
            self._forwarded[writer.get_extra_info("sockname")[1]] = (namespace, name)
            return reader, writer

        del pod
        return await handle_portforward(request, connect)

    async def _router(self, namespace: str) -> tuple[RouterStandIn, int]:
        """One router stand-in per namespace: its models are the engines deployed there,
        its API key the namespace's vllm-api-key Secret. Made on first use; the lock keeps
        two port-forwards arriving together from starting two."""
        lock = self._router_locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            if namespace not in self.routers:
                router = RouterStandIn(
                    models=lambda: self._served_models(namespace),
                    adapters=lambda: served_adapters(self.store, namespace),
                    api_key=lambda: self._api_key(namespace),
                    ttft=self.config.router_ttft,
                    tokens_per_second=self.config.router_tokens_per_second,
                    endpoints=lambda model: self._engine_urls(namespace, model),
                    routing=lambda: self._routing(namespace),
                    on_log=self._router_log,
                )
                self.routers[namespace] = (router, await self.loop.serve_async(router.app()))
        return self.routers[namespace]

    def _served_models(self, namespace: str) -> list[str]:
        """The model names engines Ready in the namespace serve: `vllm serve MODEL`, or
        every name after `--served-model-name` (vLLM lists each in /v1/models)."""
        served: set[str] = set()
        for d in self.store.iter_raw("apps", "deployments", namespace):
            if not (d.get("status") or {}).get("readyReplicas"):
                continue
            for c in d["spec"]["template"]["spec"].get("containers") or []:
                served.update(_served_names(c))
        served |= kuberay_served(self.store, namespace)  # the heads of ready RayClusters
        return sorted(served)

    def _engine_urls(self, namespace: str, model: str) -> list[str]:
        """The Ready engine pods serving `model`, as the router's pod-IP discovery lists them."""
        urls = []
        for pod in self.store.iter_raw("", "pods", namespace):
            status = pod.get("status") or {}
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            if not ready or "podIP" not in status:
                continue
            for c in pod["spec"].get("containers") or []:
                if model in _served_names(c):
                    urls.append(f"http://{status['podIP']}:8000")
                    break
        return urls

    def _routing(self, namespace: str) -> tuple[str | None, str | None]:
        """The routing logic and session key the namespace's router Deployment runs with."""
        for d in self.store.iter_raw("apps", "deployments", namespace):
            if not d["metadata"]["name"].endswith("-deployment-router"):
                continue
            containers = d["spec"]["template"]["spec"].get("containers") or []
            args = [str(a) for a in (containers[0].get("args") or [])] if containers else []
            found = {flag: args[i + 1] for i, flag in enumerate(args[:-1]) if flag.startswith("--")}
            return found.get("--routing-logic"), found.get("--session-key")
        return None, None

    def _router_log(self, port: int | None, line: str) -> None:
        where = self._forwarded.get(port) if port is not None else None
        pod = self.store.find(R["Pod"], where[0], where[1]) if where else None
        if pod is None or self.cluster is None:
            return
        containers = pod["spec"].get("containers") or []
        if containers:
            self.cluster.logs.add(pod, containers[0]["name"], line)

    def _api_key(self, namespace: str) -> str | None:
        name, key = API_KEY_SECRET
        secret = self.store.objects.get(("", "secrets", namespace, name))
        if secret is None or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()


def _served_names(container: Obj) -> list[str]:
    """What an engine container serves: `vllm serve MODEL`, or every name after
    `--served-model-name`; [] for a container that is no engine."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if "serve" not in argv or argv.index("serve") + 1 >= len(argv):
        return []
    names: list[str] = []
    if "--served-model-name" in argv:
        for arg in argv[argv.index("--served-model-name") + 1 :]:
            if arg.startswith("--"):
                break
            names.append(arg)
    return names or [argv[argv.index("serve") + 1]]
