"""Scenarios, the sandbox (沙盘): draft territory plans that change nothing until published.

Scenarios name every RM of a grid, so only roles that see the whole legal
entity read them (admin, planner, analyst; ``geodata.scope`` kind
``scenario``); only planners and admins change them. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ConnDep, PageDep, UserDep, permitted
from api.grid_access import (
    CODE,
    NO_NUL,
    JobStarted,
    ScenarioIdPath,
    items,
    jsonable,
    require_le_wide,
    scoped_grid,
    start_job,
)
from api.operations import scenarios as ops
from api.schemas import ComparePublic, ScenarioOutcomePublic, ScenarioPublic, ScenariosPublic
from geodata import scenarios
from geodata.errors import NotFound
from geodata.reads import access

router = APIRouter(prefix="/api/v1/scenarios", tags=["scenarios"])
PlannerDep = permitted("plan")
# What the optimiser can weigh: columns of geodata.territories.cells_for_planning, and "travel"
# (distance from the RM's outlet, see grid.territories).
Measure = Literal["customers", "households", "population", "deposit", "loan", "visits_90d", "travel"]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL, description="Name of the scenario (unique among drafts of a grid).")]


class ScenarioCreate(BaseModel):
    """A new draft for a grid, copied from the current assignments (and locks) or empty."""

    grid_id: int = Field(ge=1, le=2**31 - 1, description="Grid version the scenario plans.")
    name: Name
    from_current: bool = Field(default=True, description="Start from current assignments (false: empty).")


class ScenarioPlan(BaseModel):
    """Balance the grid's cells over the RMs of chosen outlets into a (new or redone) draft."""

    model_config = ConfigDict(allow_inf_nan=False)  # NaN, Infinity, 1e400: 422, not a number

    grid_id: int = Field(ge=1, le=2**31 - 1, description="Grid version to plan.")
    name: Name
    outlets: list[Annotated[str, Field(max_length=32, pattern=CODE)]] | None = Field(
        default=None, max_length=1000, description="Outlet codes whose RMs share the cells (default: all of the county).")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed (same seed, same plan).")
    weights: dict[Measure, Annotated[float, Field(ge=0, le=1e6)]] | None = Field(
        default=None, description="Workload weights per measure, e.g. {\"customers\": 0.4, \"households\": 0.3}.")
    keep_current: bool = Field(default=False, description="Keep current owners where possible.")
    max_distance_km: float | None = Field(default=None, gt=0, le=1000, description="Farthest a cell may be from its RM's outlet.")
    without_rms: list[Annotated[str, Field(max_length=32, pattern=CODE)]] | None = Field(
        default=None, min_length=1, max_length=1000, description=(
            "RM codes left out of the plan: a plan with one RM fewer (an RM who leaves), as `gridmkt territories plan"
            " --without` and the demo's `demo-one-fewer` do. Their cells are shared among the others; with"
            " `keep_current` every other cell stays with its owner unless balance needs it. An RM your legal entity"
            " does not have answers 404; one not among the grid's planned RMs fails the job."))


class ScenarioEdit(BaseModel):
    """Set the RM and/or lock flag of cells in a draft."""

    cell_ids: list[Annotated[str, Field(max_length=32, pattern=CODE)]] = Field(min_length=1, max_length=100_000, description="Cells to change.")
    rm_code: str | None = Field(default=None, max_length=32, pattern=CODE, description="New RM (omit to keep).")
    locked: bool | None = Field(default=None, description="Lock (true) or unlock (false); omit to keep.")


def _scenario_dep(scenario_id: ScenarioIdPath, conn: ConnDep, user: UserDep) -> dict[str, Any]:
    # Runs before the body is read: another's scenario answers 404 whatever was sent.
    access.check_scenario(conn, scope=user.scope, scenario_id=scenario_id)
    return scenarios.show_scenario(conn, scenario_id=scenario_id)


ScenarioDep = Annotated[dict, Depends(_scenario_dep)]


@router.get("", response_model=ScenariosPublic, response_model_exclude_unset=True)
def list_scenarios(
    conn: ConnDep, user: UserDep, page: PageDep,
    grid_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Only scenarios of this grid.")] = None,
) -> dict:
    """Scenarios of your legal entity's grids, newest first (admins, planners, analysts)."""
    require_le_wide(user, "scenarios")
    if grid_id is not None:
        scoped_grid(conn, user.scope, grid_id)
    rows = scenarios.list_scenarios(conn, grid_id=grid_id, legal_entity_id=user.scope.legal_entity_id)
    return items(jsonable(rows[page.offset:page.offset + page.limit]), len(rows), page)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ScenarioPublic, response_model_exclude_unset=True)
def create_scenario(body: ScenarioCreate, conn: ConnDep, user: PlannerDep) -> dict:
    """Create a draft from current assignments (or empty); 409 when a draft of that name exists."""
    return jsonable(ops.create(conn, actor=user.username, scope=user.scope, **body.model_dump()))


@router.post("/plan", status_code=status.HTTP_202_ACCEPTED, response_model=JobStarted)
def plan(body: ScenarioPlan, request: Request, conn: ConnDep, user: PlannerDep) -> JobStarted:
    """Run the territory optimiser into a draft as a background job; the job's result is the plan report
    (workload per RM, deviation, contiguity, compactness, distances, changes, nearest-outlet baseline).

    A plan with one RM fewer: `{"grid_id": G, "name": "one-fewer", "without_rms": ["R000123"],
    "keep_current": true}`, then `GET /api/v1/scenarios/compare?grid_id=G&b=one-fewer` says what it changes."""
    scoped_grid(conn, user.scope, body.grid_id)
    access.check_rms(conn, scope=user.scope, codes=tuple(body.without_rms or ()))  # 404 now, not a failed job

    def fn(jconn, progress):
        return ops.plan(jconn, actor=user.username, progress=progress, scope=user.scope, **body.model_dump())

    return start_job(request, kind="scenario:plan", user=user, fn=fn)


@router.get("/compare", response_model=ComparePublic, response_model_exclude_unset=True)
def compare(
    conn: ConnDep, user: UserDep,
    grid_id: Annotated[int, Query(ge=1, le=2**31 - 1, description="Grid version both sides belong to.")],
    a: Annotated[str, Query(min_length=1, max_length=100, pattern=NO_NUL, description="Scenario id or name, or `current`.")] = "current",
    b: Annotated[str, Query(min_length=1, max_length=100, pattern=NO_NUL, description="Scenario id or name, or `current`.")] = "current",
) -> dict:
    """Compare two scenarios, or one with `current`: per-RM workload before/after, cells moved and
    customers changing RM."""
    require_le_wide(user, "scenarios")
    scoped_grid(conn, user.scope, grid_id)
    for ref in (a, b):
        # Digits name an id (geodata.find_scenario): keep them to ASCII and the integer range.
        if ref.isdigit() and not (ref.isascii() and int(ref) <= 2**31 - 1):
            raise NotFound(f"scenario {ref} does not exist")
        if ref != scenarios.CURRENT:
            sc = scenarios.find_scenario(conn, ref=ref, grid_id=grid_id)
            if sc["grid_id"] != grid_id:
                raise NotFound(f"grid {grid_id} has no scenario {ref!r}")
    return jsonable(scenarios.compare(conn, grid_id=grid_id, a=a, b=b))


@router.get("/{scenario_id}", response_model=ScenarioPublic, response_model_exclude_unset=True)
def show(scenario: ScenarioDep) -> dict:
    """One scenario: status, base version, parameters, plan report and cells per RM."""
    return jsonable(scenario)


@router.patch("/{scenario_id}/cells", response_model=ScenarioPublic, response_model_exclude_unset=True)
def edit_cells(body: ScenarioEdit, scenario: ScenarioDep, conn: ConnDep, user: PlannerDep) -> dict:
    """Edit a draft by hand: set the RM and/or lock flag of cells (409 when it is not a draft)."""
    return jsonable(ops.edit(conn, actor=user.username, scope=user.scope, scenario_id=scenario["id"],
                             **body.model_dump()))


@router.post("/{scenario_id}/publish", response_model=ScenarioOutcomePublic, response_model_exclude_unset=True)
def publish(scenario: ScenarioDep, conn: ConnDep, user: PlannerDep) -> dict:
    """Make a draft current in one transaction, writing history; answers the hand-over list.
    409 when the grid's assignments changed since the draft was created (no lost updates)."""
    return jsonable(ops.publish(conn, actor=user.username, scenario_id=scenario["id"]))


@router.post("/{scenario_id}/discard", response_model=ScenarioOutcomePublic, response_model_exclude_unset=True)
def discard(scenario: ScenarioDep, conn: ConnDep, user: PlannerDep) -> dict:
    """Throw a draft away (kept as `discarded` for the record)."""
    return jsonable(ops.discard(conn, actor=user.username, scenario_id=scenario["id"]))

