"""The import rules of vllmctl's architecture (docs/ARCHITECTURE.md, "Import rules").

The import graph is read from the source with `ast`, not by importing anything, so that
it holds every import a module can make: top-level ones, and those inside functions too
(vllmctl imports lazily to keep `--help` fast, but a lazy import is still a dependency
and still closes a circle). Relative imports are resolved, and `from vllmctl import x`
counts as an import of the module `vllmctl.x` when x is one.

Imports under `if TYPE_CHECKING:` are left out of the cycle check: they never run, so
they cannot make a runtime circle, and a type hint naming a class of a module above is
the usual way to type a parameter without depending on that module. The layer rules
(click, httpx, kubernetes, subprocess) count them all the same: a type from a library
still ties the module to that library.

Rules:
- no cycle among vllmctl's modules;
- core modules (everything outside vllmctl/cli/) never import click, nor vllmctl.cli
  (only `__main__`, the entry point, does);
- only the modules listed below import httpx, kubernetes or subprocess. A new importer
  must be added to its list here, a conscious choice reviewed with the change;
- the kubernetes and subprocess importers are all inside vllmctl/cluster/ (the adapters).
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vllmctl"

# Who may import which library, and why. Written from what the code does today.
HTTPX_IMPORTERS = {
    "vllmctl.apis.openai_api",  # the client of the served OpenAI-compatible API
    "vllmctl.chart.version",  # reads the chart repository's index.yaml (`deploy --check-chart`...)
}
KUBERNETES_IMPORTERS = {
    "vllmctl.cluster.kube",  # the one adapter to the Kubernetes API
}
SUBPROCESS_IMPORTERS = {
    "vllmctl.cluster.tools",  # runs helm and kubectl (timeouts, Ctrl-C, secrets kept out of argv)
}
CLI_IMPORTERS_OUTSIDE_CLI = {
    "vllmctl.__main__",  # `python -m vllmctl`
}


@dataclass
class Imports:
    """What one module imports: vllmctl modules (with the line, split by whether the import
    runs) and the top-level names of everything else."""

    runtime: dict[str, int] = field(default_factory=dict)
    type_checking: dict[str, int] = field(default_factory=dict)
    external: dict[str, int] = field(default_factory=dict)


def module_files(package: Path) -> dict[str, Path]:
    """Module name -> file, for every .py under `package` (a package is its __init__.py)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement may load: `from a import b` may be module a.b."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the module's package, one level up per extra dot
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    return [source, *(f"{source}.{alias.name}" for alias in node.names)]


def read_imports(package: Path) -> dict[str, Imports]:
    """Every module of `package` and what it imports, anywhere in its body."""
    files = module_files(package)
    return {module: _read_module(module, path, files) for module, path in files.items()}


def _read_module(module: str, path: Path, files: dict[str, Path]) -> Imports:
    imports = Imports()
    root = module.partition(".")[0]
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_one(stmt, True)
                for stmt in child.orelse:
                    visit_one(stmt, type_checking)
            else:
                visit_one(child, type_checking)

    def visit_one(node: ast.AST, type_checking: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported_names(node, module, is_package):
                if name == root or name.startswith(f"{root}."):
                    while name not in files:  # the longest prefix that is one of our modules
                        name = name.rpartition(".")[0]
                    if name != module:
                        into = imports.type_checking if type_checking else imports.runtime
                        into.setdefault(name, node.lineno)
                elif name and not (isinstance(node, ast.ImportFrom) and node.level):
                    imports.external.setdefault(name.partition(".")[0], node.lineno)
        visit(node, type_checking)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return imports


def find_cycle(graph: dict[str, Imports]) -> list[str] | None:
    """One circle of runtime imports, as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def walk(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module].runtime):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := walk(target)):
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := walk(module)):
            return cycle
    return None


def describe(cycle: list[str], graph: dict[str, Imports], package: Path) -> str:
    files = module_files(package)
    steps = [
        f"  {a} imports {b} ({files[a].relative_to(package.parent)}:{graph[a].runtime[b]})"
        for a, b in itertools.pairwise(cycle)
    ]
    return "import cycle: " + " -> ".join(cycle) + "\n" + "\n".join(steps)


def importers_of(graph: dict[str, Imports], library: str) -> dict[str, int]:
    return {module: imp.external[library] for module, imp in graph.items() if library in imp.external}


@pytest.fixture(scope="module")
def graph() -> dict[str, Imports]:
    return read_imports(PACKAGE)


# ---------------------------------------------------------------- the rules


def test_no_import_cycle_among_vllmctl_modules(graph: dict[str, Imports]) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, describe(cycle, graph, PACKAGE)


def in_cli(module: str) -> bool:
    """Whether `module` is vllmctl.cli or inside it (not merely named alike)."""
    return module == "vllmctl.cli" or module.startswith("vllmctl.cli.")


def test_core_modules_never_import_click(graph: dict[str, Imports]) -> None:
    core = {m: line for m, line in importers_of(graph, "click").items() if not in_cli(m)}
    assert core == {}, f"click outside vllmctl/cli/ (module: line): {core}"


def test_core_modules_never_import_the_commands(graph: dict[str, Imports]) -> None:
    found = {
        module: sorted(t for t in {**imp.runtime, **imp.type_checking} if in_cli(t))
        for module, imp in graph.items()
        if not in_cli(module) and module not in CLI_IMPORTERS_OUTSIDE_CLI
    }
    assert {m: t for m, t in found.items() if t} == {}


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("httpx", HTTPX_IMPORTERS),
        ("kubernetes", KUBERNETES_IMPORTERS),
        ("subprocess", SUBPROCESS_IMPORTERS),
    ],
)
def test_only_the_listed_modules_import(graph: dict[str, Imports], library: str, allowed: set[str]) -> None:
    importers = importers_of(graph, library)
    stray = {m: line for m, line in importers.items() if m not in allowed}
    assert stray == {}, (
        f"{library} imported outside the allowed modules (module: line): {stray}; move the call "
        f"into one of {sorted(allowed)}, or add the module to the list in tests/test_imports.py"
    )
    # A list naming modules that no longer import the library would allow a stray later.
    assert set(importers) == allowed, f"no longer import {library}: {sorted(allowed - set(importers))}"


def test_only_the_cluster_package_runs_processes_or_imports_kubernetes() -> None:
    """The layout shows the architecture: the adapters to the outside live in cluster/."""
    outside = sorted(
        m for m in KUBERNETES_IMPORTERS | SUBPROCESS_IMPORTERS if not m.startswith("vllmctl.cluster.")
    )
    assert outside == [], f"move these into vllmctl/cluster/: {outside}"


# ---------------------------------------------------------------- the reader itself


def test_the_reader_sees_what_vllmctl_imports(graph: dict[str, Imports]) -> None:
    """Known edges of each kind, so the rules above cannot pass on an empty graph."""
    assert len(graph) > 50
    assert "vllmctl.features.base" in graph["vllmctl.chart.values"].runtime  # top-level from-import
    assert "vllmctl.features.registry" in graph["vllmctl.chart.values"].runtime  # from package import module
    assert (
        "vllmctl.features.autoscaling_values" in graph["vllmctl.features.autoscaling_cluster"].runtime
    )  # from package import module as ...
    assert "vllmctl.environments" in graph["vllmctl.catalog.selected"].runtime  # inside a function
    assert "vllmctl.catalog.schema" in graph["vllmctl.features.sources"].type_checking  # under TYPE_CHECKING
    assert "vllmctl.catalog.schema" not in graph["vllmctl.features.sources"].runtime
    assert "kubernetes" in graph["vllmctl.cluster.kube"].external  # lazy, inside functions


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "vllmctl"


def test_a_cycle_through_a_lazy_relative_import_is_named(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "vllmctl/__init__.py": "",
            "vllmctl/a.py": "from vllmctl import b\n",
            "vllmctl/b.py": "def f():\n    from .sub import c\n",
            "vllmctl/sub/__init__.py": "",
            "vllmctl/sub/c.py": "import os\n\ndef g():\n    from .. import a\n",
        },
    )
    graph = read_imports(package)
    cycle = find_cycle(graph)
    assert cycle == ["vllmctl.a", "vllmctl.b", "vllmctl.sub.c", "vllmctl.a"]
    text = describe(cycle, graph, package)
    assert "vllmctl.b imports vllmctl.sub.c (vllmctl/b.py:2)" in text
    assert "vllmctl.sub.c imports vllmctl.a (vllmctl/sub/c.py:4)" in text


def test_imports_under_type_checking_make_no_cycle(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "vllmctl/__init__.py": "",
            "vllmctl/low.py": (
                "from typing import TYPE_CHECKING\nimport typing\n"
                "if TYPE_CHECKING:\n    from vllmctl.high import Thing\n"
                "if typing.TYPE_CHECKING:\n    import vllmctl.high\n"
            ),
            "vllmctl/high.py": "from vllmctl.low import x\nimport httpx.codes\n",
        },
    )
    graph = read_imports(package)
    assert find_cycle(graph) is None
    assert graph["vllmctl.low"].type_checking == {"vllmctl.high": 4}
    assert importers_of(graph, "httpx") == {"vllmctl.high": 2}
