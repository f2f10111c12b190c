"""A run's metrics, as `vllm bench serve` defines them (vllm/benchmarks/serve.py,
calculate_metrics; docs/bench.md says where these differ and why).

Per successful request: TTFT (sent -> first chunk of text), E2EL (sent -> last chunk of
text), ITL (the gaps between successive chunks of text), TPOT ((E2EL - TTFT) / (output
tokens - 1), for more than one output token). Each is summarised by its mean, median,
standard deviation (population) and percentiles (linear interpolation between the closest
ranks, numpy's default, which vllm uses). Throughputs are over the run's duration: from
just before the first request was sent to the end of the last one. Failed requests are
counted by kind and enter no average.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vllmctl.core.errors import UsageError

PERCENTILES = (90, 99)
SLO_KEYS = ("ttft", "tpot", "e2el")


@dataclass(frozen=True)
class RequestResult:
    """One request, measured; times in seconds."""

    start: float  # when it was sent, from the run's start
    ok: bool
    ttft: float | None = None
    e2el: float | None = None
    itl: tuple[float, ...] = ()
    input_tokens: int = 0  # the server's usage.prompt_tokens, else the prompt's own count
    output_tokens: int = 0  # the server's usage.completion_tokens, else the chunks of text
    output_counted_from: str = "usage"  # "usage" or "chunks"
    error: str | None = None  # the kind (vllmctl/apis/openai_async.py ErrorKind)
    detail: str | None = None

    @property
    def tpot(self) -> float | None:
        """(E2EL - TTFT) / (output tokens - 1); None for one output token or fewer."""
        if not self.ok or self.ttft is None or self.e2el is None or self.output_tokens <= 1:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "start_s": _r(self.start),
            "ok": self.ok,
            "error": self.error,
            "detail": self.detail,
            "ttft_ms": _ms(self.ttft),
            "tpot_ms": _ms(self.tpot),
            "e2el_ms": _ms(self.e2el),
            "itl_ms": [_ms(gap) for gap in self.itl],
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "output_counted_from": self.output_counted_from,
        }


def parse_slo(text: str | None) -> dict[str, float]:
    """`ttft=500,tpot=50,e2el=3000` (milliseconds) -> {"ttft": 500.0, ...}."""
    if not text:
        return {}
    slo: dict[str, float] = {}
    for part in text.split(","):
        key, eq, value = part.strip().partition("=")
        key = key.strip().lower()
        if not eq or key not in SLO_KEYS:
            raise UsageError(
                f"--slo {text!r}: give KEY=MILLISECONDS pairs with KEY one of {', '.join(SLO_KEYS)} "
                "(--slo ttft=500,tpot=50)."
            )
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not math.isfinite(number) or number <= 0:
            raise UsageError(f"--slo {text!r}: {key}={value!r} is not a positive number of milliseconds.")
        slo[key] = number
    return slo


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile of non-empty sorted `values`, interpolating linearly between the
    two closest ranks (numpy.percentile's default method)."""
    position = (len(values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def summarize(values: Iterable[float]) -> dict[str, float | None]:
    """mean, median, std (population) and the PERCENTILES, in milliseconds (None when empty)."""
    data = sorted(values)
    names = ["mean", "median", "std", *(f"p{q}" for q in PERCENTILES)]
    if not data:
        return dict.fromkeys(names)
    mean = math.fsum(data) / len(data)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / len(data))
    summary = {"mean": mean, "median": percentile(data, 50), "std": std}
    summary.update({f"p{q}": percentile(data, q) for q in PERCENTILES})
    return {name: _ms(value) for name, value in summary.items()}


@dataclass
class Metrics:
    completed: int
    failed: int
    errors: dict[str, int]
    duration: float
    input_tokens: int
    output_tokens: int
    ttft: dict[str, float | None]
    tpot: dict[str, float | None]
    itl: dict[str, float | None]
    e2el: dict[str, float | None]
    goodput: float | None  # requests/s meeting every SLO; None without --slo
    slo: dict[str, float] = field(default_factory=dict)
    output_counted_from_chunks: int = 0  # requests whose output count is the chunks' (no usage sent)
    error_details: dict[str, str] = field(default_factory=dict)  # each kind's first detail

    @property
    def request_throughput(self) -> float | None:
        return self.completed / self.duration if self.duration > 0 else None

    @property
    def output_throughput(self) -> float | None:
        return self.output_tokens / self.duration if self.duration > 0 else None

    @property
    def total_token_throughput(self) -> float | None:
        total = self.input_tokens + self.output_tokens
        return total / self.duration if self.duration > 0 else None

    def as_json(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "failed": self.failed,
            "errors": dict(self.errors),
            "error_details": dict(self.error_details),
            "duration_s": _r(self.duration),
            "total_input_tokens": self.input_tokens,
            "total_output_tokens": self.output_tokens,
            "output_counted_from_chunks": self.output_counted_from_chunks,
            "request_throughput": _r(self.request_throughput),
            "output_throughput": _r(self.output_throughput),
            "total_token_throughput": _r(self.total_token_throughput),
            "request_goodput": _r(self.goodput),
            "slo_ms": dict(self.slo),
            "ttft_ms": self.ttft,
            "tpot_ms": self.tpot,
            "itl_ms": self.itl,
            "e2el_ms": self.e2el,
        }


def calculate(results: Sequence[RequestResult], duration: float, slo: dict[str, float]) -> Metrics:
    """The metrics of a run of `duration` seconds (see the module docstring)."""
    done = [r for r in results if r.ok]
    errors = Counter(r.error or "unknown" for r in results if not r.ok)
    details: dict[str, str] = {}
    for r in results:
        if not r.ok:
            details.setdefault(r.error or "unknown", r.detail or "")
    goodput = None
    if slo:
        good = sum(1 for r in done if _meets(r, slo))
        goodput = good / duration if duration > 0 else None
    return Metrics(
        completed=len(done),
        failed=len(results) - len(done),
        errors=dict(errors.most_common()),
        duration=duration,
        input_tokens=sum(r.input_tokens for r in done),
        output_tokens=sum(r.output_tokens for r in done),
        ttft=summarize(r.ttft for r in done if r.ttft is not None),
        tpot=summarize(t for r in done if (t := r.tpot) is not None),
        itl=summarize(gap for r in done for gap in r.itl),
        e2el=summarize(r.e2el for r in done if r.e2el is not None),
        goodput=goodput,
        slo=dict(slo),
        output_counted_from_chunks=sum(1 for r in done if r.output_counted_from == "chunks"),
        error_details=details,
    )


def _meets(result: RequestResult, slo: dict[str, float]) -> bool:
    # As vllm: a request of one output token has a TPOT of 0 for the goodput check.
    measured = {"ttft": result.ttft, "tpot": result.tpot or 0.0, "e2el": result.e2el}
    return all((measured[key] or 0.0) * 1000 <= limit for key, limit in slo.items())


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
