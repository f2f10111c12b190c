#!/usr/bin/env python3
"""`vllmctl bench` against another published benchmark client (guidellm), on the same
endpoint and load: what each reports (TTFT, ITL) against the router stand-in's known
pacing, what each costs in CPU per request, and how many requests/s each can drive on
this machine before the client, not the server, is what limits it (issue 18, section 2).

It starts the sandbox's router stand-in (tests/sandbox/router.py) alone, in its own
process on 127.0.0.1, with no cluster and no port-forward, then runs each tool as a child
process against it:

- accuracy: the stand-in paced at `--ttft` s to the first token and `--tokens-per-second`
  after it; each tool at each `--concurrency` point with `--requests`, `--input-len`,
  `--output-len`; the table puts each tool's own TTFT and ITL beside the pacing;
- ceiling: the stand-in unpaced (it answers as fast as its one event loop can), small
  prompts and outputs, each tool at increasing `--ceiling` concurrency; requests/s stops
  growing when a process runs out of CPU, and the table says which one: the client's CPU
  cores in use and the stand-in's.

CPU time is the kernel's (`os.wait4` on each child: it includes the child's own children,
such as guidellm's worker processes, once they are reaped). Every tool pays a fixed cost
(interpreter, imports, for guidellm also torch and one spawned worker process per
concurrent stream, up to 10), so each point is run twice: with one request per stream
(the fixed cost at that concurrency) and with the full load; "CPU ms/req" is the
difference per extra request, what the requests themselves cost. The stand-in's CPU is
read from /proc (Linux). Its own request counter checks that each tool sent the
requests it was asked to (a run that did not is reported, and the exit code is 1).

    python3 benchmarks/bench_client.py [--guidellm PATH] [--vllmctl PATH] [--json FILE]
        [--requests 64] [--concurrency 1,8] [--input-len 128] [--output-len 64]
        [--ttft 0.1] [--tokens-per-second 50]
        [--ceiling 1,4,16,64] [--ceiling-requests 600] [--skip accuracy|ceiling]
        [--tools vllmctl,guidellm] [--guidellm-workers N]

guidellm is not a dependency of vllmctl: install it in a scratch environment and pass its
executable (`--guidellm /tmp/guidellm-venv/bin/guidellm`; benchmarks/README.md says how);
without it the guidellm rows are skipped with a message. Its synthetic prompts need a
tokenizer: this script builds a one-word word-level tokenizer (every word is the token
"word", split on whitespace, exactly as the stand-in counts tokens) with the `tokenizers`
library of guidellm's own environment, in a temporary directory, so nothing is downloaded.

A report, not a test: timings never fail it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL = "bench-model"
# The stand-in's `vllm:num_incoming_requests_total{model="..."}` line on /metrics.
INCOMING_RE = re.compile(r'^vllm:num_incoming_requests_total\{model="([^"]*)"\} (\S+)$', re.MULTILINE)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- the router stand-in, in its own process ---


def serve(ttft: float, tokens_per_second: float, max_model_len: int) -> None:
    """Run the stand-in on 127.0.0.1 (a free port, printed on stdout) until SIGTERM."""
    sys.path.insert(0, str(REPO))
    from aiohttp import web

    from tests.sandbox.router import RouterStandIn

    router = RouterStandIn(
        models=lambda: [MODEL],
        api_key=lambda: None,
        ttft=ttft,
        tokens_per_second=tokens_per_second,
        max_model_len=max_model_len,
    )

    async def main() -> None:
        runner = web.AppRunner(router.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        print(port, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


@dataclass
class StandIn:
    """A running stand-in process: its URL, and what it has spent and counted so far."""

    process: subprocess.Popen[str]
    base_url: str
    ttft: float
    tokens_per_second: float

    def cpu_seconds(self) -> float:
        """user + system CPU of the stand-in process so far, from /proc/PID/stat."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def requests_seen(self) -> int:
        """Inference requests the stand-in has received for MODEL (its router counter)."""
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        counts = {model: float(n) for model, n in INCOMING_RE.findall(text)}
        return int(counts.get(MODEL, 0))


@contextlib.contextmanager
def stand_in(ttft: float, tokens_per_second: float, max_model_len: int) -> Iterator[StandIn]:
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(ttft), str(tokens_per_second)]
    command.append(str(max_model_len))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise SystemExit(f"the router stand-in did not start (exit {process.poll()})")
        yield StandIn(process, f"http://127.0.0.1:{port}", ttft, tokens_per_second)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- loads, tools, results ---


@dataclass(frozen=True)
class Load:
    """What both tools are asked to send."""

    requests: int
    concurrency: int
    input_len: int
    output_len: int

    def label(self) -> str:
        return f"{self.requests} req, conc {self.concurrency}, {self.input_len}->{self.output_len} tok"


@dataclass
class Reported:
    """What a tool itself reports about a run (ms; requests/s over its measured window)."""

    ttft_mean: float | None
    ttft_median: float | None
    itl_mean: float | None  # mean time between tokens after the first (vllm's TPOT)
    requests_per_second: float | None
    completed: int | None
    errors: int | None
    extra: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Run:
    tool: str
    phase: str
    load: Load
    wall_s: float
    cpu_s: float
    server_cpu_s: float
    sent: int  # requests the stand-in saw during the run
    reported: Reported | None
    problem: str | None = None
    fixed_cpu_s: float | None = None  # CPU of the same tool sending one request per stream
    fixed_requests: int = 0
    load_average: float = 0.0  # the machine's 1-minute load average as the run started

    def cpu_ms_per_request(self) -> float | None:
        """What each further request costs: the CPU over the fixed run, per extra request."""
        extra = self.load.requests - self.fixed_requests
        if self.fixed_cpu_s is None or extra <= 0:
            return None
        return 1000 * (self.cpu_s - self.fixed_cpu_s) / extra

    def measured_s(self) -> float | None:
        """The tool's measured window: its requests over its own requests/s."""
        rep = self.reported
        if rep is None or not rep.requests_per_second or not rep.completed:
            return None
        return rep.completed / rep.requests_per_second

    def client_cores(self) -> float | None:
        """The client's CPU over its measured window, without its start-up: 1.0 = one core."""
        window = self.measured_s()
        if window is None or self.fixed_cpu_s is None:
            return None
        return max(self.cpu_s - self.fixed_cpu_s, 0.0) / window

    def server_cores(self) -> float | None:
        window = self.measured_s()
        return None if window is None else self.server_cpu_s / window


class Tool:
    name = "tool"
    env: dict[str, str] = {}  # noqa: RUF012 (replaced, never mutated)

    def command(self, base_url: str, load: Load, workdir: Path) -> list[str]:
        raise NotImplementedError

    def parse(self, stdout: str, workdir: Path) -> Reported:
        raise NotImplementedError

    def prepare(self, workdir: Path) -> None:
        """Anything to set up once before the runs."""


class Vllmctl(Tool):
    """`vllmctl bench ... -o json` (issue 18's CLI)."""

    name = "vllmctl bench"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def command(self, base_url: str, load: Load, workdir: Path) -> list[str]:
        return [
            *[self.executable, "bench", "--base-url", base_url, MODEL],
            *["--requests", str(load.requests), "--concurrency", str(load.concurrency)],
            *["--input-len", str(load.input_len), "--output-len", str(load.output_len)],
            *["-o", "json"],
        ]

    def parse(self, stdout: str, workdir: Path) -> Reported:
        return parse_vllmctl(json.loads(stdout))


class Guidellm(Tool):
    """guidellm 0.8's `guidellm run`, with synthetic data and a JSON report."""

    name = "guidellm"

    def __init__(self, executable: str, workers: int | None) -> None:
        self.executable = executable
        self.tokenizer: Path | None = None
        if workers:  # guidellm's own setting; its default is 10 worker processes at most
            self.env = {"GUIDELLM__MAX_WORKER_PROCESSES": str(workers)}
            self.name = f"guidellm ({workers} workers)"

    def prepare(self, workdir: Path) -> None:
        self.tokenizer = workdir / "word-tokenizer"
        build_word_tokenizer(Path(self.executable).parent / "python", self.tokenizer)

    def command(self, base_url: str, load: Load, workdir: Path) -> list[str]:
        assert self.tokenizer is not None
        backend = f"kind=openai_http,target={base_url},model={MODEL},request_format=/v1/completions"
        data = f"kind=synthetic_text,prompt_tokens={load.input_len},output_tokens={load.output_len}"
        return [
            *[self.executable, "run", "--backend", backend],
            *["--profile", f"kind=concurrent,streams={load.concurrency}"],
            *["--constraint", f"kind=max_requests,count={load.requests}"],
            *["--tokenizer", f"kind=hf_auto,model={self.tokenizer}"],
            *["--data", data],
            *["--output", f"kind=json,path={workdir / 'guidellm.json'}"],
            "--disable-console",
        ]

    def parse(self, stdout: str, workdir: Path) -> Reported:
        return parse_guidellm(json.loads((workdir / "guidellm.json").read_text()))


def build_word_tokenizer(python: Path, directory: Path) -> None:
    """A Hugging Face tokenizer directory in which every whitespace-separated word is one token
    (the token "word", so decoding N tokens gives N words): the stand-in's own token count."""
    script = f"""
import json, pathlib
from tokenizers import Tokenizer, models, pre_tokenizers
out = pathlib.Path({str(directory)!r}); out.mkdir(parents=True, exist_ok=True)
tokenizer = Tokenizer(models.WordLevel(vocab={{"word": 0}}, unk_token="word"))
tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tokenizer.save(str(out / "tokenizer.json"))
config = {{"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 10**7}}
(out / "tokenizer_config.json").write_text(json.dumps(config))
"""
    subprocess.run([str(python), "-c", script], check=True)


def parse_guidellm(report: dict[str, Any]) -> Reported:
    """guidellm's JSON report: the one benchmark's successful-request statistics."""
    (benchmark,) = report["benchmarks"]
    metrics = benchmark["metrics"]

    def stat(name: str, key: str) -> float | None:
        value = metrics[name]["successful"]
        return value[key] if value["count"] else None

    totals = metrics["request_totals"]
    duration = benchmark["duration"]
    return Reported(
        ttft_mean=stat("time_to_first_token_ms", "mean"),
        ttft_median=stat("time_to_first_token_ms", "median"),
        # guidellm's ITL is per request (last token - first token) / (tokens - 1), then averaged:
        # vllm bench serve's TPOT. Its own "TPOT" includes the first token, so it is not used.
        itl_mean=stat("inter_token_latency_ms", "mean"),
        requests_per_second=totals["successful"] / duration if duration else None,
        completed=totals["successful"],
        errors=totals["errored"] + totals["incomplete"],
        extra={
            "guidellm_tpot_incl_first_ms": stat("time_per_output_token_ms", "mean"),
            "guidellm_requests_per_second_mean": stat("requests_per_second", "mean"),
        },
    )


def parse_vllmctl(report: dict[str, Any]) -> Reported:
    """`vllmctl bench -o json`: {"metrics": {"ttft_ms": {"mean", "median", ...}, "tpot_ms",
    "itl_ms", "request_throughput", "completed", "failed", ...}, "settings": ...}."""
    metrics = report.get("metrics", report)

    def number(*path: str) -> float | None:
        value: Any = metrics
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, int | float) else None

    return Reported(
        ttft_mean=number("ttft_ms", "mean"),
        ttft_median=number("ttft_ms", "median"),
        itl_mean=number("tpot_ms", "mean"),
        requests_per_second=number("request_throughput"),
        completed=_int(number("completed")),
        errors=_int(number("failed")),
        extra={"vllmctl_itl_mean_ms": number("itl_ms", "mean")},
    )


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


# --- running one tool ---


def run_tool(tool: Tool, server: StandIn, load: Load, phase: str, workdir: Path) -> Run:
    """One child process, its exit checked, its CPU and wall time and the stand-in's spend."""
    rundir = Path(tempfile.mkdtemp(dir=workdir))
    command = tool.command(server.base_url, load, rundir)
    sent_before, server_before = server.requests_seen(), server.cpu_seconds()
    load_average = os.getloadavg()[0]
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **tool.env}
    env.pop("VLLM_API_KEY", None)
    with open(rundir / "stdout", "w+b") as out, open(rundir / "stderr", "w+b") as err:
        start = time.monotonic()
        child = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    sent = server.requests_seen() - sent_before
    server_cpu = server.cpu_seconds() - server_before
    run = Run(tool.name, phase, load, wall, usage.ru_utime + usage.ru_stime, server_cpu, sent, None)
    run.load_average = load_average
    if child.returncode != 0:
        tail = (stderr.strip() or stdout.strip())[-600:]
        run.problem = f"exit {child.returncode}: {tail}"
        return run
    try:
        run.reported = tool.parse(stdout, rundir)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        run.problem = f"could not read its report ({exc!r}); stdout: {stdout[:300]!r}"
        return run
    if sent < load.requests:
        run.problem = f"the stand-in saw {sent} requests, {load.requests} were asked for"
    shutil.rmtree(rundir, ignore_errors=True)
    return run


def fixed_cpu(tool: Tool, server: StandIn, load: Load, workdir: Path) -> Run:
    """A run with one request per concurrent stream: the tool's fixed cost at this concurrency
    (start-up, workers, set-up, shut-down), which the full run's CPU is compared with."""
    small = Load(load.concurrency, load.concurrency, load.input_len, load.output_len)
    return run_tool(tool, server, small, "fixed", workdir)


def measure(tool: Tool, server: StandIn, load: Load, phase: str, workdir: Path) -> Run:
    """The run at `load`, with the fixed cost of the same concurrency measured just before."""
    print(f"  {tool.name}: {load.label()} ...", flush=True)
    fixed = fixed_cpu(tool, server, load, workdir)
    run = run_tool(tool, server, load, phase, workdir)
    if fixed.problem is None:
        run.fixed_cpu_s, run.fixed_requests = fixed.cpu_s, fixed.load.requests
    elif run.problem is None:
        run.problem = f"the {fixed.load.requests}-request run for the fixed cost failed: {fixed.problem}"
    return run


# --- output ---


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def per_core(cpu_ms_per_request: float | None) -> float | None:
    """Requests/s one core could drive at this CPU cost per request (an upper bound: it leaves
    out the fixed cost and assumes the server keeps up)."""
    return 1000 / cpu_ms_per_request if cpu_ms_per_request and cpu_ms_per_request > 0 else None


def print_table(title: str, runs: list[Run], note: str) -> None:
    header = [
        "tool",
        "load",
        "TTFT mean ms",
        "TTFT median ms",
        "ITL mean ms",
        "req/s",
        "wall s",
        "CPU s",
        "fixed CPU s",
        "CPU ms/req",
        "req/s per core",
        "client cores",
        "stand-in cores",
        "errors",
        "load avg",
    ]
    rows = []
    for run in runs:
        rep = run.reported
        rows.append(
            [
                run.tool,
                run.load.label(),
                fmt(rep.ttft_mean if rep else None),
                fmt(rep.ttft_median if rep else None),
                fmt(rep.itl_mean if rep else None),
                fmt(rep.requests_per_second if rep else None),
                fmt(run.wall_s),
                fmt(run.cpu_s, 2),
                fmt(run.fixed_cpu_s, 2),
                fmt(run.cpu_ms_per_request(), 2),
                fmt(per_core(run.cpu_ms_per_request()), 0),
                fmt(run.client_cores(), 2),
                fmt(run.server_cores(), 2),
                "-" if rep is None or rep.errors is None else str(rep.errors),
                fmt(run.load_average),
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}\n{note}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    for run in runs:
        if run.problem:
            print(f"  ! {run.tool} ({run.load.label()}): {run.problem}")


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def find_vllmctl(explicit: str | None) -> str | None:
    """The vllmctl to run: --vllmctl, else the one next to this Python, else on PATH."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "vllmctl"
    return str(beside) if beside.exists() else shutil.which("vllmctl")


def has_bench(executable: str) -> bool:
    """Whether this vllmctl has the `bench` command yet."""
    probe = subprocess.run([executable, "bench", "--help"], capture_output=True, text=True, check=False)
    return probe.returncode == 0


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guidellm", help="guidellm's executable (in its own environment)")
    parser.add_argument(
        "--guidellm-workers", type=int, help="GUIDELLM__MAX_WORKER_PROCESSES (guidellm's default: 10)"
    )
    parser.add_argument("--vllmctl", help="vllmctl's executable (default: beside this Python, else PATH)")
    parser.add_argument("--requests", type=int, default=64, help="requests per accuracy run")
    parser.add_argument("--concurrency", type=int_list, default=[1, 8], help="accuracy points")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--ttft", type=float, default=0.1, help="the stand-in's time to first token, s")
    parser.add_argument("--tokens-per-second", type=float, default=50.0, help="the stand-in's pacing")
    parser.add_argument("--ceiling", type=int_list, default=[1, 4, 16, 64], help="ceiling points")
    parser.add_argument("--ceiling-requests", type=int, default=600, help="requests per ceiling run")
    parser.add_argument("--ceiling-len", type=int, default=16, help="input and output tokens there")
    parser.add_argument("--skip", choices=["accuracy", "ceiling"], action="append", default=[])
    parser.add_argument("--tools", default="vllmctl,guidellm", help="which tools, comma-separated")
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()

    wanted = {t.strip() for t in args.tools.split(",")}
    tools: list[Tool] = []
    if "vllmctl" in wanted:
        vllmctl = find_vllmctl(args.vllmctl)
        if vllmctl is None or not has_bench(vllmctl):
            print(f"vllmctl bench: skipped ({vllmctl or 'no vllmctl found'} has no `bench` command)")
        else:
            tools.append(Vllmctl(vllmctl))
    if "guidellm" in wanted:
        if args.guidellm and Path(args.guidellm).exists():
            tools.append(Guidellm(args.guidellm, args.guidellm_workers))
        else:
            print("guidellm: skipped (pass --guidellm PATH to its executable; benchmarks/README.md)")
    if not tools:
        print("nothing to run", file=sys.stderr)
        return 1
    # The stand-in refuses prompt + max_tokens over max_model_len; its output is the echoed
    # prompt plus 8 words, so an output as long as asked needs input_len + 9 >= output_len.
    longest = max(args.input_len + args.output_len, 2 * args.ceiling_len)
    max_model_len = max(4096, 2 * longest)
    for length_in, length_out in [(args.input_len, args.output_len), (args.ceiling_len,) * 2]:
        if length_in + 9 < length_out:
            print(f"note: input {length_in} tokens give at most {length_in + 9} output tokens here")

    runs: list[Run] = []
    load_average = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load_average:.1f}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        workdir = Path(tmp)
        for tool in tools:
            tool.prepare(workdir)
        if "accuracy" not in args.skip:
            accuracy: list[Run] = []
            with stand_in(args.ttft, args.tokens_per_second, max_model_len) as server:
                # Point by point, the tools in turn, so that both meet the same machine load.
                for concurrency in args.concurrency:
                    load = Load(args.requests, concurrency, args.input_len, args.output_len)
                    accuracy += [measure(tool, server, load, "accuracy", workdir) for tool in tools]
            gap = 1000 / args.tokens_per_second if args.tokens_per_second else 0.0
            note = (
                f"stand-in pacing: TTFT {1000 * args.ttft:.1f} ms, then {gap:.1f} ms per token "
                f"({args.tokens_per_second:g} tokens/s); its own timer and event loop add a little."
            )
            print_table("Accuracy: each tool's own figures against the known pacing", accuracy, note)
            runs += accuracy
        if "ceiling" not in args.skip:
            ceiling: list[Run] = []
            with stand_in(0.0, 0.0, max_model_len) as server:
                for concurrency in args.ceiling:
                    load = Load(args.ceiling_requests, concurrency, args.ceiling_len, args.ceiling_len)
                    ceiling += [measure(tool, server, load, "ceiling", workdir) for tool in tools]
            note = (
                "stand-in unpaced. cores: CPU s / measured window (1.00 = one core busy); "
                f"this machine has {os.cpu_count()} for client and stand-in together."
            )
            print_table("Ceiling: requests/s with no pacing", ceiling, note)
            runs += ceiling
    if args.json:
        derived = [
            {
                **asdict(r),
                "cpu_ms_per_request": r.cpu_ms_per_request(),
                "client_cores": r.client_cores(),
                "server_cores": r.server_cores(),
            }
            for r in runs
        ]
        args.json.write_text(json.dumps(derived, indent=2) + "\n")
    return 1 if any(r.problem for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
