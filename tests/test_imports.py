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
- the kubernetes and subprocess importers are all inside vllmctl/cluster/ (the adapters);
- packages import one way, down the layers in LAYERS (the drawing in docs/ARCHITECTURE.md):
  a module imports only modules of its own package or of packages in layers below, type
  hints included;
- the shared machinery that runs every chart feature (the schema, render, the
  chart-version rules, doctor, status, install's checks) reaches features only through
  features.registry, features.base and features.contexts, never a feature module by name.
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
    "vllmctl.apis.openai_async",  # the same API over asyncio, for bench's load generation
    "vllmctl.chart.version",  # reads the chart repository's index.yaml (`deploy --check-chart`...)
}
KUBERNETES_IMPORTERS = {
    "vllmctl.cluster.kube",  # the one adapter to the Kubernetes API
}
SUBPROCESS_IMPORTERS = {
    "vllmctl.cluster.tools",  # runs helm and kubectl (timeouts, Ctrl-C, secrets kept out of argv)
}
# The packages, top layer first. Each imports only itself and the layers below it; two
# packages in one layer do not import each other. `vllmctl` itself (its __init__: the
# version) is at the bottom with core.
LAYERS: list[tuple[str, ...]] = [
    ("vllmctl.__main__",),  # `python -m vllmctl`
    ("vllmctl.cli",),  # the commands
    ("vllmctl.doctor",),  # checks of everything below
    ("vllmctl.ops",),  # install steps, recovery, restarts, GPU fit, estimates, status
    ("vllmctl.secrets",),  # the two secrets and their backends
    ("vllmctl.ui",),  # output, prompts, the App the commands get
    ("vllmctl.settings",),  # flags > env > vllmctl.yaml > defaults
    ("vllmctl.render",),  # models + settings -> chart values, plan, vLLM flags
    ("vllmctl.catalog",),  # models.yaml: schema, edits, store, environments
    ("vllmctl.cluster", "vllmctl.apis"),  # adapters: helm, kubectl, the API server; HTTP APIs
    ("vllmctl.features",),  # one module per chart feature, and the registry: handed adapters
    ("vllmctl.chart",),  # what the chart is: facts, version, render inputs
    ("vllmctl.core", "vllmctl"),  # the shared vocabulary
]
# Modules that run every feature and so must not name one.
FEATURE_BLIND = (
    "vllmctl.catalog.schema",
    "vllmctl.render.values",
    "vllmctl.render.chart_rules",
    "vllmctl.doctor",
    "vllmctl.ops.status",
    "vllmctl.cli.deploy",
    "vllmctl.cli.status",
)
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


def layer_of(module: str) -> tuple[int, str]:
    """(the layer's index, the package) of a module: its longest matching prefix."""
    found = [
        (len(prefix), index, prefix)
        for index, packages in enumerate(LAYERS)
        for prefix in packages
        if module == prefix or module.startswith(f"{prefix}.")
    ]
    assert found, f"{module} is in no layer: add its package to LAYERS"
    _, index, prefix = max(found)
    return index, prefix


def layer_violations(graph: dict[str, Imports]) -> list[str]:
    wrong = []
    for module, imp in graph.items():
        layer, package = layer_of(module)
        for target, line in {**imp.runtime, **imp.type_checking}.items():
            to_layer, to_package = layer_of(target)
            if to_layer < layer or (to_layer == layer and to_package != package):
                wrong.append(f"{module}:{line} imports {target} ({to_package} is not below {package})")
    return wrong


def features_named(graph: dict[str, Imports]) -> list[str]:
    allowed = {
        "vllmctl.features",
        "vllmctl.features.registry",
        "vllmctl.features.base",
        "vllmctl.features.contexts",
    }
    return [
        f"{module}:{line} imports {target}"
        for module, imp in graph.items()
        if any(module == m or module.startswith(f"{m}.") for m in FEATURE_BLIND)
        for target, line in {**imp.runtime, **imp.type_checking}.items()
        if target.startswith("vllmctl.features.") and target not in allowed
    ]


def test_packages_import_down_the_layers_only(graph: dict[str, Imports]) -> None:
    wrong = layer_violations(graph)
    assert wrong == [], "\n".join(wrong)


def test_the_shared_machinery_reaches_features_only_through_the_registry(graph: dict[str, Imports]) -> None:
    named = features_named(graph)
    assert named == [], "\n".join(named)


def test_the_layer_rules_catch_an_upward_import_and_a_named_feature() -> None:
    graph = {
        "vllmctl.core.errors": Imports(runtime={"vllmctl.cli": 3}),  # up
        "vllmctl.cluster.kube": Imports(type_checking={"vllmctl.apis.hub": 7}),  # across one layer
        "vllmctl.render.values": Imports(runtime={"vllmctl.features.autoscaling": 9}),
        "vllmctl.ops.deploy": Imports(runtime={"vllmctl.features.sources": 4}),  # may name one
    }
    assert layer_violations(graph) == [
        "vllmctl.core.errors:3 imports vllmctl.cli (vllmctl.cli is not below vllmctl.core)",
        "vllmctl.cluster.kube:7 imports vllmctl.apis.hub (vllmctl.apis is not below vllmctl.cluster)",
    ]
    assert features_named(graph) == ["vllmctl.render.values:9 imports vllmctl.features.autoscaling"]


def test_every_feature_is_registered_once_with_its_own_fields(graph: dict[str, Imports]) -> None:
    from vllmctl.catalog.schema import CORE_FIELDS
    from vllmctl.features import registry
    from vllmctl.features.base import overriding
    from vllmctl.settings import SPECS

    names = [f.name for f in registry.FEATURES]
    assert len(names) == len(set(names)), names
    owned: dict[str, str] = {}
    for feature in registry.FEATURES:
        for key in feature.fields:
            assert key not in CORE_FIELDS and key not in owned, f"{key}: {feature.name} and {owned.get(key)}"
            owned[key] = feature.name
    settings = {spec.env for spec in SPECS}
    declared = [(f.name, env) for f in registry.FEATURES for env in f.settings]
    assert [(name, env) for name, env in declared if env not in settings] == []
    modules = {m for m in graph if m.startswith("vllmctl.features.") and "FEATURE = " in _source(m)}
    assert {type(f).__module__ for f in registry.FEATURES} == modules  # every FEATURE is listed
    status_hooks = ("read_status", "model_status", "status_table")
    silent = [
        f"{feature.name}: {hook}"
        for feature in registry.FEATURES
        for hook in status_hooks
        if feature in overriding(registry.FEATURES, hook)
        and feature.status_key is None
        # a reading about the router (its HPA) is shown under the router, not per model
        and not (hook == "read_status" and feature in overriding(registry.FEATURES, "router_reading"))
    ]
    assert silent == [], f"status skips these hooks without a status_key: {silent}"


def _source(module: str) -> str:
    return (PACKAGE.parent / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")


# ---------------------------------------------------------------- the reader itself


def test_the_reader_sees_what_vllmctl_imports(graph: dict[str, Imports]) -> None:
    """Known edges of each kind, so the rules above cannot pass on an empty graph."""
    assert len(graph) > 50
    assert "vllmctl.features.base" in graph["vllmctl.render.values"].runtime  # top-level from-import
    assert "vllmctl.features.registry" in graph["vllmctl.render.values"].runtime  # from package import module
    assert (
        "vllmctl.features.autoscaling_values" in graph["vllmctl.features.autoscaling_cluster"].runtime
    )  # from package import module as ...
    assert "vllmctl.catalog.environments" in graph["vllmctl.catalog.selected"].runtime  # inside a function
    assert "vllmctl.core.findings" in graph["vllmctl.features.sources"].type_checking  # under TYPE_CHECKING
    assert "vllmctl.core.findings" not in graph["vllmctl.features.sources"].runtime
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
