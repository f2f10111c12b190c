"""What install/upgrade do about secrets before helm runs: a gated model needs the
HuggingFace token in the cluster; the endpoint gets an API key when asked to (`--api-key`,
or VLLM_API_KEY given, as the old tool took it).

Which models are gated is decided by the caller (vllmctl/ops/gated.py: models.yaml's `gated:`,
else the Hub, else the old tool's organisations).

A value found in the store (e.g. Vault) but missing from the namespace is synced; a
missing value is taken from the variable, asked for on a terminal, or refused naming
the command that stores it. Values never reach helm: the chart gets Secret references.
"""

from __future__ import annotations

import os
from typing import Any

from vllmctl.core.errors import UsageError
from vllmctl.secrets.source import check_value, generate_api_key
from vllmctl.secrets.specs import API_KEY, HF_TOKEN


def wants_api_key(api_key: bool | None) -> bool | None:
    """--api-key/--no-api-key when given; else VLLM_API_KEY set means yes (the old tool
    protected the endpoint with it); else None (ask at a terminal)."""
    if api_key is None and os.environ.get(API_KEY.env):
        return True
    return api_key


def needs_backend(gated: list[str], api_key: bool | None, interactive: bool) -> bool:
    return bool(gated) or api_key is True or (api_key is None and interactive)


def ensure_secrets(app: Any, backend: Any, gated: list[str], api_key: bool | None) -> list[str]:
    """Make the namespace's Secrets ready for the release, the gated models' token first
    (a refusal then changes nothing); returns what was done."""
    done: list[str] = []
    given = os.environ.get(API_KEY.env)
    if given and api_key is not False and backend.secret_value(API_KEY) is None:
        # VLLM_API_KEY will be stored below: refuse a bad one now, before the token is.
        check_value(API_KEY, given, force=False)
    if gated and backend.secret_value(HF_TOKEN) is None:
        done.append(_provide_token(app, backend, gated))
    if api_key is False:
        return done
    current = backend.secret_value(API_KEY)
    stored = backend.get(API_KEY) if current is None and backend.name == "vault" else None
    if current is None and stored is not None:
        backend.sync(API_KEY, stored)
        done.append(f"synced the stored API key into Secret {API_KEY.ref.secret_name}")
    kept = current if current is not None else stored
    if kept is not None and given and given != kept:
        app.warn(
            f"{API_KEY.env} differs from the API key already stored, which stays in use; "
            "`vllmctl set-api-key` replaces it, then `vllmctl rotate-api-key` restarts the pods."
        )
    if kept is None and (
        api_key is True
        or (
            api_key is None
            and app.interactive
            and app.confirm(
                "Protect the endpoint with an API key? (generated and stored, not printed)", default=True
            )
        )
    ):
        value = given or generate_api_key()
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
                f"run `vllmctl set-hf-token` (or set {HF_TOKEN.env}, which install stores, also in a "
                "namespace it creates) and retry; nothing was changed."
            )
        app.info(f"{names} {'is' if len(gated) == 1 else 'are'} gated: the engines need a HuggingFace token.")
        value = app.ask_secret("HuggingFace token (input hidden):")
        if not value:
            raise UsageError("no HuggingFace token entered; nothing was deployed.")
    check_value(HF_TOKEN, value, force=False)
    where = backend.set(HF_TOKEN, value)
    return f"stored the HuggingFace token in {where}"
