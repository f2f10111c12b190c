"""kubectl, run for the few cluster steps helm does not do: the namespace and its Pod
Security labels, whether a Secret exists, and deleting Deployments whose selector a chart
upgrade changes. Command lines are built by pure functions so tests can check them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from vllmctl.cluster import tools
from vllmctl.core.errors import cluster_unreachable

HOW_TO_GET_KUBECTL = "Install kubectl (https://kubernetes.io/docs/tasks/tools/), or point VLLM_KUBECTL at it."
# Pod Security admission: engines need no privileges beyond "baseline".
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "baseline",
    "pod-security.kubernetes.io/warn-version": "latest",
}


def namespace_object(namespace: str) -> dict[str, Any]:
    """The namespace as install creates it (also what `export` writes to namespace.yaml)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {**POD_SECURITY, "app.kubernetes.io/managed-by": "vllmctl"},
        },
    }


@dataclass
class Kubectl:
    binary: str
    context: str | None = None

    @classmethod
    def find(cls, override: str | None, context: str | None) -> Kubectl:
        return cls(tools.find_tool("kubectl", override, HOW_TO_GET_KUBECTL), context)

    def _argv(self, *args: str) -> list[str]:
        scope = ["--context", self.context] if self.context else []
        return [self.binary, *scope, *args]

    def _run(self, argv: list[str], input: str | None = None) -> str:
        """Run kubectl; a cluster it cannot reach is one sentence with the fix."""
        try:
            return tools.run(argv, input=input)
        except tools.ToolError as exc:
            for pattern in UNREACHABLE:
                if found := pattern.search(exc.stderr):
                    parts = found.groupdict()
                    why = parts.get("why") or "connection refused"
                    raise cluster_unreachable(
                        parts.get("server"), why.strip(), self.context, tool="kubectl"
                    ) from None
            raise

    def namespace_manifest(self, namespace: str) -> str:
        return json.dumps(namespace_object(namespace))

    def apply_namespace_argv(self) -> list[str]:
        # Server-side apply: creates the namespace or sets just these labels on it.
        return self._argv("apply", "--server-side", "--field-manager=vllmctl", "--force-conflicts", "-f", "-")

    def ensure_namespace(self, namespace: str) -> None:
        self._run(self.apply_namespace_argv(), input=self.namespace_manifest(namespace))

    def exists_argv(self, kind: str, name: str, namespace: str | None) -> list[str]:
        scope = ["--namespace", namespace] if namespace else []
        return self._argv("get", kind, name, *scope, "--ignore-not-found", "--output", "name")

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        return bool(self._run(self.exists_argv(kind, name, namespace)).strip())

    def existing(self, kind: str, names: list[str], namespace: str | None) -> list[str]:
        """Those of the named objects that exist."""
        if not names:
            return []
        scope = ["--namespace", namespace] if namespace else []
        argv = self._argv("get", kind, *names, *scope, "--ignore-not-found", "--output", "name")
        return [line.split("/", 1)[-1] for line in self._run(argv).split()]

    def names_argv(self, kind: str, namespace: str, selector: str | None = None) -> list[str]:
        select = ["--selector", selector] if selector else []
        return self._argv("get", kind, "--namespace", namespace, *select, "--output", "name")

    def names(self, kind: str, namespace: str, selector: str | None = None) -> list[str]:
        return self._run(self.names_argv(kind, namespace, selector)).split()

    def delete_argv(self, kind: str, names: list[str], namespace: str | None) -> list[str]:
        scope = ["--namespace", namespace] if namespace else []
        # `--output name`: one `kind/name` line per object deleted, none for one not there.
        return self._argv(
            "delete", kind, *names, *scope, "--ignore-not-found", "--wait=true", "--output", "name"
        )

    def delete(self, kind: str, names: list[str], namespace: str | None = None) -> list[str]:
        """Delete the named objects that exist; the names of those deleted."""
        if not names:
            return []
        deleted = self._run(self.delete_argv(kind, names, namespace)).split()
        return [line.split("/", 1)[-1] for line in deleted]


# kubectl's words for a cluster it cannot reach: "The connection to the server HOST:PORT was
# refused - did you specify the right host or port?"; a request's `Get "URL": dial tcp ...:
# connect: connection refused` (apply's OpenAPI download); "Unable to connect to the server: WHY".
UNREACHABLE = (
    re.compile(r"The connection to the server (?P<server>\S+) was refused"),
    re.compile(
        r'"(?P<server>https?://[^/"]+)[^"]*": (?:dial tcp \S+: )?(?:[a-z]+: )*'
        r"(?P<why>connection refused|no such host|i/o timeout|no route to host|TLS handshake timeout)"
    ),
    re.compile(r"Unable to connect to the server: (?:.*: )?(?P<why>[^:\n]+)$", re.MULTILINE),
)
