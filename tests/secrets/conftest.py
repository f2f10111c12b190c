"""Fixtures of the secret command tests."""

from __future__ import annotations

import pytest

from tests.sandbox.fixtures import ClusterEnv


@pytest.fixture
def namespace(cluster: ClusterEnv) -> str:
    """The test's namespace, created: secret commands refuse one that does not exist (only
    install creates it)."""
    cluster.sandbox.create_namespace(cluster.namespace)
    return cluster.namespace
