"""test-completions --session: which header carries a session id to the router, and which
engine the router sent a request to, as the router itself logs it.

The header is the session key in force: through a port-forward, the deployed router's own
`--session-key` (it is what routes; the settings may not be deployed yet); with
`--base-url`, the settings (VLLM_ROUTER_SESSION_KEY, or an environment's sessionKey), which
must then say session routing. Either way a router that does not route by session is a
refusal: the header would be ignored, and the user would see no stickiness.

The engine is not in the answer (the router does not say; its engines cannot know): the
router's INFO line `Routing request <id> with session id <s> to <url> at ...` in the pod's
log is the one place that names it (vllm_router/services/request_service/request.py, every
router release of chart 0.1.8 to 0.1.12), read back by the answer's X-Request-Id.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import router_deployment_name
from vllmctl.core.errors import UsageError
from vllmctl.core.setting_names import ENV_ROUTER_SESSION_KEY, ENV_ROUTING_LOGIC

if TYPE_CHECKING:
    from vllmctl.cluster.kube import Kube

Obj = dict[str, Any]

LOG_LINES = 500  # of the router pod's log searched for the request's routing line
_ROUTED = re.compile(r"Routing request (?P<id>\S+) with session id (?P<session>.*?) to (?P<url>\S+?),? at ")


class Session(NamedTuple):
    header: str
    value: str
    source: str  # where the header's name came from, for messages


class Served(NamedTuple):
    """Where the router says it sent one request."""

    url: str  # the engine's URL, as the router knows it (http://<pod IP>:<port>)
    pod: str | None  # the engine pod with that IP, when one is found
    router_pod: str  # whose log said so


def value_problem(value: str) -> str | None:
    """Why a session id cannot be a header's value (None: it can)."""
    if not value.strip():
        return "is empty"
    for char in value:
        if not char.isascii() or not char.isprintable():
            return "holds a control or non-ASCII character"
    return None


def session_header(settings: Any, kube: Kube | None, value: str) -> Session:
    """The session header to send with `value`: from the deployed router (`kube`), else the
    settings; a UsageError when session routing is not in force."""
    problem = value_problem(value)
    if problem:
        raise UsageError(f"--session {value!r} {problem}: an HTTP header cannot carry it; use e.g. user-42.")
    if kube is None:
        return _from_settings(settings, value)
    namespace, release = settings.namespace, settings.release
    name = router_deployment_name(release)
    deployment = kube.get("apps/v1", "deployments", namespace, name)
    if deployment is None:
        raise UsageError(
            f"--session needs the router, and there is no Deployment {name} in namespace {namespace}: "
            "install the release (vllmctl install), or give --base-url."
        )
    args = router_args(deployment)
    logic, key = args.get("--routing-logic"), args.get("--session-key")
    fix = (
        f"set {ENV_ROUTING_LOGIC}=session and {ENV_ROUTER_SESSION_KEY} (e.g. x-user-id), then run "
        "vllmctl upgrade"
    )
    if logic != "session":
        raise UsageError(
            f"--session needs session routing, but the router (Deployment {name}) routes by "
            f"{logic or 'no --routing-logic'}, which ignores any session header: {fix}."
        )
    if not key:
        raise UsageError(f"--session: the router (Deployment {name}) has no --session-key: {fix}.")
    return Session(key, value, f"the router's --session-key (Deployment {name})")


def _from_settings(settings: Any, value: str) -> Session:
    logic = str(settings.routing_logic or "roundrobin")
    key = settings.router_session_key
    if logic != "session":
        given = (
            "the default"
            if settings.source("routing_logic") == "default"
            else settings.source("routing_logic")
        )
        raise UsageError(
            f"--session needs session routing, and {ENV_ROUTING_LOGIC} is {logic} ({given}): with "
            f"--base-url the settings say how the router routes. Set {ENV_ROUTING_LOGIC}=session and "
            f"{ENV_ROUTER_SESSION_KEY} as the router runs."
        )
    if not key:
        raise UsageError(
            f"--session: {ENV_ROUTING_LOGIC} is session but {ENV_ROUTER_SESSION_KEY} is not set, so the "
            "session header's name is unknown; set it as the router runs (e.g. x-user-id)."
        )
    return Session(str(key), value, ENV_ROUTER_SESSION_KEY)


def router_args(deployment: Obj) -> dict[str, str]:
    """The router container's `--flag value` pairs."""
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    args = [str(a) for a in (containers[0].get("args") or [])] if containers else []
    return {flag: args[i + 1] for i, flag in enumerate(args[:-1]) if flag.startswith("--")}


def served_by(kube: Kube, namespace: str, router_pod: str, request_id: str) -> Served | None:
    """The engine the router pod's log says it sent `request_id` to (None: no such line, as
    when the router logs below INFO or the line is past the tail read)."""
    pod = kube.get("v1", "pods", namespace, router_pod)
    containers = ((pod or {}).get("spec") or {}).get("containers") or []
    if not containers:
        return None
    for line in reversed(kube.pod_log_tail(namespace, router_pod, containers[0]["name"], lines=LOG_LINES)):
        found = _ROUTED.search(line)
        if found and found["id"] == request_id:
            url = found["url"]
            return Served(url, _engine_pod(kube, namespace, url), router_pod)
    return None


def _engine_pod(kube: Kube, namespace: str, url: str) -> str | None:
    host = url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    # status.podIP is a field the API server indexes for pods: one small answer.
    for pod in kube.list("v1", "pods", namespace, field_selector=f"status.podIP={host}"):
        return str(pod["metadata"]["name"])
    return None
