"""Where a secret's value comes from, and what makes one acceptable.

Never from a command-line argument (any process listing shows those). In order:
standard input when it is not a terminal (or with --stdin); the environment variable;
a hidden prompt. An API key may also be generated.
"""

from __future__ import annotations

import os
import re
import secrets
import string
import sys
from typing import Any, TextIO

from vllmctl.core.errors import UsageError
from vllmctl.secrets.specs import HF_TOKEN, SecretKind

API_KEY_LENGTH = 48  # as the old tool's keys
API_KEY_ALPHABET = string.ascii_letters + string.digits
# A key anyone may guess protects nothing: shorter ones are refused unless --force. 16
# characters from a password manager's alphabet are ~95 bits, out of reach of guessing
# over HTTP; the generated key is 48.
API_KEY_MIN_LENGTH = 16
# HuggingFace user access tokens: "hf_" and 34 letters (older ones "api_"): accept hf_ and
# 30+ URL-safe characters, so future longer tokens pass.
HF_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{30,}")


def generate_api_key() -> str:
    """48 characters from the OS's CSPRNG (`secrets`), letters and digits: ~285 bits."""
    return "".join(secrets.choice(API_KEY_ALPHABET) for _ in range(API_KEY_LENGTH))


def read_value(
    kind: SecretKind, app: Any, *, stdin: bool, stream: TextIO | None = None, allow_empty: bool = False
) -> tuple[str, str] | None:
    """The value and where it came from ("standard input", "VLLM_HF_TOKEN", "prompt").

    Standard input is read when it is not a terminal, or with --stdin; empty (e.g.
    </dev/null in a script) it falls through to the variable. None when nothing was
    given and `allow_empty` (set-api-key then generates a key)."""
    stream = stream or sys.stdin
    if stdin or not stream.isatty():
        text = stream.read()
        # One trailing newline is the shell's (`echo`, here-strings), not the secret's.
        value = text.removesuffix("\n").removesuffix("\r")
        if value:
            return value, "standard input"
        if stdin:
            raise UsageError(f"--stdin was given but standard input was empty: pipe the {kind.label} in.")
    env_value = os.environ.get(kind.env)
    if env_value:
        return env_value, kind.env
    if not app.interactive:
        if allow_empty:
            return None
        raise UsageError(
            f"no {kind.label} given: pipe it to standard input or set {kind.env} (never an argument)."
        )
    hint = ", empty to generate one" if allow_empty else ""
    value = app.ask_secret(f"{kind.label} (input hidden{hint}):")
    if not value:
        if allow_empty:
            return None
        raise UsageError(f"no {kind.label} entered; nothing was changed.")
    return value, "prompt"


def check_value(kind: SecretKind, value: str, *, force: bool) -> None:
    """Refuse values that cannot be right: whitespace or control characters anywhere, an
    HF token that does not look like one, and an API key short enough to guess (the last
    two unless --force)."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UsageError(f"the {kind.label} contains spaces or control characters; check what was pasted.")
    if kind is HF_TOKEN and not force and not HF_TOKEN_RE.fullmatch(value):
        raise UsageError(
            "that does not look like a HuggingFace token (hf_ and at least 30 letters or digits); "
            "copy it from https://huggingface.co/settings/tokens, or pass --force to store it anyway."
        )
    if kind is not HF_TOKEN and not force and len(value) < API_KEY_MIN_LENGTH:
        raise UsageError(
            f"that API key has {len(value)} characters, short enough to guess: use at least "
            f"{API_KEY_MIN_LENGTH} (or give none, and vllmctl generates 48), or store it anyway with "
            "`vllmctl set-api-key --force`."
        )
