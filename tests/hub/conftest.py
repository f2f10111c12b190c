"""A Hub stand-in alone on its own loop thread, for the tests of this directory: the whole
sandbox (a simulated cluster) is not needed to ask the Hub."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.sandbox.hub import HubStandIn
from tests.sandbox.loop import LoopThread

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


@pytest.fixture(scope="session")
def _hub_server() -> Iterator[Hub]:
    loop = LoopThread()
    stand_in = HubStandIn()
    url = f"http://127.0.0.1:{loop.serve(stand_in.app())}"
    try:
        yield Hub(loop, stand_in, url)
    finally:
        errors = list(stand_in.errors)
        loop.stop()
    assert not errors, "the Hub stand-in hit internal errors:\n" + "\n".join(errors)


@pytest.fixture
def hub(_hub_server: Hub) -> Iterator[Hub]:
    """The stand-in with its preloaded models, no tokens, faults or recorded requests."""
    _hub_server.call(_hub_server.stand_in.reset)
    yield _hub_server
    _hub_server.call(_hub_server.stand_in.reset)
