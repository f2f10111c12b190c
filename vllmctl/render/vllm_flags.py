"""Which `vllm serve` flags each vLLM release accepts, so vllmctl never deploys one the
image refuses (the old tool kept passing `--disable-log-requests` after vLLM dropped it,
and engines on `latest` stopped starting).

The table is from vLLM's own argument definitions in each release's source, 0.6.0 to
0.33.0 (docs/vllm-flags.md has the evidence); releases before 0.6.0 are not covered.
A flag missing from the table is not checked.
"""

from __future__ import annotations

import re
from typing import Any

from vllmctl.core.errors import UsageError

Version = tuple[int, ...]

# flag -> (first release that accepts it, first release that refuses it or None)
FLAGS: dict[str, tuple[Version, Version | None]] = {
    "--served-model-name": ((0, 6, 0), None),
    "--max-model-len": ((0, 6, 0), None),
    "--dtype": ((0, 6, 0), None),
    "--tensor-parallel-size": ((0, 6, 0), None),
    "--gpu_memory_utilization": ((0, 6, 0), None),  # underscores normalised since 0.5.1
    "--gpu-memory-utilization": ((0, 6, 0), None),
    "--max-num-seqs": ((0, 6, 0), None),
    "--enable-prefix-caching": ((0, 6, 0), None),
    "--no-enable-prefix-caching": ((0, 6, 5), None),
    "--enable-chunked-prefill": ((0, 6, 0), None),
    "--no-enable-chunked-prefill": ((0, 8, 5), None),
    "--max_loras": ((0, 6, 0), None),
    "--max-loras": ((0, 6, 0), None),
    "--runner": ((0, 10, 1), None),
    "--convert": ((0, 10, 1), None),
    "--task": ((0, 6, 4), (0, 13, 0)),
    "--revision": ((0, 6, 0), None),
    "--enable-log-requests": ((0, 10, 1), None),
    # Removed in 0.17.0; 0.33.0 accepts it again (as the opposite of --enable-log-requests).
    "--disable-log-requests": ((0, 6, 0), (0, 17, 0)),
    "--kv-transfer-config": ((0, 6, 5), None),
}
# Flags refused in a range of releases and accepted again after it: flag -> (from, until).
RETURNED: dict[str, tuple[Version, Version]] = {"--disable-log-requests": ((0, 17, 0), (0, 33, 0))}

# vllmConfig key -> the flag the chart emits for it (docs/chart-facts.md, section 2a)
CHART_FLAGS = {
    "maxModelLen": "--max-model-len",
    "dtype": "--dtype",
    "tensorParallelSize": "--tensor-parallel-size",
    "maxNumSeqs": "--max-num-seqs",
    "gpuMemoryUtilization": "--gpu_memory_utilization",
    "maxLoras": "--max_loras",
    "runner": "--runner",
    "convert": "--convert",
}


def image_version(tag: str) -> Version | None:
    """The vLLM release of an image tag (`v0.11.0`, `0.10.1.1`, `v0.9.2-cu128`), or None."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", tag.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def flags_for(config: dict[str, Any]) -> list[str]:
    """The flags the chart will pass for this vllmConfig (plus those in extraArgs)."""
    flags = [flag for key, flag in CHART_FLAGS.items() if key in config]
    for key, on, off in (
        ("enablePrefixCaching", "--enable-prefix-caching", "--no-enable-prefix-caching"),
        ("enableChunkedPrefill", "--enable-chunked-prefill", "--no-enable-chunked-prefill"),
    ):
        if key in config or key == "enablePrefixCaching":  # the chart always emits one of these two
            flags.append(on if config.get(key) else off)
    flags += [arg.split("=", 1)[0] for arg in config.get("extraArgs") or [] if arg.startswith("--")]
    return flags


def _shown(version: Version) -> str:
    return "v" + ".".join(map(str, version))


def check(model: str, flags: list[str], engine: Version | None) -> None:
    """Refuse flags the engine's vLLM release does not accept (when the release is known)."""
    if engine is None:
        return
    for flag in flags:
        known = FLAGS.get(flag)
        if known is None:
            continue
        added, removed = known
        if engine < added:
            raise UsageError(
                f"{model}: vLLM {_shown(engine)} does not know {flag} (added in {_shown(added)}); "
                "raise the image tag (the model's `tag`, else VLLM_MODEL_TAG) or drop the option."
            )
        gap = RETURNED.get(flag)
        if gap is not None and not gap[0] <= engine < gap[1]:
            continue
        if removed is not None and engine >= removed:
            raise UsageError(
                f"{model}: vLLM {_shown(engine)} no longer accepts {flag} (removed in {_shown(removed)}); "
                "drop it from the model's options."
            )
