"""The router's routing logic, from VLLM_ROUTING_LOGIC, VLLM_ROUTER_SESSION_KEY and
VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH (or an environment's routingLogic, sessionKey and
prefixMinMatchLength in vllmctl.yaml).

`routing_values` checks them against the chart version and the models and gives what
`templates/values.yaml.j2` places under `routerSpec` (routingLogic, sessionKey,
prefixMinMatchLength); `routing_in_force` reads the deployed router's args back for status;
`check_routing` is doctor's row. docs/routing.md tells the story.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import ROUTING_LOGIC_SINCE, SINCE, ChartAt
from vllmctl.core.errors import UsageError, refuse_problems
from vllmctl.core.setting_names import (
    ENV_ROUTER_PREFIX_MIN_MATCH,
    ENV_ROUTER_SESSION_KEY,
    ENV_ROUTING_LOGIC,
)

if TYPE_CHECKING:
    from vllmctl.chart.inputs import RenderInput
    from vllmctl.core.findings import Report

Obj = dict[str, Any]

DEFAULT_LOGIC = "roundrobin"
PREFIX_SINCE = SINCE["routerSpec.prefixMinMatchLength"]
# An HTTP header name (RFC 9110 token): the router reads the session id from that header.
_HEADER_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
LOGIC, KEY, PREFIX = "routing_logic", "router_session_key", "router_prefix_min_match_length"
# Each setting's variable and its key in an environment of vllmctl.yaml.
_NAMES = {
    "routing_logic": (ENV_ROUTING_LOGIC, "routingLogic"),
    "router_session_key": (ENV_ROUTER_SESSION_KEY, "sessionKey"),
    "router_prefix_min_match_length": (ENV_ROUTER_PREFIX_MIN_MATCH, "prefixMinMatchLength"),
}


class Routing(NamedTuple):
    """What the values get under routerSpec (None: the key is left out)."""

    logic: str
    session_key: str | None
    prefix_min_match_length: int | None


def _text(raw: Any) -> str:
    return str(raw).strip() if raw is not None else ""


def _named(setting: str, sources: Mapping[str, str]) -> str:
    """The setting as the operator gave it: its variable, or its key in vllmctl.yaml."""
    env, key = _NAMES[setting]
    source = sources.get(setting, "env")
    if source in ("flag", "env", "default"):
        return env
    path, _, environment = source.partition(" (env ")
    return f"{key} of environment {environment.rstrip(')')} in {path}" if environment else f"{key} in {path}"


def _is(setting: str, value: object, sources: Mapping[str, str]) -> str:
    """`VLLM_X=value`, or `key: value (where)` for a value from vllmctl.yaml."""
    named = _named(setting, sources)
    if named.startswith("VLLM_"):
        return f"{named}={value}"
    key, _, where = named.partition(" ")
    return f"{key}: {value} ({where})"


def routing_values(given: RenderInput, chart: ChartAt, entries: Sequence[Mapping[str, Any]]) -> Routing:
    """Check the routing settings of `given` for `chart` and the models' `entries` (with
    vllmctl's defaults filled in); every problem is reported at once."""
    sources = given.routing_sources
    logic_name = _named(LOGIC, sources)
    key_name = _named(KEY, sources)
    prefix_name = _named(PREFIX, sources)
    problems: list[str] = []
    logic = _text(given.routing_logic) or DEFAULT_LOGIC
    key = _text(given.router_session_key) or None
    prefix_text = _text(given.router_prefix_min_match_length)
    since = ROUTING_LOGIC_SINCE.get(logic)
    if since is None:
        problems.append(
            f"{_is(LOGIC, repr(logic), sources)} is not a routing logic the router has; use one of "
            f"{', '.join(ROUTING_LOGIC_SINCE)}."
        )
    elif chart.before(since):
        problems.append(
            f"{_is(LOGIC, logic, sources)} needs chart {_dotted(since)} or newer; it is {chart.text}. "
            f"Use chart {_dotted(since)} or newer (VLLM_CHART_VERSION, or a newer chart at VLLM_CHART), "
            "or choose another routing logic."
        )
    elif logic.startswith("disaggregated_prefill"):
        problems.append(
            f"{_is(LOGIC, logic, sources)} routes between prefill and decode engines, and vllmctl cannot "
            "give models those roles yet; use roundrobin, session, prefixaware or kvaware."
        )
    elif logic == "kvaware" and not any(
        entry.get("lmcacheConfig") or entry.get("kvCache") for entry in entries
    ):
        problems.append(
            f"{_is(LOGIC, logic, sources)} routes by the engines' LMCache KV caches, and no model in "
            "models.yaml has kvCache (or lmcacheConfig); give the models kvCache, or use prefixaware."
        )
    if logic == "session" and key is None:
        problems.append(
            f"{_is(LOGIC, logic, sources)} needs the header that names a session: set "
            f"{ENV_ROUTER_SESSION_KEY} (an environment's sessionKey in vllmctl.yaml), e.g. x-user-id; "
            "without it the router refuses to start."
        )
    if key is not None:
        if not _HEADER_RE.fullmatch(key):
            problems.append(
                f"{_is(KEY, repr(key), sources)} is not an HTTP header name (letters, digits and "
                "!#$%&'*+.^_`|~-, no spaces or colons); write e.g. x-user-id."
            )
        elif logic != "session":
            problems.append(
                f"{key_name} is set but {logic_name} is {logic}: only session routing reads it. "
                f"Set {ENV_ROUTING_LOGIC}=session, or unset {key_name}."
            )
    prefix = _prefix(prefix_text, prefix_name, logic_name, logic, chart, problems)
    if not given.router_enabled and (logic != DEFAULT_LOGIC or key or prefix):
        problems.append(
            f"{_is(LOGIC, logic, sources)} configures the router, but VLLM_ROUTER_ENABLED is false (the "
            "chart then makes no router). Enable the router, or unset the routing settings."
        )
    refuse_problems(problems, "the router's routing settings")
    return Routing(logic, key, prefix)


def _prefix(
    text: str, name: str, logic_name: str, logic: str, chart: ChartAt, problems: list[str]
) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        prefix_is = name + "=" + repr(text) if name.startswith("VLLM_") else f"{name}: {text!r}"
        problems.append(f"{prefix_is} is not a whole number of characters (0 or more); write e.g. 256.")
        return None
    if chart.before(PREFIX_SINCE):
        problems.append(
            f"{name} needs chart {_dotted(PREFIX_SINCE)} or newer (routerSpec.prefixMinMatchLength); "
            f"it is {chart.text}. Use chart {_dotted(PREFIX_SINCE)} or newer (VLLM_CHART_VERSION, or a newer "
            f"chart at VLLM_CHART), or unset {name}."
        )
        return None
    if logic != "prefixaware":
        problems.append(
            f"{name} is set but {logic_name} is {logic}: only prefixaware routing reads it. "
            f"Set {ENV_ROUTING_LOGIC}=prefixaware, or unset {name}."
        )
        return None
    return int(text) or None  # 0 is the router's default: left out, as the chart leaves it


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


# --- read back -----------------------------------------------------------------------------

_ARGS = {
    "--routing-logic": "logic",
    "--session-key": "session key",
    "--prefix-min-match-length": "prefix min match length",
}


def routing_in_force(deployment: Obj) -> Obj:
    """The routing the deployed router runs with, from its container's args (a missing
    `--routing-logic` is reported as such: the router then starts with none)."""
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    args = [str(a) for a in (containers[0].get("args") or [])] if containers else []
    found: Obj = {}
    for flag, label in _ARGS.items():
        if flag in args and args.index(flag) + 1 < len(args):
            found[label] = args[args.index(flag) + 1]
    text = found.get("logic", "none given")
    extras = [f"{label} {value}" for label, value in found.items() if label != "logic"]
    if extras:
        text += f" ({', '.join(extras)})"
    return {"routing": text}


# --- doctor --------------------------------------------------------------------------------


def check_routing(report: Report, settings: Any, models: Sequence[Any] | None, chart_decided: bool) -> None:
    """One row: the routing in force, or a FAIL naming the setting the chart version (or the
    models) cannot take."""
    from vllmctl.chart.inputs import default_render_input
    from vllmctl.core.errors import VllmctlError

    try:
        given = default_render_input(settings)  # reads the chart version, which may be in doubt
    except VllmctlError:
        report.add("release", "routing", "skip", "not judged: the chart version is in doubt (see its row)")
        return
    chart = ChartAt.of(given.chart_version) if chart_decided else ChartAt("unknown", None)
    entries = [m.effective() for m in models] if models is not None else [{"lmcacheConfig": "unknown"}]
    try:
        routing = routing_values(given, chart, entries)
    except UsageError as e:
        report.add("release", "routing", "fail", e.message, "; ".join(e.details or []))
        return
    source = given.routing_sources.get("routing_logic", "default")
    given_as = "the default" if source == "default" else _named("routing_logic", given.routing_sources)
    detail = f"routingLogic {routing.logic} ({given_as})"
    if routing.session_key:
        detail += f", session key header {routing.session_key}"
    if routing.prefix_min_match_length:
        detail += f", prefix min match length {routing.prefix_min_match_length}"
    report.add("release", "routing", "ok", detail)
