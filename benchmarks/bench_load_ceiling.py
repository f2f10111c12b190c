"""How much load `vllmctl bench` itself can drive: requests/s and CPU seconds per request
against the sandbox's router stand-in with no pacing (every token at once), at several
concurrencies. A report, not a test (docs/bench.md, "The client's own ceiling").

    python3 benchmarks/bench_load_ceiling.py [--requests 400] [--concurrency 1,8,32]

The stand-in (tests/sandbox/router.py) runs in a process of its own; each point runs
vllmctl's load generator in this process (vllmctl.ops.bench.runner.run_load), so the CPU
time measured (resource.getrusage) is the client's alone, without Python's start-up. The
stand-in's CPU time over the same run is read from /proc, to tell which side was busy.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STAND_IN = """
import sys
from aiohttp import web
from tests.sandbox.router import RouterStandIn
router = RouterStandIn(lambda: ["llama3"], lambda: None)
web.run_app(router.app(), host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_of(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the stand-in did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--input-len", type=int, default=40)
    parser.add_argument("--output-len", type=int, default=20)
    args = parser.parse_args()

    from vllmctl.ops.bench.metrics import calculate
    from vllmctl.ops.bench.prompts import LengthRange, PromptSpec, build_prompts
    from vllmctl.ops.bench.runner import LoadShape, PromptFeed, Target, run_load

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", STAND_IN, str(port)], cwd=REPO)
    try:
        wait_for(port)
        target = Target(f"http://127.0.0.1:{port}", None, "llama3")
        spec = PromptSpec(
            LengthRange(args.input_len, args.input_len), LengthRange(args.output_len, args.output_len)
        )
        prompts = build_prompts(spec, args.requests).prompts
        print(f"{args.requests} requests, {args.input_len} tokens in, {args.output_len} out, no pacing")
        print(f"{'concurrency':>11} {'req/s':>8} {'out tok/s':>10} {'client cpu ms/req':>18} "
              f"{'stand-in cpu ms/req':>20} {'ttft p50 ms':>12} {'itl p50 ms':>11}")  # fmt: skip
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            shape = LoadShape(args.requests, concurrency)
            before, server_before = resource.getrusage(resource.RUSAGE_SELF), cpu_of(server.pid)
            result = run_load(target, shape, PromptFeed(prompts))
            after, server_after = resource.getrusage(resource.RUSAGE_SELF), cpu_of(server.pid)
            m = calculate(result.results, result.duration, {})
            client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            n = max(m.completed, 1)
            print(
                f"{concurrency:>11} {m.request_throughput or 0:>8.1f} {m.output_throughput or 0:>10.0f} "
                f"{client_cpu / n * 1000:>18.2f} {(server_after - server_before) / n * 1000:>20.2f} "
                f"{m.ttft['median'] or 0:>12.2f} {m.itl['median'] or 0:>11.3f}"
                + (f"  ({m.failed} failed: {m.errors})" if m.failed else "")
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
