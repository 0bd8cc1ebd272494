"""Latest gap scores of a grid as a user may see them, filtered, bounded and paged in SQL.

Scores hold no personal data, but their measures name the owning RM and count
customers: RMs and branch managers see the cells of their (outlets') territory
plus the cells nobody owns (blank areas belong to no territory yet); the roles
of :data:`~geodata.reads.access.LE_WIDE` see every cell of the grid.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata import gaps
from geodata.errors import NotFound
from geodata.reads.access import LE_WIDE, UNOWNED
from geodata.reads.values import jsonable
from geodata.scope import Scope, where


def _visible(scope: Scope, alias: str) -> tuple[str, dict[str, Any]]:
    """Condition on cell ``alias`` that its score is visible to ``scope`` (TRUE for LE-wide roles)."""
    if scope.role in LE_WIDE:
        return "TRUE", {}
    cond = where(scope, "cell", alias)
    return f"(({cond.sql}) OR {UNOWNED.format(a=alias)})", cond.params


def score_visible(conn: Connection, *, scope: Scope, grid_id: int, cell_id: str) -> bool:
    """Whether ``scope`` may see the score of the cell (False also when the cell does not exist)."""
    if scope.role in LE_WIDE:
        return True
    cond, params = _visible(scope, "c")
    return conn.execute(text(f"SELECT 1 FROM cell c WHERE c.grid_id = :g AND c.cell_id = :cid AND {cond}"),
                        {**params, "g": grid_id, "cid": cell_id}).first() is not None


def latest_scores(conn: Connection, *, scope: Scope, grid_id: int, gap_class: str | None = None,
                  cell_ids: list[str] | None = None, bbox: tuple[float, float, float, float] | None = None,
                  limit: int | None = None, offset: int = 0) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    """One page of the latest scores ``scope`` may see, highest first; the number matched; the run.

    Rows hold score, class, components, measures and reasons (zh/en); the run
    is ``geodata.gaps.latest_run`` with ``geodata.gaps.staleness``. NotFound
    when the grid was never scored.
    """
    run = gaps.latest_run(conn, grid_id=grid_id)
    if run is None:
        raise NotFound(f"grid {grid_id} has no gap scores yet: score it first")
    run = {**run, **gaps.staleness(conn, grid_id=grid_id, run=run)}
    seen, params = _visible(scope, "c")
    x0, y0, x1, y1 = bbox or (None,) * 4
    base = ("FROM gap_score s JOIN cell c ON c.grid_id = :g AND c.cell_id = s.cell_id"
            " WHERE s.gap_run_id = :r AND (CAST(:k AS text) IS NULL OR s.gap_class = :k)"
            " AND (CAST(:ids AS text[]) IS NULL OR s.cell_id = ANY(:ids))"
            " AND (CAST(:x0 AS float8) IS NULL OR ST_Intersects(c.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))"
            f" AND {seen}")
    params = {**params, "g": grid_id, "r": run["id"], "k": gap_class, "ids": cell_ids,
              "x0": x0, "y0": y0, "x1": x1, "y1": y1, "lim": limit, "off": offset}
    total = conn.execute(text(f"SELECT count(*) {base}"), params).scalar_one()
    rows = conn.execute(text(
        "SELECT s.cell_id, s.score, s.gap_class, s.components, s.measures, s.reason_zh, s.reason_en "
        f"{base} ORDER BY s.score DESC, s.cell_id LIMIT :lim OFFSET :off"), params).mappings().all()
    return [jsonable(dict(r)) for r in rows], total, jsonable(run)
