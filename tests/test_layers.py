"""The package's import graph has no cycles: layers import only downward."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "normbench"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    """Module → the normbench modules it imports (a ``from pkg import name`` of a submodule
    counts as that submodule). ``top_level_only``: leave out imports inside functions."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        deps: set[str] = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module in modules and not node.level:
                subs = {f"{node.module}.{a.name}" for a in node.names}
                found = subs & set(modules)
                deps |= found or {node.module}
                if found != subs:
                    deps.add(node.module)
        # A package's __init__ runs before its submodules: importing it is not a cycle with them.
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules() -> None:
    # Imports inside functions count too: a late import is how a cycle hides.
    assert cycles(import_graph(top_level_only=False)) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The layer table of docs/ARCHITECTURE.md, top to bottom: a module may import only modules of
# its own layer or below. The first matching prefix decides (so train.diag_catalog sits with
# the registries, the rest of train/ with the torch builders).
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (10, ("cli", "__main__")),
    (9, ("api",)),
    (8, ("execute", "listing", "preflight")),
    (7, ("report", "bench")),
    (6, ("analysis",)),
    (5, ("results",)),
    (3, ("spec", "suite_schema", "budget", "metrics", "gates", "claim_rules")),
    (2, ("norms.catalog", "models.catalog", "data", "train.diag_catalog")),
    (1, ("options", "arith", "metric_traits", "suite_keys", "errors", "naming")),
    (1, ("yamlsrc", "spread", "__init__", "streams", "usercode", "limits")),
    (4, ("train", "norms", "models")),
]


def layer_of(module: str) -> int:
    name = module.removeprefix("normbench").removeprefix(".") or "__init__"
    for number, prefixes in LAYERS:
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and the docs' table")


def test_every_import_points_down_the_layers() -> None:
    graph = import_graph(top_level_only=False)
    upward = [
        f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
        for m, deps in sorted(graph.items())
        for d in sorted(deps)
        if layer_of(d) > layer_of(m)
    ]
    assert upward == []


def test_every_model_kind_has_one_entry_with_an_importable_builder() -> None:
    import importlib

    from normbench.models.catalog import MODELS

    for entry in MODELS.values():
        module, function = entry.builder.split(":")
        assert callable(getattr(importlib.import_module(module), function)), entry.name


def test_the_synthetic_runs_name_only_registered_norms() -> None:
    from normbench.norms.catalog import NORMS
    from normbench.report.synthetic import NORM_TRAITS

    assert set(NORM_TRAITS) <= set(NORMS)
