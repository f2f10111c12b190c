"""The files a GitOps reconciler deploys the release from (docs/gitops.md): a Flux
HelmRelease and HelmRepository, or an Argo CD Application, each with the rendered values
inline, exactly as `vllmctl render` writes them.

Pure text: nothing here reads a file or a cluster (ops/export.py does). The values text is
placed under its key indented as a block, not parsed and dumped again, so the lines in the
file are render's lines byte for byte (`values_text` takes them back out); everything
else is written by `block`, which quotes every scalar as JSON (as the values templates
do), so no name or URL can add a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vllmctl.render.values import to_yaml, to_yaml_key

FLUX_HELM_API = "helm.toolkit.fluxcd.io/v2"
FLUX_SOURCE_API = "source.toolkit.fluxcd.io/v1"
ARGOCD_API = "argoproj.io/v1alpha1"
ARGOCD_IN_CLUSTER = "https://kubernetes.default.svc"
MANAGED_BY = {"app.kubernetes.io/managed-by": "vllmctl"}
# Every file export may write into DIR/<release>/; one the current export does not write
# is stale (another tool's, or an ExternalSecret no longer needed) and goes.
ALL_FILES = (
    "helmrelease.yaml",
    "helmrepository.yaml",
    "application.yaml",
    "namespace.yaml",
    "externalsecrets.yaml",
)


@dataclass(frozen=True)
class ChartSource:
    """Where the reconciler fetches the chart: a helm repository (https) or an OCI registry."""

    name: str  # the chart's name: vllm-stack
    version: str  # the exact version, never a range: the values are rendered for it
    url: str  # https://vllm-project.github.io/production-stack, or oci://host/path
    repo_name: str  # the HelmRepository's name (VLLM_CHART's repo part: vllm)

    @property
    def oci(self) -> bool:
        return self.url.startswith("oci://")


@dataclass(frozen=True)
class Target:
    """What the files name: the release, where it goes, and the Argo CD specifics."""

    release: str
    namespace: str
    environment: str | None
    argocd_namespace: str = "argocd"
    argocd_project: str = "default"
    destination_server: str = ARGOCD_IN_CLUSTER


def header(tool: str, target: Target) -> str:
    """The first line of every file: who wrote it and how to change it. No time or path in
    it, so `--check` on another machine reads the same bytes."""
    env = f" --env {target.environment}" if target.environment else ""
    return (
        f"# Written by `vllmctl export {tool}{env}` from models.yaml: change models.yaml and "
        "export again, not this file.\n"
    )


def block(value: dict[str, Any], indent: int = 0) -> str:
    """A mapping as block YAML: nested mappings as blocks, every other value (scalars,
    lists) as JSON on its key's line."""
    pad = " " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(f"{pad}{to_yaml_key(key)}:\n{block(item, indent + 2)}")
        else:
            lines.append(f"{pad}{to_yaml_key(key)}: {to_yaml(item)}\n")
    return "".join(lines)


def embed(values_text: str, indent: int) -> str:
    """Render's values text as the block under a key, every line indented by `indent`."""
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in values_text.splitlines(keepends=True))


def values_text(document: str, key: str) -> str | None:
    """The values block under `key` (`values`, `valuesObject`) taken back out of a file this
    module wrote, de-indented: render's text byte for byte. None when there is none."""
    lines = document.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.rstrip("\n").lstrip() == f"{key}:":
            indent = len(line) - len(line.lstrip()) + 2
            return "".join(body[indent:] if body.strip() else body for body in lines[number + 1 :])
    return None


def namespace_file(tool: str, target: Target, namespace_object: dict[str, Any]) -> str:
    return header(tool, target) + block(namespace_object)


def flux_files(target: Target, chart: ChartSource, values: str) -> dict[str, str]:
    """helmrelease.yaml and helmrepository.yaml. The HelmRelease sits in the release's
    namespace with its source, names the release itself (Flux would otherwise prefix it
    with the namespace), and retries a failed install or upgrade before rolling back."""
    repository: dict[str, Any] = {
        "apiVersion": FLUX_SOURCE_API,
        "kind": "HelmRepository",
        "metadata": {"name": chart.repo_name, "namespace": target.namespace, "labels": MANAGED_BY},
        "spec": {"interval": "1h", "url": chart.url, **({"type": "oci"} if chart.oci else {})},
    }
    release: dict[str, Any] = {
        "apiVersion": FLUX_HELM_API,
        "kind": "HelmRelease",
        "metadata": {"name": target.release, "namespace": target.namespace, "labels": MANAGED_BY},
        "spec": {
            "releaseName": target.release,
            "interval": "10m",
            "timeout": "30m",  # as install's helm --timeout: model downloads are slow
            "chart": {
                "spec": {
                    "chart": chart.name,
                    "version": chart.version,
                    "sourceRef": {
                        "kind": "HelmRepository",
                        "name": chart.repo_name,
                        "namespace": target.namespace,
                    },
                    "interval": "1h",
                }
            },
            "install": {"remediation": {"retries": 3}},
            "upgrade": {"remediation": {"retries": 3, "remediateLastFailure": True}},
        },
    }
    # `values` goes last in spec, so the indented block closes the document.
    release_text = header("flux", target) + block(release) + "  values:\n" + embed(values, 4)
    return {
        "helmrelease.yaml": release_text,
        "helmrepository.yaml": header("flux", target) + block(repository),
    }


def argocd_files(target: Target, chart: ChartSource, values: str, labels: dict[str, str]) -> dict[str, str]:
    """application.yaml. `labels`: the namespace's (Pod Security), which Argo CD sets on the
    namespace it creates (managedNamespaceMetadata).

    The model caches: the chart 0.1.10+ annotates them `helm.sh/resource-policy: keep`,
    which Argo CD (2.8+) honours as `Delete=false`: deleting the Application leaves them.
    Automated sync does not prune (a model removed from models.yaml would lose its cache
    PVC to a prune, whatever it is annotated with); and no resources finalizer, so deleting
    the Application deletes nothing. docs/gitops.md says how to prune a removed model."""
    repo_url = chart.url.removeprefix("oci://")  # Argo CD names OCI repositories without the scheme
    application: dict[str, Any] = {
        "apiVersion": ARGOCD_API,
        "kind": "Application",
        "metadata": {"name": target.release, "namespace": target.argocd_namespace, "labels": MANAGED_BY},
        "spec": {
            "project": target.argocd_project,
            "destination": {"server": target.destination_server, "namespace": target.namespace},
            "syncPolicy": {
                "automated": {"prune": False, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
                "managedNamespaceMetadata": {"labels": labels},
                "retry": {"limit": 3, "backoff": {"duration": "30s", "factor": 2, "maxDuration": "10m"}},
            },
            "source": {
                "repoURL": repo_url,
                "chart": chart.name,
                "targetRevision": chart.version,
                "helm": {"releaseName": target.release},
            },
        },
    }
    # source.helm.valuesObject goes last at every level, so the indented block closes the document.
    text = header("argocd", target) + block(application) + "      valuesObject:\n" + embed(values, 8)
    return {"application.yaml": text}
