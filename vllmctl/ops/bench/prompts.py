"""The prompts a benchmark sends: synthetic ones of a chosen length in tokens, or a dataset's.

A prompt's length is counted in the model's tokens. Without the model's tokenizer, a
synthetic prompt is made of words from `WORDS`, each a single token (with its leading
space) in the BPE vocabularies of the common open models (Llama, Qwen, Mistral, GPT-2),
so N words come to about N tokens; the server's `usage.prompt_tokens` is the true count
and is what the metrics use when the server sends it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from vllmctl.core.errors import UsageError

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


def approximate_prompt(tokens: int, rng: random.Random) -> str:
    """About `tokens` tokens of text without a tokenizer (see the module docstring)."""
    return " ".join(rng.choice(WORDS) for _ in range(tokens))


def synthetic_prompts(
    count: int, input_len: LengthRange, output_len: LengthRange, rng: random.Random
) -> list[BenchPrompt]:
    """`count` prompts of lengths drawn from the ranges, by the approximation."""
    prompts = []
    for _ in range(count):
        tokens = input_len.draw(rng)
        prompts.append(BenchPrompt(approximate_prompt(tokens, rng), tokens, output_len.draw(rng)))
    return prompts


@dataclass(frozen=True)
class PromptSpec:
    """What bench asked for: the lengths, a dataset, whose tokenizer, the random seed."""

    input_len: LengthRange
    output_len: LengthRange
    dataset: Path | None = None  # JSONL of prompts instead of synthetic ones
    tokenizer_repo: str | None = None  # the model's Hub repo (models.yaml modelURL), when known
    seed: int = 0


@dataclass(frozen=True)
class PromptSet:
    prompts: list[BenchPrompt]
    source: str  # for the report and the saved run: where the prompts and their counts came from
    tokenizer: str | None  # the repo whose tokenizer counted them (None: the approximation)


def build_prompts(
    spec: PromptSpec, count: int, *, hf_endpoint: str | None = None, token: str | None = None
) -> PromptSet:
    """The `count` prompts a run sends (a dataset's are cycled when it has fewer)."""
    rng = random.Random(spec.seed)
    prompts = synthetic_prompts(count, spec.input_len, spec.output_len, rng)
    return PromptSet(prompts, "synthetic, approximate token counts (no tokenizer)", None)
