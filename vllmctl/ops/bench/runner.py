"""Load generation: send the prompts in the chosen shape over one asyncio event loop and
measure every answer (vllmctl/apis/openai_async.py takes the chunk arrival times).

The shape: at most `concurrency` requests in flight; arrivals at `rate` requests/s as a
Poisson process (exponential gaps drawn from `seed`; inf: as fast as the concurrency
allows); `requests` in all, and/or for `duration` seconds: after it no request is sent,
and those in flight are waited for (cutting them would leave only the short ones in the
metrics). Ctrl-C (SIGINT) cancels the requests in flight and ends the run with what
completed, marked interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vllmctl.core.errors import VllmctlError
from vllmctl.ops.bench.metrics import RequestResult
from vllmctl.ops.bench.prompts import BenchPrompt

TICK_SECONDS = 0.25  # how often the progress display is told how things stand
# Connections opened before the clock starts: the concurrency, else the requests, capped.
WARM_DEFAULT = 32
WARM_MAX = 256


@dataclass(frozen=True)
class LoadShape:
    requests: int | None  # None: as many as `duration` allows
    concurrency: int | None  # None: no limit
    rate: float = math.inf  # requests/s, Poisson arrivals
    duration: float | None = None  # seconds; None: until `requests` are done
    seed: int = 0


@dataclass(frozen=True)
class Target:
    """Where the requests go and what they ask for."""

    base_url: str
    api_key: str | None
    model: str
    chat: bool = False  # /v1/chat/completions; else /v1/completions (the exact prompt)
    ignore_eos: bool = False  # vLLM's `ignore_eos`: generate max_tokens whatever the model says


@dataclass(frozen=True)
class Snapshot:
    """How the run stands, for a progress display."""

    elapsed: float
    sent: int
    done: int
    failed: int
    in_flight: int
    tokens: int  # chunks of text received so far, all requests
    total: int | None


@dataclass
class RunResult:
    results: list[RequestResult]
    duration: float  # from just before the first request to the end of the last
    started_at: str  # UTC, ISO 8601
    interrupted: bool = False
    cancelled: int = 0  # in flight at Ctrl-C, cancelled and not counted
    sent: int = 0
    notes: list[str] = field(default_factory=list)


class PromptFeed:
    """The prompts to send, in order: `first`, then batches from `more(batch)` made in a
    thread before they are needed (a --duration run does not know how many it will send).
    Without `more`, `first` is sent again from the start when it runs out."""

    def __init__(self, first: list[BenchPrompt], more: Callable[[int], list[BenchPrompt]] | None = None):
        if not first:
            raise ValueError("no prompts")
        self._prompts = list(first)
        self._next = 0
        self._more = more
        self._batch = 0
        self._making: asyncio.Task[list[BenchPrompt]] | None = None

    async def take(self) -> BenchPrompt:
        if self._more is not None:
            left = len(self._prompts) - self._next
            if self._making is None and left < max(8, len(self._prompts) // 4):
                self._batch += 1
                self._making = asyncio.ensure_future(asyncio.to_thread(self._more, self._batch))
            if left == 0 and self._making is not None:
                self._prompts.extend(await self._making)
                self._making = None
        prompt = self._prompts[self._next % len(self._prompts)]
        self._next += 1
        return prompt

    def close(self) -> None:
        if self._making is not None:
            self._making.cancel()


def run_load(
    target: Target,
    shape: LoadShape,
    feed: PromptFeed,
    *,
    on_tick: Callable[[Snapshot], None] | None = None,
) -> RunResult:
    """Run the load to its end (or Ctrl-C) and return every request's measurements."""
    return asyncio.run(_Run(target, shape, feed, on_tick).run())


class _Run:
    def __init__(
        self,
        target: Target,
        shape: LoadShape,
        feed: PromptFeed,
        on_tick: Callable[[Snapshot], None] | None,
    ) -> None:
        self.target, self.shape, self.feed, self.on_tick = target, shape, feed, on_tick
        self.results: list[RequestResult] = []
        self.pending: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()
        self.interrupted = False
        self.fatal: VllmctlError | None = None
        self.cancelled = 0
        self.sent = 0
        self.tokens = 0
        self.start = 0.0

    async def run(self) -> RunResult:
        from vllmctl.apis.openai_async import ShardedStreamClient

        loop = asyncio.get_running_loop()
        sigint = _catch_sigint(loop, self._interrupt)
        shape = self.shape
        connections = shape.concurrency or shape.requests
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            async with ShardedStreamClient(
                self.target.base_url, self.target.api_key, max_connections=connections
            ) as client:
                await client.warm(min(connections or WARM_DEFAULT, WARM_MAX))
                self.start = time.perf_counter()
                ticker = asyncio.ensure_future(self._tick()) if self.on_tick else None
                await self._drive(client)
                duration = time.perf_counter() - self.start
                if ticker is not None:
                    ticker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ticker
                    self._report()
        finally:
            self.feed.close()
            sigint()
        return RunResult(self.results, duration, started_at, self.interrupted, self.cancelled, self.sent)

    async def _drive(self, client: object) -> None:
        dispatcher = asyncio.ensure_future(self._dispatch(client))
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({dispatcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
            while self.pending and not self.stop.is_set():
                await asyncio.wait({*self.pending, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if self.interrupted or self.fatal:
                dispatcher.cancel()
                for task in self.pending:
                    task.cancel()
            await asyncio.gather(dispatcher, *self.pending, return_exceptions=True)
        finally:
            stopped.cancel()
        if self.fatal is not None:
            raise self.fatal
        if dispatcher.done() and not dispatcher.cancelled() and (error := dispatcher.exception()):
            raise error

    async def _dispatch(self, client: object) -> None:
        shape = self.shape
        rng = random.Random(shape.seed)
        deadline = self.start + shape.duration if shape.duration is not None else math.inf
        gate = asyncio.Semaphore(shape.concurrency) if shape.concurrency else None
        due = 0.0  # the next arrival, seconds from the start
        while shape.requests is None or self.sent < shape.requests:
            if math.isfinite(shape.rate):
                due += rng.expovariate(shape.rate)
                if self.start + due >= deadline:
                    break
                delay = self.start + due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif time.perf_counter() >= deadline:
                break
            if gate is not None:
                left = deadline - time.perf_counter()
                try:
                    await asyncio.wait_for(gate.acquire(), None if math.isinf(left) else max(left, 0))
                except TimeoutError:
                    break
            prompt = await self.feed.take()
            task = asyncio.ensure_future(self._one(client, prompt, gate))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            self.sent += 1
            await asyncio.sleep(0)  # let the new request start before the next is made

    async def _one(self, client: object, prompt: BenchPrompt, gate: asyncio.Semaphore | None) -> None:
        from vllmctl.apis.openai_api import CompletionRequest
        from vllmctl.apis.openai_async import ShardedStreamClient

        assert isinstance(client, ShardedStreamClient)
        target = self.target
        request = CompletionRequest(
            model=target.model,
            prompt=prompt.text,
            chat=target.chat or prompt.messages is not None,
            messages=prompt.messages,
            max_tokens=prompt.max_tokens,
            stream=True,
            extra={"ignore_eos": True} if target.ignore_eos else None,
        )
        try:
            record = await client.stream(request, self._count_token)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        except VllmctlError as e:  # a mistake every request would repeat (the URL's scheme...)
            self.fatal = self.fatal or e
            self.stop.set()
            return
        finally:
            if gate is not None:
                gate.release()
        self.results.append(measured(record, prompt, self.start))

    def _count_token(self) -> None:
        self.tokens += 1

    def _interrupt(self) -> None:
        self.interrupted = True
        self.stop.set()

    async def _tick(self) -> None:
        while True:
            self._report()
            await asyncio.sleep(TICK_SECONDS)

    def _report(self) -> None:
        if self.on_tick is None:
            return
        failed = sum(1 for r in self.results if not r.ok)
        self.on_tick(
            Snapshot(
                elapsed=time.perf_counter() - self.start,
                sent=self.sent,
                done=len(self.results) - failed,
                failed=failed,
                in_flight=len(self.pending),
                tokens=self.tokens,
                total=self.shape.requests,
            )
        )


def measured(record: object, prompt: BenchPrompt, start: float) -> RequestResult:
    """A StreamRecord as the metrics read it (times from the run's start and the send)."""
    from vllmctl.apis.openai_async import StreamRecord

    assert isinstance(record, StreamRecord)
    chunks = record.chunks
    input_tokens = record.prompt_tokens if record.prompt_tokens is not None else prompt.input_tokens
    if not record.ok:
        return RequestResult(
            start=record.sent - start, ok=False, input_tokens=input_tokens,
            output_tokens=0, error=record.error, detail=record.detail,
        )  # fmt: skip
    counted = "usage" if record.completion_tokens is not None else "chunks"
    output = record.completion_tokens if record.completion_tokens is not None else len(chunks)
    return RequestResult(
        start=record.sent - start,
        ok=True,
        ttft=chunks[0] - record.sent,
        e2el=chunks[-1] - record.sent,
        itl=tuple(b - a for a, b in itertools.pairwise(chunks)),
        input_tokens=input_tokens,
        output_tokens=output,
        output_counted_from=counted,
    )


def _catch_sigint(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> Callable[[], None]:
    """Ctrl-C calls `handler` in the loop (the run then ends cleanly, with what completed);
    returns the function that puts the previous handling back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # not on this platform or loop
        return lambda: None

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGINT)

    return restore
