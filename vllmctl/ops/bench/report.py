"""A benchmark run as data (what -o json prints and --save writes), as text tables, and
two saved runs compared (--compare)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from vllmctl.core.errors import UsageError
from vllmctl.ops.bench.metrics import PERCENTILES, Metrics

FORMAT = "vllmctl-bench/1"  # the saved file's `format`: --compare refuses anything else
LATENCIES = (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2el_ms", "E2EL"))
STATS = ("mean", "median", "std", *(f"p{q}" for q in PERCENTILES))
# The metrics --compare shows, in order: (key path, label, unit).
COMPARED: tuple[tuple[str, str, str], ...] = (
    ("completed", "successful requests", ""),
    ("failed", "failed requests", ""),
    ("duration_s", "duration", "s"),
    ("request_throughput", "request throughput", "req/s"),
    ("request_goodput", "request goodput", "req/s"),
    ("output_throughput", "output token throughput", "tok/s"),
    ("total_token_throughput", "total token throughput", "tok/s"),
    *(
        (f"{key}.{stat}", f"{label} {stat}", "ms")
        for key, label in LATENCIES
        for stat in ("mean", "median", "p90", "p99")
    ),
)


def run_data(
    *,
    model: str,
    endpoint: dict[str, Any],
    release: dict[str, Any] | None,
    settings: dict[str, Any],
    prompts: dict[str, Any],
    metrics: Metrics,
    started_at: str,
    interrupted: bool,
    cancelled: int,
    requests: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    from vllmctl import __version__

    data: dict[str, Any] = {
        "format": FORMAT,
        "vllmctl": __version__,
        "started_at": started_at,
        "model": model,
        "endpoint": endpoint,  # the URL and path only: never the API key
        "release": release,
        "settings": settings,
        "prompts": prompts,
        "interrupted": interrupted,
        "cancelled_in_flight": cancelled,
        "metrics": metrics.as_json(),
    }
    if requests is not None:
        data["requests"] = requests
    return data


def summary_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows of one run: counts, throughputs, errors."""
    m = data["metrics"]
    s = data["settings"]
    errors = ", ".join(f"{kind}: {n}" for kind, n in m["errors"].items())
    rows = [
        ("model", data["model"]),
        ("endpoint", f"{data['endpoint']['path']} at {data['endpoint']['label']}"),
        ("prompts", data["prompts"]["source"]),
        ("load", load_text(s)),
        ("successful requests", str(m["completed"])),
        ("failed requests", f"{m['failed']} ({errors})" if errors else str(m["failed"])),
        ("duration", f"{_num(m['duration_s'])} s"),
        ("input tokens", str(m["total_input_tokens"])),
        ("output tokens", str(m["total_output_tokens"]) + _counted(m)),
        ("request throughput", f"{_num(m['request_throughput'])} req/s"),
        ("output token throughput", f"{_num(m['output_throughput'])} tok/s"),
        ("total token throughput", f"{_num(m['total_token_throughput'])} tok/s"),
    ]
    if m["request_goodput"] is not None:
        slo = ", ".join(f"{k} <= {v:g} ms" for k, v in m["slo_ms"].items())
        rows.append(("request goodput", f"{_num(m['request_goodput'])} req/s ({slo})"))
    if data.get("interrupted"):
        rows.append(("interrupted", f"yes ({data['cancelled_in_flight']} in flight cancelled, not counted)"))
    return rows


def latency_rows(metrics: dict[str, Any]) -> list[list[str]]:
    return [[f"{label} (ms)", *(_num(metrics[key][stat]) for stat in STATS)] for key, label in LATENCIES]


def load_text(settings: dict[str, Any]) -> str:
    requests = settings["requests"]
    parts = [f"{requests} requests" if requests is not None else "requests until the duration ends"]
    concurrency = settings["concurrency"]
    parts.append(f"{concurrency} at a time" if concurrency else "no concurrency limit")
    rate = settings["request_rate"]
    parts.append("rate inf" if rate is None else f"Poisson arrivals at {rate:g}/s (seed {settings['seed']})")
    if settings["duration_s"] is not None:
        parts.append(f"for {settings['duration_s']:g} s")
    return ", ".join(parts)


def sweep_rows(parameter: str, points: list[dict[str, Any]]) -> list[list[str]]:
    goodput = _has_goodput(points)
    rows = []
    for point in points:
        m = point["metrics"]
        rows.append(
            [
                _point_value(point["settings"][_setting(parameter)]),
                str(m["completed"]),
                str(m["failed"]),
                _num(m["request_throughput"]),
                _num(m["output_throughput"]),
                _num(m["ttft_ms"]["median"]),
                _num(m["tpot_ms"]["median"]),
                _num(m["itl_ms"]["median"]),
                _num(m["e2el_ms"]["median"]),
                _num(m["e2el_ms"]["p99"]),
                *([_num(m["request_goodput"])] if goodput else []),
            ]
        )
    return rows


def sweep_headers(points: list[dict[str, Any]]) -> tuple[str, ...]:
    """The sweep table's columns; goodput when --slo was given (which point meets it is
    what a sweep with an SLO is for)."""
    return (*SWEEP_HEADERS, "goodput req/s") if _has_goodput(points) else SWEEP_HEADERS


def _has_goodput(points: list[dict[str, Any]]) -> bool:
    return any(p["metrics"].get("request_goodput") is not None for p in points)


SWEEP_HEADERS = (
    "ok", "failed", "req/s", "output tok/s", "ttft median ms", "tpot median ms",
    "itl median ms", "e2el median ms", "e2el p99 ms",
)  # fmt: skip


def _point_value(value: float | None) -> str:
    return "inf" if value is None else f"{value:g}"  # a rate of inf is saved as null


def _setting(parameter: str) -> str:
    return "request_rate" if parameter == "rate" else parameter


# --- --compare --------------------------------------------------------------------------


def load_saved(path: Path) -> dict[str, Any]:
    """A run --save wrote, or a UsageError naming the file and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--compare {path}: cannot read it ({e.strerror or e}).") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        line = getattr(e, "lineno", "?")
        col = getattr(e, "colno", "?")
        raise UsageError(
            f"--compare {path}:{line}:{col}: not JSON; give a file `vllmctl bench --save` wrote."
        ) from None
    if isinstance(data, dict) and data.get("format") == FORMAT and "sweep" in data:
        raise UsageError(f"--compare {path}: it is a sweep; compare single runs (--save without --sweep).")
    if not (
        isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("metrics"), dict)
    ):
        raise UsageError(
            f"--compare {path}: not a saved benchmark run (no format {FORMAT!r} with metrics); "
            "give a file `vllmctl bench --save` wrote."
        )
    return data


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Each compared metric in A and B, and B's change from A in percent (None: not defined)."""
    rows = []
    for key, label, unit in COMPARED:
        va, vb = _path(a["metrics"], key), _path(b["metrics"], key)
        change = None
        if isinstance(va, int | float) and isinstance(vb, int | float) and va != 0:
            change = round((vb - va) / abs(va) * 100, 2)
        rows.append({"metric": key, "label": label, "unit": unit, "a": va, "b": vb, "change_pct": change})
    return rows


def _path(data: dict[str, Any], key: str) -> Any:
    value: Any = data
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two runs besides their metrics (the load, the prompts, the
    model, the chart and images): a change in a metric may come from these, not the server."""
    found = []
    for part in ("settings", "prompts", "release"):
        sa, sb = a.get(part) or {}, b.get(part) or {}
        for key in sorted(set(sa) | set(sb)):
            if key != "sent" and sa.get(key) != sb.get(key):
                found.append(f"{part}.{key}: {sa.get(key)!r} vs {sb.get(key)!r}")
    if a.get("model") != b.get("model"):
        found.insert(0, f"model: {a.get('model')!r} vs {b.get('model')!r}")
    return found


def compare_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    def change(pct: float | None) -> str:
        return "-" if pct is None else f"{pct:+.1f}%"

    return [
        [
            f"{r['label']}" + (f" ({r['unit']})" if r["unit"] else ""),
            _num(r["a"]),
            _num(r["b"]),
            change(r["change_pct"]),
        ]
        for r in rows
    ]


def _counted(metrics: dict[str, Any]) -> str:
    n = metrics.get("output_counted_from_chunks") or 0
    return f" ({n} requests without usage: counted as chunks)" if n else ""


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.2f}"
    return str(value)
