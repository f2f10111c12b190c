"""Options every command accepts, before or after its name, and the decorator that passes App."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from vllmctl.core import setting_names as s
from vllmctl.ui import OUTPUT_FORMATS, App

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

F = TypeVar("F", bound=Callable[..., Any])


def _app(ctx: click.Context) -> App:
    app = ctx.find_object(App)
    if app is None:  # a command invoked outside `main`, e.g. by a test's CliRunner
        app = ctx.ensure_object(App)
    return app


def _setting(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            _app(ctx).set_flag(name, str(value))

    return callback


def _attribute(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:  # a flag given after the command name must not reset one given before
            setattr(_app(ctx), name, value)

    return callback


def _complete_file(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    # The shell completes file names itself (click's "file" type), as for click.Path.
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def _shared_option_table() -> dict[str, Callable[[F], F]]:
    return {
        "models": click.option(
            "--models",
            "models_file",
            metavar="PATH",
            expose_value=False,
            callback=_setting("models_file"),
            shell_complete=_complete_file,
            help=f"models catalog [env {s.ENV_MODELS_FILE}; default ./models.yaml]",
        ),
        "env": click.option(
            "--env",
            metavar="NAME",
            expose_value=False,
            callback=_setting("env"),
            help=f"environment: models.NAME.yaml over models.yaml, NAME's settings in vllmctl.yaml "
            f"[env {s.ENV_ENVIRONMENT}]",
        ),
        "namespace": click.option(
            "-n",
            "--namespace",
            expose_value=False,
            callback=_setting("namespace"),
            help=f"Kubernetes namespace [env {s.ENV_NAMESPACE}; default vllm]",
        ),
        "context": click.option(
            "--context",
            expose_value=False,
            callback=_setting("context"),
            help=f"kube context [env {s.ENV_CONTEXT}; default: the kubeconfig's current]",
        ),
        "output": click.option(
            "-o",
            "--output",
            type=click.Choice(OUTPUT_FORMATS),
            expose_value=False,
            callback=_attribute("output"),
            help="output format for data [default table]",
        ),
        "yes": click.option(
            "-y",
            "--yes",
            is_flag=True,
            expose_value=False,
            callback=_attribute("yes"),
            help="never prompt: confirm, and fail where an answer is missing",
        ),
        "verbose": click.option(
            "-v",
            "--verbose",
            is_flag=True,
            expose_value=False,
            callback=_attribute("verbose"),
            help="more detail, and tracebacks on errors",
        ),
    }


def shared_options(func: F, *, output: bool = True) -> F:
    """Add the global options; they set App state and are not passed to the function.

    `output=False` leaves out -o/--output, for a command whose -o names a file.
    """
    table = _shared_option_table()
    if not output:
        del table["output"]
    for option in reversed(list(table.values())):
        func = option(func)
    return func


def templates_dir_option(func: F) -> F:
    """--templates-dir, for the commands that render values."""
    return click.option(
        "--templates-dir",
        metavar="DIR",
        expose_value=False,
        callback=_setting("templates_dir"),
        help=f"your copy of vllmctl's templates/ [env {s.ENV_TEMPLATES_DIR}]",
    )(func)


def pass_app(func: F) -> F:
    """Pass the App as the command function's first argument."""

    @click.pass_context
    @functools.wraps(func)  # keeps the options click has attached to `func`
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        app = _app(ctx)
        app.warn_retired_settings()
        return func(app, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def command(name: str, *, output: bool = True, **kwargs: Any) -> Callable[[F], click.Command]:
    """A vllmctl command: shared options added, App passed first."""

    def decorator(func: F) -> click.Command:
        make = cast(Callable[[Callable[..., Any]], click.Command], click.command(name, **kwargs))
        return make(shared_options(pass_app(func), output=output))

    return decorator


def backend_option(func: F) -> F:
    """--secret-backend, for the commands that store or read secrets."""
    return click.option(
        "--secret-backend",
        type=click.Choice(["auto", "vault", "kubernetes"]),
        expose_value=False,
        callback=_setting("secret_backend"),
        help=f"where secrets live [env {s.ENV_SECRET_BACKEND}; default auto: Vault + ESO when both work]",
    )(func)


def complete_model_names(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of a model-name argument: the names in the models catalog.

    The catalog is the one the command would read (`--models` earlier on the line, then
    VLLM_MODELS_FILE, then ./models.yaml). A missing or unreadable file completes nothing:
    whatever completion prints lands in the user's shell, so it never reports an error.
    """
    from click.shell_completion import CompletionItem

    try:
        names = catalog_names(_app(ctx).settings.models_path.expanduser())
    except Exception:
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def catalog_names(path: Path) -> list[str]:
    """The `name` of every entry in the file, valid or not, once each and in file order.

    Only composes the YAML (no validation), so completion stays quick on a large file.
    """
    from vllmctl.core.fileio import read_bytes, real_path
    from vllmctl.core.yamldoc import compose, decode, find_key

    raw = read_bytes(real_path(path))
    root = compose(decode(path, raw)) if raw else None
    if root is None or root.id != "sequence":
        return []
    names: dict[str, None] = {}
    for item in root.value:
        pair = find_key(item, "name") if item.id == "mapping" else None
        if pair is not None and pair[1].id == "scalar":
            names[str(pair[1].value)] = None
    return list(names)
