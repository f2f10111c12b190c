"""`vllmctl completion`: the shell completion script click generates for vllmctl."""

from __future__ import annotations

import os
from pathlib import PurePath

import click

from vllmctl.cli.options import command
from vllmctl.core.errors import UsageError
from vllmctl.ui import App

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "vllmctl"
# The variable the script sets when it calls vllmctl back; click's default for PROG_NAME.
COMPLETE_VAR = "_VLLMCTL_COMPLETE"


@command("completion", output=False)
@click.argument("shell", required=False, type=click.Choice(SHELLS), metavar="[SHELL]")
def completion(app: App, shell: str | None) -> None:
    """Print the shell completion script: vllmctl completion bash|zsh|fish.

    Without SHELL, the shell $SHELL names. The script completes commands, options and
    the model names in models.yaml. Install it once, then open a new shell:

    \b
      bash: vllmctl completion bash > ~/.vllmctl.bash, then add `. ~/.vllmctl.bash` to ~/.bashrc
      zsh:  vllmctl completion zsh > ~/.vllmctl.zsh, then add `. ~/.vllmctl.zsh` to ~/.zshrc (after compinit)
      fish: vllmctl completion fish > ~/.config/fish/completions/vllmctl.fish
    """
    from click.shell_completion import get_completion_class

    if shell is None:
        shell = _shell_from_environment()
        app.info(f"Printing the {shell} script ($SHELL is {os.environ['SHELL']}).")
    complete_class = get_completion_class(shell)
    assert complete_class is not None  # click ships a class for each of SHELLS
    root = click.get_current_context().find_root().command
    script = complete_class(root, {}, PROG_NAME, COMPLETE_VAR).source()
    click.echo(script.rstrip("\n"))


def _shell_from_environment() -> str:
    """The shell $SHELL names, if it is one vllmctl has a script for."""
    login_shell = os.environ.get("SHELL", "")
    name = PurePath(login_shell).name
    if name in SHELLS:
        return name
    told = f"$SHELL is {login_shell}" if login_shell else "$SHELL is not set"
    raise UsageError(f"name the shell: vllmctl completion bash|zsh|fish ({told}).")


COMMANDS = {c.name: c for c in (completion,)}
