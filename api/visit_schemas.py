"""Response models of the RM's day (``/api/v1/visits``): plans, check-ins, tasks, the week report.

Kept beside ``api/schemas.py`` (which is at the 400-line limit), with the same conventions:
named fields are always there, further fields are passed on.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from api.schemas import NextOffset, Open, Timestamp, Total


class ErrorPublic(BaseModel):
    """An error: ``detail`` is a message, or FastAPI's list of invalid fields (``RequestValidationError``)."""

    error: str
    detail: str | list[dict[str, Any]]


class StartPublic(BaseModel):
    """Where the day starts: the RM's outlet, or where the phone was."""

    lon: float
    lat: float
    source: Literal["outlet", "phone"]


StopState = Annotated[Literal["planned", "checked_in", "done"], Field(
    description="Where the stop stands today: `planned` (no visit yet), `checked_in` (签到, not checked out yet) or"
                " `done` (checked out, or a visit imported for today).")]


class TerritoryPublic(BaseModel):
    """The RM's territory on the plan's grid (the one placing most of its stops in cells the RM owns now; the
    newest on a tie) and the box of the RM's cells on it (WGS84)."""

    grid_id: int
    bbox: list[float] = Field(description="[min lon, min lat, max lon, max lat].")


class StopPublic(Open):
    """A stop on the day's route, in visiting order."""

    seq: int = Field(description="Position on the route (1 = first).")
    customer_id: str
    name: str | None = Field(None, description="The customer's name, masked for planners and analysts.")
    lon: float | None = None
    lat: float | None = None
    place_source: Literal["customer", "village"] | None = Field(
        None, description="The stop's place: the customer's own point, else their village's.")
    kind: Literal["task", "added", "proposed"]
    reasons: list[str]
    reason_zh: str | None = None
    reason_en: str | None = None
    arrive_at: Timestamp | None = None
    depart_at: Timestamp | None = None
    window_start: str | None = Field(None, description="'HH:MM' (a task's time window), or null.")
    window_end: str | None = None
    geo_uri: str | None = Field(None, description="`geo:` URI (WGS84) for the phone's navigation app.")
    amap_uri: str | None = Field(None, description="Amap navigation URI, in GCJ-02 as Amap wants.")
    tag_url: str
    lead_url: str
    state: StopState = "planned"
    visit_id: int | None = Field(None, description="Today's visit of this stop by the plan's RM, if any.")
    visit_kind: Literal["面访", "电访"] | None = None
    visited_at: Timestamp | None = None
    checkin_at: Timestamp | None = Field(None, description="签到 time (null: not checked in, or an imported visit).")
    checkout_at: Timestamp | None = None
    outcome: str | None = None
    distance_m: float | None = Field(None, description="Metres from the check-in position to the stop's place.")
    flag_far: bool = False
    flag_short: bool = False


class DroppedPublic(Open):
    """A stop that is not on the route, and why (no_place, window_closed, outside_hours, no_time_left)."""

    customer_id: str
    drop_reason: str | None = None
    state: StopState = "planned"
    visit_id: int | None = None


class LineString(BaseModel):
    """The route as a GeoJSON LineString (WGS84): start, stops in order, back to the start."""

    type: Literal["LineString"]
    coordinates: list[list[float]]


class PlanPublic(Open):
    """An RM's day: start, stops in visiting order, dropped stops, the route and its length."""

    plan_id: int
    rm_code: str
    plan_date: dt.date
    start: StartPublic
    stops: list[StopPublic]
    dropped: list[DroppedPublic]
    route: LineString
    length_m: float
    remaining_route: LineString | None = Field(
        None, description="The route still ahead: from the stop checked in last (else the start) through the stops"
                          " not visited yet, back to the start; null when every stop is visited.")
    visited: int = Field(0, description="Stops visited today (checked in or done).")
    done: int = Field(0, description="Stops done today (checked out).")
    territory: TerritoryPublic | None = None


class CheckinPublic(BaseModel):
    """A recorded check-in; a replay with the same idempotency key answers exactly this body again."""

    visit_id: int
    customer_id: str
    rm_code: str
    kind: Literal["面访", "电访"] | None = None
    plan_id: int | None = None
    checkin_at: Timestamp
    received_at: Timestamp
    lon: float | None = Field(None, description="Reported position (nulled after the retention period).")
    lat: float | None = None
    accuracy_m: float | None = None
    distance_m: float | None = Field(None, description="Metres to the stop's place (null: no place known).")
    place_source: str | None = None
    flag_far: bool


class CheckoutPublic(BaseModel):
    """A recorded check-out; a replay with the same key answers exactly this body again."""

    visit_id: int
    customer_id: str
    rm_code: str
    checkin_at: Timestamp
    checkout_at: Timestamp
    duration_min: float
    note: str | None = None
    outcome: str | None = None
    flag_far: bool
    flag_short: bool


class TaskPublic(Open):
    """A visit task (走访任务)."""

    task_id: int
    customer_id: str
    name: str | None = None
    rm_code: str
    assigned_by: str
    due_date: dt.date
    window_start: str | None = None
    window_end: str | None = None
    note: str | None = None
    status: Literal["open", "done", "cancelled"]
    done_visit_id: int | None = None
    created_at: Timestamp


class TasksPublic(BaseModel):
    """A page of visit tasks, latest due first."""

    items: list[TaskPublic]
    total: int = Total
    next_offset: int | None = NextOffset


class ReportRowPublic(Open):
    """One RM's week."""

    rm_code: str
    rm_name: str | None = None
    outlet_code: str | None = None
    planned: int
    planned_done: int
    visits: int
    checkins: int
    flag_far: int
    flag_short: int
    gap_visits: int = Field(description="Visits in blank or under-served cells.")
    territory_customers: int
    customers_visited: int = Field(description="Territory customers visited within the visit window.")
    coverage_share: float
    process_score: float = Field(description="过程积分, 0-100, with the configured weights.")
    process: dict[str, float]


class ReportPublic(BaseModel):
    """The week's process report per RM the user may see."""

    week: str
    from_: dt.date = Field(alias="from", serialization_alias="from")
    to: dt.date
    weights: dict[str, float]
    items: list[ReportRowPublic]

    model_config = {"populate_by_name": True}



class FlaggedPublic(BaseModel):
    """A flagged visit of the week (far check-in, short visit): what the week's flag counts add up."""

    visit_id: int
    rm_code: str
    visited_at: Timestamp
    kind: str | None = None
    source: str
    flag_far: bool
    flag_short: bool
    distance_m: float | None = Field(None, description="Metres from the stop's place at check-in.")
    accuracy_m: float | None = None
    duration_min: float | None = Field(None, description="Minutes from check-in to check-out (null: not out).")
    customer_id: str | None = Field(None, description="Null when the customer is not yours to see.")
    customer_name: str | None = Field(None, description="Masked for planners and analysts.")


class FlaggedListPublic(BaseModel):
    """The week's flagged visits, newest first."""

    week: str
    items: list[FlaggedPublic]


class CellCoverPublic(BaseModel):
    """One cell: its customers you may see and their visits in the window (by anyone)."""

    cell_id: str
    customers: int
    visits: int
    customers_visited: int
    visits_per_customer: float | None = Field(None, description="visits / customers (null: no customers).")
    last_visit_at: Timestamp | None = None


class CoverPublic(BaseModel):
    """Where visits go on a grid: per cell you may see, customers and visits in the window up to ``until``."""

    grid_id: int
    until: Timestamp
    window_days: int
    first_day: dt.date = Field(description="First local day of the window (GRIDMKT_TIMEZONE).")
    last_day: dt.date = Field(description="Last local day counted: the week's Sunday, or today while the week runs.")
    customers: int = Field(description="Customers in these cells (the denominator).")
    customers_visited: int = Field(description="Of those, visited in the window (the numerator).")
    visits: int
    items: list[CellCoverPublic]
