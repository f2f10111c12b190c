"""`vllmctl config`: every setting, its value and where it came from."""

from __future__ import annotations

from typing import Any

from vllmctl.cli.options import command
from vllmctl.ui import App


@command("config")
def show_config(app: App) -> None:
    """Show the resolved settings and where each came from.

    The source is flag, env, default, or vllmctl.yaml (env NAME) for a value the selected
    environment gives. Secrets are never shown, not even in part.
    """
    from vllmctl.settings import SPECS, masked

    settings = app.settings
    rows = [
        {
            "name": spec.name,
            "env": spec.env,
            "value": masked(spec, settings.raw(spec.name)),
            "source": settings.source(spec.name),
        }
        for spec in SPECS
    ]
    decided = _decided(settings)
    for row in rows:
        row.update(decided.get(str(row["name"]), {}))
    app.emit(
        rows,
        lambda: app.table(
            ("setting", "env", "value", "source"),
            [(r["name"], r["env"], "" if r["value"] is None else r["value"], r["source"]) for r in rows],
        ),
    )
    settings.check_names()  # shown as given; then a name Kubernetes or helm would refuse stops here


def _decided(settings: Any) -> dict[str, dict[str, str | None]]:
    """Settings whose value vllmctl decides when none is given: the chart version (a local
    chart's own, else VLLM_CHART_VERSION, else the newest tested; a deployed release's own
    is known only to commands that ask the cluster) and the router tag that goes with it."""
    from vllmctl.chart.version import router_tag_for
    from vllmctl.core.errors import VllmctlError

    try:
        chart = settings.chart_target
    except VllmctlError as e:
        return {"chart_version": {"value": None, "source": f"error: {e.message}"}}
    decided: dict[str, dict[str, str | None]] = {
        "chart_version": {"value": chart.version, "source": chart.source}
    }
    if settings.raw("router_tag") is None:
        tag = router_tag_for(chart.version)
        known = (
            f"default: released with chart {chart.version}"
            if tag
            else f"none known for chart {chart.version}"
        )
        decided["router_tag"] = {"value": tag, "source": known}
    return decided


COMMANDS = {c.name: c for c in (show_config,)}
