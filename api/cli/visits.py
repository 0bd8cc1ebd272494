"""``gridmkt visits ...``: the RM's day from the command line, through the same operations as the API."""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from zoneinfo import ZoneInfo

import click

from api.cli import cli, settings
from api.cli.output import command
from api.db import open_engine
from api.operations import visits as ops
from api.visit_schemas import CoverPublic, FlaggedListPublic
from geodata import users
from geodata.scope import Scope

USER_HELP = "Who makes the change (recorded in the audit log; default: the OS user)."


def _user(user: str | None) -> str:
    return user or getpass.getuser()


def _when(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.UTC)
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time like 2026-12-07T09:30:00+08:00",
                                 param_hint="--at") from None
    if at.tzinfo is None:
        raise click.BadParameter("the time needs its UTC offset, e.g. +08:00", param_hint="--at")
    return at


def _start(lon: float | None, lat: float | None) -> tuple[float, float] | None:
    if (lon is None) != (lat is None):
        raise click.BadParameter("give both --start-lon and --start-lat, or neither")
    return None if lon is None else (lon, lat)


@cli.group()
def visits() -> None:
    """The RM's day: plans and routes, check-in and check-out, visit tasks, the week report (docs/visits.md)."""


def stop_state(stop: dict, tz: str) -> str:
    """One stop's day as text: planned, checked in at HH:MM, or done at HH:MM with its outcome; flags."""
    def hhmm(t: dt.datetime | None) -> str:
        return t.astimezone(ZoneInfo(tz)).strftime("%H:%M") if t else "?"
    state = stop.get("state", "planned")
    if state == "checked_in":
        text = f"checked in {hhmm(stop['checkin_at'])}"
    elif state == "done":
        text = f"done {hhmm(stop['checkout_at'] or stop['visited_at'])}" + (f" {stop['outcome']}" if stop["outcome"] else "")
    else:
        text = "planned"
    return text + "".join(f" [{f}]" for f in ("far", "short") if stop.get(f"flag_{f}"))


def readable_day(day: dict, tz: str) -> dict:
    """The day for a terminal: its figures, then one short row per stop (``--json`` prints every field)."""
    stops = [{"seq": s["seq"], "customer_id": s["customer_id"], "name": s["name"],
              "arrive": s["arrive_at"].astimezone(ZoneInfo(tz)).strftime("%H:%M") if s["arrive_at"] else "",
              "place": s["place_source"], "reason": s["reason_en"], "state": stop_state(s, tz)} for s in day["stops"]]
    return {"plan_id": day["plan_id"], "rm_code": day["rm_code"], "plan_date": day["plan_date"],
            "start": day["start"]["source"], "length_km": round(day["length_m"] / 1000, 1),
            "visited": f"{day['visited']}/{len(stops)} (done {day['done']})", "stops": stops,
            "dropped": [{"customer_id": d["customer_id"], "name": d["name"], "why": d["drop_reason"],
                         "state": d["state"]} for d in day["dropped"]]}


@command(visits, "plan")
@click.option("--rm", "rm_code", required=True, help="RM code.")
@click.option("--show", is_flag=True, help="Show the day's current plan and where each stop stands (planned,"
              " checked in, done, flags) instead of making a new one.")
@click.option("--date", "plan_date", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Day (default: today).")
@click.option("--start-lon", type=float, default=None, help="Start here instead of at the RM's outlet.")
@click.option("--start-lat", type=float, default=None)
@click.option("--leave", default=None, help="Leave the start at HH:MM (default: start of work).")
@click.option("--user", default=None, help=USER_HELP)
def plan_cmd(ctx, rm_code, show, plan_date, start_lon, start_lat, leave, user):
    """Propose, route and store an RM's day (the day's current plan); with --show, print the current one.

    Each stop says where it stands today: planned, checked in at HH:MM, or done with its outcome, and the
    far/short flags (``--json``: ``state``, ``checkin_at``, ``checkout_at``, ``outcome``, ``flag_far``,
    ``flag_short`` per stop, and ``remaining_route``).
    """
    s = settings()
    day = plan_date.date() if plan_date else None
    with open_engine(s.db).begin() as conn:
        if show:
            out = ops.today_plan(conn, scope=None, settings=s, rm_code=rm_code, plan_date=day)
        else:
            out = ops.make_plan(conn, actor=_user(user), scope=None, settings=s, rm_code=rm_code, plan_date=day,
                                start=_start(start_lon, start_lat), leave=leave)
    return out if ctx.as_json else readable_day(out, s.visits.timezone)


@command(visits, "route")
@click.option("--plan", "plan_id", type=int, required=True, help="Plan id.")
@click.option("--add", "add", multiple=True, help="Add this customer as a stop (repeatable).")
@click.option("--remove", "remove", multiple=True, help="Take this customer's stop off (repeatable).")
@click.option("--start-lon", type=float, default=None, help="Route from here (where the RM is now).")
@click.option("--start-lat", type=float, default=None)
@click.option("--leave", default=None, help="Leaving at HH:MM.")
@click.option("--user", default=None, help=USER_HELP)
def route_cmd(ctx, plan_id, add, remove, start_lon, start_lat, leave, user):
    """Change a plan's stops and/or route it again; prints the day (each stop with its state, as plan --show)."""
    s = settings()
    with open_engine(s.db).begin() as conn:
        out = None
        for cid in add:
            out = ops.change_stop(conn, actor=_user(user), scope=None, settings=s, plan_id=plan_id, customer_id=cid,
                                  add=True)
        for cid in remove:
            out = ops.change_stop(conn, actor=_user(user), scope=None, settings=s, plan_id=plan_id, customer_id=cid,
                                  add=False)
        if out is None or start_lon is not None or leave:
            out = ops.route_from(conn, actor=_user(user), scope=None, settings=s, plan_id=plan_id,
                                 start=_start(start_lon, start_lat), leave=leave)
    return out if ctx.as_json else readable_day(out, s.visits.timezone)


@command(visits, "checkin")
@click.option("--rm", "rm_code", required=True, help="The RM checking in.")
@click.option("--customer", "customer_id", required=True)
@click.option("--kind", type=click.Choice(["面访", "电访"]), default="面访", show_default=True)
@click.option("--lon", type=float, required=True)
@click.option("--lat", type=float, required=True)
@click.option("--accuracy", "accuracy_m", type=float, default=None, help="Accuracy of the position (m).")
@click.option("--at", default=None, help="ISO time with offset (default: now).")
@click.option("--plan", "plan_id", type=int, default=None)
@click.option("--key", default=None, help="Idempotency key (UUID; default: a new one). Same key, same visit.")
@click.option("--user", default=None, help=USER_HELP)
def checkin_cmd(ctx, rm_code, customer_id, kind, lon, lat, accuracy_m, at, plan_id, key, user):
    """Record a check-in (or answer the one stored under --key)."""
    s = settings()
    with open_engine(s.db).begin() as conn:
        body, created = ops.check_in(conn, actor=_user(user), scope=None, settings=s, key=str(uuid.UUID(key or
                                     str(uuid.uuid4()))), customer_id=customer_id, kind=kind, at=_when(at), lon=lon,
                                     lat=lat, accuracy_m=accuracy_m, plan_id=plan_id, rm_code=rm_code)
    return {**body, "created": created}


@command(visits, "checkout")
@click.option("--visit", "visit_id", type=int, required=True)
@click.option("--note", default=None)
@click.option("--outcome", default=None)
@click.option("--at", default=None, help="ISO time with offset (default: now).")
@click.option("--key", default=None, help="Idempotency key (UUID; default: a new one).")
@click.option("--user", default=None, help=USER_HELP)
def checkout_cmd(ctx, visit_id, note, outcome, at, key, user):
    """Record the end of a visit, with the short flag."""
    s = settings()
    with open_engine(s.db).begin() as conn:
        body, created = ops.check_out(conn, actor=_user(user), scope=None, settings=s, visit_id=visit_id,
                                      key=str(uuid.UUID(key or str(uuid.uuid4()))), at=_when(at), note=note,
                                      outcome=outcome)
    return {**body, "created": created}


@command(visits, "tasks")
@click.option("--add", "add", is_flag=True, help="Assign a task (needs --rm, --customer, --due).")
@click.option("--rm", "rm_code", default=None)
@click.option("--customer", "customer_id", default=None)
@click.option("--due", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--window", default=None, help="HH:MM-HH:MM")
@click.option("--note", default=None)
@click.option("--status", type=click.Choice(["open", "done", "cancelled"]), default=None, help="List filter.")
@click.option("--user", default=None, help=USER_HELP)
def tasks_cmd(ctx, add, rm_code, customer_id, due, window, note, status, user):
    """List visit tasks, or assign one with --add."""
    s = settings()
    with open_engine(s.db).begin() as conn:
        if not add:
            return ops.list_tasks(conn, scope=None, rm_code=rm_code, status=status, limit=1000)
        if not (rm_code and customer_id and due):
            raise click.UsageError("--add needs --rm, --customer and --due")
        ws, we = (window.split("-", 1) + [None])[:2] if window else (None, None)
        return ops.create_task(conn, actor=_user(user), scope=None, rm_code=rm_code, customer_id=customer_id,
                               due_date=due.date(), window_start=ws, window_end=we, note=note)


WEEK_HELP = "ISO week YYYY-Www (default: this week)."
AS_HELP = ("Answer as this API user would be answered (their role's scope, names masked for their role);"
           " default: everything, unmasked (the command line has no role: whoever reaches the database).")


def reader(conn, username: str | None) -> Scope | None:
    """The scope of API user ``username`` (``--as``), or None: everything, as a local administrator."""
    if not username:
        return None
    row = users.get_user(conn, username=username)
    if row.get("disabled"):
        raise click.BadParameter(f"user {username!r} is disabled", param_hint="--as")
    return Scope.from_user(row)


def _local(t: str | None, tz: str) -> str:
    return dt.datetime.fromisoformat(t).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if t else ""


def readable_flagged(out: dict, tz: str) -> dict:
    """The flagged visits for a terminal: one short row each, times local (``--json`` prints every field)."""
    def why(f: dict) -> str:
        parts = []
        if f["flag_far"]:
            parts.append("far" + (f" {f['distance_m']:,.0f} m" if f["distance_m"] is not None else ""))
        if f["flag_short"]:
            parts.append("short" + (f" {f['duration_min']:g} min" if f["duration_min"] is not None else ""))
        return ", ".join(parts)
    rows = [{"visited_at": _local(f["visited_at"], tz), "rm_code": f["rm_code"], "customer_id": f["customer_id"] or "-",
             "customer_name": f["customer_name"] or "-", "kind": f["kind"] or "", "flag": why(f),
             "visit_id": f["visit_id"]} for f in out["items"]]
    return {"week": out["week"], "flagged": len(rows), "visits": rows}


def readable_cover(out: dict, tz: str) -> dict:
    """Coverage for a terminal: the totals, then the cells with customers, where nobody went first."""
    n, v = out["customers"], out["customers_visited"]
    cells = sorted((c for c in out["items"] if c["customers"]),
                   key=lambda c: (c["visits_per_customer"], -c["customers"], c["cell_id"]))
    return {"grid_id": out["grid_id"], "window": f"{out['first_day']} – {out['last_day']} ({out['window_days']} days)",
            "customers": n, "customers_visited": f"{v} ({v / n:.1%})" if n else f"{v}", "visits": out["visits"],
            "cells": len(out["items"]), "cells_with_customers": len(cells),
            "cells_nobody_visited": sum(1 for c in cells if not c["visits"]),
            "by_cell": [{"cell_id": c["cell_id"], "customers": c["customers"], "visited": c["customers_visited"],
                         "visits": c["visits"], "per_customer": c["visits_per_customer"],
                         "last_visit": _local(c["last_visit_at"], tz)[:10]} for c in cells]}


@command(visits, "flagged")
@click.option("--week", default=None, help=WEEK_HELP)
@click.option("--as", "as_user", default=None, metavar="USERNAME", help=AS_HELP)
def flagged_cmd(ctx, week, as_user):
    """The week's flagged visits (far check-in, short visit), newest first, as GET /api/v1/visits/flagged.

    Every visit the week report's flag counts add up; with --as, of the RMs that user may see (a customer
    they may not see is listed without id and name). Read-only: no audit row.
    """
    s = settings()
    with open_engine(s.db).begin() as conn:
        out = ops.flagged_visits(conn, scope=reader(conn, as_user), settings=s, week=week)
    out = FlaggedListPublic.model_validate(out).model_dump(mode="json")  # what the route answers, field for field
    return out if ctx.as_json else readable_flagged(out, s.visits.timezone)


@command(visits, "coverage")
@click.option("--grid", "grid_id", type=int, required=True, help="Grid id (gridmkt grid list).")
@click.option("--week", default=None, help=WEEK_HELP + " The 90-day window ends at the week's end.")
@click.option("--as", "as_user", default=None, metavar="USERNAME", help=AS_HELP)
def coverage_cmd(ctx, grid_id, week, as_user):
    """Where visits go, as GET /api/v1/visits/coverage: per cell, customers, visits and customers visited.

    Visits by anyone in the 90 days to the week's end (the dates are printed); with --as, the cells and
    customers that user may see (numerator and denominator alike). Plain text lists the cells with
    customers, where nobody went first; --json every cell. Read-only: no audit row.
    """
    s = settings()
    with open_engine(s.db).begin() as conn:
        out = ops.cell_cover(conn, scope=reader(conn, as_user), settings=s, grid_id=grid_id, week=week)
    out = CoverPublic.model_validate(out).model_dump(mode="json")
    return out if ctx.as_json else readable_cover(out, s.visits.timezone)


@command(visits, "report")
@click.option("--week", default=None, help=WEEK_HELP)
@click.option("--as", "as_user", default=None, metavar="USERNAME", help=AS_HELP)
def report_cmd(ctx, week, as_user):
    """Per RM: planned vs done, flags, gap-cell visits, coverage share, process score (过程积分)."""
    s = settings()
    with open_engine(s.db).begin() as conn:
        return ops.week_report(conn, scope=reader(conn, as_user), settings=s, week=week)
