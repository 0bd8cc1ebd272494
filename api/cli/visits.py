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


@command(visits, "report")
@click.option("--week", default=None, help="ISO week YYYY-Www (default: this week).")
def report_cmd(ctx, week):
    """Per RM: planned vs done, flags, gap-cell visits, coverage share, process score (过程积分)."""
    s = settings()
    with open_engine(s.db).begin() as conn:
        return ops.week_report(conn, scope=None, settings=s, week=week)
