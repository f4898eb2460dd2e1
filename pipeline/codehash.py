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


def _is_package(name: str) -> bool:
    path = _source_path(name)
    return path is not None and path.name == "__init__.py"


def _trkx(name: str | None) -> bool:
    return bool(name) and (name == ROOT_PACKAGE or name.startswith(ROOT_PACKAGE + "."))


def _defining_module(package: str, attribute: str) -> str | None:
    """The module that defines ``package.attribute`` (a class or function a package re-exports)."""
    try:
        obj = getattr(importlib.import_module(package), attribute)
    except (ImportError, AttributeError):
        return None
    return getattr(obj, "__module__", None) if callable(obj) else None


def _imports(module: str, tree: ast.AST, path: Path) -> tuple[set[str], set[str]]:
    """The trkx modules ``tree`` imports: (followed, package inits counted by their own code only).
    ``from trkx.pkg import Name`` follows the module that defines ``Name``, not every module the
    package's ``__init__`` re-exports (``from trkx.models import EmbeddingNet`` is the embedding
    network's code, not the GNN's)."""
    follow: set[str] = set()
    shallow: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            follow.update(a.name for a in node.names if _trkx(a.name) and _is_module(a.name))
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            package = _package_of(module, path).split(".")
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        if not _trkx(base) or not _is_module(base):
            continue
        if not _is_package(base):
            follow.add(base)
            continue
        shallow.add(base)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if _is_module(sub):
                follow.add(sub)
                continue
            defining = _defining_module(base, alias.name)
            # a constant, or a name the package makes itself: all of the package
            follow.add(defining if _trkx(defining) else base)
    return follow, shallow


@lru_cache(maxsize=None)
def _module_tree(module: str) -> tuple[str, frozenset[str], frozenset[str]]:
    """(digest of the module's syntax tree, the trkx modules it imports: followed, counted by their
    own code only); read once per process."""
    path = _source_path(module)
    if path is None:
        return "", frozenset(), frozenset()
    tree = ast.parse(path.read_text(), filename=str(path))
    follow, shallow = _imports(module, tree, path)
    return hashlib.sha256(ast.dump(_strip_docstrings(tree)).encode()).hexdigest(), frozenset(follow), frozenset(shallow)


def code_closure(module: str) -> list[str]:
    """``module`` and every trkx module it uses, directly or through others, with the packages
    whose ``__init__`` those imports run (by their own code), sorted."""
    seen, shallow, todo = set(), set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        _, follow, inits = _module_tree(name)
        todo.extend(follow - seen)
        shallow |= inits
        # importing a.b.c runs the __init__ of a and a.b first
        parts = name.split(".")
        shallow.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if _trkx(p))
    return sorted(seen | shallow)


def code_digest(module: str) -> str:
    """One digest of the code ``module`` runs (its closure's syntax trees, by module name)."""
    h = hashlib.sha256()
    for name in code_closure(module):
        h.update(f"{name}={_module_tree(name)[0]};".encode())
    return h.hexdigest()[:16]
