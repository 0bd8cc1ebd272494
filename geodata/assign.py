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

import io
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.cell_stats import potential_per_cell, refresh_cell_stats, totals_frame
from geodata.grids import build_locator, get_grid, grid_locator, load_cells, load_villages
from geodata.pgcopy import encode_binary_chunks
from geodata.sliced_read import read_slices
from grid.totals import cell_totals

ProgressFn = Callable[[float, str], None]
UNPLACED_SAMPLE = 50
# The statistics live in geodata.cell_stats; still reachable here (refresh, the batch mode).
__all__ = ["HOW", "assign_customers", "assignment_staleness", "fetch_customers", "locate_customers",
           "new_partition", "potential_per_cell", "refresh_cell_stats", "swap_partition", "unplaced_customers",
           "village_index"]
# customer_cell.how: placed by point or by village code, or why not placed.
HOW = ("point", "village", "outside", "no_location")


# Rows of the assignment encoded per chunk, in a thread, while the previous chunk is stored.
WRITE_CHUNK = 1_000_000

# Connections reading a county's customers at once (geodata.assign.fetch_customers).
READERS = 2

# Advisory lock class ('as') held by an assignment of grid G as (ASSIGN_LOCK_CLASS, G) until it commits.
ASSIGN_LOCK_CLASS = 0x6173


def _raw(conn: Connection):
    return conn.connection.dbapi_connection


_READ = ("SELECT customer_id, ST_X(geom), ST_Y(geom), village_code, deposit_balance, loan_balance FROM customer"
         " WHERE county_code = %s AND coalesce(legal_entity_id = (SELECT legal_entity_id FROM county WHERE adcode = %s), true)"
         " AND (%s = 1 OR (hashtext(customer_id) & 2147483647) %% %s = %s)")
_TYPES = {"customer_id": pa.large_string(), "lon": pa.float64(), "lat": pa.float64(), "village_code": pa.large_string(),
          "deposit_cents": pa.decimal128(18, 2), "loan_cents": pa.decimal128(18, 2)}


def fetch_customers(conn: Connection, *, county_code: str, part: int = 0, parts: int = 1,
                    readers: int = 1) -> pd.DataFrame:
    """customer_id, lon, lat, village_code, deposit_cents, loan_cents of every customer of a county (COPY, fast).

    With ``parts`` > 1, only hash slice ``part`` of ``parts`` (the batch mode's partitions of a big county).
    Customers of another legal entity than the county's are left out: their
    figures must not reach this legal entity's cells. The two text columns
    stay Arrow-backed: no Python string per customer. Balances are exact integer
    cents (read as decimals, never as floats), so per-cell sums match SQL's.

    ``readers`` > 1: the table is read in that many ranges of its pages at once, each over a connection
    of its own, all sharing one exported snapshot, so the server scans and formats on several cores; the
    rows are the same as one read's (``geodata.sliced_read.read_slices``, which says when it falls back).

    CSV parsed by Arrow, not binary COPY, measured with 10M customers: binary rows with text fields
    cannot be split without a loop over rows, so they must be made fixed-width on the server (padded
    text, cents as int8), which cost the server 21.8 CPU seconds instead of 12.6; or collected one
    protocol message per row (psycopg2 calls ``write`` for each) and split with numpy: 31 CPU seconds
    in the client instead of the 11 of reading and parsing the CSV (docs/grids.md).
    """
    with _raw(conn).cursor() as cur:
        inner = cur.mogrify(_READ, (county_code, county_code, parts, parts, part)).decode()
    buffers = read_slices(conn, inner, table="customer", readers=readers) if readers > 1 else None
    if buffers is None:
        buf = io.BytesIO()
        with _raw(conn).cursor() as cur:
            cur.copy_expert(f"COPY ({inner}) TO STDOUT WITH (FORMAT csv)", buf)
        buffers = [buf]
    tables = [_parse(b) for b in buffers]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    return pd.DataFrame({
        "customer_id": _arrow_text(table["customer_id"].combine_chunks()),
        "lon": table["lon"].to_numpy(), "lat": table["lat"].to_numpy(),
        "village_code": _arrow_text(table["village_code"].combine_chunks()),
        "deposit_cents": _cents(table["deposit_cents"]), "loan_cents": _cents(table["loan_cents"]),
    })


def _parse(buf: io.BytesIO) -> pa.Table:
    buf.seek(0)
    if buf.getbuffer().nbytes == 0:
        return pa.table({k: pa.array([], type=t) for k, t in _TYPES.items()})
    return pacsv.read_csv(buf, read_options=pacsv.ReadOptions(column_names=list(_TYPES)),
                          convert_options=pacsv.ConvertOptions(column_types=_TYPES))


def _cents(col: pa.ChunkedArray) -> np.ndarray:
    """Integer cents of a decimal(18, 2) column: the low half of each 128-bit unscaled value."""
    a = col.combine_chunks()
    if a.null_count:
        raise ValueError("a balance is NULL")
    words = np.frombuffer(a.buffers()[1], dtype="<i8", count=2 * (a.offset + len(a)))
    return words[2 * a.offset::2].copy()


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
    return pd.DataFrame({"customer_id": customers["customer_id"].reset_index(drop=True),
                         "cell_id": pd.Categorical.from_codes(np.where(idx >= 0, idx, -1), categories=pd.Index(ids)),
                         "how": pd.Categorical.from_codes(how, categories=HOW), "cell_index": idx})


def _arrow_text(a: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(a), dtype=pd.ArrowDtype(pa.large_string()))


def new_partition(conn: Connection, grid_id: int) -> str:
    """Create the empty table that becomes grid ``grid_id``'s assignment partition; returns its name.

    Fill it, then :func:`swap_partition` (same transaction)."""
    gid = int(grid_id)  # identifiers below are built from this integer only
    new = f"customer_cell_g{gid}_new"
    # Partition DDL on customer_cell, one transaction at a time (whatever the grid): the new table is
    # made LIKE customer_cell (a share lock held to commit) and the swap then needs customer_cell
    # exclusively (DETACH). Two swaps each holding the share lock while waiting for the exclusive one
    # deadlocked; SHARE UPDATE EXCLUSIVE conflicts with itself, not with readers, so the second waits here.
    conn.execute(text("LOCK TABLE customer_cell IN SHARE UPDATE EXCLUSIVE MODE"))
    conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
    # The CHECK matching the partition bound lets ATTACH skip its scan; declared up front it is
    # checked row by row during COPY instead of by a second pass over the table.
    conn.execute(text(f"CREATE TABLE {new} (LIKE customer_cell INCLUDING DEFAULTS, "
                      f"CONSTRAINT {new}_grid CHECK (grid_id = {gid}))"))
    return new


def _write_partition(conn: Connection, grid_id: int, placed: pd.DataFrame) -> None:
    gid = int(grid_id)
    new = new_partition(conn, gid)
    # Binary COPY: the server parses no text; cell ids and reasons travel as Arrow dictionaries,
    # not as a Python string per row.
    code = placed["cell_index"].to_numpy(dtype=np.int64)  # from locate_customers
    n = len(code)
    # Distinct cells, each named by its first row; ranked by cell id (byte order, as the C collation).
    first = np.full(code.max(initial=-1) + 1, n, dtype=np.int64)
    rows = np.flatnonzero(code >= 0)[::-1]
    first[code[rows]] = rows  # written last to first: each cell keeps its first row
    used = np.flatnonzero(first < n)
    cell_ids = placed["cell_id"].iloc[first[used]].to_numpy(dtype=object)
    by_id = np.argsort(np.array([c.encode() for c in cell_ids], dtype=object), kind="stable")
    cell_ids = cell_ids[by_id]
    rank = np.full(len(first) + 1, len(used), dtype=np.int64)  # the last slot: unplaced rows, sorted last
    rank[used[by_id]] = np.arange(len(used))
    key = rank[np.where(code < 0, len(first), code)]
    # Rows go in cell id order, so each cell's customers sit together (per-cell reads touch few pages,
    # and a BRIN index finds them); a 16-bit key sorts by radix, in linear time.
    order = np.argsort(key.astype(np.uint16) if len(used) < 2**16 else key, kind="stable")
    cells = key[order].astype(np.int32)
    cells[cells == len(used)] = -1
    how = pd.Categorical(placed["how"])
    ids = pa.array(placed["customer_id"], type=pa.large_string())
    names = pa.array(list(cell_ids), type=pa.large_string())
    reasons = pa.array(list(how.categories), type=pa.large_string())
    how_codes = how.codes.astype(np.int32)

    def chunks():  # run by the encoding thread, a chunk ahead of the COPY
        for start in range(0, max(n, 1), WRITE_CHUNK):
            part, c = order[start:start + WRITE_CHUNK], cells[start:start + WRITE_CHUNK]
            yield pd.DataFrame({
                "grid_id": np.full(len(part), gid, dtype=np.int32),
                "customer_id": _arrow_text(pc.take(ids, pa.array(part))),
                "cell_id": _arrow_text(pa.DictionaryArray.from_arrays(pa.array(c, mask=c < 0), names)
                                       .cast(pa.large_string())),
                "how": _arrow_text(pa.DictionaryArray.from_arrays(pa.array(how_codes[part]), reasons)
                                   .cast(pa.large_string())),
            })

    if n:  # a county without customers gets an empty partition
        stream, cols = encode_binary_chunks(chunks(), ["int4", "text", "text", "text"])
        try:
            with _raw(conn).cursor() as cur:
                cur.copy_expert(f"COPY {new} ({', '.join(cols)}) FROM STDIN WITH (FORMAT binary, FREEZE)",
                                stream, size=8 << 20)
        except Exception:
            if stream.error is not None:  # the encoding failed, not the server: say what it was
                raise stream.error from None
            raise
        finally:
            stream.close()
    swap_partition(conn, gid)


def swap_partition(conn: Connection, grid_id: int) -> None:
    """Index the filled :func:`new_partition` table (rows in cell id order) and swap it in for the grid's."""
    gid = int(grid_id)
    new, final = f"customer_cell_g{gid}_new", f"customer_cell_g{gid}"
    conn.execute(text(f"CREATE UNIQUE INDEX {new}_customer ON {new} (customer_id)"))
    # Rows are stored in cell id order: a BRIN index (block ranges) is exact enough and costs nothing.
    conn.execute(text(f"CREATE INDEX {new}_cell ON {new} USING brin (cell_id) WITH (pages_per_range = 8)"))
    exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": final}).scalar()
    if exists:
        conn.execute(text(f"ALTER TABLE customer_cell DETACH PARTITION {final}"))
        conn.execute(text(f"DROP TABLE {final}"))
    conn.execute(text(f"ALTER TABLE {new} RENAME TO {final}"))
    conn.execute(text(f"ALTER TABLE {final} RENAME CONSTRAINT {new}_grid TO {final}_grid"))
    conn.execute(text(f"ALTER INDEX {new}_customer RENAME TO {final}_customer"))
    conn.execute(text(f"ALTER INDEX {new}_cell RENAME TO {final}_cell"))
    conn.execute(text(f"ALTER TABLE customer_cell ATTACH PARTITION {final} FOR VALUES IN ({gid})"))


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
    _write_partition(conn, grid_id, placed)
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
