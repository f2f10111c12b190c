"""The Kubernetes API, through the `kubernetes` client's ApiClient on raw REST paths.

The only module that uses the kubernetes client, and it imports it inside functions:
the import costs about half a second, which `vllmctl --help` must not pay. DynamicClient
is not used either: it reads the discovery documents of every group before its first
request, where vllmctl knows the paths it needs.

Every failure becomes one sentence: an ExternalError naming the verb, the resource and
the namespace of the refused request and what to do next (a broken kubeconfig or an
unknown context is a UsageError). Object data (Secrets!) never reaches a message or a
log: only verbs, resource names, namespaces and the server's Status message.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from vllmctl.core.errors import ExternalError, UsageError, VllmctlError

OTHER_CONTEXT = "or use another context with --context"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # the annotation `kubectl rollout restart` sets
# Seconds for connecting (TCP and TLS) and then again for the answer of one request
# (VLLM_KUBE_TIMEOUT); a watch reads for as long as it waits.
DEFAULT_TIMEOUT = 30.0  # VLLM_KUBE_TIMEOUT's default (settings.py)

Obj = dict[str, Any]
# Aliases, because `Kube.list` shadows the builtin inside the class body.
Objs = list[Obj]
Names = list[str]
Query = list[tuple[str, str]]


class _NotFound(ExternalError):
    """A 404, kept apart so callers for whom absence is an answer can catch it."""

    def __init__(self, text: str, status: Obj) -> None:
        super().__init__(text)
        self.status = status


class RolloutNotDone(ExternalError):
    """wait_rollout's deadline passed; `behind` says how far each unfinished Deployment got."""

    def __init__(self, message: str, behind: str) -> None:
        super().__init__(message)
        self.behind = behind


class PodConnection:
    """A TCP connection to a pod's port through the API server. `socket` carries the bytes
    both ways (one end of a socket pair; the client's proxy thread relays the other end
    over the WebSocket); `error()` is what the kubelet said on the port's error channel."""

    def __init__(self, forward: Any, port: int) -> None:
        import threading

        self._forward = forward
        self.port = port
        self.socket: Any = forward.socket(port)
        # The client's relay thread, found to be joined on close (it keeps no reference).
        self._thread = next(
            (t for t in threading.enumerate() if getattr(t, "_target", None) == forward._proxy), None
        )

    def error(self) -> str | None:
        """The kubelet's error for this port (e.g. nothing listens there), if it sent one."""
        text = str(self._forward.error(self.port) or "").strip()
        return text or None

    def close(self, wait: float = 2.0) -> None:
        """Close the connection; the relay thread closes the WebSocket and ends (waited for)."""
        self._forward.close()
        if self._thread is not None and wait > 0:
            self._thread.join(wait)


class Kube:
    """A connection to one cluster (one kubeconfig context), with a private ApiClient."""

    def __init__(self, api_client: Any, context: str, server: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._client = api_client
        self.context = context
        self.server = server
        self.timeout = timeout

    @property
    def timeouts(self) -> tuple[float, float]:
        """(connect, read) of one request: the same figure, so a message can name it. The
        TLS handshake counts as connecting, and urllib3 reports its timeout as a read's."""
        return (self.timeout, self.timeout)

    # --- connecting -----------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Any) -> Kube:
        """Connected as the settings say: their kube context and VLLM_KUBE_TIMEOUT."""
        return cls.connect(settings.context, timeout=settings.kube_timeout)

    @classmethod
    def connect(cls, context: str | None, *, timeout: float = DEFAULT_TIMEOUT) -> Kube:
        """Load the kubeconfig (KUBECONFIG, else ~/.kube/config) with that context, or its current one."""
        import logging

        import yaml
        from kubernetes.client import ApiClient, Configuration
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

        from vllmctl import __version__

        # The REST client logs every response body at DEBUG, and bodies hold Secrets.
        logging.getLogger("kubernetes.client.rest").setLevel(logging.INFO)

        # KUBECONFIG is read here, not by the client: it reads it once, at its import.
        listed = os.environ.get("KUBECONFIG")
        paths = [p for p in listed.split(os.pathsep) if p] if listed else ["~/.kube/config"]
        found = [str(Path(p).expanduser()) for p in paths if Path(p).expanduser().is_file()]
        where = ", ".join(found)
        if not found:
            if listed:
                raise UsageError(
                    f"KUBECONFIG={listed} names no existing file: point it at your cluster's kubeconfig."
                )
            raise UsageError(
                "there is no kubeconfig at ~/.kube/config: set KUBECONFIG to your cluster's kubeconfig."
            )
        try:
            merged = KubeConfigMerger(os.pathsep.join(found)).config
        except yaml.YAMLError as e:
            # Not str(e): it quotes the offending line, which may hold a token.
            mark = getattr(e, "problem_mark", None)
            at = f"{mark.name}, line {mark.line + 1}" if mark is not None else where
            raise UsageError(f"the kubeconfig is not valid YAML ({at}): fix it, or set KUBECONFIG.") from None
        except (ConfigException, AttributeError, TypeError, KeyError):
            raise UsageError(f"the kubeconfig {where} is malformed: fix it, or set KUBECONFIG.") from None
        if merged is None:
            raise UsageError(f"the kubeconfig {where} holds no configuration: fix it, or set KUBECONFIG.")

        document = merged.value
        names = [str(_plain(c).get("name")) for c in document.get("contexts") or []]
        choices = f"use one of {', '.join(names)} with --context" if names else "add one to it"
        chosen = context or document.get("current-context")
        if not chosen:
            raise UsageError(f"the kubeconfig {where} sets no current context: {choices}.")
        if chosen not in names:
            if context:
                raise UsageError(f"there is no context {chosen!r} in the kubeconfig {where}: {choices}.")
            raise UsageError(
                f"the kubeconfig's current context {chosen!r} is not defined in {where}: {choices}."
            )

        configuration = Configuration()
        configuration.retries = _retry_refused_once()
        try:
            loader = KubeConfigLoader(config_dict=merged, active_context=chosen, config_base_path=None)
            loader.load_and_set(configuration)
        except (ConfigException, OSError, ValueError, KeyError, TypeError):
            # Not the exception's text: the client names config nodes by their whole content.
            raise UsageError(
                f"context {chosen!r} in the kubeconfig {where} is incomplete (its cluster, user, "
                f"certificate files or credential plugin): fix it, {OTHER_CONTEXT}."
            ) from None
        client = ApiClient(configuration)
        client.user_agent = f"vllmctl/{__version__}"
        return cls(client, chosen, configuration.host, timeout)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()
        self._client.rest_client.pool_manager.clear()

    def __enter__(self) -> Kube:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- discovery --------------------------------------------------------------------

    def server_version(self) -> str:
        """The API server's version (`/version`'s gitVersion): the cheapest proof it answers."""
        answer = self._call("GET", "/version", verb="get", resource="the server version")
        return str(answer.get("gitVersion") or "unknown")

    def can_i(self, verb: str, resource: str, namespace: str | None, group: str = "") -> bool:
        """Whether RBAC lets the current user do `verb` on `resource` (plural, optionally
        "pods/log"-style with a subresource): a SelfSubjectAccessReview, as `kubectl auth can-i`."""
        plural, _, subresource = resource.partition("/")
        attributes = {"verb": verb, "resource": plural, "group": group}
        if subresource:
            attributes["subresource"] = subresource
        if namespace:
            attributes["namespace"] = namespace
        review = self._call(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            verb="create",
            resource="selfsubjectaccessreviews.authorization.k8s.io",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
        return bool((review.get("status") or {}).get("allowed"))

    def served_versions(self, group: str, plural: str) -> Names:
        """The versions of `group` that serve `plural`, preferred first; [] when none does."""
        what = f"the API group {group}"
        try:
            document = self._call("GET", f"/apis/{group}", verb="get", resource=what)
        except _NotFound:
            return []
        preferred = (document.get("preferredVersion") or {}).get("version")
        versions = [v["version"] for v in document.get("versions") or []]
        served = []
        for version in sorted(versions, key=lambda v: v != preferred):  # stable: the server's order
            try:
                resources = self._call("GET", f"/apis/{group}/{version}", verb="get", resource=what)
            except _NotFound:
                continue
            if any(r.get("name") == plural for r in resources.get("resources") or []):
                served.append(version)
        return served

    # --- objects ----------------------------------------------------------------------

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            obj: Obj = self._call(
                "GET",
                _path(api_version, plural, namespace, name),
                verb="get",
                resource=_resource(api_version, plural),
                namespace=namespace,
            )
        except _NotFound as e:
            if _names(e.status, name):
                return None
            raise
        return obj

    def apply(self, obj: Obj, plural: str, field_manager: str = "vllmctl") -> Obj:
        """Server-side apply: create the object or update the fields vllmctl manages."""
        meta = obj.get("metadata") or {}
        api_version, name, namespace = obj.get("apiVersion"), meta.get("name"), meta.get("namespace")
        if not api_version or not obj.get("kind") or not name:
            raise ValueError("an applied object needs apiVersion, kind and metadata.name")
        # force: vllmctl owns these objects, so it takes fields over from other managers
        # (e.g. a `kubectl edit`) rather than fail on a conflict.
        query = [("fieldManager", field_manager), ("force", "true"), ("fieldValidation", "Strict")]
        applied: Obj = self._call(
            "PATCH",
            _path(api_version, plural, namespace, name),
            verb="patch",
            resource=_resource(api_version, plural),
            namespace=namespace,
            query=query,
            body=obj,
            content_type="application/apply-patch+yaml",  # JSON is YAML
        )
        return applied

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> bool:
        """Delete the object; False if it did not exist."""
        try:
            self._call(
                "DELETE",
                _path(api_version, plural, namespace, name),
                verb="delete",
                resource=_resource(api_version, plural),
                namespace=namespace,
                query=[("propagationPolicy", "Background")],
            )
        except _NotFound as e:
            if _names(e.status, name):
                return False
            raise
        return True

    def patch_merge(self, api_version: str, plural: str, namespace: str | None, name: str, patch: Obj) -> Obj:
        """A JSON merge patch (RFC 7386) on an existing object."""
        patched: Obj = self._call(
            "PATCH",
            _path(api_version, plural, namespace, name),
            verb="patch",
            resource=_resource(api_version, plural),
            namespace=namespace,
            body=patch,
            content_type="application/merge-patch+json",
        )
        return patched

    def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Objs:
        """The objects in the namespace (every namespace if None), with their kind and apiVersion.

        `field_selector` only on fields the server indexes for the kind (e.g. an Event's
        `involvedObject.kind`); others are a 400."""
        query = [("labelSelector", label_selector)] if label_selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        listed = self._call(
            "GET",
            _path(api_version, plural, namespace),
            verb="list",
            resource=_resource(api_version, plural),
            namespace=namespace,
            query=query,
        )
        kind = str(listed.get("kind") or "").removesuffix("List")
        items: Objs = listed.get("items") or []
        for item in items:  # built-in kinds' list items come without them
            item.setdefault("apiVersion", api_version)
            if kind:
                item.setdefault("kind", kind)
        return items

    def pod_log_tail(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        lines: int,
        previous: bool = False,
        limit_bytes: int = 64 * 1024,
    ) -> Names:
        """The last `lines` lines a container printed (`previous`: its last terminated
        instance), at most `limit_bytes`; [] when the kubelet has none to give (400)."""
        query = [
            ("container", container),
            ("tailLines", str(lines)),
            ("limitBytes", str(limit_bytes)),
        ]
        if previous:
            query.append(("previous", "true"))
        try:
            response = self._call(
                "GET",
                _path("v1", "pods", namespace, pod) + "/log",
                verb="get",
                resource="pods/log",
                namespace=namespace,
                query=query,
                stream=True,
            )
        except _NotFound:  # the pod went away meanwhile
            return []
        except ExternalError as e:
            # "container ... is waiting to start", "previous terminated container ... not
            # found": no log to show, which is an answer, not a failure.
            if " (400 " in e.message:
                return []
            raise
        try:
            text = response.data.decode("utf-8", "replace")
        finally:
            response.release_conn()
        return text.splitlines()[-lines:] if lines > 0 else []

    # --- waiting ----------------------------------------------------------------------

    def restart_deployments(self, namespace: str, names: Names) -> None:
        """What `kubectl rollout restart` does: a new pod-template annotation on each named
        Deployment, so its pods are replaced."""
        stamp = _now()
        for name in names:
            deployment = self.get("apps/v1", "deployments", namespace, name)
            annotations = _dig(deployment, "spec", "template", "metadata", "annotations")
            # A restart within the same second must still change the template.
            value = _now(fraction=True) if annotations.get(RESTARTED_AT) == stamp else stamp
            patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: value}}}}}
            self.patch_merge("apps/v1", "deployments", namespace, name, patch)

    def wait_rollout(self, namespace: str, names: Names, timeout: float) -> None:
        """Watch the Deployments until each runs only up-to-date, ready pods."""
        if not names:
            return
        deadline = time.monotonic() + timeout
        latest: dict[str, Obj] = {}
        states = self._observe("apps/v1", "deployments", namespace, deadline)
        with closing(states):
            for objects in states:
                latest = objects
                if all(n in objects and _rolled_out(objects[n]) for n in names):
                    return
        behind = ", ".join(_progress(n, latest.get(n)) for n in names if not _rolled_out(latest.get(n)))
        raise RolloutNotDone(
            f"the rollout of Deployments {behind} in namespace {namespace} did not finish within "
            f"{timeout:g} s: see `kubectl --namespace {namespace} get pods` for why.",
            behind,
        )

    def _observe(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        deadline: float,
        field_selector: str | None = None,
    ) -> Generator[dict[str, Obj], None, None]:
        """The collection's objects by name: after a list, then after each change a watch
        reports, until the deadline. A watch that ends early is resumed; an expired one
        (410) starts over with a list."""
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        path, resource = _path(api_version, plural, namespace), _resource(api_version, plural)
        selector: Query = [("fieldSelector", field_selector)] if field_selector else []
        while True:
            listed = self._call(
                "GET", path, verb="list", resource=resource, namespace=namespace, query=selector
            )
            objects = {o["metadata"]["name"]: o for o in listed.get("items") or []}
            version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
            yield objects
            expired = False
            while not expired:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                query = [
                    *selector,
                    ("watch", "true"),
                    ("resourceVersion", version),
                    ("allowWatchBookmarks", "true"),
                    ("timeoutSeconds", str(math.ceil(left))),
                ]
                # The read timeout ends a quiet watch at the deadline.
                response = self._call(
                    "GET",
                    path,
                    verb="watch",
                    resource=resource,
                    namespace=namespace,
                    query=query,
                    stream=True,
                    timeout=(self.timeouts[0], left),
                )
                try:
                    for line in _lines(response):
                        version, what = self._watch_event(line, objects, version, resource, namespace)
                        if what == "expired":
                            expired = True
                            break
                        if what == "bookmark":
                            continue
                        yield objects
                        if time.monotonic() >= deadline:
                            return
                except (ReadTimeoutError, ProtocolError):
                    pass  # quiet until the deadline, or cut off: the loop decides
                finally:
                    response.close()
                    response.release_conn()

    # --- port-forward -------------------------------------------------------------------

    def port_forward(self, namespace: str, pod: str, port: int) -> PodConnection:
        """One connection to `port` of the pod, through the API server's `portforward`
        subresource: the kubernetes client's WebSocket port-forward (no kubectl)."""
        import ssl

        from kubernetes.stream.ws_client import PortForward, create_websocket, get_websocket_url
        from websocket import WebSocketBadStatusException, WebSocketException

        configuration = self._client.configuration
        headers: dict[str, str] = {}
        # The bearer token as every other request sends it (a credential plugin refreshes it).
        self._client.update_params_for_auth(headers, [], ["BearerToken"])
        path = _path("v1", "pods", namespace, pod) + "/portforward"
        url = get_websocket_url(configuration.host + path, [("ports", str(port))])
        resource = "pods/portforward"
        try:
            websocket = create_websocket(configuration, url, headers)
        except WebSocketBadStatusException as e:
            try:
                status = json.loads(e.resp_body or b"")
            except ValueError:
                status = None
            if not isinstance(status, dict):
                status = {"code": e.status_code, "reason": e.status_message or "", "message": str(e)}
            status.setdefault("code", e.status_code)
            error = self._status_error(status, "create", resource, namespace)
            raise (_NotFound(error.message, status) if e.status_code == 404 else error) from None
        except ssl.SSLError as e:
            raise self._tls_error(str(e)) from None
        except (WebSocketException, OSError) as e:
            why = _os_reason(e) or str(e) or type(e).__name__
            raise ExternalError(
                f"Kubernetes is unreachable at {self.server} for a port-forward to pod {pod} ({why}): "
                f"check that the cluster is up, {OTHER_CONTEXT}."
            ) from None
        return PodConnection(PortForward(websocket, [port]), port)

    # --- requests and their failures --------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        namespace: str | None = None,
        query: Query | None = None,
        body: Obj | None = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: tuple[float, float] | None = None,
    ) -> Any:
        """One request; the parsed JSON answer, or the open response when streaming."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            answer = self._client.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_type=None if stream else "object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=not stream,
                _request_timeout=timeout or self.timeouts,
            )
        except ApiException as e:
            raise self._refused(e, verb, resource, namespace) from e
        except HTTPError as e:
            raise self._unreachable(e) from e
        return answer

    def _refused(self, e: Any, verb: str, resource: str, namespace: str | None) -> ExternalError:
        code = int(e.status or 0)
        if code == 0:  # the client turns a TLS failure into a status-less ApiException
            return self._tls_error(str(e.reason))
        try:
            status = json.loads(e.body or "")
        except ValueError:
            status = None
        if not isinstance(status, dict):
            status = {"code": code, "reason": e.reason, "message": e.reason}
        status.setdefault("code", code)
        error = self._status_error(status, verb, resource, namespace)
        return _NotFound(error.message, status) if code == 404 else error

    def _status_error(self, status: Obj, verb: str, resource: str, namespace: str | None) -> ExternalError:
        code, reason = status.get("code"), status.get("reason") or ""
        where = f" in namespace {namespace}" if namespace else ""
        if code == 401:
            return ExternalError(
                f"Kubernetes rejected the credentials of context {self.context} (401 Unauthorized): "
                f"log in to the cluster again, {OTHER_CONTEXT}."
            )
        if code == 403:
            return ExternalError(
                f"Kubernetes refused to {verb} {resource}{where} (403 Forbidden: RBAC): "
                f"ask for that permission, {OTHER_CONTEXT}."
            )
        message = str(status.get("message") or "no message").rstrip(".")
        return ExternalError(f"Kubernetes could not {verb} {resource}{where} ({code} {reason}): {message}.")

    def _unreachable(self, e: Exception) -> ExternalError:
        from urllib3.exceptions import (
            ConnectTimeoutError,
            MaxRetryError,
            NewConnectionError,
            ProtocolError,
            ReadTimeoutError,
            SSLError,
        )

        cause = e.reason if isinstance(e, MaxRetryError) and e.reason is not None else e
        if isinstance(cause, SSLError):
            return self._tls_error(str(cause))
        if isinstance(cause, ReadTimeoutError):
            return ExternalError(
                f"Kubernetes at {self.server} did not answer within {self.timeouts[1]:g} s: "
                f"check the cluster's health, {OTHER_CONTEXT}."
            )
        if isinstance(cause, NewConnectionError):  # before its base class, ConnectTimeoutError
            why = _os_reason(cause) or "no connection"
        elif isinstance(cause, ConnectTimeoutError):
            why = f"no connection within {self.timeouts[0]:g} s"
        elif isinstance(cause, ProtocolError):
            why = "the connection broke"
        else:
            why = type(cause).__name__
        return ExternalError(
            f"Kubernetes is unreachable at {self.server} ({why}): check that the cluster is up and "
            f"that context {self.context} points at it, {OTHER_CONTEXT}."
        )

    def _tls_error(self, text: str) -> ExternalError:
        start = text.find("certificate verify failed")
        detail = text[start:].split(" (_ssl")[0].strip() if start >= 0 else "TLS handshake failed"
        return ExternalError(
            f"Kubernetes at {self.server} failed TLS verification ({detail}): check the certificate "
            f"authority of context {self.context} in the kubeconfig, {OTHER_CONTEXT}."
        )

    # --- pod logs and pod watches (vllmctl logs, router-logs) ---------------------------------

    def pod_logs(
        self,
        namespace: str,
        pod: str,
        container: str | None = None,
        *,
        follow: bool = False,
        tail: int | None = None,
        since_seconds: int | None = None,
        previous: bool = False,
        on_open: Callable[[Callable[[], None]], None] | None = None,
    ) -> Iterator[str]:
        """A container's log lines as they arrive, without their line ends. With `follow` the
        stream stays open until the container stops or the pod goes away; a pod that is
        already gone gives no lines. `on_open` receives a function that ends the stream from
        any thread (the iterator then just stops). The kubelet's refusals (a container still
        waiting to start, no previous instance) are ExternalErrors (400)."""
        import threading

        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        query: Query = [("container", container)] if container else []
        query += [("follow", "true")] if follow else []
        query += [("tailLines", str(tail))] if tail is not None else []
        query += [("sinceSeconds", str(since_seconds))] if since_seconds is not None else []
        query += [("previous", "true")] if previous else []
        try:
            response = self._client.call_api(
                _path("v1", "pods", namespace, pod) + "/log",
                "GET",
                query_params=query,
                header_params={"Accept": "text/plain, application/json"},
                response_type=None,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                # A followed log may be quiet for hours: no read timeout then.
                _request_timeout=(self.timeouts[0], None) if follow else self.timeouts,
            )
        except ApiException as e:
            error = self._refused(e, "get", "pods/log", namespace)
            if isinstance(error, _NotFound):
                return
            raise error from e
        except HTTPError as e:
            raise self._unreachable(e) from e
        ended = threading.Event()

        def end() -> None:
            ended.set()
            self._cut(response)

        if on_open is not None:
            on_open(end)
        pending = b""
        try:
            # Chunked (how a log is streamed): each chunk as it arrives; else to the end.
            for chunk in response.stream(amt=None, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from (line.decode("utf-8", "replace") for line in lines)
            if pending:
                yield pending.decode("utf-8", "replace")
        except Exception as e:
            if ended.is_set():  # cut by `on_open`'s function: the end
                return
            if isinstance(e, HTTPError | OSError):  # the connection broke
                raise self._unreachable(e) from e
            raise
        finally:
            response.close()
            response.release_conn()

    def watch_pods(
        self,
        namespace: str,
        label_selector: str,
        on_open: Callable[[Callable[[], None]], None] | None = None,
    ) -> Iterator[dict[str, Obj]]:
        """The pods matching the selector, by name: after a list, then after every change, for
        as long as the caller reads (each a new dict). A watch that ends is resumed; an
        expired one (410) starts over with a list. `on_open` receives a function that ends
        the watch from any thread (the iterator then just stops)."""
        import threading

        from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError

        path, listing = _path("v1", "pods", namespace), [("labelSelector", label_selector)]
        ended = threading.Event()
        open_: list[Any] = []  # the watch request being read, for `end`

        def end() -> None:
            ended.set()
            for response in list(open_):
                self._cut(response)

        if on_open is not None:
            on_open(end)
        while not ended.is_set():
            listed = self._call("GET", path, verb="list", resource="pods", namespace=namespace, query=listing)
            pods = {p["metadata"]["name"]: p for p in listed.get("items") or []}
            version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
            yield dict(pods)
            expired = False
            while not expired and not ended.is_set():
                query = [
                    *listing,
                    ("watch", "true"),
                    ("resourceVersion", version),
                    ("allowWatchBookmarks", "true"),
                    ("timeoutSeconds", "300"),
                ]
                response = self._call(
                    "GET",
                    path,
                    verb="watch",
                    resource="pods",
                    namespace=namespace,
                    query=query,
                    stream=True,
                    timeout=(self.timeouts[0], 330.0),  # past timeoutSeconds: a dead connection
                )
                open_.append(response)
                if ended.is_set():  # ended while this request was on its way
                    self._cut(response)
                try:
                    for line in _lines(response):
                        version, what = self._watch_event(line, pods, version, "pods", namespace)
                        if what == "expired":
                            expired = True
                            break
                        if what == "bookmark":
                            continue
                        yield dict(pods)
                except (ReadTimeoutError, ProtocolError):
                    pass  # quiet, cut off, or ended: the loops decide
                except Exception as e:
                    if ended.is_set():  # cut by `on_open`'s function: the end
                        return
                    if isinstance(e, HTTPError | OSError):
                        raise self._unreachable(e) from e
                    raise
                finally:
                    open_.remove(response)
                    response.close()
                    response.release_conn()

    def _watch_event(
        self, line: bytes, objects: dict[str, Obj], version: str, resource: str, namespace: str | None
    ) -> tuple[str, str]:
        """One watch event applied to `objects` (by name). Returns the resourceVersion to resume
        from and what it was: "changed", "bookmark", or "expired" (history compacted: list again)."""
        event = json.loads(line)
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                return version, "expired"
            raise self._status_error(obj, "watch", resource, namespace)
        meta = obj.get("metadata") or {}
        version = str(meta.get("resourceVersion") or version)
        if kind == "BOOKMARK":
            return version, "bookmark"
        name = str(meta.get("name"))
        if kind == "DELETED":
            objects.pop(name, None)
        else:
            objects[name] = obj
        return version, "changed"

    @staticmethod
    def _cut(response: Any) -> None:
        """End a streaming response from another thread: a read blocked on it returns."""
        try:
            response.shutdown()  # urllib3 2.3+: shuts the socket down for reading
        except (AttributeError, ValueError, RuntimeError, OSError):
            response.close()  # older urllib3, or already released: closing is all there is


# --- helpers ------------------------------------------------------------------------------


class ServedKinds:
    """Whether the cluster serves a kind, for the checks before install or upgrade: one
    connection, opened at the first question and closed on leaving the `with`. None when
    the cluster cannot be asked (those checks then leave it to helm, which says why)."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._kube: Kube | None = None
        self._unreachable = False

    def __call__(self, group: str, version: str, plural: str) -> bool | None:
        if self._unreachable:
            return None
        try:
            if self._kube is None:
                self._kube = Kube.from_settings(self._settings)
            return version in self._kube.served_versions(group, plural)
        except VllmctlError:
            self._unreachable = True
            return None

    def __enter__(self) -> ServedKinds:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._kube is not None:
            self._kube.close()


def _retry_refused_once() -> Any:
    """urllib3 retries: a refused connection once (an API server restarting), never a request
    that timed out, connecting or reading, so that each wait is the one the message names."""
    from typing import Self

    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    from urllib3.util.retry import Retry

    class RefusedOnce(Retry):
        def increment(
            self,
            method: str | None = None,
            url: str | None = None,
            response: Any = None,
            error: Exception | None = None,
            _pool: Any = None,
            _stacktrace: TracebackType | None = None,
        ) -> Self:
            # NewConnectionError (refused, no route) is a ConnectTimeoutError to urllib3.
            if isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError):
                # As if no attempt were left: MaxRetryError with this error as its reason.
                exhausted = self.new(total=0)
                return Retry.increment(exhausted, method, url, response, error, _pool, _stacktrace)
            return super().increment(method, url, response, error, _pool, _stacktrace)

    return RefusedOnce(total=1, read=0, status=0, redirect=0)


def _path(api_version: str, plural: str, namespace: str | None, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{quote(namespace, safe='')}" if namespace else ""
    item = f"/{quote(name, safe='')}" if name is not None else ""
    return f"{base}{scope}/{plural}{item}"


def _resource(api_version: str, plural: str) -> str:
    """The resource as RBAC rules name it: `secrets`, `externalsecrets.external-secrets.io`."""
    group = api_version.rpartition("/")[0]
    return f"{plural}.{group}" if group else plural


def _names(status: Obj, name: str) -> bool:
    """Whether a 404 Status is about the object itself, not a resource the server lacks."""
    return (status.get("details") or {}).get("name") == name


def _plain(node: Any) -> Obj:
    """A kubeconfig entry as a dict (the client wraps merged entries in ConfigNodes)."""
    value = getattr(node, "value", node)
    return value if isinstance(value, dict) else {}


def _os_reason(error: BaseException) -> str | None:
    """The OS's words for a failed connection ("connection refused"), from the cause chain."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[:1].lower() + seen.strerror[1:]
        seen = seen.__cause__ or seen.__context__
    return None


def _lines(response: Any) -> Iterator[bytes]:
    """The lines of a watch stream as they arrive (one JSON event each)."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def _dig(obj: Obj | None, *keys: str) -> Obj:
    for key in keys:
        obj = (obj or {}).get(key)
    return obj or {}


def _rolled_out(deployment: Obj | None) -> bool:
    if deployment is None:
        return False
    status, want = _dig(deployment, "status"), _dig(deployment, "spec").get("replicas", 1)
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return False
    # Counts of 0 are omitted. `replicas` counts old pods too: they must be gone.
    counts = [status.get(k, 0) for k in ("updatedReplicas", "readyReplicas", "replicas")]
    return counts == [want] * 3


def _progress(name: str, deployment: Obj | None) -> str:
    if deployment is None:
        return f"{name} (absent)"
    status, want = _dig(deployment, "status"), _dig(deployment, "spec").get("replicas", 1)
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return f"{name} (its new spec not yet seen by the controller)"
    updated, ready = status.get("updatedReplicas", 0), status.get("readyReplicas", 0)
    old = status.get("replicas", 0) - updated
    return f"{name} ({updated}/{want} updated, {ready}/{want} ready" + (f", {old} old)" if old > 0 else ")")


def _now(fraction: bool = False) -> str:
    """RFC 3339 in UTC, as kubectl writes restartedAt (seconds), or with microseconds."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if fraction else "%Y-%m-%dT%H:%M:%SZ")
