"""Which model id test-completions, chat and bench send: `MODEL:ADAPTER` or `--adapter NAME`
for a LoRA adapter (served under its own name, vLLM's --lora-modules NAME=... or the LoRA
controller's adapterName, beside its base model), and whether the server lists it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vllmctl.core.errors import ExternalError, UsageError


def model_id(settings: Any, model: str, adapter: str | None) -> str:
    """The id to send: the adapter's name when one is asked for (checked against the
    model's `lora:` in models.yaml when the model is there), else `model` as given.
    `MODEL:ADAPTER` counts as an adapter only when MODEL is a models.yaml name, so a served
    id that holds a colon is still sent as written."""
    from vllmctl.catalog.selected import load_selected
    from vllmctl.features.lora_values import adapters

    catalog = load_selected(settings)
    by_name = {m.name: m for m in catalog.models}
    base, colon, named = model.rpartition(":")
    if adapter is None and colon and base in by_name:
        model, adapter = base, named
    if adapter is None:
        return model
    if colon and base in by_name and adapter != named:
        raise UsageError(f"give the adapter once: {model} names {named!r} and --adapter {adapter!r}.")
    entry = by_name.get(model)
    if entry is not None:
        known = [a.name for a in adapters(entry.data)]
        if adapter not in known:
            has = f"its adapters are {', '.join(known)}" if known else "it has no lora: adapters"
            raise UsageError(
                f"{model} has no LoRA adapter {adapter!r} in {settings.models_path} ({has}); "
                "`vllmctl list-api-models` shows what the router serves."
            )
    return adapter


def served_ids(cards: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ids GET /v1/models lists, in its order."""
    return [str(c["id"]) for c in cards if c.get("id") is not None]


def served_model(settings: Any, name: str, cards: Sequence[Mapping[str, Any]], label: str) -> str:
    """The id to send for NAME (a models.yaml name, a served id, or MODEL:ADAPTER), checked
    against what the server lists; an unknown one is a UsageError naming what is served."""
    wanted = model_id(settings, name, None)
    ids = served_ids(cards)
    if wanted in ids:
        return wanted
    if not ids:
        raise ExternalError(f"{label} serves no models yet (no engine is Ready); `vllmctl status` shows why.")
    what = name if wanted == name else f"{name} (id {wanted})"
    raise UsageError(f"{what} is not served by {label}; it serves {', '.join(ids)}: name one of those.")
