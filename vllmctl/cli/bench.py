"""bench: load against a served model, with `vllm bench serve`'s metrics (docs/bench.md)."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vllmctl.cli.endpoint import Endpoint, base_url_option, open_endpoint
from vllmctl.cli.options import command, complete_model_names
from vllmctl.ui import App

if TYPE_CHECKING:
    from vllmctl.ops.bench.runner import LoadShape

DEFAULT_REQUESTS = 100
DEFAULT_INPUT_LEN = "256"
DEFAULT_OUTPUT_LEN = "128"


def _rate(text: str) -> float:
    from vllmctl.core.errors import UsageError

    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if math.isnan(rate) or rate <= 0:
        raise UsageError(f"--request-rate {text!r}: give requests per second above 0, or inf.")
    return rate


@command("bench")
@click.argument("model", required=False, shell_complete=complete_model_names)
@base_url_option
@click.option(
    "--requests",
    "requests",
    type=click.IntRange(min=1),
    help=f"requests to send [default: {DEFAULT_REQUESTS}; none with --duration]",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="at most this many in flight [default: 1 without --request-rate; else no limit]",
)
@click.option(
    "--request-rate",
    "rate_text",
    metavar="R",
    help="requests/s, Poisson arrivals (inf: all at once, as the concurrency allows) [default: inf]",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="send for this long, then wait for those in flight",
)
@click.option(
    "--input-len", default=DEFAULT_INPUT_LEN, show_default=True, metavar="N|LOW-HIGH", help="prompt tokens"
)
@click.option(
    "--output-len",
    default=DEFAULT_OUTPUT_LEN,
    show_default=True,
    metavar="N|LOW-HIGH",
    help="max_tokens asked for",
)
@click.option(
    "--dataset",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="JSONL of prompts instead of synthetic ones",
)
@click.option(
    "--tokenizer",
    metavar="REPO|PATH",
    help="count prompt tokens with this tokenizer.json (a Hub repo, a file or a directory) "
    "[default: the models.yaml model's repo]",
)
@click.option(
    "--ignore-eos", is_flag=True, help="send vLLM's ignore_eos: every answer is --output-len tokens long"
)
@click.option(
    "--chat", is_flag=True, help="/v1/chat/completions (chat template applied) instead of /v1/completions"
)
@click.option("--seed", type=int, default=0, show_default=True, help="for the prompts and the arrival times")
@click.option(
    "--slo", metavar="ttft=MS,tpot=MS,e2el=MS", help="goodput: requests/s meeting every limit given"
)
@click.option(
    "--sweep", metavar="concurrency=1,2,4|rate=1,2,4", help="one run per value, and a table of them"
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="latency against throughput, .png or .svg (needs vllmctl[plot])",
)
@click.option(
    "--save",
    "save_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="write the run as JSON (settings, versions, metrics)",
)
@click.option("--detail", is_flag=True, help="--save and -o json: add every request's measurements")
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="A.json B.json",
    help="compare two saved runs instead of running",
)
def bench(
    app: App,
    model: str | None,
    base_url: str | None,
    requests: int | None,
    concurrency: int | None,
    rate_text: str | None,
    duration: float | None,
    input_len: str,
    output_len: str,
    dataset: Path | None,
    tokenizer: str | None,
    ignore_eos: bool,
    chat: bool,
    seed: int,
    slo: str | None,
    sweep: str | None,
    plot_path: Path | None,
    save_path: Path | None,
    detail: bool,
    compare: tuple[Path, Path] | None,
) -> None:
    """Benchmark a served model: TTFT, TPOT, ITL, latency and throughput under load.

    \b
    Every number is measured by this client, with `vllm bench serve`'s definitions:
      TTFT   request sent -> first streamed chunk of text
      TPOT   (E2EL - TTFT) / (output tokens - 1), per request of 2+ tokens
      ITL    the gaps between successive chunks of text (a chunk is a token with vLLM)
      E2EL   request sent -> last chunk of text
    each as mean, median, std, p90, p99 over the successful requests. Throughputs are
    per second of the run (first request sent -> last answer ended): requests, output
    tokens, input + output tokens; goodput counts the requests meeting every --slo.
    Token counts are the server's usage (stream_options.include_usage), else the chunks
    counted (output) or the prompt's own count (input). Failed requests are counted by
    kind (HTTP status, timeout, dropped stream) and enter no average. Exit 1 when every
    request failed; Ctrl-C shows what completed and exits 130. docs/bench.md has the
    details and where they differ from vllm bench serve.
    """
    from vllmctl.core.errors import UsageError

    if compare is not None:
        _compare(app, compare)
        return
    if model is None:
        raise UsageError("name the model: vllmctl bench MODEL (its served name; list-api-models shows them).")
    shape, sweep_spec = _shape(requests, concurrency, rate_text, duration, seed, sweep)
    if plot_path is not None:
        from vllmctl.ops.bench.plot import check_plot_target

        check_plot_target(plot_path)  # before any load: no run wasted on a missing extra
    if save_path is not None:
        _check_save_target(save_path)  # likewise: a finished run is never lost to a bad path
    _run(app, model, base_url, shape, sweep_spec, input_len, output_len, dataset, tokenizer, ignore_eos,
         chat, seed, slo, plot_path, save_path, detail)  # fmt: skip


def _shape(
    requests: int | None,
    concurrency: int | None,
    rate_text: str | None,
    duration: float | None,
    seed: int,
    sweep: str | None,
) -> tuple[LoadShape, tuple[str, list[float]] | None]:
    from vllmctl.core.errors import UsageError
    from vllmctl.ops.bench.runner import LoadShape
    from vllmctl.ops.bench.sweep import parse_sweep

    rate = _rate(rate_text) if rate_text is not None else math.inf
    sweep_spec = parse_sweep(sweep) if sweep else None
    swept = sweep_spec[0] if sweep_spec else None
    if swept == "concurrency" and concurrency is not None:
        raise UsageError("give --concurrency or --sweep concurrency=..., not both.")
    if swept == "rate" and rate_text is not None:
        raise UsageError("give --request-rate or --sweep rate=..., not both.")
    if concurrency is None and rate_text is None and swept is None:
        concurrency = 1
    if requests is None and duration is None:
        requests = DEFAULT_REQUESTS
    bounded = concurrency is not None or math.isfinite(rate) or swept is not None
    if requests is None and not bounded:
        raise UsageError(
            "--duration without --requests needs --concurrency or a finite --request-rate "
            "(else requests would be sent without limit)."
        )
    return LoadShape(requests, concurrency, rate, duration, seed), sweep_spec


def _run(
    app: App,
    model: str,
    base_url: str | None,
    shape: LoadShape,
    sweep_spec: tuple[str, list[float]] | None,
    input_len: str,
    output_len: str,
    dataset: Path | None,
    tokenizer: str | None,
    ignore_eos: bool,
    chat: bool,
    seed: int,
    slo_text: str | None,
    plot_path: Path | None,
    save_path: Path | None,
    detail: bool,
) -> None:
    from vllmctl.ops.bench.benchmark import make_prompts
    from vllmctl.ops.bench.metrics import parse_slo
    from vllmctl.ops.bench.prompts import PromptSpec, parse_length
    from vllmctl.ops.bench.runner import Target
    from vllmctl.ops.bench.sweep import shape_at

    slo = parse_slo(slo_text)
    entry = _entry(app, model)
    spec = PromptSpec(
        parse_length(input_len, "--input-len"),
        parse_length(output_len, "--output-len"),
        dataset=dataset,
        tokenizer_repo=str(entry["modelURL"]) if entry and entry.get("modelURL") else None,
        tokenizer=tokenizer,
        seed=seed,
    )
    settings = app.settings
    prompts = make_prompts(
        spec, shape, hf_endpoint=settings.hf_endpoint, token=_hub_token(app, entry, base_url)
    )
    if prompts.first.chat and not chat:
        # A dataset of conversations has no one prompt to send to /v1/completions.
        app.info(f"{dataset} holds conversations (messages): sending them to /v1/chat/completions.")
        chat = True
    points: list[dict[str, Any]] = []
    interrupted = False
    with open_endpoint(app, base_url) as endpoint:
        sent_model = _checked_model(app, endpoint, model)
        key_source = endpoint.key_source
        release = _release(app, endpoint, model)
        target = Target(endpoint.base_url, endpoint.api_key, sent_model, chat=chat, ignore_eos=ignore_eos)
        where = _endpoint_data(endpoint, chat)
        values = sweep_spec[1] if sweep_spec else [math.nan]
        for value in values:
            point_shape = shape_at(shape, sweep_spec[0], value) if sweep_spec else shape
            label = f"{sweep_spec[0]}={value:g}" if sweep_spec else "bench"
            data, result = _one(app, label, target, point_shape, prompts, spec, slo, where, release, detail)
            points.append(data)
            if sweep_spec and app.output == "table":
                app.info(f"{label}: {data['metrics']['completed']} ok, {data['metrics']['failed']} failed")
            if result.interrupted:
                interrupted = True
                break
    if sweep_spec:
        out: dict[str, Any] = {
            "format": points[0]["format"],
            # JSON has no infinity: a rate of inf is null, as in each point's settings.
            "sweep": {
                "parameter": sweep_spec[0],
                "values": [v if math.isfinite(v) else None for v in values],
            },
            "model": points[0]["model"],
            "points": points,
            "interrupted": interrupted,
        }
    else:
        out = points[0]
    _show(app, out, sweep_spec[0] if sweep_spec else None)
    if save_path is not None:
        _save(save_path, out)
    if plot_path is not None:
        from vllmctl.ops.bench.plot import plot

        plot(plot_path, sweep_spec[0] if sweep_spec else None, points)
        app.info(f"plot written to {plot_path}")
    if save_path is not None:
        app.info(f"run saved to {save_path}")
    _finish(app, points, interrupted, key_source)


def _one(
    app: App,
    label: str,
    target: Any,
    shape: Any,
    prompts: Any,
    spec: Any,
    slo: dict[str, float],
    where: dict[str, Any],
    release: dict[str, Any] | None,
    detail: bool,
) -> tuple[dict[str, Any], Any]:
    """One point, with the live progress line on a terminal."""
    from functools import partial

    from vllmctl.ops.bench.benchmark import run_point

    point = partial(
        run_point, target=target, shape=shape, prompts=prompts, spec=spec, slo=slo,
        endpoint=where, release=release, detail=detail,
    )  # fmt: skip
    if not sys.stderr.isatty():
        return point()
    from vllmctl.ops.bench.progress import LiveProgress

    with LiveProgress(label) as live:
        return point(on_tick=live.update)


def _endpoint_data(endpoint: Endpoint, chat: bool) -> dict[str, Any]:
    from vllmctl.apis.openai_api import CHAT_PATH, COMPLETIONS_PATH, normalize_base_url

    via = "port-forward" if endpoint.tunnel is not None else "base-url"
    # A port-forward's local URL means nothing later: the saved run names the router.
    url = normalize_base_url(endpoint.base_url) if via == "base-url" else None
    return {
        "via": via,
        "base_url": url,
        "label": endpoint.label,
        "path": CHAT_PATH if chat else COMPLETIONS_PATH,
    }


def _release(app: App, endpoint: Endpoint, model: str) -> dict[str, Any] | None:
    if endpoint.kube is None:
        return None
    from vllmctl.ops.bench.release import release_versions

    return release_versions(app.settings, endpoint.kube, model)


def _checked_model(app: App, endpoint: Endpoint, model: str) -> str:
    """The id to send, checked against GET /v1/models first (as chat does): a name the server
    does not list is refused before any load, naming what it serves. A server whose list
    cannot be read, or that lists nothing, is sent to as asked (the load says what happens)."""
    from vllmctl.apis.openai_api import Client
    from vllmctl.core.errors import VllmctlError
    from vllmctl.ops.adapters import served_model

    wanted = _model_id(app, model)
    try:
        with Client(endpoint.base_url, endpoint.api_key, label=endpoint.label) as client:
            cards = client.models()
    except VllmctlError:
        return wanted
    if not any(c.get("id") is not None for c in cards):
        return wanted
    return served_model(app.settings, model, cards, endpoint.label)


def _check_save_target(path: Path) -> None:
    import os

    from vllmctl.core.errors import UsageError

    parent = path.parent if str(path.parent) else Path()
    if not parent.is_dir():
        raise UsageError(f"--save {path}: the directory {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--save {path}: it cannot be written here (permission denied); save elsewhere.")


def _model_id(app: App, model: str) -> str:
    """MODEL:ADAPTER becomes the adapter's id when MODEL is in models.yaml; else as given."""
    if ":" not in model or not app.settings.models_path.exists():
        return model
    from vllmctl.ops.adapters import model_id

    return model_id(app.settings, model, None)


def _hub_token(app: App, entry: Mapping[str, Any] | None, base_url: str | None) -> str | None:
    """The HF token for the tokenizer: VLLM_HF_TOKEN; else, for a model models.yaml marks
    `gated: true` and reached through the cluster, the stored one (reading it needs the
    secret store, which is worth it only when the Hub would refuse the anonymous download)."""
    if app.settings.hf_token:
        return str(app.settings.hf_token)
    if base_url is not None or entry is None or entry.get("gated") is not True:
        return None
    from vllmctl.cli.secrets import hub_token

    return hub_token(app)


def _entry(app: App, model: str) -> Mapping[str, Any] | None:
    """MODEL's models.yaml entry (MODEL or MODEL:ADAPTER), when it is named there."""
    from vllmctl.core.errors import VllmctlError

    try:
        if not app.settings.models_path.exists():
            return None
        from vllmctl.catalog.selected import load_selected

        for entry in load_selected(app.settings).models:
            if entry.name == model.partition(":")[0]:
                return entry.data
    except VllmctlError:
        return None
    return None


def _save(path: Path, data: dict[str, Any]) -> None:
    import json

    from vllmctl.core.errors import UsageError

    try:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--save {path}: cannot write it ({e.strerror or e}).") from None


def _show(app: App, out: dict[str, Any], parameter: str | None) -> None:
    from vllmctl.ops.bench.report import (
        STATS,
        latency_rows,
        summary_rows,
        sweep_headers,
        sweep_rows,
    )

    def table() -> None:
        if parameter is not None:
            app.table((parameter, *sweep_headers(out["points"])), sweep_rows(parameter, out["points"]))
            return
        app.table(("metric", "value"), summary_rows(out))
        print()
        app.table(("latency", *STATS), latency_rows(out["metrics"]))

    app.emit(out, table)


def _finish(app: App, points: list[dict[str, Any]], interrupted: bool, key_source: str) -> None:
    """Errors said once per kind (with the server's words), a 401 with the key sent; the exit code."""
    from vllmctl.core.errors import EXIT_NEGATIVE, Interrupted, VllmctlError

    completed = sum(p["metrics"]["completed"] for p in points)
    failed = sum(p["metrics"]["failed"] for p in points)
    if failed and not interrupted:
        kinds: dict[str, int] = {}
        for p in points:
            for kind, n in p["metrics"]["errors"].items():
                kinds[kind] = kinds.get(kind, 0) + n
        counts = ", ".join(f"{kind}: {n}" for kind, n in kinds.items())
        first = _first_detail(points)
        if "HTTP 401" in kinds:
            first += f" (the API key sent: {key_source})"
        if completed == 0:
            error = VllmctlError(f"every request failed ({counts}); the first: {first}")
            error.exit_code = EXIT_NEGATIVE
            raise error
        app.warn(f"{failed} of {completed + failed} requests failed ({counts}); the first: {first}")
    if interrupted:
        done = "1 request" if completed == 1 else f"{completed} requests"
        raise Interrupted(f"Interrupted: the metrics above are of the {done} that completed.")


def _first_detail(points: list[dict[str, Any]]) -> str:
    for p in points:
        for kind, detail in p["metrics"]["error_details"].items():
            return f"{kind}: {detail}" if detail else kind
    return "-"


def _compare(app: App, paths: tuple[Path, Path]) -> None:
    from vllmctl.ops.bench.report import compare, compare_rows, differences, load_saved

    a, b = (load_saved(p) for p in paths)
    rows = compare(a, b)
    differ = differences(a, b)

    def table() -> None:
        app.info(f"A: {paths[0]} ({a['model']}, {a['started_at']})")
        app.info(f"B: {paths[1]} ({b['model']}, {b['started_at']})")
        if differ:
            app.warn("the runs differ in more than the server: " + "; ".join(differ))
        app.table(("metric", "A", "B", "change"), compare_rows(rows))

    app.emit({"a": str(paths[0]), "b": str(paths[1]), "differences": differ, "metrics": rows}, table)


COMMANDS = {"bench": bench}
