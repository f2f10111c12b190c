"""The two secrets vllmctl keeps, and where each lives in every backend.

The names follow the old setup (docs/secrets.md), so a cluster set up by the old
scripts is adopted as is: Vault `secret/vllm/huggingface` (key `token`) and
`secret/vllm/api-key` (key `api-key`), ExternalSecrets `hf-token-external-secret` and
`vllm-api-key-external-secret`, Secrets `hf-token` and `vllm-api-key`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vllmctl.chart.inputs import API_KEY_SECRET, HF_TOKEN_SECRET, SecretRef


@dataclass(frozen=True)
class SecretKind:
    label: str  # for messages: "HuggingFace token"
    ref: SecretRef  # the Kubernetes Secret and key the chart reads
    vault_leaf: str  # the Vault path under the prefix
    vault_key: str  # the key inside that Vault secret
    env: str  # the variable a value may come from
    external_secret: str  # the ExternalSecret's name
    template: str  # its template in templates/
    command_suffix: str  # "hf-token" / "api-key": set-<suffix>, get-<suffix>...

    def vault_path(self, prefix: str) -> str:
        prefix = prefix.strip("/")
        return f"{prefix}/{self.vault_leaf}" if prefix else self.vault_leaf


HF_TOKEN = SecretKind(
    label="HuggingFace token",
    ref=HF_TOKEN_SECRET,
    vault_leaf="huggingface",
    vault_key="token",
    env="VLLM_HF_TOKEN",
    external_secret="hf-token-external-secret",
    template="hf-token-external-secret.yaml.j2",
    command_suffix="hf-token",
)
API_KEY = SecretKind(
    label="API key",
    ref=API_KEY_SECRET,
    vault_leaf="api-key",
    vault_key="api-key",
    env="VLLM_API_KEY",
    external_secret="vllm-api-key-external-secret",
    template="api-key-external-secret.yaml.j2",
    command_suffix="api-key",
)
