"""One asyncio event loop in a background thread that hosts the stand-in servers.

Every stand-in is an aiohttp application. They share one loop so that their state
(the object store, Vault's data, the router's models) is only ever touched from one
thread: no locks, and tests reach in with `call()`, which runs a function on the loop.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread, with servers bound to 127.0.0.1."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sandbox-loop", daemon=True)
        self._runners: list[web.AppRunner] = []
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Awaitable[T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float = 30) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return self.submit(coro).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the loop thread (so it may touch server state)."""

        async def wrapper() -> T:
            return fn(*args)

        return self.run(wrapper())

    def serve(
        self,
        app: web.Application,
        port: int = 0,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> int:
        """Start `app` on host:port (0 picks a free port) and return the bound port."""
        return self.run(self.serve_async(app, port, host, ssl_context))

    async def serve_async(
        self,
        app: web.Application,
        port: int = 0,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> int:
        """`serve`, from code already running on the loop."""
        # shutdown_timeout is short: watches and log follows are open-ended streams.
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        self._runners.append(runner)
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        return int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def stop(self) -> None:
        """Close every server and their open connections, then end the loop and thread."""

        async def shutdown() -> None:
            for runner in reversed(self._runners):
                await runner.cleanup()
            self._runners.clear()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            try:
                self.run(shutdown(), timeout=15)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(timeout=15)
        self.loop.close()
