"""The live line on stderr while a run goes (a terminal only): requests done of the total,
errors, and the output tokens per second of the last few seconds."""

from __future__ import annotations

import collections
import os
from types import TracebackType
from typing import Any

from vllmctl.ops.bench.runner import Snapshot

WINDOW_SECONDS = 2.0  # the current throughput is over this much of the recent past


class LiveProgress:
    """A rich Live display fed with Snapshots (`update`); use it as a context manager."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.label = label
        console = Console(stderr=True, no_color="NO_COLOR" in os.environ, highlight=False)
        # Refreshed from the run's own ticks, in its event loop: no thread of rich's own.
        self._live = Live(console=console, auto_refresh=False, transient=True)
        self._seen: collections.deque[tuple[float, int]] = collections.deque()

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(kind, value, tb)

    def update(self, snap: Snapshot) -> None:
        self._seen.append((snap.elapsed, snap.tokens))
        while len(self._seen) > 2 and snap.elapsed - self._seen[0][0] > WINDOW_SECONDS:
            self._seen.popleft()
        (t0, n0), (t1, n1) = self._seen[0], self._seen[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        self._live.update(self._render(snap, rate), refresh=True)

    def _render(self, snap: Snapshot, rate: float) -> Any:
        from rich.text import Text

        total = f"/{snap.total}" if snap.total is not None else ""
        finished = snap.done + snap.failed
        bar = ""
        if snap.total:
            width = 24
            filled = int(width * finished / snap.total)
            bar = "[" + "#" * filled + "-" * (width - filled) + "] "
        return Text(
            f"{self.label} {bar}{finished}{total} done, {snap.failed} errors, {snap.in_flight} in flight, "
            f"{rate:.0f} output tok/s, {snap.elapsed:.0f}s",
            no_wrap=True,
            overflow="ellipsis",
        )
