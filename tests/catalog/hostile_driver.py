"""Runs vllmctl commands one after another in this process, for test_hostile.py.

Started as a subprocess (so the test can read its peak memory from the kernel), in the
directory holding the files: reads a JSON list of argument lists on stdin and prints, per
command, its exit code, output and the CPU seconds it took, and the process's peak RSS
in MB (as the kernel counts it), as JSON on stdout.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from click.testing import CliRunner

from vllmctl.cli import cli


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    results = []
    for argv in json.load(sys.stdin):
        before = cpu_seconds()
        result = CliRunner().invoke(cli, argv)
        results.append(
            {
                "argv": argv,
                "exit_code": result.exit_code,
                "stdout": result.stdout,
                "stderr": result.stderr,
                # An exception click's runner caught: vllmctl's handler let it through.
                "escaped": None
                if result.exception is None or isinstance(result.exception, SystemExit)
                else repr(result.exception),
                "cpu_seconds": cpu_seconds() - before,
            }
        )
    json.dump({"results": results, "peak_mb": peak_mb()}, sys.stdout)


def peak_mb() -> float:
    """This process's peak resident memory. ru_maxrss would do, but Linux carries the
    parent's figure over a fork and exec (a pytest worker's 100 MB), while VmHWM is the
    high-water mark of this program's own memory."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # bytes on macOS
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) / 1024


if __name__ == "__main__":
    main()
