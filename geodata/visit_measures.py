"""The reference date of visit measures and gap scores, and the visit measures of a grid's cells as of it.

``visits_90d``, ``customers_visited_90d`` and ``last_visit_at`` (``cell_stat``)
are counted as of one date, recorded in ``cell_stat.as_of``; a gap run counts
them again as of its own date (``gap_run.as_of``) so that "days since the last
visit" and "visits in the last 90 days" always agree.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection


def reference_time(as_of=None) -> pd.Timestamp:
    """The reference date of visit measures and gap scores: ``as_of`` (a date or time; a date without a
    zone is UTC) or now, to the second, in UTC."""
    t = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.now(tz="UTC")
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    return t.tz_convert("UTC").floor("s")


def partition_of(conn: Connection, gid: int) -> str:
    """The assignment table of a grid (an empty relation when it has none yet)."""
    part = f"customer_cell_g{gid}"
    if not conn.execute(text("SELECT to_regclass(:t)"), {"t": part}).scalar():
        part = "(SELECT NULL::varchar AS customer_id, NULL::varchar AS cell_id WHERE false)"
    return part


def visit_counts_sql(part: str) -> str:
    """Per cell: visits and distinct customers visited in the 90 days up to :as_of, last visit by then."""
    return f"""
            SELECT cc.cell_id,
                   count(*) FILTER (WHERE vi.visited_at >= CAST(:as_of AS timestamptz) - interval '90 days') AS visits_90d,
                   count(DISTINCT vi.customer_id)
                       FILTER (WHERE vi.visited_at >= CAST(:as_of AS timestamptz) - interval '90 days') AS visited_90d,
                   max(vi.visited_at) AS last_visit_at
            FROM visit vi JOIN {part} cc ON cc.customer_id = vi.customer_id
            WHERE cc.cell_id IS NOT NULL AND vi.visited_at <= CAST(:as_of AS timestamptz) GROUP BY cc.cell_id"""


def refresh_visit_stats(conn: Connection, *, grid_id: int, as_of) -> pd.Timestamp:
    """Count the visit measures of every cell of a grid again as of ``as_of`` (see :func:`reference_time`).

    ``visits_90d``, ``customers_visited_90d`` and ``last_visit_at`` then have the
    reference date a gap score is computed at (recorded in ``cell_stat.as_of``),
    so "days since the last visit" and "visits in 90 days" never disagree.
    Returns the reference time.
    """
    gid = int(grid_id)
    when = reference_time(as_of)
    part = partition_of(conn, gid)
    conn.execute(text(f"""
        UPDATE cell_stat s SET visits_90d = coalesce(v.visits_90d, 0), customers_visited_90d = coalesce(v.visited_90d, 0),
               last_visit_at = v.last_visit_at, as_of = CAST(:as_of AS timestamptz)
          FROM cell_stat s2 LEFT JOIN ({visit_counts_sql(part)}
          ) v ON v.cell_id = s2.cell_id
         WHERE s.grid_id = :g AND s2.grid_id = s.grid_id AND s2.cell_id = s.cell_id"""),
        {"g": gid, "as_of": when.to_pydatetime()})
    return when
