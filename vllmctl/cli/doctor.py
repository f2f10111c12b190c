"""doctor: one report of everything that would make a deployment fail, each with its fix."""

from __future__ import annotations

import sys

import click

from vllmctl.cli.options import backend_option, command
from vllmctl.ui import App, _paint

MARKS = {"ok": ("ok", "32"), "warn": ("warn", "33"), "fail": ("FAIL", "31"), "skip": ("skip", "2")}
AREAS = {
    "tools": "Tools",
    "cluster": "Cluster",
    "secrets": "Secrets",
    "release": "Release",
    "gpus": "GPUs",
    "hub": "HuggingFace Hub",
}


@command("doctor")
@click.option("--strict", is_flag=True, help="exit 1 on warnings too (for CI gates)")
@click.option(
    "--offline",
    is_flag=True,
    help="do not ask the HuggingFace Hub (no access or memory checks) or the chart repository's index",
)
@backend_option
def doctor(app: App, strict: bool, offline: bool) -> None:
    """Check tools, cluster, secrets, models and GPU fit before deploying; each problem with its fix.

    \b
    Exit 0: nothing failed (warnings allowed); 1: warnings, with --strict; 2: a check failed.
    The old justfile's check-prerequisites, grown up. -o json for scripts.
    """
    from vllmctl.doctor import diagnose

    report = diagnose(app.settings, hub=not offline)
    app.emit(report.as_json(), lambda: _show(report))
    sys.exit(report.exit_code(strict))


def _show(report: object) -> None:
    from vllmctl.core.findings import Report

    assert isinstance(report, Report)
    out = sys.stdout
    width = max((len(c.name) for c in report.checks), default=0)
    for area, title in AREAS.items():
        checks = [c for c in report.checks if c.area == area]
        if not checks:
            continue
        print(title)
        for check in checks:
            word, colour = MARKS[check.status]
            print(f"  {_paint(f'{word:<4}', colour, out)}  {check.name:<{width}}  {check.detail}")
            if check.fix and check.status in ("warn", "fail"):
                print(f"  {'':<4}  {'':<{width}}  fix: {check.fix}")
    if report.models:
        print("Models")
        width = max(len(row.name) for row in report.models)
        for row in report.models:
            cells = (("GPUs", row.gpus), ("Hub", row.access), ("memory", row.memory))
            for i, (label, (status, text)) in enumerate(cells):
                word, colour = MARKS[status]
                name = row.name if i == 0 else ""
                print(f"  {_paint(f'{word:<4}', colour, out)}  {name:<{width}}  {label:<6}  {text}")
            for fix in row.fixes:
                print(f"  {'':<4}  {'':<{width}}  fix: {fix}")
    print(report.summary())


COMMANDS = {"doctor": doctor}
