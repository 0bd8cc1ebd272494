"""Keep derived figures current: after an import or a publish, re-place, re-count and re-score.

Rules (the CLI and the API call these after the change has committed):

- Only the newest grid version of each county and kind that has been assigned
  is refreshed; older versions are history and keep the figures they had.
- ``customers`` imported: customers of the affected counties are placed again
  (new ones need a cell), which also recomputes the cell statistics; a county
  whose assignment still holds a customer the import moved elsewhere is
  affected too.
- ``visits``, ``leads``, ``villages`` imported: cell statistics are recomputed;
  after ``villages``, H3 grids place their customers again (a customer known
  only by village code sits in the cell of the village's point).
- Afterwards, and after a scenario is published, grids that had gap scores are
  scored again (a new ``gap_run`` with ``trigger`` saying why), with the
  weights and thresholds of their last run.
- Each grid is refreshed in its own transaction. One that fails keeps its
  previous figures and is listed with its ``error``; the import stays stored
  and the other grids are still refreshed.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from geodata import assign, gaps

log = logging.getLogger("gridmkt.refresh")

# Counties whose newest assignment still places one of the run's customers, now of another county
# (moved away: it must leave the old county's cells too). Grid ids are bound as an array so only
# those partitions are read, not the history versions.
_MOVED_AWAY = ("SELECT DISTINCT g.county_code FROM customer_cell cc JOIN grid g ON g.id = cc.grid_id "
               "JOIN customer c ON c.customer_id = cc.customer_id WHERE cc.grid_id = ANY(:g) "
               "AND c.import_run_id = :run AND g.county_code IS DISTINCT FROM c.county_code")

_AFFECTED = {
    "customers": "SELECT DISTINCT county_code FROM customer WHERE import_run_id = :run",
    "visits": ("SELECT DISTINCT c.county_code FROM visit v JOIN customer c ON c.customer_id = v.customer_id "
               "WHERE v.import_run_id = :run"),
    "leads": ("SELECT DISTINCT c.county_code FROM lead l JOIN customer c ON c.customer_id = l.customer_id "
              "WHERE l.import_run_id = :run"),
    "villages": "SELECT DISTINCT county_code FROM village WHERE import_run_id = :run",
}


def newest_assigned_grids(conn: Connection, *, county_codes: list[str] | None) -> list[int]:
    """The newest assigned grid of each county (of ``county_codes``; None: of every county) and kind."""
    rows = conn.execute(text(
        "SELECT DISTINCT ON (county_code, kind) id FROM grid WHERE assigned_at IS NOT NULL "
        "AND (CAST(:c AS text[]) IS NULL OR county_code = ANY(:c)) ORDER BY county_code, kind, id DESC"),
        {"c": county_codes}).all()
    return [r[0] for r in rows]


def _rescore(conn: Connection, grid_id: int, trigger: str) -> dict | None:
    from grid.gaps import GapConfig

    last = gaps.latest_run(conn, grid_id=grid_id)
    if last is None:
        return None
    # With the weights and thresholds the grid was last scored with, not the packaged defaults.
    run = gaps.score_grid(conn, grid_id=grid_id, trigger=trigger, config=GapConfig.from_stored(last["config"]))
    return {"gap_run_id": run["gap_run_id"], "classes": run["classes"]}


def after_import(engine: Engine, *, kind: str, run_id: int) -> list[dict]:
    """Refresh the grids an import touched; one transaction per grid. Returns what was done."""
    sql = _AFFECTED.get(kind)
    if sql is None:
        return []
    with engine.connect() as conn:
        counties = [r[0] for r in conn.execute(text(sql), {"run": run_id}) if r[0]]
        if kind == "customers":
            newest = newest_assigned_grids(conn, county_codes=None)
            moved = conn.execute(text(_MOVED_AWAY), {"g": newest, "run": run_id}).scalars() if newest else []
            counties = sorted(set(counties) | set(moved))
        grid_ids = newest_assigned_grids(conn, county_codes=counties) if counties else []
    done = []
    for gid in grid_ids:
        try:
            with engine.begin() as conn:
                done.append(_refresh_grid(conn, gid, kind, run_id))
        except Exception as exc:
            # The import itself is stored: a grid that cannot be refreshed keeps its old figures (its
            # transaction rolled back), says why, and the other grids are still refreshed.
            log.exception("refreshing grid %s after import run %s failed", gid, run_id)
            done.append({"grid_id": gid, "error": f"{type(exc).__name__}: {exc}"[:500]})
    return done


def _refresh_grid(conn: Connection, gid: int, kind: str, run_id: int) -> dict:
    # An H3 grid places customers without a usable point at their village's point:
    # a villages import can move or add those points, so it places them again.
    replace = kind == "customers" or (kind == "villages" and conn.execute(
        text("SELECT kind FROM grid WHERE id = :g"), {"g": gid}).scalar() == "h3")
    if replace:
        a = assign.assign_customers(conn, grid_id=gid)
        step = {"grid_id": gid, "reassigned": a["customers"]}
    else:
        assign.refresh_cell_stats(conn, grid_id=gid)
        step = {"grid_id": gid, "stats_refreshed": True}
    step["rescored"] = _rescore(conn, gid, f"import {kind} #{run_id}")
    return step


def after_publish(conn: Connection, *, grid_id: int, scenario: str) -> dict | None:
    """Score a grid again after its territories changed (if it was scored before)."""
    return _rescore(conn, grid_id, f"published {scenario}")
