"""The routing feature: how the router picks an engine for a request, from the
VLLM_ROUTING_LOGIC, VLLM_ROUTER_SESSION_KEY and VLLM_ROUTER_PREFIX_MIN_MATCH_LENGTH settings
(docs/routing.md).

Its part, imported by the hooks that need it: `routing_values` (the settings checked into
`routerSpec` values, the deployed router's args read back, doctor's row). This module is
what the registry lists; it stays small because every command that reads models.yaml
imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vllmctl.core.setting_names import (
    ENV_ROUTER_PREFIX_MIN_MATCH,
    ENV_ROUTER_SESSION_KEY,
    ENV_ROUTING_LOGIC,
)
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features.contexts import Contribution, DoctorContext, ReleaseValues

Obj = dict[str, Any]


class Routing(Feature):
    name = "routing"
    settings = (ENV_ROUTING_LOGIC, ENV_ROUTER_SESSION_KEY, ENV_ROUTER_PREFIX_MIN_MATCH)

    def release_values(self, release: ReleaseValues) -> Contribution:
        from vllmctl.features.contexts import Contribution
        from vllmctl.features.routing_values import routing_values

        routing = routing_values(release.given, release.chart, release.entries)
        return Contribution(
            context={
                "router": {
                    "routing_logic": routing.logic,
                    "session_key": routing.session_key,
                    "prefix_min_match_length": routing.prefix_min_match_length,
                    "lmcache_controller": routing.lmcache_controller,
                    "extra_args": routing.extra_args,
                    "env": routing.env,
                }
            },
            placed={
                "routerSpec.routingLogic": routing.logic,
                "routerSpec.sessionKey": routing.session_key,
                "routerSpec.prefixMinMatchLength": routing.prefix_min_match_length,
                "routerSpec.extraArgs": routing.extra_args,
                "routerSpec.env": routing.env,
                **{f"routerSpec.{k}": v for k, v in (routing.lmcache_controller or {}).items()},
            },
        )

    def doctor(self, report: Report, context: DoctorContext) -> None:
        from vllmctl.features.routing_values import check_routing

        check_routing(report, context.settings, context.models, context.chart_decided)

    def router_status(self, deployment: Obj) -> Mapping[str, Any]:
        from vllmctl.features.routing_values import routing_in_force

        return routing_in_force(deployment)


FEATURE = Routing()
