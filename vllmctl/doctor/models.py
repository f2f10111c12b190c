"""doctor's per-model checks: GPU fit on the cluster's nodes, access on the HuggingFace
Hub with the stored token, and whether the weights and KV cache fit the GPU."""

from __future__ import annotations

from typing import Any

from vllmctl.catalog.schema import Model
from vllmctl.core.errors import VllmctlError
from vllmctl.core.findings import FAIL, OK, SKIP, WARN, Report


def check_gpu_fit(report: Report, kube: Any, settings: Any, prepared: Any) -> Any:
    """The GPU fit of the whole plan, one cell per model; the FitReport, or None."""
    from vllmctl.ops.deploy import gpu_fit
    from vllmctl.ops.gpufit import CannotReadNodes

    try:
        fit = gpu_fit(settings, prepared, kube)
    except CannotReadNodes as e:
        report.add(
            "gpus",
            "GPU fit",
            WARN,
            f"not checked: {e.message}",
            "ask for read access to nodes and pods cluster-wide, or deploy with --force",
        )
        return None
    except VllmctlError as e:
        report.add("gpus", "GPU fit", WARN, f"not checked: {e.message}")
        return None
    for model in prepared.models:
        row = report.row(model.name)
        shortfalls = [f.message for f in fit.shortfalls if model.name in f.models]
        warnings = [f.message for f in fit.warnings if model.name in f.models]
        if shortfalls:
            row.gpus = (FAIL, " ".join(shortfalls))
        elif warnings:
            row.gpus = (WARN, " ".join(warnings))
        elif model.name in fit.without_gpus:
            row.gpus = (OK, "no GPU")
        elif model.name in fit.placements:
            row.gpus = (OK, _placement_text(fit.placements[model.name]))
    if fit.ok:
        report.add("gpus", "GPU fit", OK, fit.lines()[0].removeprefix("GPU fit: "))
    else:
        report.add(
            "gpus",
            "GPU fit",
            FAIL,
            "; ".join(f.message for f in fit.shortfalls if not f.models)
            or "some replicas have no node (below)",
            "fewer replicas or GPUs per replica, more nodes, or --force to deploy anyway (pods stay Pending)",
        )
    for note in fit.notes:
        report.add("gpus", "GPU fit", SKIP, note)
    return fit


def _placement_text(nodes: list[str]) -> str:
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node] = counts.get(node, 0) + 1
    where = ", ".join(f"{node}" + (f" x{n}" if n > 1 else "") for node, n in counts.items())
    return f"{len(nodes)} replica{'s' if len(nodes) != 1 else ''} on {where}"


def check_models(
    report: Report, settings: Any, models: list[Model], *, token: str | None, gpus: Any, hub: bool
) -> None:
    """Hub access and the memory estimate for each model that names a Hub repo."""
    from vllmctl.ops.memory import is_hub_repo

    rejected = False  # the Hub refused the stored token: asked anonymously from then on
    for model in models:
        row = report.row(model.name)
        url = str(model.data.get("modelURL", ""))
        if hub and _check_other_repos(report, settings, model, None if rejected else token) == "unreachable":
            hub = False
        if not is_hub_repo(url):
            row.access = (SKIP, f"not on the Hub ({url.split('://')[0]}://)")
            row.memory = (SKIP, "no Hub metadata")
            continue
        if not hub:
            row.access = row.memory = (SKIP, "--offline")
            continue
        answer = _check_access(report, settings, model, row, token, rejected=rejected)
        if answer == "rejected":
            # Said once, as a check of its own; the models are then asked about anonymously.
            report.add(
                "secrets",
                "hf token at the Hub",
                FAIL,
                f"{settings.hf_endpoint} rejects the HuggingFace token: it is invalid, expired or revoked",
                "store a valid token: vllmctl set-hf-token",
            )
            token, rejected = None, True
            answer = _check_access(report, settings, model, row, token, rejected=True)
        if answer == "unreachable":
            hub = False  # one warning for the whole Hub, not one per model
            for later in models[models.index(model) + 1 :]:
                report.row(later.name).access = report.row(later.name).memory = (SKIP, "Hub unreachable")
            row.memory = (SKIP, "Hub unreachable")
            continue
        if row.access[0] == FAIL:
            row.memory = (SKIP, "no access to the model")
            continue
        facts = _check_memory(settings, model, row, token, gpus)
        if facts is not None:
            from vllmctl.features import registry

            for feature in registry.FEATURES:  # what each feature judges with the Hub's facts
                feature.doctor_model(report, settings, model, facts)


def _check_other_repos(report: Report, settings: Any, model: Model, token: str | None) -> str:
    """One row per other Hub repo the model's engines download (a feature's `hub_repos`,
    such as LoRA adapters): exists, gated, may the token download it. Returns
    "unreachable" when the Hub did not answer (reported once), else "answered"."""
    from vllmctl.apis.hub import HubUnreachable, check_access
    from vllmctl.features import registry

    for feature in registry.FEATURES:
        for repo, what in feature.hub_repos(model.data):
            name = f"{model.name} {what}"
            try:
                access = check_access(repo, token, endpoint=settings.hf_endpoint)
            except HubUnreachable as e:
                _hub_unreachable(report, e)
                return "unreachable"
            except VllmctlError as e:
                report.add("models", name, FAIL, e.message)
                continue
            if not access.exists:
                report.add(
                    "models",
                    name,
                    FAIL,
                    f"{repo} is not on the Hub (or is private and the token cannot see it)",
                    f"check the {what.split()[0]}'s source in models.yaml; "
                    "for a private repo, store a token that can read it",
                )
            elif not access.gated:
                report.add("models", name, OK, f"{repo}: public")
            elif access.allowed:
                report.add("models", name, OK, f"{repo}: gated, the token has access")
            elif token is None:
                report.add(
                    "models",
                    name,
                    FAIL,
                    f"{repo}: gated, and no usable HuggingFace token is stored",
                    f"vllmctl set-hf-token (a token granted {access.page})",
                )
            else:
                report.add(
                    "models",
                    name,
                    FAIL,
                    f"{repo}: gated, and the token has no access",
                    f"request access at {access.page}",
                )
    return "answered"


def _hub_unreachable(report: Report, error: Any) -> None:
    """The one row that says the Hub did not answer (the model and adapter checks stop asking)."""
    report.add(
        "hub",
        "HuggingFace Hub",
        WARN,
        f"not checked: {error.message}",
        "check the network or HF_ENDPOINT, or run with --offline",
    )


def _check_access(
    report: Report, settings: Any, model: Model, row: Any, token: str | None, *, rejected: bool
) -> str:
    """Fill the access cell. Returns "unreachable" when the Hub did not answer (reported
    once, as a warning), "rejected" when it refused the token itself, else "answered"."""
    from vllmctl.apis.hub import HubUnreachable, check_access

    url = str(model.data["modelURL"])
    try:
        access = check_access(url, token, endpoint=settings.hf_endpoint)
    except HubUnreachable as e:
        _hub_unreachable(report, e)
        row.access = (SKIP, "Hub unreachable")
        return "unreachable"
    except VllmctlError as e:
        row.access = (FAIL, e.message)
        return "answered"
    if access.token_rejected and token is not None:
        return "rejected"
    marked = model.data.get("gated")
    if not access.exists:
        row.access = (FAIL, f"{url} is not on the Hub (or is private and the token cannot see it)")
        row.fixes.append(f"check modelURL ({url}); for a private repo, store a token that can read it")
    elif not access.gated:
        row.access = (OK, "public")
    elif access.allowed:
        row.access = (OK, "gated, the token has access")
    elif token is None:
        said = "the stored HuggingFace token is rejected" if rejected else "no HuggingFace token is stored"
        row.access = (FAIL, f"gated, and {said}")
        row.fixes.append(f"vllmctl set-hf-token (a token granted {access.page})")
    else:
        row.access = (FAIL, f"gated, and the token has no access: request access at {access.page}")
    if access.exists and access.gated and marked is not True:
        row.fixes.append(
            f"mark it gated so install syncs the token: vllmctl set-model {model.name} gated=true"
        )
        if row.access[0] == OK:
            row.access = (WARN, row.access[1] + " (not marked gated: true)")
    return "answered"


def _check_memory(settings: Any, model: Model, row: Any, token: str | None, gpus: Any) -> Any:
    """Fill the memory cell; the Hub's facts about the model, or None when unknown."""
    from vllmctl.apis.hub import model_facts
    from vllmctl.ops.memory import choose_gpu, estimate_entry

    entry = model.effective()
    if not int(entry.get("requestGPU") or 0):
        row.memory = (SKIP, "no GPU")
        return None
    facts = None
    try:
        facts = model_facts(str(entry["modelURL"]), token, endpoint=settings.hf_endpoint)
        gpu = choose_gpu(settings=settings, node_label=_node_label(gpus, model.name))
        result = estimate_entry(entry, facts, gpu)
    except VllmctlError as e:
        row.memory = (SKIP, e.message)
        return facts
    except ValueError as e:  # config.json without the shape the estimate needs
        row.memory = (SKIP, f"cannot estimate: {e}")
        return facts
    per_gpu = f"{_gib(result.weights)} weights + {_gib(result.kv_one_sequence)} KV per request"
    if result.fits:
        row.memory = (
            OK,
            f"fits {gpu.name}: {per_gpu}, {result.max_concurrency:.1f} full-length requests at once",
        )
    else:
        row.memory = (FAIL, f"does not fit {gpu.name}: {per_gpu}, {_gib(result.budget)} usable")
        if result.suggestions:
            row.fixes.append("; or ".join(s.text for s in result.suggestions))
        row.fixes.append(f"the numbers: vllmctl estimate {model.name}")
    return facts


def _node_label(gpus: Any, name: str) -> str | None:
    """The GPU product label of the node the fit placed the model's first replica on, else
    of any GPU node (a model that does not fit still gets an estimate)."""
    if gpus is None:
        return None
    from vllmctl.ops.memory import product_label

    placed = gpus.placements.get(name) or []
    nodes = sorted(gpus.nodes, key=lambda n: n.name not in placed[:1])
    return product_label(n.labels for n in nodes)


def _gib(amount: int) -> str:
    return f"{amount / 2**30:.1f} GiB"
