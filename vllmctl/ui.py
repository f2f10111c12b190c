"""The application object on click's ctx.obj: settings, output, prompts, and the rules for them.

Data goes to stdout, talk to stderr. Colour only on a terminal and never with NO_COLOR.
Prompts only when stdin and stdout are terminals and --yes was not given; otherwise a
missing answer is an error naming the flag or variable that supplies it. questionary
(and prompt_toolkit under it) is imported only when a prompt is actually shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from vllmctl.core.errors import Interrupted, UsageError
from vllmctl.settings import Settings

OUTPUT_FORMATS = ("table", "json", "yaml")


def _wants_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _paint(text: str, code: str, stream: TextIO) -> str:
    return f"\033[{code}m{text}\033[0m" if _wants_color(stream) else text


class App:
    """Owns the resolved settings, how to talk to the user, and whether we may ask them."""

    def __init__(self) -> None:
        self.flags: dict[str, str | None] = {}
        self.output = "table"
        self.yes = False
        self.verbose = False
        self._settings: Settings | None = None
        self._retired_warned = False

    # ---------------------------------------------------------------- settings
    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.resolve(self.flags)
        return self._settings

    def warn_retired_settings(self) -> None:
        """Warn, once per run, about the old tool's variables that vllmctl does not read."""
        from vllmctl.settings import retired_settings

        if not self._retired_warned:
            self._retired_warned = True
            for warning in retired_settings():
                self.warn(warning)

    def set_flag(self, name: str, value: str | None) -> None:
        """Record a command-line value for a setting (before settings are first used)."""
        if value is not None:
            self.flags[name] = value
            self._settings = None

    # ---------------------------------------------------------------- talking
    def info(self, message: str) -> None:
        print(message, file=sys.stderr)

    def success(self, message: str) -> None:
        print(_paint(message, "32", sys.stderr), file=sys.stderr)

    def warn(self, message: str) -> None:
        print(_paint(f"warning: {message}", "33", sys.stderr), file=sys.stderr)

    def error(self, message: str) -> None:
        print(_paint(f"error: {message}", "31", sys.stderr), file=sys.stderr)

    # ---------------------------------------------------------------- data
    def emit(self, data: Any, table: Callable[[], None]) -> None:
        """Print `data` as JSON or YAML when asked for, else call `table` to show it."""
        if self.output == "json":
            import json

            print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        elif self.output == "yaml":
            print(to_yaml(data), end="")
        else:
            table()

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A plain aligned table, kubectl style: cheap to build and easy to grep."""
        print(format_table(headers, rows), end="")

    def follow(self, lines: Iterator[str], label: str) -> float:
        """Show a running tool's output with a live status line (elapsed time) on a terminal;
        plain lines otherwise. Returns the seconds it took."""
        import time

        start = time.monotonic()
        if not sys.stderr.isatty():
            for line in lines:
                print(line, file=sys.stderr, flush=True)
            return time.monotonic() - start
        import threading

        from rich.console import Console

        console = Console(stderr=True, no_color="NO_COLOR" in os.environ, highlight=False)
        done = threading.Event()
        with console.status(label) as status:

            def tick() -> None:
                while not done.wait(0.5):
                    status.update(f"{label} ({time.monotonic() - start:.0f}s)")

            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
            try:
                for line in lines:
                    console.print(line, markup=False)
            finally:
                done.set()
                ticker.join()
        return time.monotonic() - start

    # ---------------------------------------------------------------- prompts
    @property
    def interactive(self) -> bool:
        return not self.yes and sys.stdin.isatty() and sys.stdout.isatty()

    def require_interactive(self, missing: str) -> None:
        """Fail, naming what supplies the answer, when we may not ask for it."""
        if not self.interactive:
            reason = "--yes was given" if self.yes else "this is not an interactive terminal"
            raise UsageError(f"{missing} is needed and {reason}, so vllmctl cannot ask for it.")

    def ask_text(
        self, message: str, *, default: str = "", validate: Callable[[str], str | None] | None = None
    ) -> str:
        import questionary

        def check(text: str) -> bool | str:
            problem = validate(text) if validate else None
            return True if problem is None else problem

        answer = questionary.text(message, default=default, validate=check).ask()
        return str(self._answered(answer))

    def ask_secret(self, message: str) -> str:
        """A prompt whose answer is not echoed (tokens, keys)."""
        import questionary

        return str(self._answered(questionary.password(message).ask()))

    def ask_select(self, message: str, choices: Sequence[str], default: str | None = None) -> str:
        import questionary

        answer = questionary.select(message, choices=list(choices), default=default).ask()
        return str(self._answered(answer))

    def confirm(self, message: str, *, default: bool = False, flag: str = "--yes") -> bool:
        """Yes under --yes; a prompt on a terminal; else an error naming `flag`."""
        if self.yes:
            return True
        if not self.interactive:
            raise UsageError(f"{message} Not asking: this is not an interactive terminal; add {flag}.")
        import questionary

        return bool(self._answered(questionary.confirm(message, default=default).ask()))

    @staticmethod
    def _answered(answer: Any) -> Any:
        # questionary's ask() returns None on Ctrl-C or Ctrl-D.
        if answer is None:
            raise Interrupted("Cancelled; nothing was changed.")
        return answer


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, three spaces apart, headers in capitals."""
    cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines) + "\n"


def to_yaml(data: Any) -> str:
    """Block-style YAML for output (key order kept)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 1 << 20
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()
