"""Checks of the inputs of routes and plans: each error names the row (stop, candidate, task) and the field."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from grid.errors import VisitInputError
from grid.visits.clock import clock_to_minutes, minutes_to_clock


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()) \
        or v is pd.NaT or v is pd.NA


def square_matrix(m, name: str) -> np.ndarray:
    a = np.asarray(m, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise VisitInputError(f"{name} must be a square matrix with the start in row 0, got shape {a.shape}")
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise VisitInputError(f"{name}[{i}, {j}] = {a[i, j]!r}: must be finite and >= 0")
    return a


def unique_ids(ids: list) -> None:
    seen: set = set()
    for i, s in enumerate(ids):
        if is_missing(s):
            raise VisitInputError(f"stop {i}: stop_id is missing")
        if s in seen:
            raise VisitInputError(f"stop {i}: stop_id {s!r} appears twice")
        seen.add(s)


def per_stop(v, n: int, name: str, ids: list, *, lo: float, lo_open: bool = False) -> np.ndarray:
    vals = [v] * n if np.ndim(v) == 0 else list(v)
    if len(vals) != n:
        raise VisitInputError(f"{name} has {len(vals)} values for {n} stops")
    out = np.empty(n)
    for i, x in enumerate(vals):
        try:
            f = float(x)
        except (TypeError, ValueError):
            raise VisitInputError(f"stop {ids[i]!r}: {name} {x!r} is not a number") from None
        if isinstance(x, bool) or not np.isfinite(f) or f < lo or (lo_open and f == lo):
            raise VisitInputError(f"stop {ids[i]!r}: {name} must be {'>' if lo_open else '>='} {lo:g}, got {x!r}")
        out[i] = f
    return out


def stop_flags(v, n: int, ids: list) -> np.ndarray:
    if v is None:
        return np.zeros(n, dtype=bool)
    vals = list(v)
    if len(vals) != n:
        raise VisitInputError(f"required has {len(vals)} values for {n} stops")
    out = np.zeros(n, dtype=bool)
    for i, x in enumerate(vals):
        if isinstance(x, str):
            s = x.strip().lower()
            if s not in ("t", "true", "y", "yes", "1", "f", "false", "n", "no", "0", ""):
                raise VisitInputError(f"stop {ids[i]!r}: required {x!r} is not yes/no")
            out[i] = s in ("t", "true", "y", "yes", "1")
        else:
            out[i] = False if is_missing(x) else bool(x)
    return out


def stop_windows(windows, n: int, ids: list) -> np.ndarray:
    out = np.full((n, 2), np.nan)
    if windows is None:
        return out
    ws = list(windows)
    if len(ws) != n:
        raise VisitInputError(f"windows has {len(ws)} entries for {n} stops")
    for i, w in enumerate(ws):
        if w is None:
            continue
        a, b = w
        s = clock_to_minutes(a, field=f"stop {ids[i]!r}: window_start")
        e = clock_to_minutes(b, field=f"stop {ids[i]!r}: window_end")
        if s is not None and e is not None and s > e:
            raise VisitInputError(f"stop {ids[i]!r}: window_start {minutes_to_clock(s)} is after "
                                  f"window_end {minutes_to_clock(e)}")
        out[i] = (np.nan if s is None else s, np.nan if e is None else e)
    return out


def working_day(day) -> tuple[float, float]:
    a, b = day
    s = clock_to_minutes(a, field="day start")
    e = clock_to_minutes(b, field="day end")
    if s is None or e is None or s >= e:
        raise VisitInputError(f"day must be (start, end) with start before end, got {day!r}")
    return s, e


def positive(x: float, name: str) -> float:
    if not (np.isfinite(x) and x > 0):
        raise VisitInputError(f"{name} must be > 0, got {x!r}")
    return float(x)


# ---------------------------------------------------------------------- plan rows
def row_number(r: Mapping, key: str, where: str, *, lo: float = 0.0, hi: float = math.inf) -> float | None:
    v = r.get(key)
    if is_missing(v):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise VisitInputError(f"{where}: {key} {v!r} is not a number") from None
    if isinstance(v, bool) or not (lo <= x <= hi):
        raise VisitInputError(f"{where}: {key} must be between {lo:g} and {hi:g}, got {v!r}")
    return x


def row_date(r: Mapping, key: str, where: str) -> dt.date | None:
    v = r.get(key)
    if is_missing(v):
        return None
    if isinstance(v, dt.datetime | pd.Timestamp):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v).strip()[:10])
    except ValueError:
        raise VisitInputError(f"{where}: {key} {v!r} is not a date (YYYY-MM-DD)") from None


def row_flag(r: Mapping, key: str, where: str) -> bool:
    v = r.get(key)
    if is_missing(v):
        return False
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("t", "true", "y", "yes", "1"):
            return True
        if s in ("f", "false", "n", "no", "0"):
            return False
        raise VisitInputError(f"{where}: {key} {v!r} is not yes/no")
    return bool(v)


def row_place(r: Mapping, where: str) -> tuple[str | None, float, float]:
    """The customer's point, else the village's, else none."""
    for src, lo, la in (("customer", "lon", "lat"), ("village", "village_lon", "village_lat")):
        lon, lat = row_number(r, lo, where, lo=-180, hi=180), row_number(r, la, where, lo=-90, hi=90)
        if lon is not None and lat is not None:
            return src, lon, lat
    return None, math.nan, math.nan
