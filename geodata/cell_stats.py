"""Per-cell statistics of a grid (``cell_stat``): customers and balances, households, visits.

An assignment counts customers and sums balances from the placement it has just made
(``grid.totals.cell_totals`` over integer cents, :func:`totals_frame`), not by joining the new
partition back to the customers in SQL; a refresh without a new assignment (after a visits or
villages import) still sums them in SQL. Both give the same rows (tests/geodata/test_cell_stats.py).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.grids import get_grid, load_cells, load_county, load_villages
from geodata.visit_measures import partition_of, reference_time, visit_counts_sql


def _raw(conn: Connection):
    return conn.connection.dbapi_connection


def _money(cents: np.ndarray) -> list[str]:
    return [f"{'-' if c < 0 else ''}{abs(int(c)) // 100}.{abs(int(c)) % 100:02d}" for c in cents]


def totals_frame(cell_ids, totals: np.ndarray) -> pd.DataFrame:
    """``grid.totals.cell_totals`` output (customers, deposit cents, loan cents per cell) as
    :func:`refresh_cell_stats` takes it: the cells with customers, balances as exact decimal text."""
    has = totals[0] > 0
    return pd.DataFrame({"cell_id": np.asarray(cell_ids, dtype=object)[has], "customers": totals[0, has],
                         "deposit": _money(totals[1, has]), "loan": _money(totals[2, has])})


def potential_per_cell(conn: Connection, *, grid_id: int, kind: str, county_code: str, cells) -> tuple[pd.DataFrame, dict]:
    """Households/population per cell from the village list (see grid.apportion for the rule)."""
    villages = load_villages(conn, county_code=county_code)
    if kind == "village":
        v = villages.set_index("code")[["households", "population"]].fillna(0.0)
        # Plain dict look-ups: a .loc per cell cost seconds per thousand cells (refined grids have thousands).
        hh = dict(zip(v.index, v["households"].tolist(), strict=True))
        pop = dict(zip(v.index, v["population"].tolist(), strict=True))
        rows = []
        for cid, codes in zip(cells["cell_id"], cells["village_codes"], strict=True):
            codes = [c for c in (codes or []) if c in hh]
            rows.append((cid, float(sum(hh[c] for c in codes)), float(sum(pop[c] for c in codes)), False))
        df = pd.DataFrame(rows, columns=["cell_id", "households", "population", "apportioned"])
        return df, {"households_by_village": float(df["households"].sum())}
    from grid.apportion import apportion_to_cells

    county = load_county(conn, code=county_code)
    return apportion_to_cells(cells, villages, county["geometry"])


def refresh_cell_stats(conn: Connection, *, grid_id: int, as_of: str | None = None,
                       totals: pd.DataFrame | None = None, cells=None) -> dict:
    """Recompute customers, balances, households and visits per cell of a grid.

    Visits are counted as of ``as_of`` (default now), recorded in ``cell_stat.as_of``.
    ``totals`` (cell_id, customers, deposit, loan): the customer figures already summed
    from the placement (an assignment's, :func:`totals_frame`; the batch mode's reduction),
    instead of a join over the customers. ``cells``: the grid's cells as
    ``load_cells(with_stats=False)`` gives them, if the caller has them already.
    """
    g = get_grid(conn, grid_id=grid_id)
    gid = int(grid_id)
    when = reference_time(as_of)
    part = partition_of(conn, gid)
    cells = cells if cells is not None else load_cells(conn, grid_id=gid, with_stats=False)
    pot, pot_report = potential_per_cell(conn, grid_id=gid, kind=g["kind"], county_code=g["county_code"], cells=cells)
    # tmp_potential (one row per cell of the grid) drives the insert, not ``cell WHERE grid_id = :g``: the
    # planner's statistics of cell predate a grid built in this transaction (estimate: 1 row), and it then
    # nested-looped over the per-cell sums, quadratic in the cells (minutes for a refined grid's 10,000).
    assert len(pot) == len(cells) and pot["cell_id"].is_unique
    conn.execute(text("DROP TABLE IF EXISTS tmp_potential"))
    conn.execute(text("CREATE TEMP TABLE tmp_potential (cell_id varchar(32), households float8, population float8, apportioned bool) ON COMMIT DROP"))
    buf = io.StringIO()
    pot.to_csv(buf, sep="\t", header=False, index=False)
    buf.seek(0)
    with _raw(conn).cursor() as cur:
        cur.copy_expert("COPY tmp_potential FROM STDIN", buf)
    if totals is None:
        summed = f"""SELECT cc.cell_id, count(*) AS customers, sum(cu.deposit_balance) AS deposit,
                           sum(cu.loan_balance) AS loan
            FROM {part} cc JOIN customer cu ON cu.customer_id = cc.customer_id
            WHERE cc.cell_id IS NOT NULL GROUP BY cc.cell_id"""
    else:
        conn.execute(text("DROP TABLE IF EXISTS tmp_totals"))
        conn.execute(text("CREATE TEMP TABLE tmp_totals (cell_id varchar(32), customers int8, deposit numeric,"
                          " loan numeric) ON COMMIT DROP"))
        buf = io.StringIO()
        totals[["cell_id", "customers", "deposit", "loan"]].to_csv(buf, sep="\t", header=False, index=False)
        buf.seek(0)
        with _raw(conn).cursor() as cur:
            cur.copy_expert("COPY tmp_totals FROM STDIN", buf)
        summed = "SELECT * FROM tmp_totals"
    conn.execute(text("DELETE FROM cell_stat WHERE grid_id = :g"), {"g": gid})
    conn.execute(
        text(f"""
        INSERT INTO cell_stat (grid_id, cell_id, customers, households, population, apportioned,
                               deposit, loan, visits_90d, customers_visited_90d, last_visit_at, computed_at, as_of)
        SELECT CAST(:g AS integer), p.cell_id, coalesce(a.customers, 0), coalesce(p.households, 0),
               coalesce(p.population, 0), coalesce(p.apportioned, false), coalesce(a.deposit, 0),
               coalesce(a.loan, 0), coalesce(v.visits_90d, 0), coalesce(v.visited_90d, 0), v.last_visit_at, now(),
               CAST(:as_of AS timestamptz)
        FROM tmp_potential p
        LEFT JOIN ({summed}
        ) a ON a.cell_id = p.cell_id
        LEFT JOIN ({visit_counts_sql(part)}
        ) v ON v.cell_id = p.cell_id
        """),
        {"g": gid, "as_of": when.to_pydatetime()},
    )
    totals = conn.execute(
        text("SELECT count(*) AS cells, sum(customers) AS customers, sum(households) AS households, "
             "sum(visits_90d) AS visits_90d FROM cell_stat WHERE grid_id = :g"),
        {"g": gid},
    ).mappings().one()
    return {**{k: (float(v) if v is not None else 0.0) for k, v in totals.items()}, "potential": pot_report,
            "as_of": when.isoformat()}
