"""The layout rules of STYLE.md, read from the source with ``ast`` (issue 14, "Done when").

- ``grid/`` is a pure library: it imports neither ``geodata``, ``api``, ``maps`` nor a database or
  HTTP library, and reads or writes no files.
- Imports go one way (``api -> geodata, maps, grid``; ``geodata -> grid``; ``maps -> grid``; nothing
  imports ``api``), and no first-party module imports itself back through others, counting imports
  inside functions too.
- No module is over 400 lines outside ``geodata/migrations``.

The allow-lists below name what is known to break a rule today, each with its reason; they may only
shrink. A module or cycle that is not listed fails the test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("grid", "geodata", "api", "maps")
MAX_LINES = 400

# What each package may import of the others (STYLE.md rule 5; README's layout table).
MAY_IMPORT = {
    "grid": set(),
    "geodata": {"grid"},
    "maps": {"grid"},
    "api": {"geodata", "maps", "grid"},
}
# Third-party libraries grid must not import: databases and HTTP (STYLE.md rule 1).
GRID_FORBIDDEN_LIBS = {
    "sqlalchemy", "psycopg2", "psycopg", "geoalchemy2", "alembic", "fastapi", "starlette", "httpx",
    "requests", "uvicorn", "urllib3", "aiohttp",
}
# Calls that read or write files (grid takes configuration and data as values, never paths).
FILE_CALLS = {"read_text", "read_bytes", "write_text", "write_bytes"}

# Modules over MAX_LINES today, path -> reason. Shrinks as they are split; never add to it lightly.
LONG_MODULES_ALLOWED: dict[str, str] = {}
# Import cycles outside grid today, as sets of modules. Each is listed with why it is still there.
CYCLES_ALLOWED: list[set[str]] = []


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every first-party module (``geodata.migrations`` excluded: Alembic loads those)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("geodata", "migrations"):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported dotted name, line) of every import anywhere in the module, functions included.

    ``from a.b import c`` yields ``a.b.c`` when that is a module, else ``a.b``; relative imports are resolved.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                full = f"{mod}.{alias.name}"
                yield (full if full in MODULES else mod), node.lineno


def _first_party(imported: str) -> str | None:
    """The most specific first-party module an import names (None for third-party)."""
    parts = imported.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in MODULES:
            return cand
        parts.pop()
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for imported, _ in _imports(name, path):
            target = _first_party(imported)
            if target and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.add(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_walk_sees_every_package_and_its_imports():
    # guards the test itself: a walk that found nothing would pass every rule below
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert {"grid.territories", "grid.territories.plan", "grid.locate", "grid.synth"} <= set(MODULES)
    graph = _graph()
    assert "grid.territories.graph" in graph["grid.territories.plan"]
    assert "grid.errors" in graph["api.errors"]


def test_grid_imports_no_other_package_nor_database_or_http_library():
    bad = []
    for name, path in MODULES.items():
        if not name.startswith("grid"):
            continue
        for imported, line in _imports(name, path):
            top = imported.split(".")[0]
            if top in {"geodata", "api", "maps"} | GRID_FORBIDDEN_LIBS:
                bad.append(f"{_rel(path)}:{line} imports {imported}")
    assert not bad, "grid/ must stay a pure library (STYLE.md rule 1):\n" + "\n".join(bad)


def test_grid_does_no_file_io():
    bad = []
    for name, path in MODULES.items():
        if not name.startswith("grid"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id == "open":
                bad.append(f"{_rel(path)}:{node.lineno} open()")
            elif isinstance(f, ast.Attribute) and (f.attr in FILE_CALLS or (f.attr == "open" and (
                    isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Name) and f.value.func.id == "Path"))):
                bad.append(f"{_rel(path)}:{node.lineno} .{f.attr}()")
    assert not bad, "grid/ takes configuration and data as values; the caller reads files:\n" + "\n".join(bad)


def test_grid_errors_form_one_hierarchy():
    import importlib

    from grid.errors import GridError

    outside = []
    for name in MODULES:
        if not name.startswith("grid"):
            continue
        mod = importlib.import_module(name)
        for obj in vars(mod).values():
            if (isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == name
                    and not issubclass(obj, GridError)):
                outside.append(f"{name}.{obj.__name__}")
    assert not outside, "every grid error belongs under grid.errors.GridError: " + ", ".join(outside)


def test_imports_go_one_way():
    bad = []
    for name, path in MODULES.items():
        pkg = name.split(".")[0]
        for imported, line in _imports(name, path):
            target = _first_party(imported)
            if target is None:
                continue
            other = target.split(".")[0]
            if other != pkg and other not in MAY_IMPORT[pkg]:
                bad.append(f"{_rel(path)}:{line} ({pkg}) imports {target}")
    assert not bad, "imports go api -> geodata, maps, grid; geodata -> grid; maps -> grid:\n" + "\n".join(bad)


def test_no_import_cycles():
    found = _cycles(_graph())
    new = [sorted(c) for c in found if c not in CYCLES_ALLOWED]
    assert not new, f"import cycles (function-level imports count): {new}"
    assert not [c for c in found if any(m.startswith("grid") for m in c)], "grid has no allowed cycles"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_over_400_lines(package):
    long = {}
    for name, path in MODULES.items():
        if name.split(".")[0] != package:
            continue
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and _rel(path) not in LONG_MODULES_ALLOWED:
            long[_rel(path)] = n
    assert not long, f"modules over {MAX_LINES} lines (split them; STYLE.md rule 6): {long}"
