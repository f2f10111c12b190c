"""What a Deployment's or Service's object says, read the same way by status and endpoints:
its containers, GPUs per replica, the ids vLLM serves, the image's tag, the Service's DNS
name and URL; and the small conversions (numbers, timestamps, kubectl's short ages)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from vllmctl.core.quantity import as_int
from vllmctl.ops.status.report import Obj, ServiceInfo, ServicePort

CLUSTER_DOMAIN = "cluster.local"


def containers_of(deployment: Obj) -> list[Obj]:
    return list(
        ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    )


def gpu_request(containers: list[Obj]) -> tuple[int, str | None]:
    """GPUs per replica: the extended resources named `<vendor>/gpu`, limits before requests."""
    total, resource = 0, None
    for c in containers:
        resources = c.get("resources") or {}
        for kind in ("limits", "requests"):
            found = {k: v for k, v in (resources.get(kind) or {}).items() if str(k).endswith("/gpu")}
            if found:
                for key, value in found.items():
                    total += as_int(value) or 0
                    resource = resource or key
                break
    return total, resource


def engine_ids(container: Obj) -> list[str]:
    """The ids vLLM serves the model under: every --served-model-name, else the model."""
    argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    names = served_model_names(argv)
    if names:
        return names
    if "serve" in argv and argv.index("serve") + 1 < len(argv):
        return [argv[argv.index("serve") + 1]]
    return []


def served_model_names(argv: list[str]) -> list[str]:
    names: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("--served-model-name="):
            names.extend(arg.split("=", 1)[1].split())
        elif arg == "--served-model-name":
            for value in argv[i + 1 :]:
                if value.startswith("-"):
                    break
                names.extend(value.split())
    return names


def image_tag(image: str | None) -> str | None:
    """`repo/name:tag` -> `tag`; a digest stays a digest; None without either."""
    if not image:
        return None
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def service_info(service: Obj, namespace: str, domain: str = CLUSTER_DOMAIN) -> ServiceInfo:
    spec = service.get("spec") or {}
    name = service["metadata"]["name"]
    dns = f"{name}.{namespace}.svc.{domain}"
    ports = [
        ServicePort(
            name=str(p.get("name") or ""),
            port=as_int(p.get("port")) or 0,
            target_port=str(p.get("targetPort", p.get("port"))),
            protocol=str(p.get("protocol") or "TCP"),
        )
        for p in spec.get("ports") or []
    ]
    first = ports[0].port if ports else 80
    url = f"http://{dns}" + ("" if first == 80 else f":{first}")
    return ServiceInfo(name, str(spec.get("type") or "ClusterIP"), spec.get("clusterIP"), dns, url, ports)


def parse_timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(str(text)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


_HELM_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.\d+)?\s*([+-]\d{4}|Z)?")


def parse_helm_time(text: str) -> datetime | None:
    """helm list's `2025-11-23 10:00:00.123456789 +0000 UTC`."""
    match = _HELM_TIME.match(text.strip())
    if not match:
        return None
    day, clock, offset = match.groups()
    zone = "+0000" if offset in (None, "Z") else offset
    try:
        return datetime.strptime(f"{day} {clock} {zone}", "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        return None


def short_age(when: datetime | None, now: float | None = None) -> str:
    """kubectl's short ages: 42s, 7m, 5h, 3d."""
    if when is None:
        return "?"
    seconds = max(0, int((now if now is not None else time.time()) - when.timestamp()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
