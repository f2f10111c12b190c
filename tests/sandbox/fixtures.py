"""pytest fixtures: one sandbox per test session, a fresh namespace per test.

Registered from tests/conftest.py. A test that takes `cluster` gets KUBECONFIG pointing
at the sandbox, HF_ENDPOINT at its Hub stand-in, and the VLLM_* settings of a release in
its own namespace; faults it switches on are cleared after it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sandbox.kube.controllers import R
from tests.sandbox.sandbox import Sandbox, SandboxConfig

REPO = Path(__file__).resolve().parents[2]
MINI_CHART = REPO / "tests" / "charts" / "vllm-stack-mini"
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running_sandbox(
        tmp_path_factory.mktemp("sandbox"), SandboxConfig(gpu_nodes=2, gpus_per_node=2)
    ) as sb:
        yield sb


@contextlib.contextmanager
def running_sandbox(directory: Path, config: SandboxConfig) -> Iterator[Sandbox]:
    """A started sandbox, stopped afterwards: the session's, or a module's second cluster of
    another shape (more GPUs, KEDA, the Prometheus Operator, ...)."""
    sb = Sandbox(directory, config).start()
    try:
        yield sb
    finally:
        errors = list(sb.api.errors) + (list(sb.cluster.errors) if sb.cluster else []) + list(sb.hub.errors)
        sb.stop()
    # A stand-in bug that a client tolerated must still fail the run.
    assert not errors, "the sandbox hit internal errors:\n" + "\n".join(errors)


def need_tools() -> None:
    """Skip without helm and kubectl on PATH (a plain `pytest`), or fail when scripts/test,
    which installs them, runs the suite (VLLMCTL_REQUIRE_TOOLS): CI must never pass by
    skipping the cluster tests."""
    if shutil.which("helm") is None or shutil.which("kubectl") is None:
        why = "helm and kubectl are not on PATH: run scripts/test, or put .tools/bin on PATH"
        if os.environ.get("VLLMCTL_REQUIRE_TOOLS") == "1":
            pytest.fail(why)
        pytest.skip(why)


@contextlib.contextmanager
def release_on(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, namespace: str, chart: Path, version: str, **extra: str
) -> Iterator[str]:
    """vllmctl pointed at a release `vllm` in `namespace` on `sandbox`, with `chart` at
    `version`; the namespace (and so its GPUs) goes afterwards."""
    need_tools()
    env = {
        **sandbox.env(),
        "VLLM_NAMESPACE": namespace,
        "VLLM_RELEASE": "vllm",
        "VLLM_CHART": str(chart),
        "VLLM_CHART_VERSION": version,
        "VLLM_MODEL_TAG": "v0.10.1",
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield namespace
    if sandbox.get("Namespace", None, namespace) is not None:
        sandbox.call(sandbox.store.delete, R["Namespace"], None, namespace)


def mini_chart_at(version: str, directory: Path) -> Path:
    """A copy of the mini chart whose Chart.yaml says `version`. Its templates gate what
    later chart versions added on `.Chart.Version`, as the real chart's releases differ,
    and helm records that version in the release (vllmctl compares it on upgrade)."""
    target = directory / f"vllm-stack-{version}"
    if not target.exists():
        shutil.copytree(MINI_CHART, target)
        chart = target / "Chart.yaml"
        chart.write_text(re.sub(r"(?m)^version: .*$", f"version: {version}", chart.read_text()))
    return target


@dataclass
class ClusterEnv:
    sandbox: Sandbox
    namespace: str
    release: str
    env: dict[str, str]

    def kubectl(self, *args: str) -> list[str]:
        return [shutil.which("kubectl") or "kubectl", "--namespace", self.namespace, *args]

    def helm(self, *args: str) -> list[str]:
        return [shutil.which("helm") or "helm", "--namespace", self.namespace, *args]


@pytest.fixture
def cluster(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[ClusterEnv]:
    need_tools()
    namespace = f"t{next(_numbers)}-vllm"
    env = {
        **sandbox.env(),
        "VLLM_NAMESPACE": namespace,
        "VLLM_RELEASE": "vllm",
        # The mini chart's Chart.yaml says 0.1.8, and vllmctl reads the version from it (a
        # test wanting another version points VLLM_CHART at mini_chart_at(version)).
        "VLLM_CHART": str(MINI_CHART),
        "VLLM_MODEL_TAG": "v0.10.1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield ClusterEnv(sandbox, namespace, "vllm", env)
    sandbox.call(sandbox.api.faults.clear)
    sandbox.call(sandbox.api.denied.clear)
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.faults.clear)
    sandbox.call(sandbox.vault.reset)  # OpenBao unsealed, a fresh secret/ mount, what the test added gone
    sandbox.call(sandbox.hub.reset)  # the preloaded models again; the test's tokens and faults go
    # Free the namespace's GPUs for the next test, as `kubectl delete namespace` would.
    if sandbox.get("Namespace", None, namespace) is not None:
        sandbox.call(sandbox.store.delete, R["Namespace"], None, namespace)
