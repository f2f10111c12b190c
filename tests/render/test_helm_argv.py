"""The helm and kubectl command lines vllmctl builds (run for real in the sandbox tests)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from vllmctl.cluster.helm import ChartRef, DeployedRelease, Helm, parse_version, private_values_file
from vllmctl.cluster.kubectl import Kubectl

CHART = ChartRef("vllm/vllm-stack", "0.1.8", "https://vllm-project.github.io/production-stack")
VALUES = Path("/tmp/values.yaml")


def helm(version: tuple[int, int, int] = (4, 1, 4), context: str | None = "prod") -> Helm:
    return Helm("helm", "vllm", "rel", context, known_version=version)


def test_install_with_helm_4() -> None:
    assert helm().upgrade_argv(CHART, VALUES, install=True, timeout="30m", atomic=True) == [
        "helm", "upgrade", "rel", "vllm/vllm-stack", "--version", "0.1.8",
        "--namespace", "vllm", "--kube-context", "prod",
        "--install", "--values", "/tmp/values.yaml", "--timeout", "30m", "--wait", "--rollback-on-failure",
    ]  # fmt: skip


def test_a_local_chart_gets_no_version_flag(tmp_path: Path) -> None:
    # helm installs a directory or .tgz as it is; --version means nothing for it.
    for ref in (str(tmp_path), "./charts/vllm-stack", "vllm-stack-0.1.12.tgz"):
        local = ChartRef(ref, None, CHART.repo_url)
        assert not local.is_repo
        assert "--version" not in helm().upgrade_argv(local, VALUES, install=True, timeout="30m")
        assert "--version" not in helm().template_argv(local, VALUES)
    assert CHART.is_repo and not ChartRef("oci://ghcr.io/x/vllm-stack", "0.1.12", "").is_repo


def test_upgrade_with_helm_3_uses_atomic() -> None:
    argv = helm((3, 14, 2), context=None).upgrade_argv(
        CHART, VALUES, install=False, timeout="10m", atomic=True
    )
    assert argv == [
        "helm", "upgrade", "rel", "vllm/vllm-stack", "--version", "0.1.8", "--namespace", "vllm",
        "--values", "/tmp/values.yaml", "--timeout", "10m", "--wait", "--atomic",
    ]  # fmt: skip


def test_uninstall_rollback_history_get_values() -> None:
    h = helm()
    scope = ["--namespace", "vllm", "--kube-context", "prod"]
    assert h.uninstall_argv(timeout="5m") == ["helm", "uninstall", "rel", *scope, "--wait", "--timeout", "5m"]
    assert h.rollback_argv(3, timeout="5m") == [
        "helm",
        "rollback",
        "rel",
        "3",
        *scope,
        "--wait",
        "--timeout",
        "5m",
    ]
    assert h.rollback_argv(None, timeout="5m")[:3] == ["helm", "rollback", "rel"]
    assert "3" not in h.rollback_argv(None, timeout="5m")
    assert h.history_argv() == ["helm", "history", "rel", *scope, "--output", "json"]
    assert h.get_values_argv() == ["helm", "get", "values", "rel", *scope, "--output", "json"]
    assert h.list_argv() == ["helm", "list", *scope, "--filter", "^rel$", "-o", "json"]
    helm3 = helm((3, 18, 0))
    assert helm3.list_argv() == ["helm", "list", *scope, "--all", "--filter", "^rel$", "-o", "json"]


def test_template_and_repo() -> None:
    h = helm()
    assert h.template_argv(CHART, VALUES) == [
        "helm", "template", "rel", "vllm/vllm-stack", "--version", "0.1.8", "--namespace", "vllm",
        "--values", "/tmp/values.yaml",
    ]  # fmt: skip
    assert h.repo_add_argv(CHART) == [
        "helm", "repo", "add", "vllm", "https://vllm-project.github.io/production-stack", "--force-update",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("ref", "is_repo"),
    [
        ("vllm/vllm-stack", True),
        ("oci://ghcr.io/x/vllm-stack", False),
        ("./chart", False),
        ("/abs/chart.tgz", False),
    ],
)
def test_chart_references(ref: str, is_repo: bool) -> None:
    assert ChartRef(ref, "0.1.8", "").is_repo is is_repo


def test_versions() -> None:
    assert parse_version("v3.14.2+g1234") == (3, 14, 2)
    assert parse_version("v4.1.4") == (4, 1, 4)


def test_deployed_release_from_helm_list() -> None:
    entry = {"name": "rel", "revision": "4", "status": "deployed", "chart": "vllm-stack-0.1.9"}
    assert DeployedRelease.from_helm(entry, {"a": 1}) == DeployedRelease(4, "deployed", "0.1.9", {"a": 1})


def test_values_file_is_private_and_removed() -> None:
    with private_values_file("secret: ref\n") as path:
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text() == "secret: ref\n"
    assert not path.exists()


def test_kubectl_namespace_with_pod_security() -> None:
    kubectl = Kubectl("kubectl", "prod")
    assert kubectl.apply_namespace_argv() == [
        "kubectl", "--context", "prod", "apply", "--server-side", "--field-manager=vllmctl",
        "--force-conflicts", "-f", "-",
    ]  # fmt: skip
    manifest = kubectl.namespace_manifest("vllm")
    assert '"pod-security.kubernetes.io/enforce": "baseline"' in manifest
    assert '"pod-security.kubernetes.io/warn-version": "latest"' in manifest


@pytest.mark.skipif(shutil.which("helm") is None, reason="scripts/test puts helm on PATH")
def test_the_real_helm_is_found_and_its_version_read() -> None:
    found = Helm.find(None, "vllm", "rel", None)
    assert found.version >= (3, 8, 0)
    assert os.path.isabs(found.binary)


TOOLS = REPO / ".tools"
REAL_HELMS = [p for p in (TOOLS / "bin" / "helm", TOOLS / "helm3" / "helm") if p.exists()]


@pytest.mark.skipif(not REAL_HELMS, reason="scripts/install-tools installs helm 3 and helm 4")
@pytest.mark.parametrize("binary", REAL_HELMS, ids=lambda p: p.parent.name)
def test_every_flag_vllmctl_passes_is_one_this_helm_knows(binary: Path) -> None:
    """The command lines, checked against the real helm 3 and helm 4 `--help` texts."""
    import re
    import subprocess

    real = Helm.find(str(binary), "vllm", "rel", "ctx")
    argvs = {
        ("upgrade",): real.upgrade_argv(CHART, VALUES, install=True, timeout="5m", atomic=True),
        ("template",): real.template_argv(CHART, VALUES),
        ("uninstall",): real.uninstall_argv(timeout="5m"),
        ("rollback",): real.rollback_argv(2, timeout="5m"),
        ("history",): real.history_argv(),
        ("get", "values"): real.get_values_argv(),
        ("list",): real.list_argv(),
        ("repo", "add"): real.repo_add_argv(CHART),
    }
    for subcommand, argv in argvs.items():
        help_text = subprocess.run(
            [str(binary), *subcommand, "--help"], capture_output=True, text=True, check=True
        ).stdout
        known = set(re.findall(r"(--[a-z][a-z-]*)", help_text)) | {"-o"}
        used = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
        assert used <= known, (binary, subcommand, used - known)
