"""Writing a grid's ``customer_cell`` partition: a fresh table filled by binary COPY and swapped in.

A big county's partition is written in pieces, ranges of the customer id (byte order), each filled and
indexed by one of two connections of its own, so that the server's COPY and index builds run on two cores
(one connection is one server process) and a writer holds one piece in memory at a time: the pieces are
committed as plain tables by their writers and attached, as the range partitions of the grid's partition,
in the assignment's own transaction. Until that transaction commits nobody reads them; if it never does,
they are dropped (at once, or by the grid's next assignment, found by name however many there are).
``gridmkt assign customers`` (the county in memory) writes two pieces from ``SPLIT_ROWS`` customers on;
a batch write-back reads and writes a big county's staged rows a piece at a time (``geodata.batch.store``).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from typing import Any

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
# From this many customers on, the partition is written in two pieces (halves) over two more connections.
SPLIT_ROWS = 2_000_000
# Connections writing pieces at once: each holds the piece it writes in memory, no more.
WRITERS = 2
_COLUMNS = ["int4", "text", "text", "text"]


def new_partition(conn: Connection, grid_id: int) -> str:
    """Create the empty table that becomes grid ``grid_id``'s assignment partition; returns its name.

    Fill it, then :func:`swap_partition` (same transaction)."""
    gid = int(grid_id)  # identifiers below are built from this integer only
    new = f"customer_cell_g{gid}_new"
    _lock(conn)
    # With the pieces a killed pieced write may have left (committed, never attached).
    conn.execute(text(f"DROP TABLE IF EXISTS {', '.join([new, *_leftover_pieces(conn, gid)])}"))
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
        conn.execute(text(f"DROP TABLE {final}"))  # with its pieces, if it has any
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
    rows_of, order = sorted_rows(gid, placed)
    if len(order) >= SPLIT_ROWS and can_open_connections(conn.engine):
        write_pieces(conn, gid, *in_memory_pieces(rows_of, order, 2))
        return
    new = new_partition(conn, gid)
    if len(order):  # a county without customers gets an empty partition
        _copy(conn.connection.dbapi_connection, new, rows_of, order)
    swap_partition(conn, gid)


def sorted_rows(gid: int, placed: pd.DataFrame) -> tuple[_Rows, np.ndarray]:
    """``placed``'s rows for grid ``gid``'s partition and the order to write them in: cell id order
    (byte order), unplaced last."""
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
    return rows_of, order


class _Rows:
    """The partition's rows, encoded a chunk at a time in the order given (Arrow text, no string per row)."""

    def __init__(self, gid, ids, names, cells, reasons, how_codes):
        self.gid, self.ids, self.names, self.cells = gid, ids, names, cells
        self.reasons, self.how_codes = reasons, how_codes

    def chunks(self, order: np.ndarray, size: int | None = None):
        size = size or WRITE_CHUNK
        for start in range(0, max(len(order), 1), size):
            part = order[start:start + size]
            c = self.cells[part]
            yield pd.DataFrame({
                "grid_id": np.full(len(part), self.gid, dtype=np.int32),
                "customer_id": arrow_text(pc.take(self.ids, pa.array(part))),
                "cell_id": arrow_text(pa.DictionaryArray.from_arrays(pa.array(c, mask=c < 0), self.names)
                                       .cast(pa.large_string())),
                "how": arrow_text(pa.DictionaryArray.from_arrays(pa.array(self.how_codes[part]), self.reasons)
                                   .cast(pa.large_string())),
            })


def _copy(raw, table: str, rows: _Rows, order: np.ndarray, chunk: int | None = None) -> None:
    """Binary COPY of ``rows`` in ``order`` into ``table`` (created in this transaction: FREEZE), encoded
    ``chunk`` rows at a time (default ``WRITE_CHUNK``)."""
    stream, cols = encode_binary_chunks(rows.chunks(order, chunk), _COLUMNS)
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


def _new_piece(gid: int, i: int) -> str:
    return f"customer_cell_g{gid}_new_{int(i)}"


def _leftover_pieces(conn_or_cursor, gid: int) -> list[str]:
    """Tables named as a piece being written for grid ``gid`` (``customer_cell_g{gid}_new_{i}``): committed by
    writers whose write was never attached (a failure, a killed process), whatever their number."""
    # One pattern, matched in SQL and again here: the names are spelt into DROP TABLE.
    piece = re.compile(rf"^customer_cell_g{int(gid)}_new_[0-9]+$")
    sql = ("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ %(p)s"
           " AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) ORDER BY 1")
    args = {"p": piece.pattern}
    if isinstance(conn_or_cursor, Connection):
        names = conn_or_cursor.exec_driver_sql(sql, args).scalars().all()
    else:
        conn_or_cursor.execute(sql, args)
        names = [r[0] for r in conn_or_cursor.fetchall()]
    return [n for n in names if piece.match(n)]


def range_key(conn: Connection) -> str:
    """The expression the pieces of a grid's partition are ranges of: customer id in byte order.

    Where the database's default collation is byte order already (C or POSIX, as the embedded cluster's), the
    column itself, so that a lookup ``customer_id = ...`` prunes to the one piece that holds it (pruning
    needs the clause's collation to be the key's); else ``customer_id COLLATE "C"`` (a lookup then probes
    every piece's index, unless it says ``COLLATE "C"``)."""
    byte_order = conn.execute(text(
        "SELECT datcollate IN ('C', 'POSIX') AND coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c'"
        " FROM pg_database d WHERE datname = current_database()")).scalar()
    return "customer_id" if byte_order else '(customer_id COLLATE "C")'


# A piece: its rows and the order to write them in (``_Rows``, positions), made when its writer is ready for it.
Produce = Callable[[int, Any], tuple[_Rows, np.ndarray]]


def in_memory_pieces(rows: _Rows, order: np.ndarray, k: int) -> tuple[list[str], Produce]:
    """``rows`` (all in memory, in ``order``) cut into ``k`` ranges of customer id at quantiles of a sample
    of the ids, by byte order; returns the bounds and the pieces' producer for :func:`write_pieces`."""
    ids = rows.ids
    sample = pc.take(ids, pa.array(np.linspace(0, len(ids) - 1, num=min(len(ids), 10_001), dtype=np.int64)))
    sample = pc.take(sample, pc.sort_indices(sample))
    bounds = piece_bounds([sample[len(sample) * i // k].as_py() for i in range(1, k)])
    piece = np.zeros(len(ids), dtype=np.int64)
    for b in bounds:
        piece += np.asarray(pc.greater_equal(ids, pa.scalar(b, pa.large_string())), dtype=np.int64)
    piece = piece[order]
    return bounds, lambda i, raw: (rows, order[piece == i])


def piece_bounds(values) -> list[str]:
    """Split points for :func:`write_pieces`: distinct, in byte order (Python compares text by code point,
    which is UTF-8's byte order)."""
    return sorted({v for v in values if v is not None})


def write_pieces(conn: Connection, gid: int, bounds: list[str], produce: Produce, *,
                 chunk: int | None = None) -> None:
    """Grid ``gid``'s partition as ``len(bounds) + 1`` ranges of customer id (byte order; ``bounds`` sorted
    and distinct), each made by ``produce(i, raw)`` (``raw``: the writer's DB-API connection, free to read
    with before the piece is written), filled and indexed by one of at most ``WRITERS`` connections at a
    time (so at most that many pieces in memory) and committed unattached; then attached here as the range
    partitions of the grid's partition and swapped in. If anything fails, every piece is dropped and the
    previous assignment stays (the caller's transaction rolls back). ``chunk``: rows encoded at a time
    (default ``WRITE_CHUNK``; a writer holds up to four encoded chunks at once, see ``geodata.pgcopy``)."""
    gid = int(gid)
    key = range_key(conn)
    k = len(bounds) + 1
    quoted = [conn.execute(text("SELECT quote_literal(CAST(:s AS text))"), {"s": b}).scalar() for b in bounds]
    names = [_new_piece(gid, i) for i in range(k)]
    checks = [" AND ".join(([f"{key} >= {quoted[i - 1]}"] if i > 0 else [])
                           + ([f"{key} < {quoted[i]}"] if i < k - 1 else [f"{key} IS NOT NULL"])) for i in range(k)]
    columns = ", ".join(str(CreateColumn(c).compile(dialect=conn.dialect)) for c in tables.customer_cell.columns)
    drop_pieces(conn.engine, gid)  # a killed write's, however many (committed: not in this transaction)
    errors: list[BaseException] = []
    todo = iter(range(k))
    mutex = threading.Lock()

    def next_piece() -> int | None:
        with mutex:
            return None if errors else next(todo, None)

    def write() -> None:
        try:
            raw = conn.engine.raw_connection()
        except BaseException as exc:  # raised again in the assignment's thread
            errors.append(exc)
            return
        try:
            while (i := next_piece()) is not None:
                rows, order = produce(i, raw)
                raw.rollback()  # whatever the producer read: the write starts a transaction of its own
                with raw.cursor() as cur:
                    # One core each: the pieces are built at once.
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
                _copy(raw, names[i], rows, order, chunk)
                del rows, order  # the next piece is made only now: one piece in memory per writer
                with raw.cursor() as cur:
                    _index(lambda q: cur.execute(q.text), names[i])
                raw.commit()
        except BaseException as exc:  # raised again in the assignment's thread
            errors.append(exc)
            with contextlib.suppress(Exception):
                raw.rollback()
        finally:
            raw.close()

    threads = [threading.Thread(target=write, daemon=True) for _ in range(min(WRITERS, k))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            raise errors[0]
        # Only now, for the attach and swap: writing the pieces needs nothing of customer_cell, so several
        # grids' pieces are written while another grid's swap holds this lock (to its commit).
        _lock(conn)
        new = f"customer_cell_g{gid}_new"
        conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
        conn.execute(text(f"CREATE TABLE {new} (LIKE customer_cell INCLUDING DEFAULTS) PARTITION BY RANGE ({key})"))
        for i, name in enumerate(names):
            lo = quoted[i - 1] if i > 0 else "MINVALUE"
            hi = quoted[i] if i < k - 1 else "MAXVALUE"
            conn.execute(text(f"ALTER TABLE {new} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"))
        _attach(conn, gid, indexed=False)
        for i, name in enumerate(names):  # the pieces' final names: a later write's pieces are free to take theirs
            conn.execute(text(f"ALTER TABLE {name} RENAME TO customer_cell_g{gid}_{i}"))
            conn.execute(text(f"ALTER INDEX {name}_customer RENAME TO customer_cell_g{gid}_{i}_customer"))
            conn.execute(text(f"ALTER INDEX {name}_cell RENAME TO customer_cell_g{gid}_{i}_cell"))
    except BaseException:
        drop_pieces(conn.engine, gid)
        raise


def drop_pieces(engine, gid: int) -> None:
    """Drop the committed pieces of grid ``gid``'s write that were not attached, found by name however many
    there are (best effort: the grid's next assignment drops them anyway)."""
    with contextlib.suppress(Exception):
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.execute("SET LOCAL lock_timeout = '2s'")
                for name in _leftover_pieces(cur, gid):
                    cur.execute(f"DROP TABLE IF EXISTS {name}")
            raw.commit()
        finally:
            raw.close()
