"""`add-model`: a model added to models.yaml by flags or prompts. Apart from cli/models.py
because its flags are built from the catalog's questions when the module loads: the other
models.yaml commands (list-models above all) start without them."""

from __future__ import annotations

from typing import Any

import click

from vllmctl.cli.models import EXAMPLE_NAME, base_file_only, example_bytes, seen_catalog
from vllmctl.cli.options import command
from vllmctl.ui import App


def _add_model_options(func: Any) -> Any:
    from vllmctl.catalog.questions import QUESTIONS

    for question in reversed(QUESTIONS):
        help_text = question.prompt or "memory limit per replica (default: none)"
        if question.default is not None:
            help_text += f" [default {question.default}]"
        if question.choices:
            help_text += f" ({', '.join(question.choices)})"
        func = click.option(question.flag, question.param, metavar="VALUE", help=help_text)(func)
    return func


@command("add-model")
@_add_model_options
@click.option("--offline", is_flag=True, help="do not ask the HuggingFace Hub (gated is then not recorded)")
@click.option(
    "--from-search",
    "from_search",
    metavar="QUERY_OR_REPO",
    help="take the model from `vllmctl search` (a repo id, or a query: chosen from the models that "
    "fit at a terminal, else the most downloaded that fits), with its suggested --gpus, "
    "--tensor-parallel-size, --memory and --storage; flags given override them",
)
def add_model(app: App, offline: bool, from_search: str | None, **flags: str | None) -> None:
    """Add a model to models.yaml, by prompts or by flags.

    Asks for each field not given as a flag; with --yes (or without a terminal) it never
    asks: give --name and --model-url, the rest have defaults.

    Unless --offline, asks the HuggingFace Hub (HF_ENDPOINT) whether the model exists and
    records whether it is gated; at a terminal it then shows the model's size and whether
    the GPUs (VLLM_GPU_TYPE / VLLM_GPU_MEMORY) and storage look enough. A problem found
    after the last answer asks again for the fields involved. A pasted Hub address
    (https://huggingface.co/org/model/...) is stored as org/model.

    --from-search judges the model as `vllmctl search` does (the Hub's facts, vllmctl's
    estimate on the cluster nodes' GPUs or VLLM_GPU_TYPE) and fills the resources it
    suggests; a model that does not fit is refused unless --gpus is given.

    Creates models.yaml from models.example.yaml when it does not exist.
    """
    from vllmctl.catalog.questions import with_field
    from vllmctl.catalog.store import adding, apply_edit, load

    base_file_only(app, "add-model")
    path = app.settings.models_path
    catalog = load(path)
    catalog.require_valid()
    if from_search is not None:
        if offline:
            raise click.UsageError("--from-search asks the Hub: leave out --offline.")
        flags = _from_search(app, from_search, flags)
    answers = _collect_answers(app, flags, taken=set(catalog.names()))
    entry, access = _settled_entry(app, answers, offline=offline, taken=set(catalog.names()))
    if access is not None:
        entry = with_field(entry, "gated", access)
    if app.interactive:
        from vllmctl.ui import to_yaml

        app.info(to_yaml([entry]).rstrip())
        if access is not None:
            _show_size_hint(app, entry)
        if not app.confirm(f"Add {entry['name']} to {path}?", default=True):
            app.info("Nothing was changed.")
            return
    example = None if catalog.exists else example_bytes()
    apply_edit(path, adding(entry), based_on=seen_catalog(app, catalog), create_from=example, parsed=catalog)
    created = "" if catalog.exists else f" (created {path} from {EXAMPLE_NAME})"
    app.success(f"Added {entry['name']} to {path}{created}.")
    app.info("Deploy it with `vllmctl upgrade` (or `vllmctl install` for a new release).")


def _from_search(app: App, text: str, flags: dict[str, str | None]) -> dict[str, str | None]:
    """The flags with the searched model's URL, name and suggested resources where the user
    gave none (ops/search.py judges it, as `vllmctl search` does)."""
    from vllmctl.cli.search import gpu_targets
    from vllmctl.cli.secrets import hub_token
    from vllmctl.core.errors import UsageError
    from vllmctl.ops.estimate import DEFAULT_GPU_MEMORY_UTILIZATION
    from vllmctl.ops.search import looks_like_repo, one_repo, search, weight_sizes

    if flags.get("model_url"):
        raise UsageError("give either --from-search or --model-url, not both.")
    targets = gpu_targets(app, None, None, None)
    token, endpoint = hub_token(app), app.settings.hf_endpoint
    if looks_like_repo(text):
        from vllmctl.apis.hub import HubTokenRejected

        try:
            result = one_repo(text.strip(), token=token, endpoint=endpoint, targets=targets)
        except HubTokenRejected:
            if token is None:
                raise
            # As search does: a stale token must not stop asking about a public repo.
            app.warn(f"{endpoint} rejected the HuggingFace token: asked without it.")
            result = one_repo(text.strip(), token=None, endpoint=endpoint, targets=targets)
    else:
        fits_only = bool(targets.targets)
        report = search(text, token=token, endpoint=endpoint, targets=targets, fits_only=fits_only)
        if report.token_rejected:
            app.warn(f"{endpoint} rejected the HuggingFace token: searched without it (no private repos).")
        if not report.results:
            that = " that fits the GPUs" if fits_only else ""
            raise UsageError(
                f"--from-search {text!r}: no text-generation model{that} on {endpoint} matches it; "
                f"`vllmctl search {text}` shows what does."
            )
        result = report.results[0]
        if app.interactive and len(report.results) > 1:
            choices = [f"{r.listing.repo_id} ({r.reason})" for r in report.results]
            picked = app.ask_select("Which model?", choices, choices[0])
            result = report.results[choices.index(picked)]
        elif not app.interactive:
            best = "most downloaded match that fits" if fits_only else "most downloaded match"
            app.info(f"--from-search {text!r}: {result.listing.repo_id}, the {best}.")
    repo = result.listing.repo_id
    if result.fits is False and not flags.get("gpus"):
        raise UsageError(
            f"--from-search: {repo} {result.reason}; choose another model (`vllmctl search`), "
            "or give --gpus and --tensor-parallel-size to add it anyway."
        )
    suggested = result.add_model_args()
    if result.fits is None:
        sizes = weight_sizes(result.listing)
        if sizes is None:
            app.warn(f"{repo}: {result.reason}; the entry gets add-model's default resources.")
        else:
            weights, memory, storage = sizes
            # The weights are known: size the volume and host memory for them at least.
            suggested += ["--memory", memory, "--storage", storage]
            gpu = targets.targets[0].gpu if targets.targets else None
            if (
                gpu is not None
                and weights > gpu.memory * DEFAULT_GPU_MEMORY_UTILIZATION
                and not flags.get("gpus")
            ):
                raise UsageError(
                    f"--from-search: {repo} {result.reason}, and its weights alone ({weights / 2**30:.0f} "
                    f"GiB) exceed one {gpu.name}: give --gpus and --tensor-parallel-size."
                )
            app.warn(
                f"{repo}: {result.reason}; storage and memory from its weights, GPUs add-model's default."
            )
    else:
        app.info(f"{repo}: {result.reason}.")
    merged = dict(flags)
    # GPUs and tensor parallelism go together: either given keeps both suggestions out.
    gpus_given = flags.get("gpus") is not None or flags.get("tensor_parallel_size") is not None
    for flag, value in zip(suggested[::2], suggested[1::2], strict=True):
        param = flag.lstrip("-").replace("-", "_")
        if param in ("gpus", "tensor_parallel_size") and gpus_given:
            continue
        if merged.get(param) is None:
            merged[param] = value
    return merged


def _settled_entry(
    app: App, answers: dict[tuple[str, ...], Any], *, offline: bool, taken: set[str]
) -> tuple[dict[str, Any], bool | None]:
    """The entry, and whether the Hub says it is gated (None: not asked or not reachable).
    At a terminal a problem found only now (between fields, or a repo the Hub does not
    know) asks again for the fields involved, keeping every other answer; otherwise it is
    the error naming the flag, as before."""
    from vllmctl.catalog.questions import QUESTIONS, build_entry, entry_problems
    from vllmctl.core.errors import UsageError
    from vllmctl.core.fields import URI_SCHEMES

    model_url = next(q for q in QUESTIONS if q.path == ("modelURL",))
    while True:
        entry = build_entry(answers)
        problems = entry_problems(entry) if app.interactive else []
        if problems and all(p.questions for p in problems):
            for problem in problems:
                app.warn(f"{problem.key}: {problem.message}.")
            for question in dict.fromkeys(q for p in problems for q in p.questions):
                answers[question.path] = _ask(app, question, None, current=answers.get(question.path))
            continue
        if offline or entry["modelURL"].startswith(URI_SCHEMES):
            return entry, None
        gated, unknown = _hub_gated(app, entry["modelURL"])
        if unknown is None:
            return entry, gated
        if not app.interactive:
            raise UsageError(
                f"--model-url: {unknown}; check the spelling, or pass --offline to add it without "
                "asking the Hub."
            )
        app.warn(f"{unknown}; check the spelling.")
        answers[model_url.path] = _ask(app, model_url, None, current=entry["modelURL"])


def _hub_gated(app: App, repo_id: str) -> tuple[bool | None, str | None]:
    """Whether the Hub says the repo is gated (None: it could not be asked), and when the
    Hub does not know the repo, the sentence saying so."""
    from vllmctl.apis import hub
    from vllmctl.core.setting_names import ENV_HF_TOKEN

    endpoint = app.settings.hf_endpoint or hub.DEFAULT_ENDPOINT
    token = app.settings.hf_token or None
    try:
        access = hub.check_access(repo_id, token, endpoint=endpoint)
    except hub.HubUnreachable as unreachable:
        app.warn(f"could not reach {unreachable.endpoint}: {unreachable.reason}; gated not recorded.")
        return None, None
    valid_token = bool(token) and not access.token_rejected
    if access.token_rejected:
        app.warn(f"{endpoint} rejected the HuggingFace token ({ENV_HF_TOKEN}): invalid, expired or revoked.")
    if not access.exists:
        seen = "your token cannot see it" if valid_token else f"no valid {ENV_HF_TOKEN}"
        return None, f"{repo_id} is not a model on {endpoint} (or it is private and {seen})"
    if access.gated and access.allowed is not True:
        if valid_token:
            need = f"your token ({ENV_HF_TOKEN}) has no access"
        else:
            need = "the engines need a HuggingFace token with access"
        app.warn(f"{repo_id} is gated and {need}: request access at {access.page}.")
    return access.gated, None


def _show_size_hint(app: App, entry: dict[str, Any]) -> None:
    """One line on the model's size and whether the entry's GPUs and storage look enough;
    nothing when the Hub cannot tell (the confirmation follows either way)."""
    from vllmctl.apis import hub
    from vllmctl.core.errors import VllmctlError
    from vllmctl.ops.estimate import ConfigError
    from vllmctl.ops.memory import size_hint

    endpoint = app.settings.hf_endpoint or hub.DEFAULT_ENDPOINT
    try:
        facts = hub.model_facts(entry["modelURL"], app.settings.hf_token or None, endpoint=endpoint)
        app.info(size_hint(entry, facts, app.settings))
    except (VllmctlError, ConfigError) as e:  # the Hub failing now, or a config it cannot read
        if app.verbose:
            app.info(f"(no size hint: {e})")


def _collect_answers(app: App, flags: dict[str, str | None], taken: set[str]) -> dict[tuple[str, ...], Any]:
    """Each field from its flag, else a prompt, else its default; errors name the flag."""
    from vllmctl.catalog.questions import QUESTIONS
    from vllmctl.core.errors import UsageError

    def unique(value: Any) -> str | None:
        return f"{value!r} is already in models.yaml; choose another name" if value in taken else None

    answers: dict[tuple[str, ...], Any] = {}
    for question in QUESTIONS:
        text = flags.get(question.param)
        if text is None:
            continue
        value, problem = question.parse(text)
        if problem is None and question.path == ("name",):
            problem = unique(value)
        if problem:
            raise UsageError(f"{question.flag}: {problem}.")
        answers[question.path] = value

    engine_flags_given = any(q.engine_option and q.path in answers for q in QUESTIONS)
    ask_engine = False
    for question in QUESTIONS:
        if question.path in answers:
            continue
        if question.path == ("pvcStorage",) and str(answers.get(("modelURL",))).startswith("pvc://"):
            continue  # a pvc:// model caches nothing (docs/model-sources.md)
        if question.default is None and not question.engine_option and question.prompt:
            app.require_interactive(f"{question.flag}")  # a required field without a flag
        if not app.interactive or not question.prompt:
            if question.default is not None:
                answers[question.path] = question.default
            continue
        if question.engine_option:
            if engine_flags_given:
                continue
            if not ask_engine:
                ask_engine = app.confirm("Set vLLM engine options (max model length, dtype, ...)?")
                if not ask_engine:
                    break
        answers[question.path] = _ask(app, question, unique if question.path == ("name",) else None)
    return answers


def _ask(app: App, question: Any, extra_check: Any, *, current: Any = None) -> Any:
    """Ask one question; `current` (an earlier answer being corrected) is the default."""
    optional = question.engine_option
    if question.choices:
        default_choice = current if current in question.choices else None
        choice = app.ask_select(question.prompt, ["(vLLM's default)", *question.choices], default_choice)
        return None if choice.startswith("(") else choice

    def validate(text: str) -> str | None:
        if optional and not text.strip():
            return None
        value, problem = question.parse(text)
        return problem or (extra_check(value) if extra_check else None)

    fallback = question.default if current is None else current
    default = "" if fallback is None else str(fallback)
    text = app.ask_text(question.prompt, default=default, validate=validate)
    if optional and not text.strip():
        return None
    return question.parse(text)[0]


COMMANDS = {add_model.name: add_model}
