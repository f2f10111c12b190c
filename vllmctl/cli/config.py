"""`vllmctl config`: every setting, its value and where it came from."""

from __future__ import annotations

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
    app.emit(
        rows,
        lambda: app.table(
            ("setting", "env", "value", "source"),
            [(r["name"], r["env"], "" if r["value"] is None else r["value"], r["source"]) for r in rows],
        ),
    )
    settings.check_names()  # shown as given; then a name Kubernetes or helm would refuse stops here


COMMANDS = {c.name: c for c in (show_config,)}
