"""The database side of a batch assignment: which grids, what each worker needs to place points, the
staging tables the workers COPY placed rows into, and each county's write-back in its own transaction.

Staging tables are ``batch_<token>_g<grid id>`` (UNLOGGED, one per grid, so a county's write-back
reads only its own rows); ``token`` is made here (hex) and checked, never taken from a user.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from geodata import liveness
from geodata.assign import (
    ASSIGN_LOCK_CLASS,
    HOW,
    placement_frame,
    refresh_cell_stats,
    village_index,
)
from geodata.customer_read import ROWS_PER_RANGE, Fields, arrow_text, read_text_pair, text_pair_sql
from geodata.errors import BadInput
from geodata.grids import get_grid, grid_locator, load_cells, load_villages, locator_from_bytes
from geodata.partition_write import piece_bounds, sorted_rows, write_partition, write_pieces
from geodata.pgcopy import encode_binary
from geodata.sliced_read import can_open_connections, read_ranges_raw

_TOKEN = re.compile(r"^[0-9a-f]{8,32}$")
_STAGE = re.compile(r"^batch_[0-9a-f]{8,32}_g[0-9]+$")  # a staging table's name (staging_name)
# A county with more staged rows than this is written back in pieces (ranges of customer id) of about this
# many rows, read from staging one at a time, at most two at once: what a worker holds in the write-back
# does not grow with the county (docs/batch.md).
PIECE_ROWS = 1_000_000
# Rows of a piece encoded for its COPY at a time: 1M-row pieces in chunks of 250,000 took a third less
# memory than in one chunk, and no more time (bench/bench_write_back.py, docs/batch.md).
PIECE_CHUNK = 250_000
# Staged ids sampled (SQL, TABLESAMPLE) for the pieces' split points.
SAMPLE_ROWS = 50_000


@dataclass
class GridBundle:
    """What a worker needs to place one grid's customers, exactly as ``gridmkt assign customers`` does."""

    grid_id: int
    county_code: str
    kind: str
    cells: pd.DataFrame
    villages: pd.DataFrame
    lookup: bytes  # the grid's stored point lookup (``grid_locator``), opened once per worker
    legal_entity: str | None = None  # the county's legal entity code (rows of another are left out)
    _locator: object = field(default=None, repr=False, compare=False)
    _villages: dict | None = field(default=None, repr=False, compare=False)

    def locator(self):
        """The lookup, opened on first use in this process and kept (the bundle is shipped once per worker)."""
        if self._locator is None:
            self._locator = locator_from_bytes(self.kind, self.cells, self.lookup)
        return self._locator

    def villages_to_cells(self) -> dict[str, int]:
        """``geodata.assign.village_index`` of the grid, computed on first use in this process and kept."""
        if self._villages is None:
            self._villages = village_index(self.kind, self.cells, self.villages, self.locator())
        return self._villages

    def __getstate__(self):
        return {**self.__dict__, "_locator": None, "_villages": None}


def target_grids(conn: Connection, *, grid_ids: list[int] | None = None, kind: str | None = None) -> list[dict]:
    """The grids to assign: ``grid_ids``, else the newest grid of every county that has one (of ``kind``)."""
    if grid_ids:
        return [get_grid(conn, grid_id=int(g)) for g in grid_ids]
    if kind is not None and kind not in ("h3", "village"):
        raise BadInput(f"unknown grid kind {kind!r}; use h3 or village")
    rows = conn.execute(text(
        "SELECT DISTINCT ON (county_code) id FROM grid WHERE (CAST(:k AS text) IS NULL OR kind = :k)"
        " ORDER BY county_code, id DESC"), {"k": kind}).scalars().all()
    return [get_grid(conn, grid_id=g) for g in rows]


def bundle(conn: Connection, grid: dict) -> GridBundle:
    """Cells, villages and the stored lookup of ``grid`` (built and stored now if it has none)."""
    gid = int(grid["id"])
    cells = load_cells(conn, grid_id=gid, with_stats=False)
    grid_locator(conn, grid_id=gid, kind=grid["kind"], cells=cells)
    data = conn.execute(text("SELECT data FROM grid_lookup WHERE grid_id = :g"), {"g": gid}).scalar()
    le = conn.execute(text("SELECT l.code FROM county c JOIN legal_entity l ON l.id = c.legal_entity_id"
                           " WHERE c.adcode = :c"), {"c": grid["county_code"]}).scalar()
    return GridBundle(grid_id=gid, county_code=grid["county_code"], kind=grid["kind"], cells=cells,
                      villages=load_villages(conn, county_code=grid["county_code"]), lookup=bytes(data),
                      legal_entity=le)


def staging_name(token: str, grid_id: int) -> str:
    if not _TOKEN.match(token):
        raise ValueError(f"bad batch token {token!r}")
    return f"batch_{token}_g{int(grid_id)}"


def create_staging(conn: Connection, *, token: str, grid_ids: list[int]) -> None:
    """One empty UNLOGGED staging table per grid (dropped by :func:`drop_staging`)."""
    for gid in grid_ids:
        name = staging_name(token, gid)
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        conn.execute(text(f"CREATE UNLOGGED TABLE {name} (LIKE customer_cell INCLUDING DEFAULTS)"))


def owner_key(token: str) -> str:
    """The liveness key a running batch holds (``liveness.hold_job``) while its staging tables exist."""
    staging_name(token, 0)  # checks the token
    return f"batch-{token}"


def drop_stale_staging(conn: Connection) -> list[str]:
    """Drop the staging tables of batches whose process is gone (killed mid-run); returns their names.

    A live batch holds its :func:`owner_key` lock, so a try-lock on it fails and its tables stay."""
    names = conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename ~ :pattern"
        " AND pg_try_advisory_xact_lock(:c, hashtext('batch-' || split_part(tablename, '_', 2)))"),
        {"c": liveness.JOB_LOCK_CLASS, "pattern": _STAGE.pattern}).scalars().all()
    for name in names:
        if _STAGE.match(name):  # identifiers from the pattern only
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    return list(names)


def drop_staging(engine: Engine, *, token: str, grid_ids: list[int]) -> None:
    with engine.begin() as conn:
        for gid in grid_ids:
            conn.execute(text(f"DROP TABLE IF EXISTS {staging_name(token, gid)}"))


def stage_placed(raw, *, token: str, grid_id: int, placed: pd.DataFrame) -> None:
    """COPY (binary) one partition's placed rows (``locate_customers`` output) into the grid's staging table,
    on the DB-API connection ``raw`` (the caller commits). Cell ids and reasons travel as Arrow
    dictionaries over their categories, not as a Python string per row."""
    if not len(placed):
        return
    cell, how = placed["cell_id"].array, placed["how"].array  # categoricals (locate_customers)
    frame = pd.DataFrame({
        "grid_id": np.full(len(placed), int(grid_id), dtype=np.int32),
        "customer_id": placed["customer_id"].reset_index(drop=True),
        "cell_id": _dict_text(cell.codes, cell.categories),
        "how": _dict_text(how.codes, how.categories),
    })
    stream, cols = encode_binary(frame, ["int4", "text", "text", "text"])
    with raw.cursor() as cur:
        cur.copy_expert(f"COPY {staging_name(token, grid_id)} ({', '.join(cols)}) FROM STDIN WITH (FORMAT binary)",
                        stream, size=8 << 20)


def _dict_text(codes: np.ndarray, categories) -> pd.Series:
    """Arrow-backed text of categorical ``codes`` (-1: NULL)."""
    codes = np.asarray(codes, dtype=np.int32)
    a = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0),
                                       pa.array(list(categories), type=pa.large_string()))
    return pd.Series(pd.arrays.ArrowExtensionArray(a.cast(pa.large_string())), dtype=pd.ArrowDtype(pa.large_string()))


def write_back(engine: Engine, *, token: str, grid: GridBundle, totals: pd.DataFrame, how: dict[str, int],
               as_of: str | None = None) -> dict:
    """One county's assignment from its staging table, in one transaction: the grid's partition swapped in
    (rows in cell id order), cell statistics from the summed ``totals``, ``assigned_at`` set.

    ``grid``: the shipped bundle (its cells serve the statistics, not read again); ``how``: the summed
    counts per reason of the partitions' placements. The staged rows are read back as columns, sorted
    here and written by binary COPY FREEZE, as ``gridmkt assign customers`` writes (``geodata.partition_write``):
    building the partition in SQL (``INSERT … SELECT … ORDER BY cell_id``) cost the database half as much
    CPU again (docs/batch.md). A county of more than ``PIECE_ROWS`` staged rows is read, sorted and written
    in pieces of at most about that many (ranges of customer id), two at a time over two connections, so
    this process holds at most two pieces, whatever the county's size."""
    gid = int(grid.grid_id)
    stage = staging_name(token, gid)
    staged = int(sum(how.values()))  # every placed row is staged, whatever its reason
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:c, :g)"), {"c": ASSIGN_LOCK_CLASS, "g": gid})
        if staged > PIECE_ROWS and can_open_connections(engine):
            bounds = staged_bounds(conn, stage=stage, rows=staged, pieces=math.ceil(staged / PIECE_ROWS))
            ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
            write_pieces(conn, gid, bounds, lambda i, raw: sorted_rows(
                gid, read_staged(raw, stage=stage, cells=grid.cells, low=ranges[i][0], high=ranges[i][1])),
                chunk=PIECE_CHUNK)
        else:
            write_partition(conn, gid, read_staged(conn.connection.dbapi_connection, stage=stage, cells=grid.cells))
        stats = refresh_cell_stats(conn, grid_id=gid, as_of=as_of, totals=totals, cells=grid.cells)
        conn.execute(text("UPDATE grid SET assigned_at = now() WHERE id = :g"), {"g": gid})
    return {"grid_id": gid, "customers": staged, **{h: int(how.get(h, 0)) for h in HOW}, "stats": stats}


def staged_bounds(conn: Connection, *, stage: str, rows: int, pieces: int) -> list[str]:
    """``pieces - 1`` split points of the staged customer ids (byte order) cutting ``stage`` (``rows`` rows)
    into ranges of about equal rows: quantiles of a sample of about ``SAMPLE_ROWS`` ids drawn by the
    database (pages at random, TABLESAMPLE SYSTEM), not every id read here."""
    if not _STAGE.match(stage):
        raise ValueError(f"bad staging table {stage!r}")
    q = [i / pieces for i in range(1, pieces)]
    sql = (f"SELECT percentile_disc(CAST(:q AS float8[])) WITHIN GROUP (ORDER BY customer_id COLLATE \"C\")"
           f" FROM {stage} TABLESAMPLE SYSTEM (:pct) REPEATABLE (19)")
    pct = min(100.0, 100.0 * SAMPLE_ROWS / max(rows, 1))
    found = conn.execute(text(sql), {"q": q, "pct": pct}).scalar()
    if found is None and pct < 100:  # no page drawn: a table much smaller than ``rows`` said
        found = conn.execute(text(sql), {"q": q, "pct": 100.0}).scalar()
    return piece_bounds(found or [])


# A staging table read as one row of columns per range (as geodata.customer_read reads customers): the
# ids and cell ids concatenated with one int4 of both lengths per row (65535: no cell), the reason as its
# position in HOW.
_STAGED = ("SELECT " + text_pair_sql("customer_id", "cell_id") + ","
           " array_agg(array_position(CAST(%(how)s AS text[]), CAST(how AS text)) - 1) FROM {table} WHERE true")


def read_staged(raw, *, stage: str, cells: pd.DataFrame, low: str | None = None,
                high: str | None = None) -> pd.DataFrame:
    """The staged rows of one grid as ``geodata.assign.locate_customers`` returns them (customer_id, cell_id
    and how as categoricals, cell_index: the row in ``cells``, -1 for none), read on the DB-API connection
    ``raw``; with ``low``/``high``, only the customer ids from ``low`` (included) to ``high`` (excluded),
    in byte order."""
    if not _STAGE.match(stage):
        raise ValueError(f"bad staging table {stage!r}")
    where = "".join([' AND customer_id COLLATE "C" >= %(low)s' if low is not None else "",
                     ' AND customer_id COLLATE "C" < %(high)s' if high is not None else ""])
    args = {"how": list(HOW), "low": low, "high": high}
    with raw.cursor() as cur:
        inner = cur.mogrify(_STAGED.format(table=stage) + where, args).decode()
        selected = cur.mogrify(f"SELECT 1 FROM {stage} WHERE true{where}", args).decode()
    pieces = read_ranges_raw(raw, inner, table=stage, fmt="binary", decode=_decode_staged,
                             rows_per_range=ROWS_PER_RANGE, selected=selected)
    ids = pa.concat_arrays([p[0] for p in pieces])
    cell_text = pa.concat_arrays([p[1] for p in pieces])
    how = np.concatenate([p[2] for p in pieces]).astype(np.int8)
    names = cells["cell_id"].to_numpy().astype(object)
    at = pc.index_in(cell_text, value_set=pa.array(list(names), type=pa.large_string()))
    if at.null_count != cell_text.null_count:
        raise ValueError(f"{stage}: a staged cell id is not a cell of the grid")
    idx = np.asarray(pc.fill_null(at, -1), dtype=np.int64)
    if (how < 0).any():
        raise ValueError(f"{stage}: a staged reason is not one of {HOW}")
    return placement_frame(arrow_text(ids), idx, how, names)


def _decode_staged(data: bytes) -> tuple[pa.Array, pa.Array, np.ndarray]:
    f = Fields(data)
    if f.count != 4:
        raise ValueError("unexpected row in a staging table's read")
    ids, cell_ids = read_text_pair(f)
    return ids, cell_ids, f.array(4, "i4")
