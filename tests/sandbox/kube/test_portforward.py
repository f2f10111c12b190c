"""The port-forward stand-in, driven by the real kubernetes python client (and by a bare WebSocket for
the protocol details that client hides).

Each test gets its own loop thread hosting an app with just the portforward route, plus backends on
the same loop: an echo server (pod port 8000), an upper-casing echo (8001) and a server that greets and
hangs up (8002). Pod port 9000 has nothing behind it, so connect() raises ConnectionRefusedError.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websocket
from aiohttp import web
from kubernetes import client
from kubernetes.stream import portforward
from kubernetes.stream.ws_client import PortForward

from tests.sandbox.kube.portforward import handle_portforward
from tests.sandbox.loop import LoopThread

SANDBOX_ID = hashlib.sha256(b"ns/pod").hexdigest()
PROXY_THREAD = "Kubernetes port forward proxy"  # the name kubernetes.stream gives its thread


@dataclass
class Sandbox:
    lt: LoopThread
    port: int
    backend_ports: dict[int, int]
    # Touched only on the loop thread; tests read them through lt.call().
    open_backends: set[asyncio.StreamWriter] = field(default_factory=set)
    open_sessions: list[int] = field(default_factory=lambda: [0])
    # The handler's ends of the backend connections, as connect() handed them over: it must close them.
    handed_over: list[asyncio.StreamWriter] = field(default_factory=list)

    def api(self) -> client.CoreV1Api:
        cfg = client.Configuration(host=f"http://127.0.0.1:{self.port}")
        return client.CoreV1Api(client.ApiClient(cfg))

    def forward(self, ports: str) -> PortForward:
        api = self.api()
        return portforward(api.connect_get_namespaced_pod_portforward, "pod", "ns", ports=ports)

    def url(self, query: str = "ports=8000") -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/namespaces/ns/pods/pod/portforward?{query}"

    def wait_idle(self) -> None:
        """Wait until the server has no WebSocket session and no backend connection open."""

        def idle() -> bool:
            unclosed = [w for w in self.handed_over if not w.is_closing()]
            return (self.open_sessions[0], len(self.open_backends), unclosed) == (0, 0, [])

        wait_for(lambda: self.lt.call(idle))


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    lt = LoopThread()
    box = Sandbox(lt, 0, {})

    def track(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]) -> Any:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            box.open_backends.add(writer)
            try:
                await handler(reader, writer)
            finally:
                writer.close()
                box.open_backends.discard(writer)

        return tracked

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        await writer.drain()

    servers: list[asyncio.Server] = []

    async def start() -> dict[int, int]:
        ports = {}
        for pod_port, handler in ((8000, echo), (8001, upper), (8002, greet)):
            server = await asyncio.start_server(track(handler), "127.0.0.1", 0)
            servers.append(server)
            ports[pod_port] = server.sockets[0].getsockname()[1]
        return ports

    box.backend_ports = lt.run(start())

    async def connect(pod_port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if pod_port not in box.backend_ports:
            raise ConnectionRefusedError(111, f"Connect call failed ('127.0.0.1', {pod_port})")
        reader, writer = await asyncio.open_connection("127.0.0.1", box.backend_ports[pod_port])
        box.handed_over.append(writer)
        return reader, writer

    async def route(request: web.Request) -> web.StreamResponse:
        box.open_sessions[0] += 1
        try:
            return await handle_portforward(request, connect)
        finally:
            box.open_sessions[0] -= 1

    app = web.Application()
    app.router.add_route("GET", "/api/v1/namespaces/{ns}/pods/{name}/portforward", route)
    app.router.add_route("POST", "/api/v1/namespaces/{ns}/pods/{name}/portforward", route)
    box.port = lt.serve(app)
    try:
        yield box
        box.wait_idle()
    finally:

        async def stop_servers() -> None:
            for server in servers:
                server.close()
                await server.wait_closed()

        lt.run(stop_servers())
        lt.stop()


@pytest.fixture(autouse=True)
def no_leftover_proxy_threads() -> Iterator[None]:
    yield
    assert not [t for t in threading.enumerate() if t.name.startswith(PROXY_THREAD)]


def close(pf: PortForward) -> None:
    """Close like a careful caller: the local sockets, then wait for the client's proxy thread."""
    pf.close()
    for thread in threading.enumerate():
        if thread.name.startswith(PROXY_THREAD):
            thread.join(timeout=2)
            assert not thread.is_alive()
    # When the server closed first, WebSocket.close() returns early (already "not connected") and
    # leaves the TCP socket open; shutdown() is the client's own way to release it.
    pf.websocket.shutdown()
    assert pf.websocket.sock is None


def open_socket(pf: PortForward, port: int) -> Any:
    """The client's socket for `port`, with a timeout so that a broken forward fails instead of hanging."""
    sock = pf.socket(port)
    sock.settimeout(10)
    return sock


def recv_exactly(sock: Any, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        assert chunk, "connection closed early"
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv_until_eof(sock: Any) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# --- through the kubernetes python client --------------------------------------------------------


def test_bytes_round_trip_through_the_python_client(sandbox: Sandbox) -> None:
    pf = sandbox.forward("8000")
    try:
        # The client asks for its protocol with a raw header, so only the response headers show the answer.
        assert pf.websocket.getheaders()["sec-websocket-protocol"] == "v4.channel.k8s.io"
        sock = open_socket(pf, 8000)
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        sock.sendall(b"again")
        assert recv_exactly(sock, 5) == b"again"
        assert pf.error(8000) is None
    finally:
        close(pf)


def test_a_megabyte_round_trips_intact(sandbox: Sandbox) -> None:
    payload = random.Random(8000).randbytes(1 << 20)
    pf = sandbox.forward("8000")
    try:
        sock = open_socket(pf, 8000)
        sock.sendall(payload)
        echoed = recv_exactly(sock, len(payload))
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
    finally:
        close(pf)


def test_two_ports_reach_their_own_backends(sandbox: Sandbox) -> None:
    pf = sandbox.forward("8000,8001")
    try:
        plain, shout = open_socket(pf, 8000), open_socket(pf, 8001)
        plain.sendall(b"abc")
        shout.sendall(b"abc")
        assert recv_exactly(shout, 3) == b"ABC"
        assert recv_exactly(plain, 3) == b"abc"
        shout.sendall(b"xyz")
        assert recv_exactly(shout, 3) == b"XYZ"
        assert sandbox.lt.call(lambda: len(sandbox.open_backends)) == 2
    finally:
        close(pf)


def test_refused_port_reports_kubelets_error_and_closes(sandbox: Sandbox) -> None:
    pf = sandbox.forward("9000")
    try:
        sock = open_socket(pf, 9000)
        assert recv_until_eof(sock) == b""  # the client closes the port's socket on an error frame
        assert pf.error(9000) == (
            f"error forwarding port 9000 to pod {SANDBOX_ID}, uid : failed to connect to localhost:9000 "
            f'inside namespace "{SANDBOX_ID}", IPv4: dial tcp4 127.0.0.1:9000: connect: connection refused '
            "IPv6 dial tcp6 [::1]:9000: connect: connection refused "
        )
        wait_for(lambda: not pf.connected)  # the only port ended, so the server closed the WebSocket
    finally:
        close(pf)


def test_a_refused_port_leaves_the_other_forwarding(sandbox: Sandbox) -> None:
    pf = sandbox.forward("9000,8000")
    try:
        assert recv_until_eof(open_socket(pf, 9000)) == b""
        assert pf.error(9000) is not None and "error forwarding port 9000" in pf.error(9000)
        sock = open_socket(pf, 8000)
        sock.sendall(b"still here")
        assert recv_exactly(sock, 10) == b"still here"
        assert pf.connected and pf.error(8000) is None
    finally:
        close(pf)


def test_backend_hanging_up_closes_the_websocket(sandbox: Sandbox) -> None:
    pf = sandbox.forward("8002")
    try:
        assert recv_until_eof(open_socket(pf, 8002)) == b"bye"
        wait_for(lambda: not pf.connected)
        assert pf.error(8002) is None
    finally:
        close(pf)


def test_client_closing_closes_the_backend_connection(sandbox: Sandbox) -> None:
    pf = sandbox.forward("8000")
    sock = open_socket(pf, 8000)
    sock.sendall(b"ping")
    assert recv_exactly(sock, 4) == b"ping"
    assert sandbox.lt.call(lambda: len(sandbox.open_backends)) == 1
    close(pf)
    sandbox.wait_idle()


# --- the wire protocol, with a bare WebSocket ----------------------------------------------------


def raw(sandbox: Sandbox, query: str, subprotocols: list[str] | None) -> websocket.WebSocket:
    return websocket.create_connection(sandbox.url(query), timeout=10, subprotocols=subprotocols)


def close_raw(ws: websocket.WebSocket) -> None:
    ws.close()  # a no-op when the server closed first, which leaves the TCP socket to shutdown()
    ws.shutdown()


@pytest.mark.parametrize("subprotocols", [["v4.channel.k8s.io"], None, ["nonsense", "v4.channel.k8s.io"]])
def test_binary_frames_and_initial_port_frames(sandbox: Sandbox, subprotocols: list[str] | None) -> None:
    ws = raw(sandbox, "ports=8000&ports=8001", subprotocols)
    try:
        assert ws.getsubprotocol() == (subprotocols and "v4.channel.k8s.io")
        # 8000 = 0x1f40 and 8001 = 0x1f41, little-endian, on data then error channel of each port.
        assert [ws.recv_data()[1] for _ in range(4)] == [
            b"\x00\x40\x1f",
            b"\x01\x40\x1f",
            b"\x02\x41\x1f",
            b"\x03\x41\x1f",
        ]
        # Frames on an error channel, past the last channel, or empty are ignored.
        ws.send_binary(b"\x01ignored")
        ws.send_binary(b"\x07ignored")
        ws.send_binary(b"")
        ws.send_binary(b"\x02hi")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x02HI")
        ws.send_binary(b"\x00hi")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x00hi")
    finally:
        close_raw(ws)


def test_base64_protocol(sandbox: Sandbox) -> None:
    ws = raw(sandbox, "ports=8001", ["v4.base64.channel.k8s.io"])
    try:
        assert ws.getsubprotocol() == "v4.base64.channel.k8s.io"
        # The channel as a digit, then base64 of 8001 little-endian (b"\x41\x1f").
        assert [ws.recv_data() for _ in range(2)] == [
            (websocket.ABNF.OPCODE_TEXT, b"0QR8="),
            (websocket.ABNF.OPCODE_TEXT, b"1QR8="),
        ]
        ws.send("0" + base64.b64encode(b"quiet").decode())
        assert ws.recv_data() == (websocket.ABNF.OPCODE_TEXT, b"0" + base64.b64encode(b"QUIET"))
    finally:
        close_raw(ws)


def test_server_closes_normally_once_every_port_ended(sandbox: Sandbox) -> None:
    ws = raw(sandbox, "ports=8002", ["v4.channel.k8s.io"])
    try:
        frames = [ws.recv_data() for _ in range(3)]
        assert frames[2] == (websocket.ABNF.OPCODE_BINARY, b"\x00bye")
        opcode, frame = ws.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and frame.data[:2] == b"\x03\xe8"  # 1000
    finally:
        close_raw(ws)


def status_of(err: websocket.WebSocketBadStatusException) -> tuple[int, dict[str, Any]]:
    return err.status_code, json.loads(err.resp_body or b"{}")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("ports=abc", 'cannot convert to []int32: strconv.ParseUint: parsing "abc": invalid syntax'),
        (
            "ports=8000,70000",
            'cannot convert to []int32: strconv.ParseUint: parsing "70000": value out of range',
        ),
        ("ports=", 'cannot convert to []int32: strconv.ParseUint: parsing "": invalid syntax'),
        ("", 'query parameter "port" is required'),
        ("ports=8000,0", 'port "8000,0" must be > 0'),
    ],
)
def test_bad_ports_get_a_400_status(sandbox: Sandbox, query: str, message: str) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        raw(sandbox, query, ["v4.channel.k8s.io"])
    code, body = status_of(err.value)
    assert code == 400
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


def test_unsupported_subprotocols_get_403(sandbox: Sandbox) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        raw(sandbox, "ports=8000", ["channel.k8s.io", "portforward.k8s.io"])
    assert err.value.status_code == 403


def test_kubectls_spdy_tunnel_is_refused_with_a_reason(sandbox: Sandbox) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        raw(sandbox, "", ["SPDY/3.1+portforward.k8s.io"])
    code, body = status_of(err.value)
    assert code == 400 and "does not implement SPDY" in body["message"]


def test_plain_and_spdy_requests_are_refused(sandbox: Sandbox) -> None:
    def post(headers: str, connection: str = "close") -> tuple[int, dict[str, Any]]:
        # A raw request: http.client and requests won't send an Upgrade of their own.
        with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as s:
            s.sendall(
                f"POST /api/v1/namespaces/ns/pods/pod/portforward HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: 0\r\n{headers}Connection: {connection}\r\n\r\n".encode()
            )
            response = http.client.HTTPResponse(s)
            response.begin()
            return response.status, json.loads(response.read())

    assert post("") == (
        400,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Upgrade request required",
            "reason": "BadRequest",
            "code": 400,
        },
    )
    code, body = post("Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n", "Upgrade")
    assert code == 400 and "does not implement SPDY streams (Upgrade: SPDY/3.1)" in body["message"]
