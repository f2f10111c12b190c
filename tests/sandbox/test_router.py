"""The router stand-in over real HTTP: what a client of the vLLM production-stack router would see."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.sandbox.loop import LoopThread
from tests.sandbox.router import RouterStandIn

# Quotes, a JSON object end, backslashes, newlines, tabs, non-ASCII, an astral-plane emoji and
# leading/trailing whitespace: everything that breaks naive JSON or SSE handling.
TRICKY = '  say "hi"}\n\t{"a": "\\u00e9"}\\ üñí — 漢字 🎉 "}\r\n end  '
FILLER_TEXT = " lorem ipsum dolor sit amet consectetur adipiscing elit"
MODEL = "org/model-a"


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@dataclass
class Sandbox:
    """A fresh stand-in, with the models and key its callables return, changeable by the test."""

    loop: LoopThread
    router: RouterStandIn
    url: str
    models: list[str] = field(default_factory=list)
    key: str | None = None

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=5, **kwargs)

    def post(self, path: str, body: Any, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return requests.post(self.url + path, json=body, headers=headers, timeout=5, **kwargs)


@pytest.fixture
def sandbox(loop: LoopThread) -> Sandbox:
    # The callables close over the Sandbox, so a test changes what the router sees by assignment.
    box = Sandbox(loop, None, "", [MODEL])  # type: ignore[arg-type]
    box.router = RouterStandIn(models=lambda: box.models, api_key=lambda: box.key)
    box.url = f"http://127.0.0.1:{loop.serve(box.router.app())}"
    return box


def sse_events(response: requests.Response) -> list[Any]:
    """Parse an SSE body strictly: every event is exactly one `data: ` line and a blank line, the
    last one is [DONE] (returned as the string "[DONE]"), the others JSON."""
    assert response.headers["Content-Type"].startswith("text/event-stream")
    raw = response.content.decode("utf-8")
    assert raw.endswith("\n\n")
    events: list[Any] = []
    for block in raw[:-2].split("\n\n"):
        assert block.startswith("data: ") and "\n" not in block, block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    return events[:-1]


# --- /v1/models ---


def test_models_list_follows_the_callable(sandbox: Sandbox) -> None:
    body = sandbox.get("/v1/models").json()
    assert body["object"] == "list"
    [card] = body["data"]
    assert card["id"] == MODEL and card["object"] == "model" and card["owned_by"] == "vllm"
    assert card["root"] == MODEL and card["parent"] is None and card["max_model_len"] == 4096
    assert isinstance(card["created"], int) and card["permission"][0]["object"] == "model_permission"

    # Read per request: a new engine shows up, a repeated id is listed once, a removed one goes.
    sandbox.models = ["b", MODEL, "b"]
    assert [c["id"] for c in sandbox.get("/v1/models").json()["data"]] == ["b", MODEL]
    sandbox.models = []
    assert sandbox.get("/v1/models").json() == {"object": "list", "data": []}


def test_lora_adapters_are_listed_with_their_parent_and_answered(loop: LoopThread) -> None:
    adapters = {"sql": MODEL}
    router = RouterStandIn(models=lambda: [MODEL], api_key=lambda: None, adapters=lambda: adapters)
    url = f"http://127.0.0.1:{loop.serve(router.app())}"
    cards = {c["id"]: c["parent"] for c in requests.get(url + "/v1/models", timeout=5).json()["data"]}
    assert cards == {MODEL: None, "sql": MODEL}
    answer = requests.post(url + "/v1/completions", json={"model": "sql", "prompt": "hi"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["model"] == "sql"
    adapters.clear()  # unloaded: known before, so the router says unavailable, as for a model
    gone = requests.post(url + "/v1/completions", json={"model": "sql", "prompt": "hi"}, timeout=5)
    assert gone.status_code == 503


# --- authentication ---


def test_api_key_is_enforced_only_when_one_exists(sandbox: Sandbox) -> None:
    request = {"model": MODEL, "prompt": "hi"}
    assert sandbox.post("/v1/completions", request).status_code == 200  # no key: open

    sandbox.key = "s3cret"
    for header in (None, "Bearer wrong", "Bearer S3CRET", "Basic s3cret", "s3cret", "Bearer  s3cret"):
        headers = {"Authorization": header} if header else {}
        answer = requests.post(sandbox.url + "/v1/completions", json=request, headers=headers)
        assert answer.status_code == 401 and answer.json() == {"error": "Unauthorized"}, header
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    assert sandbox.post("/v1/chat/completions", chat).status_code == 401
    assert sandbox.post("/v1/chat/completions", chat, key="s3cret").status_code == 200
    # The scheme is case-insensitive, as in vLLM.
    lower = {"Authorization": "bearer s3cret"}
    assert requests.post(sandbox.url + "/v1/completions", json=request, headers=lower).status_code == 200
    # The router answers /v1/models itself and never checks the key; only the engines do.
    assert sandbox.get("/v1/models").status_code == 200

    sandbox.key = ""  # an empty Secret value is no key
    assert sandbox.post("/v1/completions", request).status_code == 200


# --- completions ---


def test_completion_echoes_the_prompt_then_the_filler(sandbox: Sandbox) -> None:
    answer = sandbox.post("/v1/completions", {"model": MODEL, "prompt": "hello world", "max_tokens": 100})
    assert answer.status_code == 200
    body = answer.json()
    assert body["object"] == "text_completion" and body["model"] == MODEL and body["id"].startswith("cmpl-")
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["text"] == "echo: hello world" + FILLER_TEXT
    # "hello", " world"; then "echo:", " hello", " world" and 8 filler words.
    assert body["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 11,
        "total_tokens": 13,
        "prompt_tokens_details": None,
    }


def test_max_tokens_cuts_the_answer(sandbox: Sandbox) -> None:
    answer = sandbox.post("/v1/completions", {"model": MODEL, "prompt": "hello world", "max_tokens": 2})
    [choice] = answer.json()["choices"]
    assert choice["text"] == "echo: hello" and choice["finish_reason"] == "length"
    assert answer.json()["usage"]["completion_tokens"] == 2

    # Without max_tokens a completion stops at vLLM's default of 16 tokens.
    prompt = " ".join(f"w{i}" for i in range(30))
    answer = sandbox.post("/v1/completions", {"model": MODEL, "prompt": prompt})
    assert answer.json()["usage"]["completion_tokens"] == 16
    assert answer.json()["choices"][0]["text"] == "echo: " + " ".join(f"w{i}" for i in range(15))

    # max_completion_tokens wins over max_tokens in chat; with neither the answer runs to its end.
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "a b"}]}
    cut = sandbox.post("/v1/chat/completions", {**chat, "max_tokens": 9, "max_completion_tokens": 3})
    assert cut.json()["choices"][0]["message"]["content"] == "echo: a b"
    full = sandbox.post("/v1/chat/completions", chat).json()["choices"][0]
    assert full["message"]["content"] == "echo: a b" + FILLER_TEXT and full["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "max_tokens, param", [(0, "max_tokens"), (-1, "max_tokens"), ("7", "max_tokens"), (4095, "max_tokens")]
)
def test_bad_max_tokens_is_a_vllm_400(sandbox: Sandbox, max_tokens: Any, param: str) -> None:
    # 4095 fails only with the prompt's 2 tokens: the two may not exceed max_model_len (4096).
    answer = sandbox.post("/v1/completions", {"model": MODEL, "prompt": "a b", "max_tokens": max_tokens})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "BadRequestError" and error["code"] == 400 and error["param"] == param
    assert isinstance(error["message"], str) and error["message"]
    ok = sandbox.post("/v1/completions", {"model": MODEL, "prompt": "a b", "max_tokens": 4094})
    assert ok.status_code == 200


def test_batch_of_prompts_gives_one_choice_each(sandbox: Sandbox) -> None:
    body = sandbox.post("/v1/completions", {"model": MODEL, "prompt": ["x", "y z"], "max_tokens": 3}).json()
    assert [(c["index"], c["text"]) for c in body["choices"]] == [(0, "echo: x lorem"), (1, "echo: y z")]
    assert body["usage"]["prompt_tokens"] == 3 and body["usage"]["completion_tokens"] == 6


def test_streamed_completion(sandbox: Sandbox) -> None:
    request = {"model": MODEL, "prompt": "hello world", "max_tokens": 4, "stream": True}
    events = sse_events(sandbox.post("/v1/completions", request))
    assert ["".join(c["text"] for c in e["choices"]) for e in events] == [
        "echo:",
        " hello",
        " world",
        " lorem",
    ]
    assert len({e["id"] for e in events}) == 1 and all(e["object"] == "text_completion" for e in events)
    # vLLM puts the finish reason on the chunk of the last token.
    assert [e["choices"][0]["finish_reason"] for e in events] == [None, None, None, "length"]
    assert all("usage" not in e for e in events)


def test_streamed_completion_with_usage(sandbox: Sandbox) -> None:
    request = {
        "model": MODEL,
        "prompt": "hello world",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    *tokens, last = sse_events(sandbox.post("/v1/completions", request))
    assert all(e["usage"] is None for e in tokens)
    assert "".join(e["choices"][0]["text"] for e in tokens) == "echo: hello world" + FILLER_TEXT
    assert tokens[-1]["choices"][0]["finish_reason"] == "stop"
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 2
    assert last["usage"]["completion_tokens"] == len(tokens) == 11


def test_stream_options_without_stream_is_a_400(sandbox: Sandbox) -> None:
    request = {"model": MODEL, "prompt": "x", "stream_options": {"include_usage": True}}
    answer = sandbox.post("/v1/completions", request)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "stream_options"


# --- chat ---


def test_chat_echoes_the_last_user_message(sandbox: Sandbox) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]},
    ]
    body = sandbox.post("/v1/chat/completions", {"model": MODEL, "messages": messages}).json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "echo: second\npart" + FILLER_TEXT
    # Prompt tokens over all messages: 2 + 2 + 2 + 2.
    assert body["usage"]["prompt_tokens"] == 8 and body["usage"]["completion_tokens"] == 11


def test_streamed_chat(sandbox: Sandbox) -> None:
    request = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first, *tokens, last = sse_events(sandbox.post("/v1/chat/completions", request))
    assert all(e["object"] == "chat.completion.chunk" for e in [first, *tokens, last])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(e["choices"][0]["delta"]["content"] for e in tokens) == "echo: hi" + FILLER_TEXT
    assert [e["choices"][0]["finish_reason"] for e in tokens][-2:] == [None, "stop"]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == len(tokens) == 10


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("endpoint", ["/v1/completions", "/v1/chat/completions"])
def test_tricky_prompt_arrives_byte_intact(sandbox: Sandbox, endpoint: str, stream: bool) -> None:
    request: dict[str, Any] = {"model": MODEL, "stream": stream, "max_tokens": 100}
    if endpoint == "/v1/completions":
        request["prompt"] = TRICKY
    else:
        request["messages"] = [{"role": "user", "content": TRICKY}]
    answer = sandbox.post(endpoint, request)
    assert answer.status_code == 200
    if not stream:
        choice = answer.json()["choices"][0]
        text = choice["text"] if "text" in choice else choice["message"]["content"]
    else:
        pieces = [e["choices"][0] for e in sse_events(answer)]
        text = "".join(p.get("text") or p.get("delta", {}).get("content", "") for p in pieces)
    assert text == "echo: " + TRICKY + FILLER_TEXT


# --- the router's errors ---


def test_unknown_model_is_404_and_a_vanished_one_503(sandbox: Sandbox) -> None:
    answer = sandbox.post("/v1/completions", {"model": "nope", "prompt": "x"})
    assert answer.status_code == 404
    assert answer.json() == {"error": "Model 'nope' not found. Available models can be listed at /v1/models."}

    # A model the router has seen, now without engines (scaled to zero): 503, try later.
    assert sandbox.post("/v1/completions", {"model": MODEL, "prompt": "x"}).status_code == 200
    sandbox.models = []
    answer = sandbox.post("/v1/chat/completions", {"model": MODEL, "messages": []})
    assert answer.status_code == 503 and "temporarily unavailable" in answer.json()["error"]


def test_router_checks_come_before_auth(sandbox: Sandbox) -> None:
    # The router rejects a bad body or model before any engine (which checks the key) sees it.
    sandbox.key = "k"
    assert sandbox.post("/v1/completions", {"model": "nope", "prompt": "x"}).status_code == 404
    assert sandbox.post("/v1/completions", [1]).status_code == 400


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"model": "org/model-a", "prompt": "x"', "Invalid request: request body must be valid JSON."),
        (b"\xff\xfe{", "Invalid request: request body must be valid JSON."),
        (b'["org/model-a"]', "Invalid request: request body must be a JSON object."),
        (b'{"prompt": "x"}', "Invalid request: missing 'model' in request body."),
    ],
)
def test_bad_request_body_is_a_router_400(sandbox: Sandbox, data: bytes, message: str) -> None:
    for endpoint in ("/v1/completions", "/v1/chat/completions"):
        answer = requests.post(
            sandbox.url + endpoint, data=data, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400 and answer.json() == {"error": message}


# --- fault injection, counters, health, metrics, timing ---


def test_fault_injection_and_request_counter(sandbox: Sandbox) -> None:
    request = {"model": MODEL, "prompt": "x"}
    sandbox.loop.call(sandbox.router.fail_next, 2, 502, "backend gone")
    for _ in range(2):
        answer = sandbox.post("/v1/completions", request)
        assert answer.status_code == 502 and answer.json() == {"error": "backend gone"}
    assert sandbox.post("/v1/completions", request).status_code == 200

    # Limited to one path: other paths are untouched and do not use the fault up.
    sandbox.loop.call(sandbox.router.fail_next, 1, 500, "boom", "/v1/chat/completions")
    assert sandbox.get("/v1/models").status_code == 200
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    assert sandbox.post("/v1/chat/completions", chat).status_code == 500
    assert sandbox.post("/v1/chat/completions", chat).status_code == 200

    counts = sandbox.loop.call(lambda: dict(sandbox.router.requests))
    assert counts == {"/v1/completions": 3, "/v1/models": 1, "/v1/chat/completions": 2}


def test_health_and_request_id(sandbox: Sandbox) -> None:
    answer = sandbox.get("/health", headers={"X-Request-Id": "abc-1"})
    assert answer.status_code == 200 and answer.json() == {"status": "healthy"}
    assert answer.headers["X-Request-Id"] == "abc-1"
    assert sandbox.get("/v1/models").headers["X-Request-Id"]  # made up when the client sent none


# One sample line: a metric name (colons allowed), optional labels, a float value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def test_metrics_are_prometheus_text(sandbox: Sandbox) -> None:
    sandbox.post("/v1/completions", {"model": MODEL, "prompt": "a b c", "max_tokens": 2})
    sandbox.post("/v1/completions", {"model": MODEL, "prompt": "a", "stream": True})
    sandbox.post("/v1/completions", {"model": 'we"ird', "prompt": "a"})  # 404, still counted
    answer = sandbox.get("/metrics")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in answer.text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif not line.startswith("# HELP "):
            match = SAMPLE.match(line)
            assert match, line
            assert match.group(1) in typed  # every sample's family was declared first
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    assert samples[f'vllm:num_incoming_requests_total{{model="{MODEL}"}}'] == 2
    assert samples['vllm:num_incoming_requests_total{model="we\\"ird"}'] == 1
    # The router counts tokens from non-streaming answers only.
    server = 'server="http://sandbox-engine"'
    assert samples[f'vllm:input_tokens_total{{{server},model="{MODEL}"}}'] == 3
    assert samples[f'vllm:output_tokens_total{{{server},model="{MODEL}"}}'] == 2
    assert samples[f"vllm:num_requests_running{{{server}}}"] == 0
    assert samples[f"vllm:healthy_pods_total{{{server}}}"] == 1


def test_time_to_first_token_and_token_rate(sandbox: Sandbox) -> None:
    def set_speed(ttft: float, rate: float) -> None:
        sandbox.router.ttft, sandbox.router.tokens_per_second = ttft, rate

    sandbox.loop.call(set_speed, 0.08, 50.0)
    request = {"model": MODEL, "prompt": "a", "max_tokens": 5, "stream": True}
    start = time.monotonic()
    with sandbox.post("/v1/completions", request, stream=True) as answer:
        lines = answer.iter_lines()
        assert json.loads(next(lines)[len("data: ") :])["choices"][0]["text"] == "echo:"
        first = time.monotonic() - start
        assert sum(1 for line in lines if line.startswith(b"data: ")) == 5  # 4 tokens and [DONE]
    total = time.monotonic() - start
    assert first >= 0.08  # the first token waited for ttft
    assert total >= 0.08 + 4 / 50.0  # then 1/50 s between the 5 tokens

    # The same total for an answer in one piece.
    start = time.monotonic()
    sandbox.post("/v1/completions", {**request, "stream": False})
    assert time.monotonic() - start >= 0.16


# --- ignore_eos and min_tokens (vLLM's length extras) ---

# The natural answer to "hello world" is 11 tokens: "echo:", " hello", " world" and 8 filler words.
FILLER_WORDS = [f" {word}" for word in FILLER_TEXT.split()]
NATURAL = ["echo:", " hello", " world", *FILLER_WORDS]


def answer_tokens(sandbox: Sandbox, endpoint: str, stream: bool, **extra: Any) -> tuple[list[str], str, int]:
    """(the answer's tokens, its finish reason, usage's completion_tokens) for "hello world"."""
    if endpoint == "completions":
        body: dict[str, Any] = {"model": MODEL, "prompt": "hello world", **extra}
    else:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hello world"}], **extra}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    response = sandbox.post(f"/v1/{endpoint.replace('chat', 'chat/completions')}", body)
    assert response.status_code == 200, response.text
    if not stream:
        answer = response.json()
        [choice] = answer["choices"]
        text = choice["text"] if endpoint == "completions" else choice["message"]["content"]
        # Rebuild the tokens from the text by the stand-in's rule: whitespace, then a word.
        return re.findall(r"\s*\S+", text), choice["finish_reason"], answer["usage"]["completion_tokens"]
    events = sse_events(response)
    *chunks, last = [e for e in events if e["choices"] and "role" not in e["choices"][0].get("delta", {})] + [
        events[-1]
    ]
    key = (lambda c: c["text"]) if endpoint == "completions" else (lambda c: c["delta"]["content"])
    tokens = [key(e["choices"][0]) for e in chunks]
    finishes = [e["choices"][0]["finish_reason"] for e in chunks]
    assert finishes[:-1] == [None] * (len(finishes) - 1)  # only the last token's chunk says why
    return tokens, finishes[-1], last["usage"]["completion_tokens"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_ignore_eos_gives_exactly_max_tokens(sandbox: Sandbox, endpoint: str, stream: bool) -> None:
    # Past the natural end the filler words come again, until max_tokens.
    tokens, finish, counted = answer_tokens(sandbox, endpoint, stream, max_tokens=30, ignore_eos=True)
    assert len(tokens) == counted == 30 and finish == "length"
    assert tokens == NATURAL + (FILLER_WORDS * 3)[:19]
    # Shorter than the natural answer: cut there, as without ignore_eos.
    tokens, finish, counted = answer_tokens(sandbox, endpoint, stream, max_tokens=5, ignore_eos=True)
    assert tokens == NATURAL[:5] and counted == 5 and finish == "length"
    # Exactly the natural length: still "length" (the model was never allowed to stop).
    tokens, finish, _ = answer_tokens(sandbox, endpoint, stream, max_tokens=11, ignore_eos=True)
    assert tokens == NATURAL and finish == "length"
    # ignore_eos false is the plain answer.
    tokens, finish, _ = answer_tokens(sandbox, endpoint, stream, max_tokens=30, ignore_eos=False)
    assert tokens == NATURAL and finish == "stop"


def test_ignore_eos_without_max_tokens_follows_the_defaults(sandbox: Sandbox) -> None:
    # Completions: vLLM's default of 16; chat: all the room the context leaves (max_model_len 4096).
    tokens, finish, _ = answer_tokens(sandbox, "completions", False, ignore_eos=True)
    assert len(tokens) == 16 and finish == "length"
    sandbox.router.max_model_len = 40
    tokens, finish, counted = answer_tokens(sandbox, "chat", False, ignore_eos=True)
    assert len(tokens) == counted == 40 - 2 and finish == "length"  # the prompt is 2 tokens


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_min_tokens_goes_on_past_the_natural_end(sandbox: Sandbox, endpoint: str, stream: bool) -> None:
    tokens, finish, counted = answer_tokens(sandbox, endpoint, stream, max_tokens=40, min_tokens=20)
    assert len(tokens) == counted == 20 and finish == "stop"
    assert tokens == NATURAL + (FILLER_WORDS * 2)[:9]
    # Fewer than the natural answer: no effect.
    tokens, finish, _ = answer_tokens(sandbox, endpoint, stream, max_tokens=40, min_tokens=4)
    assert tokens == NATURAL and finish == "stop"
    # min_tokens = max_tokens, below the natural length: cut at max_tokens.
    tokens, finish, _ = answer_tokens(sandbox, endpoint, stream, max_tokens=6, min_tokens=6)
    assert tokens == NATURAL[:6] and finish == "length"


@pytest.mark.parametrize(
    "extra, param, words",
    [
        ({"ignore_eos": "true"}, "ignore_eos", "ignore_eos: Input should be a valid boolean"),
        ({"ignore_eos": 1}, "ignore_eos", "ignore_eos: Input should be a valid boolean"),
        ({"ignore_eos": None}, "ignore_eos", "ignore_eos: Input should be a valid boolean"),
        ({"min_tokens": "5"}, "min_tokens", "min_tokens: Input should be a valid integer"),
        ({"min_tokens": 2.5}, "min_tokens", "min_tokens: Input should be a valid integer"),
        ({"min_tokens": True}, "min_tokens", "min_tokens: Input should be a valid integer"),
        ({"min_tokens": -1}, None, "min_tokens must be greater than or equal to 0, got -1."),
        (
            {"min_tokens": 9, "max_tokens": 8},
            None,
            "min_tokens must be less than or equal to max_tokens=8, got 9.",
        ),
        # Completions' default max_tokens is 16, and the check uses it.
        ({"min_tokens": 17}, None, "min_tokens must be less than or equal to max_tokens=16, got 17."),
    ],
)
def test_bad_length_extras_are_vllm_400s(
    sandbox: Sandbox, extra: dict[str, Any], param: str | None, words: str
) -> None:
    for stream in (False, True):
        body = {"model": MODEL, "prompt": "a b", "stream": stream, **extra}
        answer = sandbox.post("/v1/completions", body)
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["type"] == "BadRequestError" and error["code"] == 400 and error["param"] == param
        assert error["message"].startswith(words)
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "a b"}], "max_tokens": 16, **extra}
    answer = sandbox.post("/v1/chat/completions", chat)
    assert answer.status_code == 400 and answer.json()["error"]["message"].startswith(words)
