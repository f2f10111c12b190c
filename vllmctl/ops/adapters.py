"""Which model id test-completions sends for `MODEL:ADAPTER` or `--adapter NAME`: a LoRA
adapter is served under its own name (vLLM's --lora-modules NAME=..., or the LoRA
controller's adapterName), beside its base model."""

from __future__ import annotations

from typing import Any

from vllmctl.core.errors import UsageError


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
