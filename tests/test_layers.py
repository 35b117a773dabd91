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


def test_spec_and_the_lower_layers_never_import_analysis_or_report() -> None:
    graph = import_graph(top_level_only=False)
    lower = [m for m in graph if m.split(".")[1:2] in (["train"], ["models"], ["norms"], ["data"])]
    for module in ["normbench.spec", *lower]:
        upper = ("normbench.analysis", "normbench.report")
        upward = {d for d in graph[module] if d.startswith(upper)}
        assert not upward, (module, upward)


def test_every_model_kind_has_one_entry_with_an_importable_builder() -> None:
    import importlib

    from normbench.models.catalog import MODELS
    from normbench.models.kinds import MODEL_KINDS

    assert tuple(MODELS) == MODEL_KINDS
    for entry in MODELS.values():
        module, function = entry.builder.split(":")
        assert callable(getattr(importlib.import_module(module), function)), entry.name
