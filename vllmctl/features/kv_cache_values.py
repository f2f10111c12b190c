"""KV-cache offload's values: models.yaml's `kvCache` checked and written as the chart's
`lmcacheConfig`, the engine image that has LMCache, and the release-wide cache server
(`cacheserverSpec`) and shared storage (`sharedPvcStorage`) from the settings.

What each chart version reads, with the template lines, is in docs/chart-facts.md
("KV-cache offload"); docs/kv-cache.md tells the choices.

- `kvCache: {cpuOffload: 20Gi, diskOffload: 100Gi, logLevel: INFO}` becomes
  `lmcacheConfig: {enabled: true, cpuOffloadingBufferSize: "20", diskOffloadingBufferSize:
  "100", logLevel: INFO}`. The chart passes the sizes to LMCache's LMCACHE_MAX_LOCAL_CPU_SIZE
  and LMCACHE_MAX_LOCAL_DISK_SIZE, which LMCache reads in GiB; the chart tests the CPU size
  with `gt (int ...) 0`, and sprig's int of "1.5" is 0, which would turn CPU offload off
  without a word: so whole GiB only, written as strings (0.1.8-0.1.10's schema types them so).
- The chart sets no LMCACHE_LOCAL_DISK (the directory), without which LMCache keeps nothing
  on disk: vllmctl adds it, on the model's own cache volume (/data).
- Under kvaware routing each kvCache model also gets the LMCache controller's keys
  (enableController, controllerPort, workerPorts, controllerReplyPort from 0.1.11); a
  `role: prefill|decode` becomes the chart's disaggregated-prefill keys (kvRole, enablePD,
  NIXL), the prefill's peer being the decode model's engine Service (`pair_roles`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from vllmctl.chart.facts import (
    CACHE_SERVER_ENABLED_SINCE,
    CACHE_SERVER_PORT,
    CACHE_SERVER_SERVICE_PORT,
    CONTROLLER_REPLY_SINCE,
    KV_ROLES,
    LMCACHE_CONTROLLER_PORT,
    LMCACHE_CONTROLLER_REPLY_PORT,
    LMCACHE_IMAGE,
    LMCACHE_LOG_LEVEL_SINCE,
    LMCACHE_LOG_LEVELS,
    LMCACHE_WORKER_PORT,
    NIXL_BUFFER_SIZE,
    NIXL_PEER_PORT,
    SHARED_STORAGE_MOUNT,
    ChartAt,
)
from vllmctl.core.errors import refuse_problems
from vllmctl.core.fields import kind_of
from vllmctl.core.setting_names import (
    ENV_CACHE_SERVER,
    ENV_CACHE_SERVER_MEMORY,
    ENV_SHARED_STORAGE_CLASS,
    ENV_SHARED_STORAGE_HOST_PATH,
    ENV_SHARED_STORAGE_NFS,
    ENV_SHARED_STORAGE_SIZE,
)

Obj = dict[str, Any]
GiB = 2**30
# catalog/constants.py's DEFAULTS, which this layer cannot import (a test keeps them equal).
DEFAULT_REQUEST_MEMORY = "16Gi"
DEFAULT_PVC_STORAGE = "50Gi"
FIELD = "kvCache"
RAY_KEY = "raySpec"  # a model the chart serves through KubeRay
RAW_KEY = "lmcacheConfig"  # the chart's key, still passed through as written (not both)
DISK_DIR = "/data/lmcache"  # on the model's own cache volume, which the chart mounts at /data
DISK_ENV = "LMCACHE_LOCAL_DISK"
CACHE_SERVER_LABEL = "vllmctl.io/component"  # with vllmctl's release label, on the cache server
SERDE = "naive"  # what the cache server and the engines exchange (the chart's docs' choice)
# An NFS export as written in VLLM_SHARED_STORAGE_NFS: host:/path.
_NFS_RE = re.compile(r"(?P<server>[A-Za-z0-9.:\[\]-]+?):(?P<path>/[^\s]*)")


# --- models.yaml checks --------------------------------------------------------------------


def _gib(value: Any) -> int | None:
    """A size in whole GiB (None: not a memory quantity of whole GiB)."""
    from vllmctl.core.quantity import QuantityError, parse_quantity

    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        amount = parse_quantity(value)
    except QuantityError:
        return None
    if amount <= 0 or amount % GiB:
        return None
    return int(amount // GiB)


def size_problem(value: Any) -> str | None:
    """cpuOffload / diskOffload: a size in whole GiB (LMCache's unit), e.g. 20Gi."""
    if _gib(value) is not None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"must be a size with its unit, e.g. {value}Gi, not the bare number {value}"
    return (
        f"must be a size in whole GiB, e.g. 20Gi, not {kind_of(value)} (LMCache's buffer is set in "
        "GiB, and the chart turns a fraction into 0, i.e. no offload)"
    )


def log_level_problem(value: Any) -> str | None:
    if value in LMCACHE_LOG_LEVELS:
        return None
    hint = (
        f"; write {value.upper()!r}" if isinstance(value, str) and value.upper() in LMCACHE_LOG_LEVELS else ""
    )
    return f"must be one of {', '.join(LMCACHE_LOG_LEVELS)}, not {kind_of(value)}{hint}"


def role_problem(value: Any) -> str | None:
    if value in KV_ROLES:
        return None
    return f"must be prefill or decode (this model's part in disaggregated prefill), not {kind_of(value)}"


CHILDREN: dict[str, tuple[Any, str]] = {
    "cpuOffload": (size_problem, "CPU memory LMCache keeps KV blocks in, whole GiB (required without role)"),
    "diskOffload": (size_problem, "disk space on the model's cache volume for KV blocks, whole GiB"),
    "logLevel": (log_level_problem, f"LMCache's log level: {', '.join(LMCACHE_LOG_LEVELS)} (chart 0.1.10+)"),
    "role": (role_problem, "prefill or decode: the model's part in disaggregated prefill (docs/kv-cache.md)"),
}


def problem(value: Any) -> str | None:
    """What is wrong with a `kvCache` mapping as a whole (its keys are checked by CHILDREN)."""
    if not isinstance(value, dict):
        return f"must be a mapping like {{cpuOffload: 20Gi}}, not {kind_of(value)}"
    if "role" in value:
        offload = [key for key in ("cpuOffload", "diskOffload") if key in value]
        if offload:
            return (
                f"role and {' and '.join(offload)} do not go together: for disaggregated prefill the chart "
                "turns LMCache's local CPU buffer off (LMCACHE_LOCAL_CPU=False) and a size would write it "
                f"a second time; remove {', '.join(offload)}"
            )
        return None
    if "cpuOffload" not in value:
        return "give cpuOffload, the CPU memory LMCache may fill with KV blocks (e.g. cpuOffload: 20Gi)"
    return None


def conflict(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Checks across the entry's keys: not both kvCache and lmcacheConfig, the CPU buffer
    within requestMemory, the disk buffer within the model's cache volume."""
    from vllmctl.core.quantity import QuantityError, parse_quantity

    given = entry.get(FIELD)
    if not isinstance(given, Mapping):
        return []
    found: list[tuple[str, str]] = []
    if "role" in given and _multinode(entry):
        found.append(
            (
                FIELD,
                "kvCache.role needs a one-node model: a model with pipelineParallelSize runs as the chart's "
                "RayCluster, whose engine always starts with kv_role kv_both and has no "
                "disaggregated-prefill keys; remove role, or pipelineParallelSize",
            )
        )
    if RAW_KEY in entry:
        found.append(
            (
                RAW_KEY,
                "give kvCache or lmcacheConfig, not both: kvCache writes the chart's lmcacheConfig itself "
                "(keep lmcacheConfig only for LMCache settings kvCache does not have, such as NIXL)",
            )
        )
    cpu = _gib(given.get("cpuOffload"))
    request = entry.get("requestMemory", DEFAULT_REQUEST_MEMORY)
    said = "requestMemory" if "requestMemory" in entry else "requestMemory (the default)"
    resources = entry.get("resources")  # the chart's own (0.1.9+) replaces requestMemory
    requests = resources.get("requests") if isinstance(resources, Mapping) else None
    if isinstance(requests, Mapping) and requests.get("memory") is not None:
        request, said = requests["memory"], "resources.requests.memory"
    try:
        request_bytes = parse_quantity(request)
    except (QuantityError, TypeError):
        request_bytes = None
    if cpu is not None and request_bytes is not None and Decimal(cpu * GiB) > request_bytes:
        found.append(
            (
                FIELD,
                f"cpuOffload {cpu}Gi is more than {said} {request}{_in_gib(request, request_bytes)}: "
                "the buffer lives in the engine pod's memory. Raise requestMemory to the buffer plus "
                f"what vLLM itself needs (e.g. {cpu + 16}Gi), or lower cpuOffload",
            )
        )
    disk = _gib(given.get("diskOffload"))
    storage = entry.get("pvcStorage", DEFAULT_PVC_STORAGE)
    if disk is not None and isinstance(storage, str):
        try:
            storage_bytes = parse_quantity(storage)
        except QuantityError:
            storage_bytes = None
        if storage_bytes is not None and Decimal(disk * GiB) >= storage_bytes:
            found.append(
                (
                    FIELD,
                    f"diskOffload {disk}Gi does not fit in pvcStorage {storage}, the model's cache volume "
                    "that holds it beside the weights; raise pvcStorage or lower diskOffload",
                )
            )
    return found


def _multinode(entry: Mapping[str, Any]) -> bool:
    """Whether the entry runs as the chart's RayCluster (vllmctl writes its raySpec)."""
    from vllmctl.features.multinode_values import stages

    return stages(entry) is not None or RAY_KEY in entry


def _in_gib(request: Any, amount: Decimal) -> str:
    """` (7.45 GiB)` for a request not written in Gi, so the two numbers compare at a glance."""
    text = str(request).strip()
    return "" if text.endswith("Gi") else f" ({float(amount) / GiB:.2f} GiB)"


def chart_problems(entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
    given = entry.get(FIELD)
    if isinstance(given, Mapping) and "logLevel" in given and chart.before(LMCACHE_LOG_LEVEL_SINCE):
        return [
            (
                FIELD,
                f"kvCache.logLevel needs chart 0.1.10 or newer (lmcacheConfig.logLevel); chart {chart.text} "
                "always sets LMCACHE_LOG_LEVEL=DEBUG. Raise the chart version, or remove logLevel",
            )
        ]
    return []


def multinode_kv_models(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """The kvCache models that run as a RayCluster (kvaware cannot reach their LMCache)."""
    return [str(e["name"]) for e in entries if isinstance(e.get(FIELD), Mapping) and _multinode(e)]


def offloads(entry: Mapping[str, Any]) -> bool:
    """Whether an entry runs LMCache: kvCache, or a raw lmcacheConfig that enables it."""
    raw = entry.get(RAW_KEY)
    return isinstance(entry.get(FIELD), Mapping) or (isinstance(raw, Mapping) and bool(raw.get("enabled")))


def offload_sizes(entry: Mapping[str, Any]) -> tuple[int, int] | None:
    """(CPU GiB, disk GiB) of a valid entry with kvCache; None without."""
    given = entry.get(FIELD)
    if not isinstance(given, Mapping):
        return None
    return _gib(given.get("cpuOffload")) or 0, _gib(given.get("diskOffload")) or 0


# --- what the chart gets -------------------------------------------------------------------

UNKNOWN_CHART = ChartAt("unknown", None)  # every key let through (no version to judge by)


def lmcache_config(entry: Mapping[str, Any], routing: str, chart: ChartAt) -> Obj:
    """The chart's lmcacheConfig for an entry's kvCache, with the LMCache controller's keys
    under kvaware routing and the disaggregated-prefill keys for a role (the prefill's peer,
    the decode engine's Service, is written by `pair_roles` once every model is known)."""
    given = entry[FIELD]
    config: Obj = {"enabled": True}
    if "cpuOffload" in given:
        config["cpuOffloadingBufferSize"] = str(_gib(given["cpuOffload"]))
    if "diskOffload" in given:
        config["diskOffloadingBufferSize"] = str(_gib(given["diskOffload"]))
    if "logLevel" in given:
        config["logLevel"] = given["logLevel"]
    role = given.get("role")
    if role in KV_ROLES:
        kv_role, nixl_role = KV_ROLES[role]
        config.update(
            {
                "kvRole": kv_role,
                "enablePD": True,
                "enableNixl": True,
                "nixlRole": nixl_role,
                # the decode engine listens on every address; the prefill's is its peer's Service
                "nixlPeerHost": "0.0.0.0",
                "nixlPeerPort": str(NIXL_PEER_PORT),
                "nixlBufferSize": str(NIXL_BUFFER_SIZE),
                "nixlBufferDevice": "cuda",
                "nixlEnableGc": True,
            }
        )
    if routing == "kvaware":
        # The engine's LMCache worker reports its KV blocks to the router's controller (through
        # the router Service) and answers its lookups on one port per tensor-parallel rank.
        ranks = int((entry.get("vllmConfig") or {}).get("tensorParallelSize") or 1)
        config.update(
            {
                "enableController": True,
                "controllerPort": LMCACHE_CONTROLLER_PORT,
                "workerPorts": ",".join(str(LMCACHE_WORKER_PORT + rank) for rank in range(ranks)),
            }
        )
        if not chart.before(CONTROLLER_REPLY_SINCE):
            config["controllerReplyPort"] = LMCACHE_CONTROLLER_REPLY_PORT
    return config


def roles(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The models of each role ({"prefill": [...], "decode": [...]}), in file order."""
    found: dict[str, list[str]] = {role: [] for role in KV_ROLES}
    for entry in entries:
        given = entry.get(FIELD)
        if isinstance(given, Mapping) and given.get("role") in KV_ROLES:
            found[given["role"]].append(str(entry["name"]))
    return found


def role_warnings(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """What the chart does to a role's engine pods that the operator must allow for."""
    named = [name for names in roles(entries).values() for name in names]
    if not named:
        return []
    return [
        f"{', '.join(named)}: with kvCache.role the chart runs the engine pods with hostIPC and "
        "hostPID (enablePD, every version), which Pod Security's baseline and restricted levels "
        "refuse: the namespace must allow privileged pods."
    ]


def pair_roles(specs: Iterable[Obj], release: str) -> None:
    """Point the prefill engine's NIXL sender at the decode engine's Service (the routing
    feature has checked there is exactly one of each)."""
    from vllmctl.chart.facts import engine_service_name

    specs = list(specs)
    decode = [s["name"] for s in specs if (s.get(RAW_KEY) or {}).get("nixlRole") == "receiver"]
    for spec in specs:
        config = spec.get(RAW_KEY) or {}
        if config.get("nixlRole") == "sender" and len(decode) == 1:
            config["nixlPeerHost"] = engine_service_name(release, decode[0])


def engine_image(
    data: Mapping[str, Any], model_image: str, model_tag: str, lmcache_image: str, lmcache_tag: str
) -> tuple[str, str]:
    """The (repository, tag) a model's engine runs, as `model_keys` decides it: the entry's
    own image, else the LMCache image for a kvCache model, else VLLM_MODEL_IMAGE; the
    entry's own tag wins over the setting's (doctor's `image tag` row reads this too)."""
    if "image" in data:
        return str(data["image"]), str(data.get("tag", model_tag))
    if FIELD in data:
        return lmcache_image, str(data.get("tag", lmcache_tag))
    return model_image, str(data.get("tag", model_tag))


def model_keys(
    name: str,
    entry: Mapping[str, Any],
    spec: Obj,
    lmcache_image: str,
    lmcache_tag: str,
    routing: str = "roundrobin",
    chart: ChartAt = UNKNOWN_CHART,
) -> None:
    """Write a kvCache model's lmcacheConfig, its image (one with LMCache unless the entry
    names its own) and, for disk offload, the directory LMCache keeps blocks in."""
    from vllmctl.core.errors import UsageError

    spec[RAW_KEY] = lmcache_config(entry, routing, chart)
    if "image" not in entry:
        spec["repository"] = lmcache_image
        spec["tag"] = entry.get("tag", lmcache_tag)
    if "diskOffload" in entry[FIELD]:
        if not isinstance(spec.get("pvcStorage"), str):
            raise UsageError(
                f"{name}: kvCache.diskOffload keeps KV blocks on the model's own cache volume, and its "
                "model source gives it none (pvc://, oci://, or a shared cache claim); remove diskOffload."
            )
        env = [item for item in spec.get("env") or [] if item.get("name") != DISK_ENV]
        spec["env"] = [*env, {"name": DISK_ENV, "value": f"file://{DISK_DIR}/"}]


def image_warnings(models: Iterable[Any], lmcache_image: str, lmcache_tag: str) -> list[str]:
    """A warning for each kvCache model whose own image is not one with LMCache, and for a
    floating LMCache tag that a model or the cache server uses."""
    models = list(models)
    said = []
    floating = not lmcache_tag or "latest" in lmcache_tag or "nightly" in lmcache_tag
    if floating and any(FIELD in m.data and "image" not in m.data and "tag" not in m.data for m in models):
        said.append(
            f"VLLM_LMCACHE_TAG={lmcache_tag!r} is not pinned: the kvCache engines start whatever it points "
            "to when they are scheduled. Pin an LMCache release, e.g. v0.3.9post2."
        )
    for model in models:
        image = model.data.get("image")
        if FIELD in model.data and image is not None and image not in (lmcache_image, LMCACHE_IMAGE):
            said.append(
                f"{model.name}: kvCache is on but its image {image!r} is not {LMCACHE_IMAGE}; unless that "
                "image has LMCache installed, vLLM stops at start with an import error for the "
                "LMCacheConnectorV1. Remove image (vllmctl then uses VLLM_LMCACHE_IMAGE), or make sure "
                "it has LMCache."
            )
        elif FIELD in model.data and image is not None and image != LMCACHE_IMAGE:
            said.append(
                f"{model.name}: its image {image!r} has LMCache, but the chart starts /opt/venv/bin/vllm "
                f"only for {LMCACHE_IMAGE} exactly; plain `vllm` must be on its PATH."
            )
    return said


class Release(NamedTuple):
    """The release-wide keys (None: left out)."""

    cache_server: Obj | None
    shared_storage: Obj | None
    warnings: list[str]


def release_keys(
    settings: Any, chart: ChartAt, entries: Iterable[Mapping[str, Any]], release: str
) -> Release:
    """cacheserverSpec and sharedPvcStorage for `chart`, from the KV-cache settings; every
    problem at once, each naming its setting."""
    problems: list[str] = []
    warnings: list[str] = []
    cache_server = _cache_server(settings, chart, list(entries), release, problems)
    shared = _shared_storage(settings, chart, problems, warnings)
    refuse_problems(problems, "the KV-cache settings")
    return Release(cache_server, shared, warnings)


def _cache_server(
    settings: Any, chart: ChartAt, entries: list[Mapping[str, Any]], release: str, problems: list[str]
) -> Obj | None:
    from vllmctl.chart.inputs import RELEASE_LABEL

    if not settings.cache_server:
        return None
    if not any(offloads(entry) for entry in entries):
        problems.append(
            f"{ENV_CACHE_SERVER}=true starts LMCache's cache server, but no model in models.yaml has kvCache "
            "(the chart points only LMCache engines at it); give a model kvCache, or unset it."
        )
    memory = str(settings.cache_server_memory or "").strip()
    if not _is_memory(memory):
        problems.append(
            f"{ENV_CACHE_SERVER_MEMORY}={memory!r} is not a memory quantity; write e.g. 8Gi "
            "(the cache server holds the shared KV blocks in its memory)."
        )
    image = {"repository": settings.lmcache_image, "tag": settings.lmcache_tag}
    spec: Obj = {
        "containerPort": CACHE_SERVER_PORT,
        "servicePort": CACHE_SERVER_SERVICE_PORT,
        "serde": SERDE,
        # 0.1.8-0.1.10 select the cache server's pods by these labels only: without any, the
        # Deployment's selector would be empty, which the API server refuses.
        "labels": {RELEASE_LABEL: release, CACHE_SERVER_LABEL: "cache-server"},
        # 0.1.8-0.1.10 write cpu and memory from requests as they are: both must be given.
        "resources": {"requests": {"cpu": "1", "memory": memory}},
    }
    if chart.before(CACHE_SERVER_ENABLED_SINCE):
        spec.update(image)
    else:
        spec.update({"enabled": True, "image": image, "replicaCount": 1})
    return spec


def _is_memory(text: str) -> bool:
    from vllmctl.core.quantity import QuantityError, parse_quantity

    try:
        return parse_quantity(text) >= 2**20
    except QuantityError:
        return False


def _shared_storage(settings: Any, chart: ChartAt, problems: list[str], warnings: list[str]) -> Obj | None:
    size = str(settings.shared_storage_size or "").strip()
    nfs = str(settings.shared_storage_nfs or "").strip()
    host_path = str(settings.shared_storage_host_path or "").strip()
    storage_class = str(settings.shared_storage_class or "").strip()
    if not size:
        for env, value in (
            (ENV_SHARED_STORAGE_NFS, nfs),
            (ENV_SHARED_STORAGE_HOST_PATH, host_path),
            (ENV_SHARED_STORAGE_CLASS, storage_class),
        ):
            if value:
                problems.append(
                    f"{env} is set but {ENV_SHARED_STORAGE_SIZE} is not: the shared storage is made only "
                    f"with a size; set {ENV_SHARED_STORAGE_SIZE} (e.g. 100Gi), or unset {env}."
                )
        return None
    if not _is_memory(size):
        problems.append(f"{ENV_SHARED_STORAGE_SIZE}={size!r} is not a size; write e.g. 100Gi.")
    spec: Obj = {"size": size, "accessModes": ["ReadWriteMany"]}
    if storage_class:
        spec["storageClass"] = storage_class
    if nfs and host_path:
        problems.append(
            f"{ENV_SHARED_STORAGE_NFS} and {ENV_SHARED_STORAGE_HOST_PATH} are both set; the shared volume "
            "is one or the other: unset one."
        )
    elif nfs:
        match = _NFS_RE.fullmatch(nfs)
        if match is None:
            problems.append(
                f"{ENV_SHARED_STORAGE_NFS}={nfs!r} is not an NFS export; write server:/path, "
                "e.g. nfs.example.com:/exports/vllm."
            )
        else:
            spec["nfs"] = {"server": match["server"], "path": match["path"]}
    elif host_path:
        if not host_path.startswith("/"):
            problems.append(
                f"{ENV_SHARED_STORAGE_HOST_PATH}={host_path!r} must be an absolute path on the nodes."
            )
        spec["hostPath"] = host_path
    elif chart.before(CACHE_SERVER_ENABLED_SINCE):
        problems.append(
            f"{ENV_SHARED_STORAGE_SIZE} on chart {chart.text} needs {ENV_SHARED_STORAGE_NFS} "
            f"(server:/path) or {ENV_SHARED_STORAGE_HOST_PATH}: before 0.1.11 the chart always makes a "
            "PersistentVolume and requires one of the two. Set one, or use chart 0.1.11+ (a claim from "
            "the storage class)."
        )
    if chart.before(CACHE_SERVER_ENABLED_SINCE):
        # 0.1.8-0.1.10 default the class to "standard" on both the volume and the claim.
        spec.setdefault("storageClass", "standard")
    else:
        spec["enabled"] = True
        warnings.append(
            f"with the shared storage on, chart {chart.text} sets every engine's HF_HOME to "
            f"{SHARED_STORAGE_MOUNT}: the models download there, not into their own cache volumes."
        )
    return spec
