"""Day routes (grid/visits/route.py): literal small days, then properties over random ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.errors import GridError, InvalidInput, VisitInputError
from grid.visits import DayRoute, clock_to_minutes, minutes_to_clock, points_to_distance_matrix
from grid.visits.distances import distance_to_duration

# a line: start at 0 km, stops at 1, 2, 3 km (metres)
LINE = [[abs(i - j) * 1000 for j in range(4)] for i in range(4)]
FAST = dict(no_improvement=300, time_limit_s=5.0)


def test_haversine_matrix_is_symmetric_and_scaled():
    d = points_to_distance_matrix([106.0, 106.1, 106.0], [38.0, 38.0, 38.1], detour_factor=1.0)
    assert d.shape == (3, 3) and np.allclose(d, d.T) and np.allclose(np.diag(d), 0)
    # 0.1 degree of latitude is ~11.1 km; of longitude at 38 N ~8.8 km
    assert 11_000 < d[0, 2] < 11_200 and 8_700 < d[0, 1] < 8_900
    assert np.allclose(points_to_distance_matrix([106.0, 106.1], [38.0, 38.0], detour_factor=1.4)[0, 1],
                       1.4 * d[0, 1])
    assert distance_to_duration(15_000, speed_kmh=30) == 1800


def test_line_is_driven_out_and_back():
    r = DayRoute.from_cost_matrix(LINE, stop_ids=["a", "b", "c"], service_min=10, speed_kmh=60).solve(**FAST)
    assert r.kept_ids in (["a", "b", "c"], ["c", "b", "a"])
    assert r.length_m == 6000
    assert r.dropped.empty
    first = r.route.iloc[0]
    # leaves at 08:30, 1 or 3 km at 60 km/h
    assert first["arrive_min"] in (511.0, 513.0)
    assert r.route["seq"].tolist() == [1, 2, 3]


def test_window_forces_order_and_waiting():
    # c (3 km) only before 09:00, a (1 km) only after 10:00
    r = DayRoute.from_cost_matrix(
        LINE, stop_ids=["a", "b", "c"], service_min=10, speed_kmh=60,
        windows=[("10:00", "11:00"), None, ("08:30", "09:00")],
    ).solve(**FAST)
    # b fits before or after c at the same length; c must come before a
    assert r.kept_ids in (["c", "b", "a"], ["b", "c", "a"]) and r.length_m == 6000
    a = r.route.set_index("stop_id").loc["a"]
    assert a["start_min"] == 600.0 and a["wait_min"] > 0
    assert a["window_start"] == "10:00" and a["window_end"] == "11:00"


def test_dropped_stops_carry_their_reason():
    r = DayRoute.from_cost_matrix(
        [[0, 1000, 1000, 1000], [1000, 0, 10, 10], [1000, 10, 0, 10], [1000, 10, 10, 0]],
        stop_ids=["late", "long", "ok"], speed_kmh=60, service_min=[10, 600, 10],
        windows=[("07:00", "08:00"), None, None], day=("08:30", "17:30"),
    ).solve(**FAST)
    assert r.kept_ids == ["ok"]
    reasons = dict(zip(r.dropped["stop_id"], r.dropped["reason"], strict=True))
    assert reasons == {"late": "window_closed", "long": "outside_hours"}
    row = r.dropped.set_index("stop_id").loc["late"]
    assert "07:00–08:00" in row["reason_en"] and "时间窗" in row["reason_zh"]


def test_full_day_drops_the_lowest_priority_and_keeps_tasks():
    # five stops 1 km apart from the start, 2 hours each: only 3 fit into 08:30-15:00 (6.5 h)
    n = 5
    d = np.full((n + 1, n + 1), 1000.0)
    np.fill_diagonal(d, 0)
    r = DayRoute.from_cost_matrix(
        d, stop_ids=list("abcde"), service_min=120, speed_kmh=60, day=("08:30", "15:00"),
        priority=[1, 5, 1, 5, 1], required=[False, False, False, False, True],
    ).solve(**FAST)
    assert set(r.kept_ids) == {"b", "d", "e"}
    assert set(r.dropped["reason"]) == {"no_time_left"}
    assert r.end_min <= 15 * 60


def test_open_route_and_leave_time():
    r = DayRoute.from_cost_matrix(LINE, service_min=0, speed_kmh=60, return_to_start=False,
                                  leave="13:00").solve(**FAST)
    assert r.kept_ids == [0, 1, 2]
    assert r.length_m == 3000 and r.end_min == 13 * 60 + 3
    assert r.route.iloc[0]["arrive_min"] == 13 * 60 + 1


def test_from_records_places_and_road_matrix():
    stops = [
        {"stop_id": "C1", "lon": 106.01, "lat": 38.0, "service_min": 15, "window_start": "09:00",
         "window_end": "12:00", "required": True},
        {"stop_id": "C2", "lon": float("nan"), "lat": None},
        {"stop_id": "C3", "lon": 106.02, "lat": 38.0, "priority": 2},
    ]
    r = DayRoute.from_records(stops, start=(106.0, 38.0), detour_factor=1.0, speed_kmh=30).solve(**FAST)
    assert sorted(r.kept_ids) == ["C1", "C3"]
    assert r.dropped[["stop_id", "reason"]].values.tolist() == [["C2", "no_place"]]
    # 0.02 degree of longitude at 38 N is ~1.75 km: out past C1 to C3 and back
    assert 3_450 < r.length_m < 3_550
    c1 = r.route.set_index("stop_id").loc["C1"]
    assert c1["required"] and c1["start_min"] >= 540
    # a supplied road matrix replaces the straight lines (and needs no points)
    road = [[0, 5000, 9000, 7000], [5000, 0, 1, 1], [9000, 1, 0, 1], [7000, 1, 1, 0]]
    r2 = DayRoute.from_records([{"stop_id": s} for s in ("x", "y", "z")], start=(0, 0),
                               distance_m=road).solve(**FAST)
    assert sorted(r2.kept_ids) == ["x", "y", "z"] and r2.length_m == 5000 + 1 + 1 + 7000


def test_same_seed_same_route():
    rng = np.random.default_rng(3)
    lon, lat = 106.2 + rng.random(25) * 0.2, 38.2 + rng.random(25) * 0.2
    stops = [{"stop_id": f"S{i}", "lon": lon[i], "lat": lat[i], "service_min": 25} for i in range(25)]
    a = DayRoute.from_records(stops, start=(106.3, 38.3)).solve(seed=7, **FAST)
    b = DayRoute.from_records(stops, start=(106.3, 38.3)).solve(seed=7, **FAST)
    assert a.kept_ids == b.kept_ids and a.length_m == b.length_m
    assert 0 < len(a.route) < 25


@pytest.mark.slow
def test_solver_prints_nothing():
    # in a fresh interpreter: pyvrp binds a logging handler to the real stdout when imported
    code = ("from grid.visits import DayRoute\n"
            "DayRoute.from_cost_matrix([[0, 1000, 2000], [1000, 0, 1000], [2000, 1000, 0]]).solve(no_improvement=200)\n"
            "DayRoute.from_cost_matrix([[0, 9e6], [9e6, 0]]).solve(no_improvement=200)\n")
    root = str(Path(__file__).resolve().parents[3])
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                       env={**os.environ, "PYTHONPATH": root})
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == ""


def test_nearest_baseline_is_a_valid_route():
    r = DayRoute.from_cost_matrix(LINE, stop_ids=list("abc"), service_min=10,
                                  windows=[None, None, ("08:30", "09:00")], speed_kmh=60).solve(solver="nearest")
    # nearest first takes a (1 km), then b, then c is still reachable by 09:00
    assert r.kept_ids == ["a", "b", "c"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(distance_m=[[0, 1], [1, 0]], stop_ids=["a", "b"]), "2 labels for 1 stops"),
    (dict(distance_m=[[0, -1], [1, 0]]), r"distance_m\[0, 1\]"),
    (dict(distance_m=[[0, 1], [1, 0]], windows=[("11:00", "10:00")]), "stop 0: window_start 11:00 is after"),
    (dict(distance_m=[[0, 1], [1, 0]], windows=[("25:00", None)]), "not a time of day"),
    (dict(distance_m=[[0, 1], [1, 0]], service_min=[-5]), "service_min must be >= 0"),
    (dict(distance_m=[[0, 1], [1, 0]], priority=[0]), "priority must be > 0"),
    (dict(distance_m=[[0, 1], [1, 0]], day=("17:00", "08:00")), "start before end"),
    (dict(distance_m=[[0, 1, 1], [1, 0, 1], [1, 1, 0]], stop_ids=["a", "a"]), "appears twice"),
])
def test_bad_input_names_the_field(kwargs, match):
    d = kwargs.pop("distance_m")
    with pytest.raises(VisitInputError, match=match) as e:
        DayRoute.from_cost_matrix(d, **kwargs)
    assert isinstance(e.value, InvalidInput) and isinstance(e.value, GridError)


def test_clock():
    assert clock_to_minutes("8:05") == 485 and minutes_to_clock(485) == "08:05"
    assert clock_to_minutes("24:00") == 1440 and clock_to_minutes(float("nan")) is None


# -------------------------------------------------------------------- properties
@st.composite
def days(draw):
    n = draw(st.integers(0, 12))
    xs = draw(st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=n + 1, max_size=n + 1))
    pts = np.array(xs, dtype=float) * 1000
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)) * 1.3
    service = draw(st.lists(st.integers(5, 90), min_size=n, max_size=n))
    windows = []
    for _ in range(n):
        if draw(st.booleans()):
            s = draw(st.integers(7 * 60, 18 * 60))
            windows.append((s, s + draw(st.integers(0, 240))))
        else:
            windows.append(None)
    required = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    back = draw(st.booleans())
    return d, service, windows, required, back


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days())
def test_route_properties(day):
    d, service, windows, required, back = day
    n = len(service)
    r = DayRoute.from_cost_matrix(d, stop_ids=[f"s{i}" for i in range(n)], service_min=service,
                                  windows=windows, required=required, return_to_start=back,
                                  speed_kmh=20).solve(no_improvement=150, time_limit_s=5)
    kept, dropped = r.kept_ids, r.dropped["stop_id"].tolist()
    # every stop exactly once: kept or dropped, never both, never twice
    assert len(kept) == len(set(kept)) and sorted(kept + dropped) == sorted(f"s{i}" for i in range(n))
    t = d / (20 / 3.6) / 60  # minutes
    now, prev = 510.0, 0
    for row in r.route.itertuples():
        i = int(row.stop_id[1:])
        assert row.arrive_min == pytest.approx(now + t[prev, i + 1], abs=0.05)
        # service starts inside the window and working hours
        if windows[i] is not None:
            assert windows[i][0] - 0.01 <= row.start_min <= windows[i][1] + 0.01
        assert row.start_min >= 510 - 0.01
        now, prev = row.depart_min, i + 1
    end = now + (t[prev, 0] if back else 0)
    assert end <= 1050 + 0.05 and r.end_min == pytest.approx(end, abs=0.05)
    # a stop dropped as "no time left" could have been visited alone
    assert set(r.dropped["reason"]) <= {"window_closed", "outside_hours", "no_time_left"}
    for row in r.dropped.itertuples():
        i = int(row.stop_id[1:])
        alone_ok = row.reason == "no_time_left"
        arrive = max(510 + t[0, i + 1], windows[i][0] if windows[i] else 510)
        fits = arrive <= (windows[i][1] if windows[i] else 1050) + 0.02 \
            and arrive + service[i] + (t[i + 1, 0] if back else 0) <= 1050 + 0.02
        assert alone_ok == fits or abs(arrive - (windows[i][1] if windows[i] else 1050)) < 0.05
