"""bench's prompts: exact lengths by a real tokenizer (built here with the `tokenizers` library,
served by the Hub stand-in or read from a path), the approximation and why it was used,
`--dataset` JSONL files, ranges and seeds."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from tests.sandbox.hub_alone import Hub, serve_hub
from vllmctl.core.errors import EXIT_EXTERNAL, EXIT_USAGE, UsageError
from vllmctl.ops.bench.prompts import (
    WORDS,
    BenchPrompt,
    PromptSet,
    PromptSpec,
    build_prompts,
    parse_length,
)

REFUSED = "http://127.0.0.1:9"  # tests/conftest.py's HF_ENDPOINT: refuses at once
REPO = "org/tiny-model"
# A little English beyond WORDS, so the trained vocabularies are not made of WORDS alone.
CORPUS = [
    " ".join(WORDS),
    "the quick brown fox jumps over the lazy dog while people watch from the public road",
    "a model serves tokens to clients and the router sends each request to an engine",
] * 20


def bpe(vocab_size: int, *, bos: bool = False, metaspace: bool = False) -> Tokenizer:
    """A BPE tokenizer trained on CORPUS: byte-level like GPT-2, Llama 3 and Qwen, or with
    SentencePiece's metaspace like Llama 2 and Mistral; with a BOS added to every prompt, as
    Llama's tokenizers do."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>" if metaspace else None))
    if metaspace:
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        alphabet: list[str] = []
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    special = ["<s>", "<unk>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=alphabet, show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    if bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
        )
    return tokenizer


# name -> tokenizer: a rich vocabulary (every word one token), the same with a BOS, SentencePiece
# style, and a tiny one where most words are several tokens (the cut then falls inside words).
TOKENIZERS = {
    "byte-level": lambda: bpe(2000),
    "byte-level+bos": lambda: bpe(2000, bos=True),
    "metaspace+bos": lambda: bpe(2000, bos=True, metaspace=True),
    "tiny": lambda: bpe(262),
}


def saved(tokenizer: Tokenizer, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def server_count(path: Path, text: str) -> int:
    """What vLLM counts for a completion prompt: a fresh load of the file, add_special_tokens=True."""
    return len(Tokenizer.from_file(str(path)).encode(text, add_special_tokens=True).ids)


def spec(input_len: str = "64", output_len: str = "32", **kwargs: Any) -> PromptSpec:
    return PromptSpec(
        parse_length(input_len, "--input-len"), parse_length(output_len, "--output-len"), **kwargs
    )


# --- the Hub stand-in, alone on a loop thread -------------------------------------------------


LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}


def add_tokenizer(hub: Hub, repo: str, content: bytes, **kwargs: Any) -> None:
    hub.call(hub.stand_in.add_model, repo, config=LLAMA_CONFIG, files={"tokenizer.json": content}, **kwargs)


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    with serve_hub() as served:
        yield served


@pytest.fixture
def fresh_hub(hub: Hub) -> Iterator[Hub]:
    hub.call(hub.stand_in.reset)
    yield hub
    hub.call(hub.stand_in.reset)


# --- exact lengths by the tokenizer -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_synthetic_prompts_have_the_exact_length_by_the_tokenizer(name: str, tmp_path: Path) -> None:
    path = saved(TOKENIZERS[name](), tmp_path / name)
    bos = 1 if "bos" in name else 0
    for length in [*range(2, 40), 127, 512, 2048]:
        made = build_prompts(spec(str(length), tokenizer=str(path), seed=length), 4)
        assert made.tokenizer == str(path) and made.source.startswith("synthetic, exact token counts by")
        for prompt in made.prompts:
            assert prompt.input_tokens == length == server_count(path, prompt.text), (length, prompt.text)
    # One token: the text's, plus the BOS a prompt cannot do without (the count says so).
    [one] = build_prompts(spec("1", tokenizer=str(path)), 1).prompts
    assert one.input_tokens == 1 + bos == server_count(path, one.text)


def test_a_tiny_vocabulary_cuts_inside_words_and_stays_exact(tmp_path: Path) -> None:
    path = saved(bpe(262), tmp_path)
    tokenizer = Tokenizer.from_file(str(path))
    # The premise: in this vocabulary most WORDS are several tokens.
    assert sum(len(tokenizer.encode(f" {w}").ids) > 1 for w in WORDS) > len(WORDS) / 2
    made = build_prompts(spec("50-300", tokenizer=str(path), seed=7), 100)
    assert [p.input_tokens for p in made.prompts] == [server_count(path, p.text) for p in made.prompts]
    assert all(50 <= p.input_tokens <= 300 for p in made.prompts)


def test_ranges_are_drawn_per_prompt_with_the_seed_on_both_paths(tmp_path: Path) -> None:
    path = saved(bpe(2000), tmp_path)
    for tokenizer in (str(path), None):
        made = build_prompts(spec("100-200", "10-20", tokenizer=tokenizer, seed=5), 200)
        inputs = [p.input_tokens for p in made.prompts]
        outputs = [p.max_tokens for p in made.prompts]
        assert min(inputs) >= 100 and max(inputs) <= 200 and len(set(inputs)) > 50
        assert min(outputs) >= 10 and max(outputs) <= 20 and len(set(outputs)) == 11
        # Same seed, same prompts; another seed, others.
        again = build_prompts(spec("100-200", "10-20", tokenizer=tokenizer, seed=5), 200)
        assert again.prompts == made.prompts
        other = build_prompts(spec("100-200", "10-20", tokenizer=tokenizer, seed=6), 200)
        assert [p.text for p in other.prompts] != [p.text for p in made.prompts]
    # The approximation's count is its word count (one token a word in the common vocabularies).
    approx = build_prompts(spec("100-200", seed=5), 50)
    assert all(len(p.text.split()) == p.input_tokens for p in approx.prompts)
    assert all(w in WORDS for p in approx.prompts for w in p.text.split())


@pytest.mark.parametrize("tokenizer", ["path", None])
def test_no_two_prompts_share_a_prefix_cache_block(tokenizer: str | None, tmp_path: Path) -> None:
    # vLLM caches prefixes in blocks of 16 tokens: distinct first blocks mean no prompt's
    # prefill is served from another's cache.
    path = saved(bpe(2000), tmp_path)
    made = build_prompts(spec("64", tokenizer=str(path) if tokenizer else None, seed=1), 500)
    ids = Tokenizer.from_file(str(path))
    firsts = {tuple(ids.encode(p.text).ids[:16]) for p in made.prompts}
    assert len(firsts) == 500


# --- the tokenizer from the Hub and its cache --------------------------------------------------


def test_the_models_tokenizer_comes_from_the_hub_then_from_the_cache(
    fresh_hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = saved(bpe(2000, bos=True), tmp_path)
    add_tokenizer(fresh_hub, REPO, path.read_bytes())
    made = build_prompts(spec("100", tokenizer_repo=REPO), 3, hf_endpoint=fresh_hub.url)
    assert made.tokenizer == REPO and made.source == f"synthetic, exact token counts by {REPO}'s tokenizer"
    assert all(p.input_tokens == 100 == server_count(path, p.text) for p in made.prompts)
    assert f"/{REPO}/resolve/main/tokenizer.json" in fresh_hub.paths()
    # In the standard HuggingFace cache (the test's HF_HOME), where vLLM would find it too.
    cached = list(Path(os.environ["HF_HOME"]).glob("hub/models--org--tiny-model/snapshots/*/tokenizer.json"))
    assert len(cached) == 1 and cached[0].read_bytes() == path.read_bytes()

    # Without hf_endpoint, HF_ENDPOINT is the Hub (here the stand-in; unset, huggingface.co).
    monkeypatch.setenv("HF_ENDPOINT", fresh_hub.url)
    heads = len(fresh_hub.paths())
    assert build_prompts(spec("100", tokenizer_repo=REPO), 3) == made
    assert len(fresh_hub.paths()) > heads
    monkeypatch.setenv("HF_ENDPOINT", REFUSED)

    # The Hub gone (a refused port), then offline mode: the cached copy, the same prompts.
    again = build_prompts(spec("100", tokenizer_repo=REPO), 3, hf_endpoint=REFUSED)
    assert again == made
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(fresh_hub.paths())
    assert build_prompts(spec("100", tokenizer_repo=REPO), 3, hf_endpoint=fresh_hub.url) == made
    assert len(fresh_hub.paths()) == before  # offline: not even a HEAD


def test_a_gated_repo_needs_a_token_with_access(fresh_hub: Hub, tmp_path: Path) -> None:
    content = saved(bpe(2000), tmp_path).read_bytes()
    add_tokenizer(fresh_hub, REPO, content, gated="manual")
    fresh_hub.call(fresh_hub.stand_in.add_token, "hf_granted", {REPO})
    fresh_hub.call(fresh_hub.stand_in.add_token, "hf_other", set())

    anonymous = build_prompts(spec(tokenizer_repo=REPO), 2, hf_endpoint=fresh_hub.url)
    assert anonymous.tokenizer is None
    assert anonymous.source == (
        f"synthetic, approximate token counts (no tokenizer: {REPO} is gated and no token was given, so "
        f"vllmctl has no access to its files: request access at {fresh_hub.url}/{REPO})"
    )
    refused = build_prompts(spec(tokenizer_repo=REPO), 2, hf_endpoint=fresh_hub.url, token="hf_other")
    assert refused.tokenizer is None and "this token has no access" in refused.source
    assert "hf_other" not in refused.source
    rejected = build_prompts(spec(tokenizer_repo=REPO), 2, hf_endpoint=fresh_hub.url, token="hf_unknown")
    assert "rejected the HuggingFace token" in rejected.source and "hf_unknown" not in rejected.source
    granted = build_prompts(spec(tokenizer_repo=REPO), 2, hf_endpoint=fresh_hub.url, token="hf_granted")
    assert granted.tokenizer == REPO and "hf_granted" not in granted.source
    # Cached now, but a token the Hub refuses is still said, not hidden behind the cached copy.
    later = build_prompts(spec(tokenizer_repo=REPO), 2, hf_endpoint=fresh_hub.url, token="hf_unknown")
    assert later.tokenizer is None and "rejected the HuggingFace token" in later.source


def approximated(made: PromptSet, count: int = 2, length: int = 64) -> str:
    """The reason of a set built by the approximation (and check it was)."""
    assert made.tokenizer is None and len(made.prompts) == count
    assert all(p.input_tokens == length == len(p.text.split()) for p in made.prompts)
    prefix = "synthetic, approximate token counts (no tokenizer: "
    assert made.source.startswith(prefix) and made.source.endswith(")")
    return made.source[len(prefix) : -1]


def test_without_a_tokenizer_the_approximation_says_why(fresh_hub: Hub, tmp_path: Path) -> None:
    url = fresh_hub.url
    assert approximated(build_prompts(spec(), 2, hf_endpoint=url)) == "the model's repo is not known"
    # The preloaded Qwen repos of the stand-in carry only config.json.
    qwen = "Qwen/Qwen2.5-0.5B-Instruct"
    assert approximated(build_prompts(spec(tokenizer_repo=qwen), 2, hf_endpoint=url)) == (
        "the repo has no tokenizer.json"
    )
    # Known from the model info's file list: no download tried (and no miss cached).
    assert not [path for path in fresh_hub.paths() if "/resolve" in path]
    assert approximated(build_prompts(spec(tokenizer_repo="org/missing"), 2, hf_endpoint=url)) == (
        f"org/missing is not a model on {url} (or it is private and no token was given)"
    )
    assert approximated(build_prompts(spec(tokenizer_repo="pvc://models/llama"), 2, hf_endpoint=url)) == (
        "it is not a HuggingFace repo id (give --tokenizer with a repo or a tokenizer.json)"
    )
    add_tokenizer(fresh_hub, REPO, b'{"version": "1.0", "truncated')
    broken = approximated(build_prompts(spec(tokenizer_repo=REPO), 2, hf_endpoint=url))
    assert broken.startswith("/") and "is not a tokenizer.json the tokenizers library reads" in broken


def test_the_hub_unreachable_with_nothing_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = approximated(build_prompts(spec(tokenizer_repo=REPO), 2, hf_endpoint=REFUSED))
    assert reason.startswith(f"could not reach {REFUSED}: connection refused")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reason = approximated(build_prompts(spec(tokenizer_repo=REPO), 2, hf_endpoint=REFUSED))
    assert reason.startswith(f"could not reach {REFUSED}: offline mode is on (HF_HUB_OFFLINE), and {REPO}'s")


def test_an_explicit_tokenizer_is_a_path_or_a_repo_and_must_load(fresh_hub: Hub, tmp_path: Path) -> None:
    path = saved(bpe(2000), tmp_path / "tok")
    # A directory holding tokenizer.json, or the file.
    for given in (str(path.parent), str(path)):
        made = build_prompts(
            spec("30", tokenizer=given, tokenizer_repo="org/ignored"), 2, hf_endpoint=REFUSED
        )
        assert made.tokenizer == given and all(p.input_tokens == 30 for p in made.prompts)
    add_tokenizer(fresh_hub, REPO, path.read_bytes())
    assert build_prompts(spec(tokenizer=REPO), 1, hf_endpoint=fresh_hub.url).tokenizer == REPO

    with pytest.raises(UsageError) as missing:
        build_prompts(spec(tokenizer=str(tmp_path / "nope")), 1)
    assert str(missing.value) == (
        f"--tokenizer {tmp_path / 'nope'}: {tmp_path / 'nope'} does not exist; give a Hub repo with a "
        "tokenizer.json, or the path of one."
    )
    assert missing.value.exit_code == EXIT_USAGE
    with pytest.raises(UsageError) as unreachable:  # (REPO is cached now: another one)
        build_prompts(spec(tokenizer="org/uncached"), 1, hf_endpoint=REFUSED)
    assert str(unreachable.value).startswith(
        f"--tokenizer org/uncached: could not reach {REFUSED}: connection refused"
    )
    assert unreachable.value.exit_code == EXIT_EXTERNAL  # the Hub failed, not the user
    with pytest.raises(UsageError, match=r"the repo has no tokenizer\.json"):
        build_prompts(spec(tokenizer="Qwen/Qwen2.5-0.5B-Instruct"), 1, hf_endpoint=fresh_hub.url)


# --- --dataset ---------------------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes, name: str = "prompts.jsonl") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_dataset_gives_its_prompts_in_order_and_cycles(tmp_path: Path) -> None:
    lines = [
        {"prompt": "Explain KV caching.", "id": 7},
        {"text": "Write a haiku about GPUs.", "output_len": 40},
        {"prompt": 'quotes " and \\ and \u2028 and 漢字', "max_tokens": 5},
    ]
    file = write(tmp_path, "\n".join(json.dumps(line) for line in lines) + "\n\n")
    made = build_prompts(spec(output_len="8-9", dataset=file), 7)
    texts = [p.text for p in made.prompts]
    assert texts == [lines[i % 3].get("prompt") or lines[i % 3]["text"] for i in range(7)]
    assert [p.max_tokens for p in made.prompts][1:3] == [40, 5] and made.prompts[0].max_tokens in (8, 9)
    assert made.prompts[3] == made.prompts[0] and not made.chat
    # No tokenizer: characters / 4.
    assert made.prompts[0].input_tokens == round(len("Explain KV caching.") / 4)
    assert made.source == (
        f"3 prompts of {file}, cycled to 7 (a repeat may be served from the prefix cache), token counts "
        "estimated at 4 characters a token (no tokenizer: the model's repo is not known)"
    )
    # Fewer requests than lines: the first ones.
    assert [p.text for p in build_prompts(spec(dataset=file), 2).prompts] == texts[:2]


def test_a_dataset_is_counted_by_the_tokenizer(tmp_path: Path) -> None:
    path = saved(bpe(2000, bos=True), tmp_path / "tok")
    file = write(tmp_path, '{"prompt": "the people of the year"}\n{"prompt": "a quick brown fox"}\n')
    made = build_prompts(spec(dataset=file, tokenizer=str(path)), 2)
    assert [p.input_tokens for p in made.prompts] == [server_count(path, p.text) for p in made.prompts]
    assert (
        made.tokenizer == str(path)
        and made.source == f"2 prompts of {file}, exact token counts by {path}'s tokenizer"
    )


def test_a_dataset_of_conversations_is_for_chat(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is vLLM?"}]
    file = write(tmp_path, json.dumps({"messages": messages, "max_tokens": 12}) + "\n")
    made = build_prompts(spec(dataset=file), 2)
    assert made.chat
    assert made.prompts[0] == BenchPrompt("Be brief.\nWhat is vLLM?", 6, 12, tuple(messages))


@pytest.mark.parametrize(
    "content, message",
    [
        (
            '{"prompt": "ok"}\n{"prompt": "x",}\n',
            "{file}:2:16: not JSON (Expecting property name enclosed in double quotes)",
        ),
        ('{"prompt": "ok"}\n\n["a list"]\n', "{file}:3: a line must be a JSON object"),
        ('{"input": "x", "id": 1}\n', "{file}:1: no prompt, text or messages key (it has: id, input)"),
        (
            '{"prompt": "x", "text": "y"}\n',
            "{file}:1: give one of prompt, text and messages, not prompt and text.",
        ),
        ('{"prompt": 42}\n', "{file}:1: prompt must be a string, not a number."),
        ('{"text": "   "}\n', "{file}:1: text is empty; a benchmark prompt needs text."),
        (
            '{"prompt": "x", "output_len": 0}\n',
            "{file}:1: output_len must be a whole number of tokens >= 1, not 0.",
        ),
        (
            '{"prompt": "x", "max_tokens": "9"}\n',
            '{file}:1: max_tokens must be a whole number of tokens >= 1, not "9".',
        ),
        (
            '{"prompt": "x", "output_len": 3, "max_tokens": 4}\n',
            "{file}:1: output_len and max_tokens differ (3 and 4); give one.",
        ),
        ('{"messages": []}\n', "{file}:1: messages must be a non-empty list"),
        (
            '{"messages": [{"role": "bot", "content": "x"}]}\n',
            '{file}:1: message 1\'s role "bot" is not one of',
        ),
        (
            '{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}\n',
            "{file}:1: message 1's content must be a string, not a list.",
        ),
        (
            '{"messages": [{"role": "system", "content": "x"}]}\n',
            "{file}:1: the conversation has no user message.",
        ),
        (
            '{"prompt": "a"}\n{"messages": [{"role": "user", "content": "b"}]}\n',
            "{file}:2: line 1 started a file of prompts (prompt or text) and this line is not one",
        ),
        ('{"prompt": "a"}\n\xff\xfe\n', "{file}:2: not UTF-8 text"),
        ("", "--dataset {file} has no prompts: write one JSON object a line, such as"),
        ("\n  \n", "--dataset {file} has no prompts"),
    ],
)
def test_a_bad_dataset_names_the_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    raw = content.encode("latin-1") if "\xff" in content else content
    file = write(tmp_path, raw)
    with pytest.raises(UsageError) as error:
        build_prompts(spec(dataset=file), 3)
    assert str(error.value).startswith(message.format(file=file)), str(error.value)
    assert "\n" not in str(error.value)


def test_a_dataset_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(
        UsageError, match=r"^--dataset .*nope.jsonl does not exist: give a JSONL file of prompts\.$"
    ):
        build_prompts(spec(dataset=tmp_path / "nope.jsonl"), 1)
    with pytest.raises(UsageError, match=r"is a directory"):
        build_prompts(spec(dataset=tmp_path), 1)
    # A byte-order mark (Windows editors) is not part of the first line.
    file = write(tmp_path, '\ufeff{"prompt": "hi"}\n'.encode("utf-8"))
    assert build_prompts(spec(dataset=file), 1).prompts[0].text == "hi"
