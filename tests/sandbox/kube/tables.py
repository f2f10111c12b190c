"""Server-side printing: the `Table` objects `kubectl get` asks for (Accept: as=Table),
with the columns the real server prints for the kinds vllmctl users look at."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.sandbox.kube.resources import Resource

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority (1 = -o wide), cell


def _age(o: Obj) -> str:
    from tests.sandbox.kube.api import age

    return age(o["metadata"].get("creationTimestamp"))


def _pod_ready(o: Obj) -> str:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(o: Obj) -> str:
    status = o.get("status") or {}
    if o["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for s in status.get("containerStatuses") or []:
        state = s.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if "terminated" in state and state["terminated"].get("reason"):
            return str(state["terminated"]["reason"])
    return str(status.get("phase", "Pending"))


def _restarts(o: Obj) -> int:
    return sum(s.get("restartCount", 0) for s in (o.get("status") or {}).get("containerStatuses") or [])


def _ports(o: Obj) -> str:
    ports = (o.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _cond(o: Obj, kind: str) -> str:
    for c in (o.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return "Unknown"


def _name(o: Obj) -> str:
    return str(o["metadata"]["name"])


COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        ("Name", "string", 0, _name),
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, _restarts),
        ("Age", "string", 0, _age),
        ("IP", "string", 1, lambda o: (o.get("status") or {}).get("podIP", "<none>")),
        ("Node", "string", 1, lambda o: (o.get("spec") or {}).get("nodeName", "<none>")),
    ],
    "Deployment": [
        ("Name", "string", 0, _name),
        (
            "Ready",
            "string",
            0,
            lambda o: (
                f"{(o.get('status') or {}).get('readyReplicas', 0)}/"
                f"{(o.get('spec') or {}).get('replicas', 1)}"
            ),
        ),
        ("Up-to-date", "integer", 0, lambda o: (o.get("status") or {}).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: (o.get("status") or {}).get("availableReplicas", 0)),
        ("Age", "string", 0, _age),
    ],
    "Service": [
        ("Name", "string", 0, _name),
        ("Type", "string", 0, lambda o: o["spec"].get("type")),
        ("Cluster-IP", "string", 0, lambda o: o["spec"].get("clusterIP", "<none>")),
        ("External-IP", "string", 0, lambda o: "<none>"),
        ("Port(s)", "string", 0, _ports),
        ("Age", "string", 0, _age),
    ],
    "Secret": [
        ("Name", "string", 0, _name),
        ("Type", "string", 0, lambda o: o.get("type", "Opaque")),
        ("Data", "string", 0, lambda o: len(o.get("data") or {})),
        ("Age", "string", 0, _age),
    ],
    "Namespace": [
        ("Name", "string", 0, _name),
        ("Status", "string", 0, lambda o: (o.get("status") or {}).get("phase", "Active")),
        ("Age", "string", 0, _age),
    ],
    "Node": [
        ("Name", "string", 0, _name),
        ("Status", "string", 0, lambda o: "Ready"),
        ("Roles", "string", 0, lambda o: "<none>"),
        ("Age", "string", 0, _age),
        ("Version", "string", 0, lambda o: "v1.33.0-sandbox"),
    ],
    "PersistentVolumeClaim": [
        ("Name", "string", 0, _name),
        ("Status", "string", 0, lambda o: (o.get("status") or {}).get("phase", "")),
        ("Volume", "string", 0, lambda o: o["spec"].get("volumeName", "")),
        (
            "Capacity",
            "string",
            0,
            lambda o: ((o.get("status") or {}).get("capacity") or {}).get("storage", ""),
        ),
        ("Access Modes", "string", 0, lambda o: ",".join(o["spec"].get("accessModes") or [])),
        ("StorageClass", "string", 0, lambda o: o["spec"].get("storageClassName", "")),
        ("Age", "string", 0, _age),
    ],
    "ExternalSecret": [
        ("Name", "string", 0, _name),
        ("Store", "string", 0, lambda o: ((o.get("spec") or {}).get("secretStoreRef") or {}).get("name", "")),
        ("Refresh Interval", "string", 0, lambda o: (o.get("spec") or {}).get("refreshInterval", "")),
        (
            "Status",
            "string",
            0,
            lambda o: next(
                (
                    c.get("reason")
                    for c in (o.get("status") or {}).get("conditions") or []
                    if c.get("type") == "Ready"
                ),
                "",
            ),
        ),
        ("Ready", "string", 0, lambda o: _cond(o, "Ready")),
    ],
}
DEFAULT: list[Column] = [("Name", "string", 0, _name), ("Age", "string", 0, _age)]


def table(res: Resource, items: list[Obj], rv: str, query: Mapping[str, str]) -> Obj:
    columns = COLUMNS.get(res.kind, DEFAULT)
    include = query.get("includeObject", "Metadata")
    rows = []
    for o in items:
        row: Obj = {"cells": [fn(o) for _, _, _, fn in columns]}
        if include == "Object":
            row["object"] = o
        elif include == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": "", "priority": p}
            for n, t, p, _ in columns
        ],
        "rows": rows,
    }
