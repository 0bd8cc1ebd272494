"""Territories of a grid (定格、定员、定责): current cells per RM, history, and manual changes.

Reading follows ``geodata.scope`` (an RM: their own territory; a branch manager:
their outlets' RMs). Changes are for planners and admins; each one answers
with the customers whose RM changes (the hand-over list) and is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import ConnDep, PageDep, UserDep, permitted
from api.grid_access import CODE, NO_NUL, GridDep, items, jsonable
from api.operations import territories as ops
from api.schemas import HistoryPublic, RmTerritoryPublic, TerritoriesPublic, TerritoryChangePublic
from geodata.reads import access
from geodata.reads import territories as reads

router = APIRouter(prefix="/api/v1/grids/{grid_id}/territories", tags=["territories"])
PlannerDep = permitted("plan")

CellId = Annotated[str, Field(min_length=1, max_length=32, pattern=CODE)]
CellIds = Annotated[list[CellId], Field(min_length=1, max_length=100_000,
                                     description="Ids of the cells (H3 index or village code).")]
Reason = Annotated[str | None, Field(default=None, max_length=500, pattern=NO_NUL, description="Why (kept in the history).")]
RmCode = Annotated[str, Field(min_length=1, max_length=32, pattern=CODE, description="Code of the RM.")]


class AssignCells(BaseModel):
    """Give cells to an RM."""

    cell_ids: CellIds
    rm_code: RmCode
    reason: Reason = None
    force: bool = Field(default=False, description="Also reassign locked cells.")


class MoveCells(BaseModel):
    """Move cells (all of `from_rm`'s when `cell_ids` is omitted) to another RM."""

    from_rm: RmCode
    to_rm: RmCode
    cell_ids: list[CellId] | None = Field(default=None, max_length=100_000, description="Cells to move (default: all).")
    reason: Reason = None
    force: bool = Field(default=False, description="Also move locked cells.")


class LockCells(BaseModel):
    """Lock cells (the optimiser must not move them) or unlock them."""

    cell_ids: CellIds
    locked: bool = Field(default=True, description="true locks, false unlocks.")
    reason: Reason = None


class CoOwner(BaseModel):
    """Add or remove a co-owner (e.g. an outlet head who oversees) on cells."""

    cell_ids: CellIds
    rm_code: RmCode
    add: bool = Field(default=True, description="true adds, false removes the co-owner.")


class Handover(BaseModel):
    """Hand over everything an RM who leaves owns: to one RM, or spread by the optimiser."""

    rm_code: RmCode
    to_rm: str | None = Field(default=None, max_length=32, pattern=CODE, description="Receiving RM (omit to spread).")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the optimiser (reproducible spread).")


@router.get("", response_model=TerritoriesPublic, response_model_exclude_unset=True)
def list_territories(grid: GridDep, conn: ConnDep, user: UserDep) -> dict:
    """Current territory of each RM you may see: owned and co-owned cells, customers, locked cells."""
    out = reads.current(conn, scope=user.scope, grid_id=grid["id"])
    return {"grid_id": grid["id"], "territory_version": grid["territory_version"], "items": out}


@router.get("/history", response_model=HistoryPublic, response_model_exclude_unset=True)
def territory_history(
    grid: GridDep, conn: ConnDep, user: UserDep, page: PageDep,
    cell_id: Annotated[str | None, Query(max_length=32, pattern=CODE, description="Only this cell's history.")] = None,
    rm_code: Annotated[str | None, Query(max_length=32, pattern=CODE, description="Only this RM's history.")] = None,
) -> dict:
    """Ownership history, newest first: RM, role, valid from/to, reason, who changed it, scenario.
    RMs and branch managers see the entries of the RMs they may see."""
    # One row past the page says whether there is a next one.
    rows = reads.history(conn, scope=user.scope, grid_id=grid["id"], cell_id=cell_id, rm_code=rm_code,
                         limit=page.limit + 1, offset=page.offset)
    part = rows[:page.limit]
    nxt = page.offset + len(part)
    return {"items": jsonable(part), "next_offset": nxt if len(rows) > len(part) else None}


@router.get("/{rm_code}", response_model=RmTerritoryPublic, response_model_exclude_unset=True)
def rm_territory(grid: GridDep, rm_code: Annotated[str, Path(max_length=32, pattern=CODE, description="Code of the RM.")],
                 conn: ConnDep, user: UserDep, page: PageDep) -> dict:
    """Cells one RM currently owns in this grid, with their customers (404 for an RM outside your scope)."""
    access.check_rms(conn, scope=user.scope, codes=(rm_code,))
    rows, total = reads.rm_cells(conn, grid_id=grid["id"], rm_code=rm_code, limit=page.limit, offset=page.offset)
    return {"rm_code": rm_code, **items(jsonable(rows), total, page)}


@router.post("/assign", response_model=TerritoryChangePublic, response_model_exclude_unset=True)
def assign(body: AssignCells, grid: GridDep, conn: ConnDep, user: PlannerDep) -> dict:
    """Give cells to an RM (locked cells only with `force`); answers the hand-over list."""
    return jsonable(ops.assign(conn, actor=user.username, scope=user.scope, grid_id=grid["id"], **body.model_dump()))


@router.post("/move", response_model=TerritoryChangePublic, response_model_exclude_unset=True)
def move(body: MoveCells, grid: GridDep, conn: ConnDep, user: PlannerDep) -> dict:
    """Move cells from one RM to another; answers the hand-over list."""
    return jsonable(ops.move(conn, actor=user.username, scope=user.scope, grid_id=grid["id"], **body.model_dump()))


@router.post("/locks", response_model=TerritoryChangePublic, response_model_exclude_unset=True)
def lock(body: LockCells, grid: GridDep, conn: ConnDep, user: PlannerDep) -> dict:
    """Lock or unlock cells; locking moves no customer, so the hand-over list is empty."""
    return jsonable(ops.lock(conn, actor=user.username, scope=user.scope, grid_id=grid["id"], **body.model_dump()))


@router.post("/co-owners", response_model=TerritoryChangePublic, response_model_exclude_unset=True)
def co_owner(body: CoOwner, grid: GridDep, conn: ConnDep, user: PlannerDep) -> dict:
    """Add or remove a co-owner on cells; owners do not change, so the hand-over list is empty."""
    return jsonable(ops.co_owner(conn, actor=user.username, scope=user.scope, grid_id=grid["id"],
                                 **body.model_dump()))


@router.post("/handover", response_model=TerritoryChangePublic, response_model_exclude_unset=True)
def handover(body: Handover, grid: GridDep, conn: ConnDep, user: PlannerDep) -> dict:
    """Hand over all cells of an RM who leaves, to `to_rm` or spread over the grid's other RMs by the
    optimiser; answers the hand-over list."""
    return jsonable(ops.handover(conn, actor=user.username, scope=user.scope, grid_id=grid["id"],
                                 **body.model_dump()))
