"""The branch manager's week (拜访过程管理): per RM, planned vs done, flags, gap-cell visits, coverage.

For each RM ``scope`` may see and an ISO week (Monday to Sunday, local dates):

- ``planned``: stops on the route of the current plan (the newest per day) of each day;
  ``planned_done``: those the RM visited (any visit of that customer by that RM) on that day.
- ``visits``, ``checkins``, ``flag_far``, ``flag_short``: the RM's visits in the week.
- ``gap_visits``: visits whose customer sits in a blank or under-served cell (latest gap run of
  the newest assigned grid placing them).
- ``territory_customers``: customers of the cells the RM owns now; ``customers_visited``: of
  those, visited by anyone within ``window_days`` up to the end of the week.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput
from geodata.scope import Scope, where

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")

_REPORT = """
WITH rms AS (SELECT r.code, r.name, r.outlet_code FROM rm r WHERE {cond} AND r.active),
cur AS (SELECT DISTINCT ON (p.rm_code, p.plan_date) p.plan_id, p.rm_code, p.plan_date FROM visit_plan p
         WHERE p.rm_code IN (SELECT code FROM rms) AND p.plan_date BETWEEN :d0 AND :d1
         ORDER BY p.rm_code, p.plan_date, p.plan_id DESC),
planned AS (SELECT cur.rm_code, count(*) AS planned,
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM visit v WHERE v.customer_id = s.customer_id
                       AND v.rm_code = cur.rm_code AND (v.visited_at AT TIME ZONE :tz)::date = cur.plan_date))
                     AS planned_done
              FROM cur JOIN plan_stop s ON s.plan_id = cur.plan_id AND s.route_seq IS NOT NULL AND NOT s.removed
             GROUP BY cur.rm_code),
wk AS (SELECT v.* FROM visit v WHERE v.rm_code IN (SELECT code FROM rms) AND v.visited_at >= :t0 AND v.visited_at < :t1),
placed AS (SELECT DISTINCT ON (cc.customer_id) cc.customer_id, cc.grid_id, cc.cell_id
             FROM customer_cell cc JOIN grid g ON g.id = cc.grid_id AND g.assigned_at IS NOT NULL
            WHERE cc.customer_id IN (SELECT customer_id FROM wk) AND cc.cell_id IS NOT NULL
            ORDER BY cc.customer_id, cc.grid_id DESC),
gapcls AS (SELECT pl.customer_id, s.gap_class FROM placed pl JOIN gap_score s ON s.cell_id = pl.cell_id
             AND s.gap_run_id = (SELECT max(r.id) FROM gap_run r WHERE r.grid_id = pl.grid_id)),
done AS (SELECT wk.rm_code, count(*) AS visits, count(*) FILTER (WHERE wk.source = 'checkin') AS checkins,
                count(*) FILTER (WHERE wk.flag_far) AS flag_far, count(*) FILTER (WHERE wk.flag_short) AS flag_short,
                count(*) FILTER (WHERE wk.flag_far OR wk.flag_short) AS flagged,
                count(*) FILTER (WHERE gc.gap_class IN ('blank', 'under-served')) AS gap_visits
           FROM wk LEFT JOIN gapcls gc ON gc.customer_id = wk.customer_id GROUP BY wk.rm_code),
terr AS (SELECT t.rm_code, count(DISTINCT cc.customer_id) AS territory_customers,
                count(DISTINCT cc.customer_id) FILTER (WHERE EXISTS (SELECT 1 FROM visit v
                    WHERE v.customer_id = cc.customer_id AND v.visited_at < :t1
                      AND v.visited_at >= CAST(:t1 AS timestamptz) - CAST(:win AS interval))) AS customers_visited
           FROM territory t JOIN customer_cell cc ON cc.grid_id = t.grid_id AND cc.cell_id = t.cell_id
          WHERE t.rm_code IN (SELECT code FROM rms) AND t.role = 'owner' AND t.valid_to IS NULL
            AND CASE WHEN CAST(:grid AS integer) IS NULL
                     THEN t.grid_id IN (SELECT DISTINCT ON (g.county_code, g.kind) g.id FROM grid g
                                         WHERE g.assigned_at IS NOT NULL ORDER BY g.county_code, g.kind, g.id DESC)
                     ELSE t.grid_id = :grid END
          GROUP BY t.rm_code)
SELECT rms.code AS rm_code, rms.name AS rm_name, rms.outlet_code,
       coalesce(planned.planned, 0) AS planned, coalesce(planned.planned_done, 0) AS planned_done,
       coalesce(done.visits, 0) AS visits, coalesce(done.checkins, 0) AS checkins,
       coalesce(done.flag_far, 0) AS flag_far, coalesce(done.flag_short, 0) AS flag_short,
       coalesce(done.flagged, 0) AS flagged, coalesce(done.gap_visits, 0) AS gap_visits,
       coalesce(terr.territory_customers, 0) AS territory_customers,
       coalesce(terr.customers_visited, 0) AS customers_visited
  FROM rms LEFT JOIN planned ON planned.rm_code = rms.code LEFT JOIN done ON done.rm_code = rms.code
  LEFT JOIN terr ON terr.rm_code = rms.code
 ORDER BY rms.outlet_code, rms.code
"""


def week_bounds(week: str) -> tuple[dt.date, dt.date]:
    """Monday and Sunday of an ISO week ``YYYY-Www``; BadInput naming the value otherwise."""
    m = _WEEK.match(week or "")
    if not m:
        raise BadInput(f"week: {week!r} is not an ISO week like 2026-W50")
    try:
        monday = dt.date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError:
        raise BadInput(f"week: {week!r} does not exist") from None
    return monday, monday + dt.timedelta(days=6)


def this_week(tz: str) -> str:
    """The ISO week of today where the bank is (``YYYY-Www``)."""
    y, w, _ = dt.datetime.now(ZoneInfo(tz)).date().isocalendar()
    return f"{y}-W{w:02d}"


def week_rows(conn: Connection, *, scope: Scope | None, week: str, tz: str,
              window_days: int = 90, grid_id: int | None = None) -> list[dict[str, Any]]:
    """One row of counts per RM ``scope`` may see (see the module docstring); with ``grid_id``, the
    territory (``territory_customers``, ``customers_visited``) is the RM's cells of that grid only."""
    d0, d1 = week_bounds(week)
    cond = where(scope, "rm", "r") if scope is not None else None
    z = ZoneInfo(tz)
    t0 = dt.datetime.combine(d0, dt.time(0), tzinfo=z)
    t1 = dt.datetime.combine(d1 + dt.timedelta(days=1), dt.time(0), tzinfo=z)
    rows = conn.execute(text(_REPORT.format(cond=cond.sql if cond else "TRUE")),
                        {**(cond.params if cond else {}), "d0": d0, "d1": d1, "t0": t0, "t1": t1, "tz": tz,
                         "win": dt.timedelta(days=window_days), "grid": grid_id}).mappings().all()
    return [dict(r) for r in rows]


_FLAGGED = """
SELECT v.visit_id, v.rm_code, v.visited_at, v.kind, v.source, v.flag_far, v.flag_short, v.distance_m, v.accuracy_m,
       round(CAST(extract(epoch FROM v.checkout_at - v.checkin_at) / 60.0 AS numeric), 1)::float8 AS duration_min,
       CASE WHEN {cust} THEN c.customer_id END AS customer_id, CASE WHEN {cust} THEN c.name END AS customer_name
  FROM visit v JOIN rm r ON r.code = v.rm_code LEFT JOIN customer c ON c.customer_id = v.customer_id
 WHERE (v.flag_far OR v.flag_short) AND {rms} AND v.visited_at >= :t0 AND v.visited_at < :t1
 ORDER BY v.visited_at DESC, v.visit_id DESC LIMIT :n
"""


def flagged_visits(conn: Connection, *, scope: Scope | None, week: str, tz: str, limit: int = 200) -> list[dict[str, Any]]:
    """The week's flagged visits (far, short) of the RMs ``scope`` may see, newest first: the ones the week's
    counts add up (never dropped). The customer is named only when ``scope`` may see them (else null)."""
    d0, d1 = week_bounds(week)
    rms = where(scope, "rm", "r") if scope is not None else None
    cust = where(scope, "customer", "c") if scope is not None else None
    z = ZoneInfo(tz)
    sql = _FLAGGED.format(rms=rms.sql if rms else "TRUE", cust=cust.sql if cust else "TRUE")
    rows = conn.execute(text(sql), {**(rms.params if rms else {}), "n": limit,
                                    "t0": dt.datetime.combine(d0, dt.time(0), tzinfo=z),
                                    "t1": dt.datetime.combine(d1 + dt.timedelta(days=1), dt.time(0), tzinfo=z)})
    return [dict(r) for r in rows.mappings()]
