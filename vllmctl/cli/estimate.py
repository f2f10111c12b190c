"""estimate: a model's GPU memory (weights, KV cache, overhead) against the GPU it gets."""

from __future__ import annotations

import sys
from typing import Any

import click

from vllmctl.cli.options import command, complete_model_names
from vllmctl.ui import App


@command("estimate")
@click.argument("model", required=False, shell_complete=complete_model_names)
@click.option(
    "--gpu", "gpu_flag", metavar="TYPE", help="GPU type, e.g. H100-80GB or a node label [env VLLM_GPU_TYPE]"
)
@click.option(
    "--gpu-memory",
    metavar="SIZE",
    help="memory per GPU, e.g. 80Gi (overrides the type's) [env VLLM_GPU_MEMORY]",
)
@click.option(
    "--max-model-len",
    type=click.IntRange(min=1),
    help="context length (default: the entry's, else the model's)",
)
@click.option(
    "--tensor-parallel-size",
    type=click.IntRange(min=1),
    help="GPUs one replica spans (default: the entry's, else 1)",
)
@click.option(
    "--gpu-memory-utilization",
    type=click.FloatRange(0, 1, min_open=True),
    help="share of GPU memory vLLM uses (default 0.9)",
)
@click.option(
    "--max-num-seqs", type=click.IntRange(min=1), help="concurrent sequences (default: vLLM's for the GPU)"
)
@click.option("--dtype", help="vLLM --dtype (default: the entry's, else auto)")
@click.option(
    "--list-gpus", is_flag=True, help="list the GPU types vllmctl knows, with their memory, and exit"
)
def estimate_command(
    app: App,
    model: str | None,
    gpu_flag: str | None,
    gpu_memory: str | None,
    max_model_len: int | None,
    tensor_parallel_size: int | None,
    gpu_memory_utilization: float | None,
    max_num_seqs: int | None,
    dtype: str | None,
    list_gpus: bool,
) -> None:
    """Estimate a model's GPU memory (weights, KV cache) and whether it fits its GPUs.

    MODEL is a models.yaml name (its engine options apply) or a HuggingFace repo id.
    Parameters and the model's shape come from the Hub (HF_ENDPOINT), with VLLM_HF_TOKEN
    or the stored token for gated models. docs/estimate.md explains every figure.
    Exit 0: fits; 1: does not fit.
    """
    if list_gpus:
        _list_gpus(app)
        return
    if not model:
        raise click.UsageError("give MODEL: a models.yaml name or a HuggingFace repo id (or --list-gpus).")
    from vllmctl.ops.memory import choose_gpu, estimate_entry, offload_capacity, offload_lines

    entry = _entry(app, model)
    engine = dict(entry.get("vllmConfig") or {})
    overrides = {
        "maxModelLen": max_model_len,
        "tensorParallelSize": tensor_parallel_size,
        "gpuMemoryUtilization": gpu_memory_utilization,
        "maxNumSeqs": max_num_seqs,
        "dtype": dtype,
    }
    engine.update({k: v for k, v in overrides.items() if v is not None})
    entry = {**entry, "vllmConfig": engine}
    settings = app.settings
    gpu = choose_gpu(
        gpu_flag=gpu_flag,
        memory_flag=gpu_memory,
        settings=settings,
        node_label=None
        if (gpu_flag or gpu_memory or settings.gpu_type or settings.gpu_memory)
        else _node_gpu(app),
    )
    facts = _facts(app, entry)
    result = estimate_entry(entry, facts, gpu)
    offload = offload_capacity(entry, result)  # kvCache's extra KV capacity (None without)
    extra = {"kvOffload": offload} if offload is not None else {}
    repo = str(entry["modelURL"])
    head = f"{entry['name']} ({repo})" if entry["name"] != repo else repo
    app.emit(
        {
            "model": entry["name"],
            "modelURL": repo,
            "gpu": {"name": gpu.name, "memory": gpu.memory, "source": gpu.source},
            **result.as_json(),
            **extra,
        },
        lambda: print(
            "\n".join(
                [
                    f"{head} on {gpu.name} ({gpu.source}):",
                    *(f"  {line}" for line in result.lines()),
                    *(f"  {line}" for line in (offload_lines(offload) if offload else [])),
                ]
            )
        ),
    )
    if not result.fits:
        from vllmctl.core.errors import EXIT_NEGATIVE

        sys.exit(EXIT_NEGATIVE)


def _entry(app: App, model: str) -> dict[str, Any]:
    """The models.yaml entry named `model`, else a bare entry for a Hub repo id."""
    from vllmctl.catalog.selected import load_selected
    from vllmctl.core.errors import UsageError

    catalog = load_selected(app.settings)
    if catalog.exists:
        for entry in catalog.models:
            if entry.name == model:
                data = entry.effective()
                if "://" in str(data.get("modelURL", "")):
                    raise UsageError(
                        f"{model}'s modelURL {data['modelURL']} is not a HuggingFace repo, so there is no "
                        "Hub metadata to estimate from: estimate the repo it was copied from instead."
                    )
                return data
    if "/" not in model:
        known = ", ".join(m.name for m in catalog.models) if catalog.exists else ""
        hint = f" (models.yaml has: {known})" if known else ""
        raise UsageError(
            f"{model!r} is neither a model in {app.settings.models_path}{hint} "
            "nor a HuggingFace repo id (org/name)."
        )
    return {"name": model, "modelURL": model, "requestGPU": 1}


def _facts(app: App, entry: dict[str, Any]) -> Any:
    """The Hub's facts, with VLLM_HF_TOKEN, or the stored token when the model is gated."""
    from vllmctl.apis.hub import model_facts

    settings = app.settings
    token = settings.hf_token or None
    if token is None and entry.get("gated") is True:
        token = _stored_token(app)
    return model_facts(str(entry["modelURL"]), token, endpoint=settings.hf_endpoint)


def _stored_token(app: App) -> str | None:
    from vllmctl.cli.secrets import secret_backend
    from vllmctl.core.errors import VllmctlError
    from vllmctl.secrets.specs import HF_TOKEN

    try:
        with secret_backend(app) as backend:
            value: str | None = backend.get(HF_TOKEN)
            return value
    except VllmctlError as e:
        app.warn(f"could not read the stored HuggingFace token ({e.message}); asking the Hub without one.")
        return None


def _node_gpu(app: App) -> str | None:
    """The GPU product label of the cluster's GPU nodes, when a cluster answers."""
    from vllmctl.cluster.kube import Kube
    from vllmctl.core.errors import VllmctlError
    from vllmctl.ops.memory import product_label

    try:
        with Kube.from_settings(app.settings) as kube:
            nodes = kube.list("v1", "nodes", None)
    except VllmctlError:
        return None
    return product_label((node.get("metadata") or {}).get("labels") or {} for node in nodes)


def _list_gpus(app: App) -> None:
    from vllmctl.ops.estimate import GPU_TYPES

    rows = [
        (g.name, f"{g.memory / 2**30:.2f} GiB", ", ".join(g.labels) or "-", "~" if g.approximate else "")
        for g in GPU_TYPES
    ]
    data = [
        {"name": g.name, "memory": g.memory, "labels": list(g.labels), "approximate": g.approximate}
        for g in GPU_TYPES
    ]
    app.emit(data, lambda: app.table(("gpu", "memory", "node labels", "approx"), rows))


COMMANDS = {"estimate": estimate_command}
