"""The kinds the API stand-in serves: built-ins, plus whatever installed CRDs define.

Each built-in names the kubernetes Python client's model class, whose attribute and
type maps are used for OpenAPI documents and strict field validation (schemas.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    model: str | None = None  # kubernetes.client.models class name, e.g. "V1Deployment"
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(VERBS)
    # CRDs: the openAPIV3Schema of this version, used for pruning-free validation only.
    crd_schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def base_path(self, namespace: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


def _r(
    gv: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    *,
    short: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    cat: tuple[str, ...] = (),
    model: str | None = None,
) -> Resource:
    group, _, version = gv.rpartition("/")
    default_model = f"{version.capitalize()}{kind}"
    return Resource(group, version, kind, plural, namespaced, short, model or default_model, sub, cat)


ALL = ("all",)
BUILTINS: list[Resource] = [
    _r("v1", "Namespace", "namespaces", False, short=("ns",), sub=("status", "finalize")),
    _r("v1", "Node", "nodes", False, short=("no",), sub=("status",)),
    _r("v1", "Secret", "secrets"),
    _r("v1", "ConfigMap", "configmaps", short=("cm",)),
    _r("v1", "ServiceAccount", "serviceaccounts", short=("sa",)),
    _r("v1", "Service", "services", short=("svc",), sub=("status",), cat=ALL),
    _r("v1", "Endpoints", "endpoints", short=("ep",)),
    _r("v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), sub=("status",)),
    _r("v1", "PersistentVolume", "persistentvolumes", False, short=("pv",), sub=("status",)),
    _r("v1", "Pod", "pods", short=("po",), sub=("status", "log", "portforward", "eviction"), cat=ALL),
    _r("v1", "Event", "events", short=("ev",), model="CoreV1Event"),
    _r("apps/v1", "Deployment", "deployments", short=("deploy",), sub=("status", "scale"), cat=ALL),
    _r("apps/v1", "ReplicaSet", "replicasets", short=("rs",), sub=("status", "scale"), cat=ALL),
    _r("rbac.authorization.k8s.io/v1", "Role", "roles"),
    _r("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    _r("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), sub=("status",)),
    _r("networking.k8s.io/v1", "Ingress", "ingresses", short=("ing",), sub=("status",)),
    # Stored and served only, for doctor's check of the class an Ingress names.
    _r("networking.k8s.io/v1", "IngressClass", "ingressclasses", False),
    # Stored and served only: nothing enforces them (no pod network is simulated).
    _r("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", short=("netpol",)),
    # Stored and served only, for doctor's look at the network plugin: no controller runs them.
    _r("apps/v1", "DaemonSet", "daemonsets", short=("ds",), sub=("status",), cat=ALL),
    _r(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        short=("hpa",),
        sub=("status",),
        cat=ALL,
    ),
    _r(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        short=("crd", "crds"),
        sub=("status",),
    ),
    _r("authorization.k8s.io/v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False),
]
# Review kinds are create-only, as on a real server.
BUILTINS[-1] = Resource(**{**BUILTINS[-1].__dict__, "verbs": ("create",)})


def from_crd(crd: dict[str, Any]) -> list[Resource]:
    """The served versions of an (Established) CustomResourceDefinition, as Resources."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for v in spec.get("versions", []):
        if not v.get("served", True):
            continue
        subs = tuple(name for name in (v.get("subresources") or {}) if name in ("status", "scale"))
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        out.append(
            Resource(
                group=spec.get("group", ""),
                version=v["name"],
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                model=None,
                subresources=subs,
                categories=tuple(names.get("categories") or ()),
                crd_schema=schema,
            )
        )
    return out
