"""What the HuggingFace Hub says about a model repo: does it exist, is it gated, may a token
download it (`check_access`), what a memory estimate needs (`model_facts`), and one file of
a repo (`download_file`: bench's tokenizer.json).

Through the `huggingface_hub` library, imported inside the functions (`vllmctl --help` must
not pay ~0.6 s for it). The requests it makes, with the endpoint always passed explicitly:

- `GET {endpoint}/api/models/{repo}?expand=...` (`HfApi.model_info`): 200 with the repo's
  public metadata, gated repos included; 401 (anonymous) or 404 with `X-Error-Code:
  RepoNotFound` for a missing repo or a private one the token cannot see; 401 with
  `X-Error-Message: Invalid credentials in Authorization header` for a bad token.
- `GET {endpoint}/api/models/{repo}/auth-check`: what `HfApi.auth_check` sends, sent here
  through the library's session with a timeout (auth_check takes none). 200 when the token
  may download; 401/403 with `X-Error-Code: GatedRepo` when it may not.
- `HEAD` then `GET {endpoint}/{repo}/resolve/main/config.json` (`hf_hub_download`; any
  file for `download_file`), into the standard HuggingFace cache (HF_HUB_CACHE, else
  HF_HOME/hub, else ~/.cache/huggingface/hub), where vLLM, transformers and a later offline
  run of vllmctl find it. When the Hub cannot be reached, `model_facts` and `download_file`
  fall back to that cached copy;
  huggingface_hub also returns a cached copy when the token has lost access since.

- `GET {endpoint}/api/models?search=...&pipeline_tag=text-generation&sort=downloads&limit=N
  &expand=...` (`search_models`): the query string `HfApi.list_models` (huggingface_hub 2.x)
  builds for those arguments, sent through the library's session with a timeout, because
  list_models takes none (its client waits forever) and retries 429, 5xx and refused
  connections five times with waits of up to 8 s (23 s before a refused connection is
  said). The Hub sorts downloads descending, answers at most `limit` models and points
  to the next page with a `Link: <...>; rel="next"` header, followed here (as the
  library's `paginate`) until `limit` models were read. Private repos are listed only
  to a token that may see them; gated ones to anyone.

Before its first request, huggingface_hub fetches `{HF_ENDPOINT}/api/agent-harnesses` for its
User-Agent (3 s timeout, at most once a day, cached in HF_HOME; not with
HF_HUB_DISABLE_TELEMETRY=1).

The token: None is anonymous, sent as `token=False` so the library does not pick up
HF_TOKEN or ~/.cache/huggingface/token; a string is sent as a bearer token and never
appears in a message (an HTTP library's error about a malformed header would quote it, so
it is checked before it is sent).

Failures: no network, DNS, refused connections, timeouts, HF_HUB_OFFLINE, 429 and 5xx are
`HubUnreachable`; a gated repo the token may not download is `HubAccessDenied` from
`model_facts` and `Access.allowed=False` from `check_access`; a bad token (401 Invalid
credentials) is `Access.token_rejected` (the anonymous answer is used for the rest) and
`HubTokenRejected` from `model_facts`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllmctl.core.errors import ExternalError, UsageError, VllmctlError

if TYPE_CHECKING:
    from huggingface_hub.errors import HfHubHTTPError

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 10.0
# The Hub's X-Error-Message for a token it does not know (expired, revoked, mistyped).
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
CONFIG_FILE = "config.json"
OFFLINE_REASON = "offline mode is on (HF_HUB_OFFLINE)"


@dataclass(frozen=True)
class Access:
    """What the Hub says about one repo and one token."""

    repo_id: str
    exists: bool  # False: no such repo (or private and invisible to this token)
    gated: bool | None  # the Hub's gated "auto"/"manual" -> True, False -> False; None if unknown
    allowed: bool | None  # this token may download the files; None when not checked / unknown
    page: str  # where the user requests access: {endpoint}/{repo_id}
    # Why `allowed` is False, in the Hub's words or ours (no token, token rejected): one
    # sentence, never holding the token.
    reason: str | None = None
    # The Hub refused the token itself (401 Invalid credentials); the other fields are then
    # what an anonymous request sees.
    token_rejected: bool = False


@dataclass(frozen=True)
class ModelFacts:
    """What a memory estimate needs from the Hub."""

    repo_id: str
    parameters: int | None  # the Hub's safetensors total; None without safetensors metadata
    parameter_dtypes: dict[str, int]  # e.g. {"BF16": 8030261248}
    config: dict[str, Any]  # the repo's config.json, parsed
    gated: bool | None = None
    # True: the Hub could not be reached and config.json came from the local cache, so
    # `parameters` and `parameter_dtypes` are unknown (None and {}).
    from_cache: bool = False
    config_path: Path | None = field(default=None, compare=False)  # the cached config.json


class HubUnreachable(ExternalError):
    """The Hub could not be asked: offline mode, DNS, connection, timeout, 429 or 5xx."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"could not reach {endpoint}: {reason}.")
        self.endpoint = endpoint
        self.reason = reason


class HubAccessDenied(ExternalError):
    """The repo is gated and the token (or no token) may not download it."""

    def __init__(self, message: str, page: str) -> None:
        super().__init__(message)
        self.page = page


class HubTokenRejected(ExternalError):
    """The Hub refused the token itself: invalid, expired or revoked."""


class RepoNotFound(UsageError):
    """No such model repo on the Hub (or private and invisible to the token)."""


class FileNotInRepo(ExternalError):
    """The repo exists but has no such file (the Hub's EntryNotFound)."""


def page_url(repo_id: str, endpoint: str) -> str:
    """Where the user requests access: the repo's page on the endpoint (huggingface.co by default)."""
    return f"{(endpoint or DEFAULT_ENDPOINT).rstrip('/')}/{repo_id}"


def hub_cache_dir() -> Path:
    """The standard HuggingFace cache, read from the environment now.

    huggingface_hub reads these variables once, at import; reading them per call keeps a
    long-lived process (or a test run) writing where its environment says.
    """
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(xdg).expanduser() / "huggingface" / "hub"


def check_access(
    repo_id: str, token: str | None, *, endpoint: str, timeout: float = DEFAULT_TIMEOUT
) -> Access:
    """Whether `repo_id` exists on the Hub, whether it is gated, and whether `token` may download it.

    Raises HubUnreachable when the Hub cannot be asked, UsageError for a token an HTTP
    header cannot carry, ExternalError for any other refusal.
    """
    endpoint = _endpoint(endpoint)
    token = _checked_token(token)
    page = page_url(repo_id, endpoint)
    if _offline():
        raise HubUnreachable(endpoint, OFFLINE_REASON)
    rejected = False
    try:
        info = _model_info(repo_id, token, endpoint, timeout, ["gated", "private"])
    except _TokenRejected:
        # Ask again without it, to still learn whether the repo exists and is gated.
        rejected, token = True, None
        info = _model_info(repo_id, None, endpoint, timeout, ["gated", "private"])
    why_rejected = f"{endpoint} rejected the token (invalid, expired or revoked)" if rejected else None
    if info is None:
        return Access(repo_id, False, None, False, page, why_rejected, rejected)
    gated = _gated(info.gated)
    allowed: bool | None
    reason: str | None
    if rejected:
        # The Hub refuses a bad token on every repo, public ones included.
        allowed, reason = False, why_rejected
    elif gated is False:
        allowed, reason = True, None
    elif token is None:
        allowed, reason = (False, "no token was given") if gated else (None, None)
    else:
        allowed, reason = _auth_check(repo_id, token, endpoint, timeout)
    return Access(repo_id, True, gated, allowed, page, reason, rejected)


def model_facts(
    repo_id: str, token: str | None, *, endpoint: str, timeout: float = DEFAULT_TIMEOUT
) -> ModelFacts:
    """The repo's parameter count (safetensors metadata) and its config.json.

    config.json is downloaded into the standard HuggingFace cache (`hub_cache_dir()`), so a
    later run without the Hub (offline, or the Hub down) reuses it: then `from_cache` is
    True and the parameter count is unknown. Raises RepoNotFound, HubAccessDenied ("request
    access at <page>"), HubTokenRejected, or HubUnreachable when nothing is cached.
    """
    endpoint = _endpoint(endpoint)
    token = _checked_token(token)
    if _offline():
        return _cached_facts(repo_id, HubUnreachable(endpoint, OFFLINE_REASON))
    try:
        info = _model_info(repo_id, token, endpoint, timeout, ["safetensors", "gated"])
    except HubUnreachable as unreachable:
        return _cached_facts(repo_id, unreachable)
    except _TokenRejected:
        raise HubTokenRejected(_REJECTED.format(endpoint=endpoint)) from None
    if info is None:
        raise RepoNotFound(_not_found(repo_id, endpoint, token))
    path = _download_config(repo_id, token, endpoint, timeout)
    safetensors = info.safetensors
    return ModelFacts(
        repo_id=repo_id,
        parameters=int(safetensors.total) if safetensors is not None else None,
        parameter_dtypes=dict(safetensors.parameters) if safetensors is not None else {},
        config=_read_config(path, repo_id),
        gated=_gated(info.gated),
        config_path=path,
    )


# --- searching -------------------------------------------------------------------------------

# What a search shows of each model, as `expand` names the Hub's properties.
LISTING_PROPERTIES = ("downloads", "gated", "private", "safetensors", "cardData", "tags", "pipeline_tag")
TEXT_GENERATION = "text-generation"
MAX_LIST_PAGES = 10  # a mirror that pages by 1 cannot make a search send more requests than this


@dataclass(frozen=True)
class Listing:
    """One model as the Hub lists it: what `vllmctl search` shows before any estimate."""

    repo_id: str
    parameters: int | None  # the safetensors total; None without safetensors metadata
    parameter_dtypes: dict[str, int]
    gated: bool | None
    private: bool
    downloads: int | None  # the Hub's count over the last 30 days
    license: str | None  # the card's license (its license_name for "other"), else a license: tag
    pipeline_tag: str | None


@dataclass(frozen=True)
class Search:
    """The Hub's answer to a search."""

    listings: tuple[Listing, ...]
    # The Hub refused the token (401 Invalid credentials): the listings are what an
    # anonymous caller sees, private repos left out.
    token_rejected: bool = False


def list_params(query: str, limit: int, pipeline_tag: str = TEXT_GENERATION) -> dict[str, Any]:
    """The query `HfApi.list_models(search=query, pipeline_tag=..., sort="downloads",
    limit=limit, expand=LISTING_PROPERTIES)` sends, in its order (a test compares the two)."""
    return {
        "pipeline_tag": pipeline_tag,
        **({"search": query} if query else {}),  # list_models leaves an empty one out
        "sort": "downloads",
        "limit": limit,
        "expand": list(LISTING_PROPERTIES),
    }


def search_models(
    query: str,
    token: str | None,
    *,
    endpoint: str,
    limit: int,
    timeout: float = DEFAULT_TIMEOUT,
    pipeline_tag: str = TEXT_GENERATION,
) -> Search:
    """The most downloaded `pipeline_tag` models whose ids contain `query`, at most `limit`.

    A token the Hub refuses is dropped and the search asked again anonymously
    (`token_rejected`). Raises HubUnreachable, UsageError for a token a header cannot
    carry, ExternalError for any other refusal."""
    endpoint = _endpoint(endpoint)
    token = _checked_token(token)
    if _offline():
        raise HubUnreachable(endpoint, OFFLINE_REASON)
    params = list_params(query, limit, pipeline_tag)
    try:
        return Search(tuple(_listing(item) for item in _list(endpoint, params, token, timeout, limit)))
    except _TokenRejected:
        items = _list(endpoint, params, None, timeout, limit)
        return Search(tuple(_listing(item) for item in items), token_rejected=True)


def model_listing(
    repo_id: str, token: str | None, *, endpoint: str, timeout: float = DEFAULT_TIMEOUT
) -> Listing:
    """One repo as a search would list it (`model_info` with the same properties).
    Raises RepoNotFound, HubTokenRejected, HubUnreachable."""
    endpoint = _endpoint(endpoint)
    token = _checked_token(token)
    if _offline():
        raise HubUnreachable(endpoint, OFFLINE_REASON)
    try:
        info = _model_info(repo_id, token, endpoint, timeout, list(LISTING_PROPERTIES))
    except _TokenRejected:
        raise HubTokenRejected(_REJECTED.format(endpoint=endpoint)) from None
    if info is None:
        raise RepoNotFound(_not_found(repo_id, endpoint, token))
    if not hasattr(info, "id"):  # a mirror refused the metadata as gated: nothing more is known
        return Listing(repo_id, None, {}, True, False, None, None, None)
    return _listing(info)


def model_config(
    repo_id: str, token: str | None, *, endpoint: str, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """The repo's config.json, downloaded into the standard HuggingFace cache (the cached
    copy when the Hub cannot be reached). Raises HubAccessDenied for a gated repo the token
    may not download, RepoNotFound, HubTokenRejected, HubUnreachable, ExternalError (no
    config.json)."""
    endpoint = _endpoint(endpoint)
    token = _checked_token(token)
    if _offline():
        return _cached_facts(repo_id, HubUnreachable(endpoint, OFFLINE_REASON)).config
    try:
        return _read_config(_download_config(repo_id, token, endpoint, timeout), repo_id)
    except HubUnreachable as unreachable:
        return _cached_facts(repo_id, unreachable).config


def _list(endpoint: str, params: dict[str, Any], token: str | None, timeout: float, limit: int) -> list[Any]:
    """GET /api/models and the pages its Link headers point to, until `limit` models."""
    from huggingface_hub import get_session, hf_raise_for_status
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # documented there

    headers = build_hf_headers(token=token or False, library_name="vllmctl", library_version=_version())
    url: str | None = f"{endpoint}/api/models"
    query: dict[str, Any] | None = params
    items: list[Any] = []
    try:
        for _ in range(MAX_LIST_PAGES):
            assert url is not None
            response = get_session().get(url, params=query, headers=headers, timeout=timeout)
            hf_raise_for_status(response)
            items.extend(_page(response, endpoint))
            url, query = response.links.get("next", {}).get("url"), None  # the link holds the query
            if url is None or len(items) >= limit:
                break
    except VllmctlError:
        raise
    except Exception as error:
        if _token_rejected(error):
            raise _TokenRejected from None
        raise _translate(error, endpoint, timeout, "the model search") from None
    return items[:limit]


def _page(response: Any, endpoint: str) -> list[dict[str, Any]]:
    """One page of the list: the models in it (items without an id are skipped)."""
    try:
        page = response.json()
    except ValueError:
        page = None
    if not isinstance(page, list):
        raise ExternalError(
            f"{endpoint} did not answer the model search like a HuggingFace Hub (no JSON list); "
            "check HF_ENDPOINT."
        )
    return [item for item in page if isinstance(item, dict) and isinstance(item.get("id"), str)]


def _listing(item: Any) -> Listing:
    """A list item (a dict) or a ModelInfo as a Listing."""
    from huggingface_hub.hf_api import ModelInfo

    info = item if isinstance(item, ModelInfo) else ModelInfo(**{**item, "siblings": item.get("siblings")})  # type: ignore[no-untyped-call]
    safetensors = info.safetensors
    downloads = info.downloads
    return Listing(
        repo_id=str(info.id),
        parameters=int(safetensors.total) if safetensors is not None else None,
        parameter_dtypes=dict(safetensors.parameters) if safetensors is not None else {},
        gated=_gated(info.gated),
        private=bool(info.private),
        downloads=int(downloads) if isinstance(downloads, int) else None,
        license=_license(info),
        pipeline_tag=info.pipeline_tag,
    )


def _license(info: Any) -> str | None:
    """The model card's license (the named one when it says "other"), else its license: tag."""
    card = info.card_data
    said = getattr(card, "license", None) if card is not None else None
    if isinstance(said, list):
        said = ", ".join(str(s) for s in said if s) or None
    if said == "other" and getattr(card, "license_name", None):
        said = str(card.license_name)
    if said:
        return str(said)
    tags = [str(t).removeprefix("license:") for t in info.tags or () if str(t).startswith("license:")]
    return ", ".join(tags) or None


def download_file(
    repo_id: str, filename: str, token: str | None, *, endpoint: str, timeout: float = DEFAULT_TIMEOUT
) -> Path:
    """One file of the repo (its model info, then `HEAD` and `GET
    {endpoint}/{repo}/resolve/main/{filename}`), into the standard HuggingFace cache; the cached
    copy when the Hub cannot be reached or offline mode is on.

    Raises RepoNotFound, HubAccessDenied ("request access at <page>"), HubTokenRejected,
    FileNotInRepo, HubUnreachable (nothing cached), UsageError for a token an HTTP header
    cannot carry, ExternalError for any other refusal.
    """
    endpoint = _endpoint(endpoint)
    token = _checked_token(token)
    if _offline():
        return _cached_file(repo_id, filename, HubUnreachable(endpoint, OFFLINE_REASON))
    # The model info first, as model_facts does: hf_hub_download retries a HEAD it cannot send
    # five times with back-off (about 25 s against a refused port, minutes against a silent one)
    # before it looks in the cache; model_info fails at once. Its file list also says whether
    # the file is there, without a 404 to cache.
    try:
        info = _model_info(repo_id, token, endpoint, timeout, ["siblings"])
    except HubUnreachable as unreachable:
        return _cached_file(repo_id, filename, unreachable)
    except _TokenRejected:
        raise HubTokenRejected(_REJECTED.format(endpoint=endpoint)) from None
    if info is None:
        raise RepoNotFound(_not_found(repo_id, endpoint, token))
    siblings = getattr(info, "siblings", None)  # None: a gated mirror that hid the metadata
    if siblings is not None and filename not in {s.rfilename for s in siblings}:
        raise FileNotInRepo(f"{repo_id} has no {filename} on {endpoint}.")
    return _download(repo_id, filename, token, endpoint, timeout)


# --- the requests ----------------------------------------------------------------------------

_REJECTED = "{endpoint} rejected the HuggingFace token: it is invalid, expired or revoked."


class _TokenRejected(Exception):
    """The Hub answered 401 Invalid credentials: the token itself was refused."""


def _download(repo_id: str, filename: str, token: str | None, endpoint: str, timeout: float) -> Path:
    """hf_hub_download of one file into the cache, its failures as ours (see download_file)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.utils.tqdm import silent_tqdm

    page = page_url(repo_id, endpoint)
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            token=token or False,
            endpoint=endpoint,
            cache_dir=hub_cache_dir(),
            etag_timeout=timeout,
            library_name="vllmctl",
            library_version=_version(),
            tqdm_class=silent_tqdm,  # no progress bar on the user's terminal
        )
    except GatedRepoError:
        who = "this token has" if token else "no token was given, so vllmctl has"
        raise HubAccessDenied(
            f"{repo_id} is gated and {who} no access to its files: request access at {page}.", page
        ) from None
    except RepositoryNotFoundError:
        raise RepoNotFound(_not_found(repo_id, endpoint, token)) from None
    except LocalEntryNotFoundError as error:
        # The HEAD call failed and nothing is cached: its error is the cause.
        cause = error.__cause__
        reason = _unreachable_reason(cause, timeout) if cause is not None else None
        if reason is None:
            raise ExternalError(
                f"{endpoint} did not answer like a HuggingFace Hub for {filename} of {repo_id} "
                "(no X-Repo-Commit or ETag header); check HF_ENDPOINT."
            ) from None
        raise HubUnreachable(endpoint, reason) from None
    except EntryNotFoundError:
        raise FileNotInRepo(f"{repo_id} has no {filename} on {endpoint}.") from None
    except Exception as error:
        if _token_rejected(error):
            raise HubTokenRejected(_REJECTED.format(endpoint=endpoint)) from None
        raise _translate(error, endpoint, timeout, f"{filename} of {repo_id}") from None
    return Path(str(path))


def _model_info(repo_id: str, token: str | None, endpoint: str, timeout: float, expand: list[Any]) -> Any:
    """The repo's ModelInfo with the `expand` properties; None when the Hub does not show it."""
    from types import SimpleNamespace

    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    api = HfApi(endpoint=endpoint, token=token or False, library_name="vllmctl", library_version=_version())
    try:
        return api.model_info(repo_id, expand=expand, timeout=timeout)
    except GatedRepoError:
        # The Hub shows a gated repo's metadata to anyone; a mirror that refuses it with
        # GatedRepo still says the repo exists and is gated.
        return SimpleNamespace(gated=True, private=False, safetensors=None)
    except RepositoryNotFoundError:
        return None
    except Exception as error:
        if _token_rejected(error):
            raise _TokenRejected from None
        raise _translate(error, endpoint, timeout, f"the model info of {repo_id}") from None


def _auth_check(repo_id: str, token: str, endpoint: str, timeout: float) -> tuple[bool | None, str | None]:
    """GET /api/models/{repo}/auth-check with the token: (allowed, why not)."""
    from huggingface_hub import get_session, hf_raise_for_status
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # documented there

    headers = build_hf_headers(token=token, library_name="vllmctl", library_version=_version())
    url = f"{endpoint}/api/models/{repo_id}/auth-check"
    try:
        hf_raise_for_status(get_session().get(url, headers=headers, timeout=timeout))
    except GatedRepoError as error:
        return False, _server_words(error) or "the token is not on the repo's authorized list"
    except RepositoryNotFoundError:
        return False, "the Hub does not show the repo to this token"
    except Exception as error:
        if _token_rejected(error):
            return False, f"{endpoint} rejected the token (invalid, expired or revoked)"
        raise _translate(error, endpoint, timeout, f"the access check of {repo_id}") from None
    return True, None


def _download_config(repo_id: str, token: str | None, endpoint: str, timeout: float) -> Path:
    try:
        return _download(repo_id, CONFIG_FILE, token, endpoint, timeout)  # model_facts asked model_info
    except FileNotInRepo:
        raise ExternalError(
            f"{repo_id} has no {CONFIG_FILE} on {endpoint}; is it a transformers model?"
        ) from None


def _cached_facts(repo_id: str, unreachable: HubUnreachable) -> ModelFacts:
    """config.json from the cache when the Hub cannot be asked; else the HubUnreachable."""
    path = _cached_file(repo_id, CONFIG_FILE, unreachable)
    return ModelFacts(repo_id, None, {}, _read_config(path, repo_id), None, True, path)


def _cached_file(repo_id: str, filename: str, unreachable: HubUnreachable) -> Path:
    """The repo's `filename` from the cache when the Hub cannot be asked; else the HubUnreachable."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(
            str(
                hf_hub_download(
                    repo_id, filename, cache_dir=hub_cache_dir(), local_files_only=True, token=False
                )
            )
        )
    except (EntryNotFoundError, ValueError, OSError):
        raise HubUnreachable(
            unreachable.endpoint,
            f"{unreachable.reason}, and {repo_id}'s {filename} is not in {hub_cache_dir()}",
        ) from None


def _read_config(path: Path, repo_id: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ExternalError(f"{repo_id}'s {CONFIG_FILE} ({path}) cannot be read: {error}.") from None
    if not isinstance(data, dict):
        raise ExternalError(f"{repo_id}'s {CONFIG_FILE} ({path}) is not a JSON object.")
    return data


# --- errors ----------------------------------------------------------------------------------


def _translate(error: Exception, endpoint: str, timeout: float, what: str) -> VllmctlError:
    """An exception of huggingface_hub or its HTTP client as one of ours, in one sentence."""
    from huggingface_hub.errors import DisabledRepoError, HfHubHTTPError, HFValidationError

    if isinstance(error, HFValidationError):  # the repo id, checked before any request
        return UsageError(f"{what}: {' '.join(str(error).split())}")
    reason = _unreachable_reason(error, timeout)
    if reason is not None:
        return HubUnreachable(endpoint, reason)
    import httpx2

    if isinstance(error, httpx2.UnsupportedProtocol):
        return UsageError(f"HF_ENDPOINT {endpoint} is not an http:// or https:// URL.")
    if isinstance(error, httpx2.LocalProtocolError):  # its text would quote the header: the token
        return UsageError(f"the request for {what} to {endpoint} could not be sent: a header is malformed.")
    if isinstance(error, DisabledRepoError):
        return ExternalError(f"{endpoint} refused {what}: the repo is disabled.")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code
        words = _server_words(error)
        return ExternalError(f"{endpoint} refused {what}: {status}{f' {words}' if words else ''}.")
    if isinstance(error, httpx2.HTTPError):
        return ExternalError(f"asking {endpoint} for {what} failed: {type(error).__name__}.")
    raise error


def _unreachable_reason(error: BaseException, timeout: float) -> str | None:
    """Why the Hub could not be asked, or None when it was and it answered."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return OFFLINE_REASON
    if isinstance(error, httpx2.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(error, httpx2.ProxyError):
        return f"the proxy failed ({_os_words(error)})"
    if isinstance(error, (httpx2.NetworkError, httpx2.RemoteProtocolError)):
        return _os_words(error)
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code
        if status >= 500 or status == 429:
            phrase = error.response.reason_phrase or (
                "Too Many Requests" if status == 429 else "server error"
            )
            return f"it answered {status} {phrase}"
    return None


def _os_words(error: BaseException) -> str:
    """The innermost OS error's words ("connection refused"), not the client's wrapper text."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[:1].lower() + seen.strerror[1:]
        seen = seen.__cause__ or seen.__context__
    text = str(error).strip()
    # "[Errno 111] Connection refused" -> "connection refused"
    if text.startswith("[Errno") and "]" in text:
        text = text.split("]", 1)[1].strip()
    return (text[:1].lower() + text[1:]) if text else type(error).__name__


def _token_rejected(error: Exception) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    if not isinstance(error, HfHubHTTPError) or error.response.status_code != 401:
        return False
    said = error.response.headers.get("X-Error-Message") or error.server_message or ""
    return INVALID_CREDENTIALS.lower() in said.lower()


def _server_words(error: HfHubHTTPError) -> str:
    """The Hub's own message (X-Error-Message, else the body's error), on one line."""
    said = error.response.headers.get("X-Error-Message") or error.server_message or ""
    return " ".join(said.split())[:300]


def _not_found(repo_id: str, endpoint: str, token: str | None) -> str:
    seen = "the token cannot see it" if token else "no token was given"
    return f"{repo_id} is not a model on {endpoint} (or it is private and {seen})."


# --- small helpers ---------------------------------------------------------------------------


def _endpoint(endpoint: str) -> str:
    return (endpoint or DEFAULT_ENDPOINT).strip().rstrip("/")


def _checked_token(token: str | None) -> str | None:
    """The token to send (None: anonymous); refused, unquoted, when a header cannot carry it."""
    if not token:
        return None
    from vllmctl.apis.openai_api import api_key_problem

    problem = api_key_problem(token)
    if problem:
        raise UsageError(
            f"the HuggingFace token {problem}, which an HTTP header cannot carry; it was not sent."
        )
    return token


def _offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, but read now (the library reads it at import)."""
    from huggingface_hub import constants

    words = {"1", "ON", "YES", "TRUE"}
    now = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").upper()
    return now in words or bool(constants.is_offline_mode())


def _gated(value: Any) -> bool | None:
    """The Hub's gated field ("auto", "manual" or false) as a boolean; None when absent."""
    if value is None:
        return None
    if value is False or value is True:
        return value
    return bool(str(value).strip()) if isinstance(value, str) else None


def _version() -> str:
    from vllmctl import __version__

    return __version__
