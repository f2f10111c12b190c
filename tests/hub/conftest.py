"""A Hub stand-in alone on its own loop thread, for the tests of this directory: the whole
sandbox (a simulated cluster) is not needed to ask the Hub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox.hub_alone import Hub, serve_hub

__all__ = ["Hub"]


@pytest.fixture(scope="session")
def _hub_server() -> Iterator[Hub]:
    with serve_hub() as hub:
        yield hub


@pytest.fixture
def hub(_hub_server: Hub) -> Iterator[Hub]:
    """The stand-in with its preloaded models, no tokens, faults or recorded requests."""
    _hub_server.call(_hub_server.stand_in.reset)
    yield _hub_server
    _hub_server.call(_hub_server.stand_in.reset)
