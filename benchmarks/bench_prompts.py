#!/usr/bin/env python3
"""How exact `vllmctl bench`'s prompt lengths are, against real models' tokenizer.json files.

    python3 benchmarks/bench_prompts.py [TOKENIZER.json ...] [--prompts 200] [--text FILE] [--json FILE]

Without paths it takes every tokenizer.json in the HuggingFace cache (HF_HUB_CACHE, HF_HOME/hub,
~/.cache/huggingface/hub). For each tokenizer it reports:

- words: how many of the approximation's WORDS are one token (first in a text and after a space);
- approximation: synthetic prompts built without a tokenizer (`--input-len N`, N words), counted
  by the real tokenizer as vLLM counts a completion prompt (special tokens included): the mean
  and the extremes of (real - N) for N = 16, 128, 1024;
- estimate: a dataset's prompts counted at 4 characters a token without a tokenizer, against the
  real count, on paragraphs of English prose (`--text`, default the GPL-3 text Debian ships);
  the median and the 10th/90th percentiles of estimate / real;
- exact: the tokenizer path's prompts, lengths 1 to 2048 (all of 1-64, then spread): how many
  have exactly the length asked for, and the largest miss;
- build time: seconds to build `--prompts` prompts of 1024 tokens by the tokenizer (a report,
  not a target: bench builds its prompts before the clock starts).

A report, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vllmctl.apis.hub import hub_cache_dir
from vllmctl.apis.tokenizer import load_tokenizer
from vllmctl.ops.bench.prompts import (
    CHARS_PER_TOKEN,
    WORDS,
    LengthRange,
    PromptSpec,
    approximate_count,
    build_prompts,
    single_token_words,
)

DEFAULT_TEXT = Path("/usr/share/common-licenses/GPL-3")
LENGTHS = [*range(1, 65), 100, 127, 128, 200, 256, 500, 512, 1000, 1024, 2000, 2048]


def paragraphs(path: Path) -> list[str]:
    """Paragraphs of at least 200 characters, whitespace folded (prose, not headings)."""
    blocks = [" ".join(block.split()) for block in path.read_text(encoding="utf-8").split("\n\n")]
    return [block for block in blocks if len(block) >= 200]


def measure(path: Path, prompts: int, prose: list[str]) -> dict[str, Any]:
    tokenizer = load_tokenizer(str(path), endpoint="", token=None)
    report: dict[str, Any] = {
        "tokenizer": str(path),
        "special_tokens": tokenizer.special_tokens(),
        "single_token_words": f"{len(single_token_words(tokenizer))}/{len(WORDS)}",
    }
    approximation = {}
    for length in (16, 128, 1024):
        made = build_prompts(PromptSpec(LengthRange(length, length), LengthRange(1, 1), seed=length), prompts)
        errors = [tokenizer.count(p.text) - length for p in made.prompts]
        approximation[length] = {"mean": statistics.mean(errors), "min": min(errors), "max": max(errors)}
    report["approximation_real_minus_asked"] = approximation
    if prose:
        ratios = sorted(approximate_count(text) / tokenizer.count(text) for text in prose)
        deciles = statistics.quantiles(ratios, n=10)
        report["estimate_over_real"] = {
            "paragraphs": len(prose),
            "median": statistics.median(ratios),
            "p10": deciles[0],
            "p90": deciles[-1],
            "real_chars_per_token": sum(map(len, prose)) / sum(tokenizer.count(t) for t in prose),
        }
    exact = misses = worst = 0
    for length in LENGTHS:
        made = build_prompts(
            PromptSpec(LengthRange(length, length), LengthRange(1, 1), tokenizer=str(path)), 5
        )
        for prompt in made.prompts:
            real = tokenizer.count(prompt.text)
            assert real == prompt.input_tokens, "a prompt's count must be the tokenizer's"
            if real == length:
                exact += 1
            else:
                misses += 1
                worst = max(worst, abs(real - length))
    report["exact"] = {"exact": exact, "missed": misses, "largest_miss": worst}
    started = time.perf_counter()
    build_prompts(PromptSpec(LengthRange(1024, 1024), LengthRange(1, 1), tokenizer=str(path)), prompts)
    report["build_seconds"] = round(time.perf_counter() - started, 3)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    paths = args.paths or sorted(hub_cache_dir().glob("models--*/snapshots/*/tokenizer.json"))
    if not paths:
        print("no tokenizer.json given, and none in the HuggingFace cache", file=sys.stderr)
        return 2
    prose = paragraphs(args.text) if args.text.is_file() else []
    reports = [measure(path, args.prompts, prose) for path in paths]
    for report in reports:
        print(report["tokenizer"])
        print(f"  special tokens added to a prompt: {report['special_tokens']}")
        print(f"  WORDS that are one token: {report['single_token_words']}")
        for length, error in report["approximation_real_minus_asked"].items():
            print(
                f"  approximation, --input-len {length}: real - asked mean {error['mean']:+.2f} "
                f"(min {error['min']:+d}, max {error['max']:+d})"
            )
        if "estimate_over_real" in report:
            est = report["estimate_over_real"]
            print(
                f"  dataset estimate ({CHARS_PER_TOKEN} chars/token) / real, {est['paragraphs']} paragraphs: "
                f"median {est['median']:.2f} (p10 {est['p10']:.2f}, p90 {est['p90']:.2f}); "
                f"real {est['real_chars_per_token']:.2f} chars/token"
            )
        ex = report["exact"]
        worst = ex["largest_miss"]
        print(f"  tokenizer path: {ex['exact']} exact, {ex['missed']} missed (largest miss {worst})")
        print(f"  build {args.prompts} prompts of 1024 tokens: {report['build_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
