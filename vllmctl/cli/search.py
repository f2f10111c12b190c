"""search: the Hub's text-generation models matching a query, and whether each fits the GPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from vllmctl.cli.options import command
from vllmctl.ui import App

if TYPE_CHECKING:
    from vllmctl.ops.search import Report, Targets


@command("search")
@click.argument("query")
@click.option(
    "--gpu",
    "gpu_flag",
    metavar="TYPE",
    help="judge on this GPU type, e.g. A100-80GB (`vllmctl estimate --list-gpus`) [env VLLM_GPU_TYPE; "
    "default: the cluster nodes' product labels]",
)
@click.option("--gpu-memory", metavar="SIZE", help="memory per GPU, e.g. 80Gi [env VLLM_GPU_MEMORY]")
@click.option(
    "--max-gpus",
    type=click.IntRange(1, 64),
    help="most GPUs one replica may span (default: the largest GPU count of one node; 8 without a cluster)",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 50),  # each shown model costs a config.json download
    default=10,
    show_default=True,
    help="models shown (the most downloaded first)",
)
@click.option("--fits", "fits_only", is_flag=True, help="show only models that fit")
def search_command(
    app: App,
    query: str,
    gpu_flag: str | None,
    gpu_memory: str | None,
    max_gpus: int | None,
    limit: int,
    fits_only: bool,
) -> None:
    """Find text-generation models on the Hub and whether each fits the cluster's GPUs.

    Asks the HuggingFace Hub (HF_ENDPOINT; with VLLM_HF_TOKEN or the stored token, which
    also sees the private repos it may read) for the most downloaded text-generation models
    whose id contains QUERY. PARAMS (the safetensors total), GATED, DOWNLOADS (last 30
    days) and LICENSE (the model card's) are the Hub's. FITS and GPUS are vllmctl's own
    estimate (`vllmctl estimate`: weights, KV cache for the model's full context, overhead)
    on the nodes' GPU type or --gpu, at the fewest GPUs per replica (tensorParallelSize) one
    node offers; it reads each shown model's config.json. Each model that fits gets the
    `vllmctl add-model` line for its entry (requestGPU, tensorParallelSize, memory and
    storage from the weights). docs/search.md explains what is judged and what is not.
    """
    from vllmctl.cli.secrets import hub_token
    from vllmctl.ops.search import search

    targets = gpu_targets(app, gpu_flag, gpu_memory, max_gpus)
    if fits_only and not targets.targets:
        raise click.UsageError(f"--fits needs a GPU to judge against: {targets.unknown}.")
    settings = app.settings
    report = search(
        query,
        token=hub_token(app),
        endpoint=settings.hf_endpoint,
        targets=targets,
        limit=limit,
        fits_only=fits_only,
    )
    if report.token_rejected:
        app.warn(
            f"{settings.hf_endpoint} rejected the HuggingFace token (invalid, expired or revoked): "
            "these are the results anyone sees, without private repos."
        )
    app.emit(report.as_json(), lambda: _show(app, report))


def _show(app: App, report: Report) -> None:
    from vllmctl.ops.search import count_text

    if not report.results:
        what = "that fits" if report.fits_only else "on the Hub"
        app.info(f"No text-generation model {what} matches {report.query!r} ({report.examined} listed).")
        return
    for target in report.targets.targets:
        app.info(
            f"GPU: {target.gpu.name} ({target.gpu.source}), up to {target.max_gpus} per replica "
            f"({target.max_from})"
        )
    if report.targets.unknown:
        app.warn(f"fit unknown: {report.targets.unknown}.")
    rows = []
    for r in report.results:
        listing = r.listing
        gated = "?" if listing.gated is None else ("yes" if listing.gated else "no")
        if listing.private:
            gated += " (private)"
        fits = "?" if r.fits is None else ("yes" if r.fits else "no")
        gpus = f"{r.gpus} x {r.target.gpu.name}" if r.gpus and r.target else "-"
        downloads = f"{listing.downloads:,}" if listing.downloads is not None else "?"
        rows.append(
            (
                listing.repo_id,
                count_text(listing.parameters),
                gated,
                downloads,
                listing.license or "?",
                fits,
                gpus,
            )
        )
    app.table(("model", "params", "gated", "downloads", "license", "fits", "gpus"), rows)
    lines = [f"  {r.add_model_line()}" for r in report.results if r.fits]
    if lines:
        print("\nTo add one (resources from the estimate):")
        print("\n".join(lines))
    notes = [f"  {r.listing.repo_id}: {r.reason}" for r in report.results if not r.fits]
    if notes:
        app.info("\nWhy not (or why unknown):\n" + "\n".join(notes))


def gpu_targets(app: App, gpu_flag: str | None, gpu_memory: str | None, max_gpus: int | None) -> Targets:
    """The GPUs to judge against: the flags and settings, and the cluster's nodes (when they
    can be read: their GPU counts bound a replica's, and without a flag their type is used)."""
    from vllmctl.ops.search import choose_targets, read_cluster_nodes

    nodes, why = read_cluster_nodes(app.settings)
    return choose_targets(
        gpu_flag=gpu_flag,
        memory_flag=gpu_memory,
        max_gpus=max_gpus,
        settings=app.settings,
        nodes=nodes,
        nodes_unread=why,
    )


COMMANDS = {"search": search_command}
