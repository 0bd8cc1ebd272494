"""Scoped reads of the RM's day: a stored plan with its route, the current plan of an RM and day, a visit.

A plan's stops carry where the day stands: each stop's visit by the plan's RM on
the plan's day (``planned``, ``checked_in`` at a time, or ``done`` with its
outcome and far/short flags), the route still ahead (from the last stop checked
in, through the stops not yet visited, back to the start) and the box of the
RM's territory on the grid the plan's stops are in (the phone draws those cells and caches their map for
offline use).

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
from geodata.visits.common import DEFAULT_TZ, check_rm, local_day, plan_rm
from geodata.visits.plans import clock

_STOPS = """
SELECT s.customer_id, c.name, s.rank, s.kind, s.task_id, s.score, s.reasons, s.reason_zh, s.reason_en,
       s.place_source, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.window_start, s.window_end, s.service_min,
       s.route_seq, s.arrive_at, s.start_at, s.depart_at, s.drop_reason
  FROM plan_stop s LEFT JOIN customer c ON c.customer_id = s.customer_id
 WHERE s.plan_id = :p AND NOT s.removed
 ORDER BY s.route_seq NULLS LAST, s.rank
"""


# The latest visit of each stop's customer by the plan's RM within the plan's local day.
_STOP_VISITS = """
SELECT DISTINCT ON (v.customer_id) v.customer_id, v.visit_id, v.kind AS visit_kind, v.visited_at, v.checkin_at,
       v.checkout_at, v.outcome, v.distance_m, v.flag_far, v.flag_short
  FROM visit v
 WHERE v.rm_code = :rm AND v.visited_at >= :d0 AND v.visited_at < :d1
   AND v.customer_id IN (SELECT s.customer_id FROM plan_stop s WHERE s.plan_id = :p AND NOT s.removed)
 ORDER BY v.customer_id, v.visited_at DESC
"""
# The RM's territory on the plan's grid: of the grids in which the RM owns cells now, the one that places the
# most of the plan's stops in a cell the RM owns (the plan took each customer from such a cell), the newest on
# a tie; and the box of the RM's cells on it. Not merely the newest grid: a later grid in which the RM owns one
# village cell left most stops of a plan made on the county grid outside the cells drawn.
_TERRITORY = """
WITH owned AS (SELECT o.grid_id, o.cell_id FROM territory o
                WHERE o.rm_code = :rm AND o.role = 'owner' AND o.valid_to IS NULL),
     pick AS (SELECT g.grid_id,
                     (SELECT count(DISTINCT s.customer_id) FROM plan_stop s
                        JOIN customer_cell cc ON cc.customer_id = s.customer_id AND cc.grid_id = g.grid_id
                        JOIN owned w ON w.grid_id = cc.grid_id AND w.cell_id = cc.cell_id
                       WHERE s.plan_id = :p AND NOT s.removed) AS placed
                FROM (SELECT DISTINCT grid_id FROM owned) g
               ORDER BY placed DESC, g.grid_id DESC LIMIT 1)
SELECT t.grid_id, ST_XMin(e.box) AS xmin, ST_YMin(e.box) AS ymin, ST_XMax(e.box) AS xmax, ST_YMax(e.box) AS ymax
  FROM pick t
  CROSS JOIN LATERAL (SELECT ST_Extent(c.geom)::geometry AS box FROM owned o
                        JOIN cell c ON c.grid_id = o.grid_id AND c.cell_id = o.cell_id
                       WHERE o.grid_id = t.grid_id) e
 WHERE e.box IS NOT NULL
"""
NO_VISIT = {"state": "planned", "visit_id": None, "visit_kind": None, "visited_at": None, "checkin_at": None,
            "checkout_at": None, "outcome": None, "distance_m": None, "flag_far": False, "flag_short": False}


def _state(v: dict[str, Any] | None) -> dict[str, Any]:
    """A stop's visit fields: planned (no visit yet), checked_in (not checked out yet) or done."""
    if v is None:
        return dict(NO_VISIT)
    out = {k: v[k] for k in NO_VISIT if k != "state"}
    out["state"] = "checked_in" if v["checkin_at"] is not None and v["checkout_at"] is None else "done"
    return out


def remaining_route(start: dict[str, Any], stops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The route still ahead: from the stop checked in last (else the start), through the stops not yet
    visited in route order, back to the start; None when every stop with a place is visited."""
    placed = [s for s in stops if s["lon"] is not None]
    ahead = [s for s in placed if s["state"] == "planned"]
    if not ahead:
        return None
    seen = [s for s in placed if s["state"] != "planned"]
    last = max(seen, key=lambda s: s["visited_at"]) if seen else None
    origin = [last["lon"], last["lat"]] if last else [start["lon"], start["lat"]]
    coords = [origin, *[[s["lon"], s["lat"]] for s in ahead], [start["lon"], start["lat"]]]
    return {"type": "LineString", "coordinates": coords}


def territory(conn: Connection, *, rm_code: str, plan_id: int) -> dict[str, Any] | None:
    """``{grid_id, bbox}`` of the cells the RM owns now on the grid of plan ``plan_id``'s stops (that places
    most of them in the RM's cells; the newest on a tie); None when the RM owns no cells."""
    r = conn.execute(text(_TERRITORY), {"rm": rm_code, "p": plan_id}).mappings().first()
    if r is None:
        return None
    return {"grid_id": r["grid_id"], "bbox": [r["xmin"], r["ymin"], r["xmax"], r["ymax"]]}


def plan(conn: Connection, *, scope: Scope | None, plan_id: int, tz: str = DEFAULT_TZ) -> dict[str, Any]:
    """A stored plan: start, stops on the route in order with today's visit state, dropped stops with their
    reason, the route line and the part of it still ahead, the RM's territory box."""
    plan_rm(conn, scope=scope, plan_id=plan_id)
    p = conn.execute(text(
        "SELECT plan_id, rm_code, plan_date, start_source, ST_X(start_geom) AS lon, ST_Y(start_geom) AS lat,"
        " leave_at, length_m, end_at, created_at, created_by, solver, seed"
        " FROM visit_plan WHERE plan_id = :p"), {"p": plan_id}).mappings().one()
    day = {"p": plan_id, "rm": p["rm_code"], "d0": local_day(p["plan_date"], 0, tz),
           "d1": local_day(p["plan_date"] + dt.timedelta(days=1), 0, tz)}
    visited = {r["customer_id"]: dict(r) for r in conn.execute(text(_STOP_VISITS), day).mappings()}
    stops, dropped = [], []
    for r in conn.execute(text(_STOPS), {"p": plan_id}).mappings():
        d = {**dict(r), **_state(visited.get(r["customer_id"]))}
        d["reasons"] = list(d["reasons"] or [])
        d["window_start"], d["window_end"] = clock(d["window_start"]), clock(d["window_end"])
        if d["route_seq"] is None:
            dropped.append({"customer_id": d["customer_id"], "name": d["name"], "kind": d["kind"],
                            "drop_reason": d["drop_reason"], "state": d["state"], "visit_id": d["visit_id"]})
        else:
            d["seq"] = d.pop("route_seq")
            stops.append(d)
    start = {"lon": p["lon"], "lat": p["lat"], "source": p["start_source"]}
    coords = [[p["lon"], p["lat"]], *[[s["lon"], s["lat"]] for s in stops]]
    if stops:
        coords.append([p["lon"], p["lat"]])  # back to the start (return_to_start)
    return {
        "plan_id": p["plan_id"], "rm_code": p["rm_code"], "plan_date": p["plan_date"],
        "start": start,
        "leave_at": p["leave_at"], "end_at": p["end_at"], "created_at": p["created_at"],
        "created_by": p["created_by"], "solver": p["solver"], "seed": p["seed"],
        "stops": stops, "dropped": dropped,
        "route": {"type": "LineString", "coordinates": coords}, "length_m": p["length_m"] or 0.0,
        "remaining_route": remaining_route(start, stops),
        "territory": territory(conn, rm_code=p["rm_code"], plan_id=plan_id),
        "visited": sum(s["state"] != "planned" for s in stops), "done": sum(s["state"] == "done" for s in stops),
    }


def current_plan_id(conn: Connection, *, scope: Scope | None, rm_code: str, plan_date: dt.date) -> int:
    """The newest plan of an RM for a day; NotFound when there is none (or the RM is out of scope)."""
    check_rm(conn, scope=scope, rm_code=rm_code)
    pid = conn.execute(text("SELECT max(plan_id) FROM visit_plan WHERE rm_code = :rm AND plan_date = :d"),
                       {"rm": rm_code, "d": plan_date}).scalar()
    if pid is None:
        raise NotFound(f"RM {rm_code!r} has no visit plan for {plan_date}: make one with POST /api/v1/visits/plans")
    return int(pid)
