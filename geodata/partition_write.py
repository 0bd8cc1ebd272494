"""Writing a grid's ``customer_cell`` partition: a fresh table filled by binary COPY and swapped in.

A big county's partition is written in two halves at once, each over a connection of its own, so that
the server's COPY and index builds run on two cores (one connection is one server process): the halves
are ranges of the customer id, committed as plain tables by their writers and attached, as the range
partitions of the grid's partition, in the assignment's own transaction. Until that transaction commits
nobody reads them; if it never does, they are dropped (at once, or by the grid's next assignment).
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

from geodata import tables
from geodata.customer_read import arrow_text
from geodata.pgcopy import encode_binary_chunks
from geodata.sliced_read import can_open_connections

# Rows of the assignment encoded per chunk, in a thread, while the previous chunk is stored.
WRITE_CHUNK = 1_000_000
# From this many customers on, the partition is written in two halves over two more connections.
SPLIT_ROWS = 2_000_000
_COLUMNS = ["int4", "text", "text", "text"]


def new_partition(conn: Connection, grid_id: int) -> str:
    """Create the empty table that becomes grid ``grid_id``'s assignment partition; returns its name.

    Fill it, then :func:`swap_partition` (same transaction)."""
    gid = int(grid_id)  # identifiers below are built from this integer only
    new = f"customer_cell_g{gid}_new"
    _lock(conn)
    # With the halves a killed two-halves write may have left (committed, never attached).
    conn.execute(text(f"DROP TABLE IF EXISTS {', '.join([new, *_halves(gid)])}"))
    # The CHECK matching the partition bound lets ATTACH skip its scan; declared up front it is
    # checked row by row during COPY instead of by a second pass over the table.
    conn.execute(text(f"CREATE TABLE {new} (LIKE customer_cell INCLUDING DEFAULTS, "
                      f"CONSTRAINT {new}_grid CHECK (grid_id = {gid}))"))
    return new


def _lock(conn: Connection) -> None:
    # Partition DDL on customer_cell, one transaction at a time (whatever the grid): the new table is
    # made LIKE customer_cell (a share lock held to commit) and the swap then needs customer_cell
    # exclusively (DETACH). Two swaps each holding the share lock while waiting for the exclusive one
    # deadlocked; SHARE UPDATE EXCLUSIVE conflicts with itself, not with readers, so the second waits here.
    conn.execute(text("LOCK TABLE customer_cell IN SHARE UPDATE EXCLUSIVE MODE"))


def swap_partition(conn: Connection, grid_id: int) -> None:
    """Index the filled :func:`new_partition` table (rows in cell id order) and swap it in for the grid's."""
    gid = int(grid_id)
    new = f"customer_cell_g{gid}_new"
    _index(conn.execute, new)
    _attach(conn, gid, indexed=True)


def _index(execute, table: str) -> None:
    execute(text(f"CREATE UNIQUE INDEX {table}_customer ON {table} (customer_id)"))
    # Rows are stored in cell id order: a BRIN index (block ranges) is exact enough and costs nothing.
    execute(text(f"CREATE INDEX {table}_cell ON {table} USING brin (cell_id) WITH (pages_per_range = 8)"))


def _attach(conn: Connection, gid: int, *, indexed: bool) -> None:
    new, final = f"customer_cell_g{gid}_new", f"customer_cell_g{gid}"
    exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": final}).scalar()
    if exists:
        conn.execute(text(f"ALTER TABLE customer_cell DETACH PARTITION {final}"))
        conn.execute(text(f"DROP TABLE {final}"))  # with its halves, if it has any
    conn.execute(text(f"ALTER TABLE {new} RENAME TO {final}"))
    if indexed:
        conn.execute(text(f"ALTER TABLE {final} RENAME CONSTRAINT {new}_grid TO {final}_grid"))
        conn.execute(text(f"ALTER INDEX {new}_customer RENAME TO {final}_customer"))
        conn.execute(text(f"ALTER INDEX {new}_cell RENAME TO {final}_cell"))
    conn.execute(text(f"ALTER TABLE customer_cell ATTACH PARTITION {final} FOR VALUES IN ({gid})"))


def write_partition(conn: Connection, grid_id: int, placed: pd.DataFrame) -> None:
    """Store ``placed`` (``geodata.assign.locate_customers``) as grid ``grid_id``'s partition, rows in
    cell id order (unplaced last), in the caller's transaction."""
    gid = int(grid_id)
    code = placed["cell_index"].to_numpy(dtype=np.int64)
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
    cells = key.astype(np.int32)
    cells[cells == len(used)] = -1
    how = pd.Categorical(placed["how"])
    rows_of = _Rows(gid, pa.array(placed["customer_id"], type=pa.large_string()),
                    pa.array(list(cell_ids), type=pa.large_string()), cells,
                    pa.array(list(how.categories), type=pa.large_string()), how.codes.astype(np.int32))
    if n >= SPLIT_ROWS and can_open_connections(conn.engine):
        _write_halves(conn, gid, rows_of, order)
        return
    new = new_partition(conn, gid)
    if n:  # a county without customers gets an empty partition
        _copy(conn.connection.dbapi_connection, new, rows_of, order)
    swap_partition(conn, gid)


class _Rows:
    """The partition's rows, encoded a chunk at a time in the order given (Arrow text, no string per row)."""

    def __init__(self, gid, ids, names, cells, reasons, how_codes):
        self.gid, self.ids, self.names, self.cells = gid, ids, names, cells
        self.reasons, self.how_codes = reasons, how_codes

    def chunks(self, order: np.ndarray):
        for start in range(0, max(len(order), 1), WRITE_CHUNK):
            part = order[start:start + WRITE_CHUNK]
            c = self.cells[part]
            yield pd.DataFrame({
                "grid_id": np.full(len(part), self.gid, dtype=np.int32),
                "customer_id": arrow_text(pc.take(self.ids, pa.array(part))),
                "cell_id": arrow_text(pa.DictionaryArray.from_arrays(pa.array(c, mask=c < 0), self.names)
                                       .cast(pa.large_string())),
                "how": arrow_text(pa.DictionaryArray.from_arrays(pa.array(self.how_codes[part]), self.reasons)
                                   .cast(pa.large_string())),
            })


def _copy(raw, table: str, rows: _Rows, order: np.ndarray) -> None:
    """Binary COPY of ``rows`` in ``order`` into ``table`` (created in this transaction: FREEZE)."""
    stream, cols = encode_binary_chunks(rows.chunks(order), _COLUMNS)
    try:
        with raw.cursor() as cur:
            cur.copy_expert(f"COPY {table} ({', '.join(cols)}) FROM STDIN WITH (FORMAT binary, FREEZE)",
                            stream, size=8 << 20)
    except Exception:
        if stream.error is not None:  # the encoding failed, not the server: say what it was
            raise stream.error from None
        raise
    finally:
        stream.close()


def _halves(gid: int) -> list[str]:
    return [f"customer_cell_g{gid}_new_{i}" for i in range(2)]


def _write_halves(conn: Connection, gid: int, rows: _Rows, order: np.ndarray) -> None:
    """The partition as two ranges of customer id, each filled and indexed by a connection of its own
    (committed, not yet attached), then attached here and swapped in."""
    _lock(conn)
    ids = rows.ids
    # Split at the median id of a sample, by byte order: the range bound is COLLATE "C" whatever the
    # database's default, so rows and bound agree (reads by customer id still use each half's index).
    sample = pc.take(ids, pa.array(np.linspace(0, len(ids) - 1, num=min(len(ids), 10_001), dtype=np.int64)))
    split = pc.take(sample, pc.sort_indices(sample))[len(sample) // 2].as_py()
    low = np.asarray(pc.less(ids, pa.scalar(split, pa.large_string())), dtype=bool)[order]
    parts = [order[low], order[~low]]
    names = _halves(gid)
    bound = conn.execute(text("SELECT quote_literal(CAST(:s AS text))"), {"s": split}).scalar()
    checks = [f'(customer_id COLLATE "C") < {bound}', f'(customer_id COLLATE "C") >= {bound}']
    columns = ", ".join(str(CreateColumn(c).compile(dialect=conn.dialect)) for c in tables.customer_cell.columns)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        raw = conn.engine.raw_connection()
        try:
            with raw.cursor() as cur:
                # One core each: both halves are built at once.
                cur.execute("SET LOCAL max_parallel_maintenance_workers = 0")
                # Nothing here waits for a lock in normal work; a wait (a lock the assignment's own
                # transaction holds, which waits for this thread) ends as an error, not a hang.
                cur.execute("SET LOCAL lock_timeout = '30s'")
                cur.execute(f"DROP TABLE IF EXISTS {names[i]}")
                # Columns spelt out, not LIKE customer_cell: the assignment's transaction may hold
                # customer_cell exclusively (a caller that swapped another grid's partition before this
                # one in the same transaction).
                cur.execute(f"CREATE TABLE {names[i]} ({columns},"
                            f" CONSTRAINT {names[i]}_grid CHECK (grid_id = {gid}),"
                            f" CONSTRAINT {names[i]}_key CHECK ({checks[i]}))")
            _copy(raw, names[i], rows, parts[i])
            with raw.cursor() as cur:
                _index(lambda q: cur.execute(q.text), names[i])
            raw.commit()
        except BaseException as exc:  # raised again in the assignment's thread
            errors.append(exc)
            with contextlib.suppress(Exception):
                raw.rollback()
        finally:
            raw.close()

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            raise errors[0]
        new = f"customer_cell_g{gid}_new"
        conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
        conn.execute(text(f"CREATE TABLE {new} (LIKE customer_cell INCLUDING DEFAULTS)"
                          ' PARTITION BY RANGE ((customer_id COLLATE "C"))'))
        conn.execute(text(f"ALTER TABLE {new} ATTACH PARTITION {names[0]} FOR VALUES FROM (MINVALUE) TO ({bound})"))
        conn.execute(text(f"ALTER TABLE {new} ATTACH PARTITION {names[1]} FOR VALUES FROM ({bound}) TO (MAXVALUE)"))
        _attach(conn, gid, indexed=False)
        for i, name in enumerate(names):  # the halves' final names: a later write's halves are free to take theirs
            conn.execute(text(f"ALTER TABLE {name} RENAME TO customer_cell_g{gid}_{i}"))
            conn.execute(text(f"ALTER INDEX {name}_customer RENAME TO customer_cell_g{gid}_{i}_customer"))
            conn.execute(text(f"ALTER INDEX {name}_cell RENAME TO customer_cell_g{gid}_{i}_cell"))
    except BaseException:
        drop_halves(conn.engine, gid)
        raise


def drop_halves(engine, gid: int) -> None:
    """Drop the committed halves of a write that will not be attached (best effort: the grid's next
    assignment drops them anyway)."""
    with contextlib.suppress(Exception):
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.execute("SET LOCAL lock_timeout = '2s'")
                for name in _halves(int(gid)):
                    cur.execute(f"DROP TABLE IF EXISTS {name}")
            raw.commit()
        finally:
            raw.close()
