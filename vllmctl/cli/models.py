"""Commands that read and edit models.yaml: list, add, remove, show, set, validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vllmctl.cli.options import command, complete_model_names
from vllmctl.ui import App

EXAMPLE_NAME = "models.example.yaml"


def _example_bytes() -> bytes:
    from importlib.resources import files

    return (files("vllmctl") / "data" / EXAMPLE_NAME).read_bytes()


def _missing_hint(path: Path) -> str:
    return (
        f"{path} does not exist yet. Start from the example (cp {EXAMPLE_NAME} {path}) "
        "or run `vllmctl add-model`, which creates it."
    )


def _base_file_only(app: App, command: str) -> None:
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


def _seen(app: App, catalog: Any) -> Any:
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


def _add_model_options(func: Any) -> Any:
    from vllmctl.catalog.questions import QUESTIONS

    for question in reversed(QUESTIONS):
        help_text = question.prompt or "memory limit per replica (default: none)"
        if question.default is not None:
            help_text += f" [default {question.default}]"
        if question.choices:
            help_text += f" ({', '.join(question.choices)})"
        func = click.option(question.flag, question.param, metavar="VALUE", help=help_text)(func)
    return func


@command("add-model")
@_add_model_options
@click.option("--offline", is_flag=True, help="do not ask the HuggingFace Hub (gated is then not recorded)")
def add_model(app: App, offline: bool, **flags: str | None) -> None:
    """Add a model to models.yaml, by prompts or by flags.

    Asks for each field not given as a flag; with --yes (or without a terminal) it never
    asks: give --name and --model-url, the rest have defaults.

    Unless --offline, asks the HuggingFace Hub (HF_ENDPOINT) whether the model exists and
    records whether it is gated; at a terminal it then shows the model's size and whether
    the GPUs (VLLM_GPU_TYPE / VLLM_GPU_MEMORY) and storage look enough. A problem found
    after the last answer asks again for the fields involved. A pasted Hub address
    (https://huggingface.co/org/model/...) is stored as org/model.

    Creates models.yaml from models.example.yaml when it does not exist.
    """
    from vllmctl.catalog.questions import with_field
    from vllmctl.catalog.store import adding, apply_edit, load

    _base_file_only(app, "add-model")
    path = app.settings.models_path
    catalog = load(path)
    catalog.require_valid()
    answers = _collect_answers(app, flags, taken=set(catalog.names()))
    entry, access = _settled_entry(app, answers, offline=offline, taken=set(catalog.names()))
    if access is not None:
        entry = with_field(entry, "gated", access)
    if app.interactive:
        from vllmctl.ui import to_yaml

        app.info(to_yaml([entry]).rstrip())
        if access is not None:
            _show_size_hint(app, entry)
        if not app.confirm(f"Add {entry['name']} to {path}?", default=True):
            app.info("Nothing was changed.")
            return
    example = None if catalog.exists else _example_bytes()
    apply_edit(path, adding(entry), based_on=_seen(app, catalog), create_from=example, parsed=catalog)
    created = "" if catalog.exists else f" (created {path} from {EXAMPLE_NAME})"
    app.success(f"Added {entry['name']} to {path}{created}.")
    app.info("Deploy it with `vllmctl upgrade` (or `vllmctl install` for a new release).")


def _settled_entry(
    app: App, answers: dict[tuple[str, ...], Any], *, offline: bool, taken: set[str]
) -> tuple[dict[str, Any], bool | None]:
    """The entry, and whether the Hub says it is gated (None: not asked or not reachable).
    At a terminal a problem found only now (between fields, or a repo the Hub does not
    know) asks again for the fields involved, keeping every other answer; otherwise it is
    the error naming the flag, as before."""
    from vllmctl.catalog.questions import QUESTIONS, build_entry, entry_problems
    from vllmctl.core.errors import UsageError
    from vllmctl.core.fields import URI_SCHEMES

    model_url = next(q for q in QUESTIONS if q.path == ("modelURL",))
    while True:
        entry = build_entry(answers)
        problems = entry_problems(entry) if app.interactive else []
        if problems and all(p.questions for p in problems):
            for problem in problems:
                app.warn(f"{problem.key}: {problem.message}.")
            for question in dict.fromkeys(q for p in problems for q in p.questions):
                answers[question.path] = _ask(app, question, None, current=answers.get(question.path))
            continue
        if offline or entry["modelURL"].startswith(URI_SCHEMES):
            return entry, None
        gated, unknown = _hub_gated(app, entry["modelURL"])
        if unknown is None:
            return entry, gated
        if not app.interactive:
            raise UsageError(
                f"--model-url: {unknown}; check the spelling, or pass --offline to add it without "
                "asking the Hub."
            )
        app.warn(f"{unknown}; check the spelling.")
        answers[model_url.path] = _ask(app, model_url, None, current=entry["modelURL"])


def _hub_gated(app: App, repo_id: str) -> tuple[bool | None, str | None]:
    """Whether the Hub says the repo is gated (None: it could not be asked), and when the
    Hub does not know the repo, the sentence saying so."""
    from vllmctl.apis import hub
    from vllmctl.core.setting_names import ENV_HF_TOKEN

    endpoint = app.settings.hf_endpoint or hub.DEFAULT_ENDPOINT
    token = app.settings.hf_token or None
    try:
        access = hub.check_access(repo_id, token, endpoint=endpoint)
    except hub.HubUnreachable as unreachable:
        app.warn(f"could not reach {unreachable.endpoint}: {unreachable.reason}; gated not recorded.")
        return None, None
    valid_token = bool(token) and not access.token_rejected
    if access.token_rejected:
        app.warn(f"{endpoint} rejected the HuggingFace token ({ENV_HF_TOKEN}): invalid, expired or revoked.")
    if not access.exists:
        seen = "your token cannot see it" if valid_token else f"no valid {ENV_HF_TOKEN}"
        return None, f"{repo_id} is not a model on {endpoint} (or it is private and {seen})"
    if access.gated and access.allowed is not True:
        if valid_token:
            need = f"your token ({ENV_HF_TOKEN}) has no access"
        else:
            need = "the engines need a HuggingFace token with access"
        app.warn(f"{repo_id} is gated and {need}: request access at {access.page}.")
    return access.gated, None


def _show_size_hint(app: App, entry: dict[str, Any]) -> None:
    """One line on the model's size and whether the entry's GPUs and storage look enough;
    nothing when the Hub cannot tell (the confirmation follows either way)."""
    from vllmctl.apis import hub
    from vllmctl.core.errors import VllmctlError
    from vllmctl.ops.estimate import ConfigError
    from vllmctl.ops.memory import size_hint

    endpoint = app.settings.hf_endpoint or hub.DEFAULT_ENDPOINT
    try:
        facts = hub.model_facts(entry["modelURL"], app.settings.hf_token or None, endpoint=endpoint)
        app.info(size_hint(entry, facts, app.settings))
    except (VllmctlError, ConfigError) as e:  # the Hub failing now, or a config it cannot read
        if app.verbose:
            app.info(f"(no size hint: {e})")


def _collect_answers(app: App, flags: dict[str, str | None], taken: set[str]) -> dict[tuple[str, ...], Any]:
    """Each field from its flag, else a prompt, else its default; errors name the flag."""
    from vllmctl.catalog.questions import QUESTIONS
    from vllmctl.core.errors import UsageError

    def unique(value: Any) -> str | None:
        return f"{value!r} is already in models.yaml; choose another name" if value in taken else None

    answers: dict[tuple[str, ...], Any] = {}
    for question in QUESTIONS:
        text = flags.get(question.param)
        if text is None:
            continue
        value, problem = question.parse(text)
        if problem is None and question.path == ("name",):
            problem = unique(value)
        if problem:
            raise UsageError(f"{question.flag}: {problem}.")
        answers[question.path] = value

    engine_flags_given = any(q.engine_option and q.path in answers for q in QUESTIONS)
    ask_engine = False
    for question in QUESTIONS:
        if question.path in answers:
            continue
        if question.path == ("pvcStorage",) and str(answers.get(("modelURL",))).startswith("pvc://"):
            continue  # a pvc:// model caches nothing (docs/model-sources.md)
        if question.default is None and not question.engine_option and question.prompt:
            app.require_interactive(f"{question.flag}")  # a required field without a flag
        if not app.interactive or not question.prompt:
            if question.default is not None:
                answers[question.path] = question.default
            continue
        if question.engine_option:
            if engine_flags_given:
                continue
            if not ask_engine:
                ask_engine = app.confirm("Set vLLM engine options (max model length, dtype, ...)?")
                if not ask_engine:
                    break
        answers[question.path] = _ask(app, question, unique if question.path == ("name",) else None)
    return answers


def _ask(app: App, question: Any, extra_check: Any, *, current: Any = None) -> Any:
    """Ask one question; `current` (an earlier answer being corrected) is the default."""
    optional = question.engine_option
    if question.choices:
        default_choice = current if current in question.choices else None
        choice = app.ask_select(question.prompt, ["(vLLM's default)", *question.choices], default_choice)
        return None if choice.startswith("(") else choice

    def validate(text: str) -> str | None:
        if optional and not text.strip():
            return None
        value, problem = question.parse(text)
        return problem or (extra_check(value) if extra_check else None)

    fallback = question.default if current is None else current
    default = "" if fallback is None else str(fallback)
    text = app.ask_text(question.prompt, default=default, validate=validate)
    if optional and not text.strip():
        return None
    return question.parse(text)[0]


@command("remove-model")
@click.argument("name", required=False, shell_complete=complete_model_names)
def remove_model(app: App, name: str | None) -> None:
    """Remove a model from models.yaml.

    Choose from a list when NAME is omitted; asks to confirm unless --yes.
    """
    from vllmctl.catalog.store import apply_edit, removing
    from vllmctl.core.errors import UsageError

    _base_file_only(app, "remove-model")
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
    apply_edit(path, removing(name), based_on=_seen(app, catalog), parsed=catalog)
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

    _base_file_only(app, "set-model")
    parsed = [_parse_assignment(text) for text in assignments]
    catalog = _load_existing(app, editing=True)
    catalog.model(name)  # the file must be valid and hold the model
    apply_edit(catalog.path, setting(name, parsed), parsed=catalog)
    changes = ", ".join(assignments)
    app.success(f"Set {changes} on {name} in {catalog.path}.")


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


COMMANDS = {c.name: c for c in (list_models, add_model, remove_model, show_model, set_model, validate_models)}
