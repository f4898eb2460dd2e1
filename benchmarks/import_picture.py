"""The import picture of a trkx tree: modules, import edges (function-level imports included),
arrows from the core up into trkx.stages besides discovery, and import circles.

    python benchmarks/import_picture.py [TREE]     # TREE: a checkout (pipeline/, stages/); default this one
    git archive <commit> pipeline stages | tar -x -C /tmp/old && python benchmarks/import_picture.py /tmp/old

The graph is the one tests/test_imports.py checks."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("test_imports", Path(__file__).parents[1] / "tests" / "test_imports.py")
imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(imports)


def main() -> None:
    imports.REPO = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1]
    graph = imports.import_graph()
    core = [m for m in graph if not m.startswith("trkx.stages")]
    up = sorted((m, d) for m in core if m != imports.DISCOVERY for d in graph[m] if d.startswith("trkx.stages"))
    print(f"{len(graph)} modules ({len(core)} core, {len(graph) - len(core)} stage), "
          f"{sum(map(len, graph.values()))} import edges")
    print(f"{len(up)} arrows from the core up into trkx.stages besides discovery")
    for m, d in up:
        print(f"  {m} -> {d}")
    graph[imports.DISCOVERY] = graph[imports.DISCOVERY] - {"trkx.stages"}
    print(f"circles: {imports._cycles(graph) or 'none'}")


if __name__ == "__main__":
    main()
