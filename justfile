# The repo's own justfile, for contributors: vllmctl's recipes (imported from vllm.just,
# so `just add-model` works here and runs where you call it) plus the development recipes
# below. Another project imports vllm.just, never this file, so these recipes never show
# up under its `vllm::` (README, "Development").

import 'vllm.just'

# list the recipes (this file's own first recipe is the default, not vllm.just's)
[private]
help:
    @just --justfile {{quote(justfile())}} --list

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
