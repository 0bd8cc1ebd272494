"""Maximal covering location with existing facilities: optimum versus greedy."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from geodata import DEMO_DATA
from grid.sites import (
    SiteInputError,
    greedy_sites,
    suggest_sites,
    suggest_sites_gdf,
)

DATA = DEMO_DATA

# Four demand points on a line, 1.5 km apart, radius 1 km. Candidate 0 sits in
# the middle and covers the two heavy points (6); candidates 1 and 2 each cover
# an end pair (5). Greedy grabs the middle first and ends with 8; the optimum
# takes both ends for 10.
DEMAND = [[0, 0], [1500, 0], [3000, 0], [4500, 0]]
WEIGHT = [2, 3, 3, 2]
CANDIDATES = [[2250, 0], [750, 0], [3750, 0]]


@pytest.mark.filterwarnings("ignore:PULP_CBC_CMD is deprecated:DeprecationWarning")
@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_solver_finds_the_optimum_where_greedy_does_not(solver):
    best = suggest_sites(DEMAND, WEIGHT, CANDIDATES, [], k=2, radius_km=1.0, solver=solver)
    greedy = greedy_sites(DEMAND, WEIGHT, CANDIDATES, [], k=2, radius_km=1.0)
    assert best.optimal
    assert best.chosen.tolist() == [1, 2]
    assert best.newly_covered.tolist() == [5.0, 5.0]
    assert best.covered_before == 0.0
    assert best.covered_after == 10.0
    assert greedy.chosen.tolist() == [0, 1]
    assert greedy.newly_covered.tolist() == [6.0, 2.0]
    assert greedy.covered_after == 8.0
    assert not greedy.optimal
    assert best.gap == 0.0 and np.isnan(greedy.gap)
    assert best.covered_after_mask.tolist() == [True, True, True, True]
    assert greedy.covered_after_mask.tolist() == [True, True, True, False]


def test_the_solver_prints_nothing_on_stdout_or_stderr():
    # `gridmkt ... --json` prints one JSON object on stdout; HiGHS's banner (highspy 1.16 prints it while
    # constructing, before output_flag can be set) must not land there. A child process, so that what
    # C++ writes to the real file descriptor 1 is seen.
    code = ("from grid.sites import suggest_sites; "
            f"r = suggest_sites({DEMAND}, {WEIGHT}, {CANDIDATES}, [], k=2, radius_km=1.0, solver='highs'); "
            "print(r.chosen.tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout == "[1, 2]\n"
    assert "HiGHS" not in out.stderr  # the banner showed in the middle of the demo's progress


def test_existing_facility_excludes_demand_it_already_covers():
    # An existing service point at 750 m covers the first two points (5).
    # Then candidate 1 adds nothing and the best single site is 2 (adds 5),
    # whereas without it the best single site is the middle one (6).
    without = suggest_sites(DEMAND, WEIGHT, CANDIDATES, [], k=1, radius_km=1.0)
    assert without.chosen.tolist() == [0]
    with_existing = suggest_sites(DEMAND, WEIGHT, CANDIDATES, [[750, 0]], k=1, radius_km=1.0)
    assert with_existing.covered_before == 5.0
    assert with_existing.covered_before_mask.tolist() == [True, True, False, False]
    assert with_existing.chosen.tolist() == [2]
    assert with_existing.newly_covered.tolist() == [5.0]
    assert with_existing.covered_after == 10.0
    assert with_existing.total_demand == 10.0
    # with k=3 only site 2 adds anything: useless sites are not suggested
    more = suggest_sites(DEMAND, WEIGHT, CANDIDATES, [[750, 0]], k=3, radius_km=1.0)
    assert more.chosen.tolist() == [2]
    assert greedy_sites(DEMAND, WEIGHT, CANDIDATES, [[750, 0]], k=3, radius_km=1.0).chosen.tolist() == [2]


def test_solve_stopped_by_time_limit_is_never_worse_than_greedy():
    # HiGHS starts from the greedy answer, so even a solve cut short keeps it
    rng = np.random.default_rng(7)
    pts = rng.uniform(0, 20_000, (400, 2))
    w = rng.integers(0, 50, 400)
    greedy = greedy_sites(pts, w, pts, [], k=8, radius_km=2.0)
    cut = suggest_sites(pts, w, pts, [], k=8, radius_km=2.0, time_limit_s=1e-4)
    assert cut.covered_after >= greedy.covered_after
    assert len(cut.chosen) <= 8
    if not cut.optimal:
        assert cut.status == "Time limit reached"


def test_radius_is_inclusive_and_in_km():
    r = suggest_sites([[1000, 0], [2001, 0]], [1, 1], [[0, 0]], [], k=1, radius_km=1.0)
    assert r.covered_after == 1.0
    r2 = suggest_sites([[1000, 0], [2001, 0]], [1, 1], [[0, 0]], [], k=1, radius_km=2.001)
    assert r2.covered_after == 2.0


def test_table_lists_cumulative_coverage():
    t = suggest_sites(DEMAND, WEIGHT, CANDIDATES, [], k=2, radius_km=1.0).table()
    assert t.to_dict("list") == {
        "rank": [1, 2], "candidate": [1, 2], "newly_covered": [5.0, 5.0], "covered_after": [5.0, 10.0],
    }


def test_k_zero_and_nothing_to_cover():
    assert suggest_sites(DEMAND, WEIGHT, CANDIDATES, [], k=0, radius_km=1.0).chosen.size == 0
    far = suggest_sites(DEMAND, WEIGHT, [[1e6, 0]], [], k=2, radius_km=1.0)
    assert far.chosen.size == 0 and far.covered_after == 0.0 and far.optimal
    no_cands = suggest_sites(DEMAND, WEIGHT, np.zeros((0, 2)), [], k=2, radius_km=1.0)
    assert no_cands.chosen.size == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"demand_weight": [1, 2]}, "demand_weight"),
        ({"demand_weight": [1, -2, 3, 4]}, "demand_weight"),
        ({"demand_xy": [[0, 0, 0]] * 4}, "demand_xy"),
        ({"k": -1}, "k"),
        ({"k": 1.5}, "k"),
        ({"radius_km": 0}, "radius_km"),
        ({"candidate_xy": [[np.nan, 0]]}, "candidate_xy"),
    ],
)
def test_bad_inputs_are_rejected(kwargs, match):
    args = {"demand_xy": DEMAND, "demand_weight": WEIGHT, "candidate_xy": CANDIDATES,
            "existing_xy": [], "k": 1, "radius_km": 1.0}
    args.update(kwargs)
    with pytest.raises(SiteInputError, match=match):
        suggest_sites(**args)
    with pytest.raises(SiteInputError, match="solver"):
        suggest_sites(DEMAND, WEIGHT, CANDIDATES, [], k=1, radius_km=1.0, solver="gurobi")
    with pytest.raises(SiteInputError, match="mip_gap"):
        suggest_sites(DEMAND, WEIGHT, CANDIDATES, [], k=1, radius_km=1.0, mip_gap=-0.1)


def brute_force(demand, weight, cands, existing, k, r_m):
    """The true optimum by trying every set of at most k candidates."""
    d = np.asarray(demand, float)
    w = np.asarray(weight, float)
    dist = lambda a, b: np.hypot(*(d[:, None, :] - np.asarray(b, float)[None, :, :]).transpose(2, 0, 1))  # noqa: E731
    before = (dist(d, existing) <= r_m).any(axis=1) if len(existing) else np.zeros(len(d), bool)
    cov = dist(d, cands) <= r_m
    best = 0.0
    for size in range(min(k, len(cands)) + 1):
        for combo in itertools.combinations(range(len(cands)), size):
            covered = before | cov[:, list(combo)].any(axis=1)
            best = max(best, w[covered].sum())
    return best


coord = st.integers(0, 6000)
point = st.tuples(coord, coord)


@settings(max_examples=40, deadline=None)
@given(
    demand=st.lists(point, min_size=1, max_size=12),
    cands=st.lists(point, min_size=1, max_size=7),
    existing=st.lists(point, max_size=2),
    k=st.integers(1, 3),
    data=st.data(),
)
def test_property_solver_matches_brute_force_and_beats_greedy(demand, cands, existing, k, data):
    weight = data.draw(st.lists(st.integers(0, 9), min_size=len(demand), max_size=len(demand)))
    ex = np.asarray(existing, float).reshape(-1, 2)
    best = suggest_sites(demand, weight, cands, ex, k=k, radius_km=1.5)
    greedy = greedy_sites(demand, weight, cands, ex, k=k, radius_km=1.5)
    opt = brute_force(demand, weight, cands, ex, k, 1500.0)
    assert best.optimal
    assert best.covered_after == pytest.approx(opt)
    assert greedy.covered_after <= best.covered_after + 1e-9
    # greedy's guarantee on the newly covered demand
    assert greedy.covered_after - greedy.covered_before >= (1 - 1 / np.e) * (opt - best.covered_before) - 1e-9
    for r in (best, greedy):
        assert len(r.chosen) <= k
        assert len(set(r.chosen.tolist())) == len(r.chosen)
        assert (r.newly_covered > 0).all()
        assert np.all(np.diff(r.newly_covered) <= 1e-9)  # listed by marginal gain
        assert r.covered_before + r.newly_covered.sum() == pytest.approx(r.covered_after)
        assert r.covered_after == pytest.approx(np.asarray(weight, float)[r.covered_after_mask].sum())
        assert (r.covered_after_mask >= r.covered_before_mask).all()


def test_gdf_on_square_cells_with_given_candidates():
    # three 0.01-degree cells in a row near Yinchuan; one existing point in the first
    cells = gpd.GeoDataFrame(
        {"cell_id": ["a", "b", "c"], "households": [100, 40, 60]},
        geometry=[box(106.00 + 0.01 * i, 38.00, 106.01 + 0.01 * i, 38.01) for i in range(3)],
        crs=4326,
    )
    existing = gpd.GeoDataFrame(geometry=[Point(106.005, 38.005)], crs=4326)
    r = suggest_sites_gdf(cells, existing, k=1, radius_km=0.5)
    assert r.covered_before == 100.0
    assert r.sites["cell_id"].tolist() == ["c"]
    assert r.sites.crs.to_epsg() == 4326
    assert r.sites.geometry.iloc[0].distance(Point(106.025, 38.005)) < 1e-6
    assert r.sites[["rank", "newly_covered", "covered_after"]].values.tolist() == [[1, 60.0, 160.0]]
    # a candidate between b and c covers both within 1 km (cells are ~0.88 km apart)
    cand = gpd.GeoDataFrame({"name": ["bc", "far"]},
                            geometry=[Point(106.02, 38.005), Point(107, 39)], crs=4326)
    r2 = suggest_sites_gdf(cells, existing, k=2, radius_km=1.0, candidates=cand)
    assert r2.sites["name"].tolist() == ["bc"]
    assert r2.covered_after == 200.0
    g = suggest_sites_gdf(cells, None, k=1, radius_km=0.5, solver="greedy")
    assert g.method == "greedy" and g.sites["cell_id"].tolist() == ["a"]


@pytest.mark.skipif(not (DATA / "ningxia_villages.csv").exists(), reason="shared data missing")
def test_real_county_villages_solver_at_least_greedy():
    # 海原县: villages as demand (one unit each: no household counts are public),
    # three township seats as existing service points.
    v = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str, "county_code": str})
    v = v[(v["county_code"] == "640522") & v["lon_wgs84"].notna()].reset_index(drop=True)
    cells = gpd.GeoDataFrame(
        {"code": v["code"], "households": 1.0},
        geometry=gpd.points_from_xy(v["lon_wgs84"], v["lat_wgs84"]), crs=4326,
    )
    seats = cells.drop_duplicates(subset="geometry").head(3)
    best = suggest_sites_gdf(cells, seats, k=5, radius_km=5.0)
    greedy = suggest_sites_gdf(cells, seats, k=5, radius_km=5.0, solver="greedy")
    assert best.optimal
    assert len(best.sites) <= 5
    assert best.covered_after >= greedy.covered_after
    assert best.covered_before > 0
    assert best.covered_after > best.covered_before
    assert best.total_demand == len(v)
    minx, miny, maxx, maxy = cells.total_bounds
    assert best.sites.geometry.x.between(minx - 1e-9, maxx + 1e-9).all()
    assert best.sites.geometry.y.between(miny - 1e-9, maxy + 1e-9).all()
