"""A small client for the OpenAI-compatible API the router serves: /v1/models, chat and
legacy completions, streamed as Server-Sent Events (httpx + httpx-sse) with timings.

httpx is imported inside the functions: `vllmctl --help` must not pay for it. Prompts go
into the JSON body as given (httpx encodes it), so quotes, newlines and unicode arrive
intact. Failures: an HTTP error answer to a completion is a `CompletionFailed` (exit 1)
carrying the server's own text; an endpoint that cannot be reached, or a /v1/models that
fails, is an ExternalError (exit 3).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from vllmctl.core.errors import EXIT_NEGATIVE, ExternalError, UsageError, VllmctlError

if TYPE_CHECKING:
    import httpx

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"
CONNECT_TIMEOUT = 10.0
MODELS_TIMEOUT = 30.0
# Between two bytes of an answer: a big model's first token after a long prompt can take a while.
READ_TIMEOUT = 300.0
ERROR_TEXT_LIMIT = 2000

Card = dict[str, Any]


class CompletionFailed(VllmctlError):
    """The server answered a completion request with an error (exit 1)."""

    exit_code = EXIT_NEGATIVE

    def __init__(
        self, message: str, *, status: int | None = None, text: str = "", served: list[str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.text = text  # the server's own words
        self.served = served  # for a 404: the models the server does serve


class Usage(NamedTuple):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(NamedTuple):
    """One answer, with when its pieces arrived (seconds from sending the request)."""

    text: str
    finish_reason: str | None
    usage: Usage | None
    seconds: float  # until the answer ended
    first_token: float | None  # streaming only: when the first text arrived
    last_token: float | None
    pieces: int  # text pieces received (streamed chunks with text; 1 without streaming)
    request_id: str | None = None  # the answer's X-Request-Id (router and engine log it)

    @property
    def completion_tokens(self) -> int | None:
        return self.usage.completion_tokens if self.usage else None

    @property
    def tokens_per_second(self) -> float | None:
        """The generation rate: tokens after the first over the time they took to come
        (streaming), else completion tokens over the whole request."""
        tokens = self.completion_tokens
        if tokens is None:
            return None
        if self.first_token is not None and self.last_token is not None and tokens > 1:
            span = self.last_token - self.first_token
            if span > 0:
                return (tokens - 1) / span
        return tokens / self.seconds if self.seconds > 0 else None


class CompletionRequest(NamedTuple):
    model: str
    prompt: str
    chat: bool = True  # /v1/chat/completions with one user message; False: /v1/completions
    max_tokens: int | None = 64  # None: not sent, so the server allows what the context has left
    temperature: float | None = None
    stream: bool = True
    # Chat: the whole conversation to send ({"role", "content"} each) instead of `prompt`
    # as one user message (vllmctl chat's turns).
    messages: tuple[Mapping[str, Any], ...] | None = None
    # More body fields, sent as given: vLLM's sampling extras (`ignore_eos`, `min_tokens`).
    extra: Mapping[str, Any] | None = None

    @property
    def path(self) -> str:
        return CHAT_PATH if self.chat else COMPLETIONS_PATH

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.chat:
            if self.messages is not None:
                body["messages"] = [dict(m) for m in self.messages]
            else:
                body["messages"] = [{"role": "user", "content": self.prompt}]
        else:
            body["prompt"] = self.prompt
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # token counts in a last chunk
        if self.extra:
            body.update(self.extra)
        return body


def normalize_base_url(url: str) -> str:
    """`https://host`, `https://host/` and `https://host/v1` all mean the same endpoint."""
    url = url.strip().rstrip("/")
    return url.removesuffix("/v1")


class Client:
    """One OpenAI-compatible endpoint (base URL without /v1, optional API key) over one
    connection pool; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        read_timeout: float = READ_TIMEOUT,
        max_connections: int = 16,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        import httpx

        self.base_url = normalize_base_url(base_url)
        self.label = label or self.base_url  # who answers, in messages: "the router", or the URL
        problem = api_key_problem(api_key) if api_key else None
        if problem:
            raise UsageError(f"the API key {problem}, which an HTTP header cannot carry; it was not sent.")
        # `headers`: sent with every request (test-completions --session's session header).
        headers = {**(headers or {}), **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            # Plain http uses no TLS, and loading the CA bundle anyway costs ~100 ms.
            verify=self.base_url.startswith("https:"),
            # A proxy from the environment must not get between us and a local port-forward.
            trust_env=not is_loopback_url(self.base_url),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def models(self) -> list[Card]:
        """GET /v1/models: the model cards (id, owned_by, max_model_len...)."""
        import httpx

        with self._reaching(MODELS_PATH):
            response = self._http.get(MODELS_PATH, timeout=MODELS_TIMEOUT)
        if response.status_code != httpx.codes.OK:
            raise ExternalError(
                f"{self.label} answered {_status_line(response)} to GET {MODELS_PATH}: {error_text(response)}"
            )
        try:
            cards = response.json()["data"]
        except (ValueError, KeyError, TypeError):
            raise ExternalError(
                f"{self.label} did not answer GET {MODELS_PATH} with a model list: {_snippet(response.text)}"
            ) from None
        return [c for c in cards if isinstance(c, dict)] if isinstance(cards, list) else []

    def complete(
        self, request: CompletionRequest, on_text: Callable[[str], None] | None = None
    ) -> Completion:
        """Send one completion; with streaming, `on_text` gets each piece of text as it arrives."""
        start = time.perf_counter()
        with self._reaching(request.path):
            if request.stream:
                return self._stream(request, start, on_text)
            response = self._http.post(request.path, json=request.body())
            seconds = time.perf_counter() - start
        if response.is_error:
            self._fail(request, response)
        try:
            body = response.json()
            choice = body["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ExternalError(
                f"{self.label} answered {request.path} without a completion: {_snippet(response.text)}"
            ) from None
        text = _choice_text(choice, streamed=False)
        if on_text is not None and text:
            on_text(text)
        request_id = response.headers.get("x-request-id")
        return Completion(text, choice.get("finish_reason"), _usage(body), seconds, None, None, 1, request_id)

    def _stream(
        self, request: CompletionRequest, start: float, on_text: Callable[[str], None] | None
    ) -> Completion:
        from httpx_sse import EventSource, SSEError

        pieces: list[str] = []
        finish: str | None = None
        usage: Usage | None = None
        first = last = None
        headers = {"Accept": "text/event-stream"}
        with self._http.stream("POST", request.path, json=request.body(), headers=headers) as response:
            request_id = response.headers.get("x-request-id")
            if response.is_error:
                response.read()
                self._fail(request, response)
            try:
                for event in EventSource(response).iter_sse():
                    if event.data == "[DONE]":
                        break
                    chunk = _json(event.data)
                    if isinstance(chunk, dict) and chunk.get("error"):  # vLLM's mid-stream failure
                        raise CompletionFailed(
                            f"{request.model}: the server failed mid-answer: {_error_message(chunk)}",
                            text=_error_message(chunk),
                        )
                    if not isinstance(chunk, dict):
                        continue
                    usage = _usage(chunk) or usage
                    for choice in chunk.get("choices") or []:
                        text = _choice_text(choice, streamed=True)
                        if text:
                            now = time.perf_counter() - start
                            first = now if first is None else first
                            last = now
                            pieces.append(text)
                            if on_text is not None:
                                on_text(text)
                        finish = choice.get("finish_reason") or finish
            except SSEError:
                raise ExternalError(
                    f"{self.label} did not answer {request.path} with an event stream "
                    f"(Content-Type {response.headers.get('content-type')!r})."
                ) from None
        seconds = time.perf_counter() - start
        return Completion("".join(pieces), finish, usage, seconds, first, last, len(pieces), request_id)

    def _fail(self, request: CompletionRequest, response: httpx.Response) -> None:
        text = error_text(response)
        status = response.status_code
        served: list[str] | None = None
        message = f"{request.model}: {self.label} answered {_status_line(response)}: {text}"
        if status == 404:
            try:
                served = [str(c.get("id")) for c in self.models()]
            except ExternalError:
                served = None
            if served is not None:
                listing = ", ".join(served) if served else "none"
                message += f" The server serves: {listing}."
        raise CompletionFailed(message, status=status, text=text, served=served)

    @contextmanager
    def _reaching(self, path: str) -> Iterator[None]:
        """Connection-level failures as one sentence (ExternalError)."""
        import httpx

        where = f"{self.base_url}{path}"
        try:
            yield
        except httpx.TimeoutException as e:
            what = "connect" if isinstance(e, httpx.ConnectTimeout) else "answer"
            raise ExternalError(f"{where} did not {what} in time ({type(e).__name__}).") from None
        except httpx.ConnectError as e:
            raise ExternalError(f"cannot connect to {where}: {_reason(e)}.") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            raise ExternalError(f"the connection to {where} broke: {_reason(e)}.") from None
        except httpx.UnsupportedProtocol:
            raise UsageError(f"{self.base_url} is not an http:// or https:// URL.") from None
        except httpx.LocalProtocolError:  # its text would quote the offending header: the key
            raise UsageError(f"the request to {where} could not be sent: a header is malformed.") from None


def api_key_problem(key: str) -> str | None:
    """Why `key` cannot go into an Authorization header (None: it can). Never quotes it."""
    for char in key:
        if char in "\r\n":
            return "holds a line break (a file with CRLF line ends?)"
        if not char.isascii():
            return "holds a non-ASCII character"
        if char in " \t":
            return "holds a space or tab"
        if not char.isprintable():
            return "holds a control character"
    return None


def list_models(base_url: str, api_key: str | None = None, *, label: str | None = None) -> list[Card]:
    """GET /v1/models at base_url: the model cards the server lists."""
    with Client(base_url, api_key, label=label) as client:
        return client.models()


# --- load check -------------------------------------------------------------------------------


class LoadResult(NamedTuple):
    completions: list[Completion]
    failures: list[VllmctlError]
    seconds: float  # wall time of the whole run
    concurrency: int

    def summary(self) -> dict[str, Any]:
        """Counts, p50/p95 of latency and time to first token, and overall throughput."""
        done = self.completions
        latencies = sorted(c.seconds for c in done)
        firsts = sorted(c.first_token for c in done if c.first_token is not None)
        tokens = sum(c.completion_tokens or 0 for c in done)
        wall = self.seconds
        return {
            "requests": len(done) + len(self.failures),
            "failed": len(self.failures),
            "concurrency": self.concurrency,
            "seconds": round(wall, 4),
            "latency_p50": _rounded(percentile(latencies, 50)),
            "latency_p95": _rounded(percentile(latencies, 95)),
            "ttft_p50": _rounded(percentile(firsts, 50)),
            "ttft_p95": _rounded(percentile(firsts, 95)),
            "completion_tokens": tokens,
            "tokens_per_second": round(tokens / wall, 2) if wall > 0 else None,
            "requests_per_second": round(len(done) / wall, 2) if wall > 0 else None,
        }


def run_load(client: Client, request: CompletionRequest, *, repeat: int, concurrency: int) -> LoadResult:
    """Send `repeat` requests, `concurrency` at a time; failures are collected, not raised."""
    from concurrent.futures import ThreadPoolExecutor

    lock = threading.Lock()
    completions: list[Completion] = []
    failures: list[VllmctlError] = []

    def one(_: int) -> None:
        try:
            completion = client.complete(request)
        except VllmctlError as e:
            with lock:
                failures.append(e)
            return
        with lock:
            completions.append(completion)

    workers = max(1, min(concurrency, repeat))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vllmctl load") as pool:
        try:
            list(pool.map(one, range(repeat)))
        except BaseException:  # Ctrl-C: do not start what is still queued
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return LoadResult(completions, failures, time.perf_counter() - start, workers)


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted values (None for none)."""
    if not values:
        return None
    rank = max(1, math.ceil(q / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


# --- helpers ----------------------------------------------------------------------------------


def error_text(response: httpx.Response) -> str:
    """The server's own words from an error answer, in any of the shapes routers and vLLM use."""
    try:
        body = response.json()
    except ValueError:
        return _snippet(response.text) or response.reason_phrase
    return _error_message(body) if isinstance(body, dict) else _snippet(response.text)


def _error_message(body: dict[str, Any]) -> str:
    # {"error": "text"} (router), {"error": {"message": ...}} (vLLM, OpenAI),
    # {"object": "error", "message": ...} (older vLLM), {"detail": ...} (FastAPI).
    error = body.get("error", body)
    if isinstance(error, str):
        return _snippet(error)
    if isinstance(error, dict):
        for key in ("message", "detail", "msg"):
            if error.get(key):
                return _snippet(str(error[key]))
    return _snippet(json.dumps(body, ensure_ascii=False))


def _choice_text(choice: Any, *, streamed: bool) -> str:
    if not isinstance(choice, dict):
        return ""
    if "text" in choice:  # legacy completions
        return str(choice.get("text") or "")
    part = choice.get("delta" if streamed else "message") or {}
    return str(part.get("content") or "") if isinstance(part, dict) else ""


def _usage(body: Any) -> Usage | None:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    try:
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        return Usage(prompt, completion, int(usage.get("total_tokens") or prompt + completion))
    except (TypeError, ValueError):
        return None


def is_loopback_url(url: str) -> bool:
    """Whether `url`'s host is this machine (localhost, 127.0.0.0/8, ::1): a port-forward."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _status_line(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "..."


def _reason(error: Exception) -> str:
    """The innermost cause's words ("connection refused"), not httpx's wrapper text."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[:1].lower() + seen.strerror[1:]
        seen = seen.__cause__ or seen.__context__
    return str(error) or type(error).__name__


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
