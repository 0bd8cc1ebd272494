"""Shared pieces of the grid, territory, scenario, gap and export routes: path types, scoped lookups, jobs.

Every rule of who sees what lives in ``geodata.scope`` and is applied in SQL by
``geodata.reads``; the lookups here only adapt it to the routes (a grid
dependency that answers 404, never the data, when the grid is out of scope).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request, status
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from api.auth import CurrentUser
from api.deps import ConnDep, Page, UserDep
from geodata.reads import access
from geodata.reads.access import LE_WIDE
from geodata.reads.values import jsonable, records
from geodata.scope import Scope

__all__ = ["LE_WIDE", "jsonable", "records"]  # re-exported for the routes

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
    return access.scoped_grid(conn, scope=scope, grid_id=grid_id)


def _grid_dep(grid_id: GridIdPath, conn: ConnDep, user: UserDep) -> dict[str, Any]:
    # A dependency so the scope check runs before any request body is validated:
    # someone else's grid answers 404 whatever the body.
    return scoped_grid(conn, user.scope, grid_id)


GridDep = Annotated[dict, Depends(_grid_dep)]


def cell_in_scope(conn: Connection, scope: Scope, grid_id: int, cell_id: str) -> None:
    """NotFound unless the cell exists and ``scope`` may see it (an RM: cells they own)."""
    access.check_cell(conn, scope=scope, grid_id=grid_id, cell_id=cell_id)


def visible_cells(conn: Connection, scope: Scope, grid_id: int) -> set[str] | None:
    """Cells of a grid whose person-tied figures ``scope`` may see (None: all of them)."""
    return access.visible_cells(conn, scope=scope, grid_id=grid_id)


def unowned_cells(conn: Connection, grid_id: int) -> set[str]:
    """Cells with no current owner (blank areas belong to no one's territory)."""
    return access.unowned_cells(conn, grid_id=grid_id)


def visible_rms(conn: Connection, scope: Scope) -> set[str]:
    """RM codes ``scope`` may see (an RM: themselves; a branch manager: their outlets' RMs)."""
    return access.visible_rms(conn, scope=scope)


def require_le_wide(user: CurrentUser, what: str) -> None:
    """403 for roles limited to their own or their outlets' territories."""
    if user.role not in LE_WIDE:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role!r} may not see {what}")


def start_job(request: Request, *, kind: str, user: CurrentUser, fn: Callable[[Any, Any], dict | None]) -> JobStarted:
    """Submit ``fn(conn, progress)`` as a background job in its own transaction.

    ``fn`` calls an operation (``api.operations``), which writes the audit row in that transaction."""
    engine = request.app.state.engine

    def job(progress) -> dict[str, Any] | None:
        with engine.begin() as jconn:
            return jsonable(fn(jconn, progress))

    job_id = request.app.state.jobs.submit(kind=kind, user=user, fn=job)
    return JobStarted(job_id=job_id, poll=f"/api/v1/jobs/{job_id}")


def items(rows: list[Any], total: int, page: Page) -> dict[str, Any]:
    """The usual list answer ``{items, total, next_offset}``."""
    nxt = page.offset + len(rows)
    return {"items": rows, "total": total, "next_offset": nxt if nxt < total else None}
