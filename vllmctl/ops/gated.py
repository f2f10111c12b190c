"""Which models need the HuggingFace token: install, upgrade and plan decide it for every
entry, so an old models.yaml (written before `gated:` existed) cannot deploy a gated model
without one.

An entry's own `gated:` is trusted (add-model records the Hub's answer there). For an entry
without it the Hub is asked, once per repo per run, anonymously: a gated repo's metadata is
public, and the token is not needed to learn that it is needed. When the Hub cannot be asked
(offline, unreachable), the organisations the old tool knew to gate their models count as
gated, and the caller warns that this was a guess. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# The old tool's list (its regex), used only when the Hub cannot be asked.
KNOWN_GATED_PREFIXES = ("meta-llama/", "mistralai/", "google/gemma")


@dataclass
class Gated:
    """The models that need the token, and what the caller should say about how it knows."""

    models: list[str] = field(default_factory=list)  # model names, in models.yaml's order
    asked: dict[str, bool] = field(default_factory=dict)  # repo -> needs the token, by the Hub
    warnings: list[str] = field(default_factory=list)

    def named(self) -> str:
        return ", ".join(self.models)


def known_gated(repo_id: str) -> bool:
    """The old tool's guess from the organisation (meta-llama, mistralai, google/gemma)."""
    return repo_id.lower().startswith(KNOWN_GATED_PREFIXES)


def decide(models: Iterable[Any], *, endpoint: str, ask: Callable[[str], Any] | None = None) -> Gated:
    """The models (catalog Models) whose engines need the HuggingFace token.

    `ask(repo_id)` returns hub.Access (default: hub.check_access without a token) and may
    raise hub.HubUnreachable; after one such failure the Hub is not asked again this run.
    """
    from vllmctl.apis.hub import HubUnreachable, check_access
    from vllmctl.ops.memory import is_hub_repo

    if ask is None:

        def ask(repo_id: str) -> Any:
            return check_access(repo_id, None, endpoint=endpoint)

    from vllmctl.features import registry

    result = Gated()
    guessed: list[str] = []
    unreachable: HubUnreachable | None = None
    not_found: list[str] = []
    # What could not be asked, for the warning: the models without `gated:` (their own
    # repos) and the other repos (a feature's, as "adapter sql of small").
    unasked_models: list[str] = []
    unasked_other: list[str] = []
    for model in models:
        marked = model.data.get("gated")
        url = str(model.data.get("modelURL", ""))
        # `gated:` decides the model's own repo; the other repos its engines download (a
        # feature's, such as LoRA adapters) are always asked about.
        repos = [] if isinstance(marked, bool) or not is_hub_repo(url) else [(url, "")]
        for feature in registry.FEATURES:
            repos += [
                (repo, f"{what} of {model.name} ({repo})") for repo, what in feature.hub_repos(model.data)
            ]
        needs = marked is True or any(f.needs_hf_token(model.data) for f in registry.FEATURES)
        for repo, what in repos:
            if repo not in result.asked and unreachable is None:
                try:
                    access = ask(repo)
                except HubUnreachable as e:
                    unreachable = e
                else:
                    # A repo the Hub does not show anonymously may be private, which only a
                    # token can download: it needs the token as a gated one does.
                    result.asked[repo] = bool(access.gated) if access.exists else True
                    if not access.exists:
                        not_found.append(repo)
            if unreachable is not None and repo not in result.asked:
                if what:
                    unasked_other.append(what)
                elif model.name not in unasked_models:
                    unasked_models.append(model.name)
                if known_gated(repo) and not needs:
                    needs = True
                    guessed.append(model.name)
                continue
            needs = needs or result.asked[repo]
        if needs:
            result.models.append(model.name)
    if unreachable is not None:
        counted = (
            f"{', '.join(guessed)} {'counts' if len(guessed) == 1 else 'count'} as gated"
            if guessed
            else "no model counts as gated"
        )
        asked = []
        if unasked_models:
            asked.append(f"the models without `gated:` ({', '.join(unasked_models)})")
        if unasked_other:
            asked.append(f"the repos of {', '.join(unasked_other)}")
        advice = []
        if unasked_models:
            advice.append("Mark each model with `gated: true` or `gated: false` to decide it yourself")
        if unasked_other:
            # `gated:` decides a model's own repo only: these are asked on every run.
            advice.append(
                f"{'the' if unasked_models else 'The'} other repos are asked on every run (a model's "
                "`gated:` does not decide them): retry when the Hub is reachable"
            )
        result.warnings.append(
            f"could not ask the HuggingFace Hub whether {' or '.join(asked)} are gated "
            f"({unreachable.message.rstrip('.')}); {counted} by the old tool's rule "
            f"(organisations meta-llama, mistralai, google/gemma). {'; '.join(advice)}."
        )
    if not_found:
        result.warnings.append(
            f"the Hub at {endpoint} does not show {', '.join(not_found)} to an anonymous caller "
            "(private, or misspelt): counted as needing the HuggingFace token, which a private repo "
            "does; check the repo id, or mark the model `gated: false` if it needs none."
        )
    return result
