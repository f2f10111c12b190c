"""vllmctl's command line: the group, its shared options, and the one error handler."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from vllmctl import __version__
from vllmctl.cli.options import pass_app, shared_options
from vllmctl.core.errors import EXIT_INTERRUPTED, EXIT_NEGATIVE, EXIT_USAGE, VllmctlError
from vllmctl.ui import App

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# Every command: the module that defines it, and the one line `vllmctl --help` shows.
# A command's module is imported only when that command runs (or its own --help is
# shown), so start-up cost does not grow with the number of commands. A test checks
# that each line here matches the first line of the command's docstring.
COMMANDS: dict[str, tuple[str, str]] = {
    "list-models": ("models", "List the models in models.yaml (-o json for scripts)."),
    "add-model": ("add_model", "Add a model to models.yaml, by prompts or by flags."),
    "remove-model": ("models", "Remove a model from models.yaml."),
    "show-model": ("models", "Show one model's fields, with vllmctl's defaults filled in."),
    "set-model": ("models", "Set fields of one model: set-model NAME KEY.PATH=VALUE..."),
    "validate": ("models", "Check models.yaml; every problem with file:line:column."),
    "render": ("deploy", "Print the Helm values models.yaml turns into (no cluster needed)."),
    "template": ("deploy", "Print the manifests helm would apply (helm template; no cluster needed)."),
    "plan": ("deploy", "Show what install/upgrade would change, model by model."),
    "diff": ("deploy", "Show what install/upgrade would change, model by model."),
    "install": ("deploy", "Install (or upgrade) the release from models.yaml, creating the namespace."),
    "upgrade": ("deploy", "Upgrade the existing release to what models.yaml says now."),
    "uninstall": ("deploy", "Uninstall the release; model caches and secrets stay unless asked."),
    "history": ("deploy", "List the release's revisions (helm history)."),
    "rollback": ("deploy", "Roll the release back to REVISION (default: the previous one)."),
    "recover": (
        "recover",
        "Repair a release an interrupted helm left pending: roll back, or uninstall if never deployed.",
    ),
    "export": ("export", "Write the release as files for Flux or Argo CD (GitOps): export flux|argocd DIR."),
    "add-helm-repo": ("deploy", "Add (or update) the helm repository of the chart."),
    "remove-helm-repo": ("deploy", "Remove the chart's helm repository."),
    "create-namespace": (
        "deploy",
        "Create the namespace (or update it) with Pod Security labels (baseline).",
    ),
    "delete-namespace": (
        "deploy",
        "Delete the namespace and everything in it, model caches included (asks first).",
    ),
    "set-hf-token": (
        "secrets",
        "Store the HuggingFace token (stdin, VLLM_HF_TOKEN or a hidden prompt; never an argument).",
    ),
    "get-hf-token": ("secrets", "Print the stored HuggingFace token (the value only, on stdout)."),
    "delete-hf-token": ("secrets", "Delete the stored HuggingFace token and the Secret made from it."),
    "set-api-key": (
        "secrets",
        "Store the API key (stdin, VLLM_API_KEY or a prompt; generated when none is given).",
    ),
    "get-api-key": ("secrets", "Print the stored API key (the value only, on stdout)."),
    "delete-api-key": ("secrets", "Delete the stored API key and the Secret made from it."),
    "rotate-api-key": (
        "secrets",
        "Replace the API key, sync it, and restart the router and engines so only it works.",
    ),
    "create-hf-token-secret": (
        "secrets",
        "Create the hf-token Secret in the namespace from the stored token.",
    ),
    "delete-hf-token-secret": (
        "secrets",
        "Delete the hf-token Secret (and its ExternalSecret); the stored token stays.",
    ),
    "create-api-key-secret": (
        "secrets",
        "Create the vllm-api-key Secret in the namespace from the stored key.",
    ),
    "delete-api-key-secret": (
        "secrets",
        "Delete the vllm-api-key Secret (and its ExternalSecret); the stored key stays.",
    ),
    "status": ("status", "Show the release, each model's pods and why any is not Ready, and what is served."),
    "endpoints": ("status", "Show the Services, the base URL clients use, and ready-to-paste examples."),
    "logs": ("logs", "Follow the logs of one model's pods in this release (choose when MODEL is omitted)."),
    "router-logs": ("logs", "Follow the logs of the release's router pods."),
    "restart": (
        "restart",
        "Restart the engines of MODELS (every model when none), waiting for the new pods.",
    ),
    "port-forward": ("api", "Forward a local port to the router through the Kubernetes API (default 8000)."),
    "list-api-models": ("api", "List the models the router serves (GET /v1/models through a port-forward)."),
    "test-completions": ("api", "Send a prompt to a model and stream the answer, with timings."),
    "chat": (
        "chat",
        "Chat with a served model: streamed turns at a terminal, or one message per line of stdin.",
    ),
    "bench": ("bench", "Benchmark a served model: TTFT, TPOT, ITL, latency and throughput under load."),
    "doctor": (
        "doctor",
        "Check tools, cluster, secrets, models and GPU fit before deploying; each problem with its fix.",
    ),
    "estimate": (
        "estimate",
        "Estimate a model's GPU memory (weights, KV cache) and whether it fits its GPUs.",
    ),
    "search": (
        "search",
        "Find text-generation models on the Hub and whether each fits the cluster's GPUs.",
    ),
    "completion": ("completion", "Print the shell completion script: vllmctl completion bash|zsh|fish."),
    "config": ("config", "Show the resolved settings and where each came from."),
}


class VllmctlGroup(click.Group):
    """Loads commands lazily, lists them by topic, and turns every error into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        import importlib

        module = importlib.import_module(f"vllmctl.cli.{COMMANDS[name][0]}")
        command: click.Command = module.COMMANDS[name]
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        # While completing (resilient parsing), click itself skips an unknown name quietly.
        if name in COMMANDS or name.startswith("-") or ctx.resilient_parsing:
            return super().resolve_command(ctx, args)
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise click.UsageError(f"No such command {name!r}.{hint} (vllmctl --help lists them)", ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # From the table above, without importing any command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_line) for name, (_, help_line) in COMMANDS.items()])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names from the table (click's own would import every command's module), then options."""
        from click.shell_completion import CompletionItem

        names = [
            CompletionItem(name, help=line)
            for name, (_, line) in COMMANDS.items()
            if name.startswith(incomplete)
        ]
        return names + click.Command.shell_complete(self, ctx, incomplete)

    def main(self, args: Any = None, prog_name: str | None = None, *rest: Any, **extra: Any) -> Any:
        """Run the CLI: a red line on stderr and an exit code per error, tracebacks only with -v."""
        app = extra.pop("obj", None) or App()
        extra.pop("standalone_mode", None)
        complete_var = rest[0] if rest else extra.pop("complete_var", None)
        try:
            result = super().main(
                args, prog_name or "vllmctl", complete_var, standalone_mode=False, obj=app, **extra
            )
        except VllmctlError as exc:
            _report(app, exc.message, exc.details)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
        except (KeyboardInterrupt, click.exceptions.Abort):
            # Commands that know nothing changed say so themselves (prompts raise Interrupted).
            app.error("Interrupted.")
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): nothing more to say to anyone.
            sys.stderr.close()
            sys.exit(EXIT_NEGATIVE)
        except Exception as exc:  # a bug: one line, and the traceback with -v
            _report(app, f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", [])
            sys.exit(EXIT_NEGATIVE)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=VllmctlGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="vllmctl", message="%(prog)s %(version)s")
@shared_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Serve LLMs with vLLM on Kubernetes, from one models.yaml.

    \b
    Quick start:
      vllmctl add-model            # add a model (asks, or give flags and --yes)
      vllmctl list-models          # what models.yaml says is served
      vllmctl validate             # check models.yaml, with file:line:column errors

    Options shown here also work after the command name (vllmctl list-models -o json).
    """


def main(argv: list[str] | None = None) -> None:
    """The console entry point."""
    cli.main(args=argv, prog_name="vllmctl")


def _report(app: App, message: str, details: list[str]) -> None:
    if app.verbose:
        import traceback

        traceback.print_exc()
    app.error(message)
    for line in details:
        print(f"  {line}", file=sys.stderr)


__all__ = ["cli", "main", "pass_app"]
