# vllmctl's recipes: the old justfile's names, now thin calls to vllmctl.
# Works on its own (`just add-model`) and as a module of another justfile:
#   mod vllm 'path/to/vllmctl'      then      just vllm::add-model
# Recipes run in the directory just was invoked from ([no-cd]), so models.yaml is
# found where you are, as with vllmctl itself. Set VLLMCTL to use another binary.

set positional-arguments

vllmctl := env("VLLMCTL", "vllmctl")

# list the recipes
[private]
default:
    @just --justfile '{{justfile()}}' --list

# add a model to models.yaml (asks; or pass flags, e.g. --name x --model-url org/x --yes)
[no-cd]
add-model *args:
    @{{vllmctl}} add-model "$@"

# remove a model from models.yaml (choose from a list when no name is given)
[no-cd]
remove-model *args:
    @{{vllmctl}} remove-model "$@"

# list the models in models.yaml
[no-cd]
list-models *args:
    @{{vllmctl}} list-models "$@"

# show one model's fields
[no-cd]
show-model name *args:
    @{{vllmctl}} show-model "$@"

# set fields of a model: just set-model llama3 replicaCount=2
[no-cd]
set-model name +assignments:
    @{{vllmctl}} set-model "$@"

# check models.yaml
[no-cd]
validate *args:
    @{{vllmctl}} validate "$@"

# print the Helm values models.yaml turns into (-o FILE to write them)
[no-cd]
render *args:
    @{{vllmctl}} render "$@"

# print the manifests helm would apply
[no-cd]
template *args:
    @{{vllmctl}} template "$@"

# what install/upgrade would change, model by model (exit 1 when something would)
[no-cd]
plan *args:
    @{{vllmctl}} plan "$@"

# the same as plan
[no-cd]
diff *args:
    @{{vllmctl}} diff "$@"

# install the release (creates the namespace; --dry-run shows the plan)
[no-cd]
install *args:
    @{{vllmctl}} install "$@"

# upgrade the release to what models.yaml says now
[no-cd]
upgrade *args:
    @{{vllmctl}} upgrade "$@"

# uninstall the release (model caches and secrets stay unless asked)
[no-cd]
uninstall *args:
    @{{vllmctl}} uninstall "$@"

# the release's revisions
[no-cd]
history *args:
    @{{vllmctl}} history "$@"

# roll back to a revision (default: the previous one)
[no-cd]
rollback *args:
    @{{vllmctl}} rollback "$@"

# repair a release an interrupted helm left pending (vllmctl's own; the old recipes had none)
[no-cd]
recover *args:
    @{{vllmctl}} recover "$@"

# add the chart's helm repository
[no-cd]
add-helm-repo *args:
    @{{vllmctl}} add-helm-repo "$@"

# remove the chart's helm repository
[no-cd]
remove-helm-repo *args:
    @{{vllmctl}} remove-helm-repo "$@"

# create the namespace with Pod Security labels
[no-cd]
create-namespace *args:
    @{{vllmctl}} create-namespace "$@"

# delete the namespace and everything in it (asks first)
[no-cd]
delete-namespace *args:
    @{{vllmctl}} delete-namespace "$@"

# store the HuggingFace token (piped in, VLLM_HF_TOKEN, or asked for, hidden)
[no-cd]
set-hf-token *args:
    @{{vllmctl}} set-hf-token "$@"

# print the stored HuggingFace token
[no-cd]
get-hf-token *args:
    @{{vllmctl}} get-hf-token "$@"

# delete the stored HuggingFace token and its Secret
[no-cd]
delete-hf-token *args:
    @{{vllmctl}} delete-hf-token "$@"

# store the API key (piped in, VLLM_API_KEY, asked for, or generated)
[no-cd]
set-api-key *args:
    @{{vllmctl}} set-api-key "$@"

# print the stored API key
[no-cd]
get-api-key *args:
    @{{vllmctl}} get-api-key "$@"

# delete the stored API key and its Secret
[no-cd]
delete-api-key *args:
    @{{vllmctl}} delete-api-key "$@"

# replace the API key and restart the router and engines
[no-cd]
rotate-api-key *args:
    @{{vllmctl}} rotate-api-key "$@"

# create the hf-token Secret from the stored token
[no-cd]
create-hf-token-secret *args:
    @{{vllmctl}} create-hf-token-secret "$@"

# delete the hf-token Secret (the stored token stays)
[no-cd]
delete-hf-token-secret *args:
    @{{vllmctl}} delete-hf-token-secret "$@"

# create the vllm-api-key Secret from the stored key
[no-cd]
create-api-key-secret *args:
    @{{vllmctl}} create-api-key-secret "$@"

# delete the vllm-api-key Secret (the stored key stays)
[no-cd]
delete-api-key-secret *args:
    @{{vllmctl}} delete-api-key-secret "$@"

# the release, each model's pods and why any is not Ready
[no-cd]
status *args:
    @{{vllmctl}} status "$@"

# the Services, the base URL and client examples
[no-cd]
endpoints *args:
    @{{vllmctl}} endpoints "$@"

# follow one model's logs (choose when no name is given)
[no-cd]
logs *args:
    @{{vllmctl}} logs "$@"

# follow the router's logs
[no-cd]
router-logs *args:
    @{{vllmctl}} router-logs "$@"

# forward a local port (default 8000) to the router
[no-cd]
port-forward *args:
    @{{vllmctl}} port-forward "$@"

# the models the router serves
[no-cd]
list-api-models *args:
    @{{vllmctl}} list-api-models "$@"

# send a prompt to a model and stream the answer
[no-cd]
test-completions *args:
    @{{vllmctl}} test-completions "$@"

# check tools, cluster, secrets, models and GPU fit before deploying
[no-cd]
doctor *args:
    @{{vllmctl}} doctor "$@"

# the old recipe's name for doctor
[no-cd]
check-prerequisites *args:
    @{{vllmctl}} doctor "$@"

# a model's GPU memory: weights, KV cache, and whether it fits
[no-cd]
estimate *args:
    @{{vllmctl}} estimate "$@"

# print the shell completion script (bash, zsh or fish)
[no-cd]
completion *args:
    @{{vllmctl}} completion "$@"

# show the resolved settings and where each came from
[no-cd]
config *args:
    @{{vllmctl}} config "$@"

# --- development -------------------------------------------------------------

# install what the tests need and run them (the README's test command)
test *args:
    bash scripts/test "$@"

# ruff and mypy
lint:
    python3 -m ruff check .
    python3 -m ruff format --check .
    python3 -m mypy

# a simulated cluster to try vllmctl on, in the foreground (tests/sandbox/README.md)
sandbox *args:
    python3 -m tests.sandbox --dir .sandbox "$@"

# startup and editing benchmarks (medians of the installed command)
bench *args:
    python3 benchmarks/bench.py "$@"

# `status` on 200 models and streaming overhead, against the sandbox (needs scripts/install-tools)
bench-cluster:
    PATH="$PWD/.tools/bin:$PATH" python3 benchmarks/bench_status.py
    PATH="$PWD/.tools/bin:$PATH" python3 benchmarks/bench_stream.py
