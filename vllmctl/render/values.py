"""models.yaml + settings -> Helm values for the vllm-stack chart.

The values are computed here (what each model needs, what the chart version supports,
which flags the vLLM image accepts) and placed by the jinja2 templates in `templates/`,
which operators may copy and change. The rendered text is parsed back and checked
before anyone uses it: it must be one mapping whose models are exactly ours.

Facts about the chart that this module follows are in docs/chart-facts.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllmctl.catalog.schema import Model
from vllmctl.chart.facts import (
    CHART_KEYS,
    KEEP_POLICY,
    MAX_RELEASE_AND_NAME,
    ChartAt,
    tags_name_vllm,
    version_tuple,
)
from vllmctl.chart.inputs import (
    API_KEY_SECRET,
    HF_TOKEN_SECRET,
    RELEASE_LABEL,
    DeployedLabels,
    RenderInput,
    SecretRef,
    default_render_input,
)
from vllmctl.core.errors import CatalogError, UsageError, refuse_problems
from vllmctl.core.fields import REPO_ID_RE
from vllmctl.features import registry
from vllmctl.features.base import Feature, overriding
from vllmctl.features.contexts import ModelValues, ReleaseValues
from vllmctl.render import vllm_flags
from vllmctl.render.chart_rules import entry_problems

VALUES_TEMPLATE = "values.yaml.j2"
# Characters JSON leaves raw that YAML 1.1 readers (libyaml, go-yaml v2) take for line
# breaks or refuse: escaped so a value reads back as the same string everywhere.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff]")


def to_yaml(value: Any) -> str:
    """The `yaml` template filter: `value` as a JSON document, which YAML reads back exactly."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if text.isascii() and "\x7f" not in text:  # nearly always: nothing to escape
        return text
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_yaml_key(key: str) -> str:
    """The `yaml_key` filter: a plain identifier as is (readable), anything else JSON-encoded."""
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else to_yaml(key)


@dataclass
class Rendered:
    """The values as text (what helm gets), parsed, and what the operator should know."""

    text: str
    values: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def render(models: Iterable[Model], given: RenderInput) -> Rendered:
    """The chart values for `models`, checked."""
    from vllmctl.catalog.store import gc_paused

    with gc_paused():  # many small objects, no cycles: see catalog.store.parse
        return _render(list(models), given)


def _render(models: list[Model], given: RenderInput) -> Rendered:
    warnings: list[str] = []
    chart = ChartAt.of(given.chart_version)
    if chart.version is None:
        warnings.append(
            f"VLLM_CHART_VERSION={given.chart_version!r} is not a plain version; "
            "vllmctl cannot check which chart keys it supports."
        )
    router_image = router_image_values(given)
    if router_image["tag"] is None or router_image["tag"] in ("", "latest"):
        warnings.append(router_unpinned_warning(given.chart_version, router_image["tag"]))
    features = registry.FEATURES
    shaping = overriding(features, "model_values")  # what each model's spec goes through
    merging: dict[str, list[Feature]] = {}  # each key with the features that join into it, in order
    for feature in features:
        for key in feature.merged_keys:
            merging.setdefault(key, []).append(feature)
    specs = [_model_spec(m, given, chart, shaping, merging) for m in models]
    warnings += _unpinned(models, given, specs)
    labels = _labels(given)
    release = ReleaseValues(models, [m.effective() for m in models], specs, given, chart, labels)
    context: dict[str, Any] = {
        "release": given.release,
        "namespace": given.namespace,
        "chart_version": given.chart_version,
        "runtime_class": "nvidia",
        "engine_labels": labels.engine,
        "router_labels": labels.router,
        "api_key": given.api_key.as_values() if given.api_key else None,
        "router": {
            "enabled": given.router_enabled,
            "replicas": given.router_replicas,
            "image": router_image,
            "resources": {
                "requests": {"cpu": given.router_request_cpu, "memory": given.router_request_memory},
                "limits": {"memory": given.router_limit_memory},
            },
        },
        "models": specs,
    }
    placed: dict[str, Any] = {
        "routerSpec.repository": router_image["repository"],
        "routerSpec.tag": router_image["tag"],
    }
    present: dict[str, str] = {}
    for feature in features:  # the release-wide values, in the registry's order
        contribution = feature.release_values(release)
        if contribution is None:
            continue
        _merge_context(context, contribution.context)
        placed.update(contribution.placed)
        present.update(contribution.present)
        warnings += contribution.warnings
    text = render_template(VALUES_TEMPLATE, context, given.templates_dir)
    values = check_values(text, specs)
    for feature in features:
        feature.check_rendered(values, specs)
    check_placed(values, placed)
    _check_present(values, present)
    return Rendered(text, values, warnings)


def _merge_context(context: dict[str, Any], added: Mapping[str, Any]) -> None:
    """A feature's template context into render's: mappings key by key, other values set."""
    for key, value in added.items():
        if isinstance(value, dict) and isinstance(context.get(key), dict):
            _merge_context(context[key], value)
        else:
            context[key] = value


def _found(values: dict[str, Any], path: str) -> tuple[bool, Any]:
    """(whether the dotted `path` is in the values, its value)."""
    found: Any = values
    for key in path.split("."):
        if not isinstance(found, dict) or key not in found:
            return False, None
        found = found[key]
    return True, found


def _check_present(values: dict[str, Any], wanted: dict[str, str]) -> None:
    for path, why in wanted.items():
        if not _found(values, path)[0]:
            raise CatalogError(why)


def check_placed(values: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Release-wide values the settings ask for (None: nothing asked) must be in the rendered
    values as computed: a copied template that predates a setting would drop it silently."""
    for path, value in wanted.items():
        if value is None:
            continue
        found = _found(values, path)[1]
        if found != value:
            raise CatalogError(
                f"the rendered values have {path} = {to_yaml(found)}, not {to_yaml(value)} as the "
                "settings ask; check the templates (a copy in VLLM_TEMPLATES_DIR may predate the setting)."
            )


def _unpinned(models: list[Model], given: RenderInput, specs: list[dict[str, Any]]) -> list[str]:
    """Warnings for engine image tags that name no vLLM release (the setting's, if a model
    uses it: a feature may have given a model another image, such as an LMCache one)."""
    warnings = []
    uses_setting = not models or any(
        "tag" not in m.data and spec.get("tag") == given.tag for m, spec in zip(models, specs, strict=True)
    )
    if uses_setting and vllm_flags.image_version(given.tag) is None:
        warnings.append(
            f"the engine image tag {given.tag!r} is not pinned to a vLLM release: the engines "
            "start whatever it points to when they are scheduled. Pin VLLM_MODEL_TAG (e.g. v0.11.0)."
        )
    for model in models:
        tag = model.data.get("tag")
        if tag is not None and vllm_flags.image_version(str(tag)) is None:
            warnings.append(
                f"{model.name}: the engine image tag {tag!r} is not pinned to a vLLM release; "
                "pin the model's tag (e.g. v0.11.0)."
            )
    return warnings


def router_image_values(given: RenderInput) -> dict[str, str | None]:
    """The router's image: VLLM_ROUTER_IMAGE, and VLLM_ROUTER_TAG or else the tag released
    with the chart version (None when vllmctl knows none: the chart's own `latest`)."""
    from vllmctl.chart.version import router_tag_for

    tag = given.router_tag or router_tag_for(given.chart_version)  # "" counts as unset
    return {"repository": given.router_image, "tag": tag}


def router_unpinned_warning(chart_version: str, tag: str | None) -> str:
    """Why an unpinned router image is a risk, and the setting that pins it."""
    from vllmctl.core.setting_names import ENV_ROUTER_TAG

    what = (
        f"the router image tag {tag!r} is"
        if tag
        else f"no router image tag is known for chart {chart_version}, so the router is"
    )
    return (
        f"{what} not pinned: it runs whatever `latest` points to when its pod starts. "
        f"Pin {ENV_ROUTER_TAG} (e.g. v0.1.12, the tag released with chart 0.1.12)."
    )


def _model_spec(
    model: Model,
    given: RenderInput,
    chart: ChartAt,
    shaping: list[Feature],
    merging: dict[str, list[Feature]],
) -> dict[str, Any]:
    data = model.effective()
    name = model.name
    if len(given.release) + len(name) > MAX_RELEASE_AND_NAME:
        raise UsageError(
            f"release {given.release!r} and model {name!r} are {len(given.release) + len(name)} "
            f"characters together; the chart needs at most {MAX_RELEASE_AND_NAME} (its object and "
            "host names are built from both). Shorten the model name or VLLM_RELEASE."
        )
    # Keys the chart version does not read would be silently ignored (chart.version decides).
    refuse_problems(
        [f"{name}: {why}" for _, why in entry_problems(model.data, given.chart_version)],
        f"{name}'s keys for chart {given.chart_version}",
    )
    spec: dict[str, Any] = {
        "name": name,
        "repository": data.get("image", given.image),
        "tag": data.get("tag", given.tag),
        "modelURL": data["modelURL"],
        "replicaCount": data["replicaCount"],
        "requestCPU": data["requestCPU"],
        "requestMemory": data["requestMemory"],
        "requestGPU": data["requestGPU"],
    }
    if "limitMemory" in data:
        spec["limitMemory"] = data["limitMemory"]
    # The chart's per-model cache PVC (a model source without one removes these keys).
    spec["pvcStorage"] = data["pvcStorage"]
    spec["pvcAccessMode"] = ["ReadWriteOnce"]
    if given.storage_class:
        spec["storageClass"] = given.storage_class
    if chart.version is not None and not chart.before("modelSpec.pvcAnnotations"):
        # Model caches (often hundreds of GB) survive `helm uninstall`.
        spec["pvcAnnotations"] = dict(KEEP_POLICY)
    if given.hf_token is not None:
        spec["hf_token"] = given.hf_token.as_values()
    spec["vllmConfig"] = _vllm_config(model, data, None)  # its flags are checked at the end
    shaped = ModelValues(model, data, spec, given, chart)
    for feature in shaping:  # each feature's keys, in the registry's order
        feature.model_values(shaped)
    for key, value in data.items():
        if key in CHART_KEYS:
            _refuse_unsafe_text(name, key, value)
            if key in merging:  # joined with what features put there (a model source's volumes...)
                # each such feature checks the entry's own value against the spec's and joins
                # the two; they join alike, so the first's result is the one used
                joined = [feature.merge(name, key, spec.get(key), value) for feature in merging[key]]
                value = joined[0]
            spec[key] = value  # the entry's own value wins over vllmctl's
    # The flags against the image the model ends up with (a feature may choose another, such
    # as an LMCache image, whose tags name LMCache releases, not vLLM's: chart/facts.py).
    tagged = tags_name_vllm(str(spec.get("repository")))
    engine = vllm_flags.image_version(str(spec["tag"])) if tagged else None
    vllm_flags.check(name, vllm_flags.flags_for(spec["vllmConfig"]), engine)
    return spec


# Helm's toYaml (which the chart uses for env, tolerations, ...) silently drops the whole
# block when a string holds DEL, a C1 control or U+FFFE/U+FFFF, and writes NEL raw, which
# YAML 1.1 readers turn into a space (seen with helm 4.1 and the real chart 0.1.8).
_TOYAML_UNSAFE = re.compile("[\x7f-\x9f\ufffe\uffff]")


def _refuse_unsafe_text(model: str, key: str, value: Any) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _refuse_unsafe_text(model, key, item)
    elif isinstance(value, list):
        for item in value:
            _refuse_unsafe_text(model, key, item)
    elif isinstance(value, str) and (match := _TOYAML_UNSAFE.search(value)):
        raise UsageError(
            f"{model}: {key} holds the character {match.group()!r}, which helm drops or changes "
            "when the chart writes the value out; remove it."
        )


def _vllm_config(model: Model, data: dict[str, Any], engine: tuple[int, ...] | None) -> dict[str, Any]:
    """The entry's vllmConfig as the chart should get it.

    - `--served-model-name <name> [<repo id>]` so clients call the models.yaml name (the
      chart serves the repo id only); the repo id stays a second name.
    - enablePrefixCaching defaults to true: with any vllmConfig the chart otherwise adds
      --no-enable-prefix-caching, turning off what vLLM has on by default.
    - Numbers go as strings: the chart prints numbers of a million or more in exponent
      form (`--max-model-len "1e+06"`), which vLLM refuses.
    """
    config: dict[str, Any] = dict(data.get("vllmConfig") or {})
    config.setdefault("enablePrefixCaching", True)
    extra = list(config.get("extraArgs") or [])
    if not any(arg.split("=", 1)[0] == "--served-model-name" for arg in extra):
        names = [model.name]
        if REPO_ID_RE.fullmatch(data["modelURL"]) and data["modelURL"] != model.name:
            names.append(data["modelURL"])
        extra = [*extra, "--served-model-name", *names]
    config["extraArgs"] = extra
    vllm_flags.check(model.name, vllm_flags.flags_for(config), engine)
    return {
        key: str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        for key, value in config.items()
    }


def _labels(given: RenderInput) -> DeployedLabels:
    """Labels scoped to the release, or the deployed release's own (selectors are immutable).

    The chart merges these with its defaults, and the router discovers engines by them: the
    defaults are the same for every release, so two releases in one namespace would route
    to each other's engines. A release-unique key keeps them apart.
    """
    if given.deployed_labels is not None:
        return given.deployed_labels
    scoped = {RELEASE_LABEL: given.release}
    return DeployedLabels(engine=dict(scoped), router=dict(scoped))


def render_template(name: str, context: dict[str, Any], templates_dir: Path | None) -> str:
    """Render one template from `templates_dir` (else the packaged templates)."""
    import jinja2

    directory = templates_dir or packaged_templates()
    if not (directory / name).is_file():
        raise UsageError(f"{directory / name} does not exist; copy vllmctl's templates/ there to start from.")
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    environment.filters["yaml"] = to_yaml
    environment.filters["yaml_key"] = to_yaml_key
    try:
        return environment.get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None) or _template_line(exc, str(directory / name))
        where = f"{directory / name}:{line}" if line else str(directory / name)
        raise UsageError(f"{where}: template error: {exc}") from None


def _template_line(exc: BaseException, filename: str) -> int | None:
    """The template line an error was raised at: jinja2 puts the template's own frame
    (with its file name and line) into the traceback."""
    line = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == filename:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


def packaged_templates() -> Path:
    from importlib.resources import files

    return Path(str(files("vllmctl") / "data" / "templates"))


def check_values(text: str, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Parse rendered values back; they must hold exactly our models, names and URLs intact."""
    from ruamel.yaml.error import YAMLError

    from vllmctl.core.yamldoc import Constructor, YamlText, compose

    try:
        # compose: the same bounds as every file read (a custom template could hold aliases)
        node = compose(YamlText(Path("<rendered values>"), text, False, "\n"))
        values: Any = Constructor()(node) if node is not None else None
    except (YAMLError, CatalogError) as exc:
        problem = exc.message if isinstance(exc, CatalogError) else str(exc)
        raise CatalogError(
            f"the rendered values are not valid YAML ({problem}); check the templates."
        ) from None
    model_specs = (
        (values.get("servingEngineSpec") or {}).get("modelSpec") if isinstance(values, dict) else None
    )
    if not isinstance(model_specs, list):
        raise CatalogError(
            "the rendered values have no servingEngineSpec.modelSpec list; check the templates."
        )
    got = [(m.get("name"), m.get("modelURL")) for m in model_specs if isinstance(m, dict)]
    wanted = [(s["name"], s["modelURL"]) for s in specs]
    if got != wanted:
        raise CatalogError(
            "the rendered values do not hold exactly the models of models.yaml "
            f"(expected {wanted[:3]}..., got {got[:3]}...); check the templates."
        )
    checked: dict[str, Any] = values
    return checked


# RenderInput and its parts live in vllmctl.chart.inputs (so the feature modules need not
# import render); they are re-exported here for the commands that render.
__all__ = [
    "API_KEY_SECRET",
    "HF_TOKEN_SECRET",
    "RELEASE_LABEL",
    "DeployedLabels",
    "RenderInput",
    "Rendered",
    "SecretRef",
    "default_render_input",
    "render",
    "version_tuple",
]
