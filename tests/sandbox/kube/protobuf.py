"""Decoding the protobuf request bodies that typed Kubernetes clients send.

client-go's typed clients in kubectl (`kubectl create namespace|secret|configmap`) and
helm 4 (its release Secrets) send `application/vnd.kubernetes.protobuf`, and do not
fall back to JSON when refused. Bodies are the `k8s\\x00` magic followed by a
runtime.Unknown envelope whose `raw` field holds the object's message. The field numbers
below are those of k8s.io/api and k8s.io/apimachinery's generated.proto; only the kinds
that typed clients send to the sandbox are described. Responses are always JSON, which
every client accepts.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"

# A field: (name, type), where type is "string", "bytes", "int", "bool", a message name,
# "map:string", "map:bytes", or "repeated:<type>".
Schema = dict[int, tuple[str, str]]
MESSAGES: dict[str, Schema] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta"),
        2: ("raw", "bytes"),
        3: ("contentEncoding", "string"),
        4: ("contentType", "string"),
    },
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        4: ("selfLink", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int"),
        8: ("creationTimestamp", "Time"),
        9: ("deletionTimestamp", "Time"),
        10: ("deletionGracePeriodSeconds", "int"),
        11: ("labels", "map:string"),
        12: ("annotations", "map:string"),
        13: ("ownerReferences", "repeated:OwnerReference"),
        14: ("finalizers", "repeated:string"),
    },
    "OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map:bytes"),
        3: ("type", "string"),
        4: ("stringData", "map:string"),
        5: ("immutable", "bool"),
    },
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map:string"),
        3: ("binaryData", "map:bytes"),
        4: ("immutable", "bool"),
    },
    "Namespace": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "NamespaceSpec"),
        3: ("status", "NamespaceStatus"),
    },
    "NamespaceSpec": {1: ("finalizers", "repeated:string")},
    "NamespaceStatus": {1: ("phase", "string")},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int"),
        3: ("orphanDependents", "bool"),
        4: ("propagationPolicy", "string"),
        5: ("dryRun", "repeated:string"),
    },
}


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            out.append((number, buf[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "string":
        return value.decode() if isinstance(value, bytes) else str(value)
    if kind == "bytes":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else ""
    if kind == "int":
        return value if isinstance(value, int) else 0
    if kind == "bool":
        return bool(value)
    return decode_message(kind, value if isinstance(value, bytes) else b"")


def decode_message(name: str, buf: bytes) -> Any:
    schema = MESSAGES[name]
    obj: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number not in schema:
            continue  # fields the sandbox does not model (managedFields, conditions)
        field, kind = schema[number]
        if kind.startswith("map:"):
            entry = dict(_fields(value if isinstance(value, bytes) else b""))
            k = entry.get(1, b"")
            obj.setdefault(field, {})[k.decode() if isinstance(k, bytes) else str(k)] = _scalar(
                kind[4:], entry.get(2, b"")
            )
        elif kind.startswith("repeated:"):
            obj.setdefault(field, []).append(_scalar(kind[9:], value))
        else:
            obj[field] = _scalar(kind, value)
    if name == "Time":
        seconds = obj.get("seconds", 0)
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else None
    # Go's generated code writes every optional field, empty or not; JSON omits empty ones.
    return {k: v for k, v in obj.items() if v not in ("", 0, None, {}) or v is False}


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded Kubernetes object as the JSON dict the server would have got."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the k8s protobuf magic number")
    envelope = decode_message("Unknown", body[len(MAGIC) :])
    type_meta = envelope.get("typeMeta", {})
    kind = type_meta.get("kind", "")
    if kind not in MESSAGES:
        raise ProtobufError(
            f"the sandbox does not decode protobuf {kind or 'objects without a kind'}; send JSON"
        )
    raw = base64.b64decode(envelope.get("raw", ""))
    obj = decode_message(kind, raw)
    if kind != "DeleteOptions":
        obj = {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
    return obj  # type: ignore[no-any-return]
