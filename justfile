# The repo's own justfile, for contributors: vllmctl's recipes (imported from vllm.just,
# so `just add-model` works here and runs where you call it) plus the development recipes
# below. Another project imports vllm.just, never this file, so these recipes never show
# up under its `vllm::` (README, "Development").

# vllm.just's `bench` runs `vllmctl bench` (a served model under load); here `bench` is the
# development recipe below (vllmctl's own start-up and editing benchmarks), which overrides
# it: a recipe of the importing file wins over an imported one of the same name.
set allow-duplicate-recipes

import 'vllm.just'

# The Python scripts/test set up: the active virtual environment, else the repo's .venv
# (scripts/python-env), else python3.
python := if env("VIRTUAL_ENV", "") != "" { "python" } else if path_exists(justfile_directory() / ".venv/bin/python") == "true" { justfile_directory() / ".venv/bin/python" } else { "python3" }
# ...and its bin/ first on PATH, so the benchmarks time the vllmctl installed there.
venv_path := if python =~ "/" { parent_directory(python) + ":" } else { "" }

# list the recipes (this file's own first recipe is the default, not vllm.just's)
[private]
help:
    @just --justfile {{quote(justfile())}} --list

# install what the tests need and run them (the README's test command)
test *args:
    bash scripts/test "$@"

# ruff and mypy
lint:
    bash scripts/lint

# a simulated cluster to try vllmctl on, in the foreground (tests/sandbox/README.md)
sandbox *args:
    {{python}} -m tests.sandbox --dir .sandbox "$@"

# startup and editing benchmarks (medians of the installed command)
bench *args:
    PATH="{{venv_path}}$PATH" {{python}} benchmarks/bench.py "$@"

# start-up and render of this checkout against another revision, in turns: just bench-compare main~3
bench-compare rev *args:
    {{python}} benchmarks/bench_compare.py "$@"

# time and peak memory of `validate` on hostile files: alias bombs, deep nesting, 50 MB (issue 14)
bench-hostile *args:
    PATH="{{venv_path}}$PATH" {{python}} benchmarks/bench_hostile.py "$@"

# `vllmctl bench` against guidellm on the router stand-in: TTFT/ITL, CPU per request, the client's ceiling
bench-client *args:
    PATH="{{venv_path}}$PATH" {{python}} benchmarks/bench_client.py "$@"

# `status` on 200 models and streaming overhead, against the sandbox (needs scripts/install-tools)
bench-cluster:
    PATH="{{venv_path}}$PWD/.tools/bin:$PATH" {{python}} benchmarks/bench_status.py
    PATH="{{venv_path}}$PWD/.tools/bin:$PATH" {{python}} benchmarks/bench_stream.py
