"""OpenAPI v3 documents and strict field validation, generated from the kubernetes
Python client's model classes (their `openapi_types` and `attribute_map`), which are
themselves generated from the real API server's OpenAPI: no schema is copied by hand.

helm and kubectl fetch `/openapi/v3` to learn whether the server supports the
`fieldValidation` query parameter for a kind (client-go's query-param verifier looks for
a PATCH operation carrying the kind's `x-kubernetes-group-version-kind` with that
parameter), then leave validation to the server, which this module also does.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any

import kubernetes.client.models as models

from tests.sandbox.kube.resources import Resource

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")
SCALARS = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "float": {"type": "number", "format": "double"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "object": {"x-kubernetes-preserve-unknown-fields": True},
}


def _type_schema(tname: str, seen: dict[str, Any]) -> dict[str, Any]:
    if tname in SCALARS:
        return dict(SCALARS[tname])
    if m := _LIST.match(tname):
        return {"type": "array", "items": _type_schema(m.group(1), seen)}
    if m := _DICT.match(tname):
        return {"type": "object", "additionalProperties": _type_schema(m.group(1), seen)}
    _collect(tname, seen)
    return {"allOf": [{"$ref": f"#/components/schemas/{tname}"}]}


def _collect(model: str, seen: dict[str, Any]) -> None:
    if model in seen:
        return
    cls = getattr(models, model)
    seen[model] = {}  # placeholder against recursion (JSONSchemaProps refers to itself)
    props = {cls.attribute_map[a]: _type_schema(t, seen) for a, t in cls.openapi_types.items()}
    seen[model] = {"type": "object", "properties": props}


def document(resources: list[Resource], group_version: str) -> dict[str, Any]:
    """The OpenAPI v3 document of one group/version."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    field_validation = {
        "name": "fieldValidation",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
    }
    for res in resources:
        if res.group_version != group_version:
            continue
        gvk = {"group": res.group, "version": res.version, "kind": res.kind}
        if res.model:
            _collect(res.model, schemas)
            schemas[res.model]["x-kubernetes-group-version-kind"] = [gvk]
            ref = {"$ref": f"#/components/schemas/{res.model}"}
        else:
            name = f"{res.group}.{res.version}.{res.kind}"
            schemas[name] = {
                **(res.crd_schema or {"type": "object"}),
                "x-kubernetes-group-version-kind": [gvk],
            }
            ref = {"$ref": f"#/components/schemas/{name}"}
        item = res.base_path("{namespace}") + "/{name}"
        content = {"application/json": {"schema": ref}}
        paths[item] = {
            "get": {
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": "get",
                "responses": {"200": {"content": content}},
            },
            "put": {
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": "put",
                "parameters": [field_validation],
                "responses": {"200": {"content": content}},
            },
            "patch": {
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": "patch",
                "parameters": [field_validation],
                "responses": {"200": {"content": content}},
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def document_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()


@functools.cache
def _fields(model: str) -> dict[str, str]:
    cls = getattr(models, model)
    return {cls.attribute_map[a]: t for a, t in cls.openapi_types.items()}


def unknown_fields(model: str, obj: Any, prefix: str = "") -> list[str]:
    """Dotted paths of fields the kind's schema does not declare (strict decoding)."""
    if not isinstance(obj, dict):
        return []
    found: list[str] = []
    fields = _fields(model)
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else key
        tname = fields.get(key)
        if tname is None:
            found.append(path)
            continue
        found += _unknown_in(tname, value, path)
    return found


def _unknown_in(tname: str, value: Any, path: str) -> list[str]:
    if tname in SCALARS:
        return []
    if m := _LIST.match(tname):
        if not isinstance(value, list):
            return []
        return [f for i, v in enumerate(value) for f in _unknown_in(m.group(1), v, f"{path}[{i}]")]
    if m := _DICT.match(tname):
        if not isinstance(value, dict):
            return []
        return [f for k, v in value.items() for f in _unknown_in(m.group(1), v, f"{path}.{k}")]
    return unknown_fields(tname, value, path)
