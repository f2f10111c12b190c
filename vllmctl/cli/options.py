"""Options every command accepts, before or after its name, and the decorator that passes App."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from vllmctl import settings as s
from vllmctl.ui import OUTPUT_FORMATS, App

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


def shared_options(func: F) -> F:
    """Add the global options; they set App state and are not passed to the function."""
    options = [
        click.option(
            "--models",
            "models_file",
            metavar="PATH",
            expose_value=False,
            callback=_setting("models_file"),
            help=f"models catalog [env {s.ENV_MODELS_FILE}; default ./models.yaml]",
        ),
        click.option(
            "-n",
            "--namespace",
            expose_value=False,
            callback=_setting("namespace"),
            help=f"Kubernetes namespace [env {s.ENV_NAMESPACE}; default vllm]",
        ),
        click.option(
            "--context",
            expose_value=False,
            callback=_setting("context"),
            help=f"kube context [env {s.ENV_CONTEXT}; default: the kubeconfig's current]",
        ),
        click.option(
            "-o",
            "--output",
            type=click.Choice(OUTPUT_FORMATS),
            expose_value=False,
            callback=_attribute("output"),
            help="output format for data [default table]",
        ),
        click.option(
            "-y",
            "--yes",
            is_flag=True,
            expose_value=False,
            callback=_attribute("yes"),
            help="never prompt: confirm, and fail where an answer is missing",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            expose_value=False,
            callback=_attribute("verbose"),
            help="more detail, and tracebacks on errors",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def pass_app(func: F) -> F:
    """Pass the App as the command function's first argument."""

    @click.pass_context
    @functools.wraps(func)  # keeps the options click has attached to `func`
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return func(_app(ctx), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def command(name: str, **kwargs: Any) -> Callable[[F], click.Command]:
    """A vllmctl command: shared options added, App passed first."""

    def decorator(func: F) -> click.Command:
        make = cast(Callable[[Callable[..., Any]], click.Command], click.command(name, **kwargs))
        return make(shared_options(pass_app(func)))

    return decorator
