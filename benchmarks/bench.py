#!/usr/bin/env python3
"""Wall-clock benchmarks of the installed `vllmctl`, and of the old justfile's `list-models`.

Each benchmark runs a command as a subprocess (stdout and stderr captured, stdin from
/dev/null, NO_COLOR=1, no VLLM_* variables, bytecode caching on) a few times to warm up, then `--runs` times
timed, each run in a fresh temporary directory holding the models.yaml it needs. The
output of every run is checked; a command that fails or prints the wrong number of rows
stops the benchmark with exit code 1. Otherwise the exit code is 0 whatever the timings:
this is a report, not a test.

    python3 benchmarks/bench.py [--runs 15] [--vllmctl PATH] [--json results.json]

Version-manager shims (pyenv's `vllmctl`, `python3` and `just` are bash scripts that
start `pyenv exec`) are resolved to the programs they run, unless --keep-shims is given:
the shim's own start-up would otherwise be most of what is measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
OLD_JUSTFILE = HERE / "old-justfile"
MODELS_FILE = "models.yaml"
NEW_MODEL = "bench-new"
RUN_TIMEOUT_SECONDS = 300.0
OLD_RECIPE = "just list-models (old)"

# A check gets the run's result and the models.yaml bytes after it (None if absent) and
# returns a problem, or None when the run did what it should.
Check = Callable[[subprocess.CompletedProcess[str], bytes | None], str | None]


class SanityError(Exception):
    """A benchmarked command failed or printed the wrong thing."""


@dataclass(frozen=True)
class Target:
    """What a median must not exceed: a fixed number of ms, or another benchmark's median."""

    op: str  # "<=" or "<"
    ms: float | None = None
    benchmark: str | None = None

    def text(self) -> str:
        return f"{self.op} {self.ms:g} ms" if self.ms is not None else f"{self.op} {self.benchmark}"


@dataclass
class Result:
    name: str
    command: list[str]
    median_ms: float | None = None
    p90_ms: float | None = None
    min_ms: float | None = None
    runs: int = 0
    target: str = "-"
    target_ms: float | None = None
    verdict: str = "-"
    skipped: str | None = None
    samples_ms: list[float] = field(default_factory=list)


@dataclass
class Bench:
    name: str
    command: list[str]
    files: dict[str, bytes]  # written into the run's directory before every run (untimed)
    check: Check
    target: Target | None = None


# ---------------------------------------------------------------------------- models.yaml


def models_yaml(count: int) -> bytes:
    """A realistic models.yaml: a commented header, then `count` commented entries."""
    lines = [
        "# models.yaml: the models vllmctl serves, one list entry per model.",
        "#",
        "# Edit by hand or with `vllmctl add-model` / `remove-model` / `set-model`;",
        "# comments and layout are kept. Check the file with `vllmctl validate`.",
        f"# Benchmark catalog: {count} generated models.",
        "",
    ]
    dtypes = ("bfloat16", "float16", "auto")
    for i in range(1, count + 1):
        lines += [
            f"# model {i}: {'large' if i % 10 == 0 else 'small'} test model",
            f"- name: model-{i:04d}",
            f"  modelURL: org/model-{i}",
            f"  replicaCount: {1 + i % 3}",
            f"  requestCPU: {4 + 2 * (i % 4)}",
            "  requestMemory: 16Gi",
            f"  requestGPU: {1 + i % 2}",
            "  pvcStorage: 50Gi",
            "  vllmConfig:",
            f"    maxModelLen: {4096 * (1 + i % 4)}",
            f"    dtype: {dtypes[i % len(dtypes)]}",
            "",
        ]
    return "\n".join(lines).encode()


def model_names(data: bytes | None) -> list[str]:
    """The `- name:` values of a models.yaml in the layout above (good enough for checks)."""
    return re.findall(r"^- name: (\S+)$", (data or b"").decode(), flags=re.MULTILINE)


# ---------------------------------------------------------------------------- checks


def _status(proc: subprocess.CompletedProcess[str]) -> str | None:
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return f"exit code {proc.returncode}: {' / '.join(tail) or '(no output)'}"
    return None


def check_stdout_contains(text: str) -> Check:
    def check(proc: subprocess.CompletedProcess[str], _after: bytes | None) -> str | None:
        problem = _status(proc)
        if problem is None and text not in proc.stdout:
            problem = f"stdout does not contain {text!r}: {proc.stdout[:200]!r}"
        return problem

    return check


def check_table(count: int) -> Check:
    """stdout is a header line starting with NAME, then one row per model, in order."""

    def check(proc: subprocess.CompletedProcess[str], _after: bytes | None) -> str | None:
        problem = _status(proc)
        if problem:
            return problem
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if not lines or not lines[0].split() or lines[0].split()[0] != "NAME":
            return f"no NAME header in stdout: {proc.stdout[:200]!r}"
        rows = [line.split()[0] for line in lines[1:]]
        expected = [f"model-{i:04d}" for i in range(1, count + 1)]
        if len(rows) != count:
            return f"{len(rows)} rows in stdout, expected {count}"
        if rows != expected:
            wrong = next(i for i, (a, b) in enumerate(zip(rows, expected, strict=True)) if a != b)
            return f"row {wrong + 1} is {rows[wrong]!r}, expected {expected[wrong]!r}"
        return None

    return check


def check_models(expected: list[str]) -> Check:
    """The command exited 0 and left models.yaml holding exactly `expected`, in order."""

    def check(proc: subprocess.CompletedProcess[str], after: bytes | None) -> str | None:
        problem = _status(proc)
        if problem:
            return problem
        names = model_names(after)
        if names != expected:
            missing = [n for n in expected if n not in names][:3]
            extra = [n for n in names if n not in expected][:3]
            return (
                f"models.yaml has {len(names)} models, expected {len(expected)} "
                f"(missing {missing}, extra {extra})"
            )
        return None

    return check


# ---------------------------------------------------------------------------- running


def child_env() -> dict[str, str]:
    # As a user runs it: bytecode cached (pip compiles it at install time). A shell that
    # sets PYTHONDONTWRITEBYTECODE would make every run recompile vllmctl from source.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("VLLM_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["NO_COLOR"] = "1"
    return env


Run = tuple[float, subprocess.CompletedProcess[str], bytes | None]


def run_once(bench: Bench, env: dict[str, str]) -> Run:
    """One run in a fresh directory: (seconds, result, models.yaml bytes afterwards)."""
    with tempfile.TemporaryDirectory(prefix="vllmctl-bench-") as tmp:
        directory = Path(tmp)
        for name, data in bench.files.items():
            (directory / name).write_bytes(data)
        start = time.perf_counter()
        proc = subprocess.run(
            bench.command,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        elapsed = time.perf_counter() - start
        models = directory / MODELS_FILE
        after = models.read_bytes() if models.exists() else None
    return elapsed, proc, after


def measure(bench: Bench, runs: int, warmup: int, env: dict[str, str]) -> Result:
    print(f"  {bench.name} ...", end="", file=sys.stderr, flush=True)
    samples: list[float] = []
    for i in range(warmup + runs):
        try:
            elapsed, proc, after = run_once(bench, env)
        except subprocess.TimeoutExpired:
            raise SanityError(f"{bench.name}: no answer after {RUN_TIMEOUT_SECONDS:g} s") from None
        except OSError as exc:
            raise SanityError(f"{bench.name}: cannot run {bench.command[0]}: {exc}") from None
        problem = bench.check(proc, after)
        if problem:
            raise SanityError(f"{bench.name} (run {i + 1}, {' '.join(bench.command)}): {problem}")
        if i >= warmup:
            samples.append(elapsed * 1000.0)
    ordered = sorted(samples)
    result = Result(
        name=bench.name,
        command=bench.command,
        median_ms=statistics.median(ordered),
        p90_ms=ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)],  # nearest rank
        min_ms=ordered[0],
        runs=len(ordered),
        samples_ms=[round(s, 3) for s in samples],
    )
    print(f" {result.median_ms:.1f} ms", file=sys.stderr)
    return result


def judge(results: list[Result], targets: dict[str, Target]) -> None:
    medians = {r.name: r.median_ms for r in results if r.median_ms is not None}
    for result in results:
        target = targets.get(result.name)
        if target is None or result.median_ms is None:
            continue
        limit = target.ms if target.ms is not None else medians.get(target.benchmark or "")
        if limit is None:
            result.target = f"{target.text()} (not measured)"
            continue
        result.target = target.text() if target.ms is not None else f"{target.text()} ({limit:.1f} ms)"
        result.target_ms = limit
        within = result.median_ms <= limit if target.op == "<=" else result.median_ms < limit
        result.verdict = "ok" if within else "SLOW"


# ---------------------------------------------------------------------------- programs


def resolve_shim(path: str) -> str:
    """The program a pyenv shim would run, or `path` itself when it is not a shim."""
    try:
        with open(path, "rb") as f:
            head = f.read(2048)
    except OSError:
        return path
    match = re.search(rb'exec "([^"\n]+/pyenv)" exec', head)
    if not head.startswith(b"#!") or match is None:
        return path
    proc = subprocess.run(
        [match.group(1).decode(), "which", Path(path).name],
        capture_output=True,
        text=True,
        check=False,
    )
    target = proc.stdout.strip()
    return target if proc.returncode == 0 and target and Path(target).is_file() else path


def find_program(name: str, keep_shims: bool) -> str | None:
    found = shutil.which(name)
    if found is None:
        return None
    return found if keep_shims else resolve_shim(found)


def script_interpreter(path: str) -> str | None:
    """The Python a console script starts (its #! line), if it is a Python script."""
    try:
        with open(path, "rb") as f:
            first = f.readline(4096).decode(errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if parts and Path(parts[0]).name == "env" and len(parts) > 1:
        parts = parts[1:]
        resolved = shutil.which(parts[0])
        parts[0] = resolved or parts[0]
    if parts and "python" in Path(parts[0]).name and Path(parts[0]).is_file():
        return parts[0]
    return None


def yq_flavor(yq: str) -> tuple[str | None, str]:
    """('go' | 'python' | None, description) from `yq --version`."""
    try:
        proc = subprocess.run([yq, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"yq --version failed: {exc}"
    version = (proc.stdout + proc.stderr).strip().splitlines()
    text = version[0] if version else ""
    if "mikefarah" in text:
        major = re.search(r"version v?(\d+)", text)
        if major and int(major.group(1)) < 4:
            return None, f"{text} (Go yq before v4 is not supported)"
        return "go", text
    if proc.returncode == 0 and re.match(r"yq \d", text):
        if shutil.which("jq") is None:
            return None, f"{text} (Python yq, but jq is not on PATH)"
        return "python", f"{text} (Python yq, jq wrapper)"
    return None, f"unrecognised yq: {text!r}"


# ---------------------------------------------------------------------------- main


def render_table(results: list[Result]) -> str:
    headers = ("benchmark", "median ms", "p90 ms", "min ms", "runs", "target", "verdict")
    rows: list[tuple[str, ...]] = []
    for r in results:
        if r.skipped is not None:
            rows.append((r.name, r.skipped, "", "", "", "", ""))
            continue
        rows.append(
            (
                r.name,
                f"{r.median_ms:.1f}",
                f"{r.p90_ms:.1f}",
                f"{r.min_ms:.1f}",
                str(r.runs),
                r.target,
                r.verdict,
            )
        )
    numeric = {1, 2, 3, 4}
    widths = [len(h) for h in headers]
    for row in rows:
        if len(row) > 1 and row[2] == "":  # a skipped row: its message may overflow
            widths[0] = max(widths[0], len(row[0]))
            continue
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            right = i in numeric and cell[:1].isdigit()
            out.append(cell.rjust(width) if right else cell.ljust(width))
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs per benchmark (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--vllmctl", metavar="PATH", help="the vllmctl to run (default: vllmctl on PATH)")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--keep-shims", action="store_true", help="run pyenv shims as found on PATH instead of resolving them"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    return args


Plan = tuple[list[Bench], dict[str, Target], dict[str, str]]


def build(args: argparse.Namespace, notes: list[str]) -> Plan:
    meta: dict[str, str] = {}
    if args.vllmctl:
        found = shutil.which(args.vllmctl) or args.vllmctl
        vllmctl = str(Path(found).resolve()) if Path(found).exists() else found
    else:
        on_path = shutil.which("vllmctl")
        if on_path is None:
            raise SanityError("vllmctl is not on PATH; install it (pip install -e .) or give --vllmctl PATH")
        vllmctl = on_path if args.keep_shims else resolve_shim(on_path)
        if vllmctl != on_path:
            notes.append(f"vllmctl on PATH is a pyenv shim ({on_path}); timed {vllmctl} instead")
    if not Path(vllmctl).is_file():
        raise SanityError(f"{vllmctl} is not a file")
    python = script_interpreter(vllmctl) or find_program("python3", args.keep_shims) or sys.executable
    meta["vllmctl"] = vllmctl
    meta["python"] = python

    small, large = models_yaml(20), models_yaml(1000)
    large_names = model_names(large)
    if len(large_names) != 1000 or len(model_names(small)) != 20:
        raise SanityError("the generated models.yaml files do not hold 20 and 1,000 models")

    benches = [
        Bench("python3 -c pass", [python, "-c", "pass"], {}, check_stdout_contains("")),
        Bench("vllmctl --version", [vllmctl, "--version"], {}, check_stdout_contains("vllmctl ")),
        Bench("vllmctl --help", [vllmctl, "--help"], {}, check_stdout_contains("list-models")),
        Bench("list-models @20", [vllmctl, "list-models"], {MODELS_FILE: small}, check_table(20)),
        Bench("list-models @1000", [vllmctl, "list-models"], {MODELS_FILE: large}, check_table(1000)),
        Bench(
            "add-model @1000",
            [
                vllmctl,
                "add-model",
                "--yes",
                "--offline",
                "--name",
                NEW_MODEL,
                "--model-url",
                f"org/{NEW_MODEL}",
            ],
            {MODELS_FILE: large},
            check_models([*large_names, NEW_MODEL]),
        ),
        Bench("render @1000", [vllmctl, "render"], {MODELS_FILE: large}, check_stdout_contains("modelSpec:")),
        # Its models.yaml (the large one plus bench-new) is filled in after add-model has run.
        Bench(
            "remove-model @1000",
            [vllmctl, "remove-model", "--yes", NEW_MODEL],
            {},
            check_models(large_names),
        ),
    ]
    targets = {
        "vllmctl --version": Target("<=", 80),
        "render @1000": Target("<=", 500),
        "vllmctl --help": Target("<=", 80),
        "list-models @20": Target("<", benchmark=OLD_RECIPE),
        "list-models @1000": Target("<=", 250),
        "add-model @1000": Target("<=", 400),
        "remove-model @1000": Target("<=", 400),
    }

    just = find_program("just", args.keep_shims)
    yq = shutil.which("yq")
    skip = ""
    if just is None or yq is None:
        skip = "skipped (just/yq not found)"
    else:
        flavor, description = yq_flavor(yq)
        meta["yq"] = f"{yq}: {description}"
        meta["just"] = just
        if flavor is None:
            skip = "skipped (no usable yq)"
            notes.append(f"old recipe not run: {description}")
        elif shutil.which("column") is None:
            skip = "skipped (column not found)"
        else:
            benches.append(
                Bench(
                    OLD_RECIPE,
                    [just, "--justfile", str(OLD_JUSTFILE), "--working-directory", ".", "list-models"],
                    {MODELS_FILE: small},
                    check_table(20),
                )
            )
            meta["yq_flavor"] = flavor
    if skip:
        benches.append(Bench(OLD_RECIPE, [], {}, check_stdout_contains(""), None))
        meta["old_recipe_skipped"] = skip
    return benches, targets, meta


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    results: list[Result] = []
    try:
        benches, targets, meta = build(args, notes)
        env = child_env()
        if "yq_flavor" in meta:
            env["YQ_FLAVOR"] = meta["yq_flavor"]
        print(f"vllmctl: {meta['vllmctl']}\npython:  {meta['python']}", file=sys.stderr)
        if "yq" in meta:
            print(f"yq:      {meta['yq']}", file=sys.stderr)
        print(f"{args.warmup} warm-up + {args.runs} timed runs each:", file=sys.stderr)
        by_name = {bench.name: bench for bench in benches}
        add, remove = by_name["add-model @1000"], by_name["remove-model @1000"]
        for bench in benches:
            if not bench.command:
                results.append(Result(bench.name, [], skipped=meta.get("old_recipe_skipped")))
                continue
            if bench is remove:  # its models.yaml: what add-model writes (bench-new last)
                _, proc, after = run_once(add, env)
                if proc.returncode != 0 or after is None:
                    raise SanityError(f"add-model (preparing remove-model): {_status(proc)}")
                bench.files = {MODELS_FILE: after}
            results.append(measure(bench, args.runs, args.warmup, env))
        # Byte-exact edits: removing what add-model added should give the original back.
        _, _, removed = run_once(remove, env)
        if removed != add.files[MODELS_FILE]:
            notes.append("add-model then remove-model did not give back the original models.yaml bytes")
    except SanityError as exc:
        if results:
            print(render_table(results), end="")
        print(f"SANITY CHECK FAILED: {exc}", file=sys.stderr)
        return 1

    judge(results, targets)
    print(render_table(results), end="")
    for note in notes:
        print(f"note: {note}")
    if args.json:
        payload = {
            "meta": {
                **meta,
                "runs": args.runs,
                "warmup": args.warmup,
                "python_running_bench": sys.version.split()[0],
                "platform": platform.platform(),
                "tempdir": tempfile.gettempdir(),
                "notes": notes,
            },
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
