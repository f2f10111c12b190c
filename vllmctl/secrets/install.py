"""What install/upgrade do about secrets before helm runs: a gated model needs the
HuggingFace token in the cluster; the endpoint gets an API key when asked to.

A value found in the store (e.g. Vault) but missing from the namespace is synced; a
missing value is taken from the variable, asked for on a terminal, or refused naming
the command that stores it. Values never reach helm: the chart gets Secret references.
"""

from __future__ import annotations

import os
from typing import Any

from vllmctl.errors import UsageError
from vllmctl.secrets.source import check_value, generate_api_key
from vllmctl.secrets.specs import API_KEY, HF_TOKEN


def gated_models(models: list[Any]) -> list[str]:
    """Models models.yaml marks `gated: true` (add-model records it)."""
    return [m.name for m in models if m.data.get("gated") is True]


def needs_backend(models: list[Any], api_key: bool | None, interactive: bool) -> bool:
    return bool(gated_models(models)) or api_key is True or (api_key is None and interactive)


def ensure_secrets(app: Any, backend: Any, models: list[Any], api_key: bool | None) -> list[str]:
    """Make the namespace's Secrets ready for the release; returns what was done."""
    done: list[str] = []
    gated = gated_models(models)
    if gated and backend.secret_value(HF_TOKEN) is None:
        done.append(_provide_token(app, backend, gated))
    if api_key is not False and backend.secret_value(API_KEY) is None:
        stored = backend.get(API_KEY) if backend.name == "vault" else None
        if stored is not None:
            backend.sync(API_KEY, stored)
            done.append(f"synced the stored API key into Secret {API_KEY.ref.secret_name}")
        elif api_key is True or (
            api_key is None
            and app.interactive
            and app.confirm(
                "Protect the endpoint with an API key? (generated and stored, not printed)", default=True
            )
        ):
            value = os.environ.get(API_KEY.env) or generate_api_key()
            where = backend.set(API_KEY, value)
            done.append(f"stored an API key in {where} (`vllmctl get-api-key` prints it)")
    return done


def _provide_token(app: Any, backend: Any, gated: list[str]) -> str:
    stored = backend.get(HF_TOKEN) if backend.name == "vault" else None
    if stored is not None:
        backend.sync(HF_TOKEN, stored)
        return f"synced the stored HuggingFace token into Secret {HF_TOKEN.ref.secret_name}"
    names = ", ".join(gated)
    value = os.environ.get(HF_TOKEN.env)
    if not value:
        if not app.interactive:
            raise UsageError(
                f"{names} {'is' if len(gated) == 1 else 'are'} gated and no HuggingFace token is stored: "
                f"run `vllmctl set-hf-token` (or set {HF_TOKEN.env}) and retry."
            )
        app.info(f"{names} {'is' if len(gated) == 1 else 'are'} gated: the engines need a HuggingFace token.")
        value = app.ask_secret("HuggingFace token (input hidden):")
        if not value:
            raise UsageError("no HuggingFace token entered; nothing was deployed.")
    check_value(HF_TOKEN, value, force=False)
    where = backend.set(HF_TOKEN, value)
    return f"stored the HuggingFace token in {where}"
