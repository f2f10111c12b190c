"""A stand-in for HashiCorp Vault: its HTTP API for the KV version 2 secrets engine and the few
system endpoints that `hvac` (and the External Secrets Operator's Go client) call, on 127.0.0.1.

What it serves (paths under /v1/), with the real behaviour each follows:

- `sys/health` (GET and HEAD, no token): the JSON of an initialized, active node; 200 when
  unsealed, 503 when sealed, and the query parameters `standbyok`, `perfstandbyok`, `activecode`,
  `standbycode`, `drsecondarycode`, `performancestandbycode`, `sealedcode`, `uninitcode` choose the
  status code as in Vault (`sealedcode=200` gives 200 with `"sealed": true`). The node is never a
  standby, so the standby codes never apply. Answers while sealed, like `sys/seal-status`.
- `sys/seal-status` (no token): Shamir seal with one key share (t = n = 1).
- `sys/mounts` and `sys/mounts/<path>/tune` (GET): the KV mounts plus `sys/`, in Vault's shape
  (the mount table both at the top level and under `data`); `options.version` is "2", which is
  what clients look at to pick the KV v2 API. A tune read of a path with no mount is a 400
  `cannot fetch sysview for path "<path>/"`.
- `sys/capabilities-self` (POST `{"paths": [...]}`): per path `["root"]` for the root token, the
  five KV capabilities on a limited token's allowed paths, else `["deny"]`.
- `auth/token/lookup-self`: the token's own entry; every valid token may call it, as Vault's
  `default` policy allows.
- KV v2 on every KV mount (`secret/` by default), as vault-plugin-secrets-kv does it:
  `data/<path>` read (`?version=N`, 0 or absent = latest), write (`options.cas`; a new key has
  version 0), soft-delete of the latest version (DELETE); `delete/`, `undelete/`, `destroy/`
  with `versions` (a list or a comma-separated string); `metadata/<path>` read, write
  (`max_versions`, `cas_required`, `delete_version_after`, `custom_metadata`; a write to a key
  that does not exist creates metadata without versions), delete (metadata and every version),
  and list (HTTP method LIST, or GET with `?list=true`, which is what the Go client sends;
  folders end in `/`; an empty listing is a 404, as in Vault); `config` read and write
  (mount-wide `max_versions`, `cas_required`).
  Version bookkeeping copies the plugin: versions are kept up to `max(key max_versions, mount
  max_versions)` or 10 when both are 0, the oldest are dropped on the next write, and
  `oldest_version` stays 0 until the first drop. Times are RFC 3339 in UTC with Go's trimmed
  nanosecond fraction ("2024-01-02T03:04:05.5Z"), and an unset time is "".

Status codes and bodies (what hvac maps to its exceptions, 400 InvalidRequest, 403 Forbidden,
404 InvalidPath, 503 VaultDown):

- Success is Vault's envelope (`request_id`, `lease_id`, `renewable`, `lease_duration`, `data`,
  `wrap_info`, `warnings`, `auth`, `mount_type`) with `Content-Type: application/json` exactly:
  hvac only reads `errors` from a body whose type is exactly that, so there is no charset.
  Writes that return nothing in Vault return 204 here too.
- No token or an unknown one: 403 `{"errors": ["permission denied"]}`. A valid token outside its
  allowed paths: 403 with the wording Vault's ACL check produces,
  `{"errors": ["1 error occurred:\\n\\t* permission denied\\n\\n"]}`.
- A missing secret, version or metadata: 404 `{"errors": []}`. Reading a version that is
  soft-deleted or destroyed: 404 whose body is the whole envelope with `data.data` null and the
  version's metadata (`deletion_time` set, or `destroyed` true), which hvac hands back when
  called with `raise_on_deleted_version=False`.
- CAS: 400 `check-and-set parameter did not match the current version`, or
  `check-and-set parameter required for this call` when the key or mount requires it.
- A path under no mount: 404 `no handler for route "<path>". route entry not found.`; a path of a
  KV mount that KV v2 does not have: 404 `unsupported path`; a method the path does not take:
  405 `unsupported operation`.
- Sealed: everything but `sys/health` and `sys/seal-status` is 503 `{"errors": ["Vault is
  sealed"]}`, before the token is looked at, as in Vault.

Tokens: the root token may do anything; `add_token(token, allowed_paths)` adds one limited to
request paths (without `/v1/`) that start with one of the given prefixes, for example
`["secret/data/team-a/", "secret/metadata/team-a/"]`; a trailing `*` is accepted and ignored, so
Vault policy paths read naturally. This stands in for policies: capabilities (read vs. write)
are not told apart. The token is read from `X-Vault-Token`, else `Authorization: Bearer`.

Namespaces (`X-Vault-Namespace`): each namespace is a separate key space for KV data, so a secret
written in one is not found from another (the empty namespace is the root one). Mounts and
tokens are shared by every namespace, which Vault Enterprise does not do; it keeps the stand-in
small while still catching a client that sends the wrong namespace. Namespaces in the URL path
(`/v1/<ns>/secret/...`) are not understood.

Left out: every other auth method and secrets engine (KV v1, transit, PKI, ...), `sys/seal`,
`sys/unseal` and `sys/init` over HTTP (flip `sealed` instead), policies by name, leases and TTLs,
response wrapping, HTTP PATCH (JSON merge patch) on `data/` and `metadata/` (hvac's
`kv.v2.patch` reads and then writes with CAS, which works), `subkeys/`, automatic deletion by
`delete_version_after` (stored and echoed, not enforced, and not normalised to Go's duration
text), the `sys/internal/ui/mounts` preflight of the `vault` CLI, and request forwarding or
standbys.

The non-standard LIST method: aiohttp's C HTTP parser (llhttp) refuses it with a 400 before any
handler runs, so `app()` makes the connections of this server alone use aiohttp's pure-Python
parser, which accepts any method token (see `_accept_list_method`). That leans on aiohttp
internals; if they move, LIST breaks, GET `?list=true` keeps working and the test of LIST fails.

Threading: all state lives on the LoopThread's loop. Call the Python-side methods (`read_secret`,
`write_secret`, `add_token`, `add_kv_mount`, `reset`, setting `sealed`) on that thread, e.g.
`lt.call(vault.read_secret, "secret", "app/db", token)`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import http_parser, web, web_protocol, web_server

VAULT_VERSION = "1.17.6"
# KV v2 keeps this many versions when neither the key nor the mount sets max_versions.
DEFAULT_MAX_VERSIONS = 10
# Token TTL Vault gives mounts by default (32 days); only shown in tune reads.
DEFAULT_LEASE_TTL = 2764800
DENIED = "permission denied"
# The ACL check wraps its refusal in a multierror; a bad token gets the plain text above.
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
SEALED = "Vault is sealed"
CAS_MISMATCH = "check-and-set parameter did not match the current version"
CAS_REQUIRED = "check-and-set parameter required for this call"

Json = dict[str, Any]


class VaultError(Exception):
    """A refusal with Vault's status code; `errors` is what goes into the JSON body."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(f"{status} {message}".strip())
        self.status = status
        self.message = message

    @property
    def errors(self) -> list[str]:
        # A plain "not found" carries no message: Vault answers `{"errors": []}`.
        return [self.message] if self.message else []


def _rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: the fraction loses trailing zeros, or goes entirely."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _parse_bool(value: str) -> bool | None:
    """strconv.ParseBool, which Vault uses for query flags; None when it is not a boolean."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return None


def _as_int(value: Any) -> int | None:
    """mapstructure's weak decoding of an integer field: ints, integral floats, numeric strings."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip() or "0")
        except ValueError:
            return None
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _parse_bool(value)
    if isinstance(value, int):
        return value != 0
    return None


def _versions_param(body: Json) -> list[int] | None:
    """KV's `versions` field (TypeCommaIntSlice): a list of ints or a comma-separated string."""
    raw = body.get("versions")
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else [raw]
    out: list[int] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        number = _as_int(item)
        if number is None:
            return None
        out.append(number)
    return out


def _json(status: int, payload: Any) -> web.Response:
    # Exactly "application/json", no charset: hvac reads `errors` only from that content type.
    # Compact separators, as Go's encoder writes them.
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _no_content() -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


def _envelope(data: Any, mount_type: str = "kv") -> Json:
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": None,
        "mount_type": mount_type,
    }


def _stable_id(*parts: str) -> str:
    # Accessors and UUIDs derived from names: the same stand-in gives the same answers each run.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "vault-sandbox:" + ":".join(parts)))


@dataclass
class _Version:
    data: Json | None  # None once destroyed: the data is gone, only the metadata stays
    created_time: str
    deletion_time: str = ""
    destroyed: bool = False

    @property
    def readable(self) -> bool:
        # Deletion happens "now" here (delete_version_after is not enforced), so any set
        # deletion_time is already in the past, which is when Vault stops returning the data.
        return not self.deletion_time and not self.destroyed

    def metadata(self) -> Json:
        return {
            "created_time": self.created_time,
            "deletion_time": self.deletion_time,
            "destroyed": self.destroyed,
        }


@dataclass
class _Key:
    """A KV v2 key's metadata, which holds its versions (Vault's KeyMetadata)."""

    created_time: str
    updated_time: str
    versions: dict[int, _Version] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: str = "0s"
    custom_metadata: dict[str, str] | None = None


@dataclass
class _Mount:
    path: str  # without slashes at either end, e.g. "secret" or "team/kv"
    description: str = "key/value secret storage"
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: str = "0s"

    def entry(self) -> Json:
        return {
            "accessor": "kv_" + hashlib.sha256(self.path.encode()).hexdigest()[:8],
            "config": {"default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0},
            "description": self.description,
            "external_entropy_access": False,
            "local": False,
            "options": {"version": "2"},
            "plugin_version": "",
            "running_plugin_version": "v0.20.0+builtin",
            "running_sha256": "",
            "seal_wrap": False,
            "type": "kv",
            "uuid": _stable_id("mount", self.path),
        }


@dataclass
class _Token:
    token: str
    allowed: tuple[str, ...] | None  # None: root, every path
    creation_time: int

    def may(self, path: str) -> bool:
        return self.allowed is None or any(path.startswith(prefix) for prefix in self.allowed)

    def capabilities(self, path: str) -> list[str]:
        if self.allowed is None:
            return ["root"]
        return ["create", "delete", "list", "read", "update"] if self.may(path) else ["deny"]

    def lookup(self) -> Json:
        root = self.allowed is None
        return {
            "accessor": _stable_id("accessor", self.token).replace("-", "")[:24],
            "creation_time": self.creation_time,
            "creation_ttl": 0,
            "display_name": "root" if root else "token",
            "entity_id": "",
            "expire_time": None,
            "explicit_max_ttl": 0,
            "id": self.token,
            "meta": None,
            "num_uses": 0,
            "orphan": root,
            "path": "auth/token/root" if root else "auth/token/create",
            "policies": ["root"] if root else ["default"],
            "ttl": 0,
            "type": "service",
        }


# The parser aiohttp picked at import (llhttp's, unless AIOHTTP_NO_EXTENSIONS is set).
_AIOHTTP_REQUEST_PARSER = web_protocol.HttpRequestParser  # type: ignore[attr-defined]


class _ListMethodServer(web_server.Server):
    """aiohttp's Server, but the connections it makes parse requests with the Python parser."""

    def __call__(self) -> web_protocol.RequestHandler:
        # RequestHandler.__init__ builds its parser from this module global. The swap lasts for
        # one synchronous constructor call on the loop thread, and the original is restored from
        # the value saved at import, so a concurrent swap elsewhere cannot leave it changed.
        web_protocol.HttpRequestParser = http_parser.HttpRequestParserPy  # type: ignore[attr-defined]
        try:
            return super().__call__()
        finally:
            web_protocol.HttpRequestParser = _AIOHTTP_REQUEST_PARSER  # type: ignore[attr-defined]


def _accept_list_method(app: web.Application) -> None:
    """Make `app`'s server accept Vault's LIST method, which llhttp (aiohttp's C parser) rejects.

    Only the server made for this app changes; the other stand-ins keep the C parser.
    """
    make_handler = app._make_handler

    def make_list_handler(**kwargs: Any) -> web_server.Server:
        server = make_handler(**kwargs)
        server.__class__ = _ListMethodServer  # same state, only __call__ differs
        return server

    # object.__setattr__: aiohttp's debug mode warns on new Application attributes.
    object.__setattr__(app, "_make_handler", make_list_handler)


class VaultStandIn:
    """Vault's state (tokens, KV mounts, secrets, the seal) and the aiohttp app serving it.

    `root_token` defaults to a random `hvs.` token; `clock` (returning an aware datetime) makes
    the times in responses predictable in tests.
    """

    def __init__(
        self,
        root_token: str | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        cluster_name: str = "vault-cluster-sandbox",
    ) -> None:
        self.root_token = root_token or "hvs." + secrets.token_hex(12)
        self.cluster_name = cluster_name
        self.cluster_id = _stable_id("cluster", cluster_name)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.sealed = False
        self._tokens: dict[str, _Token] = {}
        self._mounts: dict[str, _Mount] = {}
        # (namespace, mount path) -> key path -> key
        self._kv: dict[tuple[str, str], dict[str, _Key]] = {}
        self.reset()

    # -- Python-side API (call on the loop thread) ------------------------------------------

    def reset(self) -> None:
        """Back to a fresh dev server: unsealed, only the root token, an empty `secret/` mount."""
        self.sealed = False
        self._tokens = {self.root_token: _Token(self.root_token, None, self._unix())}
        self._mounts = {"secret": _Mount("secret")}
        self._kv = {}

    def add_token(self, token: str, allowed_paths: list[str] | None = None) -> None:
        """Accept `token`; with `allowed_paths`, only for request paths starting with one of them."""
        allowed = None
        if allowed_paths is not None:
            allowed = tuple(p.lstrip("/").removesuffix("*") for p in allowed_paths)
        self._tokens[token] = _Token(token, allowed, self._unix())

    def remove_token(self, token: str) -> None:
        """Revoke `token`: it gets 403 from now on."""
        self._tokens.pop(token, None)

    def add_kv_mount(
        self,
        path: str,
        *,
        max_versions: int = 0,
        cas_required: bool = False,
        description: str = "key/value secret storage",
    ) -> None:
        """Mount a KV version 2 engine at `path` (like `vault secrets enable -path=P kv-v2`)."""
        name = path.strip("/")
        if not name or name == "sys" or name.startswith(("sys/", "auth/")):
            raise ValueError(f"cannot mount a KV engine at {path!r}")
        self._mounts[name] = _Mount(name, description, max_versions, cas_required)

    def read_secret(
        self,
        mount: str,
        path: str,
        token: str,
        *,
        namespace: str = "",
        version: int | None = None,
    ) -> Json | None:
        """The data a client reading `<mount>/data/<path>` with `token` would get.

        None when there is nothing to read: no such key or version, or the version asked for
        (the latest by default) is soft-deleted or destroyed. Like Vault, a deleted latest
        version does not fall back to an older one. The values are the JSON values as written
        (usually strings). Raises VaultError: 503 sealed, 403 bad token or path not allowed,
        404 no such mount.
        """
        name, key_path = mount.strip("/"), path.strip("/")
        self._admit(token, f"{name}/data/{key_path}")
        kv_mount = self._kv_mount(name, key_path)
        key = self._keys(namespace, kv_mount).get(key_path)
        if key is None:
            return None
        entry = key.versions.get(version or key.current_version)
        if entry is None or not entry.readable:
            return None
        return copy.deepcopy(entry.data)

    def write_secret(self, mount: str, path: str, data: Mapping[str, Any], *, namespace: str = "") -> int:
        """Write a new version without a token or CAS (test seeding); returns its number."""
        name, key_path = mount.strip("/"), path.strip("/")
        kv_mount = self._kv_mount(name, key_path)
        keys = self._keys(namespace, kv_mount)
        key = keys.get(key_path) or self._new_key()
        self._add_version(kv_mount, key, dict(data))
        keys[key_path] = key
        return key.current_version

    def _kv_mount(self, name: str, key_path: str) -> _Mount:
        mount = self._mounts.get(name)
        if mount is None:
            raise VaultError(404, f'no handler for route "{name}/data/{key_path}". route entry not found.')
        return mount

    # -- the HTTP app -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self._handle)
        _accept_list_method(app)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except VaultError as err:
            return _json(err.status, {"errors": err.errors})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        # hvac and the Go client collapse "//" too; Vault's router never sees empty segments.
        tail = "/".join(part for part in request.match_info["tail"].split("/") if part)
        if request.match_info["tail"].endswith("/") and tail:
            tail += "/"
        op = self._operation(request)
        if op == "list" and not tail.endswith("/"):
            # Vault lists a path as the folder it names: "metadata/app" lists "metadata/app/".
            tail += "/"

        # Unauthenticated, and they answer while sealed: this is how clients see the seal.
        if tail == "sys/health":
            return self._health(request)
        if tail == "sys/seal-status":
            self._require(op, "read")
            return _json(200, self._seal_status())
        if self.sealed:
            raise VaultError(503, SEALED)
        token = self._token_of(request)

        if tail == "auth/token/lookup-self":
            # Vault's default policy lets every token look itself up.
            self._require(op, "read", "write")
            return _json(200, _envelope(token.lookup(), "token"))
        if tail == "sys/capabilities-self":
            # Also in the default policy. Answers per path, plus "capabilities" for the first.
            self._require(op, "write")
            paths = [str(p).lstrip("/") for p in (await request.json()).get("paths") or []]
            found: Json = {p: token.capabilities(p) for p in paths}
            if paths:
                found["capabilities"] = found[paths[0]]
            return _json(200, {**found, "data": dict(found)})
        if not token.may(tail):
            raise VaultError(403, ACL_DENIED)
        if tail == "sys/mounts":
            self._require(op, "read")
            return self._sys_mounts()
        if tail.startswith("sys/mounts/") and tail.endswith("/tune"):
            self._require(op, "read")
            return self._sys_tune(tail.removeprefix("sys/mounts/"))

        found = self._mount_of(tail)
        if found is None:
            raise VaultError(404, f'no handler for route "{tail}". route entry not found.')
        mount, rest = found
        namespace = request.headers.get("X-Vault-Namespace", "").strip("/")
        body = await self._body(request) if op == "write" else {}
        return self._kv_request(namespace, mount, rest, op, request, body)

    @staticmethod
    def _operation(request: web.Request) -> str:
        method = request.method
        if method in ("GET", "HEAD"):
            return "list" if _parse_bool(request.query.get("list", "")) else "read"
        return {"LIST": "list", "POST": "write", "PUT": "write", "DELETE": "delete"}.get(method, method)

    @staticmethod
    def _require(op: str, *allowed: str) -> None:
        if op not in allowed:
            raise VaultError(405, "unsupported operation")

    def _token_of(self, request: web.Request) -> _Token:
        value = request.headers.get("X-Vault-Token", "")
        if not value:
            scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
            value = rest.strip() if scheme.lower() == "bearer" else ""
        token = self._tokens.get(value) if value else None
        if token is None:
            raise VaultError(403, DENIED)
        return token

    def _admit(self, token: str, path: str) -> None:
        """The checks a request goes through before reaching an engine, in Vault's order."""
        if self.sealed:
            raise VaultError(503, SEALED)
        entry = self._tokens.get(token)
        if entry is None:
            raise VaultError(403, DENIED)
        if not entry.may(path):
            raise VaultError(403, ACL_DENIED)

    @staticmethod
    async def _body(request: web.Request) -> Json:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as err:
            raise VaultError(400, f"failed to parse JSON input: {err}") from err
        if not isinstance(body, dict):
            raise VaultError(400, "failed to parse JSON input: not a JSON object")
        return body

    def _now(self) -> str:
        return _rfc3339(self._clock())

    def _unix(self) -> int:
        return int(self._clock().timestamp())

    # -- sys ------------------------------------------------------------------------------------

    def _health(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            raise VaultError(405, "unsupported operation")
        codes = {"activecode": 200, "sealedcode": 503, "uninitcode": 501}
        for name in codes:
            if name in request.query:
                try:
                    codes[name] = int(request.query[name])
                except ValueError as err:
                    raise VaultError(400, f"unable to parse {name} code: {err}") from err
        body: Json = {
            "initialized": True,
            "sealed": self.sealed,
            "standby": self.sealed,  # a sealed node reports itself as standby
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": self._unix(),
            "version": VAULT_VERSION,
            "enterprise": False,
            "echo_duration_ms": 0,
            "clock_skew_ms": 0,
        }
        if not self.sealed:
            body |= {"cluster_name": self.cluster_name, "cluster_id": self.cluster_id}
        # The node is initialized and never a standby, so only these two codes can apply.
        return _json(codes["sealedcode"] if self.sealed else codes["activecode"], body)

    def _seal_status(self) -> Json:
        body: Json = {
            "type": "shamir",
            "initialized": True,
            "sealed": self.sealed,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": VAULT_VERSION,
            "build_date": "2024-09-26T11:02:48Z",
            "migration": False,
            "recovery_seal": False,
            "storage_type": "inmem",
        }
        if not self.sealed:
            body |= {"cluster_name": self.cluster_name, "cluster_id": self.cluster_id}
        return body

    def _sys_mounts(self) -> web.Response:
        table = {f"{m.path}/": m.entry() for m in self._mounts.values()}
        table["sys/"] = {
            "accessor": "system_" + hashlib.sha256(b"sys").hexdigest()[:8],
            "config": {"default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0},
            "description": "system endpoints used for control, policy and debugging",
            "external_entropy_access": False,
            "local": False,
            "options": None,
            "plugin_version": "",
            "running_plugin_version": f"v{VAULT_VERSION}+builtin.vault",
            "running_sha256": "",
            "seal_wrap": True,
            "type": "system",
            "uuid": _stable_id("mount", "sys"),
        }
        table = dict(sorted(table.items()))
        # sys/ answers carry the data at the top level as well, for old clients.
        return _json(200, table | _envelope(table, "system"))

    def _sys_tune(self, path: str) -> web.Response:
        name = path.removesuffix("/tune").strip("/")
        mount = self._mounts.get(name)
        if mount is None:
            raise VaultError(400, f'cannot fetch sysview for path "{name}/"')
        data = {
            "description": mount.description,
            "default_lease_ttl": DEFAULT_LEASE_TTL,
            "max_lease_ttl": DEFAULT_LEASE_TTL,
            "force_no_cache": False,
            "options": {"version": "2"},
        }
        return _json(200, data | _envelope(data, "system"))

    # -- KV version 2 ---------------------------------------------------------------------------

    def _mount_of(self, tail: str) -> tuple[_Mount, str] | None:
        """The mount a request path falls under (longest match) and the rest of the path."""
        best: _Mount | None = None
        for mount in self._mounts.values():
            if (tail == mount.path or tail.startswith(mount.path + "/")) and (
                best is None or len(mount.path) > len(best.path)
            ):
                best = mount
        if best is None:
            return None
        return best, tail[len(best.path) + 1 :]

    def _keys(self, namespace: str, mount: _Mount) -> dict[str, _Key]:
        return self._kv.setdefault((namespace.strip("/"), mount.path), {})

    def _new_key(self) -> _Key:
        now = self._now()
        return _Key(created_time=now, updated_time=now)

    def _add_version(self, mount: _Mount, key: _Key, data: Json) -> _Version:
        """Append a version and drop the oldest beyond max_versions (the plugin's AddVersion)."""
        entry = _Version(copy.deepcopy(data), self._now())
        key.current_version += 1
        key.versions[key.current_version] = entry
        key.updated_time = entry.created_time
        keep = max(key.max_versions, mount.max_versions) or DEFAULT_MAX_VERSIONS
        if key.current_version - key.oldest_version >= keep:
            last_dropped = key.current_version - keep
            for number in range(key.oldest_version, last_dropped + 1):
                key.versions.pop(number, None)
            key.oldest_version = last_dropped + 1
        return entry

    def _kv_request(
        self, namespace: str, mount: _Mount, rest: str, op: str, request: web.Request, body: Json
    ) -> web.Response:
        kind, _, path = rest.partition("/")
        keys = self._keys(namespace, mount)
        if kind == "config" and not path:
            return self._kv_config(mount, op, body)
        if kind == "data" and path and not path.endswith("/"):
            self._require(op, "read", "write", "delete")
            if op == "read":
                return self._data_read(keys, path, request)
            if op == "write":
                return self._data_write(mount, keys, path, body)
            return self._data_delete(keys, path)
        if kind in ("delete", "undelete", "destroy") and path:
            self._require(op, "write")
            return self._versions_op(kind, keys, path, body)
        if kind == "metadata":
            self._require(op, "read", "list", "write", "delete")
            if op == "list":
                return self._metadata_list(keys, path)
            if not path:
                raise VaultError(404, "unsupported path")
            if op == "read":
                return self._metadata_read(keys, path)
            if op == "write":
                return self._metadata_write(keys, path, body)
            keys.pop(path, None)
            return _no_content()
        raise VaultError(404, "unsupported path")

    def _kv_config(self, mount: _Mount, op: str, body: Json) -> web.Response:
        self._require(op, "read", "write")
        if op == "read":
            data = {
                "cas_required": mount.cas_required,
                "delete_version_after": mount.delete_version_after,
                "max_versions": mount.max_versions,
            }
            return _json(200, _envelope(data))
        if "max_versions" in body:
            mount.max_versions = self._field_int(body, "max_versions")
        if "cas_required" in body:
            mount.cas_required = self._field_bool(body, "cas_required")
        if "delete_version_after" in body:
            mount.delete_version_after = str(body["delete_version_after"])
        return _no_content()

    @staticmethod
    def _field_int(body: Json, name: str) -> int:
        value = _as_int(body[name])
        if value is None:
            raise VaultError(400, f"error converting input {body[name]!r} for field {name!r}")
        return value

    @staticmethod
    def _field_bool(body: Json, name: str) -> bool:
        value = _as_bool(body[name])
        if value is None:
            raise VaultError(400, f"error converting input {body[name]!r} for field {name!r}")
        return value

    def _data_read(self, keys: dict[str, _Key], path: str, request: web.Request) -> web.Response:
        version = 0
        if "version" in request.query:
            parsed = _as_int(request.query["version"])
            if parsed is None:
                raise VaultError(
                    400, f"error converting input {request.query['version']!r} for field 'version'"
                )
            version = parsed
        key = keys.get(path)
        if key is None:
            raise VaultError(404)
        number = version if version > 0 else key.current_version
        entry = key.versions.get(number)
        if entry is None:
            raise VaultError(404)
        data = {
            "data": copy.deepcopy(entry.data) if entry.readable else None,
            "metadata": {"version": number, **entry.metadata(), "custom_metadata": key.custom_metadata},
        }
        # A deleted or destroyed version: Vault still sends the envelope, with a 404.
        return _json(200 if entry.readable else 404, _envelope(data))

    def _data_write(self, mount: _Mount, keys: dict[str, _Key], path: str, body: Json) -> web.Response:
        data = body.get("data")
        if not isinstance(data, dict):
            raise VaultError(400, "no data provided")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise VaultError(400, "error converting input for field 'options'")
        key = keys.get(path) or self._new_key()
        if options.get("cas") is not None:
            cas = _as_int(options["cas"])
            if cas is None:
                raise VaultError(400, "error parsing check-and-set parameter")
            if cas != key.current_version:
                raise VaultError(400, CAS_MISMATCH)
        elif mount.cas_required or key.cas_required:
            raise VaultError(400, CAS_REQUIRED)
        entry = self._add_version(mount, key, data)
        keys[path] = key
        out = {"version": key.current_version, **entry.metadata(), "custom_metadata": key.custom_metadata}
        return _json(200, _envelope(out))

    def _data_delete(self, keys: dict[str, _Key], path: str) -> web.Response:
        key = keys.get(path)
        latest = key.versions.get(key.current_version) if key else None
        # Already deleted or destroyed: nothing changes, and it is still a 204.
        if latest is not None and latest.readable:
            latest.deletion_time = self._now()
        return _no_content()

    def _versions_op(self, kind: str, keys: dict[str, _Key], path: str, body: Json) -> web.Response:
        versions = _versions_param(body)
        if versions is None:
            raise VaultError(400, "error converting input for field 'versions'")
        if not versions:
            # The plugin words this one differently for destroy.
            raise VaultError(
                400, "no version number provided" if kind == "destroy" else "No version number provided"
            )
        key = keys.get(path)
        if key is None:
            return _no_content()
        now = self._now()
        for number in versions:
            entry = key.versions.get(number)
            if entry is None or entry.destroyed:
                continue
            if kind == "delete" and not entry.deletion_time:
                entry.deletion_time = now
            elif kind == "undelete":
                entry.deletion_time = ""
            elif kind == "destroy":
                entry.destroyed = True
                entry.data = None
        return _no_content()

    def _metadata_read(self, keys: dict[str, _Key], path: str) -> web.Response:
        key = keys.get(path)
        if key is None:
            raise VaultError(404)
        data = {
            "versions": {str(n): v.metadata() for n, v in sorted(key.versions.items())},
            "current_version": key.current_version,
            "oldest_version": key.oldest_version,
            "created_time": key.created_time,
            "updated_time": key.updated_time,
            "max_versions": key.max_versions,
            "cas_required": key.cas_required,
            "delete_version_after": key.delete_version_after,
            "custom_metadata": key.custom_metadata,
        }
        return _json(200, _envelope(data))

    def _metadata_write(self, keys: dict[str, _Key], path: str, body: Json) -> web.Response:
        fields = ("max_versions", "cas_required", "delete_version_after", "custom_metadata")
        if not any(name in body for name in fields):
            return _no_content()  # Vault writes nothing, not even an empty key
        custom: dict[str, str] | None = None
        if "custom_metadata" in body:
            raw = body["custom_metadata"]
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                raise VaultError(400, "custom_metadata validation failed: values must be strings")
            custom = dict(raw)
        key = keys.get(path) or self._new_key()
        if "max_versions" in body:
            key.max_versions = self._field_int(body, "max_versions")
        if "cas_required" in body:
            key.cas_required = self._field_bool(body, "cas_required")
        if "delete_version_after" in body:
            key.delete_version_after = str(body["delete_version_after"])
        if custom is not None:
            key.custom_metadata = custom
        keys[path] = key
        return _no_content()

    @staticmethod
    def _metadata_list(keys: dict[str, _Key], folder: str) -> web.Response:
        children: set[str] = set()
        for path in keys:
            if path.startswith(folder):
                head, slash, _ = path[len(folder) :].partition("/")
                children.add(head + slash)
        if not children:
            raise VaultError(404)  # Vault answers an empty listing with 404 {"errors": []}
        return _json(200, _envelope({"keys": sorted(children)}))
