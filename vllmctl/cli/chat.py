"""`vllmctl chat MODEL`: a multi-turn chat with a served model, through the release's router
(vllmctl's own port-forward) or any OpenAI-compatible `--base-url`.

At a terminal the prompt is cli/chat_terminal.py's (prompt_toolkit, imported only then);
without one, each line of stdin is a user message of one conversation. The conversation
itself, the slash commands and the stoppable reply are vllmctl/ops/chat.py's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from vllmctl.cli.endpoint import Endpoint, base_url_option, explained, open_endpoint
from vllmctl.cli.options import command, complete_model_names
from vllmctl.ui import App

if TYPE_CHECKING:
    from vllmctl.ops.chat import Chat, Reply


@command("chat")
@click.argument("model", required=False, shell_complete=complete_model_names)
@base_url_option
@click.option("--system", metavar="TEXT", help="the system message to start with (/system changes it)")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="at most this many tokens a reply [default: what the model's context has left]",
)
@click.option(
    "--temperature", type=click.FloatRange(min=0), help="sampling temperature [default: the server's]"
)
@click.option("--no-stream", is_flag=True, help="ask for each whole reply at once (no time to first token)")
def chat(
    app: App,
    model: str | None,
    base_url: str | None,
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    no_stream: bool,
) -> None:
    """Chat with a served model: streamed turns at a terminal, or one message per line of stdin.

    MODEL is a name from models.yaml, an id the server serves, or MODEL:ADAPTER for a LoRA
    adapter; it is checked against GET /v1/models before the first turn (at a terminal,
    asked for when omitted).

    At a terminal: Enter sends; Esc then Enter, or a line ending in a backslash, starts
    another line. Ctrl-C during a reply stops it: the text that arrived stays in the
    conversation as the reply (stopped before any text, the turn is dropped). Ctrl-C at the
    prompt clears it; Ctrl-D or /exit leaves. The lines typed are kept for the up arrow in
    $XDG_STATE_HOME/vllmctl/chat-history (default ~/.local/state/vllmctl/chat-history,
    mode 0600); nothing else goes there, the API key never.

    \b
    Commands, at a terminal and in piped lines (// sends a line that starts with /):
      /system TEXT  set the system message (no TEXT: remove it); the turns stay
      /reset        forget the turns (the system message stays)
      /save FILE    write the conversation to FILE as JSON {"model", "messages"}
      /model NAME   talk to another served model from the next turn on
      /help, /exit

    After each reply, a footer on stderr: the time to first token (from sending the request
    to the first streamed text, measured here), tokens/s (the completion tokens after the
    first, over the time from the first text to the last; with --no-stream, completion
    tokens over the whole request) and the prompt and completion token counts, from the
    usage the server sends at the end. A stopped reply has no counts.

    Without a terminal: each line of stdin (blank ones skipped) is the next user message of
    one conversation, and each reply is printed on stdout as it arrives, then a newline;
    -o json prints one JSON object a line instead (text, model, finish_reason, usage,
    time_to_first_token, tokens_per_second, seconds). Footers only with -v. An error
    answer (401, 404, 5xx) ends the run with exit 1.

    \b
    Example:
      printf 'Name a prime.\\nAnd the next one?\\n' | vllmctl chat llama3
    """
    from vllmctl.apis.openai_api import Client
    from vllmctl.ops.adapters import served_model
    from vllmctl.ops.chat import Chat, Conversation

    at_terminal = sys.stdin.isatty() and sys.stdout.isatty()
    with open_endpoint(app, base_url) as endpoint:

        def connect() -> Client:
            return Client(endpoint.base_url, endpoint.api_key, label=endpoint.label)

        with connect() as first:
            cards = first.models()
        name = model or _choose_model(app, cards, endpoint.label)
        conversation = Conversation(served_model(app.settings, name, cards, endpoint.label), system or None)
        with Chat(
            connect,
            conversation,
            settings=app.settings,
            label=endpoint.label,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=not no_stream,
        ) as session:
            if at_terminal:
                from vllmctl.cli.chat_terminal import run_terminal

                run_terminal(app, session, endpoint, lambda a, r: show_reply(a, r, streamed=False))
            else:
                run_lines(app, session, endpoint, sys.stdin)


def _choose_model(app: App, cards: Sequence[Mapping[str, Any]], label: str) -> str:
    """At a terminal, a list: the models.yaml names that are served, else the served ids."""
    from vllmctl.catalog.selected import load_selected
    from vllmctl.core.errors import ExternalError
    from vllmctl.ops.adapters import served_ids

    served = served_ids(cards)
    if not served:
        raise ExternalError(f"{label} serves no models yet (no engine is Ready); `vllmctl status` shows why.")
    names = [n for n in load_selected(app.settings).names() if n in served] or served
    app.require_interactive(f"MODEL (the first argument: one of {', '.join(names)})")
    return app.ask_select("Which model?", names)


def run_lines(app: App, session: Chat, endpoint: Endpoint, lines: Iterable[str]) -> None:
    """Without a terminal: every non-blank line is a message (or a command); each reply is
    written to stdout. The first error ends the run."""
    from vllmctl.apis.openai_api import CompletionFailed
    from vllmctl.core.errors import UsageError
    from vllmctl.ops.chat import Command, Exit, footer, parse_line

    streaming = session.stream and app.output == "table"
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            parsed = parse_line(line)
            if isinstance(parsed, Command):
                app.info(session.apply(parsed))
                continue
            reply = session.send(parsed, _write if streaming else None, stoppable=False)
        except Exit:
            return
        except CompletionFailed as e:
            raise explained(e, endpoint) from None
        except UsageError as e:
            e.message = f"line {number} of stdin: {e.message}"
            raise
        show_reply(app, reply, streamed=streaming)
        if app.verbose:
            app.info(footer(reply))


def show_reply(app: App, reply: Reply, *, streamed: bool) -> None:
    """The reply on stdout: its text (unless it was written as it came) and a newline, or
    one JSON (or YAML) document."""
    if app.output == "json":
        print(json.dumps(reply.record(), ensure_ascii=False), flush=True)
        return
    if app.output == "yaml":
        from vllmctl.ui import to_yaml

        print("---\n" + to_yaml(reply.record()), end="", flush=True)
        return
    if not streamed:
        sys.stdout.write(reply.text)
    if not reply.text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


COMMANDS = {c.name: c for c in (chat,)}
