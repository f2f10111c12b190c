"""--plot FILE: latency against output throughput, one point per sweep point (or the one
run), drawn with matplotlib, an optional extra (`pip install 'vllmctl[plot]'`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vllmctl.core.errors import UsageError

FORMATS = (".png", ".svg")
# vllmctl's `plot` extra; from a checkout (as the README installs it) that is '.[plot]'.
INSTALL = "pip install 'vllmctl[plot]' (from a checkout: pip install '.[plot]'; or matplotlib itself)"


def check_plot_target(path: Path) -> None:
    """Before any load is sent: the file's type, and that matplotlib can be imported."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {path}: the file must end in .png or .svg.")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib, which is not installed: run {INSTALL}.") from None


def plot(path: Path, parameter: str | None, points: list[dict[str, Any]]) -> None:
    """Median TTFT and median E2EL (ms) against output token throughput (tok/s)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    matplotlib.rcParams["svg.fonttype"] = "none"  # an SVG's labels stay text (searchable)
    import matplotlib.pyplot as plt

    x = [p["metrics"]["output_throughput"] or 0.0 for p in points]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, label, marker in (("e2el_ms", "median E2EL", "o"), ("ttft_ms", "median TTFT", "s")):
        y = [p["metrics"][key]["median"] for p in points]
        axes.plot(x, [v if v is not None else float("nan") for v in y], marker=marker, label=label)
    if parameter is not None:
        setting = "request_rate" if parameter == "rate" else parameter
        for xi, p in zip(x, points, strict=True):
            value = p["metrics"]["e2el_ms"]["median"]
            if value is not None:
                shown = p["settings"][setting]
                shown = "inf" if shown is None else f"{shown:g}"
                axes.annotate(f"{parameter}={shown}", (xi, value), fontsize=8,
                              textcoords="offset points", xytext=(4, 4))  # fmt: skip
    axes.set_xlabel("output token throughput (tok/s)")
    axes.set_ylabel("latency (ms)")
    axes.set_title(f"{points[0]['model']}: latency against throughput")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as e:
        raise UsageError(f"--plot {path}: cannot write it ({e.strerror or e}).") from None
    finally:
        plt.close(figure)
