"""Container logs as the kubelet serves them: vLLM-engine-like lines for engine pods,
router-like lines for router pods, kept per container (and per previous instance, for
`previous=true`), streamed by the `pods/log` subresource with the real query options."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.sandbox.kube.errors import ApiError, query_bool

Obj = dict[str, Any]


@dataclass
class ContainerLog:
    lines: list[tuple[datetime, str]] = field(default_factory=list)
    previous: list[tuple[datetime, str]] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    last_periodic: float = 0.0

    def add(self, line: str) -> None:
        self.lines.append((datetime.now(UTC), line))
        self.changed.set()
        self.changed = asyncio.Event()


def _model(c: dict[str, Any]) -> str:
    argv = [*(c.get("command") or []), *(c.get("args") or [])]
    if "serve" in argv and argv.index("serve") + 1 < len(argv):
        return str(argv[argv.index("serve") + 1])
    return "unknown-model"


def _is_engine(c: dict[str, Any]) -> bool:
    return "serve" in [*(c.get("command") or []), *(c.get("args") or [])]


class PodLogs:
    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.logs: dict[tuple[str, str], ContainerLog] = {}

    def _log(self, pod: Obj, c: dict[str, Any]) -> ContainerLog:
        return self.logs.setdefault((pod["metadata"]["uid"], c["name"]), ContainerLog())

    def start(self, pod: Obj, c: dict[str, Any]) -> None:
        log = self._log(pod, c)
        if log.lines:  # a restart: the old instance's lines become `previous`
            log.previous, log.lines = log.lines, []
        log.ended = False
        if _is_engine(c):
            model = _model(c)
            for line in (
                "INFO 11-23 00:00:00 [api_server.py] vLLM API server version 0.10.1 (sandbox)",
                f"INFO 11-23 00:00:00 [api_server.py] args: model='{model}', host='0.0.0.0', port=8000",
                f"INFO 11-23 00:00:01 [model_runner.py] Starting to load model {model}...",
                "INFO 11-23 00:00:05 [model_runner.py] Loading weights took 4.20 seconds",
                "INFO 11-23 00:00:06 [gpu_executor.py] # GPU blocks: 27000, # CPU blocks: 2048",
            ):
                log.add(line)
        else:
            log.add("INFO:     Started server process [1]")
            log.add("INFO:     Waiting for application startup.")

    def ready(self, pod: Obj, c: dict[str, Any]) -> None:
        log = self._log(pod, c)
        if _is_engine(c):
            log.add("INFO:     Started server process [1]")
        log.add("INFO:     Application startup complete.")
        log.add("INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)")
        log.last_periodic = time.monotonic()

    def crash(self, pod: Obj, c: dict[str, Any], oom: bool) -> None:
        log = self._log(pod, c)
        if oom:
            log.add("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.")
        else:
            log.add(
                "ValueError: The model's max seq len (131072) is larger than the maximum number of tokens "
                "that can be stored in KV cache (42000). Try increasing `gpu_memory_utilization` or "
                "decreasing `max_model_len` when initializing the engine."
            )
        log.add("ERROR:    Application startup failed. Exiting.")
        log.ended = True  # the container exited: a follow ends here, as the kubelet's does
        log.changed.set()

    def tick(self, pod: Obj, c: dict[str, Any]) -> None:
        """Engines print throughput every few seconds while they run, as vLLM does."""
        log = self.logs.get((pod["metadata"]["uid"], c["name"]))
        if (
            log
            and _is_engine(c)
            and log.last_periodic
            and time.monotonic() - log.last_periodic >= self.interval
        ):
            log.last_periodic = time.monotonic()
            log.add(
                "INFO 11-23 00:00:10 [metrics.py] Avg prompt throughput: 0.0 tokens/s, Avg generation "
                "throughput: 0.0 tokens/s, Running: 0 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.0%"
            )

    def add(self, pod: Obj, container: str, line: str) -> None:
        """A line the container printed (the router stand-in's routing lines)."""
        log = self.logs.setdefault((pod["metadata"]["uid"], container), ContainerLog())
        log.add(line)
        log.changed.set()

    def forget(self, uid: str) -> None:
        for key in [k for k in self.logs if k[0] == uid]:
            log = self.logs.pop(key)
            log.ended = True
            log.changed.set()

    async def serve(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        """GET pods/{name}/log with container, follow, previous, tailLines, sinceSeconds,
        sinceTime, timestamps, limitBytes."""
        q = request.query
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        name = q.get("container")
        pname = pod["metadata"]["name"]
        if not name:
            if len(containers) != 1:
                raise ApiError(
                    400,
                    f"a container name must be specified for pod {pname}, choose one of: "
                    f"[{' '.join(containers)}]",
                )
            name = containers[0]
        if name not in containers:
            raise ApiError(400, f"container {name} is not valid for pod {pname}")
        log = self.logs.get((pod["metadata"]["uid"], name))
        if log is None or (not log.lines and not log.previous):
            state = next(
                (
                    s.get("state", {})
                    for s in (pod.get("status") or {}).get("containerStatuses") or []
                    if s.get("name") == name
                ),
                {},
            )
            reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise ApiError(400, f'container "{name}" in pod "{pname}" is waiting to start: {reason}')
        previous = query_bool(q, "previous")
        if previous and log.previous is None:
            raise ApiError(400, f'previous terminated container "{name}" in pod "{pname}" not found')
        lines = list(log.previous if previous else log.lines)
        if "sinceSeconds" in q:
            cutoff = datetime.now(UTC) - timedelta(seconds=int(q["sinceSeconds"]))
            lines = [entry for entry in lines if entry[0] >= cutoff]
        elif "sinceTime" in q:
            cutoff = datetime.strptime(q["sinceTime"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            lines = [entry for entry in lines if entry[0] >= cutoff]
        if "tailLines" in q:
            tail = int(q["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        stamps = query_bool(q, "timestamps")
        limit = int(q["limitBytes"]) if "limitBytes" in q else None

        def fmt(entry: tuple[datetime, str]) -> bytes:
            ts = entry[0].strftime("%Y-%m-%dT%H:%M:%S.%fZ") + " " if stamps else ""
            return f"{ts}{entry[1]}\n".encode()

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            for entry in lines:
                data = fmt(entry)
                if limit is not None and sent + len(data) > limit:
                    return response
                await response.write(data)
                sent += len(data)
            if not query_bool(q, "follow") or previous:
                return response
            seen = len(log.lines)
            while not log.ended:
                waiter = log.changed
                await waiter.wait()
                for entry in log.lines[seen:]:
                    await response.write(fmt(entry))
                seen = len(log.lines)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response
