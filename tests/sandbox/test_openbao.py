"""The sandbox's OpenBao: the pinned binary, checked; a dev server on 127.0.0.1 only that
writes nothing outside its work directory; the admin calls tests use; its audit log."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from tests.sandbox import openbao
from tests.sandbox.fixtures import REPO
from tests.sandbox.sandbox import Sandbox


def test_the_binary_is_the_pinned_one() -> None:
    dist = importlib.metadata.distribution(openbao.PACKAGE)
    assert dist.version == openbao.PINNED_VERSION
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'"{openbao.PACKAGE}=={openbao.PINNED_VERSION}"' in pyproject
    binary = openbao.bao_binary()
    assert hashlib.sha256(binary.read_bytes()).hexdigest() == openbao.BAO_SHA256


def test_a_binary_with_another_checksum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openbao, "BAO_SHA256", "0" * 64)
    openbao._verify.cache_clear()
    try:
        with pytest.raises(openbao.OpenBaoError, match=r"sha256 mismatch for .*bao: expected 0000"):
            openbao.bao_binary()
    finally:
        openbao._verify.cache_clear()


def test_another_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openbao, "PINNED_VERSION", "0.0.1")
    with pytest.raises(openbao.OpenBaoError, match=r"the sandbox pins 0\.0\.1"):
        openbao.bao_binary()


def listening_addresses(pid: int) -> set[str]:
    """The local addresses of the TCP sockets process `pid` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(fields[1].split(":")[0])
    return found


def test_it_listens_on_loopback_only_and_writes_nowhere_else(sandbox: Sandbox) -> None:
    pid = sandbox.vault.pid
    assert pid is not None
    assert listening_addresses(pid) == {"0100007F"}  # 127.0.0.1, little-endian hex
    work = sandbox.vault.work
    assert work.parent == sandbox.dir
    assert list((work / "home").iterdir()) == []  # no ~/.vault-token (-dev-no-store-token)
    # Only what the sandbox wrote and the server's log and audit log: storage is in memory.
    assert sorted(p.name for p in work.iterdir()) == [
        "audit.log",
        "bao.hcl",
        "home",
        "server.log",
        "tls.crt",
        "tls.key",
    ]
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"HOME={work / 'home'}".encode() in env
    assert not any(e.startswith((b"VAULT_", b"BAO_ADDR", b"BAO_TOKEN")) for e in env)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert sandbox.vault.root_token.encode() not in argv  # ps shows argv to every user
    assert os.readlink(f"/proc/{pid}/cwd") == str(work)
    assert sandbox.vault.audit_log.parent == work


def test_the_env_file_names_the_real_server(sandbox: Sandbox) -> None:
    env = sandbox.env()
    client = hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"])
    assert client.sys.read_health_status(method="GET")["version"] == openbao.PINNED_VERSION
    assert client.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_reset_gives_a_fresh_mount_without_a_restart(sandbox: Sandbox) -> None:
    bao = sandbox.vault
    pid = bao.pid
    bao.write_secret("secret", "vllm/api-key", {"api-key": "x"})
    bao.enable_kv("extra")
    bao.add_policy("extra-policy", 'path "secret/*" { capabilities = ["read"] }')
    token = bao.add_token(allowed_paths=["secret/"])
    bao.create_namespace("team-z")
    bao.sealed = True
    sandbox.call(bao.reset)
    assert bao.pid == pid and not bao.sealed
    client = bao.client()
    assert bao.read_secret("secret", "vllm/api-key") is None
    assert set(client.sys.list_mounted_secrets_engines()["data"]) == openbao.BASE_MOUNTS
    assert set(client.sys.list_policies()["data"]["policies"]) == openbao.BASE_POLICIES
    with pytest.raises(hvac.exceptions.Forbidden):
        bao.client(token).auth.token.lookup_self()
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.sys.list_namespaces()
    # The store's token survives a reset, with its policy as it was.
    assert bao.client(bao.eso_token).auth.token.lookup_self()["data"]["policies"] == [
        "default",
        openbao.ESO_POLICY,
    ]


def test_sealing_is_real_and_unsealing_uses_the_dev_key(sandbox: Sandbox) -> None:
    bao = sandbox.vault
    bao.write_secret("secret", "vllm/huggingface", {"token": "hf_x"})
    bao.seal()  # `bao operator seal`
    try:
        status = hvac.Client(url=bao.url).sys.read_seal_status()
        assert status["sealed"] is True and status["t"] == 1
        with pytest.raises(hvac.exceptions.VaultDown, match="Vault is sealed"):
            bao.client().secrets.kv.v2.read_secret_version(
                path="vllm/huggingface", raise_on_deleted_version=True
            )
    finally:
        bao.unseal()
    assert bao.read_secret("secret", "vllm/huggingface") == {"token": "hf_x"}  # in-memory data kept
    sandbox.call(bao.reset)


def test_the_audit_log_hmacs_values_but_not_paths(sandbox: Sandbox) -> None:
    # What the leak test relies on: a value in the clear in the audit log came from a place
    # the server does not HMAC, such as the request path.
    bao = sandbox.vault
    start = bao.audit_log.stat().st_size
    bao.write_secret("secret", "path-canary-7Qw3/key", {"token": "value-canary-9Ty5"})
    with bao.audit_log.open("rb") as log:
        log.seek(start)
        lines = [json.loads(line) for line in log.read().splitlines()]
    text = json.dumps(lines)
    assert "path-canary-7Qw3" in text
    assert "value-canary-9Ty5" not in text
    request = next(e for e in lines if e["type"] == "request" and e["request"]["path"].endswith("key"))
    assert request["request"]["data"]["data"]["token"].startswith("hmac-sha256:")
    assert request["auth"]["client_token"].startswith("hmac-sha256:")
    sandbox.call(bao.reset)


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (ended, waiting for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_parent_takes_openbao_with_it(tmp_path: Path) -> None:
    # SIGKILL skips stop(): bao must still go (it gets SIGTERM when its parent dies).
    code = (
        "import sys, time, trustme; from pathlib import Path; from tests.sandbox.openbao import OpenBao; "
        "bao = OpenBao(Path(sys.argv[1]), trustme.CA()).start(); print(bao.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        os.kill(pid, 0)  # running
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(pid)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
