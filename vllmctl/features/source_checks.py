"""doctor's checks of the model sources (docs/model-sources.md): the claims pvc:// models
read and cacheClaims write exist with access modes that fit their pods, the s3Secrets
hold the AWS keys, and image volumes (VLLM_OCI_METHOD=image) are on in the cluster."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vllmctl.chart.inputs import options_from
from vllmctl.core.errors import VllmctlError
from vllmctl.core.findings import FAIL, OK, WARN, Report
from vllmctl.features.source_urls import OCI, parse
from vllmctl.features.source_values import Need, needs

if TYPE_CHECKING:
    from vllmctl.features.base import Entry

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# ImageVolume: alpha in Kubernetes 1.31, beta (off by default) in 1.33, on by default from 1.35.
IMAGE_VOLUME_ALPHA = (1, 31)
IMAGE_VOLUME_BETA = (1, 33)
IMAGE_VOLUME_DEFAULT = (1, 35)
# Container runtimes that mount image volumes from these versions (older ones cannot).
RUNTIME_MINIMUM = {"containerd": (2, 1), "cri-o": (1, 31)}


def check_sources(report: Report, kube: Any, settings: Any, models: Sequence[Entry]) -> None:
    """One check per claim and Secret the models' sources need, and one for image volumes."""
    options = options_from(settings)
    for need in needs((m.data for m in models), options):
        if need.kind == "secret":
            _check_secret(report, kube, settings.namespace, need)
        else:
            _check_claim(report, kube, settings.namespace, need)
    oci = [m.name for m in models if parse(str(m.data["modelURL"])).scheme == OCI]
    if oci and (options.oci_method or "copy") == "image":
        _check_image_volumes(report, kube, oci)


def _models(need: Need) -> str:
    return ", ".join(need.models)


def _check_claim(report: Report, kube: Any, namespace: str, need: Need) -> None:
    name = f"claim {need.name}"
    what = "pvc:// source" if need.use == "source" else "model cache"
    try:
        claim = kube.get("v1", "persistentvolumeclaims", namespace, need.name)
    except VllmctlError as e:
        report.add("cluster", name, WARN, f"could not read PersistentVolumeClaim {need.name}: {e.message}")
        return
    if claim is None:
        fix = (
            f"create it in {namespace} (ReadOnlyMany or ReadWriteMany) and put the model's files in it"
            if need.use == "source"
            else f"create a ReadWriteMany claim {need.name} in {namespace}, or remove cacheClaim / "
            "VLLM_MODEL_CACHE_CLAIM"
        )
        report.add(
            "cluster",
            name,
            FAIL,
            f"PersistentVolumeClaim {need.name} ({what} of {_models(need)}) is not in {namespace}",
            fix,
        )
        return
    status = claim.get("status") or {}
    modes = set(status.get("accessModes") or (claim.get("spec") or {}).get("accessModes") or [])
    shown = ", ".join(sorted(modes)) or "no access modes"
    detail = f"{what} of {_models(need)}: {shown}"
    writable = "ReadWriteMany" in modes or "ReadWriteOnce" in modes or "ReadWriteOncePod" in modes
    if need.use == "cache" and not writable:
        report.add(
            "cluster",
            name,
            FAIL,
            f"{detail}: the engines cannot write their cache to it",
            f"use a ReadWriteMany claim as cacheClaim, or remove cacheClaim from {_models(need)}",
        )
        return
    shared = {"ReadWriteMany"} if need.use == "cache" else {"ReadWriteMany", "ReadOnlyMany"}
    if need.pods > 1 and not modes & shared:
        one = "one pod" if "ReadWriteOncePod" in modes else "pods on one node"
        report.add(
            "cluster",
            name,
            WARN,
            f"{detail}: only {one} can mount it, and {need.pods} engine pods use it",
            f"use a claim of a {' or '.join(sorted(shared))} storage class (NFS, CephFS, a cloud file store)",
        )
        return
    phase = status.get("phase")
    if phase and phase != "Bound":
        report.add("cluster", name, WARN, f"{detail}, {phase}", "check its storage class and events")
        return
    report.add("cluster", name, OK, detail)


def _check_secret(report: Report, kube: Any, namespace: str, need: Need) -> None:
    name = f"s3 secret {need.name}"
    try:
        secret = kube.get("v1", "secrets", namespace, need.name)
    except VllmctlError as e:
        report.add("secrets", name, WARN, f"could not read Secret {need.name}: {e.message}")
        return
    create = (
        f"kubectl create secret generic {need.name} -n {namespace} --from-env-file=FILE "
        f"(a file of {'=..., '.join(S3_KEYS)}=... lines, never the values on a command line)"
    )
    if secret is None:
        report.add(
            "secrets",
            name,
            FAIL,
            f"Secret {need.name} (s3Secret of {_models(need)}) is not in {namespace}",
            create,
        )
        return
    data = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    missing = [key for key in S3_KEYS if key not in data]
    if missing:
        report.add(
            "secrets",
            name,
            FAIL,
            f"Secret {need.name} (s3Secret of {_models(need)}) has no {' or '.join(missing)}",
            f"add {', '.join(missing)} to it, or recreate it: {create}",
        )
        return
    report.add("secrets", name, OK, f"Secret {need.name} has {' and '.join(S3_KEYS)} ({_models(need)})")


def _version(text: str) -> tuple[int, int] | None:
    match = re.match(r"v?(\d+)\.(\d+)", text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _check_image_volumes(report: Report, kube: Any, models: list[str]) -> None:
    name = "image volumes"
    fallback = "set VLLM_OCI_METHOD=copy (an init container copies the model; works everywhere)"
    try:
        text = kube.server_version()
    except VllmctlError as e:
        report.add("cluster", name, WARN, f"could not read the server version: {e.message}")
        return
    version = _version(text)
    users = f"{', '.join(models)} {'reads' if len(models) == 1 else 'read'} an oci:// image volume"
    if version is None or version < IMAGE_VOLUME_ALPHA:
        report.add("cluster", name, FAIL, f"{users}, and Kubernetes {text} has no image volumes", fallback)
        return
    if version < IMAGE_VOLUME_DEFAULT:
        stage = "beta" if version >= IMAGE_VOLUME_BETA else "alpha"
        report.add(
            "cluster",
            name,
            WARN,
            f"{users}; in Kubernetes {text} the ImageVolume feature is {stage} and off unless the "
            "cluster turned it on (without it the API server refuses the engines' pods)",
            f"enable the ImageVolume feature gate on the API server and the kubelets, or {fallback}",
        )
        return
    old = _old_runtimes(kube)
    if old:
        report.add(
            "cluster",
            name,
            WARN,
            f"{users}; these nodes' container runtimes cannot mount one: {', '.join(old)}",
            f"upgrade them to containerd 2.1+ or CRI-O 1.31+, or {fallback}",
        )
        return
    report.add("cluster", name, OK, f"{users}; Kubernetes {text} has ImageVolume on by default")


def _old_runtimes(kube: Any) -> list[str]:
    """Nodes whose runtime is known not to mount image volumes (`name (runtime)`); none when
    the nodes cannot be listed."""
    try:
        nodes = kube.list("v1", "nodes", None)
    except VllmctlError:
        return []
    old = []
    for node in nodes:
        runtime = str(((node.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion") or "")
        kind, _, version = runtime.partition("://")
        minimum = RUNTIME_MINIMUM.get(kind)
        found = _version(version)
        if kind == "docker" or (minimum and found and found < minimum):
            old.append(f"{node['metadata']['name']} ({runtime})")
    return old
