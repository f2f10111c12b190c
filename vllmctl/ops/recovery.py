"""A release an interrupted helm left stuck, and the one way out (docs/recovery.md).

helm marks a revision `pending-install`, `pending-upgrade` or `pending-rollback` while it
works and records the outcome at the end. A helm that dies in between (killed, or a
`helm rollback` interrupted: it has no signal handler) leaves the mark, and helm then
refuses every upgrade ("another operation is in progress") while a plan compares against
values that never deployed. The way out is a rollback to the last deployed revision, or,
for a release that never deployed, an uninstall. Nothing here talks to the user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vllmctl.cluster.helm import DeployedRelease, Helm
from vllmctl.core.errors import ExternalError, UsageError

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
RECOVER = "vllmctl recover"


@dataclass(frozen=True)
class Stuck:
    """The release's latest revision is pending, with no helm left to finish it."""

    release: str
    namespace: str
    revision: int
    status: str
    updated: str  # helm's ISO time of the pending revision
    target: int | None  # the last deployed revision to roll back to; None: it never deployed

    @property
    def since(self) -> str:
        """`21:42:03 UTC, 14s ago`, or helm's text when it cannot be read."""
        try:  # helm writes RFC 3339 with nanoseconds and the local offset
            when = datetime.fromisoformat(self.updated).astimezone(UTC)
        except ValueError:
            return self.updated or "an unknown time"
        seconds = max(0, int(time.time() - when.timestamp()))
        return f"{when:%H:%M:%S} UTC, {seconds}s ago" if seconds < 3600 else f"{when:%Y-%m-%d %H:%M} UTC"

    def sentence(self) -> str:
        return (
            f"release {self.release} in namespace {self.namespace} is stuck in {self.status} "
            f"(revision {self.revision}, since {self.since}): the helm that started it was stopped "
            "before it could record the outcome, and helm refuses other operations until it is repaired."
        )

    def remedy(self) -> str:
        if self.target is None:
            return "uninstalls it (it never deployed, so nothing that served is lost)"
        return f"rolls it back to revision {self.target}, the last deployed one"

    def refusal(self, then: str = "") -> ExternalError:
        """The error install/upgrade/plan stop with: the state and the one command."""
        after = f", then {then}" if then else ""
        return ExternalError(
            f"{self.sentence()} Recover with: {RECOVER} (it {self.remedy()}){after}.",
            details=[
                "if another helm is still working on the release right now, wait for it instead.",
            ],
        )


def stuck_in(history: list[dict[str, Any]], release: str, namespace: str) -> Stuck | None:
    """Whether `helm history` (JSON, oldest first) ends in a pending revision."""
    if not history:
        return None
    latest = max(history, key=lambda h: int(h.get("revision") or 0))
    status = str(latest.get("status") or "")
    if status not in PENDING:
        return None
    # helm keeps the previous good revision `deployed` until a new one succeeds.
    deployed = [int(h["revision"]) for h in history if h.get("status") == "deployed" and h is not latest]
    return Stuck(
        release,
        namespace,
        int(latest.get("revision") or 0),
        status,
        str(latest.get("updated") or ""),
        max(deployed) if deployed else None,
    )


def find_stuck(helm: Helm) -> Stuck | None:
    """The release's stuck state, or None (also when there is no release)."""
    try:
        history = helm.history()
    except UsageError:  # no release
        return None
    return stuck_in(history, helm.release, helm.namespace)


def stuck_release(helm: Helm, deployed: DeployedRelease | None) -> Stuck | None:
    """Like find_stuck, asking helm's history only when `helm list` showed a pending state."""
    if deployed is None or deployed.status not in PENDING:
        return None
    return find_stuck(helm)


def recovery_argv(helm: Helm, stuck: Stuck, *, timeout: str) -> list[str]:
    """The helm command that repairs the release."""
    if stuck.target is None:
        return helm.uninstall_argv(timeout=timeout)
    return helm.rollback_argv(stuck.target, timeout=timeout)


def pending_advice(status: str | None) -> str | None:
    """For `status`: what a pending state means and the command that repairs it."""
    if status not in PENDING:
        return None
    what = "uninstalls it: it never deployed" if status == "pending-install" else "rolls it back"
    return (
        f"an interrupted helm left it {status}; unless another helm is working on it right now, "
        f"`{RECOVER}` repairs it ({what})"
    )


def after_interrupt(helm: Helm, before: DeployedRelease | None, signal_name: str) -> str:
    """The truth about the release once an interrupted helm has ended: what it recorded,
    what still serves, and what to run next."""
    try:
        now = helm.deployed()
    except ExternalError as e:
        return (
            f"interrupted ({signal_name}); the release's state could not be read ({e.message}): "
            "`vllmctl status` shows it."
        )
    release, namespace = helm.release, helm.namespace
    if now is None:
        return f"interrupted ({signal_name}) before helm created release {release}: nothing was installed."
    if before is not None and now.revision == before.revision:
        return (
            f"interrupted ({signal_name}) before helm changed release {release}: revision "
            f"{now.revision} ({now.status}) is unchanged."
        )
    if now.status in PENDING:
        stuck = stuck_release(helm, now)
        if stuck is not None:
            fix = f"Recover with: {RECOVER} (it {stuck.remedy()})."
            return f"interrupted ({signal_name}): {stuck.sentence()} {fix}"
    if now.status == "uninstalling":
        return (
            f"interrupted ({signal_name}): helm was stopped halfway through uninstalling release "
            f"{release} (revision {now.revision} is marked uninstalling, some objects may be left): "
            "`vllmctl uninstall` again finishes it."
        )
    if now.status == "deployed":
        return f"interrupted ({signal_name}), but helm had finished: revision {now.revision} is deployed."
    serving = (
        f"revision {before.revision} is still the deployed one (some of its pods may already be replaced)"
        if before is not None and before.status == "deployed"
        else "nothing of it was deployed"
    )
    return (
        f"interrupted ({signal_name}): helm stopped and recorded revision {now.revision} of release "
        f"{release} in namespace {namespace} as {now.status}; {serving}. Run the same command again to "
        "retry, or `vllmctl rollback` to go back."
    )
