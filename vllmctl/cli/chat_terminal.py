"""`vllmctl chat` at a terminal: prompt_toolkit's line editor with the history file, the
keys for multi-line input, and the loop of turns. prompt_toolkit is imported inside the
functions (this module is imported only when a chat starts at a terminal anyway)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllmctl.cli.endpoint import Endpoint, explained
from vllmctl.ui import App

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

    from vllmctl.ops.chat import Chat, Reply

PROMPT = "> "
CONTINUATION = ". "  # before the second and later lines of one message
KEYS = (
    "Enter sends; Esc Enter or a trailing \\ adds a line; Ctrl-C stops a reply; "
    "/help lists the commands; Ctrl-D or /exit leaves."
)


def run_terminal(
    app: App, session: Chat, endpoint: Endpoint, show_reply: Callable[[App, Reply], None]
) -> None:
    """Prompt, send, show, until Ctrl-D or /exit; errors are shown and the chat goes on."""
    from vllmctl.apis.openai_api import CompletionFailed
    from vllmctl.core.errors import VllmctlError
    from vllmctl.ops.chat import Command, Exit, footer, history_path, parse_line

    prompt = _prompt_session(app, history_path())
    app.info(f"Chatting with {session.conversation.model} at {endpoint.label}. {KEYS}")
    streaming = app.output == "table"
    while True:
        try:
            line = prompt.prompt(PROMPT)
        except KeyboardInterrupt:  # Ctrl-C at an empty prompt (with text, it clears the line)
            app.info("Ctrl-D or /exit leaves the chat.")
            continue
        except EOFError:
            return
        if not line.strip():
            continue
        try:
            parsed = parse_line(line)
            if isinstance(parsed, Command):
                app.info(session.apply(parsed))
                continue
            reply = session.send(parsed, _write if streaming else None, stoppable=True)
        except Exit:
            return
        except KeyboardInterrupt:  # a second Ctrl-C, while a stopped reply was being wound up
            app.info("\nStopped.")
            continue
        except CompletionFailed as e:
            _error(app, explained(e, endpoint))
            continue
        except VllmctlError as e:
            _error(app, e)
            continue
        if reply.stopped:
            sys.stdout.write("\n")
            sys.stdout.flush()
            kept = "the text so far stays in the conversation" if reply.text else "the turn is dropped"
            app.info(f"Stopped ({kept}).")
        elif streaming:
            if not reply.text.endswith("\n"):
                sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            show_reply(app, reply)
        app.info(footer(reply))


def _prompt_session(app: App, history: Path) -> PromptSession[str]:
    """The line editor: the history file (0600), Enter to send, Esc Enter or a trailing
    backslash for another line, Ctrl-C to clear a line."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

    from vllmctl.ops.chat import prepare_history_file

    kept: History
    try:
        kept = FileHistory(str(prepare_history_file(history)))
    except OSError as e:
        app.warn(f"cannot keep the chat history in {history} ({e.strerror or e}); it is kept in memory.")
        kept = InMemoryHistory()
    keys = KeyBindings()

    @keys.add("enter")
    def _send(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.text.endswith("\\") and buffer.cursor_position == len(buffer.text):
            buffer.delete_before_cursor(1)
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @keys.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @keys.add("c-c")
    def _clear(event: KeyPressEvent) -> None:
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt())

    def continuation(width: int, _line: int, _wrapped: int) -> Any:
        return CONTINUATION.rjust(width)

    return PromptSession(history=kept, key_bindings=keys, multiline=True, prompt_continuation=continuation)


def _error(app: App, error: Any) -> None:
    app.error(error.message)
    for detail in error.details:
        app.info(f"  {detail}")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
