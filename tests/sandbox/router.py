"""A stand-in for the vLLM production-stack router: the OpenAI-compatible endpoint clients talk to.

In a real deployment the router (`vllm_router`, production-stack) answers some requests itself and
forwards the rest to vLLM engine pods, which do the authentication, validation and generation. This
stand-in plays both parts in one aiohttp application, so that a real HTTP client (vllmctl, `requests`,
the `openai` package) sees the status codes, bodies and streaming framing it would see through a real
router, without a GPU or a model.

What it serves, and which real behaviour each part follows:

- `GET /v1/models` - answered by the router itself from what service discovery found on the engines,
  so it is NOT authenticated (the router never checks the API key; only engines do). Each card carries
  the fields a vLLM engine returns and the router passes through: `id`, `object: "model"`, `created`,
  `owned_by: "vllm"`, `root` (here the id itself; vLLM puts the model path there), `parent: null`
  (for a LoRA adapter, listed by vLLM beside its base model: the base model's first served name,
  as vLLM's serving_models puts it; the adapters come from `adapters`, see tests/sandbox/lora.py),
  `max_model_len` and a one-entry `permission` list. `created` is when this stand-in first saw the id.
- `POST /v1/completions`, `POST /v1/chat/completions` - the router's checks first, in its order and
  with its flat error shape `{"error": "<message>"}`: body not JSON or not an object -> 400, no
  `model` -> 400, a model never served -> 404, a model served before but not now (scaled to zero)
  -> 503. Then the engine's: with a key set, `/v1/*` requests need `Authorization: Bearer <key>`,
  else 401 `{"error": "Unauthorized"}` (vLLM's AuthenticationMiddleware). Then the engine's request
  validation, answered in recent vLLM's error shape
  `{"error": {"message", "type": "BadRequestError", "param", "code": 400}}` (older vLLM releases used
  a flat `{"object": "error", "message", "type", "param", "code"}` shape; not reproduced).
- Generation is fake but deterministic. The completion text is `"echo: " + prompt` followed by eight
  filler words (" lorem ipsum ..."); for chat it echoes the last `user` message instead. A *token* is
  a run of non-whitespace with the whitespace before it (`tokenize`), so the tokens of any text
  concatenate back to it exactly and a prompt with quotes, newlines, unicode or `"}` comes back byte
  for byte. Prompt tokens are counted the same way (for chat: over every message's content, without
  any chat-template overhead). The output stops at its natural end (`finish_reason: "stop"`) or after
  `max_tokens` tokens (`"length"`). As in vLLM, `max_tokens` defaults to 16 for completions and to
  whatever fits in `max_model_len` for chat (`max_completion_tokens` wins over `max_tokens` there),
  must be at least 1, and prompt plus `max_tokens` may not exceed `max_model_len` (400).
- vLLM's length extras, on both endpoints, streamed or not: `ignore_eos: true` never stops at the
  natural end, so exactly `max_tokens` tokens come back (the filler words again and again past the
  end; `finish_reason: "length"`), which is how benchmarks fix the output length; `min_tokens: N`
  goes on the same way until there are at least N, then stops as usual. As vLLM declares them
  (`ignore_eos: bool = False`, `min_tokens: int = 0`), any other type, null included, is a 400 (the
  type check is stricter than pydantic's lax mode, which would take "true" or 1), and so are
  `min_tokens` below 0 or above `max_tokens` (vLLM's SamplingParams messages, after the context check,
  with chat's default `max_tokens`).
- Streaming (`"stream": true`): Server-Sent Events, one `data: <json>\\n\\n` per token in vLLM's chunk
  shapes (`text_completion` chunks with `text`; `chat.completion.chunk` with a first
  `{"role": "assistant", "content": ""}` delta, then `{"content": ...}` deltas), the finish reason on
  the chunk of the last token (as vLLM does); with `stream_options.include_usage` every chunk carries
  `"usage": null` (as OpenAI documents it; vLLM's chat chunks leave the key out) and a last chunk has
  `"choices": []` and the usage; then `data: [DONE]\\n\\n`.
  `stream_options` without streaming is a 400, as in vLLM.
- Delays: `ttft` seconds before the first token, then `1 / tokens_per_second` between tokens (0 means
  none), with `asyncio.sleep`; the same total for non-streaming answers. Both are read per request.
- `GET /health` - the router's answer: 200 `{"status": "healthy"}` (a vLLM *engine* answers 200 with
  an empty body; the router does not).
- `GET /metrics` - Prometheus text format with some of the router's own metric names:
  `vllm:num_incoming_requests_total{model}` (every request that named a model, found or not, as the
  router counts), `vllm:input_tokens_total` / `vllm:output_tokens_total{server,model}` (non-streaming
  answers only, as the router counts them from the response body), `vllm:num_requests_running{server}`
  and `vllm:healthy_pods_total{server}`. There is one pretend engine, `server="http://sandbox-engine"`.
- Every response carries `X-Request-Id` (the request's own, or a new one), as router and engine do.
- Routing among the model's engines (when `endpoints` says which are Ready: `http://<pod IP>:8000`
  each, as the router's pod-IP service discovery finds them), by the routing logic the deployed
  router runs (`routing`: its `--routing-logic` and `--session-key` args). `session`, as the real
  SessionRouter (vllm_router/routers/routing_logic.py, 0.1.8 to 0.1.12): the session id is the
  header named by the session key (any case), else the body's key of that name; with one, a
  consistent hash ring over the endpoints picks the engine, so one session keeps its engine
  while the set of engines stays; without one, the engine with the fewest requests so far (the
  router picks the lowest QPS). Any other logic: round robin. The ring is this stand-in's own
  (MD5 points, 160 per endpoint), not uhashring's ketama, so a session maps to the same engine
  here and there only by chance. Which engine served is NOT put in the response (the real router
  does not say so either): it is in `routed` (request id, model, session id, engine URL), and the
  router's pod log gets the real router's INFO line `Routing request <id> with session id <id or
  None> to <url> at <time>, process time = <s>` (`log_lines`), the one place a user of a real
  router can see it.

For tests: `requests` counts requests per path (whatever their outcome), and `fail_next()` makes the
next N requests (optionally on one path only) fail with a chosen status and `{"error": message}`.

Left out: real tokenization and chat templates, the other sampling parameters (`temperature`,
`stop`, `n`, `seed`, logprobs, `echo`...; ignored), token-id prompts, tool calls and reasoning
output, embeddings, the Responses and audio APIs, `/version`, `/engines`, sleep/wake-up, the
prefixaware and kvaware logics (round robin here), failover to another engine, aliases, the
router's latency and QPS gauges and histograms, and mid-stream failures.

All state is touched only from the event loop that serves the app (see loop.py).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

# The one pretend engine every model is served by, as the `server` label of the metrics.
SERVER = "http://sandbox-engine"
ECHO_PREFIX = "echo: "
FILLER = (" lorem", " ipsum", " dolor", " sit", " amet", " consectetur", " adipiscing", " elit")
# vLLM's default `max_tokens` for /v1/completions (chat has none: it fills the context).
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
# The Prometheus text exposition format, as prometheus_client labels it.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Whitespace then non-whitespace, or trailing whitespace alone: the pieces always re-join to the text.
_TOKEN_RE = re.compile(r"\s*\S+|\s+")

# vLLM and the router write JSON as UTF-8, not \u escapes; a client must cope with either.
_dumps = partial(json.dumps, ensure_ascii=False)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tokenize(text: str) -> list[str]:
    """The stand-in's tokens: each non-whitespace run with the whitespace before it."""
    return _TOKEN_RE.findall(text)


def output_tokens(echoed: str) -> list[str]:
    """Everything the fake model would say if not cut short: the echo, then the filler."""
    return [*tokenize(ECHO_PREFIX + echoed), *FILLER]


def padded(tokens: list[str], length: int) -> list[str]:
    """`tokens`, then the filler words again and again until there are `length` of them (what
    the fake model says when ignore_eos or min_tokens keep it going past its natural end)."""
    more = max(0, length - len(tokens))
    return [*tokens, *(FILLER[i % len(FILLER)] for i in range(more))]


def _length_options(body: dict[str, Any]) -> tuple[bool, int]:
    """(ignore_eos, min_tokens) of a request, type-checked as vLLM's request models declare
    them (`ignore_eos: bool = False`, `min_tokens: int = 0`; null is no value there either)."""
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise engine_error(
            f"ignore_eos: Input should be a valid boolean, got {_dumps(ignore_eos)}.", "ignore_eos"
        )
    min_tokens = body.get("min_tokens", 0)
    if isinstance(min_tokens, bool) or not isinstance(min_tokens, int):
        raise engine_error(
            f"min_tokens: Input should be a valid integer, got {_dumps(min_tokens)}.", "min_tokens"
        )
    return ignore_eos, min_tokens


class RequestError(Exception):
    """An error answer, raised from deep in a handler and turned into a response at its top."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def router_error(status: int, message: str) -> RequestError:
    """The router's own error shape: a flat string under "error"."""
    return RequestError(status, {"error": message})


def engine_error(message: str, param: str | None = None) -> RequestError:
    """A vLLM engine's validation error, in its current ErrorResponse/ErrorInfo shape."""
    info = {"message": message, "type": "BadRequestError", "param": param, "code": 400}
    return RequestError(400, {"error": info})


@dataclass
class Fault:
    """Requests still to fail, how, and on which path (None: any)."""

    remaining: int
    status: int
    message: str
    path: str | None


@dataclass
class Generation:
    """One prompt's answer: the tokens to send and why they stop."""

    prompt_tokens: int
    tokens: list[str]
    finish_reason: str


@dataclass
class Routed:
    """Where the router sent one inference request."""

    request_id: str
    model: str
    session_id: str | None
    url: str


class HashRing:
    """A consistent hash ring over engine URLs: a key keeps its URL while the URLs stay, and
    only the keys of a removed URL move (what uhashring gives the real SessionRouter)."""

    POINTS = 160

    def __init__(self, nodes: list[str]) -> None:
        self._ring = sorted((_point(f"{node}-{i}"), node) for node in nodes for i in range(self.POINTS))
        self._keys = [point for point, _ in self._ring]

    def get_node(self, key: str) -> str:
        index = bisect.bisect(self._keys, _point(key)) % len(self._ring)
        return self._ring[index][1]


def _point(text: str) -> int:
    return int.from_bytes(hashlib.md5(text.encode(), usedforsecurity=False).digest()[:4], "big")


class RouterStandIn:
    """The router and its engines, as one aiohttp app. See the module docstring for the behaviour."""

    def __init__(
        self,
        models: Callable[[], list[str]],
        api_key: Callable[[], str | None],
        ttft: float = 0.0,
        tokens_per_second: float = 0.0,
        max_model_len: int = 4096,
        endpoints: Callable[[str], list[str]] | None = None,
        routing: Callable[[], tuple[str | None, str | None]] | None = None,
        on_log: Callable[[int | None, str], None] | None = None,
        adapters: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self._models = models
        self._adapters = adapters or dict  # LoRA adapter id -> its base model's served name
        self._api_key = api_key
        # model -> its Ready engines' URLs; (routing logic, session key) of the deployed router
        self._endpoints = endpoints or (lambda model: [SERVER])
        self._routing = routing or (lambda: (None, None))
        self.routed: list[Routed] = []  # every routing decision, in order (for tests)
        self.log_lines: list[str] = []  # the router's INFO lines about them, as its pod logs them
        # Each line also goes to on_log with the client's port: the sandbox's port-forward knows
        # which router pod that connection came through, and adds the line to that pod's log.
        self._on_log = on_log or (lambda port, line: None)
        self._turn = 0
        self._sent: Counter[str] = Counter()  # requests per engine URL
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second  # 0: no delay between tokens
        self.max_model_len = max_model_len
        self.requests: Counter[str] = Counter()  # requests per path, whatever their outcome
        self._fault: Fault | None = None
        # Every model id ever served, with when it was first seen: the router answers 503 rather
        # than 404 for a model it knows but that has no engine now, and `created` stays stable.
        self._first_seen: dict[str, int] = {}
        self._parents: dict[str, str] = {}
        self._incoming: Counter[str] = Counter()
        self._input_tokens: Counter[str] = Counter()
        self._output_tokens: Counter[str] = Counter()
        self._running = 0

    # --- test controls ---

    def fail_next(
        self, count: int, status: int = 503, message: str = "injected fault", path: str | None = None
    ) -> None:
        """Answer the next `count` requests (to `path` only, if given) with `status` and
        `{"error": message}`, before any other check. Replaces an earlier, unfinished fault."""
        self._fault = Fault(count, status, message, path) if count > 0 else None

    # --- the app ---

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count_and_fault])
        app.on_response_prepare.append(self._add_request_id)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    @web.middleware
    async def _count_and_fault(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests[request.path] += 1
        fault = self._fault
        if fault is not None and fault.path in (None, request.path):
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._fault = None
            return web.json_response({"error": fault.message}, status=fault.status, dumps=_dumps)
        try:
            return await handler(request)
        except RequestError as err:
            return web.json_response(err.body, status=err.status, dumps=_dumps)

    async def _add_request_id(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Request-Id"] = _request_id(request)

    def _served(self) -> list[str]:
        """The model ids served now, without repeats (the router lists each once)."""
        self._parents = dict(self._adapters())
        served = list(dict.fromkeys([*self._models(), *self._parents]))
        now = int(time.time())
        for model in served:
            self._first_seen.setdefault(model, now)
        return served

    async def _list_models(self, request: web.Request) -> web.Response:
        cards = [self._model_card(model) for model in self._served()]
        return web.json_response({"object": "list", "data": cards}, dumps=_dumps)

    def _model_card(self, model: str) -> dict[str, Any]:
        created = self._first_seen[model]
        permission = {
            "id": f"modelperm-{uuid.uuid5(uuid.NAMESPACE_URL, model).hex}",
            "object": "model_permission",
            "created": created,
            "allow_create_engine": False,
            "allow_sampling": True,
            "allow_logprobs": True,
            "allow_search_indices": False,
            "allow_view": True,
            "allow_fine_tuning": False,
            "organization": "*",
            "group": None,
            "is_blocking": False,
        }
        parent = self._parents.get(model)
        return {
            "id": model,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": model,
            "parent": parent,
            "max_model_len": self.max_model_len,
            "permission": [permission],
        }

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    # --- the router's part, then the engine's ---

    async def _route(self, request: web.Request) -> tuple[dict[str, Any], str]:
        """The router's checks on an inference request: the JSON body and its model."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
            raise router_error(400, "Invalid request: request body must be valid JSON.") from exc
        if not isinstance(body, dict):
            raise router_error(400, "Invalid request: request body must be a JSON object.")
        model = body.get("model")
        if model is None:
            raise router_error(400, "Invalid request: missing 'model' in request body.")
        if not isinstance(model, str):
            raise router_error(400, "Invalid request: 'model' must be a string.")
        served = self._served()
        self._incoming[model] += 1  # the router counts before it knows whether the model exists
        if model not in served:
            if model in self._first_seen:
                raise router_error(
                    503, f"Model '{model}' is temporarily unavailable. Please try again later."
                )
            raise router_error(
                404, f"Model '{model}' not found. Available models can be listed at /v1/models."
            )
        self._pick_engine(request, body, model)
        self._authenticate(request)
        return body, model

    def _pick_engine(self, request: web.Request, body: dict[str, Any], model: str) -> None:
        """The router's choice of engine (see the module docstring), recorded and logged."""
        started = time.time()
        # An adapter is served by its base model's engines (the real router learns it from
        # each engine's /v1/models).
        urls = sorted(self._endpoints(self._parents.get(model, model))) or [SERVER]
        logic, key = self._routing()
        session = None
        if logic == "session" and key:
            value = request.headers.get(key)
            session = value if value is not None else body.get(key)
            session = None if session is None else str(session)
        if session is not None:
            url = HashRing(urls).get_node(session)
        elif logic == "session":
            url = min(urls, key=lambda u: self._sent[u])
        else:
            url = urls[self._turn % len(urls)]
            self._turn += 1
        self._sent[url] += 1
        request_id = _request_id(request)
        self.routed.append(Routed(request_id, model, session, url))
        now = time.time()
        line = (
            f"Routing request {request_id} with session id {session if session is not None else 'None'} "
            f"to {url} at {now}, process time = {now - started:.4f}"
        )
        self.log_lines.append(line)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self._on_log(peer[1] if peer else None, f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] INFO: {line}")

    def _authenticate(self, request: web.Request) -> None:
        """vLLM's check: "Bearer" (any case), a space, then exactly the key. An empty key is no key."""
        key = self._api_key()
        if not key:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token != key:
            raise RequestError(401, {"error": "Unauthorized"})

    def _stream_settings(self, body: dict[str, Any]) -> tuple[bool, bool]:
        """(stream, include_usage), validated as vLLM does."""
        stream = body.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise engine_error("'stream' must be a boolean", "stream")
        options = body.get("stream_options")
        if options is None:
            return stream, False
        if not stream:
            raise engine_error("Stream options can only be defined when `stream=True`.", "stream_options")
        if not isinstance(options, dict):
            raise engine_error("'stream_options' must be an object", "stream_options")
        return stream, bool(options.get("include_usage"))

    def _generate(self, echoed: str, prompt_tokens: int, max_tokens: Any, body: dict[str, Any]) -> Generation:
        """Apply vLLM's length rules (max_tokens, the context, ignore_eos, min_tokens) to the fake
        output for one prompt."""
        ignore_eos, min_tokens = _length_options(body)
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise engine_error(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
        room = self.max_model_len - prompt_tokens
        if max_tokens is None:
            if room < 1:
                raise engine_error(
                    f"This model's maximum context length is {self.max_model_len} tokens, and the "
                    f"prompt has {prompt_tokens}: no room is left for the completion.",
                    "messages",
                )
            max_tokens = room
        elif max_tokens > room:
            raise engine_error(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, "
                f"{max_tokens} in the completion). Please reduce the length of the prompt or completion.",
                "max_tokens",
            )
        # vLLM's SamplingParams checks, after the context check (with chat's default max_tokens).
        if min_tokens < 0:
            raise engine_error(f"min_tokens must be greater than or equal to 0, got {min_tokens}.")
        if min_tokens > max_tokens:
            raise engine_error(
                f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}."
            )
        tokens = output_tokens(echoed)
        # ignore_eos: the model never stops by itself, so it runs to max_tokens; min_tokens: it
        # may stop only once it has that many. Past the natural end, it says more filler.
        end = max_tokens if ignore_eos else max(len(tokens), min_tokens)
        tokens = padded(tokens, end)
        if len(tokens) > max_tokens or ignore_eos:
            return Generation(prompt_tokens, tokens[:max_tokens], "length")
        return Generation(prompt_tokens, tokens, "stop")

    async def _paced(self, tokens: list[str]) -> AsyncIterator[tuple[int, str]]:
        """Yield the tokens with the configured time to first token and rate, read once per answer."""
        ttft, rate = self.ttft, self.tokens_per_second
        gap = 1.0 / rate if rate > 0 else 0.0
        for i, token in enumerate(tokens):
            delay = ttft if i == 0 else gap
            if delay > 0:
                await asyncio.sleep(delay)
            yield i, token

    # --- /v1/completions ---

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, model = await self._route(request)
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = prompt
        else:
            raise engine_error("'prompt' must be a string or a non-empty list of strings", "prompt")
        stream, include_usage = self._stream_settings(body)
        max_tokens = body.get("max_tokens", COMPLETIONS_DEFAULT_MAX_TOKENS)
        gens = [self._generate(p, len(tokenize(p)), max_tokens, body) for p in prompts]
        meta = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        self._running += 1
        try:
            if stream:
                return await self._stream_completion(request, meta, gens, include_usage)
            choices = []
            for index, gen in enumerate(gens):
                text = "".join([token async for _, token in self._paced(gen.tokens)])
                choices.append(self._completion_choice(index, text, gen.finish_reason))
            usage = self._usage(gens)
            self._count_tokens(model, usage)
            return web.json_response({**meta, "choices": choices, "usage": usage}, dumps=_dumps)
        finally:
            self._running -= 1

    @staticmethod
    def _completion_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
        return {
            "index": index,
            "text": text,
            "logprobs": None,
            "finish_reason": finish_reason,
            "stop_reason": None,
        }

    async def _stream_completion(
        self, request: web.Request, meta: dict[str, Any], gens: list[Generation], include_usage: bool
    ) -> web.StreamResponse:
        response = await self._start_stream(request)
        extra = {"usage": None} if include_usage else {}
        for index, gen in enumerate(gens):
            last = len(gen.tokens) - 1
            async for i, token in self._paced(gen.tokens):
                finish = gen.finish_reason if i == last else None
                choice = self._completion_choice(index, token, finish)
                await self._send(response, {**meta, "choices": [choice], **extra})
        return await self._end_stream(response, meta, gens, include_usage)

    # --- /v1/chat/completions ---

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body, model = await self._route(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise engine_error("'messages' must be a non-empty list", "messages")
        texts: list[tuple[str, str]] = []  # (role, text) of each message
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise engine_error("each message must be an object with a 'role'", "messages")
            texts.append((message["role"], _message_text(message.get("content"))))
        last_user = next((text for role, text in reversed(texts) if role == "user"), "")
        prompt_tokens = sum(len(tokenize(text)) for _, text in texts)
        stream, include_usage = self._stream_settings(body)
        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        gen = self._generate(last_user, prompt_tokens, max_tokens, body)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}
        self._running += 1
        try:
            if stream:
                return await self._stream_chat(request, meta, gen, include_usage)
            text = "".join([token async for _, token in self._paced(gen.tokens)])
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": gen.finish_reason,
                "stop_reason": None,
            }
            usage = self._usage([gen])
            self._count_tokens(model, usage)
            answer = {**meta, "object": "chat.completion", "choices": [choice], "usage": usage}
            return web.json_response(answer, dumps=_dumps)
        finally:
            self._running -= 1

    async def _stream_chat(
        self, request: web.Request, meta: dict[str, Any], gen: Generation, include_usage: bool
    ) -> web.StreamResponse:
        meta = {**meta, "object": "chat.completion.chunk"}
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**meta, "choices": [choice], **extra}

        response = await self._start_stream(request)
        # vLLM opens with the role and empty content, before the first token is ready.
        await self._send(response, chunk({"role": "assistant", "content": ""}, None))
        last = len(gen.tokens) - 1
        async for i, token in self._paced(gen.tokens):
            await self._send(response, chunk({"content": token}, gen.finish_reason if i == last else None))
        return await self._end_stream(response, meta, [gen], include_usage)

    # --- shared pieces ---

    @staticmethod
    def _usage(gens: list[Generation]) -> dict[str, Any]:
        prompt = sum(g.prompt_tokens for g in gens)
        completion = sum(len(g.tokens) for g in gens)
        return {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
            "prompt_tokens_details": None,
        }

    def _count_tokens(self, model: str, usage: dict[str, Any]) -> None:
        self._input_tokens[model] += usage["prompt_tokens"]
        self._output_tokens[model] += usage["completion_tokens"]

    @staticmethod
    async def _start_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, event: dict[str, Any]) -> None:
        # json.dumps escapes newlines inside strings, so one event is always one `data:` line.
        await response.write(f"data: {_dumps(event)}\n\n".encode())

    async def _end_stream(
        self,
        response: web.StreamResponse,
        meta: dict[str, Any],
        gens: list[Generation],
        include_usage: bool,
    ) -> web.StreamResponse:
        if include_usage:
            await self._send(response, {**meta, "choices": [], "usage": self._usage(gens)})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # --- /metrics ---

    async def _metrics(self, request: web.Request) -> web.Response:
        served = self._served()
        families: list[tuple[str, str, str, list[tuple[dict[str, str], float]]]] = [
            (
                "vllm:num_incoming_requests_total",
                "counter",
                "Total valid incoming requests to router (including when no backends available).",
                [({"model": m}, n) for m, n in sorted(self._incoming.items())],
            ),
            (
                "vllm:input_tokens_total",
                "counter",
                "Total input tokens processed",
                [({"server": SERVER, "model": m}, n) for m, n in sorted(self._input_tokens.items())],
            ),
            (
                "vllm:output_tokens_total",
                "counter",
                "Total output tokens generated",
                [({"server": SERVER, "model": m}, n) for m, n in sorted(self._output_tokens.items())],
            ),
            (
                "vllm:num_requests_running",
                "gauge",
                "Number of running requests",
                [({"server": SERVER}, self._running)],
            ),
            (
                "vllm:healthy_pods_total",
                "gauge",
                "Number of healthy vLLM pods",
                [({"server": SERVER}, 1 if served else 0)],
            ),
        ]
        lines: list[str] = []
        for name, kind, help_text, samples in families:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for labels, value in samples:
                rendered = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{rendered}}} {float(value)}")
        body = ("\n".join(lines) + "\n").encode()
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


REQUEST_ID = web.RequestKey("request_id", str)


def _request_id(request: web.Request) -> str:
    """The request's id: its own X-Request-Id, else one made once for it (router and engine
    both answer with it)."""
    if REQUEST_ID not in request:
        request[REQUEST_ID] = request.headers.get("X-Request-Id") or str(uuid.uuid4())
    return request[REQUEST_ID]


def _message_text(content: Any) -> str:
    """A chat message's text: a string, or the text parts of a list joined by newlines (as vLLM
    does for string-format chat templates). Anything else is a 400."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            text = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
            if not isinstance(text, str):
                raise engine_error("only text content parts are supported by the stand-in", "messages")
            parts.append(text)
        return "\n".join(parts)
    raise engine_error("message content must be a string or a list of parts", "messages")


def _label_value(value: str) -> str:
    """Escape a label value for the Prometheus text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
