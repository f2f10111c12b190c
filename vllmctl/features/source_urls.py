"""Model source URLs: models.yaml's `modelURL` parsed and checked, and the checks of the
keys that go with a source (cacheClaim, s3Secret, s3Endpoint, s3Region). The schema's
side of vllmctl.features.sources; no I/O, no heavy imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from vllmctl.core.fields import REPO_ID_RE, URI_SCHEMES, kind_of
from vllmctl.core.setting_names import SUBDOMAIN_MAX, SUBDOMAIN_RE

HUB, PVC, S3, OCI = "hub", "pvc", "s3", "oci"
SCHEMES = (PVC, S3, OCI)
OCI_METHODS = ("copy", "image")
# rclone copies from any S3-compatible store (endpoint, region, path style) and resumes an
# interrupted copy; its image is Alpine-based, so the fetch script has a shell. Pinned.
DEFAULT_S3_IMAGE = "rclone/rclone:1.72.0"

CACHE_DIR = "/data"  # where the chart mounts the model cache (and HF_HOME points)
SOURCE_DIR = "/model-source"  # where a pvc:// claim or an image volume is mounted
SOURCE_VOLUME = "model-source"
CACHE_VOLUME = "model-cache"
DONE_MARKER = ".vllmctl-complete"  # written last by the init containers: a finished copy
# Keys both a source and the entry itself may give: lists are joined (the source's first).
MERGED = ("env", "extraVolumes", "extraVolumeMounts", "initContainer")

# A PVC or Secret name: a DNS-1123 subdomain.
# Path segments inside a claim or a bucket: they become a directory on disk, so only
# characters that need no quoting anywhere, and never "." or "..".
SEGMENT_RE = re.compile(r"[A-Za-z0-9_+=@,.-]+")
# An S3 bucket name (the AWS rules every S3-compatible store accepts).
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# An image reference with a tag or a digest (or both): [host[:port]/]path[:tag][@digest].
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?/)"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
OCI_RE = re.compile(
    rf"(?P<repo>{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@sha256:(?P<digest>[a-f0-9]{64}))?"
)
ENDPOINT_RE = re.compile(
    r"https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?"
)
REGION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class Source(NamedTuple):
    """A parsed modelURL: its scheme, the claim/bucket/image, and the path in it."""

    scheme: str  # hub, pvc, s3 or oci
    location: str  # the repo id, claim, bucket, or image reference
    path: str = ""  # the path in the claim, or the prefix in the bucket ("" for none)


def parse(url: str) -> Source:
    """The source a (valid) modelURL names."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return Source(HUB, url)
    if scheme == OCI:
        return Source(OCI, rest)
    location, _, path = rest.partition("/")
    return Source(scheme, location, path.rstrip("/"))


def problem(url: str) -> str | None:
    """Why a pvc://, s3:// or oci:// modelURL is wrong (the schema's check), or None."""
    scheme, _, rest = url.partition("://")
    if not rest or any(c.isspace() for c in url):
        return f"{url!r} is not a valid URI; give a location after the scheme, without spaces"
    if scheme == PVC:
        claim, _, path = rest.partition("/")
        if why := name_problem(claim, "claim"):
            return f"{url!r}: {why}; write pvc://CLAIM/path/in/claim"
        return _path_problem(url, path, "the path in the claim")
    if scheme == S3:
        bucket, _, prefix = rest.partition("/")
        if not BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            return (
                f"{url!r}: {bucket!r} is not a bucket name (3 to 63 lowercase letters, digits, "
                "'.' and '-'); write s3://bucket/prefix"
            )
        return _path_problem(url, prefix, "the prefix")
    if scheme == OCI:
        match = OCI_RE.fullmatch(rest)
        if match is None:
            return (
                f"{url!r} is not an image reference; write oci://registry/repository:tag "
                "(lowercase repository) or oci://registry/repository@sha256:<digest>"
            )
        if not match["tag"] and not match["digest"]:
            return f"{url!r} has no tag or digest; pin the model: oci://{rest}:<tag> or @sha256:<digest>"
        return None
    return f"{url!r} uses an unsupported scheme; use a HuggingFace repo id or a pvc://, s3://, oci:// URI"


def name_problem(value: Any, what: str) -> str | None:
    """Why `value` is not a Kubernetes object name (a DNS-1123 subdomain), or None."""
    if not isinstance(value, str) or not value:
        return f"the {what} name is missing"
    if len(value) > SUBDOMAIN_MAX or not SUBDOMAIN_RE.fullmatch(value):
        return (
            f"{value!r} is not a Kubernetes {what} name (lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit)"
        )
    return None


def _path_problem(url: str, path: str, what: str) -> str | None:
    if not path.rstrip("/"):
        return None
    segments = path.rstrip("/").split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            return f"{url!r}: {what} may not hold empty, '.' or '..' parts; give a plain relative path"
        if not SEGMENT_RE.fullmatch(segment):
            return (
                f"{url!r}: {segment!r} in {what} has characters vllmctl does not put in a path; "
                "use letters, digits and _ + = @ , . -"
            )
    return None


# ------------------------------------------------------------------ the schema's checks


def check_claim(value: Any) -> str | None:
    """cacheClaim: the name of an existing PVC."""
    return name_problem(value, "PersistentVolumeClaim")


def check_secret(value: Any) -> str | None:
    """s3Secret: the name of a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."""
    return name_problem(value, "Secret")


def check_endpoint(value: Any) -> str | None:
    """s3Endpoint (and VLLM_S3_ENDPOINT): an http(s) URL of an S3-compatible store."""
    if not isinstance(value, str) or not ENDPOINT_RE.fullmatch(value):
        return (
            f"{value!r} is not an S3 endpoint; write its URL, e.g. https://minio.example.com:9000 "
            "or http://minio.storage.svc:9000"
        )
    return None


def check_region(value: Any) -> str | None:
    """s3Region: a region name such as us-east-1."""
    if not isinstance(value, str) or not REGION_RE.fullmatch(value):
        return f"{value!r} is not a region name; write it like us-east-1"
    return None


S3_KEYS = ("s3Secret", "s3Endpoint", "s3Region")


def entry_problems(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems between an entry's source and its other keys, as (key, message)."""
    url = entry.get("modelURL")
    if not isinstance(url, str):
        return []
    scheme = parse(url).scheme
    found: list[tuple[str, str]] = []
    if scheme != S3:
        found += [(key, f"{key} is only for s3:// models; remove it") for key in S3_KEYS if key in entry]
    if scheme == PVC:
        found += [
            (key, f"a pvc:// model reads its weights from the claim and caches nothing; remove {key}")
            for key in ("cacheClaim", "pvcStorage")
            if key in entry
        ]
    elif "cacheClaim" in entry and "pvcStorage" in entry:
        found.append(
            (
                "pvcStorage",
                "give one model cache: cacheClaim (an existing claim) or pvcStorage (a new "
                "claim for this model); remove one",
            )
        )
    return found


def check_model_url(value: Any) -> str | None:
    """modelURL: a HuggingFace repo id, or a pvc://, s3:// or oci:// URI (docs/model-sources.md)."""
    if not isinstance(value, str):
        return f"must be a HuggingFace repo id like 'org/model', not {kind_of(value)}"
    if value.startswith(URI_SCHEMES):
        return problem(value)
    if "://" in value:
        return (
            f"{value!r} uses an unsupported scheme; use a HuggingFace repo id 'org/model' "
            f"or a {', '.join(URI_SCHEMES)} URI"
        )
    if not REPO_ID_RE.fullmatch(value) or "--" in value or ".." in value:
        return (
            f"{value!r} is not a HuggingFace repo id; write it as 'org/model', "
            "e.g. 'meta-llama/Llama-3.1-8B-Instruct'"
        )
    return None
