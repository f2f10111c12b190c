"""One error hierarchy; `vllmctl.cli.main` turns these into a line on stderr and an exit code.

Exit codes (docs/ARCHITECTURE.md): 0 ok; 1 the operation ran and reports a negative
result; 2 bad input or usage; 3 an external system failed; 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_USAGE = 2
EXIT_EXTERNAL = 3
EXIT_INTERRUPTED = 130


class VllmctlError(Exception):
    """An error the user can act on: its message is shown as is, without a traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Extra lines shown under the message, e.g. one per validation problem.
        self.details = details or []


class UsageError(VllmctlError):
    """A flag, argument or answer is missing or wrong."""


class CatalogError(VllmctlError):
    """models.yaml cannot be read, parsed, validated or safely written."""


class ConcurrentEditError(CatalogError):
    """models.yaml changed on disk between our read and our write."""


class ExternalError(VllmctlError):
    """helm, Kubernetes, Vault or the Hub failed or refused."""

    exit_code = EXIT_EXTERNAL


class ClusterUnreachable(ExternalError):
    """The kube context's API server did not answer (export then works offline)."""


class Interrupted(VllmctlError):
    """The user pressed Ctrl-C or ended a prompt; the message says what state things are in."""

    exit_code = EXIT_INTERRUPTED


def refuse_problems(problems: list[str], what: str) -> None:
    """Every problem found in a group of settings at once: one sentence when there is one,
    else a count and the list. Nothing when there is none."""
    if len(problems) == 1:
        raise UsageError(problems[0])
    if problems:
        raise UsageError(f"{len(problems)} problems with {what}:", details=problems)


def cluster_unreachable(server: str | None, why: str, context: str | None, *, tool: str) -> ExternalError:
    """helm's or kubectl's words for a cluster they cannot reach, as vllmctl.cluster.kube says it."""
    where = server or "the kubeconfig's server"
    chosen = f"context {context}" if context else "the kubeconfig's current context"
    return ClusterUnreachable(
        f"Kubernetes is unreachable at {where} ({why}), as {tool} found: check that the cluster is up "
        f"and that {chosen} points at it, or use another context with --context."
    )
