"""A model's own tokenizer: its `tokenizer.json`, from a local path, the HuggingFace cache or
the Hub, read by HuggingFace's `tokenizers` library (Rust, no torch).

`tokenizer.json` is the file vLLM's fast tokenizers (transformers' PreTrainedTokenizerFast)
are built from, so counting with it gives the server's counts for plain text. Repos that ship
only a SentencePiece `tokenizer.model` (some older ones) have no tokenizer.json: for them this
module says so, and bench falls back to its approximation.

Both libraries are imported inside the functions: `vllmctl --help` must not load them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllmctl.core.errors import EXIT_EXTERNAL, EXIT_USAGE, VllmctlError

TOKENIZER_FILE = "tokenizer.json"


class TokenizerUnavailable(VllmctlError):
    """The tokenizer could not be had; the message says why, in one sentence without a token."""

    def __init__(self, source: str, reason: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(f"the tokenizer of {source} could not be loaded: {reason}.")
        self.source = source
        self.reason = reason
        self.exit_code = exit_code  # the Hub's failures keep theirs (3)


@dataclass(frozen=True)
class Tokenizer:
    """A loaded tokenizer and where it came from."""

    source: str  # the repo id or the path the user gave
    path: Path  # the tokenizer.json read
    local: bool  # a path the user gave, not a Hub repo (downloaded or from the HF cache)
    _tokenizer: Any  # tokenizers.Tokenizer (no type information worth importing here)

    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """The token ids of `text`; with `special`, plus what the model adds around a prompt (BOS...)."""
        return list(self._tokenizer.encode(text, add_special_tokens=special).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=False))

    def count(self, text: str) -> int:
        """Tokens the server counts for `text` sent as a completion prompt: vLLM tokenizes it
        with add_special_tokens=True, so a BOS the tokenizer adds is counted."""
        return len(self._tokenizer.encode(text, add_special_tokens=True).ids)

    def count_all(self, texts: list[str]) -> list[int]:
        """`count` of each text, encoded together on all cores (the library's batch)."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        return [len(encoding.ids) for encoding in encodings]

    def special_tokens(self) -> int:
        """How many tokens the tokenizer adds around any prompt (Llama's BOS: 1; Qwen: 0)."""
        return int(self._tokenizer.num_special_tokens_to_add(False))


def is_local(source: str) -> bool:
    """A path (absolute, ./relative, ~, or one that exists) rather than a Hub repo id."""
    return source.startswith(("/", ".", "~")) or Path(source).expanduser().exists()


def load_tokenizer(
    source: str, *, endpoint: str, token: str | None, timeout: float | None = None
) -> Tokenizer:
    """The tokenizer of `source`: a tokenizer.json file, a directory holding one, or a Hub repo
    (downloaded into the HuggingFace cache, the cached copy when the Hub cannot be reached).

    Raises TokenizerUnavailable with the reason: no such file or repo, no tokenizer.json in it,
    gated without access, a rejected token, the Hub unreachable with nothing cached, a file the
    library cannot read.
    """
    if is_local(source):
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise TokenizerUnavailable(source, f"{path} does not exist")
        return Tokenizer(source, path, True, _read(source, path))
    if "://" in source:
        raise TokenizerUnavailable(
            source, "it is not a HuggingFace repo id (give --tokenizer with a repo or a tokenizer.json)"
        )
    from vllmctl.apis import hub

    try:
        path = hub.download_file(
            source, TOKENIZER_FILE, token, endpoint=endpoint, timeout=timeout or hub.DEFAULT_TIMEOUT
        )
    except hub.FileNotInRepo:
        raise TokenizerUnavailable(source, f"the repo has no {TOKENIZER_FILE}", EXIT_EXTERNAL) from None
    except VllmctlError as error:  # RepoNotFound, HubAccessDenied, HubTokenRejected, HubUnreachable...
        raise TokenizerUnavailable(source, str(error).rstrip("."), error.exit_code) from None
    return Tokenizer(source, path, False, _read(source, path))


# Tokenizers read in this process, by file and version: a vocabulary of 150,000 tokens takes
# about 2 s to load, and a sweep builds its prompts once per point.
_LOADED: dict[tuple[str, int, int], Any] = {}


def _read(source: str, path: Path) -> Any:
    from tokenizers import Tokenizer as RustTokenizer

    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError as error:
        raise TokenizerUnavailable(source, f"{path} cannot be read ({error.strerror or error})") from None
    if key in _LOADED:
        return _LOADED[key]
    try:
        loaded = RustTokenizer.from_file(str(path))
    except Exception as error:  # the library raises a bare Exception with serde's message
        words = " ".join(str(error).split())[:200]
        raise TokenizerUnavailable(
            source, f"{path} is not a tokenizer.json the tokenizers library reads ({words})"
        ) from None
    if len(_LOADED) >= 4:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = loaded
    return loaded
