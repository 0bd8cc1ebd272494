"""The RM's day under both faces: plan, re-route, add/remove stops, check-in, check-out, tasks, the week report.

Each change is one function that calls ``geodata.visits`` and writes its audit
row (a replayed check-in or check-out writes none: nothing changed). Answers
are shaped here once: names masked for the role (``api.masking``), navigation
links per stop (a ``geo:`` URI in WGS84 and an Amap URI in GCJ-02, labelled by
stop number, not by the customer's name, which Amap need not know), and the
bank's tag and lead deep links.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from api.masking import mask_record
from api.settings import Settings
from geodata import audit
from geodata.errors import BadInput, Forbidden
from geodata.reads import access
from geodata.reads import visits as reads
from geodata.scope import Scope
from geodata.visits import checkins, coverage, plans, report, tasks
from geodata.visits.common import today
from grid.chinacrs import wgs84_to_gcj02
from grid.visits.process import ProcessWeights, process_score

CHECKIN_FIELDS = ("visit_id", "customer_id", "rm_code", "kind", "plan_id", "checkin_at", "received_at", "lon",
                  "lat", "accuracy_m", "distance_m", "place_source", "flag_far")
CHECKOUT_FIELDS = ("visit_id", "customer_id", "rm_code", "checkin_at", "checkout_at", "note", "outcome",
                   "flag_far", "flag_short")


def _rm_of(scope: Scope | None, rm_code: str | None) -> str:
    code = rm_code or (scope.rm_code if scope is not None else None)
    if not code:
        raise BadInput("rm_code: which RM's plan? (only an RM's own sign-in implies it)")
    return code


def _day(settings: Settings) -> tuple[str, str]:
    return settings.visits.day_start, settings.visits.day_end


def _weights_text(settings: Settings) -> str | None:
    path = settings.visits.weights_file
    return path.read_text(encoding="utf-8") if path else None


def _links(stop: dict[str, Any], settings: Settings) -> dict[str, Any]:
    lon, lat, seq = stop.get("lon"), stop.get("lat"), stop.get("seq")
    cid = quote(str(stop["customer_id"]), safe="")
    out = {"tag_url": settings.links.tag_url.replace("{customer_id}", cid),
           "lead_url": settings.links.lead_url.replace("{customer_id}", cid), "geo_uri": None, "amap_uri": None}
    if lon is not None and lat is not None:
        label = quote(f"第{seq}站" if seq else "拜访")
        glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
        out["geo_uri"] = f"geo:{lat:.6f},{lon:.6f}?q={lat:.6f},{lon:.6f}({label})"
        out["amap_uri"] = (f"https://uri.amap.com/navigation?to={glon:.6f},{glat:.6f},{label}"
                           "&mode=car&coordinate=gaode&callnative=1")
    return out


def day_view(conn: Connection, *, scope: Scope | None, settings: Settings, plan_id: int) -> dict[str, Any]:
    """A stored plan as the phone shows it: stops with masked names and navigation, dropped, the route line."""
    p = reads.plan(conn, scope=scope, plan_id=plan_id, tz=settings.visits.timezone)
    stops = []
    for s in p["stops"]:
        s = mask_record(s, scope, {"name": "name"}) if scope is not None else s
        stops.append({**s, **_links(s, settings)})
    dropped = [mask_record(d, scope, {"name": "name"}) if scope is not None else d for d in p["dropped"]]
    return {**p, "stops": stops, "dropped": dropped}


def make_plan(conn: Connection, *, actor: str, scope: Scope | None, settings: Settings, rm_code: str | None = None,
              plan_date: dt.date | None = None, start: tuple[float, float] | None = None,
              leave: str | None = None) -> dict[str, Any]:
    """Propose and route an RM's day (tasks first), store it as the day's current plan, answer the day."""
    if scope is not None and scope.role == "analyst":
        raise Forbidden("analysts read plans; the RM, their branch manager or a planner makes them")
    code = _rm_of(scope, rm_code)
    v = settings.visits
    checkins.purge_positions(conn, days=v.position_days)
    pid = plans.plan_for(conn, scope=scope, rm_code=code, plan_date=plan_date or today(v.timezone), user=actor,
                         start=start, leave=leave, weights_text=_weights_text(settings), tz=v.timezone,
                         day=_day(settings), detour_factor=v.detour_factor, speed_kmh=v.speed_kmh,
                         time_limit_s=v.time_limit_s)
    audit.record(conn, username=actor, action="create", object_type="visit_plan", object_id=str(pid),
                 detail={"rm_code": code, "start": "phone" if start else "outlet"})
    return day_view(conn, scope=scope, settings=settings, plan_id=pid)


def today_plan(conn: Connection, *, scope: Scope | None, settings: Settings, rm_code: str | None = None,
               plan_date: dt.date | None = None) -> dict[str, Any]:
    """The current plan of an RM (the signed-in one by default) for a day (today by default)."""
    pid = reads.current_plan_id(conn, scope=scope, rm_code=_rm_of(scope, rm_code),
                                plan_date=plan_date or today(settings.visits.timezone))
    return day_view(conn, scope=scope, settings=settings, plan_id=pid)


def _own_plan(scope: Scope | None, conn: Connection, plan_id: int) -> None:
    """Only the plan's RM changes its stops (a manager plans anew or assigns a task)."""
    rm = plans.plan_rm(conn, scope=scope, plan_id=plan_id)
    if scope is not None and scope.role != "admin" and scope.rm_code != rm:
        raise Forbidden(f"visit plan {plan_id} is {rm}'s: only that RM changes its stops")


def change_stop(conn: Connection, *, actor: str, scope: Scope | None, settings: Settings, plan_id: int,
                customer_id: str, add: bool) -> dict[str, Any]:
    """Add a customer of the RM's to the plan (or take a stop off it), route again, answer the day."""
    _own_plan(scope, conn, plan_id)
    fn = plans.add_stop if add else plans.remove_stop
    fn(conn, scope=scope, plan_id=plan_id, customer_id=customer_id, tz=settings.visits.timezone)
    audit.record(conn, username=actor, action="update", object_type="visit_plan", object_id=str(plan_id),
                 detail={"change": "add stop" if add else "remove stop", "customer_id": customer_id})
    return day_view(conn, scope=scope, settings=settings, plan_id=plan_id)


def route_from(conn: Connection, *, actor: str, scope: Scope | None, settings: Settings, plan_id: int,
               start: tuple[float, float] | None, leave: str | None) -> dict[str, Any]:
    """Solve the plan again, from where the phone is (``start``) leaving at ``leave`` if given."""
    _own_plan(scope, conn, plan_id)
    plans.reroute(conn, scope=scope, plan_id=plan_id, start=start, leave=leave, tz=settings.visits.timezone,
                  time_limit_s=settings.visits.time_limit_s)
    audit.record(conn, username=actor, action="update", object_type="visit_plan", object_id=str(plan_id),
                 detail={"change": "route", "start": "phone" if start else "stored"})
    return day_view(conn, scope=scope, settings=settings, plan_id=plan_id)


def _checking_rm(scope: Scope | None, rm_code: str | None) -> str:
    if scope is not None:
        if scope.role != "rm" or not scope.rm_code:
            raise Forbidden("only an RM checks in and out, for themselves")
        return scope.rm_code
    if not rm_code:
        raise BadInput("rm_code: who checks in?")
    return rm_code


def check_in(conn: Connection, *, actor: str, scope: Scope | None, settings: Settings, key: str, customer_id: str,
             kind: str, at: dt.datetime, lon: float, lat: float, accuracy_m: float | None,
             plan_id: int | None = None, rm_code: str | None = None) -> tuple[dict[str, Any], bool]:
    """Record a check-in once per key; (body, created). A replay answers the stored body."""
    rm = _checking_rm(scope, rm_code)
    row, created = checkins.check_in(conn, scope=scope, rm_code=rm, key=key, customer_id=customer_id, kind=kind,
                                     at=at, lon=lon, lat=lat, accuracy_m=accuracy_m, plan_id=plan_id,
                                     far_m=settings.visits.far_m)
    if created:
        audit.record(conn, username=actor, action="create", object_type="visit", object_id=str(row["visit_id"]),
                     detail={"customer_id": customer_id, "kind": kind, "flag_far": row["flag_far"]})
    return {k: row[k] for k in CHECKIN_FIELDS}, created


def check_out(conn: Connection, *, actor: str, scope: Scope | None, settings: Settings, visit_id: int, key: str,
              at: dt.datetime, note: str | None, outcome: str | None,
              rm_code: str | None = None) -> tuple[dict[str, Any], bool]:
    """Record the end of a visit once per key; (body, created)."""
    rm = _checking_rm(scope, rm_code) if scope is not None or rm_code else None
    row, created = checkins.check_out(conn, scope=scope, rm_code=rm, visit_id=visit_id, key=key, at=at, note=note,
                                      outcome=outcome, short_min=settings.visits.short_min)
    if created:
        audit.record(conn, username=actor, action="update", object_type="visit", object_id=str(visit_id),
                     detail={"change": "checkout", "flag_short": row["flag_short"]})
    body = {k: row[k] for k in CHECKOUT_FIELDS}
    body["duration_min"] = round((row["checkout_at"] - row["checkin_at"]).total_seconds() / 60.0, 1)
    return body, created


def create_task(conn: Connection, *, actor: str, scope: Scope | None, rm_code: str, customer_id: str,
                due_date: dt.date, window_start: str | None = None, window_end: str | None = None,
                note: str | None = None) -> dict[str, Any]:
    """A visit task (走访任务) for one of the requester's RMs; it enters that RM's plans first."""
    if scope is not None and scope.role not in ("admin", "planner", "branch_manager"):
        raise Forbidden(f"role {scope.role!r} may not assign visit tasks")
    t = tasks.create_task(conn, scope=scope, user=actor, rm_code=rm_code, customer_id=customer_id,
                          due_date=due_date, window_start=window_start, window_end=window_end, note=note)
    audit.record(conn, username=actor, action="create", object_type="visit_task", object_id=str(t["task_id"]),
                 detail={"rm_code": rm_code, "customer_id": customer_id, "due_date": str(due_date)})
    return mask_record(t, scope, {"name": "name"}) if scope is not None else t


def list_tasks(conn: Connection, *, scope: Scope | None, rm_code: str | None = None, status: str | None = None,
               limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Visit tasks the requester may see ``{items, total, next_offset}``."""
    rows, total = tasks.list_tasks(conn, scope=scope, rm_code=rm_code, status=status, limit=limit, offset=offset)
    rows = [mask_record(r, scope, {"name": "name"}) if scope is not None else r for r in rows]
    nxt = offset + len(rows)
    return {"items": rows, "total": total, "next_offset": nxt if nxt < total else None}


def week_report(conn: Connection, *, scope: Scope | None, settings: Settings, week: str | None = None,
                grid_id: int | None = None) -> dict[str, Any]:
    """Per RM and ISO week: planned vs done, flags, gap-cell visits, coverage, process score (过程积分); with
    ``grid_id``, territories (coverage) on that grid only."""
    if grid_id is not None and scope is not None:
        access.scoped_grid(conn, scope=scope, grid_id=grid_id)
    v = settings.visits
    week = week or report.this_week(v.timezone)
    weights = ProcessWeights.from_text(v.process_weights)
    rows = []
    for r in report.week_rows(conn, scope=scope, week=week, tz=v.timezone, grid_id=grid_id):
        s = process_score(planned=r["planned"], planned_done=r["planned_done"],
                          territory_customers=r["territory_customers"], customers_visited=r["customers_visited"],
                          visits=r["visits"], gap_visits=r["gap_visits"], checkins=r["checkins"],
                          flagged=r["flagged"], weights=weights)
        r = mask_record(r, scope, {"rm_name": "name"}) if scope is not None else r
        rows.append({**r, "coverage_share": s["coverage"], "process": s, "process_score": s["score"]})
    d0, d1 = report.week_bounds(week)
    return {"week": week, "from": d0, "to": d1, "weights": dict(weights.weights), "items": rows}


def flagged_visits(conn: Connection, *, scope: Scope | None, settings: Settings, week: str | None = None) -> dict[str, Any]:
    """The week's far and short visits of the RMs the requester may see (customer names masked for the role)."""
    week = week or report.this_week(settings.visits.timezone)
    rows = report.flagged_visits(conn, scope=scope, week=week, tz=settings.visits.timezone)
    rows = [mask_record(r, scope, {"customer_name": "name"}) if scope is not None else r for r in rows]
    return {"week": week, "items": rows}


def week_end(week: str, tz: str) -> dt.datetime:
    """Where a week's visit window ends: the next Monday's local midnight (the week report's window too)."""
    _, sunday = report.week_bounds(week)
    return dt.datetime.combine(sunday + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(tz))


def cell_cover(conn: Connection, *, scope: Scope | None, settings: Settings, grid_id: int,
               week: str | None = None) -> dict[str, Any]:
    """Per cell of a grid the requester may see: customers and visits in the 90 days up to the week's end."""
    return cover_of(conn, scope=scope, tz=settings.visits.timezone, grid_id=grid_id, week=week)


def cover_of(conn: Connection, *, scope: Scope | None, tz: str, grid_id: int, week: str | None = None) -> dict[str, Any]:
    """``cell_cover`` with the timezone given: the one window of the visits layer wherever it is drawn (the
    week's end, this week by default), with the local dates it covers (``first_day``, ``last_day``)."""
    if scope is not None:
        access.scoped_grid(conn, scope=scope, grid_id=grid_id)
    until = week_end(week or report.this_week(tz), tz)
    rows = coverage.cell_cover(conn, scope=scope, grid_id=grid_id, until=until)
    for r in rows:
        r["visits_per_customer"] = round(r["visits"] / r["customers"], 3) if r["customers"] else None
    first, last = coverage.window_dates(until, tz)
    return {"grid_id": grid_id, "until": until, "window_days": coverage.WINDOW_DAYS, "first_day": first,
            "last_day": last, "items": rows,
            **{k: sum(r[k] for r in rows) for k in ("customers", "customers_visited", "visits")}}
