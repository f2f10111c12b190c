"""`vllmctl export flux|argocd DIR`: the release as files a GitOps reconciler deploys
(docs/gitops.md), checked as install checks, written atomically or compared (`--check`).

The values are prepare()'s, the very ones install and plan use: against the deployed
release when the cluster answers, else (offline) against the release the earlier export in
DIR describes, which is what the reconciler deploys; with neither, as a new release. Which
rule was used is one of the notes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllmctl.cluster.helm import DeployedRelease, Helm
from vllmctl.cluster.kubectl import Kubectl, namespace_object
from vllmctl.core.errors import CatalogError, UsageError
from vllmctl.ops.deploy import Prepared, prepare
from vllmctl.render import gitops

TOOLS = ("flux", "argocd")
ESO_API = "external-secrets.io/v1"  # ESO 0.16+; offline export cannot ask which the cluster serves
# The file of each tool holding the values, and the key they sit under.
VALUES_FILE = {"flux": ("helmrelease.yaml", "values"), "argocd": ("application.yaml", "valuesObject")}


@dataclass
class Exported:
    """What export would write into `directory` (DIR/<release>), and what to tell the user."""

    tool: str
    directory: Path
    files: dict[str, str]  # file name -> text
    prepared: Prepared
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def stale(self) -> list[str]:
        """Files export writes that are in the directory but this export would not write."""
        return [n for n in gitops.ALL_FILES if n not in self.files and (self.directory / n).is_file()]

    def diff(self) -> str:
        """The unified diff from what DIR holds to what export would write ('' when equal)."""
        from vllmctl.core.fileio import read_bytes

        out: list[str] = []
        for name in sorted({*self.files, *self.stale()}):
            path = self.directory / name
            old = (read_bytes(path) or b"").decode("utf-8", errors="replace")
            new = self.files.get(name, "")
            out += difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"a/{self.directory.name}/{name}" if path.exists() else "/dev/null",
                f"b/{self.directory.name}/{name}" if name in self.files else "/dev/null",
            )
        ending = "\n\\ No newline at end of file\n"
        return "".join(line if line.endswith("\n") else line + ending for line in out)

    def write(self) -> list[str]:
        """Write the files (each atomically, only where it changes) and remove stale ones;
        the names of the files changed."""
        from vllmctl.core.fileio import atomic_write, locked, read_bytes

        self.directory.mkdir(parents=True, exist_ok=True)
        changed = []
        with locked(self.directory / "namespace.yaml"):
            for name, text in self.files.items():
                path = self.directory / name
                before, data = read_bytes(path), text.encode("utf-8")
                if before != data:
                    atomic_write(path, data, before)
                    changed.append(name)
            for name in self.stale():
                (self.directory / name).unlink()
                changed.append(name)
        return changed


def chart_source(settings: Any) -> gitops.ChartSource:
    """The chart as a reconciler fetches it: VLLM_CHART's repository (VLLM_CHART_REPO) or
    oci:// registry, at the exact version. A local chart is refused: the reconciler runs in
    the cluster and cannot read a path on this machine."""
    from vllmctl.chart.version import local_chart
    from vllmctl.core.setting_names import ENV_CHART, ENV_CHART_REPO

    ref = str(settings.chart)
    if local_chart(ref) is not None:
        raise UsageError(
            f"{ENV_CHART}={ref} is a local chart, which Flux or Argo CD in the cluster cannot read; "
            f"export needs the chart from a repository: {ENV_CHART}=vllm/vllm-stack with "
            f"{ENV_CHART_REPO}, or an oci:// reference (package and push a modified chart first)."
        )
    version = settings.chart_version
    if ref.startswith("oci://"):
        registry, _, name = ref.rstrip("/").rpartition("/")
        return gitops.ChartSource(name, version, registry, name)
    if ref.count("/") != 1:
        raise UsageError(
            f"{ENV_CHART}={ref!r} is not a repo reference like vllm/vllm-stack (repository/chart) or oci://..."
        )
    repo_name, name = ref.split("/")
    return gitops.ChartSource(name, version, str(settings.chart_repo), repo_name)


def previous_release(directory: Path, tool: str) -> DeployedRelease | None:
    """The release an earlier export in `directory` describes (its values and chart
    version), standing for the deployed release offline; None when there is none."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from vllmctl.core.fileio import read_bytes

    name, key = VALUES_FILE[tool]
    data = read_bytes(directory / name)
    if data is None:
        return None
    try:
        obj = YAML(typ="safe", pure=True).load(data.decode("utf-8"))
        spec = obj["spec"]
        if tool == "flux":
            values, version = spec[key], spec["chart"]["spec"]["version"]
        else:
            values, version = spec["source"]["helm"][key], spec["source"]["targetRevision"]
    except (YAMLError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CatalogError(
            f"{directory / name} is not a file `vllmctl export {tool}` wrote ({exc}); "
            "move it away, or export into another directory."
        ) from None
    if not isinstance(values, dict):
        raise CatalogError(f"{directory / name}: spec's {key} is not a mapping; move the file away.")
    return DeployedRelease(0, "exported", str(version), values)


def referenced_secrets(values: dict[str, Any]) -> frozenset[str]:
    """The Secrets (hf-token, vllm-api-key) the values reference: offline, those the earlier
    export references exist as far as export knows (the reconciler, or ESO, made them)."""
    engine, router = values.get("servingEngineSpec") or {}, values.get("routerSpec") or {}
    refs = [s.get("hf_token") for s in engine.get("modelSpec") or [] if isinstance(s, dict)]
    refs += [engine.get("vllmApiKey"), router.get("vllmApiKey")]
    return frozenset(str(r["secretName"]) for r in refs if isinstance(r, dict) and r.get("secretName"))


def export(
    settings: Any,
    tool: str,
    root: Path,
    *,
    helm: Helm | None,
    kubectl: Kubectl | None,
    gated: Any,
    target: gitops.Target,
) -> Exported:
    """The files for `tool` in root/<release>, checked as install checks them: the models
    valid, the chart version's rules, no Deployment selector change, the gated models'
    token. With `helm`/`kubectl` (the cluster answered) against the deployed release."""
    directory = root / settings.release
    offline = helm is None
    previous = previous_release(directory, tool) if offline else None
    known = referenced_secrets(previous.values) if previous else frozenset()
    prepared = prepare(settings, helm=helm, kubectl=kubectl, previous=previous, known_secrets=known)
    chart = chart_source(settings)
    notes = list(prepared.notes)
    notes.append(_rule(settings, prepared, offline=offline, previous=previous is not None))
    if prepared.plan.blockers:
        raise UsageError(
            "the reconciler's upgrade would fail: " + "; ".join(prepared.plan.blockers),
            details=["`vllmctl upgrade --replace-deployments` moves the release across, then export again."],
        )
    _check_gated(settings, prepared, gated(prepared.models))
    values = prepared.rendered
    files = {"namespace.yaml": gitops.namespace_file(tool, target, namespace_object(settings.namespace))}
    if tool == "flux":
        files.update(gitops.flux_files(target, chart, values.text))
    else:
        labels = namespace_object(settings.namespace)["metadata"]["labels"]
        files.update(gitops.argocd_files(target, chart, values.text, labels))
    secrets, why = external_secrets(settings, prepared, kubectl)
    if secrets:
        files["externalsecrets.yaml"] = gitops.header(tool, target) + secrets
    if why:
        notes.append(why)
    _check_embedded(files, tool, values.text, values.values)
    return Exported(tool, directory, dict(sorted(files.items())), prepared, notes, list(prepared.warnings))


def _rule(settings: Any, prepared: Prepared, *, offline: bool, previous: bool) -> str:
    """Which deployed release the values were rendered against, said plainly."""
    chart = settings.chart_target.shown
    if not offline:
        if prepared.deployed is None:
            return f"the cluster has no release {settings.release}: values for a new release, chart {chart}."
        return f"values against the deployed release {settings.release} (its labels kept), chart {chart}."
    if previous:
        return (
            f"offline: the earlier export in the directory stands for the deployed release (its labels "
            f"kept, and its chart version unless VLLM_CHART_VERSION says otherwise), chart {chart}."
        )
    return (
        "offline, and no earlier export: values for a new release (release-scoped selector labels, "
        f"`vllmctl.io/release`), chart {chart}; a release deployed with other labels keeps them only "
        "when export can read it: run it once where the cluster answers."
    )


def _check_gated(settings: Any, prepared: Prepared, needing: list[str]) -> None:
    """Gated models need the values to reference Secret hf-token: install stores or syncs
    the token, but a reconciler only applies files, so export refuses instead."""
    from vllmctl.core.setting_names import ENV_HF_TOKEN_FROM_SECRET

    if not needing:
        return
    specs = (prepared.rendered.values.get("servingEngineSpec") or {}).get("modelSpec") or []
    missing = [s.get("name") for s in specs if s.get("name") in needing and not s.get("hf_token")]
    if missing:
        names = ", ".join(str(n) for n in missing)
        raise UsageError(
            f"{names} {'is' if len(missing) == 1 else 'are'} gated, but the values reference no Secret "
            f"hf-token, so the engines could not download {'it' if len(missing) == 1 else 'them'}: store "
            f"the token (`vllmctl set-hf-token`), then export where the cluster has Secret hf-token, or "
            f"set {ENV_HF_TOKEN_FROM_SECRET}=true (with the Vault backend, externalsecrets.yaml makes it)."
        )


def external_secrets(settings: Any, prepared: Prepared, kubectl: Kubectl | None) -> tuple[str, str | None]:
    """With the Vault backend: the ExternalSecrets (as install applies them) for the Secrets
    the values reference, as one YAML stream; and a note when the backend was not chosen."""
    from vllmctl.secrets import external
    from vllmctl.secrets.specs import API_KEY, HF_TOKEN

    mode = str(settings.secret_backend or "auto").strip().lower()
    if mode not in ("auto", "vault", "kubernetes"):
        raise UsageError(
            f"--secret-backend/VLLM_SECRET_BACKEND={settings.secret_backend!r} is not one of "
            "auto, vault, kubernetes."
        )
    referenced = referenced_secrets(prepared.rendered.values)
    kinds = [kind for kind in (HF_TOKEN, API_KEY) if kind.ref.secret_name in referenced]
    if not kinds or mode == "kubernetes":
        return "", None
    if mode == "auto":
        served = _serves_external_secrets(settings) if kubectl is not None else None
        if not (served and settings.vault_addr):
            why = (
                "offline"
                if kubectl is None
                else "the cluster serves no ExternalSecrets or VAULT_ADDR is unset"
            )
            return "", (
                f"no externalsecrets.yaml: the secret backend is auto and {why}; "
                "--secret-backend vault writes the ExternalSecrets for the Secrets the values reference."
            )
    docs = []
    for kind in kinds:
        obj = external.manifest(kind, settings, ESO_API, force_sync=False)
        docs.append(gitops.block(obj))
    return "---\n".join(docs), None


def _serves_external_secrets(settings: Any) -> bool | None:
    from vllmctl.cluster.kube import ServedKinds

    with ServedKinds(settings) as served:
        return served("external-secrets.io", "v1", "externalsecrets")


def _check_embedded(files: dict[str, str], tool: str, text: str, values: dict[str, Any]) -> None:
    """The values in the file must read back as render's, and its lines be render's: a
    copied template whose text cannot sit under a key (a `---` or `%YAML` line) is refused."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    name, key = VALUES_FILE[tool]
    try:
        spec = YAML(typ="safe", pure=True).load(files[name])["spec"]
        found = spec[key] if tool == "flux" else spec["source"]["helm"][key]
    except (YAMLError, KeyError, TypeError):
        found = None
    if found != values or gitops.values_text(files[name], key) != text:
        raise CatalogError(
            f"the rendered values cannot be placed in {name} unchanged (check the templates: a copy in "
            "VLLM_TEMPLATES_DIR may start a second YAML document)."
        )
