"""LoRA adapters as chart values: models.yaml's `lora:` list checked, and each adapter
rendered the way its `atStart` says (docs/lora.md).

- `atStart: true` (the default): vLLM loads it when the engine starts, from
  `--lora-modules NAME=PATH` in the model's vllmConfig.extraArgs. A Hub repo id is the
  path as written (vLLM's get_adapter_absolute_path downloads a repo id it cannot find on
  disk); a `pvc://CLAIM/path` is the claim mounted read-only at /lora/NAME.
- `atStart: false`: the chart's LoRA controller loads it once the engine is Ready, from a
  LoraAdapter object (top-level `loraAdapters`, `loraController.enableLoraController`);
  the engine then needs VLLM_ALLOW_RUNTIME_LORA_UPDATING (vLLM's /v1/load_lora_adapter).

Either way the model gets the chart's `enableLoRA` (the engine's --enable-lora) and a
`vllmConfig.maxLoras` (--max_loras) covering its adapters unless the entry gives one.
No I/O, no heavy imports: the schema imports the checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.chart.facts import SINCE, ChartAt
from vllmctl.core.errors import UsageError
from vllmctl.core.fields import REPO_ID_RE, At, did_you_mean, kind_of

if TYPE_CHECKING:
    from vllmctl.chart.inputs import SecretRef

Obj = dict[str, Any]

KEY = "lora"
ITEM_KEYS = ("name", "source", "atStart")
# The LoraAdapter kind, as the chart's crds/crd-lora-adapter.yaml serves it.
GROUP = "production-stack.vllm.ai"
VERSION = "v1alpha1"
KIND = "LoraAdapter"
PLURAL = "loraadapters"
CONTROLLER_SINCE = SINCE["loraAdapters"]  # LoraAdapter objects the controller can load from the Hub
MOUNT_ROOT = "/lora"  # where a pvc:// adapter's claim is mounted in the engine
RUNTIME_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"  # vLLM's switch for /v1/load_lora_adapter
# An adapter's name: its model id in the API, part of a LoraAdapter object's name and of a
# volume name, so a DNS-1123 label (what all three accept).
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NAME_MAX = 40  # "lora-" + name is a volume name (63 at most), with room to spare
_CLAIM_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_+=@,.-]+")


class Adapter(NamedTuple):
    """One valid `lora:` item."""

    name: str
    source: str
    at_start: bool

    @property
    def hub(self) -> bool:
        return "://" not in self.source

    @property
    def claim(self) -> str:
        """The claim of a pvc:// source."""
        return self.source.removeprefix("pvc://").partition("/")[0]

    @property
    def path_in_claim(self) -> str:
        return self.source.removeprefix("pvc://").partition("/")[2].rstrip("/")

    @property
    def local_path(self) -> str:
        """Where a pvc:// adapter is in the engine's filesystem."""
        root = f"{MOUNT_ROOT}/{self.name}"
        return f"{root}/{self.path_in_claim}" if self.path_in_claim else root

    @property
    def volume(self) -> str:
        return f"lora-{self.name}"


def adapters(entry: Mapping[str, Any]) -> list[Adapter]:
    """The entry's (valid) adapters, in order."""
    return [
        Adapter(str(item["name"]), str(item["source"]), item.get("atStart", True) is not False)
        for item in entry.get(KEY) or []
    ]


def served_ids(entry: Mapping[str, Any]) -> list[tuple[str, tuple[int | str, ...], str]]:
    """Each adapter's name is a model id in the API (vLLM lists it in /v1/models beside the
    base model), written at `lora[i].name`."""
    return [(a.name, (KEY, i, "name"), "the adapter name") for i, a in enumerate(adapters(entry))]


# ------------------------------------------------------------------ the field's check


def source_problem(value: Any) -> str | None:
    """A Hub repo id or pvc://CLAIM/path; S3 and the rest are explained."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a Hub repo (org/name) or pvc://CLAIM/path, not {kind_of(value)}"
    if value.startswith("s3://"):
        return (
            "s3:// is not supported for adapters: vLLM's --lora-modules reads a local path or a Hub "
            "repo, and the chart's LoRA controller has no S3 download (its s3 source is 'not "
            "implemented yet'); copy the adapter into a claim and write pvc://CLAIM/path"
        )
    if value.startswith("pvc://"):
        claim, _, path = value.removeprefix("pvc://").partition("/")
        if not claim or len(claim) > 253 or not _CLAIM_RE.fullmatch(claim):
            return f"{value!r}: the claim is not a Kubernetes name; write pvc://CLAIM/path/in/claim"
        for segment in path.rstrip("/").split("/") if path.rstrip("/") else []:
            if segment in ("", ".", "..") or not _SEGMENT_RE.fullmatch(segment):
                return (
                    f"{value!r}: {segment!r} is not a plain part of a path (letters, digits and "
                    "_ + = @ , . -; no '.' or '..')"
                )
        return None
    if "://" in value:
        return f"{value!r}: an adapter comes from a Hub repo (org/name) or pvc://CLAIM/path"
    if not REPO_ID_RE.fullmatch(value) or "--" in value or ".." in value:
        return f"{value!r} is not a Hub repo id; write org/name"
    return None


def _name_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"must be the adapter's name (its model id in the API), not {kind_of(value)}"
    if len(value) > NAME_MAX or not NAME_RE.fullmatch(value):
        return (
            f"{value!r} must be lowercase letters, digits and '-', starting and ending with a "
            f"letter or digit, at most {NAME_MAX} characters (it is the adapter's model id and "
            "part of object and volume names)"
        )
    return None


def problem(value: Any) -> str | None:
    """`lora`: a list of {name, source, atStart}; a problem inside an item names its place
    (`core.fields.At`), so the schema points at the key's file:line:column."""
    if not isinstance(value, list) or not value:
        return (
            "must be a list of adapters, each {name, source, atStart}; "
            "e.g. lora: [{name: sql, source: org/sql-lora}]"
        )
    seen: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            return At(
                f"each adapter must be a mapping {{name, source, atStart}}, not {kind_of(item)}", (index,)
            )
        for key in item:
            if key not in ITEM_KEYS:
                hint = did_you_mean(str(key), list(ITEM_KEYS)) or f"; the keys are {', '.join(ITEM_KEYS)}"
                return At(f"unknown key {key!r} in an adapter{hint}", (index, key))
        for key in ("name", "source"):
            if key not in item:
                return At(f"an adapter needs {key}", (index,))
        if why := _name_problem(item["name"]):
            return At(why, (index, "name"))
        if item["name"] in seen:
            return At(f"the adapter name {item['name']!r} is given twice; names must differ", (index, "name"))
        seen.add(item["name"])
        if why := source_problem(item["source"]):
            return At(why, (index, "source"))
        if "atStart" in item and not isinstance(item["atStart"], bool):
            return At(
                f"must be true (vLLM loads it at start) or false (the chart's LoRA controller loads "
                f"it once the engine is Ready), not {kind_of(item['atStart'])}",
                (index, "atStart"),
            )
    return None


def entry_problems(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`lora` with `enableLoRA: false` contradicts itself; a controller-loaded Hub adapter
    needs the chart's sidecar, which the chart adds only with the per-model PVC."""
    if KEY not in entry:
        return []
    found = []
    if entry.get("enableLoRA") is False:
        found.append(
            (
                "enableLoRA",
                "enableLoRA: false contradicts lora: (vllmctl turns --enable-lora on for a model with "
                "adapters); remove enableLoRA",
            )
        )
    model_url = str(entry.get("modelURL", ""))
    no_cache = model_url.startswith("pvc://") or "cacheClaim" in entry
    if no_cache and any(a.hub and not a.at_start for a in adapters(entry)):
        found.append(
            (
                KEY,
                "a Hub adapter with atStart: false is downloaded by the chart's sidecar, which the chart "
                "runs only with the model's own cache PVC (pvcStorage), and this model has none "
                "(pvc:// modelURL or cacheClaim); set atStart: true",
            )
        )
    return found


def chart_problems(entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
    """`atStart: false` needs the chart's LoraAdapter objects and the sidecar the controller
    downloads Hub adapters through (0.1.7)."""
    if KEY not in entry or not chart.before(CONTROLLER_SINCE):
        return []
    late = [a.name for a in adapters(entry) if not a.at_start]
    if not late:
        return []
    return [
        (
            KEY,
            f"adapters with atStart: false ({', '.join(late)}) need chart 0.1.7 or newer, the first "
            f"with the LoraAdapter template and the engine sidecar the LoRA controller downloads "
            f"through; the chart version is {chart.text}. Raise the chart version, or set atStart: true.",
        )
    ]


# ------------------------------------------------------------------ the values


def model_keys(spec: Obj, entry: Mapping[str, Any]) -> None:
    """The engine's part: enableLoRA, maxLoras, --lora-modules, the claims' mounts and the
    runtime-loading switch, added to `spec` (after the model source's volumes and env)."""
    found = adapters(entry)
    if not found:
        return
    spec["enableLoRA"] = True
    config = spec["vllmConfig"]
    given = (entry.get("vllmConfig") or {}).get("maxLoras")
    if given is None:
        config["maxLoras"] = str(len(found))  # as text: see render's _vllm_config
    at_start = [a for a in found if a.at_start]
    if at_start:
        args = list(config.get("extraArgs") or [])
        if any(str(arg).split("=", 1)[0] == "--lora-modules" for arg in args):
            raise UsageError(
                f"{entry.get('name')}: vllmConfig.extraArgs has --lora-modules and the entry has lora:; "
                "declare the adapters in lora: only."
            )
        modules = [f"{a.name}={a.source if a.hub else a.local_path}" for a in at_start]
        config["extraArgs"] = [*args, "--lora-modules", *modules]
    claimed = [a for a in found if not a.hub]
    if claimed:
        spec["extraVolumes"] = [
            *(spec.get("extraVolumes") or []),
            *(
                {"name": a.volume, "persistentVolumeClaim": {"claimName": a.claim, "readOnly": True}}
                for a in claimed
            ),
        ]
        spec["extraVolumeMounts"] = [
            *(spec.get("extraVolumeMounts") or []),
            *({"name": a.volume, "mountPath": f"{MOUNT_ROOT}/{a.name}", "readOnly": True} for a in claimed),
        ]
    if any(not a.at_start for a in found):
        spec["env"] = [*(spec.get("env") or []), {"name": RUNTIME_ENV, "value": "True"}]


def object_name(release: str, model: str, adapter: str) -> str:
    """The LoraAdapter object's name: unique in the namespace, like the engine's."""
    return f"{release}-{model}-{adapter}"


def release_keys(
    release: str,
    models: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    hf_token: SecretRef,
    api_key: SecretRef | None,
) -> list[Obj]:
    """The chart's `loraAdapters` items for every adapter loaded by the controller."""
    items = []
    for model, entry in models:
        for a in adapters(entry):
            if a.at_start:
                continue
            source: Obj
            if a.hub:
                # The controller reads credentialsSecretRef for every Hub adapter (it fails
                # without one), so the release's hf-token Secret is always named.
                source = {
                    "type": "huggingface",
                    "adapterName": a.name,
                    "repository": a.source,
                    "credentials": hf_token.as_values(),
                }
            else:
                source = {"type": "local", "adapterName": a.name, "adapterPath": a.local_path}
            item: Obj = {"name": object_name(release, model, a.name), "baseModel": model}
            if api_key is not None:
                # Given on every chart: 0.1.8-0.1.10 would otherwise point at <release>-secrets
                # whenever servingEngineSpec.vllmApiKey is set, which a Secret reference is not.
                item["vllmApiKey"] = api_key.as_values()
            item["adapterSource"] = source
            item["loraAdapterDeploymentConfig"] = {"algorithm": "default"}
            items.append(item)
    return items
