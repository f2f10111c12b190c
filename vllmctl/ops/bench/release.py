"""What a benchmark ran against, when it went through the cluster: the release's chart
version (helm list, as status reads it) and the router's and the model's engine images
(their Deployments). Best effort: what cannot be read is None, and the run goes on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllmctl.core.errors import VllmctlError

if TYPE_CHECKING:
    from vllmctl.cluster.kube import Kube


def release_versions(settings: Any, kube: Kube, model: str) -> dict[str, Any]:
    """{release, namespace, chart, chart_version, router_image, engine_image}; None where unread."""
    from vllmctl.chart.facts import router_deployment_name
    from vllmctl.ops.deploy import helm_for
    from vllmctl.ops.status.cluster import engine_deployments, release_info

    found: dict[str, Any] = {
        "release": settings.release,
        "namespace": settings.namespace,
        "chart": None,
        "chart_version": None,
        "router_image": None,
        "engine_image": None,
        "notes": [],
    }
    try:
        info = release_info(helm_for(settings))
        found["chart"], found["chart_version"] = info.chart, info.chart_version
    except VllmctlError as e:
        found["notes"].append(f"chart version: {e.message}")
    try:
        deployments = kube.list("apps/v1", "deployments", settings.namespace)
    except VllmctlError as e:
        found["notes"].append(f"images: {e.message}")
        return found
    router_name = router_deployment_name(settings.release)
    router = next((d for d in deployments if d["metadata"]["name"] == router_name), None)
    found["router_image"] = _image(router)
    engines = engine_deployments(deployments, settings.release)
    found["engine_image"] = _image(engines.get(model))
    return found


def _image(deployment: dict[str, Any] | None) -> str | None:
    containers = ((((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    return str(containers[0].get("image")) if containers and containers[0].get("image") else None
