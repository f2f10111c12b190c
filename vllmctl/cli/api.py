"""Commands that talk to the router's OpenAI-compatible API: port-forward, list-api-models,
test-completions.

The router is reached through a port-forward made by vllmctl itself (vllmctl/cluster/tunnel.py,
over the Kubernetes API), or at `--base-url`. The API key is VLLM_API_KEY when set, else
the namespace's Secret vllm-api-key: what the router's engines enforce.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from vllmctl.cli.endpoint import Endpoint, base_url_option, explained, open_endpoint
from vllmctl.cli.options import command, complete_model_names
from vllmctl.ui import App

if TYPE_CHECKING:
    from vllmctl.apis.openai_api import Completion, LoadResult
    from vllmctl.ops.session import Session

DEFAULT_PROMPT = "Say hello in one sentence."


@command("port-forward")
@click.argument("port", type=click.IntRange(0, 65535), default=8000, required=False)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="local address to listen on (0.0.0.0: every interface)",
)
def port_forward(app: App, port: int, address: str) -> None:
    """Forward a local port to the router through the Kubernetes API (default 8000).

    PORT 0 picks a free port. Connections go to a Ready pod of the router Service; when
    that pod goes away, new connections go to another one. Runs until Ctrl-C.
    """
    from vllmctl.cluster.kube import Kube
    from vllmctl.cluster.tunnel import open_router_tunnel

    settings = app.settings
    with (
        Kube.from_settings(settings) as kube,
        open_router_tunnel(
            kube, settings.namespace, settings.release, port=port, address=address, on_event=app.info
        ) as tunnel,
    ):
        print(tunnel.base_url, flush=True)
        app.info(
            f"Forwarding {tunnel.address} port {tunnel.port} to Service {tunnel.service} in namespace "
            f"{settings.namespace} (pod {tunnel.pod}, port {tunnel.target_port}). Press Ctrl-C to stop."
        )
        tunnel.wait()


@command("list-api-models")
@base_url_option
def list_api_models(app: App, base_url: str | None) -> None:
    """List the models the router serves (GET /v1/models through a port-forward)."""
    from vllmctl.apis.openai_api import list_models

    with open_endpoint(app, base_url) as endpoint:
        cards = list_models(endpoint.base_url, endpoint.api_key, label=endpoint.label)

    def table() -> None:
        if not cards:
            app.info("The router serves no models yet (no engine is Ready); `vllmctl status` shows why.")
            return
        # A LoRA adapter is listed beside its base model, which vLLM names in `parent`.
        rows = [
            (c.get("id"), c.get("parent") or "-", c.get("owned_by"), c.get("max_model_len")) for c in cards
        ]
        app.table(("id", "parent", "owned_by", "max_model_len"), rows)

    app.emit(cards, table)


@command("test-completions")
@click.argument("model", required=False, shell_complete=complete_model_names)
@click.argument("prompt", required=False)
@base_url_option
@click.option("--completions", "legacy", is_flag=True, help="use the legacy /v1/completions, not chat")
@click.option("--max-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--temperature", type=click.FloatRange(min=0), help="sampling temperature [default: the server's]"
)
@click.option("--no-stream", is_flag=True, help="ask for the whole answer at once")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="requests to send")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="at most this many at once",
)
@click.option(
    "--session",
    "session_id",
    metavar="ID",
    help="send ID in the router's session header (session routing): one ID keeps one engine",
)
@click.option("--adapter", metavar="NAME", help="a LoRA adapter of MODEL (the same as MODEL:NAME)")
def test_completions(
    app: App,
    model: str | None,
    prompt: str | None,
    base_url: str | None,
    legacy: bool,
    max_tokens: int,
    temperature: float | None,
    no_stream: bool,
    repeat: int,
    concurrency: int,
    session_id: str | None,
    adapter: str | None,
) -> None:
    """Send a prompt to a model and stream the answer, with timings.

    MODEL is a name from models.yaml (vllmctl serves each model under it; asked for when
    omitted), or MODEL:ADAPTER for one of its LoRA adapters (models.yaml `lora:`);
    PROMPT defaults to "Say hello in one sentence.". The answer goes to stdout,
    the timings to stderr. With --repeat/--concurrency it is a small load check instead:
    latency p50/p95 and throughput, without the answers. With --session ID (the router must
    route by session) every request carries ID in the router's session header, and the
    router's log says which engine served it.
    """
    from vllmctl.apis.openai_api import Client, CompletionFailed, CompletionRequest, run_load
    from vllmctl.ops.adapters import model_id
    from vllmctl.ops.session import session_header

    request = CompletionRequest(
        model=model_id(app.settings, model or _choose_model(app), adapter),
        prompt=DEFAULT_PROMPT if prompt is None else prompt,
        chat=not legacy,
        max_tokens=max_tokens,
        temperature=temperature,
        stream=not no_stream,
    )
    load = repeat > 1 or concurrency > 1
    with open_endpoint(app, base_url) as endpoint:
        session = session_header(app.settings, endpoint.kube, session_id) if session_id is not None else None
        headers = {session.header: session.value} if session else None
        with Client(
            endpoint.base_url,
            endpoint.api_key,
            max_connections=concurrency,
            label=endpoint.label,
            headers=headers,
        ) as client:
            try:
                if load:
                    result = run_load(client, request, repeat=repeat, concurrency=concurrency)
                else:
                    streaming = request.stream and app.output == "table"
                    completion = client.complete(request, on_text=_write if streaming else None)
            except CompletionFailed as e:
                raise explained(e, endpoint) from None
        served = _served(endpoint, completion) if session and not load else None
    if load:
        _show_load(app, result, endpoint)
    else:
        _show_completion(
            app,
            completion,
            streamed=streaming,
            session=session and _session_part(session, completion, served, endpoint),
        )


def _served(endpoint: Endpoint, completion: Completion) -> Any:
    """Where the router's log says it sent the request (None: no port-forward, or no line)."""
    from vllmctl.ops.session import served_by

    pod = endpoint.tunnel.pod if endpoint.tunnel else None
    if endpoint.kube is None or pod is None or not completion.request_id:
        return None
    return served_by(
        endpoint.kube, endpoint.tunnel.namespace if endpoint.tunnel else "", pod, completion.request_id
    )


def _session_part(
    session: Session, completion: Completion, served: Any, endpoint: Endpoint
) -> dict[str, Any]:
    """--session's part of the report: the header sent, the request id, the engine."""
    part: dict[str, Any] = {
        "header": session.header,
        "id": session.value,
        "header_from": session.source,
        "request_id": completion.request_id,
        "engine": served.url if served else None,
        "engine_pod": served.pod if served else None,
        "router_pod": served.router_pod if served else None,
    }
    if served is None:
        part["note"] = (
            "the router's log does not name the engine of this request (it logs it at INFO)"
            if endpoint.tunnel
            else "with --base-url vllmctl cannot read the router's log; find the request id in it"
        )
    return part


def _choose_model(app: App) -> str:
    from vllmctl.catalog.selected import load_selected
    from vllmctl.core.errors import UsageError

    path = app.settings.models_path
    names = load_selected(app.settings).names()
    if not names:
        raise UsageError(f"name the model: vllmctl test-completions MODEL [PROMPT] ({path} lists none).")
    app.require_interactive(f"MODEL (the first argument: one of {', '.join(names)})")
    return app.ask_select("Which model?", names)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _show_completion(
    app: App, completion: Completion, *, streamed: bool, session: dict[str, Any] | None = None
) -> None:
    data: dict[str, Any] = {
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "time_to_first_token": completion.first_token,
        "tokens_per_second": completion.tokens_per_second,
        "seconds": completion.seconds,
        "usage": completion.usage._asdict() if completion.usage else None,
    }
    if session:
        data["session"] = session
    if app.output != "table":
        app.emit(data, lambda: None)
        return
    if not streamed:
        sys.stdout.write(completion.text)
    if not completion.text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    if completion.first_token is not None:
        app.info(f"time to first token: {completion.first_token:.3f} s")
    rate = completion.tokens_per_second
    app.info(f"tokens/s: {rate:.1f}" if rate is not None else "tokens/s: unknown (no token counts sent)")
    app.info(f"total time: {completion.seconds:.3f} s")
    usage = completion.usage
    if usage is not None:
        app.info(
            f"tokens: {usage.prompt_tokens} prompt, {usage.completion_tokens} completion, "
            f"{usage.total_tokens} total (finish: {completion.finish_reason or 'unknown'})"
        )
    if session:
        app.info(f"session: {session['header']}: {session['id']} (request {session['request_id']})")
        if session["engine"]:
            pod = f"engine pod {session['engine_pod']} at " if session["engine_pod"] else "engine "
            app.info(f"served by {pod}{session['engine']} (router pod {session['router_pod']}'s log)")
        else:
            app.info(f"served by: unknown ({session['note']})")


def _show_load(app: App, result: LoadResult, endpoint: Endpoint) -> None:
    from vllmctl.apis.openai_api import CompletionFailed

    summary = result.summary()

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    def table() -> None:
        s = summary
        rows = [
            ("requests", f"{s['requests']} ({s['failed']} failed), {s['concurrency']} at a time"),
            ("latency p50", seconds(s["latency_p50"])),
            ("latency p95", seconds(s["latency_p95"])),
            ("first token p50", seconds(s["ttft_p50"])),
            ("first token p95", seconds(s["ttft_p95"])),
            ("throughput", f"{s['tokens_per_second']} tokens/s, {s['requests_per_second']} requests/s"),
            ("completion tokens", s["completion_tokens"]),
            ("wall time", seconds(s["seconds"])),
        ]
        app.table(("metric", "value"), rows)

    app.emit(summary, table)
    if result.failures:
        first = result.failures[0]
        failed = CompletionFailed(
            f"{len(result.failures)} of {summary['requests']} requests failed; the first: {first.message}",
            status=getattr(first, "status", None),
            served=getattr(first, "served", None),
        )
        raise explained(failed, endpoint)


COMMANDS = {c.name: c for c in (port_forward, list_api_models, test_completions)}
