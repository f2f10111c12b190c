#!/usr/bin/env python3
"""Time and peak memory of `vllmctl validate` on hostile models.yaml files (issue 14).

Each input is written to a fresh temporary directory and `vllmctl validate` runs on it
as a subprocess, `--runs` times; the child's CPU time and peak RSS come from the kernel
(`os.wait4`), the wall time from a monotonic clock. Every run's exit code and message are
checked (a wrong result stops the benchmark with exit 1); timings never fail it.

    python3 benchmarks/bench_hostile.py [--runs 5] [--vllmctl PATH] [--json FILE]

The inputs: the nested-alias files of the report (8 and 9 levels of nine aliases,
530-583 bytes), nesting 100,000 levels deep (flow) and 400 levels deep (block), a 50 MB
file, the largest file vllmctl reads (just under 1 MiB of models, which is parsed and
validated in full; once with flow lists, which also get the event scan), and a
1,000-model file for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

MAX_FILE_BYTES = 1024 * 1024  # vllmctl.core.fileio.MAX_FILE_BYTES
ENTRY = "- name: m{i}\n  modelURL: org/m{i}\n  replicaCount: 1\n  requestMemory: 16Gi\n"
FLOW_ENTRY = "- name: m{i}\n  modelURL: org/m{i}\n  vllmConfig: {{extraArgs: [--a]}}\n"


class Input(NamedTuple):
    name: str
    make: Callable[[], bytes]
    exit_code: int
    expect: str  # a phrase of the output


def aliases(levels: int) -> bytes:
    lines = ["- name: a", "  modelURL: org/a", "  annotations:", "    x0: &l0 [lol]"]
    lines += [f"    x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return ("\n".join(lines) + "\n").encode()


def deep_flow() -> bytes:
    depth = 100_000
    return b"- name: a\n  modelURL: org/a\n  annotations: {x: " + b"[" * depth + b"]" * depth + b"}\n"


def deep_block() -> bytes:
    lines = [f"{'  ' * (level + 2)}k{level}:" for level in range(400)]
    return b"- name: a\n  modelURL: org/a\n  annotations:\n" + "\n".join(lines).encode() + b" end\n"


def models(count: int, entry: str = ENTRY) -> bytes:
    return "".join(entry.format(i=i) for i in range(count)).encode()


def largest_accepted(entry: str = ENTRY) -> bytes:
    """Models up to just under the size limit; with flow lists, every read scans events too."""
    return models((MAX_FILE_BYTES - 1024) // len(entry.format(i=99999)), entry)


def fifty_megabytes() -> bytes:
    return models(50 * 1024 * 1024 // len(ENTRY.format(i=99999)))


INPUTS = [
    Input("aliases, 8 levels", lambda: aliases(8), 2, "past 100,000 repeated values"),
    Input("aliases, 9 levels", lambda: aliases(9), 2, "past 100,000 repeated values"),
    Input("flow nesting, 100,000 deep", deep_flow, 2, "nested more than 100 levels"),
    Input("block nesting, 400 deep", deep_block, 2, "nested more than 100 levels"),
    Input("50 MB file", fifty_megabytes, 2, "larger than 1 MiB"),
    Input("largest file read (1 MiB, terse models)", largest_accepted, 0, "is valid"),
    Input("largest file read (1 MiB, flow lists)", lambda: largest_accepted(FLOW_ENTRY), 0, "is valid"),
    Input("1,000 models (for comparison)", lambda: models(1000), 0, "is valid: 1000 models"),
]


class Run(NamedTuple):
    wall: float
    cpu: float
    peak_mb: float


def run_once(vllmctl: str, directory: Path, expected: Input) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env["NO_COLOR"] = "1"
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        child = subprocess.Popen(
            [vllmctl, "validate"], cwd=directory, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if child.returncode != expected.exit_code or expected.expect not in text:
        wanted = f"expected {expected.exit_code} and {expected.expect!r}"
        raise SystemExit(f"{expected.name}: exit {child.returncode}, {wanted}:\n{text[:2000]}")
    # ru_maxrss is in KB on Linux. (It starts from this small script's own RSS at the fork.)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def write_input(case: Input, path: Path) -> int:
    """Write the input from a child process: Linux carries a parent's peak RSS over fork and
    exec into the child's ru_maxrss, so this process must never hold a 50 MB input."""
    subprocess.run([sys.executable, __file__, "--write", case.name, str(path)], check=True)
    return path.stat().st_size


def main() -> None:
    if sys.argv[1:2] == ["--write"]:
        name, path = sys.argv[2:4]
        Path(path).write_bytes(next(case for case in INPUTS if case.name == name).make())
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vllmctl", default=shutil.which("vllmctl") or "vllmctl")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = []
    print(f"{'input':<45} {'bytes':>12} {'wall ms':>9} {'cpu ms':>8} {'peak MB':>8}")
    for case in INPUTS:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            size = write_input(case, directory / "models.yaml")
            runs = [run_once(args.vllmctl, directory, case) for _ in range(args.runs)]
        row = {
            "input": case.name,
            "bytes": size,
            "wall_ms_median": round(statistics.median(r.wall for r in runs) * 1000),
            "cpu_ms_median": round(statistics.median(r.cpu for r in runs) * 1000),
            "peak_mb_max": round(max(r.peak_mb for r in runs), 1),
        }
        rows.append(row)
        print(
            f"{case.name:<45} {size:>12,} {row['wall_ms_median']:>9} {row['cpu_ms_median']:>8} "
            f"{row['peak_mb_max']:>8}"
        )
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
