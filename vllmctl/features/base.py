"""The shape every chart feature has, and what each of its hooks is given.

A chart feature is one thing the vllm-stack chart can do that vllmctl configures:
model sources, accelerators, autoscaling, rollouts, startup budgets, exposure,
monitoring, the network policy. Each is one module under `features/` holding a `FEATURE`
(a `Feature` subclass instance), listed in `features/registry.py`. The schema, render,
install's checks before helm, doctor and status iterate over that list and never name a
feature, so a new one is one module and one registry line (docs/ARCHITECTURE.md).

Every hook has a default that does nothing: a feature implements only what it has.

What the hooks are given and return is in `features/contexts.py`, imported where it is
used: every command that reads models.yaml imports the features (the schema collects
their fields), and those classes would add to `list-models`' start-up for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from vllmctl.core.fields import Field

if TYPE_CHECKING:
    from vllmctl.chart.facts import ChartAt
    from vllmctl.core.findings import Report
    from vllmctl.features.contexts import (
        BeforeChange,
        Contribution,
        DoctorContext,
        FeatureReading,
        ModelValues,
        ReleaseValues,
        StatusPart,
    )

Obj = dict[str, Any]

if TYPE_CHECKING:  # for type checking only: no feature needs it when it runs

    class Entry(Protocol):
        """A valid models.yaml entry (catalog.schema.Model), as the features read it; declared
        here so that features need not import the catalog, which collects them."""

        data: dict[str, Any]  # as written

        @property
        def name(self) -> str: ...

        def effective(self) -> dict[str, Any]:
            """With vllmctl's defaults filled in."""
            ...


class Feature:
    """One chart feature. Subclasses set `name` and override the hooks they need."""

    name: ClassVar[str]
    # models.yaml keys this feature owns, with their checks (the schema collects them).
    fields: ClassVar[Mapping[str, Field]] = {}
    # The settings (environment variables) it reads: documentation, and a test checks each
    # is a setting vllmctl has (settings.SPECS).
    settings: ClassVar[tuple[str, ...]] = ()
    # The key `status -o json` shows this feature's part of a model under (None: it reads
    # nothing back for status).
    status_key: ClassVar[str | None] = None
    # modelSpec keys whose value is joined with the entry's own key of that name, rather
    # than replaced by it (`merge`).
    merged_keys: ClassVar[tuple[str, ...]] = ()
    # Its objects run some models in place of the chart's engine Deployment (the RayCluster):
    # status asks it about models without a Deployment too (`deployment` is then {}), and a
    # part with a `workload` name and `ready` makes such a model deployed (its `gpus`,
    # `gpu_resource`, `image` and `phases`, where given, fill the model's row).
    runs_models: ClassVar[bool] = False

    # --- models.yaml ----------------------------------------------------------------------

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Checks across an entry's keys, each (the top-level key to point at, why and the
        fix). `entry` holds only the keys that passed their own field checks."""
        return []

    def chart_problems(self, entry: Mapping[str, Any], chart: ChartAt) -> list[tuple[str, str]]:
        """The entry's keys of this feature that `chart` would silently ignore, as
        (key, why and the fix): render refuses them and `validate` reports them at the key."""
        return []

    def hub_repos(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The Hub repos besides its modelURL that a model's engines download (as (repo id,
        what it is, e.g. "adapter sql")): the gated check and doctor's Hub access ask about
        them as they do about the model's own repo."""
        return []

    def needs_hf_token(self, entry: Mapping[str, Any]) -> bool:
        """Whether a model needs the hf-token Secret for this feature whatever the Hub says of
        its repos (the LoRA controller reads it for every Hub adapter it downloads): install
        then stores or syncs the token, or refuses, as for a gated model."""
        return False

    def served_ids(self, entry: Mapping[str, Any]) -> list[tuple[str, tuple[int | str, ...], str]]:
        """The API model ids a model is served under besides its own (its name and repo id),
        each as (id, where it is written: keys and list indexes from the entry down, what it
        is, e.g. "the adapter name"): the schema refuses one that clashes with a model's
        name or another id, and status counts them as models.yaml's."""
        return []

    # --- the values ------------------------------------------------------------------------

    def model_values(self, model: ModelValues) -> None:
        """Add this feature's keys to `model.spec` (or change render's); raise a UsageError
        for what the chart cannot do."""

    def engine_image(self, data: Mapping[str, Any], settings: Any) -> tuple[str, str, str] | None:
        """The (repository, tag, the setting that tag comes from) this feature's
        `model_values` gives a model written as `data` in models.yaml (None: it leaves the
        image alone); doctor's `image tag` row asks, and names that setting to pin."""
        return None

    def merge(self, model: str, key: str, ours: Any, theirs: Any) -> Any:
        """One of `merged_keys`: the spec's value (`ours`: what every feature put there) joined
        with the entry's own (`theirs`), or a UsageError when the entry's value clashes with
        this feature's. Every feature that merges a key gets the same two values; they must
        join alike (lists after the spec's, mappings with the entry's keys first), and the
        first one's result is used."""
        return theirs

    def release_values(self, release: ReleaseValues) -> Contribution | None:
        """What this feature adds to the release's values (template context, checks of the
        rendered values, warnings; None: nothing); raise a UsageError naming the settings
        at fault."""
        return None

    def check_rendered(self, values: Obj, specs: list[Obj]) -> None:
        """Raise a CatalogError when the rendered values lost what this feature computed
        (a custom template may drop it); `Contribution.placed` covers release-wide paths."""

    # --- install and upgrade ------------------------------------------------------------

    def before_change(self, context: BeforeChange) -> None:
        """Before install or upgrade changes anything: raise a UsageError when the cluster
        lacks what the models or settings need (a CRD, a claim), which helm or the pods
        would fail on half-way. A cluster that cannot be asked is left to helm."""

    # --- doctor and status -----------------------------------------------------------------

    def doctor(self, report: Report, context: DoctorContext) -> None:
        """Add this feature's rows to doctor's report (only when it has something to check)."""

    def doctor_model(self, report: Report, settings: Any, model: Entry, facts: Any) -> None:
        """Add rows about one model, judged with the Hub's facts about it (`hub.ModelFacts`:
        parameter count, config.json); only run when the Hub answered."""

    def read_status(self, kube: Any, namespace: str, release: str) -> FeatureReading | None:
        """The objects this feature adds to a release, read for `status` with a number of
        API calls that does not depend on the number of models; None: nothing to read."""
        return None

    def model_status(self, reading: FeatureReading, model: str, deployment: Obj) -> StatusPart | None:
        """What `reading` says about one deployed model (shown under `status_key`, its
        `problem` among status's problems); None: nothing about it."""
        return None

    def router_status(self, deployment: Obj) -> Mapping[str, Any] | None:
        """What this feature reads from the deployed router Deployment for `status`, as
        {label: value} (shown under the router, and in `-o json` under router.features);
        None: nothing about the router."""
        return None

    def router_reading(self, reading: FeatureReading, deployment: Obj) -> Mapping[str, Any] | None:
        """What this feature's own `read_status` reading says about the router (an object it
        made beside the router Deployment, such as its HPA), as {label: value}, shown like
        `router_status`; only called when `read_status` returned a reading."""
        return None

    def ways_in(
        self, kube: Any, namespace: str, release: str, router_service: Obj, notes: list[str]
    ) -> list[Any]:
        """For `endpoints`: how clients outside the cluster reach the router through what this
        feature made (dataclasses, shown as they are), reading at most a fixed number of
        objects; what could not be read goes to `notes`."""
        return []

    def status_table(self, parts: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
        """status's table for this feature, (headers, rows), from the models' parts (model
        name -> what `model_status` returned); None: no table."""
        return None


def overriding(features: Sequence[Feature], hook: str) -> list[Feature]:
    """The features whose class implements `hook` (most keep the do-nothing default): what a
    loop over thousands of models calls, rather than every feature."""
    default = getattr(Feature, hook)
    return [feature for feature in features if getattr(type(feature), hook) is not default]
