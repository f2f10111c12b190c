"""The External Secrets Operator, simulated for the Vault provider (KV v2, token auth),
reading from the sandbox's real OpenBao with the store's own token.

Follows ESO's controllers: a (Cluster)SecretStore is validated (Ready / reason Valid, or
False with InvalidProviderConfig / ValidationFailed); an ExternalSecret is synced when it
is created or changed (including the `force-sync` annotation) and every
`refreshInterval` after that; each `spec.data[]` entry reads `remoteRef.key` from the
store's mount and picks `remoteRef.property`; `dataFrom[].extract` takes every key; the
target Secret is created with an owner reference (creationPolicy Owner, the default),
updated in place (Merge), or left unowned (Orphan); the ExternalSecret's Ready
condition says SecretSynced or SecretSyncedError with ESO's wording.
Left out: templates, generators, other providers and auth methods, deletionPolicy.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.sandbox.kube.resources import BUILTINS, Resource, from_crd
from tests.sandbox.kube.store import Obj, Store, now

GROUP = "external-secrets.io"
MANAGED = "reconcile.external-secrets.io/managed"
SECRETS = next(r for r in BUILTINS if r.kind == "Secret")
VALIDATE_SECONDS = 0.5


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the units ESO users write (1h, 15m, 30s, 1h30m)."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text or "")
    return sum(float(n) * units[u] for n, u in parts)


class ExternalSecrets:
    def __init__(self, store: Store, event: Callable[..., None]) -> None:
        self.store = store
        self.event = event
        self._synced: dict[str, tuple[str, float]] = {}  # ES uid -> (what was synced, when)
        # store uid -> (its spec, when validated): a store's check is a request to OpenBao,
        # so it is redone every VALIDATE_SECONDS (or when the spec changes), not every tick.
        self._validated: dict[str, tuple[str, float]] = {}

    def _resources(self) -> dict[str, Resource]:
        crds = [
            c
            for c in self.store.iter_raw("apiextensions.k8s.io", "customresourcedefinitions")
            if c["spec"].get("group") == GROUP
        ]
        return {r.kind: r for crd in crds for r in from_crd(crd) if r.version == "v1"}

    def __call__(self) -> None:
        res = self._resources()
        if "ExternalSecret" not in res:
            return  # ESO is not installed: nothing reconciles
        stores: dict[tuple[str, str | None, str], Obj] = {}
        for kind in ("ClusterSecretStore", "SecretStore"):
            if kind in res:
                for s in list(self.store.iter_raw(GROUP, res[kind].plural)):
                    self._validate_store(res[kind], s)
                    stores[(kind, s["metadata"].get("namespace"), s["metadata"]["name"])] = s
        for es in list(self.store.iter_raw(GROUP, res["ExternalSecret"].plural)):
            self._reconcile(res["ExternalSecret"], es, stores)

    def _token(self, vault: dict[str, Any], namespace: str | None) -> str:
        ref = ((vault.get("auth") or {}).get("tokenSecretRef")) or {}
        if not ref.get("name"):
            raise ValueError("only token auth (auth.tokenSecretRef) is simulated")
        ns = ref.get("namespace") or namespace or "default"
        secret = self.store.objects.get(("", "secrets", ns, ref["name"]))
        key = ref.get("key", "token")
        if secret is None or key not in (secret.get("data") or {}):
            raise ValueError(f'cannot get Kubernetes secret "{ref["name"]}" from namespace "{ns}"')
        return base64.b64decode(secret["data"][key]).decode()

    def _validate_store(self, res: Resource, s: Obj) -> None:
        spec = json.dumps(s.get("spec"), sort_keys=True)
        last = self._validated.get(s["metadata"]["uid"])
        if last and last[0] == spec and time.monotonic() - last[1] < VALIDATE_SECONDS:
            return
        self._validated[s["metadata"]["uid"]] = (spec, time.monotonic())
        vault = ((s.get("spec") or {}).get("provider") or {}).get("vault")
        ok, reason, message = True, "Valid", "store validated"
        if not vault or not vault.get("server"):
            ok, reason, message = (
                False,
                "InvalidProviderConfig",
                "invalid store: only the vault provider is simulated",
            )
        else:
            try:
                # ESO validates a token-auth Vault store by looking its token up.
                token = self._token(vault, s["metadata"].get("namespace"))
                vault_get(vault["server"], "auth/token/lookup-self", token)
            except Exception as e:
                ok, reason, message = False, "ValidationFailed", f"unable to validate store: {e}"
        self._set_ready(res, s, ok, reason, message, {"capabilities": "ReadWrite"})

    def _set_ready(
        self, res: Resource, obj: Obj, ok: bool, reason: str, message: str, extra: dict[str, Any]
    ) -> None:
        status = copy.deepcopy(obj.get("status") or {})
        before = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        text = "True" if ok else "False"
        if (
            before
            and (before["status"], before["reason"], before["message"]) == (text, reason, message)
            and all(status.get(k) == v for k, v in extra.items())
        ):
            return
        status.update(extra)
        status["conditions"] = [
            {
                "type": "Ready",
                "status": text,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now(),
            }
        ]
        new = {**copy.deepcopy(obj), "status": status}
        self.store.update(
            res, obj["metadata"].get("namespace"), obj["metadata"]["name"], new, subresource="status"
        )

    def _reconcile(self, res: Resource, es: Obj, stores: dict[tuple[str, str | None, str], Obj]) -> None:
        meta, spec = es["metadata"], es.get("spec") or {}
        ns, uid = meta["namespace"], meta["uid"]
        # What a sync depends on: the spec and the annotations (force-sync lives there).
        fingerprint = json.dumps(
            [spec, meta.get("annotations") or {}, meta.get("labels") or {}], sort_keys=True
        )
        last = self._synced.get(uid)
        interval = parse_duration(str(spec.get("refreshInterval", "1h")))
        if last and last[0] == fingerprint and (interval <= 0 or time.monotonic() - last[1] < interval):
            return
        self._synced[uid] = (fingerprint, time.monotonic())
        ref = spec.get("secretStoreRef") or {}
        kind = ref.get("kind", "SecretStore")
        store = stores.get((kind, None if kind == "ClusterSecretStore" else ns, ref.get("name", "")))
        try:
            if store is None:
                raise ValueError(f'could not get {kind} "{ref.get("name")}": not found')
            if not any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (store.get("status") or {}).get("conditions") or []
            ):
                raise ValueError(f'{kind} "{ref.get("name")}" is not ready')
            data = self._fetch(store, spec, ns)
        except Exception as e:
            self._synced[uid] = (
                fingerprint,
                time.monotonic() - interval + 0.5,
            )  # retry soon, as ESO requeues
            self._set_ready(res, es, False, "SecretSyncedError", str(e), {})
            self.event(es, "UpdateFailed", str(e), "Warning", "external-secrets")
            return
        self._write_target(es, spec, data)
        self._set_ready(
            res,
            es,
            True,
            "SecretSynced",
            "secret synced",
            {
                "refreshTime": now(),
                "syncedResourceVersion": f"{meta['generation']}-{_digest(fingerprint)}",
                "binding": {"name": (spec.get("target") or {}).get("name") or meta["name"]},
            },
        )

    def _fetch(self, store: Obj, spec: dict[str, Any], namespace: str) -> dict[str, str]:
        vault = store["spec"]["provider"]["vault"]
        token = self._token(vault, store["metadata"].get("namespace") or namespace)
        mount = vault.get("path", "secret")
        out: dict[str, str] = {}
        for i, item in enumerate(spec.get("data") or []):
            remote = item.get("remoteRef") or {}
            key = remote.get("key", "")
            values = vault_kv2_read(vault["server"], mount, key, token)
            if values is None:
                raise ValueError(f"error processing spec.data[{i}] (key: {key}), err: Secret does not exist")
            prop = remote.get("property")
            if prop:
                if prop not in values:
                    raise ValueError(
                        f"error processing spec.data[{i}] (key: {key}), err: "
                        f"key {prop} does not exist in secret {key}"
                    )
                out[item["secretKey"]] = str(values[prop])
            else:
                out[item["secretKey"]] = json.dumps(values)
        for i, item in enumerate(spec.get("dataFrom") or []):
            key = (item.get("extract") or {}).get("key", "")
            values = vault_kv2_read(vault["server"], mount, key, token)
            if values is None:
                raise ValueError(f"error processing spec.dataFrom[{i}].extract, err: Secret does not exist")
            out.update({k: str(v) for k, v in values.items()})
        return out

    def _write_target(self, es: Obj, spec: dict[str, Any], data: dict[str, str]) -> None:
        target = spec.get("target") or {}
        ns, name = es["metadata"]["namespace"], target.get("name") or es["metadata"]["name"]
        policy = target.get("creationPolicy", "Owner")
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        current = self.store.objects.get(("", "secrets", ns, name))
        labels = {MANAGED: "true"}
        annotations = {
            "reconcile.external-secrets.io/data-hash": _digest(json.dumps(encoded, sort_keys=True))
        }
        if current is None:
            if policy in ("Merge", "None"):
                return
            body: Obj = {
                "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
                "type": "Opaque",
                "data": encoded,
            }
            if policy == "Owner":
                body["metadata"]["ownerReferences"] = [
                    {
                        "apiVersion": es["apiVersion"],
                        "kind": "ExternalSecret",
                        "name": es["metadata"]["name"],
                        "uid": es["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ]
            self.store.create(SECRETS, ns, body)
            self.event(es, "Created", "secret created", "Normal", "external-secrets")
            return
        new = copy.deepcopy(current)
        new["data"] = {**(new.get("data") or {}), **encoded} if policy == "Merge" else encoded
        new["metadata"].setdefault("labels", {}).update(labels)
        new["metadata"].setdefault("annotations", {}).update(annotations)
        if new != current:
            self.store.update(SECRETS, ns, name, new)
            self.event(es, "Updated", "secret updated", "Normal", "external-secrets")


def vault_kv2_read(server: str, mount: str, key: str, token: str) -> dict[str, Any] | None:
    """A KV v2 secret's latest data as ESO's Vault provider gets it; None when the key does not
    exist (or its latest version is deleted)."""
    body = vault_get(server, f"{mount.strip('/')}/data/{key.strip('/')}", token)
    return None if body is None else (body.get("data") or {}).get("data")


def vault_get(server: str, api_path: str, token: str) -> dict[str, Any] | None:
    """GET <server>/v1/<api_path> with the token: the JSON body; None for a 404 without
    errors (a missing key); anything else raises in the words ESO shows, e.g. `Code: 403.
    Errors: * permission denied`. Runs on the loop thread, blocking, but the server is on
    127.0.0.1 and the timeout short."""
    url = f"{server.rstrip('/')}/v1/{api_path}"
    request = urllib.request.Request(url, headers={"X-Vault-Token": token})
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            return json.load(answer)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as e:
        try:
            errors = json.load(e).get("errors") or []
        except ValueError:
            errors = []
        if e.code == 404 and not errors:
            return None
        words = " ".join(f"* {' '.join(str(x).replace('1 error occurred:', '').split())}" for x in errors)
        raise ValueError(
            f"Error making API request. URL: GET {url} Code: {e.code}. Errors: {words}"
        ) from None
    except OSError as e:
        raise ValueError(f'Get "{url}": {getattr(e, "reason", e)}') from None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
