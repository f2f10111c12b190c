"""The HuggingFace token and the API key: set, get, delete, sync into the cluster, rotate.

Values never come from arguments (docs/secrets.md). `get-*` write the raw value to
stdout and nothing else there; everything else talks on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from vllmctl.cli.options import backend_option, command
from vllmctl.secrets.specs import API_KEY, HF_TOKEN, SecretKind
from vllmctl.ui import App


def stdin_option(func: Any) -> Any:
    return click.option("--stdin", is_flag=True, help="read the value from standard input, even a terminal")(
        func
    )


def force_sync_option(func: Any) -> Any:
    return click.option(
        "--force-sync",
        is_flag=True,
        help="vault backend: have ESO re-read Vault now (its force-sync annotation)",
    )(func)


# The old tool took secrets as arguments (`set-hf-token TOKEN`). Extra arguments, unknown
# options included (a value may start with "-"), reach the command so that it can refuse
# them with the reason, instead of click's error, which would repeat the value.
TAKES_NO_VALUE = {"allow_extra_args": True, "ignore_unknown_options": True}


def refuse_arguments(kind: SecretKind) -> None:
    """Fail when anything was given on the command line beyond the options; never echo it."""
    from vllmctl.core.errors import UsageError

    if click.get_current_context().args:
        raise UsageError(
            f"the {kind.label} is never an argument (every user of this machine can read command lines, "
            f"so what was given is not repeated here): pipe it to standard input, set {kind.env}, "
            "or run the command at a terminal to be asked (input hidden)."
        )


@contextmanager
def secret_backend(app: App, *, writes: bool = True) -> Iterator[Any]:
    """Connect to the cluster, choose the backend, and say which and why: always before a
    write (auto's choice decides where a secret goes), with -v for a read."""
    from vllmctl.cluster.kube import Kube
    from vllmctl.secrets.backend import choose

    with Kube.from_settings(app.settings) as kube:
        backend = choose(app.settings, kube)
        if writes or app.verbose:
            app.info(f"secret backend: {backend.name} ({backend.reason})")
        for note in backend.notes:
            app.warn(note)
        yield backend


def _set(
    app: App,
    kind: SecretKind,
    *,
    stdin: bool,
    force: bool,
    force_sync: bool,
    generate: bool,
    show: bool = False,
) -> None:
    from vllmctl.secrets.source import check_value, generate_api_key, read_value

    with secret_backend(app) as backend:
        backend.ensure_namespace()  # refused before a value is asked for that could not be stored
        given = read_value(kind, app, stdin=stdin, allow_empty=generate)
        if given is None:
            value, origin = generate_api_key(), "generated"
        else:
            value, origin = given
            check_value(kind, value, force=force)
        where = backend.set(kind, value, force_sync=force_sync)
    app.success(f"Stored the {kind.label} ({origin}) in {where}.")
    if origin == "generated":
        if show:
            sys.stdout.write(value + "\n")
        else:
            app.info(f"It was not printed; `vllmctl get-{kind.command_suffix}` prints it.")


def _get(app: App, kind: SecretKind) -> None:
    from vllmctl.core.errors import EXIT_NEGATIVE

    with secret_backend(app, writes=False) as backend:
        value = backend.get(kind)
    if value is None:
        app.warn(
            f"no {kind.label} is stored ({backend.name} backend); "
            f"set one with `vllmctl set-{kind.command_suffix}`."
        )
        sys.exit(EXIT_NEGATIVE)
    sys.stdout.write(value + "\n")


def _delete(app: App, kind: SecretKind, *, destroy: bool) -> None:
    with secret_backend(app) as backend:
        what = "destroy every version of" if destroy else "delete"
        if not app.confirm(f"{what.capitalize()} the stored {kind.label} ({backend.name} backend)?"):
            app.info("Nothing was deleted.")
            return
        result = backend.delete(kind, destroy=destroy)
    app.success(f"Deleted the {kind.label}: {result}.")


def _create_secret(app: App, kind: SecretKind, *, stdin: bool, force: bool, force_sync: bool) -> None:
    from vllmctl.secrets.source import check_value, read_value

    with secret_backend(app) as backend:
        backend.ensure_namespace()
        value = None
        if backend.name == "kubernetes":
            given = read_value(kind, app, stdin=stdin)
            assert given is not None
            value = given[0]
            check_value(kind, value, force=force)
        result = backend.sync(kind, value, force_sync=force_sync)
    app.success(f"The cluster's Secret holds the {kind.label}: {result}.")


def _delete_secret(app: App, kind: SecretKind) -> None:
    with secret_backend(app) as backend:
        if not app.confirm(f"Delete the {kind.label} Secret in namespace {app.settings.namespace}?"):
            app.info("Nothing was deleted.")
            return
        result = backend.unsync(kind)
    app.success(f"Removed {result}.")


def hub_token(app: App) -> str | None:
    """The HuggingFace token for reading the Hub (search, bench's tokenizer): VLLM_HF_TOKEN,
    else the stored one, else None (anonymous: gated and private repos stay closed)."""
    from vllmctl.core.errors import VllmctlError

    if app.settings.hf_token:
        return str(app.settings.hf_token)
    try:
        with secret_backend(app, writes=False) as backend:
            stored: str | None = backend.get(HF_TOKEN)
    except VllmctlError as e:
        app.info(
            f"Asking the Hub without a token (the stored one could not be read: {e.message.rstrip('.')})."
        )
        return None
    return stored or None


@command("set-hf-token", context_settings=TAKES_NO_VALUE)
@backend_option
@stdin_option
@force_sync_option
@click.option("--force", is_flag=True, help="store a value that does not look like an HF token")
def set_hf_token(app: App, stdin: bool, force: bool, force_sync: bool) -> None:
    """Store the HuggingFace token (stdin, VLLM_HF_TOKEN or a hidden prompt; never an argument)."""
    refuse_arguments(HF_TOKEN)
    _set(app, HF_TOKEN, stdin=stdin, force=force, force_sync=force_sync, generate=False)


@command("get-hf-token")
@backend_option
def get_hf_token(app: App) -> None:
    """Print the stored HuggingFace token (the value only, on stdout)."""
    _get(app, HF_TOKEN)


@command("delete-hf-token")
@backend_option
@click.option("--destroy", is_flag=True, help="vault: destroy every version, not a recoverable soft delete")
def delete_hf_token(app: App, destroy: bool) -> None:
    """Delete the stored HuggingFace token and the Secret made from it."""
    _delete(app, HF_TOKEN, destroy=destroy)


@command("set-api-key", context_settings=TAKES_NO_VALUE)
@backend_option
@stdin_option
@force_sync_option
@click.option("--show", is_flag=True, help="print a generated key on stdout")
@click.option("--force", is_flag=True, help="store a key shorter than 16 characters")
def set_api_key(app: App, stdin: bool, force_sync: bool, show: bool, force: bool) -> None:
    """Store the API key (stdin, VLLM_API_KEY or a prompt; generated when none is given)."""
    refuse_arguments(API_KEY)
    _set(app, API_KEY, stdin=stdin, force=force, force_sync=force_sync, generate=True, show=show)


@command("get-api-key")
@backend_option
def get_api_key(app: App) -> None:
    """Print the stored API key (the value only, on stdout)."""
    _get(app, API_KEY)


@command("delete-api-key")
@backend_option
@click.option("--destroy", is_flag=True, help="vault: destroy every version, not a recoverable soft delete")
def delete_api_key(app: App, destroy: bool) -> None:
    """Delete the stored API key and the Secret made from it."""
    _delete(app, API_KEY, destroy=destroy)


@command("create-hf-token-secret", context_settings=TAKES_NO_VALUE)
@backend_option
@stdin_option
@force_sync_option
@click.option("--force", is_flag=True, help="kubernetes backend: accept a value unlike an HF token")
def create_hf_token_secret(app: App, stdin: bool, force: bool, force_sync: bool) -> None:
    """Create the hf-token Secret in the namespace from the stored token."""
    refuse_arguments(HF_TOKEN)
    _create_secret(app, HF_TOKEN, stdin=stdin, force=force, force_sync=force_sync)


@command("delete-hf-token-secret")
@backend_option
def delete_hf_token_secret(app: App) -> None:
    """Delete the hf-token Secret (and its ExternalSecret); the stored token stays."""
    _delete_secret(app, HF_TOKEN)


@command("create-api-key-secret", context_settings=TAKES_NO_VALUE)
@backend_option
@stdin_option
@force_sync_option
@click.option("--force", is_flag=True, help="kubernetes backend: accept a key shorter than 16 characters")
def create_api_key_secret(app: App, stdin: bool, force_sync: bool, force: bool) -> None:
    """Create the vllm-api-key Secret in the namespace from the stored key."""
    refuse_arguments(API_KEY)
    _create_secret(app, API_KEY, stdin=stdin, force=force, force_sync=force_sync)


@command("delete-api-key-secret")
@backend_option
def delete_api_key_secret(app: App) -> None:
    """Delete the vllm-api-key Secret (and its ExternalSecret); the stored key stays."""
    _delete_secret(app, API_KEY)


@command("rotate-api-key")
@backend_option
@click.option("--show", is_flag=True, help="print the new key on stdout")
@click.option("--timeout", default=600.0, show_default=True, help="seconds to wait for the restarts")
@click.option(
    "--force", is_flag=True, help="rotate even when the restarted pods do not fit the cluster's free GPUs"
)
def rotate_api_key(app: App, show: bool, timeout: float, force: bool) -> None:
    """Replace the API key, sync it, and restart the router and engines so only it works.

    The restart must fit the cluster's free GPUs first (a rolling restart starts each new
    engine pod beside the old one); otherwise nothing changes, unless --force. A
    multi-node model's RayCluster is restarted whole: its head and worker pods are
    deleted together and KubeRay makes new ones, which are waited for like the rollouts.
    """
    from vllmctl.core.errors import Interrupted
    from vllmctl.ops.restart import RolloutTimeout
    from vllmctl.ops.rotate import plan_rotation, rotate

    settings = app.settings
    with secret_backend(app) as backend:
        rotation = plan_rotation(backend)
        _check_restart_fit(app, rotation, force)
        if not app.confirm(
            f"Rotate the API key of release {settings.release} in namespace {settings.namespace}? "
            "Clients using the old key stop working."
        ):
            app.info("Nothing was changed.")
            return
        try:
            value, restarted = rotate(backend, rotation, timeout=timeout, notify=app.info)
        except RolloutTimeout as e:
            if e.message.startswith("the restart of RayClusters"):
                # Their old pods are gone already: the model waits for its new ones.
                after = (
                    "The multi-node model serves again once KubeRay's new head and workers are Ready "
                    "(they read the new key); what they wait for is below. `vllmctl status` shows them."
                )
            else:
                after = (
                    "The old pods still run and accept only the old key until they are replaced, which "
                    "their Deployments go on doing by themselves once what the new pods wait for (below) "
                    "is there (GPUs: free some, or set `strategy: recreate` in models.yaml and `vllmctl "
                    "upgrade`). `vllmctl status` shows them."
                )
            e.message = (
                "the API key was rotated (stored and synced; `vllmctl get-api-key` prints it), but "
                f"{e.message}. {after}"
            )
            raise
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted while waiting for the restarts; the API key may already be rotated "
                "(`vllmctl get-api-key` prints the stored one) and the Deployments (KubeRay for a "
                "RayCluster) go on replacing their pods by themselves: `vllmctl status` shows them."
            ) from None
    app.success(f"Rotated the API key; restarted {', '.join(restarted) or 'no Deployments (none found)'}.")
    if show:
        sys.stdout.write(value + "\n")
    else:
        app.info("The new key was not printed; `vllmctl get-api-key` prints it.")


def _check_restart_fit(app: App, rotation: Any, force: bool) -> None:
    """Refuse, before anything changes, a restart whose pods the free GPUs cannot hold."""
    from vllmctl.cli.restart import check_fit

    if rotation.fit is None:
        if rotation.unchecked:
            app.warn(f"restart not checked against the free GPUs: {rotation.unchecked}")
        return
    check_fit(
        app,
        rotation.fit,
        force,
        doing="rotating",
        refusal="the restart that rotate-api-key needs does not fit the cluster's free GPUs, so the key "
        "was not rotated and nothing was changed",
        forced="--force rotates anyway (the new pods then stay Pending and only the old pods serve, with "
        "the old key).",
    )


COMMANDS = {
    c.name: c
    for c in (
        set_hf_token,
        get_hf_token,
        delete_hf_token,
        set_api_key,
        get_api_key,
        delete_api_key,
        rotate_api_key,
        create_hf_token_secret,
        delete_hf_token_secret,
        create_api_key_secret,
        delete_api_key_secret,
    )
}
