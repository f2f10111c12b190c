"""vllmctl.apis.hub against the Hub stand-in: the real huggingface_hub client, in-process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.hub.conftest import Hub
from tests.sandbox.hub import PUBLISHED_MODELS
from vllmctl.apis import hub as client
from vllmctl.core.errors import EXIT_EXTERNAL, EXIT_USAGE, ExternalError, UsageError

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
GRANTED = "hf_" + "Granted" + "x" * 30
UNGRANTED = "hf_" + "Ungranted" + "y" * 30
UNKNOWN = "hf_" + "Unknown" + "z" * 30


def test_a_public_model_is_open_to_anyone(hub: Hub, monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    # An ambient token must not be picked up: None means anonymous.
    monkeypatch.setenv("HF_TOKEN", UNKNOWN)
    token_file = Path(isolated.parent / "hf-home" / "token")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(UNKNOWN)
    access = client.check_access(QWEN, None, endpoint=hub.url)
    assert access == client.Access(QWEN, True, False, True, f"{hub.url}/{QWEN}")
    assert [r.token for r in hub.requests] == [None]


def test_gated_and_granted(hub: Hub) -> None:
    hub.call(hub.stand_in.add_token, GRANTED, {LLAMA})
    access = client.check_access(LLAMA, GRANTED, endpoint=hub.url)
    assert (access.exists, access.gated, access.allowed, access.reason) == (True, True, True, None)
    assert [r.path.split("?")[0] for r in hub.requests][-1] == f"/api/models/{LLAMA}/auth-check"
    assert {r.token for r in hub.requests} == {GRANTED}


def test_gated_without_access(hub: Hub) -> None:
    hub.call(hub.stand_in.add_token, UNGRANTED, {QWEN})
    access = client.check_access(MISTRAL, UNGRANTED, endpoint=hub.url)
    assert (access.exists, access.gated, access.allowed) == (True, True, False)
    assert "you are not in the authorized list" in (access.reason or "")
    assert access.page == f"{hub.url}/{MISTRAL}"
    anonymous = client.check_access(MISTRAL, None, endpoint=hub.url)
    assert (anonymous.gated, anonymous.allowed, anonymous.reason) == (True, False, "no token was given")


def test_model_facts_of_a_gated_model_with_access(hub: Hub, isolated: Path) -> None:
    hub.call(hub.stand_in.add_token, GRANTED, {LLAMA})
    facts = client.model_facts(LLAMA, GRANTED, endpoint=hub.url)
    assert facts.parameters == 8_030_261_248
    assert facts.parameter_dtypes == {"BF16": 8_030_261_248}
    assert facts.config == PUBLISHED_MODELS[LLAMA]["config"]
    assert (facts.gated, facts.from_cache) == (True, False)
    # In the standard cache under HF_HOME, where vLLM and a later offline run find it.
    cache = isolated.parent / "hf-home" / "hub" / "models--meta-llama--Llama-3.1-8B-Instruct"
    assert facts.config_path is not None and facts.config_path.is_relative_to(cache)
    assert (cache / "refs" / "main").read_text() == hub.call(lambda: hub.stand_in.models[LLAMA].sha)


def test_model_facts_of_a_gated_model_without_access_says_where_to_ask(hub: Hub) -> None:
    hub.call(hub.stand_in.add_token, UNGRANTED)
    for token in (None, UNGRANTED):
        with pytest.raises(client.HubAccessDenied) as caught:
            client.model_facts(LLAMA, token, endpoint=hub.url)
        assert caught.value.exit_code == EXIT_EXTERNAL
        assert f"request access at {hub.url}/{LLAMA}." in caught.value.message
        assert UNGRANTED not in caught.value.message


def test_model_facts_without_safetensors_metadata(hub: Hub) -> None:
    hub.call(lambda: hub.stand_in.add_model("org/tiny", config={"model_type": "gpt2", "n_layer": 2}))
    facts = client.model_facts("org/tiny", None, endpoint=hub.url)
    assert (facts.parameters, facts.parameter_dtypes, facts.config) == (
        None,
        {},
        {"model_type": "gpt2", "n_layer": 2},
    )


def test_a_repo_without_config_json(hub: Hub) -> None:
    hub.call(lambda: hub.stand_in.add_model("org/weights-only", config=None, files={"model.bin": b"x"}))
    with pytest.raises(ExternalError, match=r"org/weights-only has no config\.json on "):
        client.model_facts("org/weights-only", None, endpoint=hub.url)


def test_a_missing_repo(hub: Hub) -> None:
    hub.call(hub.stand_in.add_token, GRANTED)
    for token in (None, GRANTED):
        access = client.check_access("org/missing", token, endpoint=hub.url)
        assert (access.exists, access.gated, access.token_rejected) == (False, None, False)
        with pytest.raises(client.RepoNotFound) as caught:
            client.model_facts("org/missing", token, endpoint=hub.url)
        assert caught.value.exit_code == EXIT_USAGE
        assert caught.value.message.startswith(f"org/missing is not a model on {hub.url} (or it is private")


def test_a_private_repo_is_seen_only_with_a_granted_token(hub: Hub) -> None:
    hub.call(lambda: hub.stand_in.add_model("org/secret", config={"model_type": "llama"}, private=True))
    hub.call(hub.stand_in.add_token, GRANTED, {"org/secret"})
    hub.call(hub.stand_in.add_token, UNGRANTED)
    assert client.check_access("org/secret", GRANTED, endpoint=hub.url).allowed is True
    assert client.check_access("org/secret", UNGRANTED, endpoint=hub.url).exists is False
    assert client.check_access("org/secret", None, endpoint=hub.url).exists is False


def test_a_token_the_hub_rejects(hub: Hub) -> None:
    access = client.check_access(LLAMA, UNKNOWN, endpoint=hub.url)
    # Asked again anonymously: the repo exists and is gated, but this token cannot download.
    assert (access.exists, access.gated, access.allowed, access.token_rejected) == (True, True, False, True)
    assert access.reason == f"{hub.url} rejected the token (invalid, expired or revoked)"
    assert [r.token for r in hub.requests] == [UNKNOWN, None]
    with pytest.raises(client.HubTokenRejected) as caught:
        client.model_facts(QWEN, UNKNOWN, endpoint=hub.url)
    assert UNKNOWN not in caught.value.message
    assert "rejected the HuggingFace token" in caught.value.message


def test_an_endpoint_that_refuses_connections() -> None:
    started = time.monotonic()
    with pytest.raises(client.HubUnreachable) as caught:
        client.check_access(QWEN, GRANTED, endpoint="http://127.0.0.1:9")
    assert caught.value.message == "could not reach http://127.0.0.1:9: connection refused."
    assert caught.value.exit_code == EXIT_EXTERNAL
    with pytest.raises(client.HubUnreachable, match=r"config\.json is not in"):
        client.model_facts(QWEN, None, endpoint="http://127.0.0.1:9/")
    assert time.monotonic() - started < 5


def test_model_facts_fall_back_to_the_cache(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    online = client.model_facts(QWEN, None, endpoint=hub.url)
    offline = client.model_facts(QWEN, None, endpoint="http://127.0.0.1:9")
    assert (offline.config, offline.from_cache, offline.parameters) == (online.config, True, None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    assert client.model_facts(QWEN, None, endpoint=hub.url).from_cache is True
    assert len(hub.requests) == before


def test_offline_mode_asks_nothing(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(client.HubUnreachable) as caught:
        client.check_access(QWEN, None, endpoint=hub.url)
    assert caught.value.reason == "offline mode is on (HF_HUB_OFFLINE)"
    with pytest.raises(client.HubUnreachable, match=r"offline mode is on \(HF_HUB_OFFLINE\), and "):
        client.model_facts(LLAMA, None, endpoint=hub.url)
    assert hub.requests == []


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_mean_unreachable(hub: Hub, status: int) -> None:
    hub.call(hub.stand_in.fail_next, status)
    with pytest.raises(client.HubUnreachable, match=rf"could not reach {hub.url}: it answered {status} "):
        client.check_access(QWEN, None, endpoint=hub.url)


def test_a_server_error_on_the_access_check(hub: Hub) -> None:
    hub.call(hub.stand_in.add_token, GRANTED, {LLAMA})
    hub.call(lambda: hub.stand_in.fail_next(503, path="/auth-check$"))
    with pytest.raises(client.HubUnreachable, match="it answered 503"):
        client.check_access(LLAMA, GRANTED, endpoint=hub.url)


def test_a_slow_hub_times_out(hub: Hub) -> None:
    hub.call(hub.stand_in.add_token, GRANTED, {LLAMA})
    hub.call(lambda: hub.stand_in.fail_next(0, path="/auth-check$", delay=1.0))
    started = time.monotonic()
    with pytest.raises(client.HubUnreachable, match=r"no answer within 0\.2 s\.$"):
        client.check_access(LLAMA, GRANTED, endpoint=hub.url, timeout=0.2)
    assert time.monotonic() - started < 1.0


def test_a_token_a_header_cannot_carry_is_refused_unsent(hub: Hub) -> None:
    with pytest.raises(UsageError) as caught:
        client.check_access(QWEN, UNKNOWN + "\r", endpoint=hub.url)
    assert "holds a line break" in caught.value.message
    assert UNKNOWN not in caught.value.message
    assert hub.requests == []


def test_an_endpoint_that_is_not_http() -> None:
    with pytest.raises(UsageError, match=r"HF_ENDPOINT ftp://example\.org is not an http"):
        client.check_access(QWEN, None, endpoint="ftp://example.org")


def test_the_page_is_on_the_default_hub_or_the_endpoint() -> None:
    assert client.page_url(LLAMA, "https://huggingface.co/") == f"https://huggingface.co/{LLAMA}"
    assert client.page_url(LLAMA, "https://mirror.example") == f"https://mirror.example/{LLAMA}"


def test_the_stand_in_speaks_the_hubs_error_codes(hub: Hub) -> None:
    """huggingface_hub maps the stand-in's answers to the exceptions the real Hub's give."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub.call(hub.stand_in.add_token, UNGRANTED)
    api = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError) as missing:
        api.model_info("org/missing")
    assert missing.value.response.status_code == 401  # anonymous: not told whether it exists
    with pytest.raises(RepositoryNotFoundError) as missing:
        HfApi(endpoint=hub.url, token=UNGRANTED).model_info("org/missing")
    assert missing.value.response.status_code == 404
    for token, status in ((False, 401), (UNGRANTED, 403)):
        with pytest.raises(GatedRepoError) as gated:
            HfApi(endpoint=hub.url, token=token).auth_check(LLAMA)
        assert gated.value.response.status_code == status
    with pytest.raises(HfHubHTTPError) as bad:
        HfApi(endpoint=hub.url, token=UNKNOWN).model_info(QWEN)
    assert bad.value.response.status_code == 401 and not isinstance(bad.value, RepositoryNotFoundError)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(QWEN, "missing.json", endpoint=hub.url, token=False)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(QWEN, "config.json", revision="v9", endpoint=hub.url, token=False)
    info = api.model_info(MISTRAL, expand=["gated", "safetensors"])
    assert (info.gated, info.safetensors.total if info.safetensors else None) == ("auto", 7_248_023_552)
    assert info.siblings is None  # not expanded
    full = api.model_info(QWEN)
    assert [s.rfilename for s in full.siblings or []] == ["config.json"]
    assert full.config == {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}
    path = hf_hub_download(QWEN, "config.json", endpoint=hub.url, token=False)
    assert json.loads(Path(str(path)).read_text()) == PUBLISHED_MODELS[QWEN]["config"]


def test_the_preloaded_facts_are_self_consistent() -> None:
    """The published configs add up to the published parameter counts (dense decoders)."""
    for repo, facts in PUBLISHED_MODELS.items():
        c = facts["config"]
        hidden, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
        head = c.get("head_dim") or hidden // c["num_attention_heads"]
        kv = c["num_key_value_heads"] * head
        bias = 2 * kv + hidden if c["model_type"] == "qwen2" else 0  # Qwen2 has q/k/v biases
        attention = hidden * hidden * 2 + hidden * kv * 2 + bias
        layer = attention + 3 * hidden * c["intermediate_size"] + 2 * hidden
        embeddings = vocab * hidden * (1 if c["tie_word_embeddings"] else 2)
        assert layers * layer + embeddings + hidden == sum(facts["parameters"].values()), repo


def test_a_malformed_repo_id_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Repo id must be in the form"):
        client.check_access("org/a/b", None, endpoint="http://127.0.0.1:9")
