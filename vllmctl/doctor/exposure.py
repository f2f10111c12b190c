"""doctor's check of how the router is reached from outside: the settings themselves, and
that the IngressClass and the TLS Secret an Ingress names exist (else the Ingress is
created and silently serves nothing, or serves without the certificate)."""

from __future__ import annotations

from typing import Any

from vllmctl.doctor.report import FAIL, OK, WARN, Report
from vllmctl.errors import VllmctlError

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


def check(report: Report, kube: Any, settings: Any) -> None:
    from vllmctl.chart.values import default_render_input, version_tuple
    from vllmctl.features.exposure import router_values

    given = default_render_input(settings)
    try:
        exposure = router_values(given, version_tuple(settings.chart_version))
    except VllmctlError as e:
        report.add("cluster", "exposure", FAIL, e.message, "fix the VLLM_ROUTER_* / VLLM_INGRESS_* settings")
        return
    for warning in exposure.warnings:
        report.add("cluster", "exposure", WARN, warning)
    if exposure.ingress is None:
        report.add("cluster", "exposure", OK, f"router Service {exposure.service_type}, no Ingress")
        return
    host = exposure.ingress["hosts"][0]["host"]
    try:
        classes = kube.list("networking.k8s.io/v1", "ingressclasses", None)
        tls = exposure.ingress.get("tls") or []
        secret = tls[0]["secretName"] if tls else None
        found_secret = kube.get("v1", "secrets", settings.namespace, secret) if secret else None
    except VllmctlError as e:
        report.add("cluster", "exposure", WARN, f"Ingress for {host}: could not check its class: {e.message}")
        return
    names = [str((c.get("metadata") or {}).get("name")) for c in classes]
    wanted = exposure.ingress.get("className")
    defaults = [
        n
        for n, c in zip(names, classes, strict=True)
        if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
    ]
    if wanted and wanted not in names:
        shown = ", ".join(names) or "none"
        report.add(
            "cluster",
            "exposure",
            FAIL,
            f"the Ingress for {host} names IngressClass {wanted}, which the cluster does not have "
            f"(it has: {shown}); no controller would serve it",
            "set VLLM_INGRESS_CLASS to one of those, or install that ingress controller",
        )
    elif not wanted and not defaults:
        report.add(
            "cluster",
            "exposure",
            WARN,
            f"the Ingress for {host} names no class and the cluster has no default IngressClass",
            "set VLLM_INGRESS_CLASS (`kubectl get ingressclass` lists them)",
        )
    elif secret and found_secret is None:
        report.add(
            "cluster",
            "exposure",
            WARN,
            f"the Ingress for {host} uses TLS Secret {secret}, which is not in {settings.namespace} yet; "
            "the controller serves its default certificate until it is",
            f"create it (e.g. with cert-manager) in namespace {settings.namespace}",
        )
    else:
        scheme = "https" if secret else "http"
        report.add("cluster", "exposure", OK, f"Ingress {scheme}://{host}/v1 (class {wanted or defaults[0]})")
