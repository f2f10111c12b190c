"""The pod `portforward` subresource, served over WebSocket the way kubelet answers it.

`GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=8000[,8001][&ports=...]` upgraded to a
WebSocket. The API server's caller resolves the pod and hands `handle_portforward` a `connect(port)`
coroutine that opens a TCP connection to whatever stands behind that pod port (the router stand-in,
say) or raises when nothing listens there.

What it implements, and the real code it follows:

- The channel protocol of kubelet's WebSocket port-forward (pkg/kubelet/cri/streaming/portforward/
  websocket.go, on top of apimachinery's wsstream.Conn). Subprotocols `v4.channel.k8s.io` (binary
  frames: one channel byte, then the payload), `v4.base64.channel.k8s.io` (text frames: the channel as
  an ASCII digit, then the payload in base64) and none at all (binary, as `v4.channel.k8s.io`). The
  client's first offered protocol that is supported wins, as in wsstream's handshake. Other protocols
  (`channel.k8s.io`, `v2`-`v3.channel.k8s.io`, `portforward.k8s.io`) are refused with 403, as
  kubelet refuses them: its port-forward table has only those three entries (kubelet's 403 has no body;
  ours names the supported protocols). The kubernetes python
  client offers `v4.channel.k8s.io` only (kubernetes/stream/ws_client.py, `create_websocket`).
- Port i owns data channel 2i and error channel 2i+1. Right after the upgrade the server writes the
  port number, 2 bytes little-endian, on the data then the error channel of each port in turn; the
  python client (`PortForward._proxy`) checks that frame and then treats later frames as payload.
- Each port is connected to its backend as soon as the WebSocket opens (one TCP connection per port
  per WebSocket, like kubelet calling the runtime's PortForward at once), and bytes are copied both
  ways; backend reads are 32 KiB, the size of Go's io.Copy buffer. Client frames on an error channel,
  on a channel past the last port, or empty are ignored, as wsstream ignores them. Client data for a
  port waits until that port's connection is made (a kubelet pipe blocks the same way) and is dropped
  once the connection failed or ended.
- When `connect` raises, the error channel carries kubelet's text around containerd's:
  `error forwarding port 8000 to pod <sandbox id>, uid : failed to connect to localhost:8000 inside
  namespace "<sandbox id>", IPv4: dial tcp4 127.0.0.1:8000: connect: connection refused IPv6 dial
  tcp6 [::1]:8000: connect: connection refused ` (trailing space included). Through CRI streaming
  kubelet names the pod by its sandbox id and leaves the uid empty, hence "uid :". The sandbox id here
  is a stable 64-hex digest of namespace/name. Any other exception's text is used as the cause as is.
- A port ends when its backend closes (or its connection failed); the WebSocket is closed (code 1000)
  once every port has ended, as kubelet closes the connection after all its forwarders return. When
  the client closes the WebSocket, every backend connection is closed.
- Refusals before the upgrade: `ports` that do not parse as 16-bit unsigned numbers get the API
  server's 400 Status ("cannot convert to []int32: strconv.ParseUint: parsing ..."); a request that is
  not an upgrade gets its 400 "Upgrade request required"; no ports, or port 0, get kubelet's messages
  (`query parameter "port" is required`, `port "..." must be > 0`) in a 400 Status, where kubelet
  answers with the bare text.

What it leaves out:

- SPDY. `kubectl port-forward` (client-go, 1.31 and later, unless KUBECTL_PORT_FORWARD_WEBSOCKETS=
  false) first asks for a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`: SPDY/3.1 frames
  tunnelled inside binary WebSocket messages, which the API server (feature gate PortForwardWebsockets,
  on by default since 1.31) relays to kubelet as plain SPDY. On an upgrade failure kubectl falls back to
  a plain `Upgrade: SPDY/3.1` POST (kubectl 1.32.4 against this handler: a GET with that subprotocol
  and no `ports` query, then a POST with `X-Stream-Protocol-Version: portforward.k8s.io`; the ports
  travel in SPDY stream headers). Both speak SPDY/3.1 streams (zlib-compressed header blocks with
  SPDY's dictionary; a data and an error stream per connection, with `streamType`, `port` and
  `requestID` headers), which is not implemented: both requests get a 400 Status saying so, so kubectl
  against the sandbox fails with that message instead of hanging.
- kubelet's idle timeout (streaming-connection-idle-timeout), the runtime's one second grace after one
  direction ends, and per-connection bandwidth limits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.sandbox.kube.errors import ApiError

Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

BINARY_PROTOCOL = "v4.channel.k8s.io"
BASE64_PROTOCOL = "v4.base64.channel.k8s.io"
# The protocols kubelet's port-forward accepts; "" is a client that offers none.
SUPPORTED_PROTOCOLS = ("", BINARY_PROTOCOL, BASE64_PROTOCOL)
# kubectl's SPDY-over-WebSocket tunnel asks for "SPDY/3.1+portforward.k8s.io".
TUNNEL_PREFIX = "SPDY/3.1+"

READ_SIZE = 32 * 1024  # Go's io.Copy buffer: the largest frame kubelet sends
MAX_MESSAGE = 32 << 20  # golang.org/x/net/websocket's DefaultMaxPayloadBytes
POD_PATH = re.compile(r"/namespaces/([^/]+)/pods/([^/]+)/portforward$")
SPDY_MESSAGE = (
    "the sandbox API server does not implement SPDY streams ({what}); port-forward is served over "
    f"WebSocket with subprotocol {BINARY_PROTOCOL} or {BASE64_PROTOCOL} only"
)


async def handle_portforward(
    request: web.Request, connect: Connect, *, sandbox_id: str | None = None
) -> web.StreamResponse:
    """Serve one port-forward request: refuse it with a Status, or upgrade and forward until done.

    `sandbox_id` names the pod in error texts; by default a digest of the namespace and name in the path.
    """
    # The API server decodes `ports` before anything else (a 400 Status when it can't).
    try:
        ports = _parse_ports(request.query.getall("ports", []))
    except ApiError as err:
        return _status(err)
    upgrade = request.headers.get("Upgrade", "").strip().lower()
    connection = request.headers.get("Connection", "").lower()
    if not upgrade or "upgrade" not in connection:
        return _status(ApiError(400, "Upgrade request required"))
    if upgrade != "websocket":
        return _status(ApiError(400, SPDY_MESSAGE.format(what=f"Upgrade: {request.headers['Upgrade']}")))
    offered = _offered_protocols(request)
    tunnel = any(p.startswith(TUNNEL_PREFIX) for p in offered)
    if tunnel and not any(p in SUPPORTED_PROTOCOLS for p in offered):
        return _status(ApiError(400, SPDY_MESSAGE.format(what="WebSocket subprotocol " + ", ".join(offered))))
    # kubelet's own checks, made on the query it gets: the API server joins the ports with commas.
    if not ports:
        return _status(ApiError(400, 'query parameter "port" is required'))
    if 0 in ports:
        return _status(ApiError(400, f'port "{",".join(map(str, ports))}" must be > 0'))
    protocol = next((p for p in offered or [""] if p in SUPPORTED_PROTOCOLS), None)
    if protocol is None:
        # x/net/websocket answers a failed subprotocol handshake with 403 (and no body).
        return web.Response(
            status=403,
            text=f"requested protocol(s) are not supported: {offered}; supports {list(SUPPORTED_PROTOCOLS)}",
        )

    if sandbox_id is None:
        match = POD_PATH.search(request.path)
        pod = f"{match[1]}/{match[2]}" if match else request.path
        sandbox_id = hashlib.sha256(pod.encode()).hexdigest()
    ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    session = _Session(
        ws,
        protocol == BASE64_PROTOCOL,
        connect,
        sandbox_id,
        [_Port(i, number) for i, number in enumerate(ports)],
    )
    await session.run()
    return ws


@dataclass
class _Port:
    index: int
    number: int
    # Resolved once connect() has returned (the writer) or failed (None); client data waits for it.
    writer: asyncio.Future[asyncio.StreamWriter | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    ended: bool = False

    @property
    def data_channel(self) -> int:
        return 2 * self.index

    @property
    def error_channel(self) -> int:
        return 2 * self.index + 1


class _Session:
    """One upgraded WebSocket: a task per port forwarding backend to client, and one reading the client."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        base64_codec: bool,
        connect: Connect,
        sandbox_id: str,
        ports: list[_Port],
    ) -> None:
        self.ws = ws
        self.base64 = base64_codec
        self.connect = connect
        self.sandbox_id = sandbox_id
        self.ports = ports

    async def run(self) -> None:
        for port in self.ports:
            number = port.number.to_bytes(2, "little")
            await self._send(port.data_channel, number)
            await self._send(port.error_channel, number)
        forwards = [asyncio.create_task(self._forward(port)) for port in self.ports]
        reader = asyncio.create_task(self._read_client())
        all_ended: asyncio.Future[list[None]] = asyncio.gather(*forwards)
        try:
            either: list[asyncio.Future[Any]] = [reader, all_ended]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if all_ended.done():
                # Every port has ended: close like kubelet does. close() wakes the reader and waits for
                # the client's close frame, so the reader ends on its own.
                await self.ws.close()
                await reader
        finally:
            # The client went away (or this handler is being cancelled): cancelling a port's task closes
            # its backend connection.
            reader.cancel()
            for task in forwards:
                task.cancel()
            await asyncio.gather(reader, all_ended, return_exceptions=True)
            await self.ws.close()

    async def _forward(self, port: _Port) -> None:
        try:
            try:
                reader, writer = await self.connect(port.number)
            except Exception as exc:  # whatever connect() raises means "nothing listens there"
                port.ended = True
                port.writer.set_result(None)
                with contextlib.suppress(ConnectionError):
                    await self._send(port.error_channel, self._error_text(port.number, exc).encode())
                return
            port.writer.set_result(writer)
            while chunk := await reader.read(READ_SIZE):
                await self._send(port.data_channel, chunk)
        except ConnectionError:
            pass  # the client side is gone; run() cleans up
        finally:
            port.ended = True
            if not port.writer.done():
                port.writer.set_result(None)
            await _close_writer(port)

    async def _read_client(self) -> None:
        by_channel = {port.data_channel: port for port in self.ports}
        async for msg in self.ws:  # ends on close (aiohttp answers the client's close frame), or error
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            raw: bytes = msg.data if msg.type == WSMsgType.BINARY else msg.data.encode()
            if not raw:
                continue
            channel = raw[0] - ord("0") if self.base64 else raw[0]
            port = by_channel.get(channel)
            if port is None:
                continue  # an error channel (write-only) or no such channel: wsstream ignores it
            data = raw[1:]
            if self.base64:
                try:
                    data = base64.b64decode(data, validate=True)
                except ValueError:
                    continue  # wsstream logs the bad frame and goes on
            writer = await port.writer
            if writer is None or port.ended or not data:
                continue
            try:
                writer.write(data)
                await writer.drain()
            except ConnectionError:
                continue

    async def _send(self, channel: int, data: bytes) -> None:
        if self.base64:
            await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            await self.ws.send_bytes(bytes([channel]) + data)

    def _error_text(self, port: int, exc: Exception) -> str:
        if isinstance(exc, ConnectionRefusedError):
            # containerd's text: it dials tcp4 first, then tcp6, and reports both.
            cause = (
                f'failed to connect to localhost:{port} inside namespace "{self.sandbox_id}", '
                f"IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused "
                f"IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
            )
        else:
            cause = str(exc) or type(exc).__name__
        return f"error forwarding port {port} to pod {self.sandbox_id}, uid : {cause}"


async def _close_writer(port: _Port) -> None:
    if port.writer.done() and not port.writer.cancelled() and (writer := port.writer.result()) is not None:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _parse_ports(values: list[str]) -> list[int]:
    """`ports` as the API server reads it: repeated, comma-separated, or both; each a uint16."""
    ports: list[int] = []
    for value in values:
        for item in value.split(","):
            # strconv.ParseUint(v, 10, 16): digits only (no sign, no spaces), at most 65535.
            if not item.isascii() or not item.isdigit():
                reason = "invalid syntax"
            elif int(item) > 0xFFFF:
                reason = "value out of range"
            else:
                ports.append(int(item))
                continue
            raise ApiError(400, f'cannot convert to []int32: strconv.ParseUint: parsing "{item}": {reason}')
    return ports


def _offered_protocols(request: web.Request) -> list[str]:
    return [
        p.strip()
        for header in request.headers.getall("Sec-WebSocket-Protocol", [])
        for p in header.split(",")
        if p.strip()
    ]


def _status(err: ApiError) -> web.Response:
    return web.json_response(err.status(), status=err.code)
