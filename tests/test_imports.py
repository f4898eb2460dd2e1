"""The import picture: the core (``trkx`` outside ``trkx.stages``) never imports a stage module,
except the one place that discovers them (``trkx.stage``), and no modules import each other in a
circle (function-level imports included), except that discovery."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).parents[1]
DISCOVERY = "trkx.stage"            # imports trkx.stages to discover the built-in stages


def _modules() -> dict[str, Path]:
    """Every trkx module by name (pipeline/ is trkx, stages/ is trkx.stages)."""
    out = {}
    for root, package in ((REPO / "pipeline", "trkx"), (REPO / "stages", "trkx.stages")):
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the trkx modules it imports anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_core_module_imports_a_stage_module_except_discovery():
    graph = import_graph()
    core = [m for m in graph if not m.startswith("trkx.stages")]
    wrong = {m: sorted(d for d in graph[m] if d.startswith("trkx.stages")) for m in core if m != DISCOVERY}
    assert {m: d for m, d in wrong.items() if d} == {}
    assert graph[DISCOVERY] & {m for m in graph if m.startswith("trkx.stages")} == {"trkx.stages"}


def test_no_import_circles_but_discovery():
    graph = import_graph()
    graph[DISCOVERY] = graph[DISCOVERY] - {"trkx.stages"}      # the registry's discovery, by design
    assert _cycles(graph) == []
