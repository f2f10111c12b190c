"""The OpenAI-compatible API a command talks to: `--base-url`, or a port-forward to the
release's router made by vllmctl itself (vllmctl/cluster/tunnel.py, over the Kubernetes API),
with the API key the engines enforce (VLLM_API_KEY, else the namespace's Secret vllm-api-key,
which is sent only through a port-forward: never to a --base-url off this machine).
Shared by test-completions, list-api-models, chat and bench."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click

from vllmctl.ui import App

if TYPE_CHECKING:
    from vllmctl.apis.openai_api import CompletionFailed
    from vllmctl.cluster.kube import Kube
    from vllmctl.cluster.tunnel import Tunnel

F = TypeVar("F", bound=Callable[..., Any])


def base_url_option(function: F) -> F:
    """`--base-url URL`: any OpenAI-compatible endpoint instead of the release's router."""
    return click.option(
        "--base-url",
        metavar="URL",
        help="an OpenAI-compatible endpoint (an exposed router...) instead of a port-forward",
    )(function)


class Endpoint(NamedTuple):
    base_url: str
    api_key: str | None
    key_source: str  # for messages: where the key came from, or that there is none
    label: str  # who answers, for messages: "the router", or the URL
    kube: Kube | None = None  # through a port-forward: the cluster, and the tunnel to the router
    tunnel: Tunnel | None = None


@contextmanager
def open_endpoint(app: App, base_url: str | None) -> Iterator[Endpoint]:
    """The API to talk to: --base-url, or a port-forward to the router for as long as needed."""
    from vllmctl.cluster.kube import Kube
    from vllmctl.cluster.tunnel import open_router_tunnel

    settings = app.settings
    if base_url:
        key, source = api_key(app, None, base_url)
        yield Endpoint(base_url, key, source, base_url)
        return
    with Kube.from_settings(settings) as kube:
        key, source = api_key(app, kube)
        report = app.info if app.verbose else None
        with open_router_tunnel(kube, settings.namespace, settings.release, on_event=report) as tunnel:
            if app.verbose:
                app.info(f"port-forward {tunnel.base_url} -> pod {tunnel.pod} port {tunnel.target_port}")
            yield Endpoint(tunnel.base_url, key, source, "the router", kube, tunnel)


def api_key(app: App, kube: Kube | None, base_url: str | None = None) -> tuple[str | None, str]:
    """VLLM_API_KEY, else the cluster's Secret; and where it came from.

    With --base-url the Secret is read (best effort) only for a URL on this machine (a
    port-forward of one's own): any other host gets VLLM_API_KEY or nothing, so the
    release's key never goes to an endpoint the user merely named."""
    from vllmctl.apis.openai_api import api_key_problem, is_loopback_url
    from vllmctl.cluster.kube import Kube
    from vllmctl.cluster.tunnel import API_KEY_SECRET, router_api_key
    from vllmctl.core.errors import UsageError, VllmctlError
    from vllmctl.core.setting_names import ENV_API_KEY

    settings = app.settings
    if settings.api_key:
        problem = api_key_problem(str(settings.api_key))
        if problem:
            raise UsageError(f"{ENV_API_KEY} {problem}, which an HTTP header cannot carry: fix the variable.")
        return str(settings.api_key), ENV_API_KEY
    where = f"Secret {API_KEY_SECRET} in namespace {settings.namespace}"
    if base_url is not None and not is_loopback_url(base_url):
        return None, (
            f"none: with a --base-url off this machine only {ENV_API_KEY} is sent, never the {where} "
            f"(set {ENV_API_KEY}=$(vllmctl get-api-key) to send that one)"
        )
    try:
        if kube is None:  # --base-url: the cluster may be out of reach, so do not wait long
            with Kube.from_settings(settings) as own:
                own.timeout = min(own.timeout, 5.0)
                key = router_api_key(own, settings.namespace)
        else:
            key = router_api_key(kube, settings.namespace)
    except VllmctlError as e:
        if kube is not None:
            app.warn(f"could not read the API key ({e.message}); sending none.")
        elif app.verbose:
            app.info(f"no API key from the cluster ({e.message}); sending none.")
        return None, "none (it could not be read)"
    if key and (problem := api_key_problem(key)):
        raise UsageError(f"the API key in {where} {problem}, which an HTTP header cannot carry: fix it.")
    return key, where if key else f"none ({where} does not exist)"


def explained(error: CompletionFailed, endpoint: Endpoint) -> CompletionFailed:
    """A failed completion with a hint on what to check, for the statuses that have one."""
    if error.status == 401:
        error.details.append(f"the API key sent: {endpoint.key_source}")
    elif error.status == 404 and error.served is None:
        error.details.append("list what is served with `vllmctl list-api-models`")
    elif error.status is not None and error.status >= 500:
        error.details.append("`vllmctl status` shows the router's and engines' state")
    return error
