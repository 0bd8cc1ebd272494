"""The layout of api/: it wires, geodata runs the SQL (STYLE.md rules 2, 4, 15, 17).

Read with ``ast`` from the source files, so nothing is imported or executed:
no module under ``api/routes`` or ``api/cli`` (nor, outside them, any module of
``api`` not listed below) runs a statement (``.execute(``, ``.exec_driver_sql(``)
or imports SQLAlchemy's ``text``; and every router is mounted from the one
ordered list in ``api.app``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "api"
# Calls that send SQL to the database.
SQL_CALLS = {"execute", "exec_driver_sql", "executemany"}
# Modules still running SQL, each with the reason; the list only shrinks.
NOT_YET: dict[str, str] = {}


def _sql_uses(path: Path) -> list[str]:
    """Where a module runs SQL or imports ``text``: 'line N: what'."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            found.append(f"line {node.lineno}: .{node.func.attr}(")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            if any(a.name in ("text", "sql") for a in node.names):
                found.append(f"line {node.lineno}: from {node.module} import text")
        elif (isinstance(node, ast.Attribute) and node.attr == "text" and isinstance(node.value, ast.Name)
              and node.value.id in ("sqlalchemy", "sa")):
            found.append(f"line {node.lineno}: {node.value.id}.text")
    return found


def _modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in API.rglob("*.py"))


@pytest.mark.parametrize("module", _modules())
def test_api_runs_no_sql(module):
    """Every statement lives in geodata; api/ modules call its functions."""
    uses = _sql_uses(ROOT / module)
    if module in NOT_YET:
        pytest.skip(NOT_YET[module])
    assert not uses, f"{module} runs SQL itself ({'; '.join(uses)}): move it into geodata"


def test_the_check_sees_sql(tmp_path):
    """The check finds what it looks for (a module that runs SQL the usual ways)."""
    src = ("from sqlalchemy import text\nimport sqlalchemy\n"
           "def f(conn):\n    conn.execute(text('SELECT 1'))\n    conn.exec_driver_sql('SELECT 1')\n"
           "    return sqlalchemy.text('x')\n")
    probe = tmp_path / "probe.py"
    probe.write_text(src, encoding="utf-8")
    uses = _sql_uses(probe)
    assert [u.split(":")[0] for u in uses] == ["line 1", "line 4", "line 5", "line 6"]


def test_not_yet_lists_only_modules_that_exist():
    for module in NOT_YET:
        assert (ROOT / module).is_file(), f"{module} is gone: drop it from NOT_YET"


def _router_modules() -> set[str]:
    """Modules of api/routes that define a module-level ``router``."""
    out = set()
    for path in (API / "routes").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == "router" for t in targets):
                out.add(path.stem)
    return out


def test_every_router_is_mounted_once_from_the_list():
    """Routers are listed in api.app.ROUTERS, in order; a new route module must be added there."""
    import importlib

    from api.app import ROUTERS, create_app
    from api.settings import Settings

    listed = list(ROUTERS)
    assert len({id(r) for r in listed}) == len(listed), "a router is listed twice"
    for name in _router_modules():
        module = importlib.import_module(f"api.routes.{name}")
        assert module.router in listed, f"api/routes/{name}.py has a router missing from api.app.ROUTERS"
    app = create_app(Settings.from_env())
    paths = list(app.openapi()["paths"])  # in mounting order
    # Fixed segments before path parameters where they overlap (the first match wins).
    assert paths.index("/api/v1/grids/{grid_id}/cells/leads") < paths.index("/api/v1/grids/{grid_id}/cells/{cell_id}")
    assert paths.index("/api/v1/grids/{grid_id}/cells/tags") < paths.index("/api/v1/grids/{grid_id}/cells/{cell_id}")


def test_app_does_not_discover_routes_by_file_name():
    tree = ast.parse((API / "app.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {"pkgutil", "importlib"} & imported


# Routes whose 2xx answer is not a JSON document of the API (files, tiles, pages, no content).
NOT_JSON = {"/ogc/collections/{collection_id}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
            "/api/v1/grids/{grid_id}/export", "/api/v1/imports/{import_id}/rejects", "/tiles/{layer}/{z}/{x}/{y}.pbf",
            "/api/v1/auth/logout", "/api/v1/auth/session"}


def test_every_json_route_declares_its_response_model():
    """The OpenAPI document shows each JSON answer's shape (a named model), not just 'object'."""
    from api.app import create_app
    from api.settings import Settings

    doc = create_app(Settings.from_env()).openapi()
    missing = []
    for path, ops in doc["paths"].items():
        if path in NOT_JSON or path.startswith("/maps"):
            continue
        for method, op in ops.items():
            ok = [code for code in op["responses"] if code.startswith("2")]
            content = op["responses"][ok[0]].get("content", {}) if ok else {}
            schema = next((c.get("schema") for t, c in content.items() if "json" in t), None)
            if not schema or "$ref" not in (schema.get("items") or schema):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"routes without a response model: {missing}"
