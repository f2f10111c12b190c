"""The names and labels the vllm-stack chart gives a release's objects, in every chart
version vllmctl supports: what status, logs, tunnel, deploy and gpufit look objects up by.

Kept apart (no imports) so any module can ask without pulling in anything; feature
objects (ScaledObjects, Ingress, NetworkPolicies) are named by their feature modules.
"""

from __future__ import annotations

RELEASE_LABEL = "helm-release-name"  # on engine pods and in their Deployments' selectors; not on the router
MODEL_LABEL = "model"  # the model's name, beside RELEASE_LABEL
ENGINE_CONTAINER = "vllm"  # the engine pod's serving container


def engine_deployment_name(release: str, model: str) -> str:
    return f"{release}-{model}-deployment-vllm"


def engine_deployment_model(release: str, name: str) -> str | None:
    """The model of an engine Deployment's name; None when the name is no such name of
    this release (another release's may share the prefix: check the selector too)."""
    prefix, suffix = f"{release}-", "-deployment-vllm"
    if len(name) > len(prefix) + len(suffix) and name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


def engine_service_name(release: str, model: str) -> str:
    return f"{release}-{model}-engine-service"


def engine_service_model(release: str, name: str) -> str | None:
    """The model of an engine Service's name; None when the name is no such name."""
    prefix, suffix = f"{release}-", "-engine-service"
    if name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


def router_deployment_name(release: str) -> str:
    return f"{release}-deployment-router"


def router_service_name(release: str) -> str:
    return f"{release}-router-service"


def release_selector(release: str) -> str:
    """The label selector of every engine pod (and engine Deployment) of one release."""
    return f"{RELEASE_LABEL}={release}"


def engine_selector(release: str, model: str) -> str:
    """The label selector of one model's engine pods in one release."""
    return f"{RELEASE_LABEL}={release},{MODEL_LABEL}={model}"
