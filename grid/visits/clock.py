"""Times of day as minutes since midnight (the unit of plans, windows and routes)."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from grid.errors import VisitInputError

_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def clock_to_minutes(value: Any, *, field: str = "time") -> float | None:
    """Minutes since midnight of ``'HH:MM'``, a ``datetime.time`` or a number of minutes.

    ``None``, NaN and ``''`` are ``None`` (no time given). ``'24:00'`` is the end of the day.

    Examples
    --------
    >>> clock_to_minutes("08:30"), clock_to_minutes(dt.time(17, 30)), clock_to_minutes(600)
    (510.0, 1050.0, 600.0)
    >>> clock_to_minutes(None) is None
    True
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        value = value.time()
    if isinstance(value, dt.time):
        return value.hour * 60 + value.minute + value.second / 60
    if isinstance(value, str):
        m = _HHMM.match(value)
        if not m:
            raise VisitInputError(f"{field}: {value!r} is not a time of day (HH:MM)")
        h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
        if mi > 59 or s > 59 or h * 60 + mi + s / 60 > 24 * 60:
            raise VisitInputError(f"{field}: {value!r} is not a time of day (HH:MM)")
        return h * 60 + mi + s / 60
    if isinstance(value, bool):
        raise VisitInputError(f"{field}: {value!r} is not a time of day")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise VisitInputError(f"{field}: {value!r} is not a time of day") from None
    if math.isnan(x):
        return None
    if not 0 <= x <= 24 * 60:
        raise VisitInputError(f"{field}: {value!r} minutes is outside the day (0-1440)")
    return x


def minutes_to_clock(minutes: float) -> str:
    """``'HH:MM'`` of minutes since midnight (rounded to the minute).

    Examples
    --------
    >>> minutes_to_clock(510), minutes_to_clock(1049.6)
    ('08:30', '17:30')
    """
    m = int(round(minutes))
    return f"{m // 60:02d}:{m % 60:02d}"
