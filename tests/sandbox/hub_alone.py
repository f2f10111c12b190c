"""The Hub stand-in alone on its own loop thread, for tests that ask the Hub but need no
simulated cluster (tests/hub, bench's tokenizer, the list endpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.sandbox.hub import HubStandIn
from tests.sandbox.loop import LoopThread

# huggingface_hub fetches this once a day per HF_HOME for its User-Agent: not the test's.
AGENT_REGISTRY = "/api/agent-harnesses"


@dataclass
class Hub:
    loop: LoopThread
    stand_in: HubStandIn
    url: str

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run fn on the loop thread, where the stand-in's state lives."""
        return self.loop.call(lambda: fn(*args, **kwargs))

    @property
    def requests(self) -> list[Any]:
        """The requests made, but huggingface_hub's (daily) fetch of its agent registry."""
        made = self.call(lambda: list(self.stand_in.requests))
        return [r for r in made if r.path != AGENT_REGISTRY]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@contextmanager
def serve_hub() -> Iterator[Hub]:
    """A Hub stand-in on 127.0.0.1 until the block ends; its internal errors fail the test."""
    loop = LoopThread()
    stand_in = HubStandIn()
    try:
        yield Hub(loop, stand_in, f"http://127.0.0.1:{loop.serve(stand_in.app())}")
    finally:
        errors = list(stand_in.errors)
        loop.stop()
    assert not errors, "the Hub stand-in hit internal errors:\n" + "\n".join(errors)
