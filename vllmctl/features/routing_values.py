"""The router's routing logic, from VLLM_ROUTING_LOGIC, VLLM_ROUTER_SESSION_KEY and
VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH (or an environment's routingLogic, sessionKey and
prefixMinMatchLength in vllmctl.yaml).

`routing_values` checks them against the chart version and the models and gives what
`templates/values.yaml.j2` places under `routerSpec` (routingLogic, sessionKey,
prefixMinMatchLength; for kvaware the LMCache controller's ports, for disaggregated_prefill
the prefill/decode model labels as extraArgs and the router's OPENAI_API_KEY);
`routing_in_force` reads the deployed router's args back for status;
`check_routing` is doctor's row. docs/routing.md tells the story.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import (
    CONTROLLER_REPLY_SINCE,
    LMCACHE_CONTROLLER_PORT,
    LMCACHE_CONTROLLER_REPLY_PORT,
    ROUTER_ENV_SINCE,
    ROUTING_LOGIC_SINCE,
    SINCE,
    ChartAt,
)
from vllmctl.core.errors import UsageError, refuse_problems
from vllmctl.core.setting_names import (
    ENV_ROUTER_PREFIX_MIN_MATCH,
    ENV_ROUTER_SESSION_KEY,
    ENV_ROUTING_LOGIC,
    as_given,
    given_as,
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
    # kvaware: the LMCache controller's ports (lmcacheControllerPort, ...; extraPorts for the
    # Service's reply port); disaggregated_prefill: the router's prefill/decode model labels
    # (extraArgs) and, with an API key, OPENAI_API_KEY from its Secret (env).
    lmcache_controller: Obj | None = None
    extra_args: list[str] | None = None
    env: list[Obj] | None = None


def _text(raw: Any) -> str:
    return str(raw).strip() if raw is not None else ""


def _named(setting: str, sources: Mapping[str, str]) -> str:
    """The setting as the operator gave it: its variable, or its key in vllmctl.yaml."""
    return as_given(*_NAMES[setting], sources.get(setting, "env"))


def _is(setting: str, value: object, sources: Mapping[str, str]) -> str:
    """`VLLM_X=value`, or `key: value (where)` for a value from vllmctl.yaml."""
    return given_as(*_NAMES[setting], sources.get(setting, "env"), value)


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
    elif logic == "disaggregated_prefill_orchestrated":
        problems.append(
            f"{_is(LOGIC, logic, sources)} hands the KV over through vLLM's own kv_transfer_params "
            "(a NIXL connector), and the chart's engines speak only LMCache's connector "
            "(--kv-transfer-config LMCacheConnectorV1): vllmctl cannot render such engines. Use "
            "disaggregated_prefill with kvCache.role on two models."
        )
    elif logic == "kvaware" and not any(
        entry.get("lmcacheConfig") or entry.get("kvCache") for entry in entries
    ):
        problems.append(
            f"{_is(LOGIC, logic, sources)} routes by the engines' LMCache KV caches, and no model in "
            "models.yaml has kvCache (or lmcacheConfig); give the models kvCache, or use prefixaware."
        )
    elif logic == "kvaware" and (given.router_replicas > 1 or given.router_autoscaling):
        problems.append(
            f"{_is(LOGIC, logic, sources)} runs LMCache's controller inside the router, and the engines "
            "report to whichever router the Service picks: with more than one router each knows only "
            "part of the caches. Set VLLM_ROUTER_REPLICAS=1 and VLLM_ROUTER_AUTOSCALING=false, or use "
            "prefixaware."
        )
    elif logic == "kvaware" and _multinode_kv(entries):
        problems.append(
            f"{_is(LOGIC, logic, sources)}: {', '.join(_multinode_kv(entries))} run as the chart's "
            "RayCluster, whose engines point LMCache's controller at <release>-<model>-service, a "
            "Service the chart never makes, not at the router; remove their kvCache, make them "
            "one-node models, or use prefixaware."
        )
    roles = _roles(entries)
    if logic == "disaggregated_prefill" and not problems:
        problems += _pair_problems(_is(LOGIC, logic, sources), roles, entries)
        if given.api_key is not None and chart.before(ROUTER_ENV_SINCE):
            problems.append(
                f"{_is(LOGIC, logic, sources)}: the router sends the prefill and decode requests with "
                "$OPENAI_API_KEY, not the VLLM_API_KEY the chart gives it, and chart "
                f"{chart.text} cannot add that variable (routerSpec.env is 0.1.12+), so the engines "
                "would refuse them. Use chart 0.1.12, or run without an API key."
            )
    elif any(roles.values()) and logic != "disaggregated_prefill":
        named = ", ".join(f"{name} ({role})" for role, names in roles.items() for name in names)
        problems.append(
            f"kvCache.role on {named} makes engines that hand KV over to each other, which only "
            f"disaggregated_prefill routing drives, not {_is(LOGIC, logic, sources)}. Set "
            f"{ENV_ROUTING_LOGIC}=disaggregated_prefill, or remove role."
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
    if logic == "kvaware":
        return Routing(logic, key, prefix, lmcache_controller=_controller(chart))
    if logic == "disaggregated_prefill":
        args = ["--prefill-model-labels", ",".join(roles["prefill"])]
        args += ["--decode-model-labels", ",".join(roles["decode"])]
        env = None
        if given.api_key is not None:
            ref = given.api_key.as_values()
            secret = {"name": ref["secretName"], "key": ref["secretKey"]}
            env = [{"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": secret}}]
        return Routing(logic, key, prefix, extra_args=args, env=env)
    return Routing(logic, key, prefix)


def _multinode_kv(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    from vllmctl.features.kv_cache_values import multinode_kv_models

    return multinode_kv_models(entries)


def _roles(entries: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    from vllmctl.features.kv_cache_values import roles

    return roles(entries)


def _pair_problems(
    logic_is: str, roles: Mapping[str, list[str]], entries: Sequence[Mapping[str, Any]]
) -> list[str]:
    """disaggregated_prefill needs one prefill and one decode model, one replica each, serving
    the same weights: the chart wires one NIXL sender to one receiver's Service, and the
    router sends every request to the first of each it found."""
    prefill, decode = roles["prefill"], roles["decode"]
    if len(prefill) != 1 or len(decode) != 1:
        return [
            f"{logic_is} needs exactly one model with kvCache.role: prefill and one with "
            f"kvCache.role: decode; models.yaml has {len(prefill)} prefill ({', '.join(prefill) or 'none'}) "
            f"and {len(decode)} decode ({', '.join(decode) or 'none'})."
        ]
    found: list[str] = []
    pair = [e for e in entries if e.get("name") in (prefill[0], decode[0])]
    for entry in pair:
        if int(entry.get("replicaCount", 1)) != 1:
            found.append(
                f"{entry['name']}: {logic_is} needs replicaCount 1 on the prefill and the decode model "
                f"(the prefill engine sends its KV to the decode model's Service, and the router to the "
                f"first engine of each); it is {entry.get('replicaCount')}."
            )
    urls = {str(e.get("modelURL")) for e in pair}
    if len(urls) != 1:
        found.append(
            f"{logic_is}: the prefill model {prefill[0]} and the decode model {decode[0]} must serve "
            f"the same modelURL (the decode engine continues from the prefill's KV); they serve "
            f"{' and '.join(sorted(urls))}."
        )
    return found


def _controller(chart: ChartAt) -> Obj:
    """routerSpec's LMCache controller keys for kvaware: the pull port the router's Service
    carries (9000), and from 0.1.11 the reply port, which the Service gets only through
    extraPorts."""
    keys: Obj = {"lmcacheControllerPort": LMCACHE_CONTROLLER_PORT}
    if not chart.before(CONTROLLER_REPLY_SINCE):
        keys["lmcacheControllerReplyPort"] = LMCACHE_CONTROLLER_REPLY_PORT
        keys["extraPorts"] = [
            {
                "name": "lmcache-reply",
                "port": LMCACHE_CONTROLLER_REPLY_PORT,
                "targetPort": LMCACHE_CONTROLLER_REPLY_PORT,
                "protocol": "TCP",
            }
        ]
    return keys


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
    "--prefill-model-labels": "prefill",
    "--decode-model-labels": "decode",
    "--lmcache-controller-port": "LMCache controller port",
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
    if routing.lmcache_controller:
        detail += (
            f", LMCache controller on the router's port {routing.lmcache_controller['lmcacheControllerPort']}"
        )
    if routing.extra_args:
        pair = routing.extra_args
        detail += f", prefill {pair[1]} -> decode {pair[3]}"
    report.add("release", "routing", "ok", detail)
