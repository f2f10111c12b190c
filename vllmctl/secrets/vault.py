"""Vault's side of the secret store: one KV version 2 mount, read and written through hvac.

The connection settings are the vault CLI's own: VAULT_ADDR, VAULT_TOKEN (else the file
~/.vault-token that `vault login` writes), VAULT_NAMESPACE, VAULT_CACERT or VAULT_CAPATH, and
VAULT_SKIP_VERIFY. hvac (and requests under it) is imported by the first request, never with
this module, so `vllmctl --help` stays fast.

Every failure is an ExternalError whose message is one sentence: what happened and the fix.
Messages are built from what vllmctl knows (the address, mount, path and where the token came
from); Vault's own words are added only for unexpected answers, with the token and the values
being written scrubbed out. Nothing is chained to the hvac exception, whose text may hold a
response body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllmctl.core.errors import ExternalError, UsageError

TIMEOUT_SECONDS = 10  # per connect and per read: an unreachable Vault fails fast
TOKEN_FILE = ".vault-token"
TOKEN_FILE_SHOWN = "~/.vault-token"
LOOKUP_SELF = "auth/token/lookup-self"
# Vault's words, as its API answers them.
SEALED_WORDS = "Vault is sealed"
CAS_MISMATCH_WORDS = "check-and-set parameter did not match"
CAS_REQUIRED_WORDS = "check-and-set parameter required"
MOUNT_MISSING_WORDS = ("no handler for route", "cannot fetch sysview")
NAMESPACE_MISSING_WORDS = "namespace not found"
# The ACL capabilities each operation needs on its API path (a write of a new key needs
# create, of an existing one update: both are asked for).
NEEDED_CAPABILITIES = {
    "read": ("read",),
    "write": ("create", "update"),
    "delete": ("delete",),
    "destroy": ("delete",),
}
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# hvac's exception classes by the status code they stand for (hvac keeps no code on them).
_STATUS_OF = {
    "InvalidRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "InvalidPath": 404,
    "RateLimitExceeded": 429,
    "InternalServerError": 500,
    "VaultNotInitialized": 501,
    "BadGateway": 502,
    "VaultDown": 503,
}


@dataclass(frozen=True)
class VaultConfig:
    """Where Vault is and how to talk to it. The token is left out of repr()."""

    addr: str
    token: str = field(repr=False)
    namespace: str | None
    cacert: Path | None
    capath: Path | None
    skip_verify: bool
    token_source: str  # "VAULT_TOKEN" or "~/.vault-token", for messages


class SecretChangedError(ExternalError):
    """A check-and-set write lost: someone changed the secret after the caller read it."""

    def __init__(self, where: str, version: int) -> None:
        now = f"version {version} now" if version else "it no longer exists"
        super().__init__(
            f"the secret at {where} changed since it was read ({now}): re-run to overwrite the new version."
        )
        self.where = where
        self.version = version


class _CasMismatch(Exception):
    """Internal: Vault refused a write because its check-and-set version was stale."""


def vault_config(settings: Any, home: Path | None = None) -> VaultConfig:
    """Vault's address, token and TLS settings, read as the vault CLI reads them.

    The token is VAULT_TOKEN, else the content of ~/.vault-token (`home` defaults to the
    user's home). A missing address or token is a UsageError naming the variable to set.
    """
    from urllib.parse import urlsplit

    addr = (settings.vault_addr or "").strip().rstrip("/")
    if not addr:
        raise UsageError(
            "VAULT_ADDR is not set: set it to Vault's address, e.g. `export VAULT_ADDR=https://vault.example.com:8200`."
        )
    try:
        parts = urlsplit(addr)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        valid = False
    if not valid:
        raise UsageError(
            f"VAULT_ADDR={addr!r} is not an http(s) address: set it like https://vault.example.com:8200."
        )

    token = (settings.vault_token or "").strip()
    token_source = "VAULT_TOKEN"
    if not token:
        token_file = (home if home is not None else Path.home()) / TOKEN_FILE
        token_source = TOKEN_FILE_SHOWN
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            token = ""
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
            raise UsageError(
                f"cannot read the Vault token in {token_file} ({reason.lower()}): "
                "run `vault login` or set VAULT_TOKEN."
            ) from None
        if not token:
            raise UsageError(
                "no Vault token: VAULT_TOKEN is not set and ~/.vault-token is missing or empty; "
                "run `vault login` or set VAULT_TOKEN."
            )
    # It travels in an HTTP header: anything but printable ASCII without spaces cannot be a token.
    if not (token.isascii() and token.isprintable() and " " not in token):
        raise UsageError(
            f"the Vault token from {token_source} holds spaces or characters a token cannot have: "
            "run `vault login` or set VAULT_TOKEN to the token alone."
        )

    skip_verify = bool(settings.vault_skip_verify)
    cacert = _optional_path(settings.vault_cacert)
    capath = _optional_path(settings.vault_capath)
    # As in the vault CLI, VAULT_CACERT wins over VAULT_CAPATH; both are moot when skipping.
    if not skip_verify:
        if cacert is not None and not cacert.is_file():
            raise UsageError(
                f"VAULT_CACERT={cacert} is not a file: point it at the PEM file of the CA that "
                "signed Vault's certificate."
            )
        if cacert is None and capath is not None and not capath.is_dir():
            raise UsageError(
                f"VAULT_CAPATH={capath} is not a directory: point it at a directory of PEM CA "
                "certificates, or use VAULT_CACERT for one file."
            )
    namespace = (settings.vault_enterprise_namespace or "").strip().strip("/") or None
    return VaultConfig(addr, token, namespace, cacert, capath, skip_verify, token_source)


def _optional_path(value: Any) -> Path | None:
    # An empty variable means unset, as for the vault CLI (Path("") is ".").
    if value is None or str(value) in ("", "."):
        return None
    return Path(value)


def mount_problem(mount: str, info: dict[str, Any]) -> str | None:
    """Why a mount described by Vault (`type`, `options`) is not KV version 2; None if it is."""
    kind = info.get("type")
    options = info.get("options")
    version = str(options.get("version", "1")) if isinstance(options, dict) else "1"
    fix = "set VLLM_VAULT_MOUNT to the KV version 2 mount that holds the secrets"
    if isinstance(kind, str) and kind not in ("kv", "generic"):
        return f"the Vault mount {mount}/ is a {kind} secrets engine, not KV version 2: {fix}."
    if version != "2":
        return (
            f"the Vault mount {mount}/ is not KV version 2 (options.version is {version}): {fix}, "
            f"or upgrade this one with `vault kv enable-versioning {mount}/`."
        )
    return None


class VaultStore:
    """The secrets in one KV version 2 mount: read, write with check-and-set, delete."""

    def __init__(self, config: VaultConfig, mount: str = "secret") -> None:
        self.config = config
        self.mount = mount.strip().strip("/")
        if not self.mount:
            raise UsageError("VLLM_VAULT_MOUNT is empty: set it to the KV version 2 mount, e.g. secret.")
        # For the caller to show; nothing here prints.
        self.warnings: list[str] = []
        if config.skip_verify:
            self.warnings.append(
                f"VAULT_SKIP_VERIFY is set: TLS verification is off for Vault at {config.addr}, "
                "so anyone in between could read the token and the secrets."
            )
        from urllib.parse import urlsplit

        parts = urlsplit(config.addr)
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            self.warnings.append(
                f"VAULT_ADDR={config.addr} is plain http: the token and the secrets cross the "
                "network unencrypted; use Vault's https address."
            )
        self._hvac: Any = None

    def where(self, path: str) -> str:
        """A secret's name as `vault kv` shows it: <mount>/<path>."""
        return f"{self.mount}/{_key(path)}"

    # -- the operations ---------------------------------------------------------------------

    def check(self) -> None:
        """Vault is reachable, initialized and unsealed, the token valid, the mount KV version 2."""
        client = self._client()
        with self._calling("check the health of", "sys/health"):
            # standbyok: a standby forwards requests to the active node, which is fine here.
            # Asked without VAULT_NAMESPACE: sys/health exists in the root namespace only
            # (OpenBao answers 400 "operation unavailable in namespaces" inside one).
            root = self._new_client(namespace=None) if self.config.namespace else client
            health = root.sys.read_health_status(method="GET", standby_ok=True)
        self._check_health(health)
        with self._calling("look up", LOOKUP_SELF):
            client.auth.token.lookup_self()
        info = self._mount_info(client)
        if info is not None:
            problem = mount_problem(self.mount, info)
            if problem:
                raise ExternalError(problem)

    def capabilities(self, paths: list[str]) -> dict[str, list[str]]:
        """What the token may do on each secret (`vault token capabilities`), by its API
        path under the mount: `<mount>/data/<path>`."""
        api_paths = [self._api_path("data", _key(p)) for p in paths]
        client = self._client()
        with self._calling("ask for the token's capabilities on", "sys/capabilities-self"):
            answer = client.sys.get_capabilities(paths=api_paths)
        found = answer.get("data") if isinstance(answer.get("data"), dict) else answer
        return {p: [str(c) for c in found.get(a) or []] for p, a in zip(paths, api_paths, strict=True)}

    def read(self, path: str) -> tuple[dict[str, Any], int] | None:
        """The latest version's data and number; None when there is none or it is deleted/destroyed."""
        data, version = self._latest(_key(path))
        return None if data is None else (data, version)

    def write(self, path: str, data: dict[str, Any], cas: int | None) -> int:
        """Write a new version and return its number.

        `cas` is check-and-set: 0 means the secret must not exist (as `read` sees it: a deleted
        or destroyed latest version counts as absent), N that the current version must be N,
        None writes whatever is there. A lost check raises SecretChangedError.
        """
        key = _key(path)
        hide = _strings(data)
        try:
            return self._write(key, data, cas, hide)
        except _CasMismatch:
            pass
        current_data, current = self._latest(key)
        if cas == 0 and current_data is None and current > 0:
            # Vault keeps a deleted key's metadata and wants its version number as cas; the
            # retry is still a check-and-set, so a writer that got in first is not overwritten.
            try:
                return self._write(key, data, current, hide)
            except _CasMismatch:
                current = self._latest(key)[1]
        raise SecretChangedError(self.where(key), current)

    def delete(self, path: str, destroy: bool = False) -> bool:
        """Soft-delete the latest version (`vault kv undelete` brings it back), or with `destroy`
        remove the metadata and every version. False when there was nothing to delete."""
        import hvac.exceptions

        key = _key(path)
        client = self._client()
        if not destroy:
            if self._latest(key)[0] is None:
                return False
            with self._calling("delete", self._api_path("data", key)):
                client.secrets.kv.v2.delete_latest_version_of_secret(path=key, mount_point=self.mount)
            return True
        api_path = self._api_path("metadata", key)
        try:
            with self._calling("read", api_path, passthrough=(hvac.exceptions.InvalidPath,)):
                client.secrets.kv.v2.read_secret_metadata(path=key, mount_point=self.mount)
        except hvac.exceptions.InvalidPath as err:
            if err.errors:  # a 404 with words: no such mount, not a missing key
                raise self._refused(err, "read", api_path) from None
            return False
        with self._calling("destroy", api_path):
            client.secrets.kv.v2.delete_metadata_and_all_versions(path=key, mount_point=self.mount)
        return True

    # -- helpers ------------------------------------------------------------------------------

    def _client(self) -> Any:
        """The hvac client, in VAULT_NAMESPACE when it is set (made once)."""
        if self._hvac is None:
            self._hvac = self._new_client(self.config.namespace)
        return self._hvac

    def _new_client(self, namespace: str | None) -> Any:
        import hvac

        c = self.config
        verify: bool | str = True
        if c.skip_verify:
            verify = False
        elif c.cacert is not None:
            verify = str(c.cacert)
        elif c.capath is not None:
            verify = str(c.capath)
        return hvac.Client(
            url=c.addr, token=c.token, verify=verify, timeout=TIMEOUT_SECONDS, namespace=namespace
        )

    def _api_path(self, kind: str, key: str) -> str:
        return f"{self.mount}/{kind}/{key}"

    def _latest(self, key: str) -> tuple[dict[str, Any] | None, int]:
        """The latest version's data (None when deleted or destroyed) and its number; 0: no key."""
        import hvac.exceptions

        api_path = self._api_path("data", key)
        try:
            with self._calling("read", api_path, passthrough=(hvac.exceptions.InvalidPath,)):
                answer = self._client().secrets.kv.v2.read_secret_version(
                    path=key, mount_point=self.mount, raise_on_deleted_version=True
                )
        except hvac.exceptions.InvalidPath as err:
            if err.errors:
                raise self._refused(err, "read", api_path) from None
            # A deleted or destroyed latest version: Vault's 404 still carries its metadata.
            body = err.json if isinstance(err.json, dict) else {}
            metadata = (body.get("data") or {}).get("metadata") or {}
            version = metadata.get("version") if isinstance(metadata, dict) else None
            return None, version if isinstance(version, int) else 0
        data = answer.get("data") if isinstance(answer, dict) else None
        metadata = data.get("metadata") if isinstance(data, dict) else None
        version = metadata.get("version") if isinstance(metadata, dict) else None
        values = data.get("data") if isinstance(data, dict) else None
        if not isinstance(version, int) or not isinstance(values, dict | None):
            raise ExternalError(self._not_kv2())
        return values, version

    def _write(self, key: str, data: dict[str, Any], cas: int | None, hide: list[str]) -> int:
        import hvac.exceptions

        api_path = self._api_path("data", key)
        try:
            with self._calling("write", api_path, hide=hide, passthrough=(hvac.exceptions.InvalidRequest,)):
                answer = self._client().secrets.kv.v2.create_or_update_secret(
                    path=key, secret=data, cas=cas, mount_point=self.mount
                )
        except hvac.exceptions.InvalidRequest as err:
            detail = _detail(err, [self.config.token, *hide])
            if CAS_MISMATCH_WORDS in detail:
                raise _CasMismatch from None
            if CAS_REQUIRED_WORDS in detail:
                raise ExternalError(
                    f"Vault requires check-and-set for writes to {self.where(key)} (cas_required): "
                    "read the secret first and write with the version read."
                ) from None
            raise self._refused(err, "write", api_path, hide) from None
        body = answer.get("data") if isinstance(answer, dict) else None
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, int):
            raise ExternalError(self._not_kv2())
        return version

    def _check_health(self, health: Any) -> None:
        addr = self.config.addr
        if isinstance(health, dict):
            status, body = 200, health
        else:  # hvac hands back the response itself for any status but 200
            status = health.status_code
            try:
                body = health.json()
            except ValueError:
                body = None
        if not isinstance(body, dict) or "sealed" not in body or "initialized" not in body:
            raise ExternalError(
                f"{addr} answered Vault's health check with HTTP {status} but not as Vault does: "
                "check that VAULT_ADDR is Vault's address."
            )
        if not body["initialized"]:
            raise ExternalError(self._uninitialized())
        if body["sealed"]:
            raise ExternalError(self._sealed())

    def _mount_info(self, client: Any) -> dict[str, Any] | None:
        """The mount's type and options, or None when the token may not see them.

        The vault CLI's preflight (sys/internal/ui/mounts) answers any token allowed somewhere
        under the mount; the tune endpoint needs a policy on sys/, but also tells a missing
        mount (400) apart. When both refuse, reads and writes report what goes wrong.
        """
        import hvac.exceptions

        quiet = (hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath)
        for api_path in (f"sys/internal/ui/mounts/{self.mount}", f"sys/mounts/{self.mount}/tune"):
            try:
                with self._calling("read the configuration of", api_path, passthrough=quiet):
                    answer = client.adapter.get(f"/v1/{api_path}")
            except quiet:
                continue
            if isinstance(answer, dict):
                data = answer.get("data")
                return data if isinstance(data, dict) else answer
        return None

    @contextmanager
    def _calling(
        self,
        action: str,
        api_path: str,
        *,
        hide: Iterable[str] = (),
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> Iterator[None]:
        """Turn what hvac and requests raise into ExternalErrors (except `passthrough`)."""
        import warnings

        import hvac.exceptions
        import requests
        from urllib3.exceptions import InsecureRequestWarning

        try:
            with warnings.catch_warnings():
                # With VAULT_SKIP_VERIFY, self.warnings says it once; urllib3 would on every request.
                warnings.simplefilter("ignore", InsecureRequestWarning)
                yield
        except passthrough:
            raise
        except hvac.exceptions.VaultError as err:
            raise self._refused(err, action, api_path, hide) from None
        except requests.exceptions.RequestException as err:
            raise self._unreachable(err) from None

    def _refused(self, err: Exception, action: str, api_path: str, hide: Iterable[str] = ()) -> ExternalError:
        """The ExternalError for an error answer from Vault."""
        import hvac.exceptions

        addr, source = self.config.addr, self.config.token_source
        detail = _detail(err, [self.config.token, *hide])
        if isinstance(err, hvac.exceptions.VaultDown) and SEALED_WORDS in detail:
            return ExternalError(self._sealed())
        if isinstance(err, hvac.exceptions.VaultNotInitialized):
            return ExternalError(self._uninitialized())
        if isinstance(err, hvac.exceptions.Forbidden):
            if api_path == LOOKUP_SELF:
                return ExternalError(
                    f"Vault at {addr} did not accept the token from {source} (expired, revoked or "
                    "mistyped): run `vault login`, or set VAULT_TOKEN to a valid token."
                )
            return ExternalError(self._forbidden(action, api_path))
        if NAMESPACE_MISSING_WORDS in detail and self.config.namespace:
            return ExternalError(
                f"Vault at {addr} has no namespace {self.config.namespace} (VAULT_NAMESPACE): set "
                "VAULT_NAMESPACE to the namespace that holds the secrets, or unset it for the root namespace."
            )
        if any(words in detail for words in MOUNT_MISSING_WORDS):
            return ExternalError(
                f"Vault at {addr} has no secrets engine mounted at {self.mount}/: set VLLM_VAULT_MOUNT "
                f"to the KV version 2 mount that holds the secrets, or create this one "
                f"(`vault secrets enable -path={self.mount} kv-v2`)."
            )
        if isinstance(err, hvac.exceptions.RateLimitExceeded):
            return ExternalError(f"Vault at {addr} is rate-limiting requests: wait a moment and retry.")
        status = _STATUS_OF.get(type(err).__name__)
        said = f"HTTP {status}" if status else "an unexpected answer"
        if detail:
            said += f": {detail}"
        return ExternalError(
            f"Vault at {addr} failed to {action} {api_path} ({said}): check Vault's server log and retry."
        )

    def _forbidden(self, action: str, api_path: str) -> str:
        """Why a 403 on a secret: the capabilities the token lacks there, asked of Vault
        (sys/capabilities-self); when Vault will not say, the token itself is the suspect."""
        source = self.config.token_source
        needed = NEEDED_CAPABILITIES.get(action)
        granted: list[str] | None = None
        if needed:
            try:
                answer = self._client().sys.get_capabilities(paths=[api_path])
                found = answer.get("data") if isinstance(answer.get("data"), dict) else answer
                granted = [str(c) for c in found.get(api_path) or []]
            except Exception:  # a token Vault no longer accepts (revoked, expired) gets a 403 here too
                granted = None
        missing = []
        if granted is not None and "root" not in granted:
            missing = [c for c in needed or () if c not in granted]
        if not missing:
            return (
                f"Vault refused to {action} {api_path} with the token from {source} (expired, or not "
                f"allowed on that path): run `vault login`, or set VAULT_TOKEN to a token whose policy "
                f"allows {api_path}."
            )
        has = ", ".join(c for c in granted or [] if c != "deny") or "nothing"
        return (
            f"Vault refused to {action} {api_path}: the policy of the token from {source} grants "
            f"{has} there, not {' or '.join(missing)}; set VAULT_TOKEN to a token whose policy allows "
            f"{' and '.join(missing)} on {api_path}, or run `vault login` as someone it allows."
        )

    def _unreachable(self, err: Exception) -> ExternalError:
        """The ExternalError for a request that got no answer from Vault."""
        import requests

        addr, cacert = self.config.addr, self.config.cacert
        reason = _os_reason(err)
        if isinstance(err, requests.exceptions.SSLError):
            if "certificate verify failed" in reason:
                fix = (
                    f"check that VAULT_CACERT ({cacert}) holds the CA that signed Vault's certificate"
                    if cacert
                    else "set VAULT_CACERT to the PEM file of the CA that signed Vault's certificate"
                )
                return ExternalError(
                    f"cannot reach Vault at {addr} (VAULT_ADDR): TLS verification failed ({reason}); {fix}."
                )
            return ExternalError(
                f"cannot reach Vault at {addr} (VAULT_ADDR): the TLS handshake failed ({reason}); "
                "check the address's scheme (http or https) and port."
            )
        if isinstance(err, requests.exceptions.Timeout):
            return ExternalError(
                f"Vault at {addr} (VAULT_ADDR) did not answer within {TIMEOUT_SECONDS} seconds: "
                "check the address, the network and that Vault is running."
            )
        return ExternalError(
            f"cannot reach Vault at {addr} (VAULT_ADDR): {reason}; check that Vault is running "
            "there and that VAULT_ADDR is right."
        )

    def _uninitialized(self) -> str:
        return (
            f"Vault at {self.config.addr} is not initialized: initialize it (`vault operator init`), "
            "unseal it and retry."
        )

    def _sealed(self) -> str:
        return f"Vault at {self.config.addr} is sealed: unseal it (`vault operator unseal`) and retry."

    def _not_kv2(self) -> str:
        return (
            f"the Vault mount {self.mount}/ did not answer as KV version 2 does: set VLLM_VAULT_MOUNT "
            "to the KV version 2 mount that holds the secrets."
        )


def _key(path: str) -> str:
    key = path.strip("/")
    if not key:
        raise ValueError("a secret path is needed")
    return key


def _strings(value: Any) -> list[str]:
    """Every string inside a value: what must never appear in a message."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _detail(err: Exception, hide: Iterable[str]) -> str:
    """Vault's error words on one line, without the token or any secret value."""
    errors = getattr(err, "errors", None)
    text = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
    # Vault's ACL wraps refusals in a multierror: "1 error occurred:\n\t* permission denied".
    text = re.sub(r"\d+ errors? occurred:", "", text)
    text = " ".join(text.replace("\t* ", " ").split())
    for secret in hide:
        if secret and secret in text:
            if len(secret) < 4:
                return ""  # too short to replace without mangling the words: drop them
            text = text.replace(secret, "<hidden>")
    return text[:300]


def _os_reason(err: BaseException) -> str:
    """The operating system's or TLS library's reason under a requests failure, in lower case."""
    import ssl

    queue: list[BaseException] = [err]
    seen: set[int] = set()
    last: BaseException = err
    while queue:
        exc = queue.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        last = exc
        if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
            return f"certificate verify failed: {exc.verify_message}"
        if isinstance(exc, OSError) and isinstance(exc.strerror, str) and exc.strerror:
            return _tidy(exc.strerror)
        queue.extend(arg for arg in exc.args if isinstance(arg, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            inner = getattr(exc, attr, None)
            if isinstance(inner, BaseException):
                queue.append(inner)
    return _tidy(str(last)) or "the connection failed"


def _tidy(reason: str) -> str:
    # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" -> "wrong version number"
    reason = re.sub(r"^\[[A-Z_]+: [A-Z_]+\] ", "", reason.strip())
    reason = re.sub(r" \(_ssl\.c:\d+\)$", "", reason)
    return reason[:1].lower() + reason[1:]
