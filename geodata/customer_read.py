"""A county's customers read for placement: one row of columns per range of the table, decoded by numpy.

COPY sends one protocol message per row, and the client pays for each (a Python call, then parsing
text); 10M customers cost the client 14.7 CPU seconds as CSV. Here the server aggregates each range
of pages into a single row of columns (binary COPY): the ids and village codes concatenated with an
array of their lengths, the points as two float8 arrays (fixed-width elements), the balances as their
exact decimal text joined by commas; the client cuts them apart with array arithmetic, no loop per
customer (docs/grids.md has the figures).
"""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection

from geodata.sliced_read import read_ranges, read_slices

# Rows per range, when the planner expects more of the county's (geodata.sliced_read): one COPY row of
# about 80 bytes per customer, far below PostgreSQL's 1 GB per value whatever the table holds.
ROWS_PER_RANGE = 4_000_000


def text_pair_sql(first: str, second: str) -> str:
    """Aggregates of two text columns (``first`` never NULL, ``second`` may be; names from the caller's
    code, never from input): each concatenated, and one int4 array of both lengths per row (a text of
    32 characters is at most 128 bytes; 65535: NULL). Read back with :func:`read_text_pair`."""
    return (f"string_agg({first}, ''), string_agg({second}, ''),"
            f" array_agg(octet_length({first}) * 65536 + coalesce(octet_length({second}), 65535))")


def read_text_pair(f: Fields) -> tuple[pa.Array, pa.Array]:
    """The next three fields, written by :func:`text_pair_sql`, as two Arrow text arrays."""
    first, second = f.next(), f.next()
    lengths = f.array(4, "i4")
    second_len = lengths & 0xFFFF
    second_len[second_len == 0xFFFF] = -1
    return text_array(first, lengths >> 16), text_array(second, second_len)


# All aggregates advance on each row in the same order, so the i-th element of each is one customer.
# NULL points read as NaN (no element may be NULL: the elements have fixed widths).
_READ = ("SELECT " + text_pair_sql("customer_id", "village_code") + ","
         " array_agg(coalesce(ST_X(geom), 'NaN')), array_agg(coalesce(ST_Y(geom), 'NaN')),"
         " string_agg(deposit_balance::text, ','), string_agg(loan_balance::text, ',')")
_FROM = (" FROM customer"
         " WHERE county_code = %s AND coalesce(legal_entity_id = (SELECT legal_entity_id FROM county WHERE adcode = %s), true)"
         " AND (%s = 1 OR (hashtext(customer_id) & 2147483647) %% %s = %s)")
_HEADER = b"PGCOPY\n\xff\r\n\x00"


def fetch_customers(conn: Connection, *, county_code: str, part: int = 0, parts: int = 1,
                    readers: int = 1) -> pd.DataFrame:
    """customer_id, lon, lat, village_code, deposit_cents, loan_cents of every customer of a county.

    With ``parts`` > 1, only hash slice ``part`` of ``parts`` (the batch mode's partitions of a big county).
    Customers of another legal entity than the county's are left out: their figures must not reach this
    legal entity's cells. The two text columns stay Arrow-backed (no Python string per customer); a
    missing point is NaN, a missing village code NULL. Balances are exact integer cents (from their
    decimal text, never through floats), so per-cell sums match SQL's.

    ``readers`` > 1: the table is read in that many shares of its pages at once, each over a connection
    of its own, all sharing one exported snapshot, so the server scans on several cores; the rows are
    the same as one read's (``geodata.sliced_read.read_slices``, which says when it reads on this
    connection instead).
    """
    with conn.connection.dbapi_connection.cursor() as cur:
        where = cur.mogrify(_FROM, (county_code, county_code, parts, parts, part)).decode()
    inner = _READ + where
    kw = {"table": "customer", "fmt": "binary", "decode": _decode, "rows_per_range": ROWS_PER_RANGE,
          "selected": "SELECT 1" + where}
    pieces = read_slices(conn, inner, readers=readers, **kw) if readers > 1 else None
    if pieces is None:
        pieces = read_ranges(conn, inner, **kw)
    cols = {k: [p[k] for p in pieces] for k in pieces[0]}
    return pd.DataFrame({
        "customer_id": arrow_text(pa.concat_arrays(cols["customer_id"])),
        "lon": np.concatenate(cols["lon"]), "lat": np.concatenate(cols["lat"]),
        "village_code": arrow_text(pa.concat_arrays(cols["village_code"])),
        "deposit_cents": np.concatenate(cols["deposit_cents"]), "loan_cents": np.concatenate(cols["loan_cents"]),
    })


def arrow_text(a: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(a), dtype=pd.ArrowDtype(pa.large_string()))


class Fields:
    """The fields of the one row a range's binary COPY holds, in order."""

    def __init__(self, data: bytes):
        self.mem = memoryview(data)
        if bytes(self.mem[:11]) != _HEADER:
            raise ValueError("not a binary COPY stream")
        (ext,) = struct.unpack_from(">i", self.mem, 15)
        self.at = 19 + ext
        (self.count,) = struct.unpack_from(">h", self.mem, self.at)
        self.at += 2

    def next(self) -> memoryview | None:
        (n,) = struct.unpack_from(">i", self.mem, self.at)
        self.at += 4
        if n < 0:
            return None
        out = self.mem[self.at:self.at + n]
        self.at += n
        return out

    def array(self, width: int, code: str) -> np.ndarray:
        """The elements of a one-dimensional array of fixed ``width`` bytes with no NULL element."""
        field = self.next()
        if field is None:
            return np.empty(0, dtype=code)
        ndim, hasnull = struct.unpack_from(">ii", field, 0)
        if ndim == 0:
            return np.empty(0, dtype=code)
        if ndim != 1 or hasnull:
            raise ValueError("unexpected array in a read of columns")
        (n,) = struct.unpack_from(">i", field, 12)
        items = np.frombuffer(field, dtype=np.dtype([("len", ">i4"), ("v", ">" + code)]), count=n, offset=20)
        if n and (items["len"] != width).any():
            raise ValueError("unexpected element width in a read of columns")
        return items["v"].astype(code)


def text_array(data: memoryview | None, lengths: np.ndarray) -> pa.Array:
    """Arrow text over concatenated ``data`` cut at ``lengths`` (-1: NULL), without copying it."""
    n = len(lengths)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.maximum(lengths, 0), out=offsets[1:])
    valid = lengths >= 0
    bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    body = pa.py_buffer(data if data is not None else b"")
    if offsets[-1] != body.size:
        raise ValueError("text lengths do not add up in a read of columns")
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), body, bitmap, null_count=int(n - valid.sum()))


def _cents(data: memoryview | None, n: int) -> np.ndarray:
    """Exact integer cents of ``n`` numeric(18, 2) values written as decimal text joined by commas.

    numeric(18, 2) always prints two decimals ("-12345.67", "0.00"): without its point each value is
    its cents, parsed by Arrow as an integer."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    raw = np.frombuffer(data, dtype=np.uint8)
    cut = np.flatnonzero(raw == ord(","))
    if len(cut) != n - 1:
        raise ValueError("balances do not match the customers in the customers' read")
    ends = np.append(cut, len(raw))  # one past each value
    if (raw[ends - 3] != ord(".")).any():
        raise ValueError("a balance without two decimals in the customers' read")
    # Value i starts after the i-th comma; with the commas and points before it taken out, 2i bytes earlier.
    starts = np.concatenate([[0], cut + 1]).astype(np.int64) - 2 * np.arange(n)
    offsets = np.append(starts, len(raw) - 2 * n + 1)
    keep = np.ones(len(raw), dtype=bool)
    keep[cut] = False
    keep[ends - 3] = False
    values = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw[keep]))
    return pc.cast(values, pa.int64()).to_numpy()


def _decode(data: bytes) -> dict:
    """One range's columns (see ``_READ``), decoded."""
    f = Fields(data)
    if f.count != 7:
        raise ValueError("unexpected row in the customers' read")
    ids, villages = read_text_pair(f)
    lon, lat = f.array(8, "f8"), f.array(8, "f8")
    deposit, loan = f.next(), f.next()
    return {"customer_id": ids, "lon": lon, "lat": lat, "village_code": villages,
            "deposit_cents": _cents(deposit, len(ids)), "loan_cents": _cents(loan, len(ids))}
