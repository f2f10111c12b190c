"""Model sources as chart values: the keys each source needs, and what the cluster must hold.

- `org/model`, a HuggingFace repo: the engine downloads it into the model cache (/data).
- `pvc://CLAIM/path`: an existing claim, mounted read-only; the engine serves the path.
  No model cache is made (the chart then points HF_HOME at /tmp).
- `s3://bucket/prefix`: an init container (rclone) copies the prefix into the model cache
  before vLLM starts, and skips it when a finished copy is there.
- `oci://registry/repo:tag`: a ModelCar image whose /models holds the model. Copied into
  the model cache by an init container running that image (VLLM_OCI_METHOD=copy, works on
  any cluster), or mounted as a Kubernetes image volume (VLLM_OCI_METHOD=image, ImageVolume).

The model cache is the chart's per-model PVC (`pvcStorage`), or an existing claim shared
by models (`cacheClaim`, or VLLM_MODEL_CACHE_CLAIM) mounted at /data. No released chart
has `pvcExistingClaimName`, so that claim goes in through `extraVolumes` and
`extraVolumeMounts`, and the entry's `pvcStorage` is left out (no per-model PVC).
docs/model-sources.md says which cluster features each needs. No I/O, no heavy imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.core.errors import UsageError
from vllmctl.features.source_urls import (
    CACHE_DIR,
    CACHE_VOLUME,
    DEFAULT_S3_IMAGE,
    DONE_MARKER,
    HUB,
    OCI,
    OCI_METHODS,
    OCI_RE,
    PVC,
    S3,
    SOURCE_DIR,
    SOURCE_VOLUME,
    Source,
    check_claim,
    check_endpoint,
    parse,
)

# ------------------------------------------------------------------ rendering

if TYPE_CHECKING:
    from vllmctl.chart.inputs import Options


class Placement(NamedTuple):
    """What the chart gets for a model's source."""

    model_url: str  # what `vllm serve` is given: the repo id or a local directory
    cache_pvc: bool  # keep the chart's per-model cache PVC (pvcStorage)
    keys: dict[str, Any]  # extraVolumes, extraVolumeMounts, initContainer, env


def check_options(options: Options) -> None:
    """The source settings; a bad value names its env variable."""
    problems = []
    if options.s3_endpoint and (why := check_endpoint(options.s3_endpoint)):
        problems.append(f"VLLM_S3_ENDPOINT: {why}")
    if options.cache_claim and (why := check_claim(options.cache_claim)):
        problems.append(f"VLLM_MODEL_CACHE_CLAIM: {why}")
    if (options.oci_method or "copy") not in OCI_METHODS:
        problems.append(f"VLLM_OCI_METHOD={options.oci_method!r} must be copy or image")
    if options.s3_image is not None and (
        not options.s3_image.strip() or any(c.isspace() for c in options.s3_image)
    ):
        problems.append(f"VLLM_S3_IMAGE={options.s3_image!r} is not an image reference")
    if problems:
        raise UsageError(problems[0], details=problems[1:])


def place(entry: Mapping[str, Any], options: Options) -> Placement:
    """The modelSpec keys an entry's source needs. `entry` is the entry as written (an
    explicit pvcStorage keeps a per-model cache even when VLLM_MODEL_CACHE_CLAIM is set)."""
    check_options(options)
    name = str(entry.get("name"))
    source = parse(str(entry["modelURL"]))
    oci_method = options.oci_method or "copy"
    if source.scheme == PVC:
        return Placement(_under(SOURCE_DIR, source.path), False, _source_volume(_pvc_volume(source.location)))
    if source.scheme == OCI and oci_method == "image":
        for key in ("cacheClaim", "pvcStorage"):
            if key in entry:
                raise UsageError(
                    f"{name}: with VLLM_OCI_METHOD=image the weights are read from the image volume "
                    f"and nothing is cached; remove {key} (or set VLLM_OCI_METHOD=copy)."
                )
        volume = {
            "name": SOURCE_VOLUME,
            "image": {"reference": source.location, "pullPolicy": "IfNotPresent"},
        }
        return Placement(f"{SOURCE_DIR}/models", False, _source_volume(volume))
    claim = entry.get("cacheClaim") or (None if "pvcStorage" in entry else options.cache_claim)
    keys: dict[str, Any] = {}
    cache_mount = {"name": CACHE_VOLUME, "mountPath": CACHE_DIR}
    if claim:
        keys["extraVolumes"] = [{"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim}}]
        keys["extraVolumeMounts"] = [dict(cache_mount)]
    if source.scheme == HUB:
        if claim:
            # The chart sets HF_HOME=/tmp without pvcStorage (and a second HF_HOME would be a
            # duplicate env name, which server-side apply refuses): point the Hub cache instead.
            keys["env"] = [{"name": "HF_HUB_CACHE", "value": f"{CACHE_DIR}/hub"}]
        return Placement(source.location, not claim, keys)
    if source.scheme == S3:
        target = _under(f"{CACHE_DIR}/models/s3/{source.location}", source.path)
        init = _s3_fetch(entry, options, source, target)
    else:
        target = f"{CACHE_DIR}/models/oci/{_oci_dir(source.location)}"
        init = _oci_copy(source.location, target)
    if claim:
        init["extraVolumeMounts"] = [dict(cache_mount)]
    else:
        init["mountPvcStorage"] = True  # the chart mounts the per-model PVC at /data
    keys["initContainer"] = init
    return Placement(target, not claim, keys)


def _under(root: str, path: str) -> str:
    return f"{root}/{path}" if path else root


def _pvc_volume(claim: str) -> dict[str, Any]:
    return {"name": SOURCE_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}


def _source_volume(volume: dict[str, Any]) -> dict[str, Any]:
    return {
        "extraVolumes": [volume],
        "extraVolumeMounts": [{"name": SOURCE_VOLUME, "mountPath": SOURCE_DIR, "readOnly": True}],
    }


def _oci_dir(reference: str) -> str:
    """A directory for an image's copy: repository/tag, or repository/sha256-<digest>."""
    match = OCI_RE.fullmatch(reference)
    assert match is not None  # validated
    version = f"sha256-{match['digest']}" if match["digest"] else match["tag"]
    return f"{match['repo'].replace(':', '-')}/{version}"


# Each script takes its source and target as $1 and $2 (never spliced into the text), and
# ends with the marker, so a restarted pod with a finished copy starts at once.
_FETCH_SCRIPT = f"""\
set -eu
if [ -f "$2/{DONE_MARKER}" ]; then echo "$2 holds a finished copy; nothing to fetch"; exit 0; fi
mkdir -p "$2"
echo "copying $1 to $2"
rclone copy --transfers 8 --stats 30s --stats-one-line --stats-log-level NOTICE "$1" "$2"
touch "$2/{DONE_MARKER}"
"""
# cp is not resumable: copy into a fresh directory, then rename it into place (the first
# pod to finish wins when several share a cacheClaim).
_COPY_SCRIPT = f"""\
set -eu
if [ -f "$2/{DONE_MARKER}" ]; then echo "$2 holds a finished copy; nothing to copy"; exit 0; fi
if [ ! -d "$1" ]; then echo "the image has no $1 directory; is it a ModelCar image?" >&2; exit 1; fi
mkdir -p "$(dirname "$2")"
tmp=$(mktemp -d "$2.partial.XXXXXX")
echo "copying $1 to $2"
cp -R "$1/." "$tmp/"
touch "$tmp/{DONE_MARKER}"
if [ -f "$2/{DONE_MARKER}" ]; then rm -rf "$tmp"; exit 0; fi
rm -rf "$2"
mv "$tmp" "$2"
"""


def _s3_fetch(entry: Mapping[str, Any], options: Options, source: Source, target: str) -> dict[str, Any]:
    endpoint = entry.get("s3Endpoint") or options.s3_endpoint
    env: list[dict[str, Any]] = [
        # An rclone remote named "src" from environment variables: no config file.
        {"name": "RCLONE_CONFIG_SRC_TYPE", "value": "s3"},
        {"name": "RCLONE_CONFIG_SRC_PROVIDER", "value": "Other" if endpoint else "AWS"},
        # Credentials from AWS_* below, else the pod's own identity (IRSA, Pod Identity,
        # instance role), else anonymous: a public bucket.
        {"name": "RCLONE_CONFIG_SRC_ENV_AUTH", "value": "true"},
    ]
    if endpoint:
        env.append({"name": "RCLONE_CONFIG_SRC_ENDPOINT", "value": endpoint})
    if region := entry.get("s3Region"):
        env.append({"name": "RCLONE_CONFIG_SRC_REGION", "value": region})
    if secret := entry.get("s3Secret"):
        for key, optional in (
            ("AWS_ACCESS_KEY_ID", False),
            ("AWS_SECRET_ACCESS_KEY", False),
            ("AWS_SESSION_TOKEN", True),
        ):
            ref: dict[str, Any] = {"name": secret, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    remote = _under(f"src:{source.location}", source.path)
    return {
        "name": "fetch-model",
        "image": options.s3_image or DEFAULT_S3_IMAGE,
        "command": ["sh", "-c", _FETCH_SCRIPT, "fetch-model", remote, target],
        "env": env,
    }


def _oci_copy(reference: str, target: str) -> dict[str, Any]:
    return {
        "name": "copy-model",
        "image": reference,
        "command": ["sh", "-c", _COPY_SCRIPT, "copy-model", "/models", target],
    }


def merge(model: str, key: str, ours: Any, theirs: Any) -> Any:
    """The entry's own value of `key` joined with what its source needs."""
    if ours is None:
        return theirs
    if theirs is None:
        return ours
    if key == "initContainer":
        raise UsageError(
            f"{model}: its {_source_kind(ours)} needs the chart's initContainer, and the entry gives "
            "its own; the chart runs only one. Remove initContainer, or use a Hub or pvc:// source."
        )
    if not isinstance(theirs, list):
        raise UsageError(f"{model}: {key} must be a list (the chart writes it as one).")
    if key == "env":
        named = {item.get("name") for item in theirs if isinstance(item, dict)}
        return [item for item in ours if item["name"] not in named] + theirs
    for field in ("name", "mountPath"):
        taken = {item[field] for item in ours if field in item}
        for item in theirs:
            if isinstance(item, dict) and item.get(field) in taken:
                raise UsageError(
                    f"{model}: {key} has {field} {item[field]!r}, which its model source uses; "
                    "choose another."
                )
    return ours + theirs


def _source_kind(init_container: Mapping[str, Any]) -> str:
    return "s3:// source" if init_container.get("name") == "fetch-model" else "oci:// source"


# ------------------------------------------------------------------ what the cluster must hold


class Need(NamedTuple):
    """An object a model's source needs in the namespace."""

    kind: str  # "persistentvolumeclaim" or "secret" (kubectl's names)
    name: str
    models: tuple[str, ...]
    use: str  # "source" (a pvc:// claim, read), "cache" (a cacheClaim, written), "s3" (a Secret)
    pods: int  # how many engine pods use it at once (replicas of those models)


def needs(entries: Iterable[Mapping[str, Any]], options: Options) -> list[Need]:
    """The claims and Secrets the entries' sources need, each with the models using it."""
    found: dict[tuple[str, str, str], tuple[list[str], int]] = {}

    def add(kind: str, name: str, use: str, entry: Mapping[str, Any]) -> None:
        models, pods = found.get((kind, name, use), ([], 0))
        replicas = entry.get("replicaCount", 1)
        replicas = replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 1
        found[(kind, name, use)] = ([*models, str(entry.get("name"))], pods + replicas)

    for entry in entries:
        source = parse(str(entry.get("modelURL") or ""))
        if source.scheme == PVC:
            add("persistentvolumeclaim", source.location, "source", entry)
            continue
        if source.scheme == OCI and (options.oci_method or "copy") == "image":
            continue
        claim = entry.get("cacheClaim") or (None if "pvcStorage" in entry else options.cache_claim)
        if claim:
            add("persistentvolumeclaim", str(claim), "cache", entry)
        if source.scheme == S3 and entry.get("s3Secret"):
            add("secret", str(entry["s3Secret"]), "s3", entry)
    return [Need(kind, name, tuple(models), use, pods) for (kind, name, use), (models, pods) in found.items()]


def require_present(found: list[Need], namespace: str, names: Callable[[str, str], list[str]]) -> None:
    """Before install or upgrade: stop, with nothing changed, when a claim or Secret a source
    needs is not in the namespace (the engine pods could never start, and helm --wait would
    wait its whole timeout). `names(kind, namespace)` lists kubectl's `kind/name`s."""
    listed: dict[str, set[str]] = {}
    missing = []
    for need in found:
        if need.kind not in listed:
            listed[need.kind] = {n.split("/", 1)[-1] for n in names(need.kind, namespace)}
        if need.name not in listed[need.kind]:
            missing.append(need)
    if not missing:
        return
    lines = [f"{_what(need)} {need.name} ({', '.join(need.models)})" for need in missing]
    raise UsageError(
        f"{len(missing)} object{'s' if len(missing) != 1 else ''} the model sources need "
        f"{'are' if len(missing) != 1 else 'is'} not in namespace {namespace}; create "
        f"{'them' if len(missing) != 1 else 'it'} first (docs/model-sources.md):",
        details=lines,
    )


def _what(need: Need) -> str:
    return {
        "source": "PersistentVolumeClaim (pvc:// source)",
        "cache": "PersistentVolumeClaim (cacheClaim)",
        "s3": "Secret (s3Secret)",
    }[need.use]
