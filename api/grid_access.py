"""Shared pieces of the grid, territory, scenario, gap and export routes: scoped lookups, jobs, JSON.

Every rule of who sees what comes from ``geodata.scope``; this module only
applies it to one grid, cell or scenario and answers 404 (never the data)
when the object is outside the user's scope.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Depends, HTTPException, Path, Request, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import Connection

from api.auth import CurrentUser
from api.deps import ConnDep, Page, UserDep
from geodata import audit
from geodata.errors import NotFound
from geodata.grids import get_grid
from geodata.scope import Scope, where

# Roles that see the whole legal entity (every RM's cells and customers, masked for some).
LE_WIDE = ("admin", "planner", "analyst")

# Free text may hold anything but NUL, which PostgreSQL text refuses.
NO_NUL = r"^[^\x00]*$"
CODE = r"^[A-Za-z0-9_\-]+$"
GridIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Id of the grid version.")]
CellIdPath = Annotated[str, Path(min_length=1, max_length=32, pattern=CODE,
                                 description="Id of the cell within the grid (H3 index or village code).")]
ScenarioIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Id of the scenario.")]


class JobStarted(BaseModel):
    """An accepted long operation: poll the job until it is done; its result is the outcome."""

    job_id: str
    poll: str


def scoped_grid(conn: Connection, scope: Scope, grid_id: int) -> dict[str, Any]:
    """The grid's summary if ``scope`` may see it; NotFound otherwise (also when out of scope)."""
    cond = where(scope, "grid", "g")
    seen = conn.execute(text(f"SELECT 1 FROM grid g WHERE g.id = :gid AND {cond.sql}"),
                        {**cond.params, "gid": grid_id}).first()
    if seen is None:
        raise NotFound(f"grid {grid_id} does not exist")
    return get_grid(conn, grid_id=grid_id)


def _grid_dep(grid_id: GridIdPath, conn: ConnDep, user: UserDep) -> dict[str, Any]:
    # A dependency so the scope check runs before any request body is validated:
    # someone else's grid answers 404 whatever the body.
    return scoped_grid(conn, user.scope, grid_id)


GridDep = Annotated[dict, Depends(_grid_dep)]


def cell_in_scope(conn: Connection, scope: Scope, grid_id: int, cell_id: str) -> None:
    """NotFound unless the cell exists and ``scope`` may see it (an RM: cells they own)."""
    cond = where(scope, "cell", "c")
    seen = conn.execute(text(f"SELECT 1 FROM cell c WHERE c.grid_id = :gid AND c.cell_id = :cid AND {cond.sql}"),
                        {**cond.params, "gid": grid_id, "cid": cell_id}).first()
    if seen is None:
        raise NotFound(f"grid {grid_id} has no cell {cell_id!r}")


def visible_cells(conn: Connection, scope: Scope, grid_id: int) -> set[str] | None:
    """Cells of a grid whose person-tied figures ``scope`` may see (None: all of them)."""
    if scope.role in LE_WIDE:
        return None
    cond = where(scope, "cell", "c")
    rows = conn.execute(text(f"SELECT c.cell_id FROM cell c WHERE c.grid_id = :gid AND {cond.sql}"),
                        {**cond.params, "gid": grid_id})
    return {r[0] for r in rows}


def unowned_cells(conn: Connection, grid_id: int) -> set[str]:
    """Cells with no current owner (blank areas belong to no one's territory)."""
    rows = conn.execute(text(
        "SELECT c.cell_id FROM cell c WHERE c.grid_id = :gid AND NOT EXISTS (SELECT 1 FROM territory t"
        " WHERE t.grid_id = c.grid_id AND t.cell_id = c.cell_id AND t.role = 'owner' AND t.valid_to IS NULL)"),
        {"gid": grid_id})
    return {r[0] for r in rows}


def visible_rms(conn: Connection, scope: Scope) -> set[str]:
    """RM codes ``scope`` may see (an RM: themselves; a branch manager: their outlets' RMs)."""
    cond = where(scope, "rm", "r")
    return {r[0] for r in conn.execute(text(f"SELECT r.code FROM rm r WHERE {cond.sql}"), cond.params)}


def require_le_wide(user: CurrentUser, what: str) -> None:
    """403 for roles limited to their own or their outlets' territories."""
    if user.role not in LE_WIDE:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role!r} may not see {what}")


def start_job(request: Request, *, kind: str, user: CurrentUser, fn: Callable[[Any], dict | None],
              conn: Connection, object_type: str, object_id: str | None,
              detail: dict[str, Any] | None = None) -> JobStarted:
    """Submit ``fn(conn, progress)`` as a background job in its own transaction; audited."""
    engine = request.app.state.engine

    def job(progress) -> dict[str, Any] | None:
        with engine.begin() as jconn:
            return jsonable(fn(jconn, progress))

    job_id = request.app.state.jobs.submit(kind=kind, user=user, fn=job)
    audit.record(conn, username=user.username, action="create", object_type=object_type,
                 object_id=object_id, detail={"job_id": job_id, **(detail or {})})
    return JobStarted(job_id=job_id, poll=f"/api/v1/jobs/{job_id}")


def items(rows: list[Any], total: int, page: Page) -> dict[str, Any]:
    """The usual list answer ``{items, total, next_offset}``."""
    nxt = page.offset + len(rows)
    return {"items": rows, "total": total, "next_offset": nxt if nxt < total else None}


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy/pandas scalars, timestamps and NaN (→ None), recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [jsonable(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "__float__") and not isinstance(value, (int, str)):
        return float(value)  # Decimal from NUMERIC columns
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-ready dicts (geometry columns left out)."""
    cols = [c for c in df.columns if c != "geometry"]
    return [jsonable(dict(zip(cols, row, strict=True))) for row in df[cols].itertuples(index=False, name=None)]
