"""`vllmctl search`: the Hub's text-generation models matching a query, each judged by
vllmctl's own memory estimate (`ops/memory.py`, `ops/estimate.py`) on the cluster's GPUs:
does it fit, with the fewest GPUs per replica (requestGPU = tensorParallelSize) one node
offers, and the resources an entry for it would ask for. docs/search.md explains the choices.

The Hub is asked once for the list (`apis/hub.search_models`), then for each model's
config.json (its layers and heads: the KV cache), a few at a time and only for the models
shown. No user talk here; the cli module shows the report.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllmctl.core.errors import VllmctlError
from vllmctl.ops.estimate import MAX_SUGGESTED_TP, ConfigError, GiB, gpu_type, tensor_parallel_divides
from vllmctl.ops.memory import STORAGE_HEADROOM, Gpu, choose_gpu, estimate_entry, product_label

if TYPE_CHECKING:
    from vllmctl.apis.hub import Listing
    from vllmctl.ops.estimate import Estimate
    from vllmctl.ops.gpufit import NodeGpus

DEFAULT_LIMIT = 10
# With --fits, more models are asked for than shown, so that `limit` of them can fit;
# bounded so that a query nothing fits does not download hundreds of configs.
FITS_SCAN_FACTOR = 3
MAX_SCAN = 100
CONFIG_WORKERS = 4  # config.json downloads at once
# Host memory per replica: the weights (vLLM reads the safetensors through host memory
# while it loads them) plus a quarter for the tokenizer, CUDA contexts and the API
# server. A heuristic, not measured (docs/search.md); never below add-model's default.
HOST_MEMORY_FACTOR = 1.25
MIN_MEMORY_GIB = 16
MIN_STORAGE_GIB = 50
NAME_MAX = 40  # models.yaml's name limit (catalog/schema.py)


@dataclass(frozen=True)
class Target:
    """A GPU a model may be served on, and how many of them one replica may span."""

    gpu: Gpu
    max_gpus: int  # one node's GPUs (a replica is one pod on one node)
    nodes: int = 0  # the cluster's schedulable nodes of this kind; 0 when not from the cluster
    max_from: str = "one node's GPUs"  # where max_gpus came from, for the verdict's words

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.gpu.name,
            "memory": self.gpu.memory,
            "source": self.gpu.source,
            "maxGpusPerReplica": self.max_gpus,
            "nodes": self.nodes,
        }


@dataclass(frozen=True)
class Targets:
    """What the models are judged against, and why there is nothing when there is not."""

    targets: tuple[Target, ...]
    unknown: str | None = None  # why no GPU is known (the fit is then unknown)


@dataclass(frozen=True)
class Resources:
    """What an entry for the model asks for, from the estimate."""

    gpus: int  # requestGPU and vllmConfig.tensorParallelSize
    memory: str  # requestMemory
    storage: str  # pvcStorage

    def as_json(self) -> dict[str, Any]:
        return {
            "requestGPU": self.gpus,
            "tensorParallelSize": self.gpus,
            "requestMemory": self.memory,
            "pvcStorage": self.storage,
        }


@dataclass(frozen=True)
class Result:
    """One model of the search and the verdict on it."""

    listing: Listing
    fits: bool | None  # None: unknown (no GPU type, no readable config.json)
    reason: str  # the verdict in words: KV cache it leaves, or why it does not fit / is unknown
    target: Target | None = None  # the GPU it fits (or was judged) on
    estimate: Estimate | None = None
    resources: Resources | None = None  # only when it fits

    @property
    def gpus(self) -> int | None:
        return self.resources.gpus if self.resources else None

    def add_model_args(self) -> list[str]:
        """The `vllmctl add-model` arguments that make an entry for this model."""
        args = ["--name", entry_name(self.listing.repo_id), "--model-url", self.listing.repo_id]
        if self.resources is not None:
            args += ["--gpus", str(self.resources.gpus)]
            if self.resources.gpus > 1:
                args += ["--tensor-parallel-size", str(self.resources.gpus)]
            args += ["--memory", self.resources.memory, "--storage", self.resources.storage]
        return args

    def add_model_line(self) -> str:
        import shlex

        return "vllmctl add-model " + " ".join(shlex.quote(a) for a in self.add_model_args())

    def as_json(self) -> dict[str, Any]:
        listing = self.listing
        return {
            "model": listing.repo_id,
            "parameters": listing.parameters,
            "parameterDtypes": listing.parameter_dtypes,
            "gated": listing.gated,
            "private": listing.private,
            "downloads": listing.downloads,
            "license": listing.license,
            "fits": self.fits,
            "reason": self.reason,
            "gpu": self.target.as_json() if self.target else None,
            "resources": self.resources.as_json() if self.resources else None,
            "addModel": self.add_model_line() if self.fits else None,
            "estimate": self.estimate.as_json() if self.estimate else None,
        }


@dataclass(frozen=True)
class Report:
    query: str
    results: tuple[Result, ...]
    targets: Targets
    examined: int  # models the Hub listed and vllmctl judged (more than shown with --fits)
    token_rejected: bool = False
    fits_only: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "gpus": [t.as_json() for t in self.targets.targets],
            "gpuUnknown": self.targets.unknown,
            "examined": self.examined,
            "models": [r.as_json() for r in self.results],
        }


# --- the GPUs ---------------------------------------------------------------------------------


def read_cluster_nodes(settings: Any) -> tuple[list[NodeGpus] | None, str | None]:
    """The cluster's nodes as the GPU fit reads them, or None and why they could not be read."""
    from vllmctl.cluster.kube import Kube
    from vllmctl.ops.gpufit import read_nodes

    try:
        with Kube.from_settings(settings) as kube:
            return read_nodes(kube, namespace=settings.namespace, release=settings.release), None
    except VllmctlError as e:
        return None, e.message.rstrip(".")


def node_gpus(node: NodeGpus) -> int:
    """The whole GPUs a node offers (any device plugin's, as the GPU fit counts them)."""
    from vllmctl.ops.gpufit import is_gpu_resource

    return sum(count for resource, count in node.allocatable.items() if is_gpu_resource(resource))


def choose_targets(
    *,
    gpu_flag: str | None,
    memory_flag: str | None,
    max_gpus: int | None,
    settings: Any,
    nodes: Sequence[NodeGpus] | None,
    nodes_unread: str | None = None,
) -> Targets:
    """The GPUs to judge against: --gpu/--gpu-memory (or VLLM_GPU_TYPE/VLLM_GPU_MEMORY) with
    up to the largest node's GPU count (--max-gpus, else 8 without a cluster); else each
    GPU type of the cluster's schedulable nodes with its largest node's count."""
    schedulable = [n for n in nodes or () if n.ready and not n.cordoned and node_gpus(n) > 0]
    if gpu_flag or memory_flag or settings.gpu_type or settings.gpu_memory:
        gpu = choose_gpu(gpu_flag=gpu_flag, memory_flag=memory_flag, settings=settings)
        same = [n for n in schedulable if _node_gpu_name(n) == gpu.name] or schedulable
        most = max_gpus or max((node_gpus(n) for n in same), default=MAX_SUGGESTED_TP)
        why = "--max-gpus" if max_gpus else ("one node's GPUs" if same else "no cluster nodes to count")
        return Targets((Target(gpu, most, len(same), why),))
    if not schedulable:
        why = (
            f"the cluster's nodes could not be read ({nodes_unread})"
            if nodes is None
            else "the cluster has no schedulable node with GPUs"
        )
        return Targets((), f"{why}: give --gpu TYPE (or set VLLM_GPU_TYPE)")
    kinds: dict[str, tuple[Gpu, int, int]] = {}
    unknown_labels: list[str] = []
    for node in schedulable:
        label = product_label([node.labels])
        found = gpu_type(label) if label else None
        if found is None:
            unknown_labels.append(label or f"{node.name} (no GPU product label)")
            continue
        gpu, most, count = kinds.get(found.name, (Gpu(found.name, found.memory, found.bf16, ""), 0, 0))
        kinds[found.name] = (gpu, max(most, node_gpus(node)), count + 1)
    targets = tuple(
        Target(
            Gpu(gpu.name, gpu.memory, gpu.bf16, f"{count} node(s) with up to {most} x {gpu.name}"),
            max_gpus or most,
            count,
            "--max-gpus" if max_gpus else "one node's GPUs",
        )
        for gpu, most, count in kinds.values()
    )
    if not targets:
        labels = ", ".join(dict.fromkeys(unknown_labels))
        return Targets(
            (), f"vllmctl does not know the nodes' GPUs ({labels}): give --gpu TYPE or --gpu-memory"
        )
    return Targets(targets)


def _node_gpu_name(node: NodeGpus) -> str | None:
    label = product_label([node.labels])
    found = gpu_type(label) if label else None
    return found.name if found else None


# --- the verdict ------------------------------------------------------------------------------


def tensor_parallel_sizes(config: dict[str, Any], most: int) -> list[int]:
    """The GPU counts one replica could be split over, smallest first: those vLLM accepts
    for the model's heads, up to `most`."""
    return [tp for tp in range(1, most + 1) if tensor_parallel_divides(config, tp)]


def judge(
    listing: Listing, config: dict[str, Any] | None, why_no_config: str | None, targets: Targets
) -> Result:
    """Whether the model fits one of the targets, with the fewest GPUs that do (the estimate
    at each tensor-parallel size in turn), and the resources an entry would ask for."""
    from vllmctl.apis.hub import ModelFacts

    if not targets.targets:
        return Result(listing, None, f"fit unknown: {targets.unknown}")
    if config is None:
        return _without_config(listing, why_no_config or "config.json is unknown", targets)
    facts = ModelFacts(listing.repo_id, listing.parameters, listing.parameter_dtypes, config, listing.gated)
    best: Result | None = None
    last: tuple[Target, Estimate] | None = None
    for target in targets.targets:
        try:
            sizes = tensor_parallel_sizes(config, target.max_gpus)
            for tp in sizes:
                if best is not None and best.gpus is not None and tp >= best.gpus:
                    break
                entry = {"name": "search", "modelURL": listing.repo_id, "requestGPU": tp}
                entry["vllmConfig"] = {"tensorParallelSize": tp}
                result = estimate_entry(entry, facts, target.gpu)
                last = (target, result)
                if result.fits:
                    best = _fitting(listing, target, result)
                    break
        except (ConfigError, ValueError, KeyError, TypeError) as e:
            return Result(listing, None, f"fit unknown: config.json cannot be read for an estimate ({e})")
    if best is not None:
        return best
    if last is None:
        return Result(listing, None, "fit unknown: no GPU count the model's heads divide into")
    target, result = last
    gpus = f"{result.tensor_parallel_size} x {target.gpu.name}"
    advice = f"; {result.suggestions[0].text}" if result.suggestions else ""
    return Result(listing, False, f"does not fit {gpus} ({target.max_from}){advice}", target, result)


def _fitting(listing: Listing, target: Target, result: Estimate) -> Result:
    tp = result.tensor_parallel_size
    memory, storage = host_sizes(result.parameters * result.bytes_per_param)  # the replica's weights
    resources = Resources(tp, memory, storage)
    reason = (
        f"fits {tp} x {target.gpu.name}: KV cache for {result.kv_tokens:,} tokens "
        f"({result.max_concurrency:.1f} requests of {result.max_model_len:,})"
    )
    return Result(listing, True, reason, target, result, resources)


def weight_sizes(listing: Listing) -> tuple[float, str, str] | None:
    """From the parameter count alone (no config.json): the weights in bytes, and the host
    memory and cache volume an entry needs for them (`host_sizes`, as for a model that fits)."""
    from vllmctl.ops.estimate import weight_bytes_per_param

    if not listing.parameters:
        return None
    weights = listing.parameters * weight_bytes_per_param(listing.parameter_dtypes)
    return weights, *host_sizes(weights)


def host_sizes(weights: float) -> tuple[str, str]:
    """The host memory and cache volume an entry needs for `weights` bytes of weights."""
    memory = max(MIN_MEMORY_GIB, math.ceil(weights * HOST_MEMORY_FACTOR / GiB))
    storage = max(MIN_STORAGE_GIB, math.ceil(weights * STORAGE_HEADROOM / GiB))
    return f"{memory}Gi", f"{storage}Gi"


def _without_config(listing: Listing, why: str, targets: Targets) -> Result:
    """No config.json: the KV cache is unknown, but weights larger than every target's
    budget at its most GPUs still cannot fit."""
    from vllmctl.ops.estimate import DEFAULT_GPU_MEMORY_UTILIZATION

    sizes = weight_sizes(listing)
    if sizes is not None:
        weights = sizes[0]
        target = max(targets.targets, key=lambda t: t.gpu.memory * t.max_gpus)
        if weights > target.gpu.memory * DEFAULT_GPU_MEMORY_UTILIZATION * target.max_gpus:
            return Result(
                listing,
                False,
                f"does not fit {target.max_gpus} x {target.gpu.name} ({target.max_from}): the "
                f"weights alone are {weights / GiB:.0f} GiB ({why})",
                target,
            )
    return Result(listing, None, f"fit unknown: {why}")


# --- the search -------------------------------------------------------------------------------

ConfigReader = Callable[[str], dict[str, Any]]


def search(
    query: str,
    *,
    token: str | None,
    endpoint: str,
    targets: Targets,
    limit: int = DEFAULT_LIMIT,
    fits_only: bool = False,
) -> Report:
    """The Hub's most downloaded text-generation models matching `query`, each judged; with
    `fits_only`, up to `limit` of those that fit, from at most MAX_SCAN listed."""
    from vllmctl.apis import hub

    wanted = min(limit * FITS_SCAN_FACTOR, MAX_SCAN) if fits_only else limit
    answer = hub.search_models(query, token, endpoint=endpoint, limit=max(wanted, limit))
    token = None if answer.token_rejected else token
    results = judge_all(
        answer.listings, targets, lambda repo: hub.model_config(repo, token, endpoint=endpoint)
    )
    kept = [r for r in results if r.fits] if fits_only else list(results)
    return Report(query, tuple(kept[:limit]), targets, len(results), answer.token_rejected, fits_only)


def one_repo(repo_id: str, *, token: str | None, endpoint: str, targets: Targets) -> Result:
    """One repo judged as a search would judge it."""
    from vllmctl.apis import hub

    listing = hub.model_listing(repo_id, token, endpoint=endpoint)
    return judge_all([listing], targets, lambda repo: hub.model_config(repo, token, endpoint=endpoint))[0]


def judge_all(listings: Sequence[Listing], targets: Targets, read_config: ConfigReader) -> list[Result]:
    """Each listing judged, its config.json read CONFIG_WORKERS at a time (none without a
    GPU to judge against); results in the listings' order."""
    if not targets.targets:
        return [judge(listing, None, None, targets) for listing in listings]
    from concurrent.futures import ThreadPoolExecutor

    def configured(listing: Listing) -> Result:
        try:
            config = read_config(listing.repo_id)
        except VllmctlError as e:
            return judge(listing, None, _config_problem(e), targets)
        return judge(listing, config, None, targets)

    with ThreadPoolExecutor(max_workers=CONFIG_WORKERS, thread_name_prefix="vllmctl search") as pool:
        return list(pool.map(configured, listings))


def _config_problem(error: VllmctlError) -> str:
    """Why config.json could not be read, short enough for a table's note."""
    from vllmctl.apis.hub import HubAccessDenied

    if isinstance(error, HubAccessDenied):
        return f"config.json is gated: a token with access is needed (request it at {error.page})"
    return error.message.rstrip(".")


# --- entries ----------------------------------------------------------------------------------


def entry_name(repo_id: str) -> str:
    """A models.yaml name for a repo: its name part in lowercase letters, digits and '-'
    (Qwen/Qwen2.5-7B-Instruct -> qwen2-5-7b-instruct), at most NAME_MAX characters."""
    base = repo_id.rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return name[:NAME_MAX].strip("-") or "model"


def looks_like_repo(text: str) -> bool:
    """Whether add-model's --from-search names one repo (org/name) rather than a query."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text.strip()) is not None


def count_text(parameters: int | None) -> str:
    """7615616512 -> '7.6B', 494032768 -> '494M', None -> '?'."""
    if not parameters:
        return "?"
    if parameters >= 10**9:
        return f"{parameters / 10**9:.1f}B"
    return f"{parameters / 10**6:.0f}M"
