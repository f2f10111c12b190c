"""`vllmctl export flux|argocd DIR` (issue 19, docs/gitops.md): the files parse, hold
render's values byte for byte and no secret value, the real helm renders the same objects
from them as `vllmctl template`, `--check` tells equal from changed, install's checks
refuse, and the sandbox's API server (serving the GitOps kinds as plain CRDs) takes every
file with `kubectl apply --dry-run=server`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.sandbox.fixtures import REPO, mini_chart_at, need_tools, release_on, running_sandbox
from tests.sandbox.sandbox import Sandbox, SandboxConfig
from vllmctl.render.gitops import values_text

EXAMPLES = REPO / "docs" / "examples"
TOOLS = ("flux", "argocd")
FILES = {
    "flux": {"helmrelease.yaml", "helmrepository.yaml", "namespace.yaml"},
    "argocd": {"application.yaml", "namespace.yaml"},
}
KINDS = {
    "helmrelease.yaml": ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    "helmrepository.yaml": ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
    "application.yaml": ("argoproj.io/v1alpha1", "Application"),
    "namespace.yaml": ("v1", "Namespace"),
}
VALUES_KEY = {"flux": ("helmrelease.yaml", "values"), "argocd": ("application.yaml", "valuesObject")}
# Secret values in vllmctl's environment: no exported file may hold them.
TOKEN = "hf_ExportCanaryToken0123456789abcdefghij"
API_KEY = "ExportCanaryApiKey0123456789abcdefghijklmnopqr"
ONE = "- name: small\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n  requestGPU: 1\n  gated: false\n"


def exported_values(directory: Path, tool: str) -> dict[str, Any]:
    """The values object inside the HelmRelease or the Application, as the reconciler reads it."""
    name, key = VALUES_KEY[tool]
    spec = yaml.safe_load((directory / name).read_text())["spec"]
    found: dict[str, Any] = spec[key] if tool == "flux" else spec["source"]["helm"][key]
    return found


@pytest.fixture
def examples(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """docs/examples/ as the working directory; the gated llama3 has its Secret (set-hf-token made it)."""
    for path in EXAMPLES.iterdir():
        if path.is_file():  # production-stack/ is an example of its own (its own test)
            shutil.copy(path, isolated / path.name)
    monkeypatch.setenv("VLLM_HF_TOKEN_FROM_SECRET", "true")
    return isolated


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("env", [None, "dev", "prod"])
def test_every_example_environment_exports_renders_values(
    run: Run, examples: Path, tool: str, env: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_HF_TOKEN", TOKEN)
    monkeypatch.setenv("VLLM_API_KEY", API_KEY)
    selected = ("--env", env) if env else ()
    done = run("export", tool, "out", "--offline", *selected)
    assert done.exit_code == 0, done.output
    assert "offline, and no earlier export: values for a new release" in done.stderr
    release = "vllm"
    directory = examples / "out" / release
    assert {p.name for p in directory.iterdir()} == FILES[tool]
    for path in directory.iterdir():
        text = path.read_text()
        assert TOKEN not in text and API_KEY not in text
        (doc,) = list(yaml.safe_load_all(text))
        assert (doc["apiVersion"], doc["kind"]) == KINDS[path.name]
    rendered = run("render", *selected)
    assert rendered.exit_code == 0
    name, key = VALUES_KEY[tool]
    # byte for byte what `vllmctl render` prints, and the same data read back
    assert values_text((directory / name).read_text(), key) == rendered.stdout
    assert exported_values(directory, tool) == yaml.safe_load(rendered.stdout)
    namespace = yaml.safe_load((directory / "namespace.yaml").read_text())
    expected_ns = {None: "vllm", "dev": "vllm-dev", "prod": "vllm-prod"}[env]
    assert namespace["metadata"]["name"] == expected_ns
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_flux_files_name_chart_repository_version_and_remediation(run: Run, examples: Path) -> None:
    assert run("export", "flux", "gitops", "--offline", "--env", "prod").exit_code == 0
    directory = examples / "gitops" / "vllm"
    release = yaml.safe_load((directory / "helmrelease.yaml").read_text())
    repository = yaml.safe_load((directory / "helmrepository.yaml").read_text())
    chart = release["spec"]["chart"]["spec"]
    assert chart["chart"] == "vllm-stack" and chart["version"] == "0.1.12"  # vllmctl.yaml's chartVersion
    assert chart["sourceRef"] == {"kind": "HelmRepository", "name": "vllm", "namespace": "vllm-prod"}
    assert release["metadata"]["namespace"] == "vllm-prod" and release["spec"]["releaseName"] == "vllm"
    assert release["spec"]["install"]["remediation"]["retries"] > 0
    assert release["spec"]["upgrade"]["remediation"]["remediateLastFailure"] is True
    assert repository["metadata"]["name"] == "vllm"
    assert repository["spec"]["url"] == "https://vllm-project.github.io/production-stack"


def test_argocd_application_keeps_the_caches_and_creates_the_namespace(run: Run, examples: Path) -> None:
    done = run("export", "argocd", "gitops", "--offline", "--env", "dev", "--argocd-namespace", "gitops")
    assert done.exit_code == 0, done.output
    app = yaml.safe_load((examples / "gitops" / "vllm" / "application.yaml").read_text())
    assert app["metadata"]["namespace"] == "gitops"
    spec = app["spec"]
    assert spec["source"]["chart"] == "vllm-stack" and spec["source"]["targetRevision"] == "0.1.12"
    assert spec["source"]["repoURL"] == "https://vllm-project.github.io/production-stack"
    assert spec["destination"]["namespace"] == "vllm-dev"
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    assert spec["syncPolicy"]["managedNamespaceMetadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    assert spec["syncPolicy"]["automated"]["prune"] is False  # a removed model's cache PVC is not pruned
    assert "finalizers" not in app["metadata"]  # deleting the Application deletes nothing
    # chart 0.1.10+: the caches carry helm's keep policy, which Argo CD 2.8+ takes as Delete=false
    for model in spec["source"]["helm"]["valuesObject"]["servingEngineSpec"]["modelSpec"]:
        assert model["pvcAnnotations"] == {"helm.sh/resource-policy": "keep"}


@pytest.mark.parametrize("tool", TOOLS)
def test_check_equal_then_changed(run: Run, examples: Path, tool: str) -> None:
    assert run("export", tool, "gitops", "--offline", "--env", "prod").exit_code == 0
    name = VALUES_KEY[tool][0]
    before = (examples / "gitops" / "vllm" / name).read_text()
    same = run("export", tool, "gitops", "--offline", "--env", "prod", "--check")
    assert same.exit_code == 0, same.output
    assert same.stdout == ""
    prod = examples / "models.prod.yaml"
    prod.write_text(prod.read_text().replace("gpuMemoryUtilization: 0.92", "gpuMemoryUtilization: 0.85"))
    changed = run("export", tool, "gitops", "--offline", "--env", "prod", "--check")
    assert changed.exit_code == 1
    assert changed.stdout.startswith(f"--- a/vllm/{name}\n+++ b/vllm/{name}\n")
    assert "-" in changed.stdout and '"gpuMemoryUtilization": "0.92"' in changed.stdout
    assert '"gpuMemoryUtilization": "0.85"' in changed.stdout
    assert (examples / "gitops" / "vllm" / name).read_text() == before  # --check writes nothing
    # a missing directory differs too: every file is new
    fresh = run("export", tool, "elsewhere", "--offline", "--env", "prod", "--check")
    assert fresh.exit_code == 1 and "--- /dev/null" in fresh.stdout
    assert not (examples / "elsewhere").exists()


def test_another_tools_files_are_removed(run: Run, examples: Path) -> None:
    assert run("export", "flux", "gitops", "--offline").exit_code == 0
    done = run("export", "argocd", "gitops", "--offline")
    assert done.exit_code == 0
    assert {p.name for p in (examples / "gitops" / "vllm").iterdir()} == FILES["argocd"]
    assert "helmrelease.yaml" in done.stderr


def test_vault_backend_writes_the_external_secrets_without_values(
    run: Run, examples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY_FROM_SECRET", "true")
    monkeypatch.setenv("VLLM_HF_TOKEN", TOKEN)
    monkeypatch.setenv("VLLM_API_KEY", API_KEY)
    done = run("export", "flux", "gitops", "--offline", "--secret-backend", "vault", "--env", "prod")
    assert done.exit_code == 0, done.output
    text = (examples / "gitops" / "vllm" / "externalsecrets.yaml").read_text()
    assert TOKEN not in text and API_KEY not in text
    docs = list(yaml.safe_load_all(text))
    assert [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("external-secrets.io/v1", "ExternalSecret", "hf-token-external-secret"),
        ("external-secrets.io/v1", "ExternalSecret", "vllm-api-key-external-secret"),
    ]
    assert docs[0]["spec"]["target"]["name"] == "hf-token"
    assert docs[0]["spec"]["data"][0]["remoteRef"] == {"key": "vllm/huggingface", "property": "token"}
    assert docs[1]["spec"]["secretStoreRef"] == {"name": "vault-secret-store", "kind": "ClusterSecretStore"}
    values = exported_values(examples / "gitops" / "vllm", "flux")
    assert values["servingEngineSpec"]["vllmApiKey"] == {"secretName": "vllm-api-key", "secretKey": "api-key"}
    # auto, offline: no ExternalSecrets, and a note saying how to get them
    auto = run("export", "flux", "gitops", "--offline", "--env", "prod")
    assert auto.exit_code == 0 and "--secret-backend vault writes the ExternalSecrets" in auto.stderr
    assert not (examples / "gitops" / "vllm" / "externalsecrets.yaml").exists()


def test_offline_the_earlier_export_stands_for_the_deployed_release(run: Run, examples: Path) -> None:
    """An earlier export with the chart's default labels and chart 0.1.9 (as an online export
    of a release the old scripts made writes): kept offline, as install keeps them."""
    assert run("export", "flux", "gitops", "--offline").exit_code == 0
    path = examples / "gitops" / "vllm" / "helmrelease.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["chart"]["spec"]["version"] = "0.1.9"
    del doc["spec"]["values"]["servingEngineSpec"]["labels"]
    del doc["spec"]["values"]["routerSpec"]["labels"]
    path.write_text(yaml.safe_dump(doc))
    done = run("export", "flux", "gitops", "--offline")
    assert done.exit_code == 0, done.output
    assert "the earlier export in the directory stands for the deployed release" in done.stderr
    assert "the chart's default labels" in done.stderr
    values = exported_values(examples / "gitops" / "vllm", "flux")
    assert "labels" not in values["servingEngineSpec"] and "labels" not in values["routerSpec"]
    assert yaml.safe_load(path.read_text())["spec"]["chart"]["spec"]["version"] == "0.1.9"
    assert "pvcAnnotations" not in values["servingEngineSpec"]["modelSpec"][0]  # chart 0.1.9 has none
    # moving that release to 0.1.12 changes its Deployment selectors: refused, as upgrade refuses
    moved = run("export", "flux", "gitops", "--offline", env={"VLLM_CHART_VERSION": "0.1.12"})
    assert moved.exit_code == 2
    assert "the reconciler's upgrade would fail" in moved.stderr and "--replace-deployments" in moved.stderr


def test_install_checks_refuse_before_writing(
    run: Run, examples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the gated-token rule: llama3 is gated and nothing says Secret hf-token exists
    monkeypatch.delenv("VLLM_HF_TOKEN_FROM_SECRET")
    gated = run("export", "flux", "gitops", "--offline")
    assert gated.exit_code == 2
    assert "llama3 is gated, but the values reference no Secret hf-token" in gated.stderr
    assert not (examples / "gitops").exists()
    # the chart version's rules: pdb arrived in chart 0.1.11
    (examples / "models.yaml").write_text(ONE + "  pdb: {minAvailable: 1}\n")
    old = run("export", "argocd", "gitops", "--offline", env={"VLLM_CHART_VERSION": "0.1.9"})
    assert old.exit_code == 2 and "pdb" in old.stderr and "0.1.9" in old.stderr
    # validation, with the position
    (examples / "models.yaml").write_text(ONE + "  replicaCount: -1\n")
    bad = run("export", "flux", "gitops", "--offline")
    assert bad.exit_code == 2 and "models.yaml:5:" in bad.stderr
    assert not (examples / "gitops").exists()


def test_a_local_chart_is_refused_with_the_reason(run: Run, examples: Path, tmp_path: Path) -> None:
    chart = mini_chart_at("0.1.12", tmp_path)
    done = run("export", "flux", "gitops", "--offline", env={"VLLM_CHART": str(chart)})
    assert done.exit_code == 2
    assert "is a local chart, which Flux or Argo CD in the cluster cannot read" in done.stderr


def test_an_oci_chart(run: Run, examples: Path) -> None:
    env = {"VLLM_CHART": "oci://ghcr.io/example/charts/vllm-stack"}
    assert run("export", "flux", "flux", "--offline", env=env).exit_code == 0
    assert run("export", "argocd", "argo", "--offline", env=env).exit_code == 0
    repository = yaml.safe_load((examples / "flux" / "vllm" / "helmrepository.yaml").read_text())
    assert repository["spec"] == {"interval": "1h", "url": "oci://ghcr.io/example/charts", "type": "oci"}
    source = yaml.safe_load((examples / "argo" / "vllm" / "application.yaml").read_text())["spec"]["source"]
    assert source["repoURL"] == "ghcr.io/example/charts" and source["chart"] == "vllm-stack"


# --- the real helm on the exported values ---------------------------------------------------


def objects(manifests: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    return sorted(docs, key=lambda d: (d["kind"], d["metadata"]["name"]))


@pytest.mark.parametrize("tool", TOOLS)
def test_helm_template_of_the_exported_values_is_vllmctl_template(
    run: Run, examples: Path, tool: str, tmp_path: Path
) -> None:
    """The values taken out of the HelmRelease/Application, through the real `helm template`
    with the test chart, give the very objects `vllmctl template` gives."""
    need_tools()
    chart = mini_chart_at("0.1.12", tmp_path)
    done = run("export", tool, "gitops", "--offline", "--env", "prod")
    assert done.exit_code == 0, done.output
    values_file = tmp_path / "exported-values.json"
    values_file.write_text(json.dumps(exported_values(examples / "gitops" / "vllm", tool)))
    helm = shutil.which("helm") or "helm"
    argv = [helm, "template", "vllm", str(chart), "--namespace", "vllm-prod", "--values", str(values_file)]
    exported = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    template = run("template", "--env", "prod", env={"VLLM_CHART": str(chart)})
    assert template.exit_code == 0, template.output
    assert objects(exported) == objects(template.stdout)
    kinds = {d["kind"] for d in objects(exported)}
    assert {"Deployment", "Service", "PersistentVolumeClaim"} <= kinds
    assert len([d for d in objects(exported) if d["kind"] == "Deployment"]) == 4  # 3 models + router


# --- against the sandbox: the deployed release, GPU fit, and server-side dry runs -------------


@pytest.fixture(scope="module")
def gitops_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path_factory.mktemp("gitops"), SandboxConfig(gitops=True)) as sb:
        yield sb


@pytest.fixture
def on_gitops(
    gitops_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    namespace = f"gitops-{request.node.name.replace('_', '-')[:40].strip('-').lower()}"
    chart = mini_chart_at("0.1.12", tmp_path)
    with release_on(gitops_sandbox, monkeypatch, namespace, chart, "0.1.12"):
        yield namespace


def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shutil.which("kubectl") or "kubectl", *args], capture_output=True, text=True)


def test_online_export_reads_the_deployed_release_and_the_server_takes_every_file(
    run: Run, isolated: Path, on_gitops: str, gitops_sandbox: Sandbox, tmp_path: Path
) -> None:
    """A release the old scripts made (the chart's default labels): export keeps its labels,
    as install does, and `kubectl apply --dry-run=server` takes each file of both tools."""
    (isolated / "models.yaml").write_text(ONE)
    rendered = run("render")
    assert rendered.exit_code == 0
    legacy = "".join(line for line in rendered.stdout.splitlines(True) if not line.startswith("  labels: "))
    values = tmp_path / "legacy.yaml"
    values.write_text(legacy)
    helm = shutil.which("helm") or "helm"
    chart = os.environ["VLLM_CHART"]
    install = [
        helm,
        "install",
        "vllm",
        chart,
        "--namespace",
        on_gitops,
        "--create-namespace",
        "-f",
        str(values),
    ]
    subprocess.run(install, capture_output=True, text=True, check=True)
    repo_chart = {
        "VLLM_CHART": "vllm/vllm-stack",
        "VLLM_CHART_VERSION": "",
        "VLLM_API_KEY_FROM_SECRET": "true",
    }
    kubectl("create", "namespace", "argocd")  # where Applications live (may exist from another test)
    for tool in TOOLS:
        done = run("export", tool, "gitops", env=repo_chart)
        assert done.exit_code == 0, done.output
        assert "values against the deployed release vllm" in done.stderr
        assert "the chart's default labels" in done.stderr
        directory = isolated / "gitops" / "vllm"
        name, key = VALUES_KEY[tool]
        # the deployed release's labels kept: render's text less its label lines, byte for byte,
        # and the deployed chart version (no VLLM_CHART_VERSION)
        text = (directory / name).read_text()
        exported = values_text(text, key)
        assert exported is not None
        assert (
            exported.replace('  vllmApiKey: {"secretName": "vllm-api-key", "secretKey": "api-key"}\n', "")
            == legacy
        )
        assert '"0.1.12"' in text
        # the sandbox serves ExternalSecrets and VAULT_ADDR is set: auto is the Vault backend
        assert (directory / "externalsecrets.yaml").is_file()
        dry = kubectl("apply", "--dry-run=server", "-f", str(directory))
        assert dry.returncode == 0, dry.stderr
        wanted = {
            "flux": [
                "helmrelease.helm.toolkit.fluxcd.io/vllm",
                "helmrepository.source.toolkit.fluxcd.io/vllm",
            ],
            "argocd": ["application.argoproj.io/vllm"],
        }[tool]
        wanted += [
            "externalsecret.external-secrets.io/vllm-api-key-external-secret created",
            f"namespace/{on_gitops} configured",  # it exists: helm created it
        ]
        for line in wanted:
            assert f"{line}" in dry.stdout and dry.stdout.count("(server dry run)") == len(wanted), dry.stdout
    # nothing was created by the dry runs
    assert gitops_sandbox.get("HelmRelease", on_gitops, "vllm", "helm.toolkit.fluxcd.io/v2") is None
    assert gitops_sandbox.get("Application", "argocd", "vllm", "argoproj.io/v1alpha1") is None


def test_gpu_fit_only_where_the_cluster_answers(run: Run, isolated: Path, on_gitops: str) -> None:
    (isolated / "models.yaml").write_text(ONE.replace("requestGPU: 1", "requestGPU: 8"))
    repo_chart = {"VLLM_CHART": "vllm/vllm-stack"}
    online = run("export", "flux", "gitops", env=repo_chart)
    assert online.exit_code == 2
    assert "do not fit the cluster's free GPUs" in online.stderr
    assert not (isolated / "gitops").exists()
    assert run("export", "flux", "gitops", "--force", env=repo_chart).exit_code == 0
    offline = run("export", "flux", "other", "--offline", env=repo_chart)
    assert offline.exit_code == 0, offline.output


def test_an_unreachable_cluster_exports_offline_and_says_so(
    run: Run, examples: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    need_tools()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "gone",
                "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    done = run("export", "flux", "gitops")
    assert done.exit_code == 0, done.output
    assert "Kubernetes is unreachable" in done.stderr and "Exporting offline" in done.stderr
    assert "offline, and no earlier export" in done.stderr


def test_values_that_cannot_sit_under_a_key_are_refused(run: Run, examples: Path) -> None:
    """A copied template that starts a YAML document of its own: render takes it, but its
    text cannot be placed in the HelmRelease unchanged, so export refuses."""
    from vllmctl.render.values import packaged_templates

    templates = examples / "templates"
    shutil.copytree(packaged_templates(), templates)
    values = templates / "values.yaml.j2"
    values.write_text("--- # the values\n" + values.read_text())
    assert run("render", "--templates-dir", str(templates)).exit_code == 0
    done = run("export", "flux", "gitops", "--offline", "--templates-dir", str(templates))
    assert done.exit_code == 2
    assert "cannot be placed in helmrelease.yaml unchanged" in done.stderr
    assert not (examples / "gitops").exists()
