"""Commands that read and edit models.yaml: list, remove, show, set, validate (add-model,
whose flags are built from its questions, is in cli/add_model.py, so these load none of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vllmctl.cli.options import command, complete_model_names
from vllmctl.ui import App

EXAMPLE_NAME = "models.example.yaml"


def example_bytes() -> bytes:
    from importlib.resources import files

    return (files("vllmctl") / "data" / EXAMPLE_NAME).read_bytes()


def _missing_hint(path: Path) -> str:
    return (
        f"{path} does not exist yet. Start from the example (cp {EXAMPLE_NAME} {path}) "
        "or run `vllmctl add-model`, which creates it."
    )


def base_file_only(app: App, command: str) -> None:
    """Editing commands change models.yaml, which every environment shares: with an
    environment selected they refuse rather than guess which file was meant."""
    from vllmctl.catalog.environments import overlay_path
    from vllmctl.core.errors import UsageError
    from vllmctl.core.setting_names import ENV_ENVIRONMENT

    settings = app.settings
    name = settings.raw("env")
    if not name:
        return
    if settings.source("env") == "flag":
        selected, without = f"--env {name}", "run it without --env"
    else:
        selected, without = f"{ENV_ENVIRONMENT}={name}", f"run it with {ENV_ENVIRONMENT} unset"
    path = settings.models_path
    raise UsageError(
        f"{command} edits {path}, which every environment shares, but {selected} selects the "
        f"environment {name!r}. To change every environment, {without}; to change {name} alone, "
        f"edit {overlay_path(path, name)} (docs/environments.md). Nothing was changed."
    )


def seen_catalog(app: App, catalog: Any) -> Any:
    """What the user's answers were based on: the file as read before prompting, if we did."""
    from vllmctl.catalog.store import ANY_CONTENT

    return catalog.raw if app.interactive else ANY_CONTENT


def _load_existing(app: App, *, editing: bool = False) -> Any:
    """The catalog (models.yaml, or with --env the environment's merge); `editing`: models.yaml."""
    from vllmctl.catalog.selected import load_selected
    from vllmctl.catalog.store import load
    from vllmctl.core.errors import CatalogError

    path = app.settings.models_path
    catalog = load(path) if editing else load_selected(app.settings)
    if not catalog.exists:
        raise CatalogError(_missing_hint(path))
    return catalog


@command("list-models")
def list_models(app: App) -> None:
    """List the models in models.yaml (-o json for scripts)."""
    from vllmctl.catalog.selected import load_selected

    path = app.settings.models_path
    catalog = load_selected(app.settings)
    if not catalog.exists:
        app.info(_missing_hint(path))
        if app.output != "table":
            app.emit([], lambda: None)
        return
    catalog.require_valid()
    models = [m.effective() for m in catalog.models]

    def table() -> None:
        from vllmctl.features.autoscaling import bounds

        def replicas(entry: dict[str, Any]) -> Any:
            limits = bounds(entry)  # autoscaled: min-max
            return f"{limits[0]}-{limits[1]}" if limits else entry["replicaCount"]

        if not models:
            app.info(f"No models in {path} yet; add one with `vllmctl add-model`.")
            return
        rows = [
            (
                m["name"],
                m["modelURL"],
                m["requestGPU"],
                replicas(m),
                m["requestMemory"],
                m["pvcStorage"],
            )
            for m in models
        ]
        app.table(("name", "model url", "gpus", "replicas", "memory", "storage"), rows)

    app.emit(models, table)


@command("remove-model")
@click.argument("name", required=False, shell_complete=complete_model_names)
def remove_model(app: App, name: str | None) -> None:
    """Remove a model from models.yaml.

    Choose from a list when NAME is omitted; asks to confirm unless --yes.
    """
    from vllmctl.catalog.store import apply_edit, removing
    from vllmctl.core.errors import UsageError

    base_file_only(app, "remove-model")
    catalog = _load_existing(app, editing=True)
    path = catalog.path
    if name is None:
        names = catalog.names()
        if not names:
            raise UsageError(f"{path} has no models to remove.")
        if not app.interactive:
            raise UsageError("give the model to remove: vllmctl remove-model NAME.")
        name = app.ask_select("Model to remove", names)
    catalog.index_of(name)  # a clear error for an unknown name, before asking to confirm
    if not app.confirm(f"Remove {name} from {path}?", default=False):
        app.info("Nothing was changed.")
        return
    apply_edit(path, removing(name), based_on=seen_catalog(app, catalog), parsed=catalog)
    app.success(f"Removed {name} from {path}.")
    app.info("Apply it to the cluster with `vllmctl upgrade`.")


@command("show-model")
@click.argument("name", shell_complete=complete_model_names)
def show_model(app: App, name: str) -> None:
    """Show one model's fields, with vllmctl's defaults filled in."""
    from vllmctl.catalog.constants import DEFAULTS

    model = _load_existing(app).model(name)
    effective = model.effective()

    def table() -> None:
        rows = []
        for key, value in _flatten(effective):
            rows.append((key, value, "(default)" if key in DEFAULTS and key not in model.data else ""))
        app.table(("field", "value", ""), rows)

    app.emit(effective, table)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", _inline(value)))
    return rows


def _inline(value: Any) -> str:
    import json

    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


@command("set-model")
@click.argument("name", shell_complete=complete_model_names)
@click.argument("assignments", nargs=-1, required=True, metavar="KEY.PATH=VALUE...")
def set_model(app: App, name: str, assignments: tuple[str, ...]) -> None:
    """Set fields of one model: set-model NAME KEY.PATH=VALUE...

    For example: set-model llama3 replicaCount=2 vllmConfig.maxModelLen=8192

    VALUE is read as YAML: 2 is a number, true a boolean, '"2"' a string.
    """
    from vllmctl.catalog.store import apply_edit, setting

    base_file_only(app, "set-model")
    parsed = [_parse_assignment(text) for text in assignments]
    catalog = _load_existing(app, editing=True)
    catalog.model(name)  # the file must be valid and hold the model
    edited = apply_edit(catalog.path, setting(name, parsed), parsed=catalog)
    changes = ", ".join(assignments)
    app.success(f"Set {changes} on {name} in {catalog.path}.")
    _warn_for_chart(app, edited, name)


def _warn_for_chart(app: App, catalog: Any, name: str) -> None:
    """The edit is valid models.yaml, but the chart install would use may not read what it
    set (a key from a newer chart): said now, not first at install. Not refused, since
    models.yaml may be getting ready for a chart upgrade. `catalog`: the file as written."""
    from vllmctl.render.chart_rules import catalog_problems

    chart = app.settings.chart_target
    for problem in catalog_problems(catalog, chart.version):
        if problem.key_path.startswith("models[") and f"({name})." in problem.key_path:
            app.warn(f"{problem}; validate, render and install refuse it with chart {chart.shown}.")


def _parse_assignment(text: str) -> tuple[list[str], Any]:
    from vllmctl.core.errors import CatalogError, UsageError
    from vllmctl.core.yamldoc import YamlText, compose, construct

    key, sep, raw = text.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise UsageError(f"{text!r}: write KEY.PATH=VALUE, e.g. vllmConfig.maxModelLen=8192.")
    if not raw.strip():
        raise UsageError(f"{text!r}: give a value after '='.")
    try:
        node = compose(YamlText(Path("<value>"), raw, False, "\n"))
    except CatalogError:
        raise UsageError(f"{text!r}: the value is not valid YAML; quote it, e.g. {key}='\"...\"'.") from None
    return path, construct(node) if node is not None else None


@command("validate")
def validate_models(app: App) -> None:
    """Check models.yaml; every problem with file:line:column.

    Keys the chart version does not read are problems too, for the version install would
    use without a cluster: a local chart's Chart.yaml, VLLM_CHART_VERSION, else the newest
    tested (an existing release's own version is what plan checks). Exit 0 when valid, else
    2 with each problem, its key path and the fix.
    """
    from vllmctl.render.chart_rules import catalog_problems

    catalog = _load_existing(app)
    chart = app.settings.chart_target  # offline: the local chart's file, VLLM_CHART_VERSION or the default
    problems = [*catalog.problems, *catalog_problems(catalog, chart.version)]
    if app.output != "table":
        app.emit(
            {
                "valid": not problems,
                "chart": chart.version,
                "chartSource": chart.source,
                "problems": [str(p) for p in problems],
            },
            lambda: None,
        )
    if problems:
        app.info(f"Checked for chart {chart.shown}.")
    catalog.require_valid(problems)
    count = len(catalog.models)
    app.success(
        f"{catalog.label} is valid: {count} model{'s' if count != 1 else ''}, for chart {chart.shown}."
    )


COMMANDS = {c.name: c for c in (list_models, remove_model, show_model, set_model, validate_models)}
