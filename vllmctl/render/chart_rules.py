"""The chart-version rules on a models.yaml entry: the keys a chart version would silently
ignore. One place decides, render refuses them and `validate` reports them at the key's
line:column: the pass-through chart keys by chart.facts.CHART_KEYS, the features' keys by
each feature (`Feature.chart_problems`).
"""

from __future__ import annotations

from typing import Any

from vllmctl.chart.facts import CHART_KEYS, ChartAt, version_tuple


def entry_problems(entry: dict[str, Any], chart_text: str) -> list[tuple[str, str]]:
    """The keys of one models.yaml entry that chart `chart_text` does not read (it would
    silently ignore them), each as (key, why and the fix). The one place that decides:
    render refuses these, and `validate` reports them at the key's line:column. The
    pass-through chart keys are judged by chart.facts.CHART_KEYS, the features' keys by
    each feature."""
    from vllmctl.features import registry

    chart = ChartAt.of(chart_text)
    if chart.version is None:
        return []
    problems = []
    for key in entry:
        since = CHART_KEYS.get(key)
        if since is not None and chart.before(version_tuple(since) or (0,)):
            problems.append(
                (
                    key,
                    f"{key} needs chart {since} or newer (the chart silently ignores it before); "
                    f"the chart version is {chart_text}. Raise the chart version or remove {key}.",
                )
            )
    for feature in registry.FEATURES:
        problems += feature.chart_problems(entry, chart)
    return problems


def catalog_problems(catalog: Any, chart_text: str) -> list[Any]:
    """`entry_problems` for every valid model of a catalog, as schema Problems that name the
    key's file:line:column."""
    from vllmctl.catalog.schema import Problem
    from vllmctl.core.yamldoc import find_key

    found = []
    for model in catalog.models:
        for key, message in entry_problems(model.data, chart_text):
            pair = find_key(model.node, key)
            at = pair[0].start_mark.index if pair else model.node.start_mark.index
            found.append(
                Problem(catalog.doc.where(at), f"models[{model.index}] ({model.name}).{key}", message)
            )
    return found
