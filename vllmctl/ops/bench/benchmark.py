"""One benchmark point end to end: the prompts (prompts.build_prompts), the load
(runner.run_load), the metrics (metrics.calculate), as the data -o json prints."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from vllmctl.ops.bench.metrics import calculate
from vllmctl.ops.bench.prompts import BenchPrompt, PromptSet, PromptSpec, build_prompts
from vllmctl.ops.bench.report import run_data
from vllmctl.ops.bench.runner import LoadShape, PromptFeed, RunResult, Snapshot, Target, run_load

DURATION_BATCH = 256  # prompts made at a time for a --duration run without --requests


@dataclasses.dataclass(frozen=True)
class Prompts:
    """The prompts of a run, made once and shared by a sweep's points."""

    first: PromptSet
    more: Callable[[int], list[BenchPrompt]] | None


def make_prompts(
    spec: PromptSpec, shape: LoadShape, *, hf_endpoint: str | None, token: str | None
) -> Prompts:
    if shape.requests is not None:
        return Prompts(build_prompts(spec, shape.requests, hf_endpoint=hf_endpoint, token=token), None)

    def more(batch: int) -> list[BenchPrompt]:
        # Another seed per batch: new prompts, not the first ones again (prefix caching).
        later = dataclasses.replace(spec, seed=spec.seed + batch)
        return build_prompts(later, DURATION_BATCH, hf_endpoint=hf_endpoint, token=token).prompts

    return Prompts(build_prompts(spec, DURATION_BATCH, hf_endpoint=hf_endpoint, token=token), more)


def run_point(
    *,
    target: Target,
    shape: LoadShape,
    prompts: Prompts,
    spec: PromptSpec,
    slo: dict[str, float],
    endpoint: dict[str, Any],
    release: dict[str, Any] | None,
    detail: bool,
    on_tick: Callable[[Snapshot], None] | None = None,
) -> tuple[dict[str, Any], RunResult]:
    """Run one load shape and return (the run as data, the raw result)."""
    feed = PromptFeed(prompts.first.prompts, prompts.more)
    result = run_load(target, shape, feed, on_tick=on_tick)
    metrics = calculate(result.results, result.duration, slo)
    settings = {
        "requests": shape.requests,
        "concurrency": shape.concurrency,
        "request_rate": shape.rate if math.isfinite(shape.rate) else None,
        "duration_s": shape.duration,
        "seed": shape.seed,
        "input_len": str(spec.input_len),
        "output_len": str(spec.output_len),
        "dataset": str(spec.dataset) if spec.dataset else None,
        "chat": target.chat,
        "ignore_eos": target.ignore_eos,
        "sent": result.sent,
    }
    data = run_data(
        model=target.model,
        endpoint=endpoint,
        release=release,
        settings=settings,
        prompts={"source": prompts.first.source, "tokenizer": prompts.first.tokenizer},
        metrics=metrics,
        started_at=result.started_at,
        interrupted=result.interrupted,
        cancelled=result.cancelled,
        requests=[r.as_json() for r in result.results] if detail else None,
    )
    return data, result
