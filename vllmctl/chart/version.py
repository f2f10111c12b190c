"""Which vllm-stack chart version vllmctl renders for, decided in one place.

The values must suit the chart helm installs, so the version comes from:
- a local chart (a directory or a .tgz): its own Chart.yaml, always; helm installs that
  file whatever `--version` says, so a VLLM_CHART_VERSION that disagrees is refused;
- a repository or oci:// chart: VLLM_CHART_VERSION when set, else the deployed release's
  version (an upgrade must not move the chart by surprise), else the newest version vllmctl
  is tested with.
Also the router image tag that goes with each chart version (docs/chart-facts.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllmctl.chart.facts import NEWEST_TESTED, ROUTER_TAGS, version_tuple
from vllmctl.core.errors import UsageError

_VERSION_LINE = re.compile(r"v?\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]*)?")


@dataclass(frozen=True)
class ChartVersion:
    """The version to render for, and where it came from (shown by config and doctor)."""

    version: str
    source: str
    local: Path | None = None  # the chart directory or .tgz, for a local chart

    @property
    def shown(self) -> str:
        """`0.1.12 (from VLLM_CHART_VERSION)`: for messages (config shows the bare source)."""
        source = {"env": "VLLM_CHART_VERSION", "flag": "the command line"}.get(self.source, self.source)
        return f"{self.version} (from {source})"


def local_chart(ref: str) -> Path | None:
    """The path of a local chart reference (a directory or .tgz), None for a repository
    (`vllm/vllm-stack`) or oci:// reference. Mirrors helm: a path that exists is local,
    and so is anything written as a path."""
    if ref.startswith("oci://"):
        return None
    path = Path(ref).expanduser()
    if ref.startswith(("/", "./", "../", "~")) or ref.endswith((".tgz", ".tar.gz")) or path.exists():
        return path
    return None


def read_version(path: Path, variable: str = "VLLM_CHART") -> str:
    """The `version:` of a chart directory's Chart.yaml, or of the Chart.yaml inside a
    packaged chart (.tgz, read with tarfile: no helm needed)."""
    if path.is_dir():
        chart_file = path / "Chart.yaml"
        if not chart_file.is_file():
            raise UsageError(
                f"{variable}={path} has no Chart.yaml; point {variable} at the chart's own "
                "directory (the one holding Chart.yaml), or at its .tgz."
            )
        return _version_in(_bounded_bytes(chart_file), chart_file)
    if path.is_file():
        return _version_in(_packaged_chart_yaml(path, variable), Path(f"{path}:Chart.yaml"))
    raise UsageError(
        f"{variable}={path}: no such directory or .tgz; point {variable} at a chart directory, "
        "a .tgz, or a repository chart such as vllm/vllm-stack."
    )


def _bounded_bytes(chart_file: Path) -> bytes:
    from vllmctl.core.errors import CatalogError
    from vllmctl.core.fileio import read_bytes

    try:
        data = read_bytes(chart_file)  # at most MAX_FILE_BYTES, as every file vllmctl reads
    except CatalogError as exc:
        raise UsageError(exc.message) from None
    return data or b""


def _packaged_chart_yaml(path: Path, variable: str) -> bytes:
    """The text of <name>/Chart.yaml in a `helm package` archive (the top-level one: a
    packaged chart also holds its dependencies' Chart.yaml files under charts/)."""
    import tarfile

    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                parts = member.name.lstrip("./").split("/")
                if member.isfile() and len(parts) == 2 and parts[1] == "Chart.yaml":
                    handle = archive.extractfile(member)
                    if handle is not None:
                        from vllmctl.core.fileio import MAX_FILE_BYTES

                        return handle.read(MAX_FILE_BYTES + 1)  # bounded: _version_in refuses more
    except (tarfile.TarError, OSError) as exc:
        raise UsageError(
            f"{variable}={path} is not a readable chart archive ({exc}); repackage it with helm package."
        ) from None
    raise UsageError(f"{variable}={path} holds no <chart>/Chart.yaml; package the chart with helm package.")


def _version_in(data: bytes, where: Path) -> str:
    """Chart.yaml's `version:`, read with the bounds every YAML file vllmctl reads obeys
    (size, nesting, aliases: catalog/yamldoc.py), so a hostile chart cannot stall vllmctl."""
    from ruamel.yaml.error import YAMLError

    from vllmctl.core.errors import CatalogError
    from vllmctl.core.fileio import MAX_FILE_BYTES
    from vllmctl.core.yamldoc import compose, construct, decode

    if len(data) > MAX_FILE_BYTES:
        raise UsageError(
            f"{where} is larger than {MAX_FILE_BYTES // 1024**2} MiB: that is no chart's Chart.yaml."
        )
    try:
        root = compose(decode(where, data))
        chart: Any = construct(root) if root is not None else None
    except CatalogError as exc:
        raise UsageError(f"{exc.message} (fix the chart, or point VLLM_CHART elsewhere)") from None
    except YAMLError:  # ruamel's constructor on a tag or a duplicate key: not a chart's file
        raise UsageError(f"{where} is not valid YAML; fix the chart or point VLLM_CHART elsewhere.") from None
    version = str(chart.get("version", "")) if isinstance(chart, dict) else ""
    if not _VERSION_LINE.fullmatch(version):
        raise UsageError(f"{where} has no chart version (a `version: X.Y.Z` line); fix the chart.")
    return version


def resolve(settings: Any, deployed: str | None = None) -> ChartVersion:
    """The chart version to render for. `deployed` is the deployed release's chart version
    (None: no release, or not asked)."""
    from vllmctl.core.setting_names import ENV_CHART_VERSION

    given = settings.raw("chart_version")
    given_source = settings.source("chart_version")
    explicit = given is not None and given != "" and given_source != "default"
    path = local_chart(str(settings.chart))
    if path is not None:
        version = read_version(path)
        if explicit and given.lstrip("v") != version.lstrip("v"):
            raise UsageError(
                f"{ENV_CHART_VERSION}={given} disagrees with the chart VLLM_CHART={path}, whose "
                f"Chart.yaml says {version}: helm installs the chart's own version. Unset "
                f"{ENV_CHART_VERSION} (vllmctl reads the version from the chart), or point "
                f"VLLM_CHART at a {given} chart."
            )
        return ChartVersion(
            version, f"{path / 'Chart.yaml' if path.is_dir() else f'{path}:Chart.yaml'}", path
        )
    if explicit:
        return ChartVersion(str(given), given_source)
    if deployed:
        return ChartVersion(deployed, f"the deployed release {settings.release} (vllm-stack-{deployed})")
    return ChartVersion(
        NEWEST_TESTED, "default: the newest chart vllmctl is tested with; a deployed release keeps its own"
    )


def router_tag_for(chart_version: str) -> str | None:
    """The router image tag released with a chart version; None when vllmctl knows none."""
    return ROUTER_TAGS.get(chart_version.lstrip("v"))


def newer_in_index(repo_url: str, chart_ref: str, target: str) -> list[str]:
    """The versions of the chart in the repository's index.yaml newer than `target`, oldest
    first. An index that cannot be fetched or read is an ExternalError."""
    import httpx
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from vllmctl.core.errors import ExternalError

    url = f"{repo_url.rstrip('/')}/index.yaml"
    try:
        response = httpx.get(url, timeout=5.0, follow_redirects=True)
        response.raise_for_status()
        index: Any = YAML(typ="safe").load(response.text)
    except httpx.HTTPError as exc:
        raise ExternalError(str(exc) or type(exc).__name__) from None
    except YAMLError:
        raise ExternalError("the index is not valid YAML") from None
    name = chart_ref.rsplit("/", 1)[-1]
    entries = (index.get("entries") or {}).get(name) if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise ExternalError(f"the index lists no chart {name!r}")
    floor = version_tuple(target)
    found = {str(e.get("version")) for e in entries if isinstance(e, dict)}
    newer = [v for v in found if (t := version_tuple(v)) is not None and (floor is None or t > floor)]
    return sorted(newer, key=lambda v: version_tuple(v) or (0,))
