"""What a chart feature's hooks are given and return (features/base.py): the model and
the release while their values are built, a feature's contribution to the release's
values, what install's checks and doctor's get, and what status reads back.

NamedTuples rather than dataclasses: cheap to define, and immutable where a feature could
otherwise change what the next one reads (the one thing meant to change is a model's
`spec`). Imported by render, doctor and status, and by the features inside their hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from vllmctl.chart.facts import ChartAt

if TYPE_CHECKING:
    from vllmctl.chart.inputs import DeployedLabels, RenderInput
    from vllmctl.features.base import Entry

Obj = dict[str, Any]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class ModelValues(NamedTuple):
    """One model while its modelSpec is built. `spec` holds what render and the features
    before this one wrote (name, image, resources, the cache PVC, vllmConfig...); a hook
    adds or changes keys in it. The entry's own chart keys are laid over it afterwards."""

    model: Entry
    entry: Obj  # the entry with vllmctl's defaults filled in
    spec: Obj
    given: RenderInput
    chart: ChartAt

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def data(self) -> Obj:
        """The entry as written in models.yaml (no defaults)."""
        return self.model.data


class ReleaseValues(NamedTuple):
    """The release as a whole, once every model's spec is built."""

    models: Sequence[Entry]
    entries: list[Obj]  # each entry with vllmctl's defaults filled in
    specs: list[Obj]  # the modelSpec items, as render built them
    given: RenderInput
    chart: ChartAt
    labels: DeployedLabels  # the release's labels (the deployed ones on an upgrade)


class Contribution(NamedTuple):
    """What a feature adds to the release's values.

    - `context`: template context, merged key by key into render's own (a nested mapping
      such as {"router": {"ingress": ...}} adds keys to render's `router`). Give every key
      the template reads, None when off: the template is strict about undefined names.
    - `placed`: dotted paths the rendered values must hold with exactly these values (None:
      nothing asked), so a copied template that drops a setting fails instead of silently.
    - `present`: dotted paths the rendered values must hold whatever their value (a custom
      template may write its own), each with the sentence that explains its absence.
    - `warnings`: what render tells the operator.
    """

    context: Mapping[str, Any] = _EMPTY
    placed: Mapping[str, Any] = _EMPTY
    present: Mapping[str, str] = _EMPTY
    warnings: Sequence[str] = ()


class DoctorContext(NamedTuple):
    """What doctor's feature checks get: the cluster (None: it did not answer), the
    settings, and models.yaml's valid models (None: the file could not be read)."""

    kube: Any
    settings: Any
    models: Sequence[Entry] | None
    chart_decided: bool  # False: the chart version is in doubt, and its row says why


class BeforeChange(NamedTuple):
    """What the checks before install or upgrade get: the settings, the models to deploy,
    kubectl (`names(kind, namespace)` lists what a namespace holds) and `served(group,
    version, plural)`: whether the cluster serves a kind, None when it cannot be asked."""

    settings: Any
    models: Sequence[Entry]
    kubectl: Any
    served: Callable[[str, str, str], bool | None]


class FeatureReading(NamedTuple):
    """What `read_status` read: objects by whatever key the feature uses, and notes on
    what could not be read (status shows them)."""

    objects: Mapping[str, Any] = _EMPTY
    notes: Sequence[str] = ()


class StatusPart(Protocol):
    """A model's status from one feature: a dataclass whose fields are what `status -o
    json` shows under the feature's name, with `problem` (None: it works)."""

    problem: str | None
