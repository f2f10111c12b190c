"""A stand-in for the HuggingFace Hub: the HTTP API `huggingface_hub` calls for
`HfApi.model_info`, `HfApi.auth_check` and `hf_hub_download`, on 127.0.0.1 (plain http).

What it serves, following the real Hub:

- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`: the model's metadata
  (`id`, `_id`, `modelId`, `author`, `sha`, `private`, `gated` (false, "auto" or "manual"),
  `disabled`, `library_name`, `pipeline_tag`, `tags`, `downloads`, `likes`, `config` (the
  architectures and model_type, as the Hub's summary), `safetensors` (`parameters` per dtype
  and `total`, only for a repo with safetensors metadata) and `siblings`). `expand` (or
  `expand[]`, which the Hub also reads) keeps only the named properties plus `_id` and `id`;
  an unknown property is a 400. A gated repo's metadata is public, as on the Hub.
- `GET /api/models` (`HfApi.list_models`, `vllmctl search`): the models the caller may see
  (gated ones to anyone, private ones only to a token granted them) whose id contains
  `search` (case-insensitive), by `author`, `pipeline_tag` and each `filter` (a tag, the
  library or the pipeline), sorted by `sort` (downloads, likes, lastModified, createdAt,
  trendingScore; `direction` -1, the default, descends; ties in id order), `limit` per
  page (at most 1000, the Hub's page size without one) and a `Link: <...&cursor=N>;
  rel="next"` header when more remain. Items are the Hub's short form (id, likes,
  private, downloads, tags, pipeline_tag, library_name), everything but the config with
  `full`, plus `config`/`cardData` when asked, or exactly the `expand` properties (refused
  beside full/config/cardData, as the Hub does). A license is the card's (`cardData.license`)
  and a `license:` tag.
- `GET /api/models/{repo}/auth-check`: 200 `{}` when the token may download the files.
- `GET /api/agent-harnesses`: an empty registry of AI coding agents. huggingface_hub
  fetches it (from the HF_ENDPOINT it read at import) to build its User-Agent, at most once
  a day per HF_HOME, before its first request.
- `HEAD`/`GET /{repo}/resolve/{rev}/{file}`: a 307 to
  `/api/resolve-cache/models/{repo}/{sha}/{file}?...` (a relative Location, as the Hub
  answers for files kept in git), with `X-Repo-Commit`. That path answers with the file,
  `ETag` (the git blob id, quoted), `X-Repo-Commit`, `Content-Length`, `Accept-Ranges` and
  a `Range: bytes=N-` as 206. `rev` is `main` or the commit id.

Refusals carry the Hub's `X-Error-Code` and `X-Error-Message` headers and a JSON body
`{"error": message}`, which is what `huggingface_hub.utils.hf_raise_for_status` maps to its
exceptions:

- An unknown bearer token: 401 `Invalid credentials in Authorization header`, no error code
  (HfHubHTTPError), on every path, public repos included.
- No such repo, or a private one the token may not see: `RepoNotFound` `Repository not
  found`, 401 without a token (the Hub does not tell anonymous callers whether a repo
  exists) and 404 with one (RepositoryNotFoundError).
- A gated repo's files (resolve, resolve-cache, auth-check) without access: `GatedRepo`,
  401 `Access to model X is restricted. You must have access to it and be authenticated to
  access it. Please log in.` without a token, 403 `Access to model X is restricted and you
  are not in the authorized list. Visit <page> to ask for access.` with one (GatedRepoError).
- A revision other than `main` or the commit: 404 `RevisionNotFound` `Invalid rev id: X`.
- A file the repo lacks: 404 `EntryNotFound` `Entry not found`, with `X-Repo-Commit` (the
  client caches the miss under that commit).

Tokens: `add_token(token, granted={repo, ...})`. A granted repo may be downloaded when gated
and seen when private; the others are as for an anonymous caller, but with the 403/404
codes. Which token a request carried is in `requests`.

For tests: `requests` records (method, path with query, token) of each request; `errors`
holds tracebacks of stand-in bugs (answered 500; the session fixture fails on them);
`fail_next(status, count=1, path=None, delay=0.0)` answers the next requests (whose path
matches the regex `path`) with `status` after `delay` seconds, or, with status 0, only
delays them; `reset()` brings back the preloaded models and drops tokens, faults and the
request log.

`list_page_size` (default 1000) makes the list's pages smaller than `limit`, as a mirror
may page, so a test sees the Link header followed.

Preloaded (`PUBLISHED_MODELS`): real repos with their published config.json fields that a
memory estimate reads, safetensors parameter counts, gating and the card's license. Commit
ids, ETags and the `_id` are made up (deterministic); download counts (0 unless a test
gives `downloads=`) and dates are left out.

Left out: other repo types, the tree API, the list's other filters (apps, inference,
num_parameters, gated, ...: ignored), the Hub's word-wise search ranking, LFS/Xet files and CDN redirects,
`/api/whoami-v2`, access requests (pending or rejected), rate-limit headers, write APIs.

Threading: state lives on the LoopThread's loop; call `add_model`, `add_token`, `fail_next`
and `reset` there (`sandbox.call(sandbox.hub.add_token, "hf_x", {"org/model"})`).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import quote, urlencode

from aiohttp import web

Gated = Literal[False, "auto", "manual"]

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
REPO_NOT_FOUND = "Repository not found"
ENTRY_NOT_FOUND = "Entry not found"
# Properties `expand` may name (huggingface_hub's ExpandModelProperty_T).
EXPAND_PROPERTIES = frozenset(
    {
        *("author", "baseModels", "cardData", "childrenModelCount", "config", "createdAt"),
        *("disabled", "downloads", "downloadsAllTime", "evalResults", "gated", "gguf", "inference"),
        *("inferenceProviderMapping", "lastModified", "library_name", "likes", "mask_token"),
        *("model-index", "pipeline_tag", "private", "resourceGroup", "safetensors", "sha", "siblings"),
        *("spaces", "tags", "transformersInfo", "trendingScore", "usedStorage", "widgetData"),
    }
)
# /api/models: the sort keys the Hub accepts (huggingface_hub sends these names) and the
# properties each sorts by; the page size (the Hub's most per page); an item's short form.
LIST_SORTS = {
    "downloads": "downloads",
    "likes": "likes",
    "lastModified": "lastModified",
    "createdAt": "createdAt",
    "trendingScore": "trendingScore",
}
LIST_PAGE_MAX = 1000
LIST_SHORT = (
    "_id",
    "id",
    "likes",
    "private",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
)
RESOLVE_RE = re.compile(r"/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)")
RESOLVE_CACHE_RE = re.compile(r"/api/resolve-cache/models/(?P<repo>.+)/(?P<sha>[0-9a-f]{40})/(?P<file>.+)")
RANGE_RE = re.compile(r"bytes=(?P<start>[0-9]+)-(?P<end>[0-9]*)")

_LLAMA3_ROPE_SCALING = {
    "factor": 8.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3",
}

# The published facts of real repos: config.json fields a memory estimate reads (and a few
# neighbours), the safetensors parameter counts the Hub shows, and gating. Sources: each
# repo's config.json and its model_info safetensors metadata on huggingface.co.
PUBLISHED_MODELS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-0.5B-Instruct": {
        "license": "apache-2.0",
        "gated": False,
        "parameters": {"BF16": 494_032_768},
        "config": {
            "architectures": ["Qwen2ForCausalLM"],
            "bos_token_id": 151643,
            "eos_token_id": 151645,
            "hidden_act": "silu",
            "hidden_size": 896,
            "intermediate_size": 4864,
            "max_position_embeddings": 32768,
            "model_type": "qwen2",
            "num_attention_heads": 14,
            "num_hidden_layers": 24,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "vocab_size": 151936,
        },
    },
    "Qwen/Qwen2.5-1.5B-Instruct": {
        "license": "apache-2.0",
        "gated": False,
        "parameters": {"BF16": 1_543_714_304},
        "config": {
            "architectures": ["Qwen2ForCausalLM"],
            "bos_token_id": 151643,
            "eos_token_id": 151645,
            "hidden_act": "silu",
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "max_position_embeddings": 32768,
            "model_type": "qwen2",
            "num_attention_heads": 12,
            "num_hidden_layers": 28,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "vocab_size": 151936,
        },
    },
    "Qwen/Qwen2.5-7B-Instruct": {
        "license": "apache-2.0",
        "gated": False,
        "parameters": {"BF16": 7_615_616_512},
        "config": {
            "architectures": ["Qwen2ForCausalLM"],
            "bos_token_id": 151643,
            "eos_token_id": 151645,
            "hidden_act": "silu",
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "max_position_embeddings": 32768,
            "model_type": "qwen2",
            "num_attention_heads": 28,
            "num_hidden_layers": 28,
            "num_key_value_heads": 4,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "vocab_size": 152064,
        },
    },
    "meta-llama/Llama-3.1-8B-Instruct": {
        "license": "llama3.1",
        "gated": "manual",
        "parameters": {"BF16": 8_030_261_248},
        "config": {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "bos_token_id": 128000,
            "eos_token_id": [128001, 128008, 128009],
            "hidden_act": "silu",
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "max_position_embeddings": 131072,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": 32,
            "num_hidden_layers": 32,
            "num_key_value_heads": 8,
            "rms_norm_eps": 1e-05,
            "rope_scaling": _LLAMA3_ROPE_SCALING,
            "rope_theta": 500000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "vocab_size": 128256,
        },
    },
    "meta-llama/Llama-3.1-70B-Instruct": {
        "license": "llama3.1",
        "gated": "manual",
        "parameters": {"BF16": 70_553_706_496},
        "config": {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "bos_token_id": 128000,
            "eos_token_id": [128001, 128008, 128009],
            "hidden_act": "silu",
            "hidden_size": 8192,
            "intermediate_size": 28672,
            "max_position_embeddings": 131072,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": 64,
            "num_hidden_layers": 80,
            "num_key_value_heads": 8,
            "rms_norm_eps": 1e-05,
            "rope_scaling": _LLAMA3_ROPE_SCALING,
            "rope_theta": 500000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "vocab_size": 128256,
        },
    },
    "mistralai/Mistral-7B-Instruct-v0.3": {
        "license": "apache-2.0",
        "gated": "auto",
        "parameters": {"BF16": 7_248_023_552},
        "config": {
            "architectures": ["MistralForCausalLM"],
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "max_position_embeddings": 32768,
            "model_type": "mistral",
            "num_attention_heads": 32,
            "num_hidden_layers": 32,
            "num_key_value_heads": 8,
            "rms_norm_eps": 1e-05,
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "vocab_size": 32768,
        },
    },
}


def _digest(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def git_blob_id(content: bytes) -> str:
    """The id git gives a file's content, which the Hub sends as a small file's ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class HubModel:
    """One model repo: its metadata and its files (name -> bytes)."""

    repo_id: str
    gated: Gated
    private: bool
    parameters: dict[str, int] | None
    config: dict[str, Any] | None
    files: dict[str, bytes]
    sha: str
    downloads: int = 0  # the Hub's count over the last 30 days; what the list sorts by
    license: str | None = None  # the card's `license:` (a Hub license id, e.g. apache-2.0)
    pipeline_tag: str | None = "text-generation"

    def info(self) -> dict[str, Any]:
        """Every property the stand-in knows, as GET /api/models/{repo} names them."""
        author = self.repo_id.split("/")[0] if "/" in self.repo_id else None
        model_type = (self.config or {}).get("model_type")
        config = self.config or {}
        summary = {k: config[k] for k in ("architectures", "model_type") if k in config}
        data: dict[str, Any] = {
            "_id": _digest("id", self.repo_id)[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": author,
            "sha": self.sha,
            "private": self.private,
            "gated": self.gated,
            "disabled": False,
            "library_name": "transformers",
            "pipeline_tag": self.pipeline_tag,
            "tags": [
                "transformers",
                "safetensors",
                *([model_type] if model_type else []),
                *([self.pipeline_tag] if self.pipeline_tag else []),
                *([f"license:{self.license}"] if self.license else []),
            ],
            "downloads": self.downloads,
            "likes": 0,
            "config": summary,
            "siblings": [{"rfilename": name} for name in sorted(self.files)],
        }
        # The model card's metadata, as the Hub parses it from README.md's YAML header.
        if self.license:
            data["cardData"] = {"license": self.license}
        if self.parameters is not None:
            total = sum(self.parameters.values())
            data["safetensors"] = {"parameters": dict(self.parameters), "total": total}
        return data


class HubRequest(NamedTuple):
    method: str
    path: str  # with the query string, as sent
    token: str | None  # the bearer token it carried


@dataclass
class _Fault:
    status: int
    remaining: int
    path: str | None
    delay: float = 0.0


@dataclass
class HubError(Exception):
    """A refusal in the Hub's shape."""

    status: int
    message: str
    code: str | None = None  # X-Error-Code
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return web.json_response({"error": self.message}, status=self.status, headers=headers)


class HubStandIn:
    """The Hub's model API, with the PUBLISHED_MODELS and tokens tests add."""

    def __init__(self, preload: bool = True) -> None:
        self._preload = preload
        self.models: dict[str, HubModel] = {}
        self.tokens: dict[str, set[str]] = {}  # token -> repos it was granted
        self.requests: list[HubRequest] = []
        self.errors: list[str] = []  # tracebacks of stand-in bugs; the suite checks it stays empty
        self._faults: list[_Fault] = []
        self.list_page_size = LIST_PAGE_MAX
        self.reset()

    # --- test controls ------------------------------------------------------------------------

    def add_model(
        self,
        repo_id: str,
        *,
        config: dict[str, Any] | None,
        parameters: dict[str, int] | None = None,
        gated: Gated = False,
        private: bool = False,
        files: dict[str, bytes] | None = None,
        downloads: int = 0,
        license: str | None = None,
        pipeline_tag: str | None = "text-generation",
    ) -> HubModel:
        """Add (or replace) a model repo. `config=None`: a repo without config.json."""
        contents = dict(files or {})
        if config is not None:
            # As transformers writes it: two-space indent, sorted keys, a final newline.
            contents["config.json"] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
        sha = _digest("commit", repo_id, *(f"{k}:{git_blob_id(v)}" for k, v in sorted(contents.items())))
        parameters, config = copy.deepcopy(parameters), copy.deepcopy(config)
        model = HubModel(
            repo_id, gated, private, parameters, config, contents, sha, downloads, license, pipeline_tag
        )
        self.models[repo_id] = model
        return model

    def add_token(self, token: str, granted: Iterable[str] = ()) -> None:
        """A valid token, allowed to download the gated repos and see the private ones in `granted`."""
        self.tokens[token] = set(granted)

    def fail_next(
        self, status: int = 503, *, count: int = 1, path: str | None = None, delay: float = 0.0
    ) -> None:
        """The next `count` requests (whose path matches the regex `path`) wait `delay` seconds,
        then get `status` (status 0: only the delay). Added after earlier, unfinished faults."""
        self._faults.append(_Fault(status, count, path, delay))

    def reset(self) -> None:
        """Back to the preloaded models, with no tokens, faults or recorded requests."""
        self.models.clear()
        self.tokens.clear()
        self._faults.clear()
        self.requests.clear()
        self.list_page_size = LIST_PAGE_MAX
        if self._preload:
            for repo_id, facts in PUBLISHED_MODELS.items():
                self.add_model(
                    repo_id,
                    config=facts["config"],
                    parameters=facts["parameters"],
                    gated=facts["gated"],
                    license=facts["license"],
                )

    # --- the app ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = _bearer(request)
        self.requests.append(HubRequest(request.method, request.path_qs, token))
        try:
            fault = self._take_fault(request.path)
            if fault is not None:
                await asyncio.sleep(fault.delay)
                if fault.status:
                    what = f"{request.method} {request.path}"
                    raise HubError(fault.status, f"sandbox fault injected for {what}")
            response = self._dispatch(request, token)
        except HubError as error:
            response = error.response()
        except (web.HTTPException, asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as error:
            # A bug in the stand-in: answer as a server would, and keep it for the tests to see.
            self.errors.append(traceback.format_exc())
            response = HubError(500, f"sandbox internal error: {error!r}").response()
        response.headers.setdefault("X-Request-Id", _digest("request", str(len(self.requests))))
        return response

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path is None or re.search(fault.path, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _dispatch(self, request: web.Request, token: str | None) -> web.StreamResponse:
        if token is not None and token not in self.tokens:
            raise HubError(401, INVALID_CREDENTIALS)
        path = request.path
        if request.method not in ("GET", "HEAD"):
            raise HubError(405, f"method {request.method} is not served by the sandbox's Hub")
        if match := RESOLVE_CACHE_RE.fullmatch(path):
            model = self._visible(match["repo"], token)
            if match["sha"] != model.sha:
                raise HubError(404, f"Invalid rev id: {match['sha']}", "RevisionNotFound")
            self._require_access(model, token, request)
            return self._file(request, model, match["file"])
        if path == "/api/agent-harnesses":
            return web.json_response({"standardEnvVars": ["AI_AGENT", "AGENT"], "harnesses": {}})
        if path in ("/api/models", "/api/models/"):
            return self._list_models(request, token)
        if path.startswith("/api/models/"):
            return self._api_models(request, token, path.removeprefix("/api/models/"))
        if match := RESOLVE_RE.fullmatch(path):
            return self._resolve(request, token, match["repo"], match["rev"], match["file"])
        raise HubError(404, "Sorry, we can't find the page you are looking for.")

    def _api_models(self, request: web.Request, token: str | None, tail: str) -> web.StreamResponse:
        if tail.endswith("/auth-check"):
            model = self._visible(tail.removesuffix("/auth-check"), token)
            self._require_access(model, token, request)
            return web.json_response({})
        repo_id, _, revision = tail.partition("/revision/")
        model = self._visible(repo_id, token)
        if revision:
            self._check_revision(model, revision)
        return web.json_response(_expanded(model.info(), request.query))

    def _list_models(self, request: web.Request, token: str | None) -> web.StreamResponse:
        """GET /api/models: the models the caller may see that match every filter, sorted,
        one page of `limit` (default and most: LIST_PAGE_MAX) with a Link to the next."""
        query = request.query
        search = query.get("search", "").lower()
        author = query.get("author")
        pipeline = query.get("pipeline_tag")
        wanted_tags = [*query.getall("filter", []), *query.getall("filter[]", [])]
        sort = query.get("sort")
        if sort is not None and sort not in LIST_SORTS:
            raise HubError(400, f'"sort" must be one of {", ".join(sorted(LIST_SORTS))}')
        direction = query.get("direction", "-1")
        if direction not in ("-1", "1"):
            raise HubError(400, '"direction" must be -1 or 1')
        limit = _whole(query.get("limit", str(LIST_PAGE_MAX)), "limit")
        start = _whole(query.get("cursor", "0"), "cursor")
        if limit < 1:
            raise HubError(400, '"limit" must be at least 1')
        limit = min(limit, LIST_PAGE_MAX, self.list_page_size)
        found = []
        for model in self.models.values():
            info = model.info()
            if model.private and model.repo_id not in self._granted(token):
                continue  # private repos are listed only to a token that may see them
            if search and search not in model.repo_id.lower():
                continue
            if author and info["author"] != author:
                continue
            if pipeline and info["pipeline_tag"] != pipeline:
                continue
            # A filter matches a tag, the library or the pipeline (all of them must match).
            known = {*info["tags"], info["library_name"], info["pipeline_tag"]}
            if any(tag not in known for tag in wanted_tags):
                continue
            found.append(info)
        found.sort(key=lambda i: i["id"])  # ties in the sort key keep a stable order
        if sort is not None:
            key = LIST_SORTS[sort]
            found.sort(key=lambda i: i.get(key) or 0, reverse=direction == "-1")
        page = found[start : start + limit]
        shown = [_shown(info, query) for info in page]
        headers = {}
        if start + limit < len(found):
            rest = [(k, v) for k, v in query.items() if k != "cursor"]
            next_query = urlencode([*rest, ("cursor", start + limit)])
            link = f"{request.scheme}://{request.host}{request.path}?{next_query}"
            headers["Link"] = f'<{link}>; rel="next"'
        return web.json_response(shown, headers=headers)

    def _resolve(
        self, request: web.Request, token: str | None, repo_id: str, revision: str, filename: str
    ) -> web.StreamResponse:
        model = self._visible(repo_id, token)
        self._check_revision(model, revision)
        self._require_access(model, token, request)
        commit = {"X-Repo-Commit": model.sha}
        content = model.files.get(filename)
        if content is None:
            raise HubError(404, ENTRY_NOT_FOUND, "EntryNotFound", commit)
        # The Hub sends small (git) files through its resolve cache: a relative redirect.
        origin = quote(f"/{repo_id}/resolve/{revision}/{filename}", safe="")
        etag = quote(f'"{git_blob_id(content)}"', safe="")
        location = f"/api/resolve-cache/models/{repo_id}/{model.sha}/{filename}?{origin}=&etag={etag}"
        return web.Response(
            status=307,
            text=f"Temporary Redirect. Redirecting to {location}",
            headers={**commit, "Location": location},
        )

    def _file(self, request: web.Request, model: HubModel, filename: str) -> web.StreamResponse:
        content = model.files.get(filename)
        if content is None:
            raise HubError(404, ENTRY_NOT_FOUND, "EntryNotFound", {"X-Repo-Commit": model.sha})
        headers = {
            "ETag": f'"{git_blob_id(content)}"',
            "X-Repo-Commit": model.sha,
            "Accept-Ranges": "bytes",
        }
        wanted = RANGE_RE.fullmatch(request.headers.get("Range", "").strip())
        if wanted is not None and int(wanted["start"]) < len(content):
            start = int(wanted["start"])
            end = min(int(wanted["end"]) if wanted["end"] else len(content) - 1, len(content) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            return web.Response(status=206, body=content[start : end + 1], headers=headers)
        content_type = "application/json" if filename.endswith(".json") else "application/octet-stream"
        return web.Response(body=content, headers=headers, content_type=content_type)

    # --- the Hub's rules ----------------------------------------------------------------------

    def _visible(self, repo_id: str, token: str | None) -> HubModel:
        model = self.models.get(repo_id)
        if model is None or (model.private and repo_id not in self._granted(token)):
            # Anonymous callers get 401 either way: the Hub does not say whether a repo exists.
            raise HubError(401 if token is None else 404, REPO_NOT_FOUND, "RepoNotFound")
        return model

    def _check_revision(self, model: HubModel, revision: str) -> None:
        if revision not in ("main", model.sha):
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _require_access(self, model: HubModel, token: str | None, request: web.Request) -> None:
        if not model.gated or model.repo_id in self._granted(token):
            return
        if token is None:
            raise HubError(
                401,
                f"Access to model {model.repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
                "GatedRepo",
            )
        page = f"{request.scheme}://{request.host}/{model.repo_id}"
        raise HubError(
            403,
            f"Access to model {model.repo_id} is restricted and you are not in the authorized list. "
            f"Visit {page} to ask for access.",
            "GatedRepo",
        )

    def _granted(self, token: str | None) -> set[str]:
        return self.tokens.get(token, set()) if token is not None else set()


def _expanded(info: dict[str, Any], query: Any) -> dict[str, Any]:
    """`expand` (or `expand[]`): only the named properties plus `_id` and `id`."""
    expand = [*query.getall("expand", []), *query.getall("expand[]", [])]
    if not expand:
        return info
    unknown = sorted(set(expand) - EXPAND_PROPERTIES)
    if unknown:
        raise HubError(400, f'"expand" must name model properties; unknown: {", ".join(unknown)}')
    return {k: v for k, v in info.items() if k in ("_id", "id", *expand)}


def _shown(info: dict[str, Any], query: Any) -> dict[str, Any]:
    """A list item: with `expand`, its properties; with `full`, everything but the config
    (also asked for with `config`); else the Hub's short form."""
    if query.getall("expand", []) or query.getall("expand[]", []):
        if any(query.get(k) for k in ("full", "config", "cardData")):
            raise HubError(400, '"expand" cannot be used with "full", "config" or "cardData"')
        return _expanded(info, query)
    if _true(query.get("full")):
        item = {k: v for k, v in info.items() if k != "config"}
    else:
        item = {k: info[k] for k in LIST_SHORT if k in info}
    if _true(query.get("config")):
        item["config"] = info["config"]
    if _true(query.get("cardData")) and "cardData" in info:
        item["cardData"] = info["cardData"]
    return item


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def _whole(text: str, name: str) -> int:
    if not text.isdigit():
        raise HubError(400, f'"{name}" must be a whole number')
    return int(text)


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None
