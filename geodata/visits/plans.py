"""An RM's day plan in the database: candidates selected in SQL within scope, stored with its route.

``plan_for`` selects the RM's customers (those of the cells they own, and the
requester may see) with what is known of them, their open visit tasks, calls
:func:`grid.visits.plan_day` and :class:`grid.visits.DayRoute`, and stores the
plan and its stops in the caller's transaction. ``reroute`` solves a stored
plan again (stops added or removed, or from where the phone is).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput, Conflict, NotFound
from geodata.scope import Scope
from geodata.visits.common import DEFAULT_TZ, check_rm, customer_clause, local_day, plan_rm
from grid.visits import DayRoute, VisitWeights, plan_day, score_candidates
from grid.visits.clock import minutes_to_clock

MATURING_LEAD = "(l.lead_type LIKE '%到期%' OR l.lead_type ILIKE '%matur%')"
# Each customer once, in the newest grid that places them in a cell the RM owns now.
_CANDIDATES = f"""
WITH mine AS (
  SELECT DISTINCT ON (cc.customer_id) cc.customer_id, cc.grid_id, cc.cell_id, t.valid_from
    FROM territory t JOIN customer_cell cc ON cc.grid_id = t.grid_id AND cc.cell_id = t.cell_id
   WHERE t.rm_code = :rm AND t.role = 'owner' AND t.valid_to IS NULL
   ORDER BY cc.customer_id, cc.grid_id DESC
)
SELECT c.customer_id, c.name, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
       ST_X(vg.geom) AS village_lon, ST_Y(vg.geom) AS village_lat,
       (SELECT count(*) FROM lead l WHERE l.customer_id = c.customer_id AND l.status = 'open') AS open_leads,
       (SELECT max(v.visited_at) FROM visit v WHERE v.customer_id = c.customer_id) AS last_visit_at,
       gs.gap_class,
       (EXISTS (SELECT 1 FROM territory p WHERE p.grid_id = m.grid_id AND p.cell_id = m.cell_id
                   AND p.role = 'owner' AND p.rm_code <> :rm AND p.valid_to IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM visit v WHERE v.customer_id = c.customer_id AND v.rm_code = :rm
                           AND v.visited_at >= m.valid_from)) AS handed_over_unmet,
       mt.due_on AS maturity_date, mt.lead_type AS maturing_product
  FROM mine m JOIN customer c ON c.customer_id = m.customer_id
  LEFT JOIN village vg ON vg.code = c.village_code
  LEFT JOIN LATERAL (SELECT s.gap_class FROM gap_score s
                      WHERE s.gap_run_id = (SELECT max(r.id) FROM gap_run r WHERE r.grid_id = m.grid_id)
                        AND s.cell_id = m.cell_id) gs ON TRUE
  LEFT JOIN LATERAL (SELECT l.due_on, l.lead_type FROM lead l
                      WHERE l.customer_id = c.customer_id AND l.status = 'open' AND l.due_on IS NOT NULL
                        AND {MATURING_LEAD} ORDER BY l.due_on LIMIT 1) mt ON TRUE
 WHERE {{cond}} AND (CAST(:only AS text[]) IS NULL OR c.customer_id = ANY(:only))
"""
_TASKS = """
SELECT t.task_id, t.customer_id, t.due_date, to_char(t.window_start, 'HH24:MI') AS window_start,
       to_char(t.window_end, 'HH24:MI') AS window_end, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
       ST_X(vg.geom) AS village_lon, ST_Y(vg.geom) AS village_lat
  FROM visit_task t JOIN customer c ON c.customer_id = t.customer_id
  LEFT JOIN village vg ON vg.code = c.village_code
 WHERE t.rm_code = :rm AND t.status = 'open' AND t.due_date >= :d - 30
 ORDER BY t.due_date, t.task_id
"""


def candidates(conn: Connection, *, scope: Scope | None, rm: dict[str, Any], plan_date: dt.date,
               only: list[str] | None = None) -> list[dict[str, Any]]:
    """The RM's customers (visible to ``scope`` too) with leads, last visit, cell gap class, hand-over, maturity."""
    cond, params = customer_clause(scope, rm, "c")
    rows = conn.execute(text(_CANDIDATES.format(cond=cond)), {**params, "rm": rm["code"], "only": only}).mappings()
    out = []
    for r in rows:
        d = dict(r)
        last = d.pop("last_visit_at")
        d["last_visit_date"] = last.date() if last is not None else None
        out.append(d)
    return out


def _tasks(conn: Connection, rm_code: str, plan_date: dt.date) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(text(_TASKS), {"rm": rm_code, "d": plan_date}).mappings()]


def _start(rm: dict[str, Any], start: tuple[float, float] | None) -> tuple[str, float, float]:
    if start is not None:
        lon, lat = (float(v) for v in start)
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise BadInput(f"start: ({lon}, {lat}) is not a WGS84 longitude, latitude")
        return "phone", lon, lat
    if rm["outlet_lon"] is None:
        raise BadInput(f"RM {rm['code']!r} has no outlet with a point: send start_lon and start_lat")
    return "outlet", float(rm["outlet_lon"]), float(rm["outlet_lat"])


def plan_for(conn: Connection, *, scope: Scope | None, rm_code: str, plan_date: dt.date, user: str,
             start: tuple[float, float] | None = None, leave: str | None = None, weights_text: str | None = None,
             tz: str = DEFAULT_TZ, day: tuple[str, str] = ("08:30", "17:30"), detour_factor: float = 1.4,
             speed_kmh: float = 30.0, time_limit_s: float = 1.5, seed: int = 0) -> int:
    """Propose, route and store the RM's plan for ``plan_date``; returns the new plan's id.

    The newest plan of an RM and day is the current one; older ones stay for planned-vs-done.
    """
    rm = check_rm(conn, scope=scope, rm_code=rm_code)
    weights = VisitWeights.from_toml_text(weights_text) if weights_text else VisitWeights.default()
    src, slon, slat = _start(rm, start)
    cands = candidates(conn, scope=scope, rm=rm, plan_date=plan_date)
    tasks = _tasks(conn, rm_code, plan_date)
    plan = plan_day(cands, plan_date=plan_date, tasks=tasks, weights=weights)
    route = DayRoute.from_records(plan, start=(slon, slat), detour_factor=detour_factor, speed_kmh=speed_kmh,
                                  day=day, leave=leave).solve(time_limit_s=time_limit_s, seed=seed)
    plan_id = conn.execute(text(
        "INSERT INTO visit_plan (rm_code, plan_date, start_source, start_geom, leave_at, weights, solver, seed,"
        " created_by) VALUES (:rm, :d, :src, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :leave, CAST(:w AS jsonb),"
        " 'pyvrp', :seed, :u) RETURNING plan_id"),
        {"rm": rm_code, "d": plan_date, "src": src, "x": slon, "y": slat, "seed": seed, "u": user,
         "leave": local_day(plan_date, _minutes(leave), tz) if leave else None,
         "w": json.dumps({"weights": dict(weights.weights), "detour_factor": detour_factor, "speed_kmh": speed_kmh,
                          "day": list(day), "max_stops": weights.max_stops, "min_score": weights.min_score})},
    ).scalar_one()
    rows = []
    for s in plan.to_dict("records"):
        ok = s["place_source"] in ("customer", "village")
        rows.append({
            "p": plan_id, "c": s["customer_id"], "rank": int(s["rank"]), "kind": s["kind"],
            "task": int(s["task_id"]) if s["kind"] == "task" else None,
            "score": None if _nan(s["score"]) else float(s["score"]), "reasons": list(s["reasons"]),
            "zh": s["reason_zh"], "en": s["reason_en"], "src": s["place_source"] if ok else None,
            "x": float(s["lon"]) if ok else None, "y": float(s["lat"]) if ok else None,
            "ws": None if _nan(s["window_start"]) else s["window_start"],
            "we": None if _nan(s["window_end"]) else s["window_end"], "svc": float(s["service_min"]),
        })
    if rows:
        conn.execute(text(
            "INSERT INTO plan_stop (plan_id, customer_id, rank, kind, task_id, score, reasons, reason_zh, reason_en,"
            " place_source, geom, window_start, window_end, service_min) VALUES (:p, :c, :rank, :kind, :task, :score,"
            " :reasons, :zh, :en, :src, CASE WHEN CAST(:x AS float8) IS NULL THEN NULL"
            " ELSE ST_SetSRID(ST_MakePoint(:x, :y), 4326) END, CAST(:ws AS time), CAST(:we AS time), :svc)"), rows)
    _store_route(conn, plan_id, plan_date, route, tz)
    return plan_id


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _minutes(clock: str | None) -> float | None:
    if clock is None:
        return None
    h, _, m = clock.partition(":")
    return int(h) * 60 + int(m)


def _store_route(conn: Connection, plan_id: int, plan_date: dt.date, route: DayRoute, tz: str) -> None:
    conn.execute(text("UPDATE plan_stop SET route_seq = NULL, arrive_at = NULL, start_at = NULL, depart_at = NULL,"
                      " drop_reason = CASE WHEN removed THEN 'removed' END WHERE plan_id = :p"), {"p": plan_id})
    seq = [{"p": plan_id, "c": r["stop_id"], "seq": int(r["seq"]),
            "a": local_day(plan_date, r["arrive_min"], tz), "s": local_day(plan_date, r["start_min"], tz),
            "d": local_day(plan_date, r["depart_min"], tz)} for r in route.route.to_dict("records")]
    if seq:
        conn.execute(text("UPDATE plan_stop SET route_seq = :seq, arrive_at = :a, start_at = :s, depart_at = :d"
                          " WHERE plan_id = :p AND customer_id = :c"), seq)
    drops = [{"p": plan_id, "c": r["stop_id"], "r": r["reason"]} for r in route.dropped.to_dict("records")]
    if drops:
        conn.execute(text("UPDATE plan_stop SET drop_reason = :r WHERE plan_id = :p AND customer_id = :c"), drops)
    conn.execute(text("UPDATE visit_plan SET length_m = :l, end_at = :e WHERE plan_id = :p"),
                 {"p": plan_id, "l": float(route.length_m or 0.0), "e": local_day(plan_date, route.end_min, tz)})


def reroute(conn: Connection, *, scope: Scope | None, plan_id: int, start: tuple[float, float] | None = None,
            leave: str | None = None, tz: str = DEFAULT_TZ, time_limit_s: float = 1.5) -> None:
    """Solve a stored plan again over its stops not removed (from ``start`` leaving at ``leave`` if given)."""
    plan_rm(conn, scope=scope, plan_id=plan_id)
    p = conn.execute(text("SELECT plan_date, ST_X(start_geom) AS lon, ST_Y(start_geom) AS lat, weights, seed"
                          " FROM visit_plan WHERE plan_id = :p FOR UPDATE"), {"p": plan_id}).mappings().one()
    stops = conn.execute(text(
        "SELECT customer_id AS stop_id, ST_X(geom) AS lon, ST_Y(geom) AS lat, to_char(window_start, 'HH24:MI')"
        " AS window_start, to_char(window_end, 'HH24:MI') AS window_end, service_min,"
        " CASE kind WHEN 'proposed' THEN greatest(coalesce(score, 0) / 100.0, 0.01) ELSE 1.0 END AS priority,"
        " kind = 'task' AS required FROM plan_stop WHERE plan_id = :p AND NOT removed ORDER BY rank"),
        {"p": plan_id}).mappings().all()
    w = p["weights"] or {}
    if start is not None:
        slon, slat = float(start[0]), float(start[1])
        conn.execute(text("UPDATE visit_plan SET start_source = 'phone', start_geom = ST_SetSRID(ST_MakePoint(:x, :y),"
                          " 4326), leave_at = :l WHERE plan_id = :p"),
                     {"x": slon, "y": slat, "p": plan_id, "l": local_day(p["plan_date"], _minutes(leave), tz)})
    else:
        slon, slat = p["lon"], p["lat"]
    route = DayRoute.from_records([dict(s) for s in stops], start=(slon, slat),
                                  detour_factor=float(w.get("detour_factor", 1.4)),
                                  speed_kmh=float(w.get("speed_kmh", 30.0)), day=tuple(w.get("day", ("08:30", "17:30"))),
                                  leave=leave).solve(time_limit_s=time_limit_s, seed=int(p["seed"]))
    _store_route(conn, plan_id, p["plan_date"], route, tz)


def add_stop(conn: Connection, *, scope: Scope | None, plan_id: int, customer_id: str, tz: str = DEFAULT_TZ) -> None:
    """Add one of the RM's customers to a plan (or put a removed one back), then route again."""
    rm_code = plan_rm(conn, scope=scope, plan_id=plan_id)
    rm = check_rm(conn, scope=scope, rm_code=rm_code)
    pdate = conn.execute(text("SELECT plan_date FROM visit_plan WHERE plan_id = :p"), {"p": plan_id}).scalar_one()
    found = candidates(conn, scope=scope, rm=rm, plan_date=pdate, only=[customer_id])
    if not found:
        raise NotFound(f"customer {customer_id!r} does not exist")
    again = conn.execute(text("UPDATE plan_stop SET removed = false WHERE plan_id = :p AND customer_id = :c"
                              " RETURNING customer_id"), {"p": plan_id, "c": customer_id}).first()
    if again is None:
        s = score_candidates(found, plan_date=pdate).to_dict("records")[0]
        ok = s["place_source"] in ("customer", "village")
        conn.execute(text(
            "INSERT INTO plan_stop (plan_id, customer_id, rank, kind, score, reasons, reason_zh, reason_en,"
            " place_source, geom, service_min) SELECT :p, :c, coalesce(max(rank), 0) + 1, 'added', :score,"
            " :reasons, :zh, :en, :src, CASE WHEN CAST(:x AS float8) IS NULL THEN NULL"
            " ELSE ST_SetSRID(ST_MakePoint(:x, :y), 4326) END, :svc FROM plan_stop WHERE plan_id = :p"),
            {"p": plan_id, "c": customer_id, "score": float(s["score"]), "reasons": ["added", *s["reasons"]],
             "zh": "；".join(x for x in ("客户经理添加", s["reason_zh"]) if x),
             "en": "; ".join(x for x in ("added by the RM", s["reason_en"]) if x),
             "src": s["place_source"] if ok else None, "x": float(s["lon"]) if ok else None,
             "y": float(s["lat"]) if ok else None, "svc": float(VisitWeights.default().service_min)})
    reroute(conn, scope=scope, plan_id=plan_id, tz=tz)


def remove_stop(conn: Connection, *, scope: Scope | None, plan_id: int, customer_id: str,
                tz: str = DEFAULT_TZ) -> None:
    """Take a stop off the plan (a manager's task cannot be), then route again."""
    plan_rm(conn, scope=scope, plan_id=plan_id)
    kind = conn.execute(text("SELECT kind FROM plan_stop WHERE plan_id = :p AND customer_id = :c AND NOT removed"),
                        {"p": plan_id, "c": customer_id}).scalar()
    if kind is None:
        raise NotFound(f"plan {plan_id} has no stop for customer {customer_id!r}")
    if kind == "task":
        raise Conflict(f"customer {customer_id!r} is a visit task of the branch manager: it stays in the plan")
    conn.execute(text("UPDATE plan_stop SET removed = true WHERE plan_id = :p AND customer_id = :c"),
                 {"p": plan_id, "c": customer_id})
    reroute(conn, scope=scope, plan_id=plan_id, tz=tz)


def clock(t: dt.time | None) -> str | None:
    """'HH:MM' of a stored time (None stays None)."""
    return None if t is None else minutes_to_clock(t.hour * 60 + t.minute)


def rms_with_territory(conn: Connection, *, county_code: str) -> list[str]:
    """Active RMs owning cells of the county's newest assigned grids, by code."""
    return list(conn.execute(text(
        "SELECT DISTINCT t.rm_code FROM territory t JOIN grid g ON g.id = t.grid_id JOIN rm r ON r.code = t.rm_code"
        " WHERE g.county_code = :k AND g.assigned_at IS NOT NULL AND t.role = 'owner' AND t.valid_to IS NULL"
        " AND r.active ORDER BY t.rm_code"), {"k": county_code}).scalars())
