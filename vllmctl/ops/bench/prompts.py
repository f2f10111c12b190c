"""The prompts a benchmark sends: synthetic ones of a chosen length in tokens, or a dataset's.

A prompt's length is counted in the model's tokens, by the model's own tokenizer when it can
be had (`--tokenizer`, else the models.yaml repo: its tokenizer.json from a local path, the
HuggingFace cache or the Hub; vllmctl/apis/tokenizer.py). Then a synthetic prompt is built to
the exact count (`exact_prompt`), counted as vLLM counts a completion prompt (special tokens
such as Llama's BOS included).

Without the tokenizer (no repo, offline with nothing cached, gated without a token, a repo
without tokenizer.json), a synthetic prompt is made of words from `WORDS`, each a single
token (with its leading space) in the BPE vocabularies of the common open models (Llama,
Qwen, Mistral, GPT-2), so N words come to about N tokens (plus the BOS some models add);
a dataset's prompts are counted at `CHARS_PER_TOKEN` characters a token. The reason is in
`PromptSet.source`, and the run goes on: the server's `usage.prompt_tokens` is the true count
and is what the metrics use when the server sends it. docs/bench-prompts.md has the details.

Every prompt is drawn with the run's seed, so a rerun sends the same prompts, and each
synthetic prompt is its own random word sequence, so prefix caching cannot serve one
prompt's start from another's and flatter TTFT.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllmctl.core.errors import UsageError

if TYPE_CHECKING:
    from vllmctl.apis.tokenizer import Tokenizer, TokenizerUnavailable
    from vllmctl.ops.bench.dataset import DatasetLine

# Short, frequent English words: one token each, with the space before them, in the common
# open models' vocabularies. Shuffled per prompt so no two prompts share a prefix (a shared
# prefix would let prefix caching make TTFT look better than it is).
_WORD_LIST = (
    "the of and to in is for on with as by at from that this it be are was or an not "
    "have has had but they we you he she his her its our their all one two more some time "
    "year people way day man new old good first last long great little own other right big "
    "high small large next early young few public bad same able"
)
WORDS = tuple(_WORD_LIST.split())
# English text without a tokenizer: about four characters a token in the BPE vocabularies
# of the common open models (OpenAI's rule of thumb for its own, which are alike).
CHARS_PER_TOKEN = 4
# How many times an exact prompt is re-cut after decoding and counting again (see exact_prompt).
RECUTS = 8
# Fewer single-token words than this (an odd or tiny vocabulary): draw from all of WORDS.
MIN_POOL = 8


@dataclass(frozen=True)
class LengthRange:
    """A length in tokens: `low` to `high` inclusive (equal for a fixed length)."""

    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        return self.low if self.low == self.high else rng.randint(self.low, self.high)

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def parse_length(text: str, flag: str) -> LengthRange:
    """`128` or `100-200` (tokens, inclusive), for `flag`'s error message."""
    low_text, dash, high_text = text.strip().partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if dash else low
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give a number of tokens (128) or a range (100-200).") from None
    if low < 1 or high < low:
        raise UsageError(f"{flag} {text!r}: lengths start at 1 and a range goes low-high (100-200).")
    return LengthRange(low, high)


@dataclass(frozen=True)
class BenchPrompt:
    text: str
    input_tokens: int  # as counted here: the tokenizer's count, or the approximation's
    max_tokens: int  # the output length asked for
    # A dataset's conversation, to send to /v1/chat/completions as it is (then `text` is its
    # contents joined by newlines and `input_tokens` counts them, without the chat template).
    messages: tuple[Mapping[str, Any], ...] | None = None


def approximate_prompt(tokens: int, rng: random.Random) -> str:
    """About `tokens` tokens of text without a tokenizer (see the module docstring)."""
    return " ".join(rng.choice(WORDS) for _ in range(tokens))


def approximate_count(text: str) -> int:
    """About how many tokens `text` is, without a tokenizer (CHARS_PER_TOKEN)."""
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def synthetic_prompts(
    count: int, input_len: LengthRange, output_len: LengthRange, rng: random.Random
) -> list[BenchPrompt]:
    """`count` prompts of lengths drawn from the ranges, by the approximation."""
    prompts = []
    for _ in range(count):
        tokens = input_len.draw(rng)
        prompts.append(BenchPrompt(approximate_prompt(tokens, rng), tokens, output_len.draw(rng)))
    return prompts


def single_token_words(tokenizer: Tokenizer) -> list[str]:
    """The WORDS this tokenizer makes one token of, first in a text and after a space."""
    return [word for word in WORDS if len(tokenizer.encode(f"{word} {word}")) == 2]


def exact_prompt(
    tokenizer: Tokenizer, tokens: int, words: list[str], rng: random.Random, pool: Sequence[str]
) -> tuple[str, int]:
    """Text the tokenizer counts as `tokens` tokens (special tokens included), and its count,
    from `words` (more drawn from `pool` with `rng` when they are too few).

    The words are encoded, the ids cut to the length wanted (less the special tokens),
    decoded, and counted again: decoding then encoding can merge or split at the cut, so the
    cut moves by the difference, up to RECUTS times. The count returned is the true one
    either way (a prompt of 1 token plus a BOS stays 2).
    """
    body = max(1, tokens - tokenizer.special_tokens())
    words = list(words)
    ids = tokenizer.encode(" ".join(words))
    cut = body
    text, counted = "", 0
    for _ in range(RECUTS):
        while len(ids) < cut:  # words of several tokens come out longer, not shorter: rarely taken
            words += [rng.choice(pool) for _ in range(cut - len(ids) + 8)]
            ids = tokenizer.encode(" ".join(words))
        text = tokenizer.decode(ids[:cut])
        counted = tokenizer.count(text)
        if counted == tokens or (cut == 1 and counted > tokens):
            break
        cut = max(1, cut + tokens - counted)
    return text, counted


def tokenizer_prompts(
    count: int, input_len: LengthRange, output_len: LengthRange, rng: random.Random, tokenizer: Tokenizer
) -> list[BenchPrompt]:
    """`count` prompts of lengths drawn from the ranges, exact by the tokenizer.

    With words that are one token each, N words are the prompt of N tokens as soon as the
    tokenizer agrees, which one count (all prompts' together, in parallel) checks; the others,
    and every prompt of a vocabulary without such words, go through exact_prompt's cut.
    """
    pool = single_token_words(tokenizer)
    one_token_words = len(pool) >= MIN_POOL
    if not one_token_words:
        pool = list(WORDS)
    special = tokenizer.special_tokens()
    drafts = []  # (tokens wanted, words, output length, seed of the prompt's own cut)
    for _ in range(count):
        tokens = input_len.draw(rng)
        words = [rng.choice(pool) for _ in range(max(1, tokens - special))]
        drafts.append((tokens, words, output_len.draw(rng), rng.getrandbits(64)))
    texts = [" ".join(words) for _, words, _, _ in drafts]
    counts = tokenizer.count_all(texts) if one_token_words else [0] * count
    prompts = []
    for (tokens, words, wanted, seed), text, counted in zip(drafts, texts, counts, strict=True):
        if counted != tokens:
            text, counted = exact_prompt(tokenizer, tokens, words, random.Random(seed), pool)
        prompts.append(BenchPrompt(text, counted, wanted))
    return prompts


def dataset_prompts(
    lines: Sequence[DatasetLine],
    count: int,
    output_len: LengthRange,
    rng: random.Random,
    tokenizer: Tokenizer | None,
) -> list[BenchPrompt]:
    """`count` prompts from the dataset's lines in file order, cycled when it has fewer."""
    used = lines[:count]
    # A conversation is counted by its contents; the chat template adds its own tokens.
    texts = [line.text for line in used]
    counts = tokenizer.count_all(texts) if tokenizer is not None else [approximate_count(t) for t in texts]
    made: list[BenchPrompt] = []
    for line, tokens in zip(used, counts, strict=True):
        wanted = line.output_len if line.output_len is not None else output_len.draw(rng)
        made.append(BenchPrompt(line.text, tokens, wanted, line.messages))
    return [made[i % len(made)] for i in range(count)]


@dataclass(frozen=True)
class PromptSpec:
    """What bench asked for: the lengths, a dataset, whose tokenizer, the random seed."""

    input_len: LengthRange
    output_len: LengthRange
    dataset: Path | None = None  # JSONL of prompts instead of synthetic ones
    tokenizer_repo: str | None = None  # the model's Hub repo (models.yaml modelURL), when known
    seed: int = 0
    # `--tokenizer REPO|PATH`: asked for by the user, so failing to load it is an error
    # (tokenizer_repo's failure only falls back to the approximation).
    tokenizer: str | None = None


@dataclass(frozen=True)
class PromptSet:
    prompts: list[BenchPrompt]
    source: str  # for the report and the saved run: where the prompts and their counts came from
    tokenizer: str | None  # the repo whose tokenizer counted them (None: the approximation)

    @property
    def chat(self) -> bool:
        """The prompts are conversations: send them to /v1/chat/completions."""
        return any(p.messages is not None for p in self.prompts)


def build_prompts(
    spec: PromptSpec, count: int, *, hf_endpoint: str | None = None, token: str | None = None
) -> PromptSet:
    """The `count` prompts a run sends (a dataset's are cycled when it has fewer).

    `hf_endpoint` and `token` are the settings' hf_endpoint and hf_token, for the tokenizer
    (None: HF_ENDPOINT, else huggingface.co; anonymous). Raises UsageError for a bad dataset,
    and for a `--tokenizer` that cannot be loaded (ExternalError's exit code when the Hub
    failed); never for the models.yaml repo's.
    """
    lines = None
    if spec.dataset is not None:
        from vllmctl.ops.bench.dataset import read_dataset

        lines = read_dataset(spec.dataset)  # before the tokenizer: a bad file fails at once
    tokenizer, why_not = _tokenizer(spec, hf_endpoint, token)
    rng = random.Random(spec.seed)
    counts = f"exact token counts by {tokenizer.source}'s tokenizer" if tokenizer else ""
    if lines is not None:
        prompts = dataset_prompts(lines, count, spec.output_len, rng, tokenizer)
        what = f"{len(lines)} prompts of {spec.dataset}"
        if len(lines) < count:
            what += f", cycled to {count} (a repeat may be served from the prefix cache)"
        if tokenizer is None:
            counts = f"token counts estimated at {CHARS_PER_TOKEN} characters a token ({why_not})"
        elif any(p.messages for p in prompts):
            counts += " (message contents, without the chat template)"
        return PromptSet(prompts, f"{what}, {counts}", tokenizer.source if tokenizer else None)
    if tokenizer is not None:
        prompts = tokenizer_prompts(count, spec.input_len, spec.output_len, rng, tokenizer)
        return PromptSet(prompts, f"synthetic, {counts}", tokenizer.source)
    prompts = synthetic_prompts(count, spec.input_len, spec.output_len, rng)
    return PromptSet(prompts, f"synthetic, approximate token counts ({why_not})", None)


def _tokenizer(spec: PromptSpec, hf_endpoint: str | None, token: str | None) -> tuple[Tokenizer | None, str]:
    """The tokenizer to count with, or None and why not (a clause for PromptSet.source)."""
    source = spec.tokenizer or spec.tokenizer_repo
    if not source:
        return None, "no tokenizer: the model's repo is not known"
    from vllmctl.apis.hub import DEFAULT_ENDPOINT
    from vllmctl.apis.tokenizer import TokenizerUnavailable, load_tokenizer

    # The settings' hf_endpoint; a caller without settings still honours HF_ENDPOINT.
    endpoint = hf_endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    try:
        return load_tokenizer(source, endpoint=endpoint, token=token), ""
    except TokenizerUnavailable as error:
        if spec.tokenizer:
            raise _refused(spec.tokenizer, error) from None
        return None, f"no tokenizer: {error.reason}"


def _refused(source: str, error: TokenizerUnavailable) -> UsageError:
    """The error for a --tokenizer the user asked for that cannot be loaded: the Hub's exit
    code when the Hub failed (3), a usage error's (2) otherwise."""
    refused = UsageError(
        f"--tokenizer {source}: {error.reason}; give a Hub repo with a tokenizer.json, or the path of one."
    )
    refused.exit_code = error.exit_code
    return refused
