"""Scoped reads of the RM's day: a stored plan with its route, the current plan of an RM and day, a visit.

Who may read what follows ``geodata.scope``: a plan through its RM (an RM: their
own; a branch manager: their outlets' RMs; planners and analysts: the legal
entity), a visit through its RM and its customer. Names come unmasked: the
caller masks them for the role (``api.masking``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import NotFound
from geodata.scope import Scope
from geodata.visits.common import check_rm, plan_rm
from geodata.visits.plans import clock

_STOPS = """
SELECT s.customer_id, c.name, s.rank, s.kind, s.task_id, s.score, s.reasons, s.reason_zh, s.reason_en,
       s.place_source, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.window_start, s.window_end, s.service_min,
       s.route_seq, s.arrive_at, s.start_at, s.depart_at, s.drop_reason
  FROM plan_stop s LEFT JOIN customer c ON c.customer_id = s.customer_id
 WHERE s.plan_id = :p AND NOT s.removed
 ORDER BY s.route_seq NULLS LAST, s.rank
"""


def plan(conn: Connection, *, scope: Scope | None, plan_id: int) -> dict[str, Any]:
    """A stored plan: start, stops on the route in order, dropped stops with their reason, the route line."""
    plan_rm(conn, scope=scope, plan_id=plan_id)
    p = conn.execute(text(
        "SELECT plan_id, rm_code, plan_date, start_source, ST_X(start_geom) AS lon, ST_Y(start_geom) AS lat,"
        " leave_at, length_m, end_at, created_at, created_by, solver, seed"
        " FROM visit_plan WHERE plan_id = :p"), {"p": plan_id}).mappings().one()
    stops, dropped = [], []
    for r in conn.execute(text(_STOPS), {"p": plan_id}).mappings():
        d = dict(r)
        d["reasons"] = list(d["reasons"] or [])
        d["window_start"], d["window_end"] = clock(d["window_start"]), clock(d["window_end"])
        if d["route_seq"] is None:
            dropped.append({"customer_id": d["customer_id"], "name": d["name"], "kind": d["kind"],
                            "drop_reason": d["drop_reason"]})
        else:
            d["seq"] = d.pop("route_seq")
            stops.append(d)
    coords = [[p["lon"], p["lat"]], *[[s["lon"], s["lat"]] for s in stops]]
    if stops:
        coords.append([p["lon"], p["lat"]])  # back to the start (return_to_start)
    return {
        "plan_id": p["plan_id"], "rm_code": p["rm_code"], "plan_date": p["plan_date"],
        "start": {"lon": p["lon"], "lat": p["lat"], "source": p["start_source"]},
        "leave_at": p["leave_at"], "end_at": p["end_at"], "created_at": p["created_at"],
        "created_by": p["created_by"], "solver": p["solver"], "seed": p["seed"],
        "stops": stops, "dropped": dropped,
        "route": {"type": "LineString", "coordinates": coords}, "length_m": p["length_m"] or 0.0,
    }


def current_plan_id(conn: Connection, *, scope: Scope | None, rm_code: str, plan_date: dt.date) -> int:
    """The newest plan of an RM for a day; NotFound when there is none (or the RM is out of scope)."""
    check_rm(conn, scope=scope, rm_code=rm_code)
    pid = conn.execute(text("SELECT max(plan_id) FROM visit_plan WHERE rm_code = :rm AND plan_date = :d"),
                       {"rm": rm_code, "d": plan_date}).scalar()
    if pid is None:
        raise NotFound(f"RM {rm_code!r} has no visit plan for {plan_date}: make one with POST /api/v1/visits/plans")
    return int(pid)
