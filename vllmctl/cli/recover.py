"""recover: repair a release an interrupted helm left pending (docs/recovery.md); and the
same offer where install and upgrade find one."""

from __future__ import annotations

from typing import Any

from vllmctl.cli.options import command
from vllmctl.ui import App


@command("recover")
def recover(app: App) -> None:
    """Repair a release an interrupted helm left pending: roll back, or uninstall if never deployed.

    A release stuck in pending-install, pending-upgrade or pending-rollback is rolled back
    to its last deployed revision, or uninstalled when it never deployed (asks first;
    --yes does not ask). Anything else is left alone.
    """
    from vllmctl.ops import deploy, recovery

    settings = app.settings
    helm = deploy.helm_for(settings)
    stuck = recovery.find_stuck(helm)
    if stuck is None:
        now = helm.deployed()
        state = f"is {now.status} (revision {now.revision})" if now else "does not exist"
        app.info(f"Release {settings.release} in namespace {settings.namespace} {state}: nothing to recover.")
        return
    app.warn(stuck.sentence())
    if not app.confirm(f"Recover it? vllmctl {stuck.remedy()}."):
        app.info("Nothing was changed.")
        return
    run_recovery(app, helm, stuck)


def run_recovery(app: App, helm: Any, stuck: Any) -> None:
    """The rollback or uninstall that repairs the release, followed like any helm run."""
    from vllmctl.ops import recovery

    argv = recovery.recovery_argv(helm, stuck, timeout=app.settings.helm_timeout)
    label = (
        "Uninstalling the release that never deployed"
        if stuck.target is None
        else (f"Rolling back to revision {stuck.target}")
    )
    follow_to_the_end(app, helm, argv, label)
    if stuck.target is None:
        app.success(f"Uninstalled {stuck.release}, which never deployed; `vllmctl install` starts afresh.")
    else:
        app.success(f"Recovered {stuck.release}: rolled back to revision {stuck.target}.")


def follow_to_the_end(app: App, helm: Any, argv: list[str], label: str) -> None:
    """A helm run that must not stop halfway (rollback, uninstall): Ctrl-C waits for it, a
    second one kills it, and then the message says what state the release is in."""
    from vllmctl.cluster import tools

    try:
        app.follow(tools.stream(argv, on_signal=tools.FINISH, notify=app.warn), label)
    except tools.ToolInterrupted as e:
        raise interrupted(helm, None, e) from None


def interrupted(helm: Any, before: Any, stopped: Any) -> Exception:
    """The error for an interrupted helm run: what the release is now (read while one more
    Ctrl-C is only noted, as it often comes just after helm ended) and what to run next."""
    from vllmctl.core.errors import Interrupted
    from vllmctl.ops import recovery

    try:
        return Interrupted(recovery.after_interrupt(helm, before, stopped.signal_name))
    finally:
        stopped.release_signals()


def offer_recovery(app: App, helm: Any, stuck: Any, *, recover: bool, then: str) -> None:
    """install/upgrade found the release stuck: repair it with --recover or when the user
    agrees at the prompt; else stop with the state and the command (nothing changed)."""
    if not recover and not app.interactive:
        error = stuck.refusal(then)
        error.message += " (Or add --recover to this command.)"
        raise error
    app.warn(stuck.sentence())
    if not recover and not app.confirm(f"Recover it first? vllmctl {stuck.remedy()}."):
        raise stuck.refusal(then)
    run_recovery(app, helm, stuck)


COMMANDS = {c.name: c for c in (recover,)}
