"""An RM's day route: which of the day's stops to visit, and in what order (PyVRP).

The day is one vehicle (the RM) leaving a start point (their outlet, or where
the phone is) no earlier than the start of work, serving each stop for its
service minutes, starting service inside the stop's time window when it has
one, and getting back (or, for an open route, finishing the last visit) by the
end of work. Stops are optional with a prize: the solver keeps as many as fit,
weighted by priority, and minimises the distance driven among equally good
selections. Manager-assigned tasks (``required``) are worth more than all other
stops together, so a task is dropped only when it cannot fit at all.

Every stop that is not on the route is in :attr:`DayRoute.dropped` with the
reason: no place known, its window cannot be reached, it cannot be done within
working hours even alone, or the day is full.

The solver is PyVRP (iterated local search, MIT licence); it was chosen over
OR-Tools and VROOM by measuring (``docs/visits.md``). Runs are deterministic
for a seed as long as they stop on the iteration criteria (``no_improvement``,
``max_iterations``) before ``time_limit_s``, which is a safety cap.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from grid.errors import VisitError, VisitInputError
from grid.visits.checks import (
    is_missing,
    per_stop,
    positive,
    square_matrix,
    stop_flags,
    stop_windows,
    unique_ids,
    working_day,
)
from grid.visits.clock import clock_to_minutes, minutes_to_clock
from grid.visits.distances import (
    DEFAULT_DETOUR_FACTOR,
    DEFAULT_SPEED_KMH,
    distance_to_duration,
    points_to_distance_matrix,
)
from grid.visits.solver import nearest_neighbour_order, solve_pyvrp

DAY = (510.0, 1050.0)  # 08:30-17:30
DEFAULT_SERVICE_MIN = 20.0
# One stop of priority 1 is worth this much driving: far more than any day's
# route, so the solver first keeps as many stops as fit, then drives least.
DEFAULT_STOP_VALUE_KM = 1000.0
DEFAULT_NO_IMPROVEMENT = 500
DROP_REASONS: dict[str, tuple[str, str]] = {
    "no_place": ("无位置：客户和所在村都没有坐标", "no place: neither the customer nor their village has a point"),
    "window_closed": ("时间窗{window}内赶不到", "cannot be reached within its window {window}"),
    "outside_hours": ("工作时间{day}内单独去一趟也来不及", "cannot be done within working hours {day}, even alone"),
    "no_time_left": ("当天时间已排满（更优先的拜访在前）", "no time left in the day (higher-priority stops come first)"),
}
ROUTE_COLUMNS = ("seq", "stop_id", "arrive_min", "start_min", "depart_min", "wait_min", "travel_m",
                 "travel_min", "window_start", "window_end", "service_min", "required")
DROPPED_COLUMNS = ("stop_id", "reason", "reason_zh", "reason_en")


@dataclass
class DayRoute:
    """One RM's day: stops, working hours and travel costs; :meth:`solve` fills the route.

    Build it with :meth:`from_cost_matrix` (any distance matrix, e.g. a road
    network's) or :meth:`from_records` (stops with WGS84 points; straight-line
    distance times a detour factor). Times are minutes since midnight.

    Examples
    --------
    >>> d = [[0, 1000, 2000], [1000, 0, 1000], [2000, 1000, 0]]
    >>> r = DayRoute.from_cost_matrix(d, stop_ids=["a", "b"], service_min=20).solve(seed=1)
    >>> r.route["stop_id"].tolist(), round(r.length_m)
    (['a', 'b'], 4000)
    """

    stop_ids: list
    distance_m: np.ndarray  # (n + 1, n + 1) over [start] + stops (placed stops only)
    duration_s: np.ndarray
    service_min: np.ndarray
    window: np.ndarray  # (n, 2) minutes; NaN = open
    priority: np.ndarray
    required: np.ndarray
    day: tuple[float, float] = DAY
    leave_min: float | None = None
    return_to_start: bool = True
    stop_value_km: float = DEFAULT_STOP_VALUE_KM
    unplaced: list = field(default_factory=list)  # stop ids with no place (dropped as 'no_place')
    # results
    route: pd.DataFrame | None = None
    dropped: pd.DataFrame | None = None
    length_m: float | None = None
    end_min: float | None = None
    solver: str | None = None
    solve_seconds: float | None = None

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_cost_matrix(
        cls,
        distance_m,
        *,
        stop_ids: Sequence | None = None,
        duration_s=None,
        speed_kmh: float = DEFAULT_SPEED_KMH,
        service_min: float | Sequence[float] = DEFAULT_SERVICE_MIN,
        windows: Sequence | None = None,
        priority: Sequence[float] | None = None,
        required: Sequence[bool] | None = None,
        day: tuple[Any, Any] = DAY,
        leave: Any = None,
        return_to_start: bool = True,
        stop_value_km: float = DEFAULT_STOP_VALUE_KM,
    ) -> DayRoute:
        """A day from a plain ``(n + 1) x (n + 1)`` distance matrix; row/column 0 is the start.

        Parameters
        ----------
        distance_m : array_like
            Metres from row to column; index 0 is the start point, 1..n the stops.
            May be asymmetric (a road network's).
        stop_ids : sequence, optional
            Labels of the n stops (default ``0..n-1``).
        duration_s : array_like, optional
            Travel seconds, same shape; default ``distance_m`` at ``speed_kmh``.
        service_min : float or sequence
            Minutes spent at each stop.
        windows : sequence of (start, end) or None, optional
            Per stop, when service may start (``'HH:MM'``, ``datetime.time`` or
            minutes); ``None`` or ``(None, None)`` = any time in working hours.
        priority : sequence of float, optional
            Weight of each stop (> 0, default 1): a stop of priority 2 is kept
            before two of priority 1 would be.
        required : sequence of bool, optional
            Manager-assigned tasks: dropped only when they cannot fit at all.
        day : (start, end)
            Working hours (default 08:30-17:30).
        leave : time, optional
            When the RM leaves the start point (default: the start of work;
            pass the current time for a route from where the phone is).
        return_to_start : bool
            The RM comes back to the start point by the end of work (default);
            False ends the day at the last stop.
        stop_value_km : float
            Kilometres of driving one stop of priority 1 is worth.

        Examples
        --------
        >>> r = DayRoute.from_cost_matrix([[0, 500], [500, 0]], windows=[("09:00", "10:00")])
        >>> r.solve().route["start_min"].tolist()
        [540.0]
        """
        d = square_matrix(distance_m, "distance_m")
        n = d.shape[0] - 1
        t = distance_to_duration(d, speed_kmh=speed_kmh) if duration_s is None else square_matrix(duration_s, "duration_s")
        if t.shape != d.shape:
            raise VisitInputError(f"duration_s has shape {t.shape}, distance_m {d.shape}")
        ids = list(range(n)) if stop_ids is None else list(stop_ids)
        if len(ids) != n:
            raise VisitInputError(f"stop_ids has {len(ids)} labels for {n} stops (the matrix has {n + 1} rows)")
        unique_ids(ids)
        return cls(
            stop_ids=ids, distance_m=d, duration_s=t,
            service_min=per_stop(service_min, n, "service_min", ids, lo=0.0),
            window=stop_windows(windows, n, ids),
            priority=per_stop(1.0 if priority is None else priority, n, "priority", ids, lo=0.0, lo_open=True),
            required=stop_flags(required, n, ids),
            day=working_day(day), leave_min=clock_to_minutes(leave, field="leave"),
            return_to_start=bool(return_to_start), stop_value_km=positive(stop_value_km, "stop_value_km"),
        )

    @classmethod
    def from_records(
        cls,
        stops: pd.DataFrame | Iterable[Mapping[str, Any]],
        *,
        start: tuple[float, float],
        detour_factor: float = DEFAULT_DETOUR_FACTOR,
        speed_kmh: float = DEFAULT_SPEED_KMH,
        distance_m=None,
        duration_s=None,
        service_min: float = DEFAULT_SERVICE_MIN,
        day: tuple[Any, Any] = DAY,
        leave: Any = None,
        return_to_start: bool = True,
        stop_value_km: float = DEFAULT_STOP_VALUE_KM,
    ) -> DayRoute:
        """A day from stop records with WGS84 points (a visit plan's rows fit as they are).

        Columns: ``stop_id`` (unique), ``lon``, ``lat`` (missing = no place:
        the stop is dropped as ``no_place``); optional ``service_min``,
        ``window_start``, ``window_end``, ``priority``, ``required``.
        ``start`` is the ``(lon, lat)`` the RM leaves from. Distances are
        straight-line times ``detour_factor`` unless ``distance_m`` (and
        optionally ``duration_s``) over ``[start] + placed stops`` in record
        order is given.

        Examples
        --------
        >>> stops = [{"stop_id": "C1", "lon": 106.01, "lat": 38.0},
        ...          {"stop_id": "C2", "lon": None, "lat": None}]
        >>> r = DayRoute.from_records(stops, start=(106.0, 38.0)).solve()
        >>> r.route["stop_id"].tolist(), r.dropped[["stop_id", "reason"]].values.tolist()
        (['C1'], [['C2', 'no_place']])
        """
        df = pd.DataFrame(list(stops)) if not isinstance(stops, pd.DataFrame) else stops.reset_index(drop=True)
        if len(df) and "stop_id" not in df.columns:
            raise VisitInputError("stops lack the column stop_id")
        ids = df["stop_id"].tolist() if len(df) else []
        unique_ids(ids)
        lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(float) if "lon" in df else np.full(len(df), np.nan)
        lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(float) if "lat" in df else np.full(len(df), np.nan)
        placed = np.isfinite(lon) & np.isfinite(lat)
        if distance_m is not None:
            placed = np.ones(len(df), dtype=bool)
            d = distance_m
        else:
            slon, slat = start
            d = points_to_distance_matrix(np.r_[slon, lon[placed]], np.r_[slat, lat[placed]],
                                          detour_factor=detour_factor)
        keep = df[placed].reset_index(drop=True)

        def col(name: str, default: Any) -> list:
            if name not in keep.columns:
                return [default] * len(keep)
            return [default if is_missing(v) else v for v in keep[name].tolist()]

        windows = list(zip(col("window_start", None), col("window_end", None), strict=True))
        model = cls.from_cost_matrix(
            d, stop_ids=keep["stop_id"].tolist() if len(keep) else [], duration_s=duration_s,
            speed_kmh=speed_kmh, service_min=col("service_min", service_min), windows=windows,
            priority=col("priority", 1.0), required=col("required", False), day=day, leave=leave,
            return_to_start=return_to_start, stop_value_km=stop_value_km,
        )
        model.unplaced = [i for i, p in zip(ids, placed, strict=True) if not p]
        return model

    # ------------------------------------------------------------------ solving
    def solve(self, *, time_limit_s: float = 1.5, seed: int = 0, no_improvement: int | None = DEFAULT_NO_IMPROVEMENT,
              max_iterations: int | None = None, solver: str = "pyvrp") -> DayRoute:
        """Choose and order the stops; fills :attr:`route`, :attr:`dropped` and the totals.

        Parameters
        ----------
        time_limit_s : float
            Wall-clock cap on the search.
        seed : int
            Seed of the search: same seed, same problem, same route (when the
            run stops on the iteration criteria, not on the clock).
        no_improvement : int, optional
            Stop after this many iterations without a better route.
        max_iterations : int, optional
            Stop after this many iterations in all.
        solver : {'pyvrp', 'nearest'}
            ``'nearest'`` is the nearest-neighbour baseline (benchmarks only):
            always drive to the nearest stop that can still be served in time.

        Returns
        -------
        DayRoute
            ``self``, with results.
        """
        if not (np.isfinite(time_limit_s) and time_limit_s > 0):
            raise VisitInputError(f"time_limit_s must be > 0, got {time_limit_s!r}")
        t0 = time.perf_counter()
        d_s, t_s, early, late, service, day_end, leave = self._seconds()
        n = len(self.stop_ids)
        has_window = ~np.isnan(self.window).all(axis=1)
        alone = _alone_reason(t_s, early, late, service, leave, day_end, self.return_to_start, has_window)
        candidates = [i for i in range(n) if alone[i] is None]
        if solver == "pyvrp":
            order = solve_pyvrp(d_s, t_s, early, late, service, day_end, leave, candidates,
                                priority=self.priority, required=self.required, back=self.return_to_start,
                                stop_value_km=self.stop_value_km, time_limit_s=time_limit_s, seed=seed,
                                no_improvement=no_improvement, max_iterations=max_iterations)
        elif solver == "nearest":
            order = nearest_neighbour_order(d_s, t_s, early, late, service, day_end, leave, candidates,
                                            self.return_to_start)
        else:
            raise VisitInputError(f"solver must be 'pyvrp' or 'nearest', got {solver!r}")
        self._fill(order, alone, d_s, t_s, early, late, service, leave, day_end)
        self.solver = solver
        self.solve_seconds = time.perf_counter() - t0
        return self

    @property
    def kept_ids(self) -> list:
        """Stop ids on the route, in visiting order."""
        return [] if self.route is None else self.route["stop_id"].tolist()

    # ------------------------------------------------------------------ internals
    def _seconds(self):
        """Integer seconds and metres for the solver (windows clipped to working hours)."""
        n = len(self.stop_ids)
        day_start, day_end = self.day
        leave = day_start if self.leave_min is None else max(self.leave_min, day_start)
        early = np.where(np.isnan(self.window[:, 0]), day_start, self.window[:, 0])
        late = np.where(np.isnan(self.window[:, 1]), day_end, self.window[:, 1])
        early = np.maximum(early, leave)
        sec = lambda m: np.rint(np.asarray(m, dtype=float) * 60).astype(np.int64)  # noqa: E731
        d = np.rint(self.distance_m).astype(np.int64)
        t = np.rint(self.duration_s).astype(np.int64)
        np.fill_diagonal(d, 0)
        np.fill_diagonal(t, 0)
        if n == 0:
            return d, t, sec([]), sec([]), sec([]), int(sec(day_end)), int(sec(leave))
        return d, t, sec(early), sec(late), sec(self.service_min), int(sec(day_end)), int(sec(leave))

    def _fill(self, order, alone, d, t, early, late, service, leave, day_end) -> None:
        """Schedule the chosen order (leave at ``leave``, wait when early) and list the dropped."""
        rows = []
        now, prev, dist = leave, 0, 0
        for seq, i in enumerate(order, start=1):
            arrive = now + int(t[prev, i + 1])
            start = max(arrive, int(early[i]))
            if start > late[i]:
                raise VisitError(f"internal: stop {self.stop_ids[i]!r} scheduled after its window")
            depart = start + int(service[i])
            dist += int(d[prev, i + 1])
            w = self.window[i]
            rows.append((seq, self.stop_ids[i], arrive / 60, start / 60, depart / 60, (start - arrive) / 60,
                         float(d[prev, i + 1]), t[prev, i + 1] / 60,
                         None if np.isnan(w[0]) else minutes_to_clock(w[0]),
                         None if np.isnan(w[1]) else minutes_to_clock(w[1]),
                         float(self.service_min[i]), bool(self.required[i])))
            now, prev = depart, i + 1
        if self.return_to_start:
            dist += int(d[prev, 0])
            now += int(t[prev, 0])
        if now > day_end:
            raise VisitError("internal: the route ends after working hours")
        self.route = pd.DataFrame(rows, columns=list(ROUTE_COLUMNS))
        self.length_m = float(dist)
        self.end_min = now / 60
        kept = set(order)
        day_txt = f"{minutes_to_clock(self.day[0])}–{minutes_to_clock(self.day[1])}"
        dropped = [(sid, "no_place") for sid in self.unplaced]
        for i in range(len(self.stop_ids)):
            if i not in kept:
                dropped.append((self.stop_ids[i], alone[i] or "no_time_left"))
        out = []
        for sid, reason in dropped:
            i = self.stop_ids.index(sid) if reason != "no_place" else None
            win = "–".join(minutes_to_clock(x) if not np.isnan(x) else "?" for x in self.window[i]) \
                if i is not None else ""
            zh, en = DROP_REASONS[reason]
            out.append((sid, reason, zh.format(window=win, day=day_txt), en.format(window=win, day=day_txt)))
        self.dropped = pd.DataFrame(out, columns=list(DROPPED_COLUMNS))


def _alone_reason(t, early, late, service, leave, day_end, back: bool, has_window) -> list[str | None]:
    """Why a stop cannot be visited even as the only stop of the day (None when it can)."""
    out: list[str | None] = []
    for i in range(len(early)):
        start = max(leave + int(t[0, i + 1]), int(early[i]))
        if start > late[i]:
            # a window that closes before the RM can get there (or lies outside the day)
            out.append("window_closed" if has_window[i] else "outside_hours")
            continue
        end = start + int(service[i]) + (int(t[i + 1, 0]) if back else 0)
        out.append("outside_hours" if end > day_end else None)
    return out
