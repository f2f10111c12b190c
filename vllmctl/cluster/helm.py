"""helm, run (never imitated): the command lines vllmctl builds, and the runs.

Command lines are built by pure methods (`*_argv`), so tests check them without a cluster;
`run`/`stream` in vllmctl.cluster.tools execute them. The namespace and kube context are always
passed explicitly, never taken from helm's own state. Values reach helm through a private
temporary file (mode 0600) that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllmctl.cluster import tools
from vllmctl.core.errors import ExternalError, UsageError, cluster_unreachable

HOW_TO_GET_HELM = "Install helm 3.8 or newer (https://helm.sh/docs/intro/install/), or point VLLM_HELM at it."
MIN_VERSION = (3, 8, 0)


def parse_version(text: str) -> tuple[int, int, int]:
    """`v3.14.2+gabc` -> (3, 14, 2)."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
    if not match:
        raise ExternalError(f"cannot read helm's version from {text.strip()!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclass(frozen=True)
class ChartRef:
    """Where the chart comes from: a repo reference (`vllm/vllm-stack`), a directory, a
    .tgz, or an oci:// reference; `version` is None for a local chart (helm installs the
    files as they are: `--version` means nothing for them)."""

    ref: str
    version: str | None
    repo_url: str

    @property
    def is_repo(self) -> bool:
        from vllmctl.chart.version import local_chart

        return not self.ref.startswith("oci://") and local_chart(self.ref) is None

    def version_argv(self) -> list[str]:
        return ["--version", self.version] if self.version else []

    @property
    def repo_name(self) -> str:
        return self.ref.split("/", 1)[0]


@dataclass
class Helm:
    """helm for one release in one namespace (and kube context)."""

    binary: str
    namespace: str
    release: str
    context: str | None = None
    known_version: tuple[int, int, int] | None = None  # else asked of the binary once

    @classmethod
    def find(cls, override: str | None, namespace: str, release: str, context: str | None) -> Helm:
        """helm from VLLM_HELM or PATH, checked to be a version vllmctl supports."""
        helm = cls(tools.find_tool("helm", override, HOW_TO_GET_HELM), namespace, release, context)
        if helm.version < MIN_VERSION:
            found = ".".join(map(str, helm.version))
            raise UsageError(f"helm {found} is too old; vllmctl needs 3.8 or newer. {HOW_TO_GET_HELM}")
        return helm

    @property
    def version(self) -> tuple[int, int, int]:
        if self.known_version is None:
            self.known_version = parse_version(
                tools.run([self.binary, "version", "--template", "{{.Version}}"])
            )
        return self.known_version

    # ---------------------------------------------------------------- command lines
    def _scope(self) -> list[str]:
        scope = ["--namespace", self.namespace]
        if self.context:
            scope += ["--kube-context", self.context]
        return scope

    def repo_add_argv(self, chart: ChartRef) -> list[str]:
        return [self.binary, "repo", "add", chart.repo_name, chart.repo_url, "--force-update"]

    def repo_update_argv(self, chart: ChartRef) -> list[str]:
        return [self.binary, "repo", "update", chart.repo_name]

    def repo_remove_argv(self, name: str) -> list[str]:
        return [self.binary, "repo", "remove", name]

    def template_argv(self, chart: ChartRef, values: Path) -> list[str]:
        return [
            self.binary,
            "template",
            self.release,
            chart.ref,
            *chart.version_argv(),
            "--namespace",
            self.namespace,
            "--values",
            str(values),
        ]

    def upgrade_argv(
        self,
        chart: ChartRef,
        values: Path,
        *,
        install: bool,
        timeout: str,
        atomic: bool = False,
        wait: bool = True,
    ) -> list[str]:
        argv = [self.binary, "upgrade", self.release, chart.ref, *chart.version_argv(), *self._scope()]
        if install:
            argv.append("--install")
        argv += ["--values", str(values), "--timeout", timeout]
        if wait:
            argv.append("--wait")
        if atomic:
            # helm 4 renamed --atomic to --rollback-on-failure.
            argv.append("--rollback-on-failure" if self.version >= (4, 0, 0) else "--atomic")
        return argv

    def uninstall_argv(self, *, timeout: str) -> list[str]:
        return [self.binary, "uninstall", self.release, *self._scope(), "--wait", "--timeout", timeout]

    def history_argv(self) -> list[str]:
        return [self.binary, "history", self.release, *self._scope(), "--output", "json"]

    def rollback_argv(self, revision: int | None, *, timeout: str) -> list[str]:
        argv = [self.binary, "rollback", self.release]
        if revision is not None:
            argv.append(str(revision))
        return [*argv, *self._scope(), "--wait", "--timeout", timeout]

    def get_values_argv(self) -> list[str]:
        return [self.binary, "get", "values", self.release, *self._scope(), "--output", "json"]

    def list_argv(self) -> list[str]:
        # Releases in every state (failed, pending too): helm 4 lists them all by default,
        # helm 3 only with --all (a flag helm 4 no longer has).
        every_state = ["--all"] if self.version < (4, 0, 0) else []
        release = f"^{re.escape(self.release)}$"
        return [self.binary, "list", *self._scope(), *every_state, "--filter", release, "-o", "json"]

    # ---------------------------------------------------------------- runs
    def run(self, argv: list[str]) -> str:
        """Run a helm command to completion; a cluster helm cannot reach is one sentence."""
        try:
            return tools.run(argv)
        except tools.ToolError as exc:
            raise self.explained(exc) from None

    def explained(self, exc: tools.ToolError) -> ExternalError:
        """helm's failure in vllmctl's words where it is a known one (the cluster out of
        reach), else as helm said it."""
        found = UNREACHABLE.search(exc.stderr)
        if found is None:
            return exc
        return cluster_unreachable(
            found.group("server"), found.group("why").strip(), self.context, tool="helm"
        )

    def listed(self) -> dict[str, Any] | None:
        """The release's entry in `helm list` (any state), or None when there is none."""
        listed = json.loads(self.run(self.list_argv()) or "[]")
        entry: dict[str, Any] | None = next((r for r in listed if r.get("name") == self.release), None)
        return entry

    def deployed(self) -> DeployedRelease | None:
        """The release as helm knows it, or None when there is none."""
        entry = self.listed()
        if entry is None:
            return None
        values = json.loads(self.run(self.get_values_argv()) or "null") or {}
        return DeployedRelease.from_helm(entry, values)

    def history(self) -> list[dict[str, Any]]:
        try:
            history: list[dict[str, Any]] = json.loads(tools.run(self.history_argv()))
        except tools.ToolError as exc:
            if is_not_found(exc):
                raise UsageError(
                    f"there is no release {self.release!r} in namespace {self.namespace!r}."
                ) from None
            raise self.explained(exc) from None
        return history

    def rollback_target(self, revision: int | None, history: list[dict[str, Any]]) -> int:
        """The revision a rollback goes to (None: the one before the current), refused when
        `history` (helm history's JSON, read once by the caller) has no such revision."""
        revisions = sorted(int(r["revision"]) for r in history if "revision" in r)
        if revision is None:
            if len(revisions) < 2:
                only = f"only revision {revisions[-1]}" if revisions else "no revision"
                raise UsageError(f"release {self.release} has {only}; nothing to roll back to.")
            return revisions[-2]
        if revision not in revisions:
            listed = ", ".join(map(str, revisions))
            raise UsageError(
                f"release {self.release} has no revision {revision} (helm keeps {listed}): "
                "`vllmctl history` lists them."
            )
        return revision


# helm's words for a cluster it cannot reach (`Kubernetes` in helm 3, `kubernetes` in 4):
# `kubernetes cluster unreachable: Get "https://host:6443/version": dial tcp ...: connect:
# connection refused`. `why` is the last part: "connection refused", "TLS handshake timeout".
UNREACHABLE = re.compile(
    r"kubernetes cluster unreachable: "
    r'(?:\w+ "(?P<server>https?://[^/"]+)[^"]*": )?(?:.*: )?(?P<why>[^:\n]+)$',
    re.MULTILINE | re.IGNORECASE,
)


def is_not_found(exc: tools.ToolError) -> bool:
    """Whether helm failed because the release does not exist (uninstall, history, status)."""
    return "release: not found" in exc.stderr


@dataclass(frozen=True)
class DeployedRelease:
    """What `helm list` and `helm get values` say about a deployed release."""

    revision: int
    status: str
    chart_version: str
    values: dict[str, Any]

    @classmethod
    def from_helm(cls, entry: dict[str, Any], values: dict[str, Any]) -> DeployedRelease:
        chart = str(entry.get("chart", ""))  # e.g. "vllm-stack-0.1.9"
        version = chart.rsplit("-", 1)[-1] if "-" in chart else chart
        return cls(int(entry.get("revision", 0)), str(entry.get("status", "")), version, values)


@contextlib.contextmanager
def private_values_file(text: str) -> Iterator[Path]:
    """The values in a file only we can read (0600), removed when the block ends."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix="vllmctl-values-", suffix=".yaml")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def is_no_repo(exc: tools.ToolError) -> bool:
    """Whether `helm repo remove` failed because there is no such repository (helm 3 and 4)."""
    return "no repo named" in exc.stderr or "no repositories configured" in exc.stderr
