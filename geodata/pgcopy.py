"""PostgreSQL's binary COPY format and EWKB points, built with numpy and Arrow: numbers, dates and points
arrive ready-made, so the server parses no text. Used by the importers and by the assignment write-back
(``geodata.assign``); neither reaches into the other."""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection, Iterator
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from geoalchemy2 import Geometry

_HEX = np.array([f"{i:02X}" for i in range(256)], dtype="S2")
# EWKB point header: little endian, type 1 with the SRID flag, SRID 4326.
_EWKB_HEAD = np.frombuffer(b"\x01\x01\x00\x00\x20\xe6\x10\x00\x00", dtype=np.uint8)


# Binary COPY: signature, flags, header extension length; the trailer is a field count of -1.
_PGCOPY_HEAD = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_PGCOPY_TAIL = b"\xff\xff"
_PG_EPOCH = np.datetime64("2000-01-01", "D")
_NO_SEP = pa.scalar(b"", pa.large_binary())
_NULL_LEN = np.frombuffer(b"\xff\xff\xff\xff", dtype=np.uint8)
# Below this many cents a float's rounding error stays far below half a cent.
_EXACT_CENTS = 2.0**43


def ewkb_hex(lon: np.ndarray, lat: np.ndarray) -> pa.Array:
    """Hex EWKB of SRID-4326 points (what COPY accepts for a geometry column); null where NaN."""
    buf = ewkb(lon, lat)
    # One vectorised lookup turns the 25 bytes of each row into its 50 hex characters.
    arr = pa.array(_HEX[buf].view("S50").ravel(), type=pa.binary(50)).cast(pa.string())
    missing = np.isnan(lon)
    return arr if not missing.any() else pc.if_else(pa.array(~missing), arr, None)


def ewkb(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """EWKB of SRID-4326 points as an (n, 25) byte matrix (rows with NaN are garbage: mask them)."""
    n = len(lon)
    buf = np.empty((n, 25), dtype=np.uint8)
    buf[:, :9] = _EWKB_HEAD
    buf[:, 9:17] = np.ascontiguousarray(lon, dtype="<f8").view(np.uint8).reshape(n, 8)
    buf[:, 17:25] = np.ascontiguousarray(lat, dtype="<f8").view(np.uint8).reshape(n, 8)
    return buf


def _binary(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    n = len(offsets) - 1
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data)]
    )


def _fixed_block(n: int, head: bytes, parts: list[tuple[np.ndarray, np.ndarray | None]]) -> pa.Array:
    """``head`` and then fixed-width fields that are never NULL (or always), one binary value per row."""
    pieces = [np.frombuffer(head, dtype=np.uint8)[None, :].repeat(n, axis=0)]
    for payload, null in parts:
        w = payload.shape[1] if null is None or not null.all() else 0
        # An always-NULL field is just its length of -1.
        length = np.frombuffer(w.to_bytes(4, "big"), dtype=np.uint8) if w else _NULL_LEN
        pieces += [length[None, :].repeat(n, axis=0), payload[:, :w]]
    # Copied as one opaque item per row and field, not byte by byte.
    widths = [p.shape[1] for p in pieces]
    layout = np.dtype({"names": [f"f{i}" for i in range(len(pieces))], "formats": [f"V{w}" for w in widths],
                       "offsets": list(np.cumsum([0, *widths[:-1]])), "itemsize": sum(widths)})
    rec = np.empty(n, dtype=layout)
    for i, (p, w) in enumerate(zip(pieces, widths, strict=True)):
        if w:
            rec[f"f{i}"] = np.ascontiguousarray(p).view(f"V{w}")[:, 0]
    size = layout.itemsize
    return _binary(np.arange(0, n * size + 1, size), rec.view(np.uint8))


def _field_nullable(payload: np.ndarray, null: np.ndarray) -> pa.Array:
    """Fixed-width fields of which some are NULL (length -1 and no bytes)."""
    n, w = payload.shape
    mat = np.empty((n, 4 + w), dtype=np.uint8)
    mat[:, :4] = np.frombuffer(w.to_bytes(4, "big"), dtype=np.uint8)
    mat[null, :4] = _NULL_LEN
    mat[:, 4:] = payload
    keep = np.ones(mat.shape, dtype=bool)
    keep[null, 4:] = False
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.where(null, 4, 4 + w), out=offsets[1:])
    return _binary(offsets, mat[keep])


def _field_text(values: pd.Series) -> tuple[pa.Array, pa.Array]:
    """Binary COPY fields of text: (big-endian lengths, -1 for NULL; the UTF-8 bytes)."""
    if values.dtype.kind == "f" and values.isna().all():
        a = pa.nulls(len(values), pa.large_string())  # a column the file does not have
    else:
        a = pa.array(values, type=pa.large_string(), from_pandas=True)
        if isinstance(a, pa.ChunkedArray):  # pandas' arrow-backed strings
            a = a.combine_chunks()
    b = a.cast(pa.large_binary())
    lens = pc.fill_null(pc.binary_length(b), -1).to_numpy().astype(">i4")
    return _binary(np.arange(0, 4 * len(lens) + 1, 4), lens.view(np.uint8)), b


def _cents(x: np.ndarray, scale: int) -> np.ndarray:
    """Exact scaled integers of floats, as PostgreSQL rounds their shortest decimal text (half away from 0)."""
    y = x * 10.0**scale
    c = np.rint(y)
    # Rounding the float agrees with rounding its decimal text unless that text
    # sits on a half (1.005 → 100.49999999999999): those, and huge values, go
    # through Decimal. Values with more decimals than the column are fine.
    frac = np.abs(y - np.trunc(y))
    odd = ~(np.abs(c) < _EXACT_CENTS) | (np.abs(frac - 0.5) <= 4 * np.spacing(np.abs(y)))
    c = np.where(odd, 0.0, c).astype(np.int64)
    for i in np.flatnonzero(odd):
        v = Decimal(repr(float(x[i]))).scaleb(scale).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        c[i] = int(max(min(v, Decimal(2**62)), Decimal(-(2**62))))
    return c


def _field_numeric(values, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """numeric(p, scale) from floats: base-10000 integer digits and one fraction digit (NaN → NULL).

    Every row gets as many integer digits as the largest value needs (the server
    strips leading zeros); a value beyond the column's precision fails there
    with 'numeric field overflow', as its text would.
    """
    x = np.asarray(values, dtype=float)
    null = np.isnan(x)
    c = _cents(np.where(null, 0.0, x), scale)
    neg = c < 0
    whole, frac = np.divmod(np.abs(c), 10**scale)
    # |c| <= 2**62, so at most 5 integer digits of base 10000.
    k = 1
    top = int(whole.max(initial=0))
    while top >= 10000**k:
        k += 1
    digits = np.empty((len(x), k + 1), dtype=">i2")
    digits[:, k] = frac * 10 ** (4 - scale)
    for i in range(k - 1, -1, -1):
        whole, digits[:, i] = np.divmod(whole, 10000)
    head = np.empty((len(x), 4), dtype=">i2")
    head[:, 0] = k + 1
    head[:, 1] = k - 1
    head[:, 2] = np.where(neg, 0x4000, 0)
    head[:, 3] = scale
    return np.concatenate([head.view(np.uint8), digits.view(np.uint8)], axis=1), null


def _field_number(values, dtype: str, null: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int2/int4/int8/float8 fields from a numeric column (NULL where missing)."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    miss = s.isna().to_numpy() if null is None else null
    kind = ">f8" if dtype == "float8" else {"int2": ">i2", "int4": ">i4", "int8": ">i8"}[dtype]
    if kind == ">f8":
        raw = s.to_numpy(dtype=float, na_value=0.0)
    else:
        raw = s.astype("Int64").to_numpy(dtype=np.int64, na_value=0)
    return np.ascontiguousarray(raw.astype(kind)).view(np.uint8).reshape(len(s), -1), miss


def _field_bool(values) -> tuple[np.ndarray, np.ndarray]:
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    miss = s.isna().to_numpy()
    raw = s.astype(object).where(~miss, False).astype(bool).to_numpy().astype(np.uint8)
    return raw.reshape(-1, 1), miss


def _field_date(values) -> tuple[np.ndarray, np.ndarray]:
    """Dates (ISO text or date objects) as days since 2000-01-01; each distinct value parsed once."""
    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    days = (pd.to_datetime(pd.Series(np.asarray(uniques, dtype=object), dtype=object)).to_numpy()
            .astype("datetime64[D]") - _PG_EPOCH)
    days = days.astype(np.int64) if len(days) else np.zeros(1, dtype=np.int64)
    d = days[np.maximum(codes, 0)].astype(">i4")
    return d.view(np.uint8).reshape(-1, 4), codes < 0


def copy_type(column: sa.Column) -> str | None:
    """How a column travels in binary COPY ('text', 'int4', 'numeric:2', ...), or None if not supported."""
    t = column.type
    if isinstance(t, Geometry):
        return "geometry"
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.DateTime):
        return None
    if isinstance(t, sa.Date):
        return "date"
    if isinstance(t, sa.Float):
        return "float8"
    if isinstance(t, sa.Numeric):
        return f"numeric:{t.scale}" if t.scale is not None and 0 <= t.scale <= 4 else None
    for typ, name in ((sa.SmallInteger, "int2"), (sa.BigInteger, "int8"), (sa.Integer, "int4")):
        if isinstance(t, typ):
            return name
    if isinstance(t, (sa.String, sa.Text)) and not isinstance(t, sa.Enum):
        return "text"
    return None


class _Stream:
    """A read-only file over byte pieces (what copy_expert reads), so they are never joined in memory."""

    def __init__(self, *pieces):
        self._pieces = [memoryview(p).cast("B") for p in pieces if len(p)]

    def read(self, size: int = -1) -> bytes:
        out = []
        while self._pieces and (size < 0 or size > 0):
            p = self._pieces[0]
            take = len(p) if size < 0 else min(size, len(p))
            out.append(p[:take])
            if take == len(p):
                self._pieces.pop(0)
            else:
                self._pieces[0] = p[take:]
            size -= take if size >= 0 else 0
        return b"".join(out)


def encode_binary(frame: pd.DataFrame, types: list[str], ewkb: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[_Stream, list[str]]:
    """``frame`` as a whole binary COPY stream, and the column order it uses (see :func:`_encode_rows`)."""
    body, cols = _encode_rows(frame, types, ewkb)
    return _Stream(_PGCOPY_HEAD, body, _PGCOPY_TAIL), cols


def _encode_rows(frame: pd.DataFrame, types: list[str], ewkb: tuple[np.ndarray, np.ndarray] | None = None,
                 variable: Collection[str] = ()) -> tuple[memoryview, list[str]]:
    """The rows of ``frame`` in binary COPY (no header, no trailer), and the column order they use.

    ``types`` come from :func:`copy_type`, one per column; a 'geometry'
    column's values are ``ewkb``: an (n, 25) EWKB matrix and its NULL mask.
    Fields that are never (or always) NULL and of fixed width go first, as one
    block per row, then the others; one Arrow join makes the rows. A text column
    named in ``variable`` stays a variable field even when it is NULL throughout (so
    that chunks of one table keep one column order).
    """
    n = len(frame)
    solid, solid_cols, loose, loose_cols = [], [], [], []
    for name, typ in zip(frame.columns, types, strict=True):
        s = frame[name]
        if typ == "text":
            if s.isna().all() and name not in variable:
                solid.append((np.empty((n, 0), dtype=np.uint8), np.ones(n, dtype=bool)))
                solid_cols.append(name)
            else:
                loose.extend(_field_text(s))
                loose_cols.append(name)
            continue
        if typ == "geometry":
            payload, null = ewkb
        elif typ == "bool":
            payload, null = _field_bool(s)
        elif typ == "date":
            payload, null = _field_date(s)
        elif typ.startswith("numeric:"):
            payload, null = _field_numeric(s.to_numpy(dtype=float, na_value=np.nan), int(typ[8:]))
        else:
            payload, null = _field_number(s, typ)
        if null is None or not null.any() or null.all():
            solid.append((payload, null))
            solid_cols.append(name)
        else:
            loose[:0] = [_field_nullable(payload, null)]
            loose_cols[:0] = [name]
    block = _fixed_block(n, len(types).to_bytes(2, "big"), solid)
    rows = pc.binary_join_element_wise(block, *loose, _NO_SEP, null_handling="replace", null_replacement=b"")
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    offsets, data = rows.buffers()[1:]
    ends = np.frombuffer(offsets, dtype=np.int64, count=n + 1, offset=rows.offset * 8)
    return memoryview(data)[ends[0]:ends[-1]], solid_cols + loose_cols


class _Chunks:
    """A read-only file over binary COPY rows that a background thread encodes chunk by chunk: the next
    chunk is built while the previous one is sent and stored by the server (the two overlap)."""

    def __init__(self, first: memoryview, rest: Iterator[pd.DataFrame], types: list[str], cols: list[str]):
        self._now = _Stream(_PGCOPY_HEAD, first)
        self.error: BaseException | None = None  # what stopped the encoding (psycopg2 reports only its text)
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._encode, args=(rest, types, cols), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _encode(self, rest, types, cols) -> None:
        try:
            for frame in rest:
                body, c = _encode_rows(frame, types, variable=cols)
                if c != cols:
                    raise RuntimeError(f"a chunk's columns {c} differ from the first chunk's {cols}")
                if not self._put(_Stream(body)):
                    return
            self._put(_Stream(_PGCOPY_TAIL))
            self._put(None)
        except BaseException as exc:  # handed to the reader, which raises it in the COPY
            self._put(exc)

    def read(self, size: int = -1) -> bytes:
        while self._now is not None:
            b = self._now.read(size)
            if b:
                return b
            item = self._queue.get()
            if isinstance(item, BaseException):
                self.error = item
                self.close()
                raise item
            self._now = item
        return b""

    def close(self) -> None:
        """Stop the encoding thread (after an error, or once the COPY is done)."""
        self._stop.set()
        self._thread.join()


def encode_binary_chunks(frames: Iterator[pd.DataFrame], types: list[str]) -> tuple[_Chunks, list[str]]:
    """Frames of one table as one binary COPY stream, encoded in a background thread while it is read.

    The first frame is encoded at once (its column order names the COPY's columns); call
    ``close()`` on the stream when the COPY ends, whatever its outcome.
    """
    first = next(frames)
    body, cols = _encode_rows(first, types, variable=[c for c, t in zip(first.columns, types, strict=True) if t == "text"])
    return _Chunks(body, frames, types, cols), cols


