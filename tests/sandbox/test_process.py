"""`python -m tests.sandbox` as a user runs it, and that a stopped sandbox leaves no
process, thread, port or stream behind."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from urllib3.exceptions import ProtocolError

from tests.sandbox.kube.controllers import Timing
from tests.sandbox.sandbox import Sandbox, SandboxConfig

REPO = Path(__file__).resolve().parents[2]


def port_open(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((parsed.hostname or "", parsed.port or 0)) == 0


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = shlex.split(value)[0]
    return out


def test_the_command_runs_in_the_foreground_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubectl = REPO / ".tools" / "bin" / "kubectl"
    if not kubectl.exists():
        pytest.skip("scripts/install-tools installs kubectl")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.sandbox",
            "--dir",
            str(tmp_path),
            "--gpu-nodes",
            "1",
            "--gpus-per-node",
            "4",
            "--no-eso",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("sandbox ready (simulated cluster, real OpenBao): API https://127.0.0.1:"), (
            line
        )
        env = read_env(tmp_path / "env")
        assert set(env) == {"KUBECONFIG", "VAULT_ADDR", "VAULT_TOKEN", "HF_ENDPOINT"}
        assert oct((tmp_path / "env").stat().st_mode & 0o777) == "0o600"  # it holds a token
        child_env = {**os.environ, **env}

        def kubectl_out(*args: str) -> str:
            done = subprocess.run(
                [str(kubectl), *args], env=child_env, capture_output=True, text=True, check=True, timeout=30
            )
            return done.stdout

        (node,) = json.loads(kubectl_out("get", "nodes", "-o", "json"))["items"]
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
        assert kubectl_out("get", "crd", "-o", "name") == ""  # --no-eso: no External Secrets CRDs
        api = json.loads(kubectl_out("config", "view", "--raw", "-o", "json"))
        api_url = api["clusters"][0]["cluster"]["server"]
        assert port_open(api_url) and port_open(env["VAULT_ADDR"]) and port_open(env["HF_ENDPOINT"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stderr is not None and "sandbox stopped" in proc.stderr.read()
        assert not port_open(api_url) and not port_open(env["VAULT_ADDR"])
        # OpenBao's work directory (config, TLS key, audit log) went with it.
        assert {"ca.crt", "env", "kubeconfig"} <= {p.name for p in tmp_path.iterdir()}
        assert not (tmp_path / "openbao").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_closes_servers_streams_and_the_loop_thread(tmp_path: Path) -> None:
    before = {t.ident for t in threading.enumerate()}
    sandbox = Sandbox(tmp_path, SandboxConfig(gpu_nodes=1, timing=Timing(tick=0.02))).start()
    bao = sandbox.vault.pid
    assert bao is not None and (tmp_path / "openbao" / "audit.log").exists()
    # An open watch stream and a started router must not keep anything alive.
    from kubernetes import client, config

    sandbox.router("default")
    router_port = sandbox.routers["default"][1]
    api_client = config.new_client_from_config(str(tmp_path / "kubeconfig"))
    stream = client.CoreV1Api(api_client).list_namespace(watch=True, _preload_content=False)
    assert stream.status == 200
    started = time.monotonic()
    sandbox.stop()
    assert time.monotonic() - started < 5
    with pytest.raises(ProtocolError):  # the stream was cut, as when an API server goes away
        stream.read()
    stream.release_conn()
    api_client.close()
    assert not port_open(sandbox.kube_url)
    assert not port_open(sandbox.vault_url) and not port_open(sandbox.vault_tls_url)
    with pytest.raises(ProcessLookupError):  # the bao server ended and was reaped
        os.kill(bao, 0)
    assert not (tmp_path / "openbao").exists()
    assert not port_open(f"http://127.0.0.1:{router_port}")
    assert {t.ident for t in threading.enumerate()} - before == set()
