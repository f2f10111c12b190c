"""doctor's checks of what would be deployed: models.yaml, the image tag, the chart version
and the upgrade path from the deployed release, and the secrets the models need."""

from __future__ import annotations

from typing import Any

from vllmctl.catalog.schema import Model
from vllmctl.chart.facts import SINCE, TESTED_CHARTS, version_tuple
from vllmctl.core.errors import VllmctlError
from vllmctl.core.findings import FAIL, OK, SKIP, WARN, Report
from vllmctl.core.setting_names import ENV_MODEL_TAG


def check_models(report: Report, settings: Any) -> list[Model] | None:
    """models.yaml's valid models, or None when there is nothing to check them against."""
    from vllmctl.catalog.selected import load_selected

    path = settings.models_path
    try:
        catalog = load_selected(settings)  # with --env, the environment's merge
    except VllmctlError as e:
        report.add(
            "release", "models.yaml", FAIL, e.message, "fix the file (vllmctl validate names every problem)"
        )
        return None
    if not catalog.exists:
        report.add("release", "models.yaml", FAIL, f"{path} does not exist", "add a model: vllmctl add-model")
        return None
    if catalog.problems:
        count = len(catalog.problems)
        report.add(
            "release",
            "models.yaml",
            FAIL,
            f"{path} has {count} problem{'s' if count != 1 else ''}, the first: {catalog.problems[0]}",
            "vllmctl validate lists them all with the fix",
        )
        return None
    count = len(catalog.models)
    report.add("release", "models.yaml", OK, f"{path}: {count} model{'s' if count != 1 else ''}, valid")
    return catalog.models


def check_image(report: Report, settings: Any, models: list[Model] | None = None) -> None:
    """The engine images each model runs: VLLM_MODEL_IMAGE:VLLM_MODEL_TAG, the LMCache
    image (VLLM_LMCACHE_IMAGE:VLLM_LMCACHE_TAG) for kvCache models, or the models' own
    `image`/`tag`, as render decides them."""
    from vllmctl.features import registry

    users: dict[str, list[str]] = {}  # image -> the models running it
    # The settings whose floating tag a model runs: the fix names the one to pin.
    setting_floats = {ENV_MODEL_TAG} if not models and _floating(settings.model_tag) else set()
    own_floating: list[str] = []  # models whose own `tag` floats
    for model in models or []:
        image, tag, tag_setting = _engine_image(registry.FEATURES, model.data, settings)
        users.setdefault(f"{image}:{tag}", []).append(model.name)
        if _floating(tag) and "tag" in model.data:
            own_floating.append(model.name)
        elif _floating(tag):
            setting_floats.add(tag_setting)
    if not users:
        users[f"{settings.model_image}:{settings.model_tag}"] = []
    shown = "; ".join(f"{image} ({', '.join(names)})" if names else image for image, names in users.items())
    floating = [image for image in users if _floating(image.rpartition(":")[2])]
    if not floating:
        report.add("release", "image tag", OK, f"the engines run {shown}")
        return
    example = {ENV_MODEL_TAG: "v0.10.1"}
    fixes = [
        f"pin a release: {env}={example.get(env, '<a release>')} (or the version you tested)"
        for env in sorted(setting_floats)
    ]
    if own_floating:
        fixes.append(f"set `tag` to a release on {', '.join(own_floating)} in models.yaml")
    report.add(
        "release",
        "image tag",
        WARN,
        f"the engines run {shown}: {', '.join(floating)} change{'s' if len(floating) == 1 else ''} "
        "under you (a node pulls whatever is newest)",
        "; ".join(fixes),
    )


def _engine_image(features: Any, data: dict[str, Any], settings: Any) -> tuple[str, str, str]:
    """The image render gives a model and the setting its tag comes from: a feature's (an
    LMCache one for kvCache), else the entry's own `image` or VLLM_MODEL_IMAGE, with its own
    `tag` or VLLM_MODEL_TAG."""
    for feature in features:
        chosen: tuple[str, str, str] | None = feature.engine_image(data, settings)
        if chosen is not None:
            return chosen
    image, tag = str(data.get("image", settings.model_image)), str(data.get("tag", settings.model_tag))
    return image, tag, ENV_MODEL_TAG


def _floating(tag: Any) -> bool:
    return str(tag).strip() in ("", "latest")


def check_chart(report: Report, settings: Any, deployed_chart: str | None, *, index: bool = True) -> None:
    """The target chart version (and where it came from) is one vllmctl knows, the upgrade
    to it is safe, and (`index`) whether the chart repository has a newer one."""

    try:
        chart = settings.chart_target
    except VllmctlError as e:
        report.add("release", "chart", FAIL, e.message)
        return
    target = chart.version
    if target.lstrip("v") not in TESTED_CHARTS:
        report.add(
            "release",
            "chart",
            WARN,
            f"chart {settings.chart} {chart.shown} is not one vllmctl is tested with "
            f"({', '.join(TESTED_CHARTS)}); values are rendered as for the newest it knows",
            "use a tested version (VLLM_CHART_VERSION, or a chart of that version), or check "
            "`vllmctl template` by hand",
        )
    else:
        report.add("release", "chart", OK, f"chart {settings.chart} {chart.shown}")
    if chart.local is None and index and not str(settings.chart).startswith("oci://"):
        check_chart_index(report, settings, target)
    if deployed_chart is None:
        return
    before, after = version_tuple(deployed_chart), version_tuple(target)
    if before and after and before > after:
        report.add(
            "release",
            "upgrade path",
            WARN,
            f"the release runs chart {deployed_chart}; {target} would downgrade it",
            "set VLLM_CHART_VERSION to the deployed version or newer",
        )
    elif before and after and before < SINCE["selector labels"] <= after:
        report.add(
            "release",
            "upgrade path",
            WARN,
            f"chart {deployed_chart} -> {target} changes the Deployments' selectors "
            "(Kubernetes refuses that)",
            "upgrade with --replace-deployments (the engines restart: a short outage)",
        )
    else:
        report.add("release", "upgrade path", OK, f"chart {deployed_chart} -> {target}: no selector change")


def chart_decided(settings: Any) -> bool:
    """Whether the chart version can be decided (check_chart reports why not); the checks
    that judge settings by the chart version need it."""
    try:
        return bool(settings.chart_version)
    except VllmctlError:
        return False


def check_chart_index(report: Report, settings: Any, target: str) -> None:
    """Whether the configured repository's index lists a chart newer than the target; an
    index that cannot be read is skipped, not failed (doctor may run offline)."""
    from vllmctl.chart.facts import NEWEST_TESTED
    from vllmctl.chart.version import newer_in_index

    try:
        newer = newer_in_index(settings.chart_repo, settings.chart, target)
    except VllmctlError as e:
        report.add(
            "release", "chart index", SKIP, f"could not read {settings.chart_repo}/index.yaml: {e.message}"
        )
        return
    if not newer:
        report.add("release", "chart index", OK, f"{target} is the newest chart in {settings.chart_repo}")
        return
    tested = [v for v in newer if v.lstrip("v") in TESTED_CHARTS]
    untested = [v for v in newer if v not in tested]
    if tested:
        report.add(
            "release",
            "chart index",
            WARN,
            f"a newer chart is in {settings.chart_repo}: {', '.join(newer)} (target {target})",
            f"VLLM_CHART_VERSION={tested[-1]} vllmctl plan shows the upgrade and its hazards",
        )
    else:
        report.add(
            "release",
            "chart index",
            OK,
            f"{settings.chart_repo} has {', '.join(untested)}, newer than vllmctl is tested with "
            f"({NEWEST_TESTED}); {target} stays the target",
        )


def check_router_image(report: Report, settings: Any) -> None:
    """The router image: VLLM_ROUTER_IMAGE:VLLM_ROUTER_TAG, or the tag released with the
    chart version; `latest` (the chart's own default) or none known warns."""
    from vllmctl.render.values import default_render_input, router_image_values, router_unpinned_warning

    try:
        given = default_render_input(settings)
    except VllmctlError:
        return  # the chart check says why the chart version cannot be decided
    image = router_image_values(given)
    tag = image["tag"]
    if tag is None or _floating(tag):
        report.add(
            "release",
            "router image",
            WARN,
            router_unpinned_warning(given.chart_version, tag),
            "set VLLM_ROUTER_TAG to a released tag (docs/chart-facts.md lists one per chart version)",
        )
        return
    report.add("release", "router image", OK, f"the router runs {image['repository']}:{tag}")


def check_release(report: Report, settings: Any) -> Any:
    """What install would do against the deployed release: a deploy.Prepared (values, the
    deployed release, the plan), or None when helm or kubectl cannot tell."""
    from vllmctl.ops.deploy import helm_for, kubectl_for, prepare

    try:
        prepared = prepare(settings, helm=helm_for(settings), kubectl=kubectl_for(settings))
    except VllmctlError as e:
        report.add("release", "release", WARN, f"could not compare with the deployed release: {e.message}")
        return None
    deployed = prepared.deployed
    if deployed is None:
        report.add(
            "release",
            "release",
            OK,
            f"no release {settings.release} in {settings.namespace} yet: install creates it",
        )
    else:
        report.add(
            "release",
            "release",
            OK if deployed.status == "deployed" else WARN,
            f"release {settings.release}: revision {deployed.revision}, {deployed.status}, "
            f"chart {deployed.chart_version}",
            ""
            if deployed.status == "deployed"
            else "vllmctl history shows what happened; upgrade or rollback",
        )
    return prepared


def check_secrets(report: Report, kube: Any, settings: Any, models: list[Model]) -> str | None:
    """The HF token for gated models and the API key: in the namespace or stored. Returns
    the HF token to ask the Hub with (VLLM_HF_TOKEN, else the stored one), never shown."""
    from vllmctl.secrets.backend import choose
    from vllmctl.secrets.specs import API_KEY, HF_TOKEN

    token = settings.hf_token or None
    stored: dict[str, bool] = {}
    try:
        backend = choose(settings, kube)
        for kind in (HF_TOKEN, API_KEY):
            value = backend.get(kind)
            stored[kind.label] = value is not None
            if kind is HF_TOKEN and token is None:
                token = value
        in_namespace = {kind.label: backend.secret_value(kind) is not None for kind in (HF_TOKEN, API_KEY)}
    except VllmctlError as e:
        report.add("secrets", "stored secrets", WARN, f"could not read the stored secrets: {e.message}")
        return token
    gated = [m.name for m in models if m.data.get("gated") is True]
    namespace = settings.namespace
    if in_namespace[HF_TOKEN.label]:
        report.add("secrets", "hf token", OK, f"Secret {HF_TOKEN.ref.secret_name} is in {namespace}")
    elif stored[HF_TOKEN.label] or settings.hf_token:
        report.add(
            "secrets", "hf token", OK, f"a token is stored ({backend.name}); install puts it in {namespace}"
        )
    elif gated:
        report.add(
            "secrets",
            "hf token",
            FAIL,
            f"{', '.join(gated)} {'is' if len(gated) == 1 else 'are'} gated, "
            "and no HuggingFace token is stored",
            "vllmctl set-hf-token",
        )
    else:
        report.add("secrets", "hf token", OK, "no token stored; no model is marked gated")
    if in_namespace[API_KEY.label]:
        report.add("secrets", "api key", OK, f"Secret {API_KEY.ref.secret_name} is in {namespace}")
    elif stored[API_KEY.label]:
        report.add(
            "secrets", "api key", OK, f"a key is stored ({backend.name}); install puts it in {namespace}"
        )
    else:
        report.add(
            "secrets",
            "api key",
            WARN,
            "no API key: the endpoint will answer anyone who reaches it",
            "vllmctl set-api-key (or install --api-key)",
        )
    return token
