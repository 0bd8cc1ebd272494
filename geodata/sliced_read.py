"""One table read by COPY over several connections at once, all under one snapshot, in ranges of pages.

A single COPY runs on one server process, so on one core; the ranges of pages read by separate
connections are scanned and formatted on as many (``geodata.customer_read.fetch_customers``).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

# What one range of pages is read into before it is decoded (COPY output of one range).
Decode = Callable[[bytes], Any]


def read_slices(conn: Connection, inner: str, *, table: str, readers: int, fmt: str = "csv",
                decode: Decode | None = None, rows_per_range: int | None = None,
                selected: str | None = None) -> list[Any] | None:
    """COPY output (``fmt``: csv or binary) of ``inner`` (a SELECT of ``table`` ending in a WHERE clause;
    ``table`` and ``fmt`` from allow-lists) read as ranges of the table's pages, ``readers`` of them at
    once over as many connections, all under one snapshot; None when that cannot be done (then
    :func:`read_ranges` on the caller's own connection).

    The ranges cover every page (the last one is open-ended, whatever the table has grown to), and the
    readers share the snapshot the first one exports, so each row version is read exactly once. That
    snapshot is as new as a statement of this (READ COMMITTED) transaction would take, but it is not
    this transaction's own: exported here, it would stay registered to the end and forbid the COPY
    FREEZE of the write. Not when this transaction has written anything (other sessions never see its
    uncommitted rows: an import re-assigning in its transaction) or reads under an older snapshot
    (REPEATABLE READ), nor when the engine hands out one shared connection.

    ``rows_per_range``: when the planner expects more than that many rows of ``selected`` (a SELECT of
    the rows ``inner`` reads), each reader reads its share of the pages as consecutive ranges of about
    that many of the table's rows (all of them, so that rows of one kind sitting together cannot crowd
    one range), one COPY each: no single COPY's output grows with the table (``inner`` may aggregate a
    range's rows into one row, and PostgreSQL caps a value at 1 GB). Fewer expected rows: one range per
    reader (so a read on one connection has no page range and may use an index). ``decode`` turns each range's output into
    what is returned (run in the reader's thread as soon as its range is read, while the others go on).

    The ranges split the table's pages evenly, not the selected rows: rows that sit together (a county
    imported in one go into a table of many) may fall mostly in one range, read by one connection.
    Returned in page order.
    """
    if not can_open_connections(conn.engine):
        return None
    if conn.execute(text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL"
                         " OR current_setting('transaction_isolation') <> 'read committed'")).scalar():
        return None
    raws = []
    try:
        for i in range(readers):
            raws.append(conn.engine.raw_connection())
            with raws[-1].cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                if i == 0:
                    cur.execute("SELECT pg_export_snapshot()")
                    snapshot = cur.fetchone()[0]
                    bounds = _bounds(cur, table, readers, rows_per_range, selected)
                else:
                    cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        share = (len(bounds) - 1) // readers
        out: list[Any] = [None] * (len(bounds) - 1)

        def read(i: int) -> None:
            try:
                for k in range(i * share, (i + 1) * share):
                    out[k] = _copy(raws[i], inner, bounds[k], bounds[k + 1], fmt, decode)
            except BaseException as exc:  # raised again by the caller's thread
                out[i * share] = exc

        threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(readers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for raw in raws:
            with contextlib.suppress(Exception):  # a broken connection: closing it is all that is left
                raw.rollback()
            raw.close()
    for r in out:
        if isinstance(r, BaseException):
            raise r
    return out


def can_open_connections(engine) -> bool:
    """More connections than the caller's can be had (not an engine that hands out one shared connection)."""
    return engine.pool.__class__.__name__ not in ("StaticPool", "SingletonThreadPool")


def read_ranges(conn: Connection, inner: str, *, table: str, fmt: str = "csv", decode: Decode | None = None,
                rows_per_range: int | None = None, selected: str | None = None) -> list[Any]:
    """As :func:`read_slices`, one range after the other on the caller's own connection and snapshot."""
    return read_ranges_raw(conn.connection.dbapi_connection, inner, table=table, fmt=fmt, decode=decode,
                           rows_per_range=rows_per_range, selected=selected)


def read_ranges_raw(raw, inner: str, *, table: str, fmt: str = "csv", decode: Decode | None = None,
                    rows_per_range: int | None = None, selected: str | None = None) -> list[Any]:
    """:func:`read_ranges` on the DB-API connection ``raw``."""
    with raw.cursor() as cur:
        bounds = _bounds(cur, table, 1, rows_per_range, selected)
    return [_copy(raw, inner, lo, hi, fmt, decode) for lo, hi in zip(bounds, bounds[1:], strict=False)]


def _bounds(cur, table: str, readers: int, rows_per_range: int | None, selected: str | None) -> list[int | None]:
    """Page numbers cutting ``table`` into ``readers`` equal shares of equal ranges (None: open end)."""
    per_reader = 1
    if rows_per_range and selected:
        cur.execute(f"EXPLAIN (FORMAT JSON) {selected}")
        expected = cur.fetchone()[0][0]["Plan"]["Plan Rows"]
        if expected > rows_per_range:
            cur.execute("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = %s::regclass", (table,))
            per_reader = max(1, math.ceil(cur.fetchone()[0] / (readers * rows_per_range)))
    if readers * per_reader == 1:
        return [None, None]
    cur.execute("SELECT pg_relation_size(%s) / current_setting('block_size')::int", (table,))
    pages = cur.fetchone()[0]
    n = readers * per_reader
    return [None, *(pages * i // n for i in range(1, n)), None]


class _Messages:
    """What COPY hands over, one protocol message (a row) per call, kept as given: no copy into a buffer."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, b: bytes) -> int:
        self.parts.append(b)
        return len(b)

    def value(self) -> bytes:
        """The whole output; a binary COPY of one row (an aggregate) without its 2-byte trailer, uncopied."""
        if len(self.parts) == 2 and self.parts[1] == b"\xff\xff":
            return self.parts[0]
        return b"".join(self.parts)


def _copy(raw, inner: str, lo: int | None, hi: int | None, fmt: str, decode: Decode | None) -> Any:
    where = " AND ".join(([f"ctid >= '({int(lo)},0)'::tid"] if lo is not None else [])
                         + ([f"ctid < '({int(hi)},0)'::tid"] if hi is not None else []))
    out = _Messages()
    with raw.cursor() as cur:
        cur.copy_expert(f"COPY ({inner}{' AND ' + where if where else ''}) TO STDOUT WITH (FORMAT {fmt})", out)
    data = out.value()
    return decode(data) if decode is not None else data
