#!/usr/bin/env python3
"""Start-up and rendering of this checkout against another revision, timed in turns.

`bench.py` times one installed vllmctl; comparing two of its runs taken minutes apart
mixes in whatever else the machine did meanwhile (on a shared 2-core machine that is often
more than the change being measured). This script checks the other revision out into a
temporary git worktree, and this checkout (with its uncommitted changes: `git stash create`)
into another beside it, so that both load from the same file system and the same kind of
fresh tree; it runs both with the same interpreter, alternating run by run
(`python -m vllmctl` with PYTHONPATH set to each tree, each first in every other round),
so that both see the same load.
It prints the median of each and the change. A report, not a test: exit code 0 whatever
the timings, 1 when a command fails.

    python3 benchmarks/bench_compare.py REV [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL_COUNT = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the revision to compare with (a commit, branch or tag)")
    parser.add_argument("--runs", type=int, default=21, help="timed runs of each command per tree")
    args = parser.parse_args()
    here = _git("stash", "create") or _git("rev-parse", "HEAD")  # a commit of the working tree
    with tempfile.TemporaryDirectory(prefix="vllmctl-compare-") as scratch:
        work = Path(scratch)
        trees = {args.rev: work / "other", "this checkout": work / "this"}
        made = []
        try:
            for tree, rev in zip(trees.values(), (args.rev, here), strict=True):
                _git("worktree", "add", "-q", "--detach", str(tree), rev)
                made.append(tree)
            return _compare(trees, work, args.runs)
        finally:
            for tree in made:
                _git("worktree", "remove", "--force", str(tree))


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _compare(trees: dict[str, Path], work: Path, runs: int) -> int:
    small = work / "models-20.yaml"
    small.write_bytes((REPO / "models.example.yaml").read_bytes())
    large = work / "models-1000.yaml"
    large.write_text(
        "".join(
            f"- name: m{i}\n  modelURL: Qwen/Qwen2.5-0.5B-Instruct\n  gated: false\n  requestGPU: 1\n"
            for i in range(MODEL_COUNT)
        )
    )
    cases = {
        "--help": ["--help"],
        "list-models @example": ["--models", str(small), "list-models"],
        f"list-models @{MODEL_COUNT}": ["--models", str(large), "list-models"],
        f"render @{MODEL_COUNT}": ["--models", str(large), "render"],
    }
    times: dict[tuple[str, str], list[float]] = {(tree, case): [] for tree in trees for case in cases}
    # Bytecode caching on, as users have it (PYTHONDONTWRITEBYTECODE, set on some machines,
    # would have every run compile every module: code size, not start-up, measured), and
    # both trees compiled before the first run.
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith("VLLM_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    for root in trees.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "vllmctl")], check=True)
    for round_ in range(runs + 1):  # the first round warms the bytecode caches, untimed
        for case, argv in cases.items():
            # each tree goes first in every other round: whatever the run before leaves warm
            # (the page cache, the CPU's clock) favours neither
            ordered = list(trees.items()) if round_ % 2 else list(reversed(trees.items()))
            for tree, root in ordered:
                env = {**base_env, "PYTHONPATH": str(root), "NO_COLOR": "1"}
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "vllmctl", *argv],
                    env=env,
                    cwd=work,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                )
                elapsed = (time.perf_counter() - start) * 1000
                if done.returncode != 0:
                    print(
                        f"{tree}: vllmctl {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}"
                    )
                    return 1
                if round_:
                    times[(tree, case)].append(elapsed)
    names = list(trees)
    print(f"{'median ms':24s}" + "".join(f"{name:>16s}" for name in names) + f"{'change':>10s}")
    for case in cases:
        first, second = (statistics.median(times[(name, case)]) for name in names)
        print(f"{case:24s}{first:16.1f}{second:16.1f}{(second - first) / first:+10.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
