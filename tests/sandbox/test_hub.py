"""The Hub stand-in's list endpoint (`GET /api/models`) against huggingface_hub's own
`HfApi.list_models`: the library's requests are answered as the real Hub answers them, and
vllmctl's search sends exactly the library's query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi

from tests.sandbox.hub import PUBLISHED_MODELS
from tests.sandbox.hub_alone import Hub, serve_hub
from vllmctl.apis import hub as vllmctl_hub

QWEN_7B = PUBLISHED_MODELS["Qwen/Qwen2.5-7B-Instruct"]


@pytest.fixture(scope="module")
def _server() -> Iterator[Hub]:
    with serve_hub() as hub:
        yield hub


@pytest.fixture
def hub(_server: Hub) -> Iterator[Hub]:
    _server.call(_server.stand_in.reset)
    _server.call(
        _server.stand_in.add_model,
        "acme/Secret-7B-Instruct",
        config=QWEN_7B["config"],
        parameters=QWEN_7B["parameters"],
        private=True,
        downloads=5,
        license="other",
    )
    _server.call(_server.stand_in.add_token, "hf_granted", {"acme/Secret-7B-Instruct"})
    _server.call(_server.stand_in.add_token, "hf_other", set())
    for downloads, repo in enumerate(("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct"), start=10):
        model = _server.stand_in.models[repo]
        _server.call(setattr, model, "downloads", downloads)
    yield _server
    _server.call(_server.stand_in.reset)


def ids(models: Any) -> list[str]:
    return [m.id for m in models]


EXPAND = list(vllmctl_hub.LISTING_PROPERTIES)


def test_list_models_is_answered_as_the_hub_does(hub: Hub) -> None:
    api = HfApi(endpoint=hub.url, token=False)
    found = list(
        api.list_models(search="qwen", pipeline_tag="text-generation", sort="downloads", expand=EXPAND)
    )
    # Downloads descending, then id order for ties; "qwen" matches regardless of case.
    assert ids(found) == [
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "Qwen/Qwen2.5-1.5B-Instruct",
    ]
    top = found[0]
    assert top.downloads == 11 and top.safetensors is not None and top.safetensors.total == 7_615_616_512
    assert top.card_data is not None and top.card_data.license == "apache-2.0"
    assert "license:apache-2.0" in (top.tags or [])
    assert top.gated is False and top.private is False
    gated = next(iter(api.list_models(search="Llama-3.1-8B", expand=["gated"])))
    assert gated.gated == "manual"  # gated repos are listed to anyone


def test_private_repos_only_to_a_granted_token(hub: Hub) -> None:
    def listed(token: str | bool) -> list[str]:
        return ids(HfApi(endpoint=hub.url, token=token).list_models(search="7B", sort="downloads"))

    assert "acme/Secret-7B-Instruct" not in listed(False)
    assert "acme/Secret-7B-Instruct" not in listed("hf_other")
    assert listed("hf_granted") == [  # 11, 5 and 0 downloads
        "Qwen/Qwen2.5-7B-Instruct",
        "acme/Secret-7B-Instruct",
        "mistralai/Mistral-7B-Instruct-v0.3",
    ]
    answer = httpx.get(f"{hub.url}/api/models", headers={"Authorization": "Bearer hf_unknown"})
    assert answer.status_code == 401
    assert answer.headers["X-Error-Message"] == vllmctl_hub.INVALID_CREDENTIALS


def test_filters_limit_and_the_short_form(hub: Hub) -> None:
    api = HfApi(endpoint=hub.url, token=False)
    assert ids(api.list_models(author="mistralai")) == ["mistralai/Mistral-7B-Instruct-v0.3"]
    assert ids(api.list_models(filter="license:llama3.1", sort="downloads")) == [
        "meta-llama/Llama-3.1-70B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
    ]
    assert ids(api.list_models(pipeline_tag="text-to-image")) == []
    assert len(list(api.list_models(limit=2))) == 2
    short = httpx.get(f"{hub.url}/api/models", params={"search": "0.5B"}).json()
    assert set(short[0]) == {
        "_id",
        "id",
        "likes",
        "private",
        "downloads",
        "tags",
        "pipeline_tag",
        "library_name",
    }
    full = httpx.get(f"{hub.url}/api/models", params={"search": "0.5B", "full": "True"}).json()
    assert "siblings" in full[0] and "config" not in full[0]
    refused = httpx.get(f"{hub.url}/api/models", params={"expand": "gated", "full": "True"})
    assert refused.status_code == 400
    bad_sort = httpx.get(f"{hub.url}/api/models", params={"sort": "size"})
    assert bad_sort.status_code == 400 and "sort" in bad_sort.headers["X-Error-Message"]


def test_pages_follow_the_link_header(hub: Hub) -> None:
    hub.call(setattr, hub.stand_in, "list_page_size", 2)
    api = HfApi(endpoint=hub.url, token=False)
    everything = ids(api.list_models(sort="downloads"))
    assert len(everything) == 6  # three pages of two, the private repo left out
    pages = [p for p in hub.paths() if p.startswith("/api/models")]
    assert len(pages) == 3 and "cursor=2" in pages[1] and "cursor=4" in pages[2]
    # vllmctl follows the same links, and stops once it has `limit` models.
    hub.call(hub.stand_in.requests.clear)
    found = vllmctl_hub.search_models("", None, endpoint=hub.url, limit=3)
    assert [m.repo_id for m in found.listings] == everything[:3]
    assert len([p for p in hub.paths() if p.startswith("/api/models")]) == 2


def test_vllmctl_sends_the_query_list_models_sends(hub: Hub) -> None:
    """The request vllmctl makes itself (list_models has no timeout) is the library's."""
    list(
        HfApi(endpoint=hub.url, token=False).list_models(
            search="Qwen", pipeline_tag="text-generation", sort="downloads", limit=5, expand=EXPAND
        )
    )
    vllmctl_hub.search_models("Qwen", None, endpoint=hub.url, limit=5)
    library, ours = [p for p in hub.paths() if p.startswith("/api/models")]
    assert ours == library
    assert "pipeline_tag=text-generation" in ours and "sort=downloads" in ours and "limit=5" in ours
