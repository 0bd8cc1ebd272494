"""Assign the customers of a county to the cells of one grid version, and per-cell statistics.

Every customer of the grid's county lands in exactly one row of the grid's
``customer_cell`` partition: ``how`` says whether it was placed by its point
(``point``), by its village code (``village``: no usable point, or a point
outside the county with a village code), or why it has no cell (``outside``:
a point outside the county and no village code; ``no_location``: neither).
The partition is written with COPY into a fresh table and swapped in, which
is an order of magnitude faster than updating rows in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.cell_stats import potential_per_cell, refresh_cell_stats, totals_frame
from geodata.customer_read import fetch_customers
from geodata.grids import build_locator, get_grid, grid_locator, load_cells, load_villages
from geodata.partition_write import new_partition, swap_partition, write_partition
from grid.totals import cell_totals

ProgressFn = Callable[[float, str], None]
UNPLACED_SAMPLE = 50
# The statistics live in geodata.cell_stats; still reachable here (refresh, the batch mode).
__all__ = ["HOW", "assign_customers", "assignment_staleness", "fetch_customers", "locate_customers",
           "new_partition", "placement_frame", "potential_per_cell", "refresh_cell_stats", "swap_partition", "unplaced_customers",
           "village_index"]
# customer_cell.how: placed by point or by village code, or why not placed.
HOW = ("point", "village", "outside", "no_location")


# Connections reading a county's customers at once (geodata.customer_read.fetch_customers).
READERS = 2

# Advisory lock class ('as') held by an assignment of grid G as (ASSIGN_LOCK_CLASS, G) until it commits.
ASSIGN_LOCK_CLASS = 0x6173


def _raw(conn: Connection):
    return conn.connection.dbapi_connection


def _village_to_cell(kind: str, cells, villages: pd.DataFrame, locator) -> dict[str, str]:
    """Which cell a customer known only by village code belongs to."""
    if kind == "village":
        from grid.villages import village_cell_lookup

        return village_cell_lookup(cells)
    # H3: the cell holding the village's point (own, township seat or county seat).
    v = villages.dropna(subset=["lon", "lat"])
    idx = locator.locate(v["lon"].to_numpy(), v["lat"].to_numpy())
    ids = cells["cell_id"].to_numpy()
    return {code: ids[i] for code, i in zip(v["code"], idx, strict=True) if i >= 0}


def village_index(kind: str, cells, villages: pd.DataFrame, locator) -> dict[str, int]:
    """Village code -> row in ``cells`` of the cell a customer known only by that code goes to (a grid's
    constant: the batch mode computes it once per worker, not once per partition)."""
    position = {c: i for i, c in enumerate(cells["cell_id"].to_numpy())}
    return {v: position[c] for v, c in _village_to_cell(kind, cells, villages, locator).items() if c in position}


def locate_customers(kind: str, cells, villages: pd.DataFrame, customers: pd.DataFrame,
                     workers: int = 1, locator=None, villages_to_cells: dict[str, int] | None = None) -> pd.DataFrame:
    """Pure placement step: returns customers with ``cell_id``, ``how`` and ``cell_index``.

    ``cell_index`` is the cell's row in ``cells`` (-1 for none), so callers can
    sort or group by cell without comparing strings. ``cell_id`` and ``how`` are
    categoricals (codes over the cell ids and :data:`HOW`; no string per customer):
    compare them with ``.astype(object)`` or through ``cell_index``.

    ``workers`` > 1 forks processes for H3 grids: only from a single-threaded
    process (the CLI), never inside the server. ``locator``: one already built
    for these cells (the grid's stored lookup), else one is built. ``villages_to_cells``:
    :func:`village_index` of these cells, if the caller has it.
    """
    locator = locator if locator is not None else build_locator(kind, cells, workers)
    ids = cells["cell_id"].to_numpy().astype(object)
    lon = customers["lon"].to_numpy(dtype=float)
    lat = customers["lat"].to_numpy(dtype=float)
    has_point = np.isfinite(lon) & np.isfinite(lat)
    idx = np.full(len(customers), -1, dtype=np.int64)
    if has_point.any():
        idx[has_point] = locator.locate(lon[has_point], lat[has_point])
    how = np.where(idx >= 0, 0, np.where(has_point, 2, 3)).astype(np.int8)  # codes of HOW
    need = np.flatnonzero(idx < 0)
    if len(need):
        to_index = villages_to_cells if villages_to_cells is not None else village_index(kind, cells, villages,
                                                                                          locator)
        codes = pa.array(customers["village_code"], type=pa.large_string(), from_pandas=True).take(pa.array(need))
        if isinstance(codes, pa.ChunkedArray):  # pandas' Arrow-backed strings
            codes = codes.combine_chunks()
        at = pc.index_in(codes, value_set=pa.array(list(to_index), type=pa.large_string()))
        at = np.asarray(pc.fill_null(at, -1), dtype=np.int64)
        found = np.append(np.fromiter(to_index.values(), dtype=np.int64, count=len(to_index)), -1)[at]
        ok = found >= 0
        idx[need[ok]] = found[ok]
        how[need[ok]] = 1
    return placement_frame(customers["customer_id"].reset_index(drop=True), idx, how, ids)


def placement_frame(customer_id: pd.Series, cell_index: np.ndarray, how: np.ndarray, cell_ids) -> pd.DataFrame:
    """What :func:`locate_customers` returns, from each customer's row in the cells (-1: none), its
    :data:`HOW` code and the cells' ids (also built from a batch's staged rows)."""
    return pd.DataFrame({"customer_id": customer_id,
                         "cell_id": pd.Categorical.from_codes(cell_index, categories=pd.Index(cell_ids)),
                         "how": pd.Categorical.from_codes(how, categories=HOW), "cell_index": cell_index})


def assign_customers(conn: Connection, *, grid_id: int, progress: ProgressFn | None = None,
                     workers: int = 1, as_of: str | None = None) -> dict:
    """Place every customer of the grid's county in one cell; store and summarise."""
    progress = progress or (lambda f, m="": None)
    t0 = time.perf_counter()
    # One assignment of a grid at a time: a second waits for the first to commit (it would otherwise
    # fail on the first's half-built partition table) and then reads the customers as they are now.
    conn.execute(text("SELECT pg_advisory_xact_lock(:c, :g)"), {"c": ASSIGN_LOCK_CLASS, "g": int(grid_id)})
    g = get_grid(conn, grid_id=grid_id)
    progress(0.05, "loading cells")
    cells = load_cells(conn, grid_id=grid_id, with_stats=False)
    villages = load_villages(conn, county_code=g["county_code"])
    progress(0.15, "reading customers")
    # Two readers: the server scans and formats the rows on two cores.
    customers = fetch_customers(conn, county_code=g["county_code"], readers=READERS)
    progress(0.35, f"placing {len(customers):,} customers")
    t1 = time.perf_counter()
    # The point lookup is stored with the grid version (built there once).
    stored = grid_locator(conn, grid_id=grid_id, kind=g["kind"], cells=cells, workers=workers)
    placed = locate_customers(g["kind"], cells, villages, customers, workers=workers, locator=stored)
    t2 = time.perf_counter()
    progress(0.6, "writing assignment")
    write_partition(conn, grid_id, placed)
    t3 = time.perf_counter()
    progress(0.8, "cell statistics")
    # Counted from the placement in hand, not by joining the new partition back to the customers.
    totals = cell_totals(placed["cell_index"].to_numpy(), len(cells), customers["deposit_cents"].to_numpy(),
                         customers["loan_cents"].to_numpy())
    stats = refresh_cell_stats(conn, grid_id=grid_id, as_of=as_of, totals=totals_frame(cells["cell_id"], totals),
                               cells=cells)
    conn.execute(text("UPDATE grid SET assigned_at = now() WHERE id = :g"), {"g": grid_id})
    progress(1.0, "done")
    counts = placed["how"].value_counts().to_dict()
    unplaced = placed[placed["cell_id"].isna()]
    return {
        "grid_id": grid_id, "county_code": g["county_code"], "customers": len(placed),
        "by_point": int(counts.get("point", 0)), "by_village_code": int(counts.get("village", 0)),
        "outside_county": int(counts.get("outside", 0)), "no_location": int(counts.get("no_location", 0)),
        "unplaced_sample": unplaced.head(UNPLACED_SAMPLE)[["customer_id", "how"]].to_dict("records"),
        "cells_with_customers": int(placed["cell_id"].nunique()),
        "seconds": {"read": round(t1 - t0, 3), "locate": round(t2 - t1, 3), "write": round(t3 - t2, 3),
                    "stats": round(time.perf_counter() - t3, 3)},
        "stats": stats,
    }


def unplaced_customers(conn: Connection, *, grid_id: int, limit: int = 1000, offset: int = 0) -> list[dict]:
    """Customers of a grid's county that have no cell, with the reason."""
    gid = int(grid_id)
    part = f"customer_cell_g{gid}"
    if not conn.execute(text("SELECT to_regclass(:t)"), {"t": part}).scalar():
        return []
    rows = conn.execute(
        text(f"SELECT customer_id, how FROM {part} WHERE cell_id IS NULL ORDER BY customer_id LIMIT :l OFFSET :o"),
        {"l": limit, "o": offset},
    ).mappings().all()
    return [dict(r) for r in rows]


def assignment_staleness(conn: Connection, *, grid_id: int) -> list[str]:
    """Why the grid's stored assignment no longer matches its customers (empty: it does).

    Customers imported (inserted, moved, changed) by a customers import run that ended after the
    grid was last assigned and that are of the grid's county, or still placed in it though now of
    another county. Imports re-assign by themselves (``geodata.refresh``); this stays true when that
    follow-up never ran (the process died between the import's commit and the re-assignment) until
    the grid is assigned again. A run the process never finished counts from when it was marked
    failed (``geodata.liveness``). Only the newest assigned grid of its county and kind is checked:
    imports re-assign only those, older versions are history and keep the figures they had.
    """
    g = conn.execute(text(
        "SELECT g.county_code, g.assigned_at FROM grid g WHERE g.id = :g AND g.assigned_at IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM grid n WHERE n.county_code = g.county_code AND n.kind = g.kind"
        " AND n.assigned_at IS NOT NULL AND n.id > g.id)"), {"g": grid_id}).first()
    if g is None:
        return []
    runs = conn.execute(text(
        "SELECT id FROM import_run WHERE kind = 'customers' AND NOT dry_run"
        " AND coalesce(finished_at, now()) > :t ORDER BY id"), {"t": g.assigned_at}).scalars().all()
    if not runs:
        return []
    part = f"customer_cell_g{int(grid_id)}"
    placed = conn.execute(text("SELECT to_regclass(:t)"), {"t": part}).scalar()
    moved_away = (f" UNION SELECT cc.customer_id FROM {part} cc JOIN customer c ON c.customer_id = cc.customer_id"
                  " WHERE c.import_run_id = ANY(:r) AND c.county_code IS DISTINCT FROM :county") if placed else ""
    by_run = conn.execute(text(
        "SELECT c.import_run_id, count(*) FROM customer c JOIN (SELECT customer_id FROM customer"
        f" WHERE county_code = :county AND import_run_id = ANY(:r){moved_away}) x USING (customer_id)"
        " GROUP BY 1 ORDER BY 1"), {"county": g.county_code, "r": list(runs)}).all()
    if not by_run:
        return []
    changed = sum(n for _, n in by_run)
    named = ", ".join(f"#{r}" for r, _ in by_run[:5]) + (" …" if len(by_run) > 5 else "")
    return [f"{changed} customer(s) changed by import run(s) {named} after the customers were assigned to"
            " cells: assign the grid again"]
