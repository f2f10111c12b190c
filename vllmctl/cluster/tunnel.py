"""A local port forwarded to the release's router, through the Kubernetes API.

`open_router_tunnel` resolves the Service `<release>-router-service` to a Ready pod (its
selector, then the pods' Ready condition) and its target port, listens on a local address,
and relays each accepted connection over its own port-forward WebSocket to that pod
(`Kube.port_forward`: the kubernetes client's port-forward; no kubectl). One WebSocket per
connection is what kubectl's streams amount to, and it lets a connection that fails go to
another pod without disturbing the others.

When the pod goes away (the WebSocket is refused) or its port refuses the connection (the
kubelet's error channel), the Service is resolved again, waiting up to `reconnect_timeout`
for a Ready pod, and the connection is made there. Bytes the client sent are replayed only
when the pod's port never accepted them, so a request is never delivered twice.

Threads: one accepts, one per connection relays (plus the client's own relay thread per
WebSocket); `close()` ends and joins them all.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable, Collection
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import ROUTER_PORT_NAME, router_service_name
from vllmctl.chart.inputs import API_KEY_SECRET as API_KEY_REF
from vllmctl.core.errors import ExternalError, UsageError

if TYPE_CHECKING:
    from vllmctl.cluster.kube import Kube, PodConnection

# The Secret the chart's router and engines read the key from (vllmctl's name for it).
API_KEY_SECRET, API_KEY_FIELD = API_KEY_REF.secret_name, API_KEY_REF.secret_key
RECONNECT_TIMEOUT = 30.0  # seconds a connection waits for a Ready router pod
POLL_SECONDS = 0.2
READ_SIZE = 64 * 1024
REPLAY_LIMIT = 1 << 20  # bytes of an unanswered request kept to send again to another pod
JOIN_SECONDS = 3.0

Report = Callable[[str], None]


class RouterNotReady(ExternalError):
    """The router Service is missing or has no Ready pod to forward to."""


class Target(NamedTuple):
    """Where connections go: a Ready router pod and the container port behind the Service."""

    pod: str
    port: int


def router_api_key(kube: Kube, namespace: str) -> str | None:
    """The API key the router enforces: the namespace's Secret vllm-api-key, key api-key."""
    secret = kube.get("v1", "secrets", namespace, API_KEY_SECRET)
    value = ((secret or {}).get("data") or {}).get(API_KEY_FIELD)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).decode() or None
    except ValueError:  # not base64, or not UTF-8 text
        raise ExternalError(
            f"Secret {API_KEY_SECRET} in namespace {namespace} holds an {API_KEY_FIELD} that is not text: "
            "set the key again (`vllmctl set-api-key`)."
        ) from None


def find_router_pod(kube: Kube, namespace: str, service: str, avoid: Collection[str] = ()) -> Target:
    """A Ready pod behind the Service and the container port its (first HTTP) port targets.

    Pods in `avoid` are taken only when no other is Ready."""
    svc = kube.get("v1", "services", namespace, service)
    if svc is None:
        raise RouterNotReady(
            f"there is no router: Service {service} does not exist in namespace {namespace}. "
            "Is the release installed? `vllmctl status` shows what is deployed."
        )
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        raise RouterNotReady(f"Service {service} in namespace {namespace} selects no pods to forward to.")
    ports = spec.get("ports") or [{"port": 80}]
    chosen = next((p for p in ports if p.get("name") == ROUTER_PORT_NAME), ports[0])
    target_port = chosen.get("targetPort", chosen.get("port"))
    label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = kube.list("v1", "pods", namespace, label_selector)
    ready = sorted(
        (p for p in pods if _ready(p)), key=lambda p: (p["metadata"]["name"] in avoid, p["metadata"]["name"])
    )
    if not ready:
        states = ", ".join(f"{p['metadata']['name']} {_state(p)}" for p in pods) or "no pods"
        raise RouterNotReady(
            f"the router is not Ready: Service {service} in namespace {namespace} has no Ready pod "
            f"({states}). `vllmctl status` shows why."
        )
    pod = ready[0]
    return Target(pod["metadata"]["name"], _container_port(pod, target_port, service))


def open_router_tunnel(
    kube: Kube,
    namespace: str,
    release: str,
    *,
    port: int = 0,
    address: str = "127.0.0.1",
    reconnect_timeout: float = RECONNECT_TIMEOUT,
    on_event: Report | None = None,
) -> Tunnel:
    """Listen on address:port (0: any free port) and forward to the release's router.

    Use it as a context manager; `base_url` is the URL to send requests to. Raises
    UsageError when the port cannot be had, RouterNotReady when no router pod is Ready."""
    listener = _listen(address, port)
    try:
        service = router_service_name(release)
        target = find_router_pod(kube, namespace, service)
    except BaseException:
        listener.close()
        raise
    return Tunnel(kube, namespace, service, listener, target, reconnect_timeout, on_event)


class Tunnel:
    """A running port-forward: a listening socket and the connections relayed to the router."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        service: str,
        listener: socket.socket,
        target: Target,
        reconnect_timeout: float,
        on_event: Report | None,
    ) -> None:
        self._kube = kube
        self.namespace = namespace
        self.service = service
        self._listener = listener
        self._target: Target | None = target
        self.reconnect_timeout = reconnect_timeout
        self._report = on_event or (lambda _message: None)
        # What was last said, so a pod that keeps refusing is reported once, not per retry.
        self._announced = target.pod
        self._complaint: tuple[str, str] | None = None
        host, self.port = listener.getsockname()[:2]
        self.address = str(host)
        self.base_url = f"http://{_url_host(self.address)}:{self.port}"
        self._lock = threading.Lock()  # guards _target, _connections, _threads
        self._closed = threading.Event()
        self._connections: set[_Connection] = set()
        self._threads: list[threading.Thread] = []
        self._wake_read, self._wake_write = socket.socketpair()
        self._acceptor = threading.Thread(target=self._accept, name="vllmctl tunnel accept", daemon=True)
        self._acceptor.start()

    @property
    def pod(self) -> str | None:
        """The pod new connections go to (None while none is known to be Ready)."""
        target = self._target
        return target.pod if target else None

    @property
    def target_port(self) -> int | None:
        target = self._target
        return target.port if target else None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the tunnel is closed (or the timeout passes); True if closed."""
        return self._closed.wait(timeout)

    def close(self) -> None:
        """Stop listening, cut every connection, and wait for the threads to end."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake_write.send(b"x")
        self._acceptor.join(JOIN_SECONDS)
        self._listener.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            connection.interrupt()
        for thread in threads:
            thread.join(JOIN_SECONDS)
        self._wake_read.close()
        self._wake_write.close()

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- accepting ------------------------------------------------------------------------

    def _accept(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read:
                        return
                    try:
                        client, _ = self._listener.accept()
                    except OSError:
                        continue  # the client gave up before we took it
                    self._start(client)

    def _start(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(client)
        thread = threading.Thread(target=self._serve, args=(connection,), name="vllmctl tunnel", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            self._connections.add(connection)
        thread.start()

    # --- one connection ---------------------------------------------------------------------

    def _serve(self, connection: _Connection) -> None:
        try:
            avoid: set[str] = set()
            deadline: float | None = None  # for retries, from the first failure on
            while not self._closed.is_set():
                remote = self._connect(avoid, deadline)
                if remote is None or not connection.attach(remote):
                    return
                if not self._relay(connection, remote):
                    return
                # The pod's port refused what it was sent: try another pod, replaying it.
                avoid.add(connection.pod or "")
                if deadline is None:
                    deadline = time.monotonic() + self.reconnect_timeout
                self._closed.wait(POLL_SECONDS)
        except OSError:
            pass  # either side went away: the connection is over
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    def _connect(self, avoid: set[str], deadline: float | None = None) -> _Remote | None:
        """A port-forward to a Ready router pod; waits for one until the deadline (default:
        reconnect_timeout from now)."""
        if deadline is None:
            deadline = time.monotonic() + self.reconnect_timeout
        problem = ""
        while not self._closed.is_set():
            target = self._current(avoid)
            if target is not None:
                try:
                    return _Remote(target, self._kube.port_forward(self.namespace, target.pod, target.port))
                except ExternalError as e:
                    problem = e.message
                    self._forget(target, f"port-forward refused: {e.message}")
                    avoid.add(target.pod)
            if time.monotonic() >= deadline:
                self._report(
                    f"no Ready router pod took a connection within {self.reconnect_timeout:g} s; "
                    f"closed it{f' ({problem})' if problem else ''}."
                )
                return None
            self._closed.wait(POLL_SECONDS)
        return None

    def _current(self, avoid: set[str]) -> Target | None:
        with self._lock:
            if self._target is not None and self._target.pod not in avoid:
                return self._target
            try:
                target = find_router_pod(self._kube, self.namespace, self.service, avoid)
            except ExternalError:
                return None
            self._target = target
            if target.pod != self._announced:
                self._announced = target.pod
                self._report(f"forwarding to router pod {target.pod} now.")
            return target

    def _forget(self, target: Target, why: str) -> None:
        with self._lock:
            if self._target == target:
                self._target = None
            if self._complaint != (target.pod, why):
                self._complaint = (target.pod, why)
                self._report(f"router pod {target.pod}: {why}")

    def _relay(self, connection: _Connection, remote: _Remote) -> bool:
        """Copy bytes both ways until either side ends. True: the pod's port refused the
        connection before answering, so it may be retried elsewhere."""
        client, pod_side = connection.client, remote.link.socket
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, "client")
            selector.register(pod_side, selectors.EVENT_READ, "pod")
            while True:
                for key, _ in selector.select():
                    if key.data == "client":
                        data = client.recv(READ_SIZE)
                        if not data:
                            return False
                        if connection.replayable:
                            connection.pending += data
                            if len(connection.pending) > REPLAY_LIMIT:
                                connection.give_up_replay()
                        with contextlib.suppress(OSError):  # the pod side ended: its read says how
                            pod_side.sendall(data)
                        continue
                    try:
                        data = pod_side.recv(READ_SIZE)
                    except OSError:
                        data = b""
                    if data:
                        connection.give_up_replay()  # the pod answered: never send it twice
                        client.sendall(data)
                        continue
                    error = remote.link.error()
                    if error is None:
                        return False  # the router closed the connection
                    self._forget(remote.target, error)
                    return connection.replayable


class _Remote(NamedTuple):
    target: Target
    link: PodConnection


class _Connection:
    """An accepted client connection, the pod side it is relayed to, and what the client
    sent that the pod has not answered yet (replayed on another pod if it fails)."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.remote: _Remote | None = None
        self.pending = bytearray()
        self.replayable = True  # until the pod answers (or the request outgrows REPLAY_LIMIT)
        self._lock = threading.Lock()
        self._interrupted = False

    @property
    def pod(self) -> str | None:
        return self.remote.target.pod if self.remote else None

    def give_up_replay(self) -> None:
        self.replayable = False
        self.pending.clear()

    def attach(self, remote: _Remote) -> bool:
        """Relay to this pod side now (closing the previous one); False if interrupted."""
        with self._lock:
            previous, self.remote = self.remote, remote
            interrupted = self._interrupted
        if previous is not None:
            previous.link.close()
        if interrupted:
            remote.link.close()
            return False
        if self.pending:
            remote.link.socket.sendall(bytes(self.pending))
        return True

    def interrupt(self) -> None:
        """Wake the relay (from another thread): both sockets read as ended."""
        with self._lock:
            self._interrupted = True
            remote = self.remote
        for sock in (self.client, remote.link.socket if remote else None):
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            remote, self.remote = self.remote, None
        if remote is not None:
            remote.link.close()
        self.client.close()


# --- helpers --------------------------------------------------------------------------------


def _listen(address: str, port: int) -> socket.socket:
    """A listening socket on address:port, or a UsageError saying what to change."""
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as e:
        raise UsageError(f"--address {address}: not an address of this machine ({e.strerror}).") from None
    sock = socket.socket(family, kind, proto)
    try:
        # Rebinding right after an earlier port-forward ended (TIME_WAIT); a port someone
        # listens on is still refused.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {address} is already in use: give another PORT argument "
                "(or 0 for any free port), or stop what listens there."
            ) from None
        if e.errno == errno.EACCES:
            raise UsageError(
                f"port {port} on {address} needs privileges: give a PORT argument above 1023."
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--address {address}: not an address of this machine.") from None
        raise UsageError(f"cannot listen on {address} port {port}: {e.strerror or e}.") from None
    return sock


def _url_host(address: str) -> str:
    """The host part of a URL that reaches this listener (a wildcard becomes loopback)."""
    if address in ("0.0.0.0", ""):
        return "127.0.0.1"
    if address == "::":
        return "[::1]"
    return f"[{address}]" if ":" in address else address


def _ready(pod: dict[str, Any]) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _state(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "(terminating)"
    phase = status.get("phase") or "Pending"
    return f"({phase}, not Ready)" if phase == "Running" else f"({phase})"


def _container_port(pod: dict[str, Any], target: Any, service: str) -> int:
    """The Service's targetPort on this pod: a number, or the name of a container port."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target and declared.get("containerPort"):
                return int(declared["containerPort"])
    raise RouterNotReady(
        f"Service {service} targets port {target!r}, which pod {pod['metadata']['name']} does not declare."
    )
