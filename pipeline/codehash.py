"""The code a stage runs, as a digest for its cache fingerprint.

A stage's code is its own module and every trkx module it imports, found from the import
statements of their sources (anywhere in the file, function-level imports included), followed
transitively; nothing is listed by hand.  Each module counts by its syntax tree without docstrings,
so an edit to a comment, a docstring or the layout changes nothing, and any other edit changes the
digest.  Modules no stage imports (the command line, reports, benchmarks) are never part of one.
``trkx.stages`` discovers the stage modules at run time, so importing it does not pull every stage
into every other stage's code.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

ROOT_PACKAGE = "trkx"


def _source_path(module: str) -> Path | None:
    """The ``.py`` file of ``module`` (None for a module that is not Python source)."""
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _is_module(name: str) -> bool:
    try:
        return name in sys.modules or importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, tree: ast.AST, path: Path) -> set[str]:
    """The trkx modules ``tree`` imports (``import trkx.x``, ``from trkx.x import y`` where y may be
    a module, relative imports)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(module, path).split(".")
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if (name == ROOT_PACKAGE or name.startswith(ROOT_PACKAGE + ".")) and _is_module(name):
                found.add(name)
    return found


@lru_cache(maxsize=None)
def _module_tree(module: str) -> tuple[str, frozenset[str]]:
    """(digest of the module's syntax tree, the trkx modules it imports); read once per process."""
    path = _source_path(module)
    if path is None:
        return "", frozenset()
    tree = ast.parse(path.read_text(), filename=str(path))
    deps = _imports(module, tree, path)
    return hashlib.sha256(ast.dump(_strip_docstrings(tree)).encode()).hexdigest(), frozenset(deps)


def code_closure(module: str) -> list[str]:
    """``module`` and every trkx module it imports, directly or through others, sorted."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_module_tree(name)[1] - seen)
    return sorted(seen)


def code_digest(module: str) -> str:
    """One digest of the code ``module`` runs (its closure's syntax trees, by module name)."""
    h = hashlib.sha256()
    for name in code_closure(module):
        h.update(f"{name}={_module_tree(name)[0]};".encode())
    return h.hexdigest()[:16]
