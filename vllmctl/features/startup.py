"""Startup budgets: how long an engine may take to start, and the startup probe that allows it.

The chart's probes are release-wide (`servingEngineSpec.startupProbe`), so the release's
startup probe covers the slowest model: periodSeconds x failureThreshold >= the largest
budget. A model's budget is its `maxStartupSeconds`, else VLLM_MAX_STARTUP_SECONDS, else
a guess from the parameter count its repo name states ("8B", "70B", "8x7B"): render runs
offline, so the Hub's safetensors count is not at hand. docs/models-yaml.md explains.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from vllmctl.chart.facts import ENGINE_PORT
from vllmctl.core.fields import Field, int_check
from vllmctl.core.setting_names import ENV_MAX_STARTUP_SECONDS
from vllmctl.features.base import Feature

if TYPE_CHECKING:
    from vllmctl.core.findings import Report
    from vllmctl.features.base import Entry
    from vllmctl.features.contexts import Contribution, ReleaseValues

MIN_SECONDS = 30
MAX_SECONDS = 86_400
PERIOD_SECONDS = 10
# The chart's own initial delay (every version), so a 600 s budget renders exactly the
# chart's default startup probe. Kept above 0: the 0.1.10+ chart replaces 0 by 15.
INITIAL_DELAY_SECONDS = 15
HEALTH_PATH = "/health"
UNKNOWN_SIZE_SECONDS = 600
SMALL_SECONDS = 300  # under 7B parameters
# (up to this many billions of parameters, seconds): 7-13B, 13-70B; above 70B: LARGEST_SECONDS.
BY_SIZE: tuple[tuple[float, int], ...] = ((13, 600), (70, 1800))
LARGEST_SECONDS = 3600
# A parameter count in a repo name: "8B", "1.5B", "135M", "8x7B" (experts x size), as its own
# dash-, underscore- or dot-separated word, so "A3B" (active parameters) or "Qwen2.5" do not count.
_SIZE_RE = re.compile(r"(?:^|(?<=[-_.]))(?:(\d{1,3})x)?(\d{1,4}(?:\.\d{1,2})?)([bBmM])(?=$|[-_.])")


class Budget(NamedTuple):
    """One model's startup budget and where it came from."""

    model: str
    seconds: int
    source: str  # "maxStartupSeconds", the setting's env name, or "size ..." / "default"


def parameters_from_name(model_url: str) -> float | None:
    """Billions of parameters a repo id's name states (the largest, for "8x7B" the product)."""
    # The last part of a repo id or path; an oci:// reference without its tag or digest.
    name = model_url.rstrip("/").rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    sizes = []
    for match in _SIZE_RE.finditer(name):
        experts, amount, unit = match.groups()
        value = float(amount) * (int(experts) if experts else 1)
        sizes.append(value / 1000 if unit in "mM" else value)
    return max(sizes) if sizes else None


def seconds_for_size(billions: float | None) -> int:
    """The suggested budget for a model of this size (600 s when the size is unknown)."""
    if billions is None:
        return UNKNOWN_SIZE_SECONDS
    if billions < 7:
        return SMALL_SECONDS
    return next((seconds for largest, seconds in BY_SIZE if billions <= largest), LARGEST_SECONDS)


def budget(entry: Mapping[str, Any], default: int | None, default_source: str) -> Budget:
    """A models.yaml entry's budget: its own, else the setting's, else by its name's size."""
    name = str(entry.get("name"))
    own = entry.get("maxStartupSeconds")
    if isinstance(own, int) and not isinstance(own, bool):
        return Budget(name, own, "maxStartupSeconds")
    if default is not None:
        return Budget(name, default, default_source)
    size = parameters_from_name(str(entry.get("modelURL") or ""))
    if size is None:
        return Budget(name, UNKNOWN_SIZE_SECONDS, "default")
    shown = f"{size:g}B" if size >= 1 else f"{size * 1000:g}M"
    return Budget(name, seconds_for_size(size), f"size {shown} in its name")


def slowest(budgets: Iterable[Budget]) -> Budget | None:
    """The largest budget (the first model with it), or None without models."""
    result: Budget | None = None
    for item in budgets:
        if result is None or item.seconds > result.seconds:
            result = item
    return result


def startup_probe(seconds: int) -> dict[str, Any]:
    """A startup probe on the engine's /health that allows `seconds` of failures.

    Liveness and readiness probes do not run until it succeeds (Kubernetes), so the
    chart's defaults for them (15 s delay, every 10 s / 5 s, 3 failures) are kept."""
    return {
        "initialDelaySeconds": INITIAL_DELAY_SECONDS,
        "periodSeconds": PERIOD_SECONDS,
        "failureThreshold": math.ceil(seconds / PERIOD_SECONDS),
        "httpGet": {"path": HEALTH_PATH, "port": ENGINE_PORT},
    }


# What every chart version (0.1.8-0.1.12) sets itself: 15 s, then 60 tries 10 s apart.
CHART_DEFAULT_SECONDS = 600


def release_probe(budgets: Iterable[Budget]) -> dict[str, Any] | None:
    """servingEngineSpec.startupProbe for the slowest budget; None when the chart's own
    default already allows exactly that (so releases that need no change show none)."""
    worst = slowest(budgets)
    if worst is None:
        return None
    probe = startup_probe(worst.seconds)
    return None if probe == startup_probe(CHART_DEFAULT_SECONDS) else probe


def check_setting(raw: Any, env: str) -> int | None:
    """VLLM_MAX_STARTUP_SECONDS as a number in range; a bad value names the variable."""
    from vllmctl.core.errors import UsageError

    if raw is None:
        return None
    if not isinstance(raw, int) or not MIN_SECONDS <= raw <= MAX_SECONDS:
        raise UsageError(
            f"{env}={raw!r} must be a whole number of seconds from {MIN_SECONDS} to {MAX_SECONDS}."
        )
    return raw


def check_budget_field(value: Any) -> str | None:
    """models.yaml's maxStartupSeconds: whole seconds from MIN_SECONDS to a day."""
    if problem := int_check(MIN_SECONDS)(value):
        return problem
    if value > MAX_SECONDS:
        return f"must be at most {MAX_SECONDS} (a day), not {value}"
    return None


class StartupBudgets(Feature):
    name = "startup budgets"
    fields: ClassVar[Mapping[str, Field]] = {
        "maxStartupSeconds": Field(check_budget_field, "seconds the engine may take to start")
    }
    settings = (ENV_MAX_STARTUP_SECONDS,)

    def release_values(self, release: ReleaseValues) -> Contribution:
        """The release's one startup probe, covering the slowest model's budget (None: the
        chart's default, 600 s, is that already, or there are no models)."""
        from vllmctl.features.contexts import Contribution

        default = check_setting(release.given.max_startup_seconds, ENV_MAX_STARTUP_SECONDS)
        probe = release_probe(budget(entry, default, ENV_MAX_STARTUP_SECONDS) for entry in release.entries)
        present = {}
        if probe is not None:  # a custom template may write its own: the documented override
            present["servingEngineSpec.startupProbe"] = (
                "the rendered values have no servingEngineSpec.startupProbe, but the models' startup "
                f"budgets need {probe['failureThreshold']} tries of {probe['periodSeconds']} s; check the "
                "templates (a copy in VLLM_TEMPLATES_DIR may predate maxStartupSeconds)."
            )
        return Contribution(context={"startup_probe": probe}, present=present)

    def doctor_model(self, report: Report, settings: Any, model: Entry, facts: Any) -> None:
        """Render guesses a model's startup budget from its repo name; the Hub's parameter
        count tells better. A budget below the suggestion for that size is a warning."""
        from vllmctl.core.findings import WARN

        if not facts.parameters:
            return
        billions = facts.parameters / 1e9
        suggested = seconds_for_size(billions)
        given = budget(model.effective(), settings.max_startup_seconds, ENV_MAX_STARTUP_SECONDS)
        if given.seconds >= suggested:
            return
        report.add(
            "release",
            f"startup budget {model.name}",
            WARN,
            f"{model.name} has {billions:.1f}B parameters, for which vllmctl suggests {suggested} s to "
            f"start, but its budget is {given.seconds} s ({given.source}): the startup probe may kill "
            "it while it is still loading",
            f"vllmctl set-model {model.name} maxStartupSeconds={suggested}",
        )


FEATURE = StartupBudgets()
