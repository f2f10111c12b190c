"""The Kubernetes API stand-in: an aiohttp application speaking the API server's REST
protocol (discovery, OpenAPI v3, CRUD, the four patch types, watch, Table output, pod
logs and port-forward) over the object store, with bearer-token authentication.

Which real behaviour each part follows, and what is left out, is in tests/sandbox/README.md.
"""

from __future__ import annotations

import asyncio
import json
import re
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from aiohttp import web

from tests.sandbox.kube import patch as patches
from tests.sandbox.kube import protobuf, schemas, selectors, tables
from tests.sandbox.kube.errors import ApiError, query_bool
from tests.sandbox.kube.resources import BUILTINS, Resource, from_crd
from tests.sandbox.kube.store import Event, Obj, Store, Watcher

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
WARNINGS = web.RequestKey("warnings", list)
APPLY_TYPES = ("application/apply-patch+yaml", "application/apply-patch+json")


@dataclass
class Fault:
    """A switched-on failure: requests whose method and path match get `status` (or hang
    for `delay` seconds first), `times` times (None = until removed)."""

    method: str
    path: str  # a regular expression searched in the request path
    status: int = 500
    delay: float = 0.0
    times: int | None = None


LogsHandler = Callable[[web.Request, str, str], Awaitable[web.StreamResponse]]
PortForwardHandler = Callable[[web.Request, str, str], Awaitable[web.StreamResponse]]


class KubeApi:
    def __init__(self, store: Store, token: str) -> None:
        self.store = store
        self.token = token
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query), for tests that count calls
        self.denied: set[tuple[str, str]] = set()  # SelfSubjectAccessReviews answered "no"
        self.errors: list[str] = []  # tracebacks of stand-in bugs; the test suite checks it stays empty
        self.logs_handler: LogsHandler | None = None
        self.portforward_handler: PortForwardHandler | None = None
        self.address = "127.0.0.1:0"
        self._crd_resources: list[Resource] = []
        # Kinds an aggregated API server would add (metrics-server's metrics.k8s.io): served
        # for discovery when a test or the sandbox's config puts them here.
        self.aggregated: list[Resource] = []
        store.listeners.append(self._on_event)

    # --- the kinds served ------------------------------------------------------------

    @property
    def resources(self) -> list[Resource]:
        return BUILTINS + self._crd_resources + self.aggregated

    def _on_event(self, event: Event) -> None:
        if event.key[1] == "customresourcedefinitions":
            self._crd_resources = [
                r
                for crd in self.store.iter_raw("apiextensions.k8s.io", "customresourcedefinitions")
                if _established(crd)
                for r in from_crd(crd)
            ]

    def resource(self, group: str, version: str, plural: str) -> Resource:
        for r in self.resources:
            if r.group == group and r.version == version and r.plural == plural:
                return r
        raise ApiError(404, "the server could not find the requested resource", reason="NotFound", details={})

    def by_kind(self, api_version: str, kind: str) -> Resource:
        group, _, version = api_version.rpartition("/")
        for r in self.resources:
            if r.group == group and r.version == version and r.kind == kind:
                return r
        raise KeyError(f"{api_version} {kind}")

    # --- the application ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        try:
            # Like a real server's system:public-info-viewer role, health and version need no token.
            if request.path not in ("/healthz", "/livez", "/readyz", "/version"):
                auth = request.headers.get("Authorization", "")
                if auth != f"Bearer {self.token}":
                    raise ApiError(401, "Unauthorized")
            await self._inject_faults(request)
            response: web.StreamResponse = await handler(request)
            for warning in request.get(WARNINGS, []):
                if not response.prepared:  # RFC 7234 warn-text: a quoted string
                    text = warning.replace("\\", "\\\\").replace('"', '\\"')
                    response.headers.add("Warning", f'299 - "{text}"')
            return response
        except patches.PatchError as e:
            # An inapplicable JSON patch (e.g. removing a missing field) is the client's error.
            return web.json_response(ApiError(422, str(e), reason="Invalid").status(), status=422)
        except ApiError as e:
            return web.json_response(e.status(), status=e.code)
        except (web.HTTPException, asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as e:
            # A bug in the stand-in: answer as a server would, and keep it for the tests to see.
            self.errors.append(traceback.format_exc())
            return web.json_response(ApiError(500, f"sandbox internal error: {e!r}").status(), status=500)

    async def _inject_faults(self, request: web.Request) -> None:
        for fault in list(self.faults):
            if fault.method not in ("*", request.method) or not re.search(fault.path, request.path):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status:
                raise ApiError(fault.status, f"sandbox fault injected for {request.method} {request.path}")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = path.strip("/").split("/") if path != "/" else []
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return web.json_response(SERVER_VERSION)
        if parts and parts[0] == "openapi":
            return self._openapi(parts[1:])
        if parts == ["api"]:
            return web.json_response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}
                    ],
                }
            )
        if parts == ["apis"]:
            return web.json_response(self._group_list())
        if len(parts) == 2 and parts[0] == "apis":
            group = next((g for g in self._group_list()["groups"] if g["name"] == parts[1]), None)
            if group is None:
                raise ApiError(404, "the server could not find the requested resource")
            return web.json_response({"kind": "APIGroup", "apiVersion": "v1", **group})
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource")
        if not rest:
            return web.json_response(self._resource_list(group, version))
        return await self._resource_request(request, group, version, rest)

    # --- discovery and OpenAPI --------------------------------------------------------------

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for r in self.resources:
            if r.group and r.version not in groups.setdefault(r.group, []):
                groups[r.group].append(r.version)
        return groups

    def _group_list(self) -> dict[str, Any]:
        out = []
        for group, versions in self._group_versions().items():
            vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            out.append({"name": group, "versions": vs, "preferredVersion": vs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        items: list[dict[str, Any]] = []
        found = False
        for r in self.resources:
            if r.group != group or r.version != version:
                continue
            found = True
            items.append(
                {
                    "name": r.plural,
                    "singularName": r.singular,
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": list(r.verbs),
                    "storageVersionHash": "sandbox",
                    **({"shortNames": list(r.short_names)} if r.short_names else {}),
                    **({"categories": list(r.categories)} if r.categories else {}),
                }
            )
            for sub in r.subresources:
                verbs = {
                    "status": ["get", "patch", "update"],
                    "scale": ["get", "patch", "update"],
                    "log": ["get"],
                    "portforward": ["create", "get"],
                    "eviction": ["create"],
                    "finalize": ["update"],
                }[sub]
                kind = {
                    "scale": "Scale",
                    "log": "Pod",
                    "portforward": "PodPortForwardOptions",
                    "eviction": "Eviction",
                }.get(sub, r.kind)
                items.append(
                    {
                        "name": f"{r.plural}/{sub}",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": kind,
                        "verbs": verbs,
                    }
                )
        if not found:
            raise ApiError(404, "the server could not find the requested resource")
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}

    def _openapi(self, parts: list[str]) -> web.Response:
        if parts == ["v3"]:
            index = {}
            for gv in {r.group_version for r in self.resources}:
                key = f"apis/{gv}" if "/" in gv else f"api/{gv}"
                doc = schemas.document(self.resources, gv)
                index[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={schemas.document_hash(doc)}"}
            return web.json_response({"paths": index})
        if parts[:1] == ["v3"] and len(parts) >= 3:
            gv = parts[2] if parts[1] == "api" else "/".join(parts[2:4])
            if any(r.group_version == gv for r in self.resources):
                return web.json_response(schemas.document(self.resources, gv))
        # /openapi/v2 (protobuf) is not served: helm and kubectl use v3 when it exists.
        raise ApiError(404, "the server could not find the requested resource")

    # --- objects --------------------------------------------------------------------------

    async def _resource_request(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        res = self.resource(group, version, rest[0])
        if namespace is not None and not res.namespaced:
            raise ApiError(404, "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and sub not in res.subresources):
            raise ApiError(404, "the server could not find the requested resource")
        method = request.method
        q = request.query
        dry_run = q.get("dryRun") == "All"
        if sub == "log" and name and namespace and self.logs_handler:
            self.store.get(res, namespace, name)
            return await self.logs_handler(request, namespace, name)
        if sub == "portforward" and name and namespace and self.portforward_handler:
            self.store.get(res, namespace, name)
            return await self.portforward_handler(request, namespace, name)
        if name is None:
            if method == "GET":
                return await self._list_or_watch(request, res, namespace)
            if method == "POST":
                body = await self._body(request)
                if res.group == "authorization.k8s.io":
                    return web.json_response(self._review(body), status=201)
                self._validate(request, res, body)
                return self._reply(request, self.store.create(res, namespace, body, dry_run=dry_run), 201)
            if method == "DELETE":
                match = self._matcher(request, res)
                deleted = [
                    self.store.delete(res, o["metadata"].get("namespace"), o["metadata"]["name"])
                    for o in self.store.list(res, namespace, match)
                ]
                return web.json_response(
                    {
                        "kind": res.list_kind,
                        "apiVersion": res.group_version,
                        "metadata": {"resourceVersion": str(self.store.rv)},
                        "items": deleted,
                    }
                )
            raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")
        if method == "GET":
            obj = self.store.get(res, namespace, name)
            if sub == "scale":
                return web.json_response(_scale(res, obj))
            return self._reply(request, obj)
        if method == "PUT":
            body = await self._body(request)
            if sub == "scale":
                return web.json_response(_scale(res, self._set_replicas(res, namespace, name, body)))
            self._validate(request, res, body)
            return self._reply(
                request, self.store.update(res, namespace, name, body, subresource=sub, dry_run=dry_run)
            )
        if method == "PATCH":
            return await self._patch(request, res, namespace, name, sub, dry_run)
        if method == "DELETE":
            options = await self._body(request, optional=True) or {}
            propagation = q.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
            return self._reply(
                request, self.store.delete(res, namespace, name, propagation=propagation, dry_run=dry_run)
            )
        raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")

    async def _patch(
        self,
        request: web.Request,
        res: Resource,
        namespace: str | None,
        name: str,
        sub: str | None,
        dry_run: bool,
    ) -> web.StreamResponse:
        ctype = request.content_type
        body = await self._body(request)
        live = self.store.find(res, namespace, name)
        if ctype in APPLY_TYPES:
            manager = request.query.get("fieldManager")
            if not manager:
                raise ApiError(400, "PATCH /apply requests require a fieldManager", reason="BadRequest")
            if not isinstance(body, dict):
                raise ApiError(400, "the body of an apply patch must be an object")
            body.setdefault("metadata", {})
            if body["metadata"].get("name", name) != name:
                raise ApiError(400, "the name of the object does not match the name on the URL")
            self._validate(request, res, body)
            key = (res.group, res.plural, (namespace or "") if res.namespaced else "", name)
            last = self.store.applied.get((key, manager))
            merged = patches.apply(live, body, last)
            merged.setdefault("metadata", {})["name"] = name
            merged["metadata"].pop("resourceVersion", None) if live is None else None
            if live is None:
                result = self.store.create(res, namespace, merged, dry_run=dry_run)
                status = 201
            else:
                merged["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                result = self.store.update(res, namespace, name, merged, subresource=sub, dry_run=dry_run)
                status = 200
            if not dry_run:
                self.store.applied[(key, manager)] = body
            return self._reply(request, result, status)
        if live is None:
            raise ApiError(
                404,
                f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
                details={"name": name, "group": res.group, "kind": res.plural},
            )
        if ctype == "application/json-patch+json":
            new = patches.json_patch(live, body)
        elif ctype == "application/merge-patch+json":
            new = patches.merge_patch(live, body)
        elif ctype == "application/strategic-merge-patch+json":
            if res.model is None:
                raise ApiError(
                    415,
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml",
                    reason="UnsupportedMediaType",
                )
            new = patches.strategic_merge(live, body)
        else:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format: {ctype}",
                reason="UnsupportedMediaType",
            )
        if sub == "scale":
            replicas = (new.get("spec") or {}).get("replicas")
            return web.json_response(
                _scale(res, self._set_replicas(res, namespace, name, {"spec": {"replicas": replicas}}))
            )
        if isinstance(body, dict) and not (body.get("metadata") or {}).get("resourceVersion"):
            new["metadata"].pop("resourceVersion", None)  # patches apply to the latest version
        self._validate(request, res, new)
        return self._reply(
            request, self.store.update(res, namespace, name, new, subresource=sub, dry_run=dry_run)
        )

    def _set_replicas(self, res: Resource, namespace: str | None, name: str, scale: Obj) -> Obj:
        obj = self.store.get(res, namespace, name)
        obj["spec"]["replicas"] = int((scale.get("spec") or {}).get("replicas") or 0)
        obj["metadata"].pop("resourceVersion", None)
        return self.store.update(res, namespace, name, obj)

    def _review(self, body: Obj) -> Obj:
        # RBAC is not modelled: the sandbox's one user may do everything (documented), except
        # what a test lists in `denied` as (verb, resource), to see how a client reports it.
        attributes = (body.get("spec") or {}).get("resourceAttributes") or {}
        resource = "/".join(filter(None, [attributes.get("resource"), attributes.get("subresource")]))
        if (attributes.get("verb"), resource) in self.denied:
            return {**body, "status": {"allowed": False, "reason": "sandbox: denied by the test"}}
        return {**body, "status": {"allowed": True, "reason": "sandbox: every request is allowed"}}

    async def _body(self, request: web.Request, optional: bool = False) -> Any:
        raw = await request.read()
        if not raw:
            if optional:
                return None
            raise ApiError(400, "the request body is empty")
        try:
            if request.content_type == "application/vnd.kubernetes.protobuf":
                return protobuf.decode(raw)
            if request.content_type in APPLY_TYPES and request.content_type.endswith("yaml"):
                return yaml.load(raw, Loader=yaml.CSafeLoader)
            return json.loads(raw)
        except protobuf.ProtobufError as e:
            raise ApiError(415, str(e), reason="UnsupportedMediaType") from e
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, f"the request body could not be decoded: {e}") from e

    def _validate(self, request: web.Request, res: Resource, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be an object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if (api_version and api_version != res.group_version) or (kind and kind != res.kind):
            raise ApiError(
                400,
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({res.group_version})",
            )
        mode = request.query.get("fieldValidation", "Warn" if request.method != "GET" else "Ignore")
        if mode == "Ignore" or res.model is None:
            return
        unknown = [
            f
            for f in schemas.unknown_fields(res.model, body)
            if not f.startswith(("metadata.managedFields", "status"))
        ]
        if unknown and mode == "Warn":
            # Stored as sent; the client sees a Warning header (kubectl prints it).
            request[WARNINGS] = [f'unknown field "{f}"' for f in unknown]
        if unknown and mode == "Strict":
            text = ", ".join(f'unknown field "{f}"' for f in unknown)
            raise ApiError(
                400,
                f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                f"strict decoding error: {text}",
                reason="BadRequest",
            )

    def _reply(self, request: web.Request, obj: Obj, status: int = 200) -> web.Response:
        if _wants_table(request):
            res = self.by_kind(obj["apiVersion"], obj["kind"])
            return web.json_response(
                tables.table(res, [obj], str(self.store.rv), request.query), status=status
            )
        return web.json_response(obj, status=status)

    def _matcher(self, request: web.Request, res: Resource) -> Callable[[Obj], bool]:
        try:
            labels = selectors.parse_labels(request.query.get("labelSelector"))
            fields = selectors.parse_fields(request.query.get("fieldSelector"), res.kind)
        except selectors.SelectorError as e:
            raise ApiError(400, str(e)) from e
        return lambda o: labels((o.get("metadata") or {}).get("labels") or {}) and fields(o)

    async def _list_or_watch(
        self, request: web.Request, res: Resource, namespace: str | None
    ) -> web.StreamResponse:
        match = self._matcher(request, res)
        if query_bool(request.query, "watch"):
            return await self._watch(request, res, namespace, match)
        items = self.store.list(res, namespace, match)
        rv = str(self.store.rv)
        if _wants_table(request):
            return web.json_response(tables.table(res, items, rv, request.query))
        for item in items:
            # Typed lists omit each item's kind/apiVersion; custom resources keep them.
            if res.model is not None:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return web.json_response(
            {
                "kind": res.list_kind,
                "apiVersion": res.group_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def _watch(
        self, request: web.Request, res: Resource, namespace: str | None, match: Callable[[Obj], bool]
    ) -> web.StreamResponse:
        q = request.query
        as_table = _wants_table(request)
        watcher = Watcher(res.group, res.plural, namespace, match)
        rv_param = q.get("resourceVersion", "")
        initial: list[tuple[str, Obj]] = []
        send_initial = query_bool(q, "sendInitialEvents")
        if send_initial or rv_param in ("", "0"):
            initial = [("ADDED", o) for o in self.store.list(res, namespace, match)]
        else:
            replay = self.store.events_since(int(rv_param), res.group, res.plural)
            if replay is None:
                initial = [("ERROR", ApiError(410, f"too old resource version: {rv_param}").status())]
            else:
                initial = [
                    (e.type, self.store._view(res, e.obj))
                    for e in replay
                    if (namespace is None or e.key[2] == namespace) and match(e.obj)
                ]
        self.store.watchers.add(watcher)  # no await since listing: no event can be missed
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        timeout = float(q.get("timeoutSeconds") or 1800)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await response.prepare(request)

            async def send(kind: str, obj: Obj) -> None:
                if as_table and kind in ("ADDED", "MODIFIED", "DELETED"):
                    obj = tables.table(res, [obj], obj["metadata"].get("resourceVersion", ""), q)
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

            for kind, obj in initial:
                await send(kind, obj)
            if send_initial and query_bool(q, "allowWatchBookmarks"):
                await send(
                    "BOOKMARK",
                    {
                        "kind": res.kind,
                        "apiVersion": res.group_version,
                        "metadata": {
                            "resourceVersion": str(self.store.rv),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                )
            while (left := deadline - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), left)
                except TimeoutError:
                    break
                if event is None:
                    break
                await send(event.type, self.store._view(res, event.obj))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.watchers.discard(watcher)
        return response


def _established(crd: Obj) -> bool:
    return any(
        c.get("type") == "Established" and c.get("status") == "True"
        for c in (crd.get("status") or {}).get("conditions") or []
    )


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _scale(res: Resource, obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": obj["spec"].get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(
                f"{k}={v}" for k, v in ((obj["spec"].get("selector") or {}).get("matchLabels") or {}).items()
            ),
        },
    }


def age(timestamp: str | None) -> str:
    """kubectl's short duration format (5s, 3m12s, 2d4h) from an RFC 3339 timestamp."""
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d{hours % 24}h"
