"""bench's metrics on hand-made requests: percentiles, TPOT, goodput, throughputs, errors
(vllmctl/ops/bench/metrics.py), and the parsing of --slo and --sweep."""

from __future__ import annotations

import math

import pytest

from vllmctl.apis.openai_async import StreamRecord
from vllmctl.core.errors import UsageError
from vllmctl.ops.bench.metrics import RequestResult, calculate, parse_slo, percentile, summarize
from vllmctl.ops.bench.prompts import BenchPrompt
from vllmctl.ops.bench.runner import measured
from vllmctl.ops.bench.sweep import parse_sweep


def ok(ttft: float, e2el: float, tokens: int, itl: tuple[float, ...] = (), inp: int = 10) -> RequestResult:
    return RequestResult(
        start=0.0, ok=True, ttft=ttft, e2el=e2el, itl=itl, input_tokens=inp, output_tokens=tokens
    )


def failed(kind: str, detail: str = "") -> RequestResult:
    return RequestResult(start=0.0, ok=False, error=kind, detail=detail, input_tokens=10)


def test_percentiles_interpolate_between_ranks_as_numpy_does() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)  # rank 2.7: 3 + 0.7 * (4 - 3)
    assert percentile(values, 99) == pytest.approx(3.97)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile([5.0], 99) == 5.0


def test_summaries_are_in_milliseconds_with_the_population_std() -> None:
    summary = summarize([0.1, 0.2, 0.3, 0.4])
    assert summary["mean"] == 250.0
    assert summary["median"] == 250.0
    assert summary["std"] == pytest.approx(math.sqrt(0.0125) * 1000, abs=1e-3)  # ddof=0, as numpy
    assert summary["p90"] == pytest.approx(370.0)
    assert summarize([]) == {"mean": None, "median": None, "std": None, "p90": None, "p99": None}


def test_tpot_excludes_the_first_token_and_needs_two() -> None:
    assert ok(0.2, 1.2, 11).tpot == pytest.approx(0.1)  # (1.2 - 0.2) / (11 - 1)
    assert ok(0.2, 0.2, 1).tpot is None
    assert failed("HTTP 503").tpot is None


def test_throughputs_are_over_the_runs_duration_and_failures_are_counted_not_averaged() -> None:
    results = [
        ok(0.1, 1.1, 11, itl=(0.1,) * 10, inp=20),
        ok(0.3, 2.3, 21, itl=(0.1,) * 20, inp=30),
        failed("HTTP 503", "engine overloaded"),
        failed("HTTP 503", "again"),
        failed("timeout"),
    ]
    m = calculate(results, duration=4.0, slo={})
    assert (m.completed, m.failed) == (2, 3)
    assert m.errors == {"HTTP 503": 2, "timeout": 1}
    assert m.error_details["HTTP 503"] == "engine overloaded"  # the first of the kind
    assert m.request_throughput == 0.5
    assert m.output_throughput == 8.0  # (11 + 21) / 4
    assert m.total_token_throughput == 20.5  # (20 + 30 + 32) / 4: failed prompts are not counted
    assert m.ttft["mean"] == 200.0 and m.ttft["median"] == 200.0
    assert m.tpot["mean"] == pytest.approx(100.0)
    assert m.itl["mean"] == pytest.approx(100.0) and m.itl["p99"] == pytest.approx(100.0)
    assert m.e2el["median"] == pytest.approx(1700.0)
    assert m.goodput is None
    assert m.as_json()["request_goodput"] is None


def test_goodput_counts_requests_meeting_every_slo_per_second() -> None:
    results = [
        ok(0.1, 1.1, 11),  # ttft 100 ms, tpot 100 ms, e2el 1100 ms
        ok(0.5, 1.5, 11),  # ttft 500 ms: misses ttft=300
        ok(0.1, 3.1, 11),  # tpot 300 ms: misses tpot=200
        ok(0.2, 0.2, 1),  # one token: tpot counts as 0, as vllm
        failed("HTTP 500"),  # never good
    ]
    m = calculate(results, duration=2.0, slo={"ttft": 300, "tpot": 200})
    assert m.goodput == 1.0  # 2 good requests / 2 s
    tight = calculate(results, duration=2.0, slo={"e2el": 1100})
    assert tight.goodput == 1.0  # 1100 ms meets a 1100 ms limit (<=), and the 200 ms one
    assert calculate(results, duration=2.0, slo={"ttft": 50}).goodput == 0.0


def test_a_stream_record_becomes_chunk_times_and_token_counts() -> None:
    prompt = BenchPrompt("the of and", input_tokens=3, max_tokens=4)
    record = StreamRecord(sent=10.0, chunks=[10.5, 10.6, 10.8, 11.1], prompt_tokens=5, completion_tokens=4)
    r = measured(record, prompt, start=9.0)
    assert r.start == 1.0 and r.ttft == 0.5 and r.e2el == pytest.approx(1.1)
    assert r.itl == pytest.approx((0.1, 0.2, 0.3))
    assert (r.input_tokens, r.output_tokens, r.output_counted_from) == (5, 4, "usage")
    no_usage = measured(StreamRecord(sent=10.0, chunks=[10.5, 10.6]), prompt, start=9.0)
    assert (no_usage.input_tokens, no_usage.output_tokens, no_usage.output_counted_from) == (3, 2, "chunks")
    broken = measured(StreamRecord(sent=10.0, chunks=[10.5], error="stream dropped"), prompt, start=9.0)
    assert not broken.ok and broken.ttft is None and broken.output_tokens == 0


def test_slo_and_sweep_parsing_name_the_flag() -> None:
    assert parse_slo("ttft=500, TPOT=50,e2el=3000") == {"ttft": 500.0, "tpot": 50.0, "e2el": 3000.0}
    assert parse_slo(None) == {}
    for bad in ("ttft", "itl=5", "ttft=-1", "ttft=abc", "ttft=nan"):
        with pytest.raises(UsageError, match="--slo"):
            parse_slo(bad)
    assert parse_sweep("concurrency=1,2,4") == ("concurrency", [1, 2, 4])
    assert parse_sweep("rate=0.5,inf") == ("rate", [0.5, math.inf])
    for bad in ("concurrency=0", "concurrency=1.5", "rate=-1", "speed=1", "rate=", "concurrency"):
        with pytest.raises(UsageError, match="--sweep"):
            parse_sweep(bad)


def test_the_sharded_client_opens_every_connection_asked_for_over_small_pools() -> None:
    """bench's client splits its connections over pools of at most PER_SHARD (httpcore scans a
    whole pool per request); warming opens exactly the connections asked for, over them all."""
    import asyncio

    from aiohttp import web

    from vllmctl.apis.openai_async import ShardedStreamClient

    async def scenario() -> tuple[int, list[int | None]]:
        peers: set[int] = set()

        async def models(request: web.Request) -> web.Response:
            peers.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
            return web.json_response({"data": []})

        app = web.Application()
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with ShardedStreamClient(f"http://127.0.0.1:{port}", max_connections=20) as client:
                await client.warm(20)
                limits = [s._http._transport._pool._max_connections for s in client._shards]  # type: ignore[attr-defined]
        finally:
            await runner.cleanup()
        return len(peers), limits

    connections, limits = asyncio.run(scenario())
    assert connections == 20
    assert limits == [7, 7, 6] and max(limits) <= ShardedStreamClient.PER_SHARD
