"""`vllmctl chat`'s conversation: the messages sent each turn, the slash commands that
change them, the served model it talks to, and a reply that Ctrl-C may stop half-way.

Nothing here prints or reads the terminal (cli/chat.py and cli/chat_terminal.py do). The
conversation is what the user saw: a reply stopped by Ctrl-C keeps the text that had
arrived (so the next turn alternates user/assistant, as strict chat templates require,
and the model sees what it said); a turn stopped before any text, or failed, is dropped
with its user message.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.core.errors import UsageError
from vllmctl.ops.adapters import served_model

if TYPE_CHECKING:
    from vllmctl.apis.openai_api import Client, Completion, Usage

HISTORY_FILE = "chat-history"  # under the state directory's vllmctl/
# The commands a line may start with, and what each does (for /help and --help).
COMMANDS = {
    "/system": "/system TEXT: set the system message (no TEXT: remove it); the turns stay",
    "/reset": "/reset: forget the turns (the system message stays)",
    "/save": "/save FILE: write the conversation to FILE as JSON",
    "/model": "/model NAME: talk to another served model from the next turn on",
    "/help": "/help: list these commands",
    "/exit": "/exit: leave (Ctrl-D too)",
}
ESCAPE = "//"  # a line starting with // is sent as a message, less one slash


# --- the history file --------------------------------------------------------------------------


def history_path(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/vllmctl/chat-history, else ~/.local/state/vllmctl/chat-history (the XDG
    base directory rules: a relative XDG_STATE_HOME is ignored)."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "vllmctl" / HISTORY_FILE


def prepare_history_file(path: Path) -> Path:
    """Create the history file readable by its owner only (0600, in a 0700 directory), or
    tighten an existing one: the lines typed into a chat are nobody else's business."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


# --- the conversation --------------------------------------------------------------------------


@dataclass
class Conversation:
    """The system message and the turns so far, as OpenAI's chat API takes them."""

    model: str
    system: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)

    def messages(self, user: str | None = None) -> tuple[dict[str, str], ...]:
        """What a request carries: the system message, the turns, then `user` when given."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        tail = [{"role": "user", "content": user}] if user is not None else []
        return tuple(head + self.turns + tail)

    def add_turn(self, user: str, reply: str) -> None:
        self.turns += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "messages": list(self.messages())}

    def save(self, path: Path) -> Path:
        """Write the conversation as JSON (replacing the file), returning where it went."""
        target = path.expanduser()
        text = json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n"
        temp = target.with_name(f".{target.name}.tmp")
        try:
            temp.write_text(text, encoding="utf-8")
            temp.replace(target)
        except OSError as e:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise UsageError(f"cannot write {target}: {e.strerror or e}; give /save another FILE.") from None
        return target


# --- a line typed or read ----------------------------------------------------------------------


class Command(NamedTuple):
    name: str  # "/system"...
    argument: str  # the rest of the line, stripped


def parse_line(line: str) -> Command | str:
    """A slash command, or the message to send (`//text` sends `/text`)."""
    if line.startswith(ESCAPE):
        return line[1:]
    if not line.startswith("/"):
        return line
    name, _, argument = line.partition(" ")
    name = name.strip()
    if name not in COMMANDS:
        known = ", ".join(COMMANDS)
        raise UsageError(
            f"{name} is not a chat command (they are {known}); "
            "start the line with // to send it as a message."
        )
    return Command(name, argument.strip())


class Exit(Exception):
    """/exit: the chat ends."""


# --- one turn ----------------------------------------------------------------------------------


class Reply(NamedTuple):
    """A model's answer to one turn; `completion` is None when Ctrl-C stopped it."""

    text: str
    model: str
    completion: Completion | None
    first_token: float | None  # seconds from sending to the first text
    seconds: float

    @property
    def stopped(self) -> bool:
        return self.completion is None

    @property
    def usage(self) -> Usage | None:
        return self.completion.usage if self.completion else None

    @property
    def tokens_per_second(self) -> float | None:
        return self.completion.tokens_per_second if self.completion else None

    def record(self) -> dict[str, Any]:
        """The reply as `-o json` prints it."""
        c = self.completion
        return {
            "text": self.text,
            "model": self.model,
            "finish_reason": c.finish_reason if c else None,
            "usage": c.usage._asdict() if c and c.usage else None,
            "time_to_first_token": self.first_token,
            "tokens_per_second": self.tokens_per_second,
            "seconds": self.seconds,
            "stopped": self.stopped,
        }


class Chat:
    """A conversation with one endpoint: sends the turns, applies the slash commands.

    `connect` makes the endpoint's Client. A reply stopped by Ctrl-C has its HTTP stream
    closed by httpx on the way out (the server sees the client go); the next turn then
    gets a new client, so nothing the cut-off request left in the connection pool can
    touch it. The old one is closed then rather than at once, so a second Ctrl-C cannot
    leave the chat without a client.
    """

    def __init__(
        self,
        connect: Callable[[], Client],
        conversation: Conversation,
        *,
        settings: Any,
        label: str,
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
    ) -> None:
        self._connect = connect
        self._client = connect()
        self._stale = False  # a stopped reply used the client: make a new one before the next request
        self.conversation = conversation
        self.settings = settings
        self.label = label
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.stream = stream

    @property
    def client(self) -> Client:
        if self._stale:
            old, self._stale = self._client, False
            self._client = self._connect()
            old.close()
        return self._client

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, text: str, on_text: Callable[[str], None] | None = None, *, stoppable: bool) -> Reply:
        """One turn: the conversation plus `text`, the reply added to it when it ends.

        With `stoppable`, Ctrl-C (KeyboardInterrupt) during the reply ends this reply only:
        the text that arrived is kept as the turn's reply (none: the turn is dropped).
        A failure (CompletionFailed, ExternalError) leaves the conversation as it was.
        """
        from vllmctl.apis.openai_api import CompletionRequest

        conversation = self.conversation
        request = CompletionRequest(
            model=conversation.model,
            prompt="",
            messages=conversation.messages(text),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            stream=self.stream,
        )
        pieces: list[str] = []
        start = time.perf_counter()
        first: float | None = None

        def arrived(piece: str) -> None:
            nonlocal first
            if first is None:
                first = time.perf_counter() - start
            pieces.append(piece)
            if on_text is not None:
                on_text(piece)

        try:
            completion = self.client.complete(request, on_text=arrived)
        except KeyboardInterrupt:
            if not stoppable:
                raise
            self._stale = True
            partial = "".join(pieces)
            if partial:
                conversation.add_turn(text, partial)
            return Reply(partial, conversation.model, None, first, time.perf_counter() - start)
        conversation.add_turn(text, completion.text)
        return Reply(
            completion.text, conversation.model, completion, completion.first_token, completion.seconds
        )

    def apply(self, command: Command) -> str:
        """Carry out a slash command; the sentence that says what it did."""
        conversation = self.conversation
        name, argument = command
        if name == "/exit":
            raise Exit
        if name == "/help":
            return "\n".join(COMMANDS.values())
        if name == "/system":
            conversation.system = argument or None
            return "System message set." if argument else "System message removed."
        if name == "/reset":
            count = len(conversation.turns) // 2
            conversation.turns.clear()
            return f"Conversation reset ({count} turn{'s' if count != 1 else ''} forgotten)."
        if name == "/save":
            if not argument:
                raise UsageError("/save needs a FILE: /save chat.json.")
            path = conversation.save(Path(argument))
            return f"Saved {len(conversation.messages())} messages to {path}."
        if name == "/model":
            if not argument:
                raise UsageError(f"/model needs a NAME (now: {conversation.model}).")
            conversation.model = served_model(self.settings, argument, self.client.models(), self.label)
            return f"Now talking to {conversation.model}."
        raise AssertionError(name)  # parse_line lets only COMMANDS through


def footer(reply: Reply) -> str:
    """The line shown after a reply: time to first token (to the first streamed text),
    tokens/s (Completion.tokens_per_second: the completion tokens after the first, over the
    time from the first text to the last) and the token counts, from the server's usage."""
    parts = []
    if reply.first_token is not None:
        parts.append(f"time to first token {reply.first_token:.3f} s")
    if reply.stopped:  # the usage comes last, so a stopped reply has no token counts
        return "[" + ", ".join(["stopped", *parts, f"{reply.seconds:.2f} s"]) + "]"
    rate = reply.tokens_per_second
    parts.append(f"{rate:.1f} tokens/s" if rate is not None else "tokens/s unknown (no usage sent)")
    usage = reply.usage
    if usage is not None:
        parts.append(f"tokens {usage.prompt_tokens} prompt, {usage.completion_tokens} completion")
    parts.append(f"{reply.seconds:.2f} s")
    return "[" + ", ".join(parts) + "]"
