"""Streamed completions over asyncio (httpx.AsyncClient + httpx-sse), for load generation.

One event loop drives hundreds of streams at a fraction of the CPU threads would need.
Each answer is a `StreamRecord`: when the request was sent and when each chunk carrying
text arrived (time.perf_counter, taken as the event is parsed, before anything else is
done with it), the server's token counts, and how it failed if it did. A failure is never
raised: load generation counts failures by kind (`ErrorKind`) and goes on.

httpx is imported inside the functions, as in openai_api.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from vllmctl.apis.openai_api import (
    CONNECT_TIMEOUT,
    MODELS_PATH,
    READ_TIMEOUT,
    CompletionRequest,
    _error_message,
    api_key_problem,
    error_text,
    is_loopback_url,
    normalize_base_url,
)
from vllmctl.core.errors import UsageError

if TYPE_CHECKING:
    pass


class ErrorKind:
    """How a request failed: the keys of a run's error counts."""

    TIMEOUT = "timeout"  # no byte within the read timeout, or no connection in time
    CONNECT = "connect failed"
    DROPPED = "stream dropped"  # the connection broke, or the stream ended without [DONE]
    ERROR_EVENT = "error event"  # the server sent an error in the stream (vLLM mid-answer)
    NO_TOKENS = "no tokens"  # the stream ended without a chunk of text
    NOT_SSE = "not an event stream"

    @staticmethod
    def http(status: int) -> str:
        return f"HTTP {status}"


@dataclass
class StreamRecord:
    """One request's answer as measured: all times are time.perf_counter() readings."""

    sent: float  # just before the request was handed to httpx
    chunks: list[float] = field(default_factory=list)  # arrival of each chunk carrying text
    prompt_tokens: int | None = None  # the server's usage, when it sent one
    completion_tokens: int | None = None
    finish_reason: str | None = None
    chars: int = 0  # characters of text received
    error: str | None = None  # an ErrorKind; None: it succeeded
    detail: str | None = None  # the server's or the library's words, for the first errors shown
    ended: float | None = None  # when the stream ended (or failed)

    @property
    def ok(self) -> bool:
        return self.error is None


class AsyncStreamClient:
    """One OpenAI-compatible endpoint over one async connection pool (use `async with`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        max_connections: int | None = 100,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        import httpx

        self.base_url = normalize_base_url(base_url)
        problem = api_key_problem(api_key) if api_key else None
        if problem:
            raise UsageError(f"the API key {problem}, which an HTTP header cannot carry; it was not sent.")
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=self.base_url.startswith("https:"),
            trust_env=not is_loopback_url(self.base_url),
        )

    async def __aenter__(self) -> AsyncStreamClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def warm(self, connections: int, timeout: float = 30.0) -> None:
        """Open `connections` connections before a run's clock starts, so no request's TTFT
        pays for connecting (through a port-forward, ~0.3 s each): one GET /v1/models on
        each, all held open until every one has answered. Failures are left to the run."""
        import httpx

        arrived = 0
        everyone = asyncio.Event()

        def arrive() -> None:
            nonlocal arrived
            arrived += 1
            if arrived >= connections:
                everyone.set()

        async def hold() -> None:
            try:
                async with self._http.stream("GET", MODELS_PATH) as response:
                    arrive()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(everyone.wait(), timeout)
                    await response.aread()
            except httpx.HTTPError:
                arrive()

        await asyncio.gather(*(hold() for _ in range(connections)))

    async def stream(
        self, request: CompletionRequest, on_chunk: Callable[[], None] | None = None
    ) -> StreamRecord:
        """Send one streamed completion and measure it; `on_chunk` is called per text chunk."""
        import httpx

        record = StreamRecord(sent=time.perf_counter())
        try:
            await self._read(request, record, on_chunk)
        except httpx.TimeoutException as e:
            _fail(record, ErrorKind.TIMEOUT, type(e).__name__)
        except httpx.ConnectError as e:
            _fail(record, ErrorKind.CONNECT, str(e) or type(e).__name__)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            _fail(record, ErrorKind.DROPPED, str(e) or type(e).__name__)
        except httpx.UnsupportedProtocol:
            raise UsageError(f"{self.base_url} is not an http:// or https:// URL.") from None
        except httpx.LocalProtocolError:  # its text would quote the offending header: the key
            raise UsageError(
                f"the request to {self.base_url} could not be sent: a header is malformed."
            ) from None
        if record.ended is None:
            record.ended = time.perf_counter()
        return record

    async def _read(
        self, request: CompletionRequest, record: StreamRecord, on_chunk: Callable[[], None] | None
    ) -> None:
        from httpx_sse import EventSource, SSEError

        clock = time.perf_counter
        async with self._http.stream("POST", request.path, json=request.body()) as response:
            if response.is_error:
                await response.aread()
                _fail(record, ErrorKind.http(response.status_code), error_text(response))
                return
            done = False
            try:
                async for event in EventSource(response).aiter_sse():
                    now = clock()
                    if event.data == "[DONE]":
                        # Read on to the body's end (it ends here): a response left unread
                        # closes its connection, and the next request would pay for a new one.
                        done = True
                        continue
                    chunk = _json(event.data)
                    if not isinstance(chunk, dict):
                        continue
                    if chunk.get("error"):
                        _fail(record, ErrorKind.ERROR_EVENT, _error_message(chunk))
                        return
                    _take_usage(record, chunk.get("usage"))
                    for choice in chunk.get("choices") or ():
                        text = _text(choice)
                        if text:
                            record.chunks.append(now)
                            record.chars += len(text)
                            if on_chunk is not None:
                                on_chunk()
                        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
                        record.finish_reason = reason or record.finish_reason
            except SSEError:
                _fail(record, ErrorKind.NOT_SSE, f"Content-Type {response.headers.get('content-type')!r}")
                return
        record.ended = clock()
        if not done:
            _fail(record, ErrorKind.DROPPED, "the stream ended without data: [DONE]")
        elif not record.chunks:
            _fail(record, ErrorKind.NO_TOKENS, "the answer had no text")


class ShardedStreamClient:
    """Several AsyncStreamClients, each with at most PER_SHARD connections, and each request
    on the one with the fewest in flight: httpcore's pool scans all of its connections for
    every request it places, which at 64 streams on one pool cost over half the client's CPU
    (profiled with 16-token answers); small pools keep that scan short."""

    PER_SHARD = 8
    UNBOUNDED_SHARDS = 8  # no connection limit asked for: this many pools, each unbounded

    def __init__(self, base_url: str, api_key: str | None = None, *, max_connections: int | None) -> None:
        if max_connections is None:
            sizes: list[int | None] = [None] * self.UNBOUNDED_SHARDS
        else:
            count = max(1, math.ceil(max_connections / self.PER_SHARD))
            sizes = [len(range(i, max_connections, count)) or 1 for i in range(count)]
        self._shards = [AsyncStreamClient(base_url, api_key, max_connections=size) for size in sizes]
        self._busy = [0] * len(self._shards)

    async def __aenter__(self) -> ShardedStreamClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        for shard in self._shards:
            await shard.__aexit__(kind, value, tb)

    async def warm(self, connections: int, timeout: float = 30.0) -> None:
        """Open `connections` connections before the clock starts, spread over the shards."""
        count = len(self._shards)
        shares = [len(range(i, connections, count)) for i in range(count)]
        await asyncio.gather(*(s.warm(n, timeout) for s, n in zip(self._shards, shares, strict=True) if n))

    async def stream(
        self, request: CompletionRequest, on_chunk: Callable[[], None] | None = None
    ) -> StreamRecord:
        index = min(range(len(self._shards)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            return await self._shards[index].stream(request, on_chunk)
        finally:
            self._busy[index] -= 1


def _fail(record: StreamRecord, kind: str, detail: str) -> None:
    record.error = kind
    record.detail = _short(detail)
    record.ended = time.perf_counter()


def _take_usage(record: StreamRecord, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int):
        record.prompt_tokens = prompt
    if isinstance(completion, int):
        record.completion_tokens = completion


def _text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    if "text" in choice:  # /v1/completions
        return str(choice.get("text") or "")
    delta = choice.get("delta")
    return str(delta.get("content") or "") if isinstance(delta, dict) else ""


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _short(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."
