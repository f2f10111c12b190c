"""The object store behind the API stand-in: what etcd plus the generic registry do.

Objects are plain JSON dicts keyed by (group, plural, namespace, name). One global
resourceVersion counter orders every change, as etcd's revision does; watches replay
history from a resourceVersion and then stream live events. All methods run on the
sandbox loop thread, so there is no locking.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.sandbox.kube import errors
from tests.sandbox.kube.errors import ApiError
from tests.sandbox.kube.resources import Resource

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Kinds whose names must be DNS labels (63 characters, no dots), as the real validation says.
LABEL_NAMED = {"Namespace", "Service"}
HISTORY = 20000  # events kept for watches that resume from a resourceVersion


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kept_conditions(old: Obj, wanted: dict[str, tuple[str, str, str]]) -> list[Obj]:
    """A status's conditions as controllers write them (type -> status, reason, message):
    an unchanged one keeps its lastTransitionTime."""
    before = {c.get("type"): c for c in old.get("conditions") or []}
    out = []
    for kind, (status, reason, message) in wanted.items():
        previous = before.get(kind) or {}
        same = previous.get("status") == status
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": previous.get("lastTransitionTime") if same else now(),
            }
        )
    return out


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: Key
    obj: Obj
    old: Obj | None = None


@dataclass(eq=False)  # identity, so watchers can sit in a set
class Watcher:
    group: str
    plural: str
    namespace: str | None
    match: Callable[[Obj], bool]
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)


def _strip_rv(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("status", "metadata")}


class Store:
    def __init__(self) -> None:
        self.rv = 1000
        self.objects: dict[Key, Obj] = {}
        self.history: deque[Event] = deque(maxlen=HISTORY)
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[Event], None]] = []
        # Server-side apply: each field manager's last applied configuration per object.
        self.applied: dict[tuple[Key, str], Obj] = {}
        self._next_ip = 10
        # The keys of each resource's objects, so listing one kind does not scan them all.
        self._by_resource: dict[tuple[str, str], set[Key]] = {}

    # --- reading -------------------------------------------------------------------

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get(self._key(res, namespace, name))
        if obj is None:
            raise errors.not_found(res.plural, name, res.group)
        return self._view(res, obj)

    def find(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        obj = self.objects.get(self._key(res, namespace, name))
        return None if obj is None else self._view(res, obj)

    def list(
        self, res: Resource, namespace: str | None, match: Callable[[Obj], bool] | None = None
    ) -> list[Obj]:
        return [
            self._view(res, o)
            for o in self.iter_raw(res.group, res.plural, namespace)
            if match is None or match(o)
        ]

    def iter_raw(self, group: str, plural: str, namespace: str | None = None) -> Iterator[Obj]:
        """The stored dicts themselves (controllers read them; they must not mutate them)."""
        for key in sorted(self._by_resource.get((group, plural), ())):
            if namespace is None or key[2] == namespace:
                obj = self.objects.get(key)
                if obj is not None:  # removed while the caller iterated
                    yield obj

    def _key(self, res: Resource, namespace: str | None, name: str) -> Key:
        return (res.group, res.plural, (namespace or "") if res.namespaced else "", name)

    @staticmethod
    def _view(res: Resource, obj: Obj) -> Obj:
        out = copy.deepcopy(obj)
        # One storage for all served versions of a kind: no conversion, only the label.
        out["apiVersion"] = res.group_version
        out["kind"] = res.kind
        return out

    # --- writing -------------------------------------------------------------------

    def create(self, res: Resource, namespace: str | None, obj: Obj, *, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name") or ""
        self._validate_name(res, name)
        if res.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or meta.get("namespace") or "default"
            self._check_namespace(namespace)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key = self._key(res, namespace, name)
        if key in self.objects:
            raise errors.already_exists(res.plural, name, res.group)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        meta.pop("deletionTimestamp", None)
        obj["apiVersion"], obj["kind"] = res.group_version, res.kind
        self._defaults(res, obj)
        if dry_run:
            meta["resourceVersion"] = str(self.rv)
            return obj
        self._commit("ADDED", key, obj, None)
        return self._view(res, obj)

    def update(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        obj: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        key = self._key(res, namespace, name)
        old = self.objects.get(key)
        if old is None:
            raise errors.not_found(res.plural, name, res.group)
        sent_rv = (obj.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name, res.group)
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(400, "the name of the object does not match the name on the URL")
        has_status = "status" in res.subresources
        if subresource == "status":
            # The status subresource changes status only.
            new = {**copy.deepcopy(old), "status": new.get("status")}
        elif has_status:
            # The main resource ignores status changes when a status subresource exists.
            new["status"] = copy.deepcopy(old.get("status"))
            if new["status"] is None:
                new.pop("status")
        meta = new["metadata"]
        # Fields the server owns cannot be changed by a client.
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "namespace", "name"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
        meta["generation"] = old["metadata"].get("generation", 1)
        new["apiVersion"], new["kind"] = res.group_version, res.kind
        if res.kind == "Service" and isinstance(new.get("spec"), dict):
            # An update that leaves out the allocated cluster IP keeps it (helm's PUTs do).
            for k in ("clusterIP", "clusterIPs"):
                if k in (old.get("spec") or {}):
                    new["spec"].setdefault(k, old["spec"][k])
            # So does a port that leaves out its allocated node port (the registry's
            # patchAllocatedValues), matched by port number and protocol.
            allocated = {
                (q.get("port"), q.get("protocol", "TCP")): q["nodePort"]
                for q in (old.get("spec") or {}).get("ports") or []
                if q.get("nodePort")
            }
            for q in new["spec"].get("ports") or []:
                if isinstance(q, dict) and not q.get("nodePort"):
                    kept = allocated.get((q.get("port"), q.get("protocol", "TCP")))
                    if kept:
                        q["nodePort"] = kept
        self._defaults(res, new)
        if _strip_rv(new) != _strip_rv(old) and subresource != "status":
            meta["generation"] = meta["generation"] + 1
        if old["metadata"].get("deletionTimestamp") and not meta.get("finalizers"):
            # The last finalizer is gone: the deletion completes.
            if not dry_run:
                self._remove(key, new)
            return self._view(res, new)
        if dry_run:
            return self._view(res, new)
        if new == old:
            return self._view(res, old)  # no-op updates keep the resourceVersion, as on a real server
        self._commit("MODIFIED", key, new, old)
        return self._view(res, new)

    def delete(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
        dry_run: bool = False,
    ) -> Obj:
        key = self._key(res, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            raise errors.not_found(res.plural, name, res.group)
        if dry_run:
            return self._view(res, obj)
        if obj["metadata"].get("finalizers") or res.kind == "Namespace":
            # Finalizers (and the namespace controller) hold the object: mark it deleting.
            if not obj["metadata"].get("deletionTimestamp"):
                new = copy.deepcopy(obj)
                new["metadata"]["deletionTimestamp"] = now()
                if res.kind == "Namespace":
                    new.setdefault("status", {})["phase"] = "Terminating"
                self._commit("MODIFIED", key, new, obj)
                obj = new
            return self._view(res, obj)
        self._remove(key, obj, propagation)
        return self._view(res, obj)

    def remove_now(self, res: Resource, namespace: str | None, name: str) -> None:
        """Delete without finalizers (controllers finishing a namespace's deletion)."""
        key = self._key(res, namespace, name)
        if key in self.objects:
            self._remove(key, self.objects[key])

    def _remove(self, key: Key, obj: Obj, propagation: str = "Background") -> None:
        del self.objects[key]
        self._by_resource.get(key[:2], set()).discard(key)
        for k in [k for k in self.applied if k[0] == key]:
            del self.applied[k]
        gone = copy.deepcopy(obj)
        self._bump(gone)
        self._emit(Event(self.rv, "DELETED", key, gone, obj))
        self._collect_dependents(obj["metadata"]["uid"], propagation)

    def _collect_dependents(self, uid: str, propagation: str) -> None:
        """The garbage collector: dependents go with their owner, or lose the reference
        when the owner was deleted with propagationPolicy=Orphan."""
        for key, obj in list(self.objects.items()):
            if key not in self.objects:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == uid for r in refs):
                continue
            if propagation == "Orphan":
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid] or None
                if new["metadata"]["ownerReferences"] is None:
                    del new["metadata"]["ownerReferences"]
                self._commit("MODIFIED", key, new, obj)
            elif all(r.get("uid") == uid for r in refs):
                self._remove(key, obj, "Background")

    def _commit(self, kind: str, key: Key, obj: Obj, old: Obj | None) -> None:
        self._bump(obj)
        self.objects[key] = obj
        self._by_resource.setdefault(key[:2], set()).add(key)
        self._emit(Event(self.rv, kind, key, copy.deepcopy(obj), old))

    def _bump(self, obj: Obj) -> None:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)

    def _emit(self, event: Event) -> None:
        self.history.append(event)
        group, plural, ns, _ = event.key
        for w in list(self.watchers):
            if w.group != group or w.plural != plural or (w.namespace is not None and w.namespace != ns):
                continue
            now_in = w.match(event.obj)
            was_in = event.old is not None and w.match(event.old)
            if event.type == "MODIFIED" and now_in != was_in:
                # Moving in or out of a selector reads as ADDED/DELETED to that watcher.
                w.queue.put_nowait(Event(event.rv, "ADDED" if now_in else "DELETED", event.key, event.obj))
            elif now_in or (event.type == "DELETED" and was_in):
                w.queue.put_nowait(event)
        for listener in self.listeners:
            listener(event)

    def events_since(self, rv: int, group: str, plural: str) -> list[Event] | None:
        """Events after rv for one resource; None when rv is older than the history kept."""
        if self.history and rv < self.history[0].rv - 1 and len(self.history) == HISTORY:
            return None
        return [e for e in self.history if e.rv > rv and e.key[0] == group and e.key[1] == plural]

    # --- validation and defaults ----------------------------------------------------

    def _validate_name(self, res: Resource, name: str) -> None:
        if not name:
            raise errors.invalid(
                res.kind,
                name,
                [("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")],
                res.group,
            )
        pattern, limit, what = (
            (DNS_LABEL, 63, "RFC 1123 label")
            if res.kind in LABEL_NAMED
            else (DNS_SUBDOMAIN, 253, "RFC 1123 subdomain")
        )
        if len(name) > limit or not pattern.match(name):
            raise errors.invalid(
                res.kind,
                name,
                [
                    (
                        "metadata.name",
                        "FieldValueInvalid",
                        f'Invalid value: "{name}": a lowercase {what} must consist of lower case '
                        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                        "character",
                    )
                ],
                res.group,
            )

    def _check_namespace(self, namespace: str) -> None:
        ns = self.objects.get(("", "namespaces", "", namespace))
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f"{namespace!r} is forbidden: unable to create new content in namespace "
                f"{namespace} because it is being terminated".replace("'", '"'),
            )

    def _free_node_port(self) -> int:
        """The lowest node port of 30000-32767 no Service holds (the real allocator picks at
        random; the lowest keeps tests repeatable)."""
        used = {
            q.get("nodePort")
            for key, o in self.objects.items()
            if key[1] == "services"
            for q in (o.get("spec") or {}).get("ports") or []
        }
        return next(n for n in range(30000, 32768) if n not in used)

    def _defaults(self, res: Resource, obj: Obj) -> None:
        """The defaulting the real API server applies to the kinds vllmctl reads back."""
        spec = obj.get("spec")
        if res.kind == "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None)
            if string_data:
                data = obj.setdefault("data", {}) or {}
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
                obj["data"] = data
        elif res.kind == "Namespace":
            obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = obj[
                "metadata"
            ]["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
        elif res.kind == "Deployment" and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy["type"] = "RollingUpdate"
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
        elif res.kind == "Service" and isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            if "clusterIP" not in spec:
                self._next_ip += 1
                spec["clusterIP"] = f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
            if spec["clusterIP"] != "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("sessionAffinity", "None")
            # NodePort and LoadBalancer Services get a node port per port, from the default
            # range; other types have none (a type change back to ClusterIP drops them).
            node_ports = spec["type"] in ("NodePort", "LoadBalancer")
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
                if not node_ports:
                    port.pop("nodePort", None)
                elif not port.get("nodePort"):
                    port["nodePort"] = self._free_node_port()
        elif res.kind == "PersistentVolumeClaim" and isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")
