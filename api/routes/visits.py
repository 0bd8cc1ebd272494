"""The RM's day (issue 16, docs/visits.md): plans with routes, check-in and check-out, visit tasks, the week report.

An RM plans, checks in and sees only their own customers; a branch manager
their outlets' RMs; planners and analysts the legal entity, names masked for
them. Check-in and check-out are idempotent per ``idempotency_key``: the first
request answers 201, a replay 200 with the same body.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import BriefUserDep, ConnDep, EngineDep, PageDep, SettingsDep, UserDep
from api.grid_access import CODE, NO_NUL
from api.operations import visits as ops
from api.visit_schemas import (
    CheckinPublic,
    CheckoutPublic,
    CoverPublic,
    ErrorPublic,
    FlaggedListPublic,
    PlanPublic,
    ReportPublic,
    TaskPublic,
    TasksPublic,
)
from geodata.errors import BadInput
from geodata.visits.common import plan_rm, visit_rm

# 422 is also the domain's bad input (BadInput: a message naming the field), not only FastAPI's field list.
router = APIRouter(prefix="/api/v1/visits", tags=["visits"], responses={
    422: {"model": ErrorPublic, "description": "Invalid request: the field and the reason."}})

RmCode = Annotated[str, Field(min_length=1, max_length=32, pattern=CODE, description="Code of the RM.")]
CustomerId = Annotated[str, Field(min_length=1, max_length=32, pattern=CODE, description="Id of the customer.")]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Clock = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="'HH:MM'")]
Note = Annotated[str | None, Field(default=None, max_length=2000, pattern=NO_NUL)]
Key = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                           description="A UUID the phone makes per action; a retry sends the same one.")]


def _plan_in_scope(plan_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="Id of the visit plan.")],
                   conn: ConnDep, user: UserDep) -> int:
    # A dependency, so someone else's plan answers 404 before any body is read.
    plan_rm(conn, scope=user.scope, plan_id=plan_id)
    return plan_id


def _visit_in_scope(visit_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="Id of the visit.")],
                    engine: EngineDep, user: BriefUserDep) -> int:
    with engine.connect() as conn:
        visit_rm(conn, scope=user.scope, visit_id=visit_id)
    return visit_id


PlanId = Annotated[int, Depends(_plan_in_scope)]
VisitId = Annotated[int, Depends(_visit_in_scope)]


class PlanCreate(BaseModel):
    """Plan an RM's day (yours when you are an RM); start at the RM's outlet unless the phone sends where it is."""

    rm_code: RmCode | None = None
    date: dt.date | None = Field(None, description="The day (default: today where the bank is).")
    start_lon: Lon | None = None
    start_lat: Lat | None = None
    leave: Clock | None = Field(None, description="When the RM leaves the start (default: start of work).")


def start_point(lon: float | None, lat: float | None) -> tuple[float, float] | None:
    """The plan's start from ``start_lon``/``start_lat`` (None: the RM's outlet); both or neither."""
    if (lon is None) != (lat is None):
        raise BadInput("start_lon and start_lat: give both or neither")
    return None if lon is None else (lon, lat)


@router.post("/plans", response_model=PlanPublic, response_model_exclude_unset=False, status_code=201)
def create_plan(body: PlanCreate, conn: ConnDep, user: UserDep, settings: SettingsDep) -> dict:
    """Propose today's stops (tasks first, then the best reasons), route them, store the plan (the day's current one)."""
    return ops.make_plan(conn, actor=user.username, scope=user.scope, settings=settings, rm_code=body.rm_code,
                         plan_date=body.date, start=start_point(body.start_lon, body.start_lat), leave=body.leave)


@router.get("/plans/today", response_model=PlanPublic)
def plan_today(conn: ConnDep, user: UserDep, settings: SettingsDep,
               rm_code: Annotated[str | None, Query(max_length=32, pattern=CODE,
                                                    description="The RM (managers; an RM gets their own).")] = None,
               date: Annotated[dt.date | None, Query(description="Another day than today.")] = None) -> dict:
    """The current plan of the signed-in RM (or ``rm_code``'s) for today (or ``date``); 404 when none was made."""
    return ops.today_plan(conn, scope=user.scope, settings=settings, rm_code=rm_code, plan_date=date)


@router.get("/plans/{plan_id}", response_model=PlanPublic)
def get_plan(plan_id: PlanId, conn: ConnDep, user: UserDep, settings: SettingsDep) -> dict:
    """One stored plan (older plans of a day stay for the manager's planned-vs-done)."""
    return ops.day_view(conn, scope=user.scope, settings=settings, plan_id=plan_id)


class StopAdd(BaseModel):
    """A customer of yours to add to the plan."""

    customer_id: CustomerId


@router.post("/plans/{plan_id}/stops", response_model=PlanPublic)
def add_stop(plan_id: PlanId, body: StopAdd, conn: ConnDep, user: UserDep, settings: SettingsDep) -> dict:
    """Add a stop (one of your customers) and route the day again."""
    return ops.change_stop(conn, actor=user.username, scope=user.scope, settings=settings, plan_id=plan_id,
                           customer_id=body.customer_id, add=True)


@router.delete("/plans/{plan_id}/stops/{customer_id}", response_model=PlanPublic)
def remove_stop(plan_id: PlanId, customer_id: Annotated[str, Path(max_length=32, pattern=CODE,
                                                                 description="The stop's customer.")], conn: ConnDep,
                user: UserDep, settings: SettingsDep) -> dict:
    """Take a stop off the plan (a manager's task stays: 409) and route the day again."""
    return ops.change_stop(conn, actor=user.username, scope=user.scope, settings=settings, plan_id=plan_id,
                           customer_id=customer_id, add=False)


class RouteFrom(BaseModel):
    """Route the plan again, from where the phone is now."""

    start_lon: Lon | None = None
    start_lat: Lat | None = None
    leave: Clock | None = None


@router.post("/plans/{plan_id}/route", response_model=PlanPublic)
def reroute(plan_id: PlanId, body: RouteFrom, conn: ConnDep, user: UserDep, settings: SettingsDep) -> dict:
    """Solve the day again over its stops (from the phone's position, leaving at ``leave``, when given)."""
    return ops.route_from(conn, actor=user.username, scope=user.scope, settings=settings, plan_id=plan_id,
                          start=start_point(body.start_lon, body.start_lat), leave=body.leave)


class CheckinCreate(BaseModel):
    """签到: the phone's position and time at a customer."""

    idempotency_key: Key
    customer_id: CustomerId
    kind: Literal["面访", "电访"] = Field(description="面访 (in person) or 电访 (by phone).")
    at: AwareDatetime = Field(description="The phone's time of the check-in, with its UTC offset.")
    lon: Lon
    lat: Lat
    accuracy_m: float | None = Field(None, ge=0, le=100_000, allow_inf_nan=False,
                                     description="The position's reported accuracy (metres).")
    plan_id: int | None = Field(None, ge=1, le=2**31 - 1)


def record_checkin(engine, user, settings, body: CheckinCreate, response: Response) -> dict:
    """Check in within one transaction of this one call (see api.deps.get_user_briefly: many phones check in
    at once); the answer's status is 201 when recorded, 200 for a replay of its key. Shared with the phone page."""
    with engine.begin() as conn:
        out, created = ops.check_in(conn, actor=user.username, scope=user.scope, settings=settings,
                                    key=body.idempotency_key.lower(), customer_id=body.customer_id, kind=body.kind,
                                    at=body.at, lon=body.lon, lat=body.lat, accuracy_m=body.accuracy_m,
                                    plan_id=body.plan_id)
    response.status_code = 201 if created else 200
    return out


@router.post("/checkins", response_model=CheckinPublic, status_code=201,
             responses={200: {"model": CheckinPublic, "description": "A replay: the check-in stored under this key."}})
def checkin(body: CheckinCreate, response: Response, engine: EngineDep, user: BriefUserDep,
            settings: SettingsDep) -> dict:
    """Record a check-in (RMs only): distance to the stop's place and the far flag; a replay answers 200, same body."""
    return record_checkin(engine, user, settings, body, response)


class CheckoutCreate(BaseModel):
    """签退: end of the visit, with a short note and the outcome."""

    idempotency_key: Key
    at: AwareDatetime
    note: Note = None
    outcome: Annotated[str | None, Field(default=None, max_length=200, pattern=NO_NUL)] = None


def record_checkout(engine, user, settings, visit_id: int, body: CheckoutCreate) -> dict:
    """Check out within one transaction of this one call, idempotent per key. Shared with the phone page."""
    with engine.begin() as conn:
        out, _ = ops.check_out(conn, actor=user.username, scope=user.scope, settings=settings, visit_id=visit_id,
                               key=body.idempotency_key.lower(), at=body.at, note=body.note, outcome=body.outcome)
    return out


@router.post("/{visit_id}/checkout", response_model=CheckoutPublic,
             responses={409: {"description": "Already checked out under another key."}})
def checkout(visit_id: VisitId, body: CheckoutCreate, engine: EngineDep, user: BriefUserDep,
             settings: SettingsDep) -> dict:
    """Record the end of a visit (its RM only); the short flag; idempotent per key like check-in."""
    return record_checkout(engine, user, settings, visit_id, body)


class TaskCreate(BaseModel):
    """走访任务: a branch manager asks one of their RMs to visit a customer by a date."""

    rm_code: RmCode
    customer_id: CustomerId
    due_date: dt.date
    window_start: Clock | None = None
    window_end: Clock | None = None
    note: Note = None


@router.post("/tasks", response_model=TaskPublic, status_code=201)
def create_task(body: TaskCreate, conn: ConnDep, user: UserDep) -> dict:
    """Assign a visit task (branch managers, planners, admins) to an RM you may see, for one of that RM's customers."""
    return ops.create_task(conn, actor=user.username, scope=user.scope, rm_code=body.rm_code,
                           customer_id=body.customer_id, due_date=body.due_date, window_start=body.window_start,
                           window_end=body.window_end, note=body.note)


@router.get("/tasks", response_model=TasksPublic)
def list_tasks(conn: ConnDep, user: UserDep, page: PageDep,
               rm_code: Annotated[str | None, Query(max_length=32, pattern=CODE,
                                                    description="Only this RM's tasks.")] = None,
               status: Annotated[Literal["open", "done", "cancelled"] | None,
                                 Query(description="Only tasks in this state.")] = None) -> dict:
    """Visit tasks you may see (an RM: their own), latest due first."""
    return ops.list_tasks(conn, scope=user.scope, rm_code=rm_code, status=status, limit=page.limit,
                          offset=page.offset)


@router.get("/report", response_model=ReportPublic, response_model_by_alias=True)
def week_report(conn: ConnDep, user: UserDep, settings: SettingsDep,
                week: Annotated[str | None, Query(pattern=r"^\d{4}-W\d{2}$", description="ISO week, e.g. 2026-W50"
                                                  " (default: this week).")] = None,
                grid_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description=(
                    "Count each RM's territory on this grid only (default: each county's newest assigned grid"
                    " of each kind)."))] = None) -> dict:
    """Per RM you may see: planned vs done, check-in flags, visits in blank/under-served cells, share of the
    territory's customers visited in the window, and the process score (过程积分)."""
    return ops.week_report(conn, scope=user.scope, settings=settings, week=week, grid_id=grid_id)


Week = Annotated[str | None, Query(pattern=r"^\d{4}-W\d{2}$", description="ISO week, e.g. 2026-W50 (default: this week).")]


@router.get("/flagged", response_model=FlaggedListPublic)
def flagged(conn: ConnDep, user: UserDep, settings: SettingsDep, week: Week = None) -> dict:
    """The week's flagged visits (far check-in, short visit) of the RMs you may see, newest first: every visit
    the report's flag counts add up (a customer not yours to see is listed without their id and name)."""
    return ops.flagged_visits(conn, scope=user.scope, settings=settings, week=week)


@router.get("/coverage", response_model=CoverPublic)
def coverage(conn: ConnDep, user: UserDep, settings: SettingsDep,
             grid_id: Annotated[int, Query(ge=1, le=2**31 - 1, description="Grid id (see /api/v1/grids).")],
             week: Week = None) -> dict:
    """Where visits go: per cell of the grid you may see, its customers you may see and their visits (by
    anyone) in the 90 days up to the week's end; the totals are the page's numerator and denominator."""
    return ops.cell_cover(conn, scope=user.scope, settings=settings, grid_id=grid_id, week=week)
