"""One table read by COPY over several connections at once, all under one snapshot.

A single COPY runs on one server process, so on one core; the ranges of pages read by separate
connections are scanned and formatted on as many (``geodata.assign.fetch_customers``).
"""

from __future__ import annotations

import contextlib
import io
import threading

from sqlalchemy import text
from sqlalchemy.engine import Connection


def read_slices(conn: Connection, inner: str, *, table: str, readers: int,
                fmt: str = "csv") -> list[io.BytesIO] | None:
    """COPY output (``fmt``: csv or binary) of ``inner`` (a SELECT of ``table`` ending in a WHERE clause;
    ``table`` and ``fmt`` from allow-lists) read as ``readers`` ranges of the table's pages over as many
    connections at once, all under one snapshot; None when that cannot be done (read in one piece instead).

    The ranges cover every page (the last one is open-ended, whatever the table has grown to), and the
    readers share the snapshot the first one exports, so each row version is read exactly once. That
    snapshot is as new as a statement of this (READ COMMITTED) transaction would take, but it is not
    this transaction's own: exported here, it would stay registered to the end and forbid the COPY
    FREEZE of the write. Not when this transaction has written anything (other sessions never see its
    uncommitted rows: an import re-assigning in its transaction) or reads under an older snapshot
    (REPEATABLE READ), nor when the engine hands out one shared connection.

    The ranges split the table's pages evenly, not the selected rows: rows that sit together (a county
    imported in one go into a table of many) may fall mostly in one range, read by one connection.
    """
    if conn.engine.pool.__class__.__name__ in ("StaticPool", "SingletonThreadPool"):
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
                    cur.execute("SELECT pg_export_snapshot(), pg_relation_size(%s)"
                                " / current_setting('block_size')::int", (table,))
                    snapshot, pages = cur.fetchone()
                else:
                    cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        bounds = [None, *(pages * i // readers for i in range(1, readers)), None]
        out: list[io.BytesIO | BaseException | None] = [None] * readers

        def read(i: int) -> None:
            lo, hi = bounds[i], bounds[i + 1]
            where = " AND ".join(([f"ctid >= '({lo},0)'::tid"] if lo is not None else [])
                                 + ([f"ctid < '({hi},0)'::tid"] if hi is not None else []))
            try:
                buf = io.BytesIO()
                with raws[i].cursor() as cur:
                    cur.copy_expert(f"COPY ({inner} AND {where}) TO STDOUT WITH (FORMAT {fmt})", buf)
                out[i] = buf
            except BaseException as exc:  # raised again by the caller's thread
                out[i] = exc

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
    return out  # type: ignore[return-value]
