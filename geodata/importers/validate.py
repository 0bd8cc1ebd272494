"""Vectorised checks of raw text columns: codes, numbers, dates, flags, with a per-row first reason.

Everything works on whole columns (pyarrow compute / numpy): no Python loop
per row, so the same checks serve a 20-row outlet list and a 10-million-row
customer file.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_DATE = r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?:[ T](?P<t>\d{1,2}:\d{2}(?::\d{2})?))?"
_COMPACT = r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$"
# An explicit UTC offset after a time ("...08:26:55Z", "+00", "+0800", "-05:30"); read before "." becomes "-".
_OFFSET = r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?P<z>Z|[+-]\d{2}(?::?\d{2})?)$"
_EXCEL_EPOCH = np.datetime64("1899-12-30")
TRUE_WORDS = ("1", "y", "yes", "t", "true", "是", "在岗", "在职", "有效", "社区", "城镇")
FALSE_WORDS = ("0", "n", "no", "f", "false", "否", "离岗", "离职", "无效", "农村", "村")


def _arr(s: pd.Series) -> pa.Array:
    """The column as a pyarrow string array (zero-copy for pandas' arrow-backed strings)."""
    return pa.array(s, type=pa.large_string(), from_pandas=True)


def _np(a: pa.Array) -> np.ndarray:
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=bool)


def clean(s: pd.Series, fold: bool = True) -> pd.Series:
    """Trimmed text; with ``fold``, full-width digits/letters/punctuation folded to ASCII."""
    a = pc.utf8_trim_whitespace(_arr(s))
    # Full-width forms (U+FF01..FF5E) are common in hand-typed codes and numbers;
    # an all-ASCII column (the usual case) is known clean without a regex pass.
    if (
        fold and not pc.all(pc.string_is_ascii(a)).as_py()
        and pc.any(pc.match_substring_regex(a, "[\uff01-\uff5e\u3000]")).as_py()
    ):
        a = pa.array([_fold(x) for x in a.to_pylist()], type=pa.large_string())
    return pd.Series(a, index=s.index, dtype="str")


def _fold(x: str | None) -> str | None:
    if x is None:
        return None
    return "".join(
        chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else (" " if c == "\u3000" else c) for c in x
    ).strip()


def blank(n: int, index) -> pd.Series:
    """A column of ``n`` empty cells (a field the file does not have)."""
    return pd.Series(pa.repeat(pa.scalar("", pa.large_string()), n), index=index, dtype="str")


def empty(s: pd.Series) -> np.ndarray:
    """True where the cell is empty."""
    return _np(pc.equal(pc.binary_length(_arr(s)), 0))


def has_nul(s: pd.Series) -> np.ndarray:
    """True where the text holds a NUL character, which PostgreSQL cannot store in text."""
    a = _arr(s)
    # Usually no zero byte anywhere in the column's data: one pass over the raw bytes says so.
    chunks = a.chunks if isinstance(a, pa.ChunkedArray) else [a]
    if all(c.buffers()[2] is None or np.frombuffer(c.buffers()[2], dtype=np.uint8).min(initial=1) > 0
           for c in chunks):
        return np.zeros(len(a), dtype=bool)
    return _np(pc.match_substring(a, "\x00"))


def longer_than(s: pd.Series, limit: int) -> np.ndarray:
    """True where the text has more than ``limit`` characters."""
    a = _arr(s)
    # A character takes at least a byte: a column no longer than ``limit`` bytes needs no counting.
    if (pc.max(pc.binary_length(a)).as_py() or 0) <= limit:
        return np.zeros(len(a), dtype=bool)
    return _np(pc.greater(pc.utf8_length(a), limit))


def digits(s: pd.Series, n: int) -> np.ndarray:
    """True where the cell is exactly ``n`` ASCII digits."""
    a = _arr(s)
    return _np(pc.and_(pc.equal(pc.binary_length(a), n), pc.ascii_is_decimal(a)))


def numbers(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, bad): '1,234.50', '¥1200' and ' 7 ' read as numbers; empty is NaN and not bad."""
    a = _arr(s)
    is_empty = pc.equal(pc.binary_length(a), 0)
    try:
        # Clean columns (the usual case) convert in one strict cast, no regex needed.
        vals = pc.cast(pc.if_else(is_empty, None, a), pa.float64()).to_numpy(zero_copy_only=False)
        vals = np.asarray(vals, dtype=float)
        # 'nan' and 'inf' cast fine but are no amounts.
        bad = ~np.isfinite(vals) & ~_np(is_empty)
        return np.where(bad, np.nan, vals), bad
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    a = pc.replace_substring_regex(a, r"[,，¥￥\s]", "")
    ok = pc.match_substring_regex(a, _NUMBER)
    vals = pc.cast(pc.if_else(ok, a, None), pa.float64()).to_numpy(zero_copy_only=False)
    vals = np.asarray(vals, dtype=float)
    bad = ~_np(ok) & ~_np(pc.equal(pc.utf8_length(a), 0))
    bad |= ~np.isnan(vals) & ~np.isfinite(vals)
    return np.where(np.isfinite(vals), vals, np.nan), bad


def _date_parts(s: pd.Series) -> tuple[pd.DataFrame, np.ndarray]:
    """Year, month, day, time strings from any accepted spelling, and where none matched."""
    a = pc.utf8_trim_whitespace(_arr(s))
    z = pc.struct_field(pc.extract_regex(a, _OFFSET), "z")
    a = pc.replace_substring_regex(a, r"[/.年月]", "-")
    a = pc.replace_substring_regex(a, r"日", "")
    iso = pc.extract_regex(a, _DATE)
    compact = pc.extract_regex(a, _COMPACT)
    y = pc.coalesce(pc.struct_field(iso, "y"), pc.struct_field(compact, "y"))
    m = pc.coalesce(pc.struct_field(iso, "m"), pc.struct_field(compact, "m"))
    d = pc.coalesce(pc.struct_field(iso, "d"), pc.struct_field(compact, "d"))
    t = pc.struct_field(iso, "t")
    parts = pd.DataFrame({
        "y": y.to_pandas(), "m": m.to_pandas(), "d": d.to_pandas(), "t": t.to_pandas(), "z": z.to_pandas()
    })
    return parts, parts["y"].isna().to_numpy()


def _excel_serial(s: pd.Series) -> np.ndarray:
    """Days since 1899-12-30 for cells that are Excel serial dates (1900-2099), else NaN."""
    vals, _ = numbers(s)
    ok = (vals >= 1) & (vals < 73051) & digits_or_decimal(s)
    return np.where(ok, vals, np.nan)


def digits_or_decimal(s: pd.Series) -> np.ndarray:
    """True where the cell looks like a serial day number (up to 5 digits, optional fraction)."""
    return _np(pc.match_substring_regex(_arr(s), r"^\d{1,5}(\.\d+)?$"))


def dates(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(ISO date text or None, bad) from 2023-05-01, 2023/5/1, 2023年5月1日, 20230501, Excel serials."""
    return _per_distinct(s, "%Y-%m-%d")


def datetimes(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(ISO timestamp text in China time, bad); a bare date means midnight."""
    return _per_distinct(s, "%Y-%m-%d %H:%M:%S+08")


def _per_distinct(s: pd.Series, fmt: str) -> tuple[pd.Series, np.ndarray]:
    """Parse and format each distinct text once: big files repeat few distinct dates."""
    codes, uniques = pd.factorize(s)
    ts, bad = _timestamps_of(pd.Series(uniques, dtype="str"))
    text = ts.dt.strftime(fmt).to_numpy(dtype=object)
    text[ts.isna().to_numpy()] = None
    take = np.maximum(codes, 0)
    missing = codes < 0
    # Spread back by Arrow's take: no Python string per row.
    out = pa.array(text, type=pa.large_string()).take(pa.array(take, mask=missing)) if len(text) \
        else pa.nulls(len(s), pa.large_string())
    return pd.Series(out, index=s.index, dtype="str"), (bad[take] & ~missing) if len(bad) else missing & False


def _timestamps_of(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    parts, nomatch = _date_parts(s)
    t = parts["t"].fillna("").astype(str)
    t = t.where(t != "", "00:00")
    t = t.where(t.str.count(":") == 2, t + ":00")
    t = t.str.zfill(8)
    text = (parts["y"].fillna("") + "-" + parts["m"].fillna("").str.zfill(2) + "-"
            + parts["d"].fillna("").str.zfill(2) + " " + t)
    ts = pd.to_datetime(text.where(~nomatch, None), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    ts = pd.Series(ts.to_numpy(), index=s.index)
    zone = parts["z"].to_numpy(dtype=object)
    given = pd.notna(zone) & ~nomatch
    if given.any():
        # A time with its own offset is moved to China time (UTC+8), which is how times are stored.
        zz = pd.Series(zone[given], dtype=str).str.replace(":", "", regex=False)
        sign = np.where(zz.str[:1] == "-", -1, 1)
        hours = pd.to_numeric(zz.str[1:3], errors="coerce").fillna(0).to_numpy()
        mins = pd.to_numeric(zz.str[3:5], errors="coerce").fillna(0).to_numpy()
        offset = np.where(zz == "Z", 0, sign * (hours * 60 + mins))
        ts[given] = ts[given] + pd.to_timedelta(480 - offset, unit="m")
    serial = _excel_serial(s)
    use_serial = nomatch & ~np.isnan(serial)
    if use_serial.any():
        whole = np.floor(serial[use_serial]).astype("int64")
        secs = np.round((serial[use_serial] - whole) * 86400).astype("int64")
        ts[use_serial] = (
            _EXCEL_EPOCH + whole.astype("timedelta64[D]") + secs.astype("timedelta64[s]")
        ).astype("datetime64[ns]")
    is_empty = empty(s)
    bad = ts.isna().to_numpy() & ~is_empty
    # Dates in the far past or future are typing errors, not history.
    ok_range = ts.isna() | ((ts >= pd.Timestamp("1900-01-01")) & (ts < pd.Timestamp(dt.date.today().year + 50, 1, 1)))
    bad |= ~ok_range.to_numpy()
    ts = ts.where(ok_range.to_numpy(), pd.NaT)
    return ts, bad


def flags(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """('true'/'false'/None, bad) from 是/否, Y/N, 1/0, true/false and a few more."""
    low = s.str.lower()
    t = low.isin(TRUE_WORDS).to_numpy()
    f = low.isin(FALSE_WORDS).to_numpy()
    out = pd.Series(np.where(t, "true", np.where(f, "false", None)), index=s.index, dtype=object)
    return out, ~t & ~f & ~empty(s)


class Rejects:
    """First failing field and reason per row of one chunk, filled by whole-column checks."""

    def __init__(self, n: int):
        self._bad = np.zeros(n, dtype=bool)
        self.field = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)
        self.value = np.full(n, None, dtype=object)

    def add(self, mask: np.ndarray, field: str, reason, values: pd.Series | None = None) -> None:
        """Reject rows in ``mask`` that are still good; ``reason`` is text or an array of texts."""
        new = np.asarray(mask, dtype=bool) & ~self._bad
        if not new.any():
            return
        self._bad |= new
        self.field[new] = field
        self.reason[new] = reason if isinstance(reason, str) else np.asarray(reason, dtype=object)[new]
        if values is not None:
            self.value[new] = np.asarray(values, dtype=object)[new]

    @property
    def mask(self) -> np.ndarray:
        """True for rejected rows."""
        return self._bad.copy()
