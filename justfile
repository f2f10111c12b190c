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

# startup and editing benchmarks (medians of the installed command)
bench *args:
    python3 benchmarks/bench.py "$@"
