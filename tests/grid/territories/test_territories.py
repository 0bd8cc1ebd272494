"""Tests of automatic territory balancing (grid/territories*.py)."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geodata import DEMO_DATA
from grid.territories import (
    TerritoryPlan,
    cell_adjacency,
    evaluate_assignment,
    handover,
    nearest_outlet_assignment,
    nearest_outlet_baseline,
)
from grid.territories.graph import (
    connect_components,
    neighbour_lists,
    pairs_to_csr,
    pieces_per_owner,
    stays_connected,
)
from grid.territories.report import plan_report

DATA = DEMO_DATA


def grid_arrays(rows: int, cols: int):
    """Adjacency and centroids (100 m squares) of a rows × cols grid; cell = r * cols + c."""
    pairs = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    pairs += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    xy = np.array([[c * 100.0 + 50, r * 100.0 + 50] for r in range(rows) for c in range(cols)])
    return pairs_to_csr(np.array(pairs), rows * cols), xy


def contiguous(plan: TerritoryPlan) -> bool:
    """Every non-empty territory is one piece of the plan's graph."""
    pieces = pieces_per_owner(plan.adjacency, plan.assignment, len(plan.capacity))
    return bool((pieces <= 1).all())


# --- adjacency --------------------------------------------------------------------------


def test_squares_share_edges_not_corners():
    g = gpd.GeoSeries([box(0, 0, 1, 1), box(1, 0, 2, 1), box(0, 1, 1, 2), box(1, 1, 2, 2)], crs=3857)
    adj = cell_adjacency(g).toarray()
    assert adj[0, 1] and adj[0, 2] and adj[1, 3] and adj[2, 3]
    assert not adj[0, 3] and not adj[1, 2]  # diagonal neighbours touch at a corner only


def test_noisy_shared_edge_still_counts():
    # Neighbouring H3 hexagons differ by float noise along the shared edge.
    g = gpd.GeoSeries([box(0, 0, 100, 100), box(100 + 1e-9, 0, 200, 100)], crs=3857)
    assert cell_adjacency(g, connect_islands=False).toarray()[0, 1]


def test_islands_get_one_virtual_edge_to_nearest_component():
    g = gpd.GeoSeries(
        [box(0, 0, 1, 1), box(1, 0, 2, 1), box(5, 0, 6, 1), box(20, 0, 21, 1)], crs=3857
    )
    adj, virtual = cell_adjacency(g, return_virtual=True)
    assert sorted(map(tuple, virtual.tolist())) == [(1, 2), (2, 3)]
    assert adj.toarray()[1, 2] and adj.toarray()[2, 3]
    plain = cell_adjacency(g, connect_islands=False)
    assert plain.nnz == 2


def test_connect_components_on_arrays():
    adj = pairs_to_csr(np.array([[0, 1], [2, 3]]), 4)
    xy = np.array([[0, 0], [1, 0], [10, 0], [3, 0]], dtype=float)
    _, virtual = connect_components(adj, xy)
    assert virtual.tolist() == [[1, 3]]


def test_real_county_h3_adjacency_is_hexagonal():
    from grid.h3cells import build_h3_cells

    counties = gpd.read_file(DATA / "ningxia_counties_gcj02.geojson")
    county = counties[counties["adcode"].astype(str) == "640424"]
    cells = build_h3_cells(county, 7)
    adj, virtual = cell_adjacency(cells, return_virtual=True)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    inner = ~cells["is_border"].to_numpy()
    assert degree.max() <= 6 + len(virtual)
    assert (degree[inner] == 6).mean() > 0.8
    assert pieces_per_owner(adj, np.zeros(len(cells), dtype=int), 1)[0] == 1


def test_stays_connected_detects_cut_cell():
    adj, _ = grid_arrays(1, 3)
    nbrs = neighbour_lists(adj)
    a = np.array([0, 0, 0])
    assert not stays_connected(nbrs, a, 1, 3)  # middle of a line
    assert stays_connected(nbrs, a, 0, 3)
    adj, _ = grid_arrays(2, 2)
    assert stays_connected(neighbour_lists(adj), np.zeros(4, dtype=int), 0, 4)


# --- optimiser ------------------------------------------------------------------------------


def test_two_rms_in_opposite_corners_split_4x4_in_equal_contiguous_halves():
    adj, xy = grid_arrays(4, 4)
    plan = TerritoryPlan.from_arrays(np.ones(16), adj, xy[[0, 15]], xy, np.ones(2)).solve()
    assert np.bincount(plan.assignment).tolist() == [8, 8]
    assert plan.assignment[0] == 0 and plan.assignment[15] == 1
    assert plan.report.max_abs_deviation == 0.0
    assert plan.report.contiguity == 1.0


def test_locked_cells_stay_with_their_rm():
    adj, xy = grid_arrays(4, 4)
    locked = {3: 0, 12: 1, 5: 1}  # cell row -> RM row, against the nearest outlet
    plan = TerritoryPlan.from_arrays(
        np.ones(16), adj, xy[[0, 15]], xy, np.ones(2), locked=locked
    ).solve()
    for cell, rm in locked.items():
        assert plan.assignment[cell] == rm


def test_half_capacity_rm_gets_half_the_workload():
    adj, xy = grid_arrays(6, 6)
    plan = TerritoryPlan.from_arrays(np.ones(36), adj, xy[[0, 35]], xy, np.array([1.0, 0.5])).solve()
    load = plan.report.per_rm["workload"].to_numpy()
    assert load.tolist() == [24.0, 12.0]
    assert contiguous(plan)


def test_same_seed_same_plan_and_skewed_workload_balanced():
    rng = np.random.default_rng(3)
    adj, xy = grid_arrays(12, 12)
    w = rng.lognormal(0, 0.7, 144)
    homes = xy[[0, 11, 132, 143, 66]]
    a1 = TerritoryPlan.from_arrays(w, adj, homes, xy, np.ones(5), seed=5).solve()
    a2 = TerritoryPlan.from_arrays(w, adj, homes, xy, np.ones(5), seed=5).solve()
    assert np.array_equal(a1.assignment, a2.assignment)
    assert a1.report.max_abs_deviation < 0.05
    assert a1.report.contiguity == 1.0


def test_rms_sharing_an_outlet_get_separate_contiguous_territories():
    adj, xy = grid_arrays(6, 6)
    homes = xy[[14, 14, 14]]  # three RMs of one outlet
    plan = TerritoryPlan.from_arrays(np.ones(36), adj, homes, xy, np.ones(3)).solve()
    assert sorted(np.bincount(plan.assignment).tolist()) == [12, 12, 12]
    assert contiguous(plan)


def test_keep_current_leaves_a_balanced_plan_alone():
    adj, xy = grid_arrays(4, 4)
    current = np.array([0, 0, 1, 1] * 4)
    plan = TerritoryPlan.from_arrays(
        np.ones(16), adj, xy[[0, 3]], xy, np.ones(2), current=current, keep_current=True
    ).solve()
    assert np.array_equal(plan.assignment, current)
    assert plan.report.cells_changed == 0


def test_keep_current_moves_only_what_balance_needs():
    adj, xy = grid_arrays(4, 4)
    current = np.array([0, 0, 0, 1] * 4)  # 12 vs 4 cells
    plan = TerritoryPlan.from_arrays(
        np.ones(16), adj, xy[[0, 3]], xy, np.ones(2), current=current, keep_current=True
    ).solve()
    assert np.bincount(plan.assignment).tolist() == [8, 8]
    assert plan.report.cells_changed == 4
    assert contiguous(plan)


@pytest.mark.parametrize("corner", [0, 4, 20, 24])
def test_keep_current_never_takes_an_rms_only_cell(corner):
    """RM 0 owns nothing and lives at a corner that is RM 1's only cell (a village grid with many RMs):
    RM 0 must start elsewhere, not leave RM 1 without cells."""
    adj, xy = grid_arrays(5, 5)
    current = np.full(25, 2)
    current[corner] = 1
    homes = xy[[corner, corner, 12]]
    plan = TerritoryPlan.from_arrays(np.ones(25), adj, homes, xy, np.ones(3), current=current,
                                     keep_current=True).solve()
    assert (plan.assignment >= 0).all()
    assert contiguous(plan)
    assert sorted(np.bincount(plan.assignment, minlength=3).tolist()) == [8, 8, 9]


def test_rebalancing_keeps_territories_contiguous_from_a_bad_start():
    # A snake-like skewed start: RM 0 owns almost everything.
    adj, xy = grid_arrays(5, 5)
    current = np.zeros(25, dtype=int)
    current[[24]] = 1
    plan = TerritoryPlan.from_arrays(
        np.arange(1, 26, dtype=float), adj, xy[[0, 24]], xy, np.ones(2), current=current,
        keep_current=True, tolerance=0.01,
    ).solve()
    assert contiguous(plan)
    assert plan.report.max_abs_deviation < 0.05


def test_islands_territories_contiguous_through_virtual_edges():
    # Two blocks of 2x2 squares 5 km apart, one RM near each end.
    boxes = [box(x, y, x + 1000, y + 1000) for x in (0, 1000) for y in (0, 1000)]
    boxes += [box(x, y, x + 1000, y + 1000) for x in (7000, 8000) for y in (0, 1000)]
    g = gpd.GeoSeries(boxes, crs=3857)
    adj, virtual = cell_adjacency(g, return_virtual=True)
    assert len(virtual) == 1
    xy = np.array([[b.centroid.x, b.centroid.y] for b in boxes])
    w = np.array([1, 1, 1, 1, 2, 2, 2, 2], dtype=float)  # RM 0 must cross the gap
    plan = TerritoryPlan.from_arrays(w, adj, xy[[0, 7]], xy, np.ones(2)).solve()
    plan.virtual_edges = virtual
    assert plan.evaluate(plan.assignment).virtual_edges_used == 1
    assert plan.report.contiguity == 1.0
    assert plan.report.max_abs_deviation == 0.0


def test_max_distance_is_respected_where_possible():
    adj, xy = grid_arrays(1, 10)
    plan = TerritoryPlan.from_arrays(
        np.r_[np.ones(5), np.full(5, 3.0)], adj, xy[[0, 9]], xy, np.ones(2), max_distance_km=0.55
    ).solve()
    assert plan.report.beyond_max_distance == 0


# --- GeoDataFrame API, baseline, report, hand-over ------------------------------------------


def square_cells(n: int = 4) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """n × n cells of 0.01° near Yinchuan, 2 customers each; two RMs in opposite corners."""
    d = 0.01
    geoms = [box(106 + c * d, 38 + r * d, 106 + (c + 1) * d, 38 + (r + 1) * d) for r in range(n) for c in range(n)]
    cells = gpd.GeoDataFrame(
        {"cell_id": [f"c{i}" for i in range(n * n)], "customers": 2, "deposit": 1.0},
        geometry=geoms,
        crs=4326,
    )
    rms = pd.DataFrame(
        {"rm_id": ["east", "west"], "lon": [106 + d / 2, 106 + (n - 0.5) * d],
         "lat": [38 + d / 2, 38 + (n - 0.5) * d], "capacity": [1.0, 1.0]}
    )
    return cells, rms


def test_from_geodataframe_assignment_series_and_report():
    cells, rms = square_cells()
    plan = TerritoryPlan.from_geodataframe(cells, rms, weights={"customers": 1.0, "deposit": 1.0}).solve()
    s = plan.assignment_series()
    assert s.index.tolist() == cells["cell_id"].tolist()
    assert s.value_counts().to_dict() == {"east": 8, "west": 8}
    rep = plan.report
    assert rep.per_rm["rm"].tolist() == ["east", "west"]
    assert rep.contiguity == 1.0 and rep.max_abs_deviation == pytest.approx(0.0, abs=1e-12)
    assert 0.5 < rep.compactness_mean <= math.pi / 4 + 1e-6


def test_evaluate_assignment_polsby_popper_and_churn():
    cells, rms = square_cells(2)
    halves = {"c0": "east", "c2": "east", "c1": "west", "c3": "west"}
    rep = evaluate_assignment(cells, rms, halves, current={"c0": "east", "c1": "east", "c2": "east", "c3": "west"})
    # Each territory is a 1 × 2 rectangle of 0.01° cells, about 880 m × 2220 m in UTM.
    assert rep.per_rm["polsby_popper"].round(2).tolist() == [0.64, 0.64]
    assert rep.cells_changed == 1 and rep.customers_changed == 2.0
    assert rep.max_abs_deviation == pytest.approx(0.0, abs=1e-12) and rep.cv == pytest.approx(0.0, abs=1e-12)


def test_travel_weight_adds_workload_far_from_home():
    cells, rms = square_cells()
    plain = TerritoryPlan.from_geodataframe(cells, rms, weights={"customers": 1.0})
    travel = TerritoryPlan.from_geodataframe(cells, rms, weights={"customers": 1.0, "travel": 0.5})
    a = np.zeros(16, dtype=int)  # all to the east RM: everything far from the west home is free
    assert travel.evaluate(a).per_rm["workload"].sum() > plain.evaluate(a).per_rm["workload"].sum()


def test_nearest_outlet_round_robin_and_baseline_report():
    xy = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [10, 0]], dtype=float)
    homes = np.array([[0, 0], [0, 0], [10, 0]], dtype=float)
    assert nearest_outlet_assignment(xy, homes).tolist() == [0, 1, 0, 1, 2]
    adj, gxy = grid_arrays(1, 5)
    plan = TerritoryPlan.from_arrays(np.ones(5), adj, gxy[[0, 0, 4]], gxy, np.ones(3))
    base = nearest_outlet_baseline(plan)
    assert base.report.contiguity < 1.0  # round-robin interleaves the outlet's two RMs
    assert plan.assignment is None  # the plan itself is untouched


def test_handover_to_one_rm_and_spread():
    adj, xy = grid_arrays(3, 6)
    plan = TerritoryPlan.from_arrays(np.ones(18), adj, xy[[0, 2, 5]], xy, np.ones(3)).solve()
    before = plan.assignment.copy()
    one = handover(plan, 1, to=0)
    assert (one.assignment[before == 1] == 0).all()
    assert np.array_equal(one.assignment[before != 1], before[before != 1])
    assert one.report.cells_changed == int((before == 1).sum())
    spread = handover(plan, 1)
    assert (spread.assignment != 1).all()
    assert np.array_equal(spread.assignment[before != 1], before[before != 1])  # others locked
    assert set(spread.assignment[before == 1].tolist()) <= {0, 2}
    assert contiguous(spread)


def test_handover_by_rm_id():
    cells, rms = square_cells()
    plan = TerritoryPlan.from_geodataframe(cells, rms).solve()
    out = handover(plan, "west", to="east")
    assert set(out.assignment_series()) == {"east"}


# --- properties -------------------------------------------------------------------------------


@st.composite
def grid_problems(draw):
    rows, cols = draw(st.integers(2, 7)), draw(st.integers(2, 7))
    n = rows * cols
    k = draw(st.integers(1, min(4, n)))
    w = draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
    homes = draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k))
    lock_cells = draw(st.lists(st.integers(0, n - 1), max_size=k, unique=True))
    locked = {c: r for r, c in enumerate(lock_cells)}  # at most one locked cell per RM
    seed = draw(st.integers(0, 3))
    return rows, cols, np.array(w, dtype=float), homes, locked, seed


@settings(max_examples=60, deadline=None)
@given(grid_problems())
def test_property_every_cell_assigned_locks_kept_territories_contiguous(problem):
    rows, cols, w, homes, locked, seed = problem
    adj, xy = grid_arrays(rows, cols)
    k = len(homes)
    plan = TerritoryPlan.from_arrays(w, adj, xy[homes], xy, np.ones(k), locked=locked, seed=seed).solve()
    a = plan.assignment
    assert ((a >= 0) & (a < k)).all()
    for c, r in locked.items():
        assert a[c] == r
    assert contiguous(plan)
    assert plan.report.empty_rms == 0


# --- lumpy cells, regions, chain moves ---------------------------------------------------


def test_single_heavy_cell_bound_reported_and_reached():
    # 3 x 4 grid, 4 RMs; cell 5 holds 9 of the 20 units: target 5, so its owner is 80% over in any plan.
    adj, xy = grid_arrays(3, 4)
    w = np.ones(12)
    w[5] = 9.0
    plan = TerritoryPlan.from_arrays(w, adj, xy[[0, 3, 8, 11]], xy, np.ones(4)).solve()
    rep = plan.report
    assert rep.indivisible_share == pytest.approx(1.8)
    assert rep.deviation_bound == pytest.approx(0.8)
    assert rep.max_abs_deviation == pytest.approx(0.8)  # the plan reaches the bound
    assert (plan.assignment == plan.assignment[5]).sum() == 1  # the heavy cell's owner holds nothing else
    assert rep.adjusted_max_deviation < 0.5  # the others share 11 units over 3 RMs: 4 / 4 / 3 at best
    assert any("no plan of whole cells" in note for note in rep.notes)
    assert rep.summary()["deviation_bound"] == 0.8
    assert contiguous(plan)


def test_deviation_bound_and_achievable_targets_literal():
    from grid.territories.bounds import achievable_targets, deviation_bound

    assert deviation_bound(np.array([1.0, 1, 1, 1]), np.ones(2)) == (0.0, 0.5, 0)
    bound, share, cell = deviation_bound(np.array([1.0, 6, 1]), np.array([1.0, 0.5]))
    assert (round(bound, 6), round(share, 6), cell) == (0.125, 1.125, 1)  # targets 16/3 and 8/3
    # Locked cells: RM 1 must keep 3 of 4 units with a target of 2.
    assert deviation_bound(np.ones(4), np.ones(2), locked=np.array([1, 1, 1, -1]))[0] == pytest.approx(0.5)
    assert deviation_bound(np.ones(2), np.ones(3))[0] == 1.0  # someone gets nothing
    goal = achievable_targets(12.0, np.array([1.0, 1.0, 2.0]), np.array([7.0, 0.0, 0.0]))
    assert goal.tolist() == pytest.approx([7.0, 5 / 3, 10 / 3])
    assert goal.sum() == pytest.approx(12.0)


def two_county_cells() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """A 4 x 6 strip of cells: the west 4 x 3 is county A (light), the east 4 x 3 county B (3x heavier)."""
    d = 0.01
    geoms, county, cust = [], [], []
    for r in range(4):
        for c in range(6):
            geoms.append(box(106 + c * d, 38 + r * d, 106 + (c + 1) * d, 38 + (r + 1) * d))
            county.append("A" if c < 3 else "B")
            cust.append(1.0 if c < 3 else 3.0)
    cells = gpd.GeoDataFrame(
        {"cell_id": [f"c{i}" for i in range(24)], "customers": cust, "county_code": county}, geometry=geoms, crs=4326
    )
    # Three RMs in A, one in B: a single pass would hand B's cells to A's RMs.
    rms = pd.DataFrame({
        "rm_id": ["a1", "a2", "a3", "b1"],
        "lon": [106.005, 106.025, 106.015, 106.055],
        "lat": [38.005, 38.005, 38.035, 38.02],
        "capacity": 1.0,
        "county_code": ["A", "A", "A", "B"],
    })
    return cells, rms


def test_regions_balanced_separately_and_never_crossed():
    cells, rms = two_county_cells()
    plan = TerritoryPlan.from_geodataframe(cells, rms, weights={"customers": 1.0}, region_column="county_code").solve()
    s = plan.assignment_series()
    county_of_rm = dict(zip(rms["rm_id"], rms["county_code"], strict=True))
    assert (s.map(county_of_rm).to_numpy() == cells["county_code"].to_numpy()).all()
    assert set(s[cells["county_code"].to_numpy() == "B"]) == {"b1"}
    per_rm = plan.report.per_rm.set_index("rm")
    # County A: 12 of 48 units over 3 RMs; county B: 36 units for its only RM (workload sums to 1).
    assert per_rm.loc[["a1", "a2", "a3"], "target"].tolist() == pytest.approx([12 / 48 / 3] * 3)
    assert per_rm.loc["b1", "target"] == pytest.approx(36 / 48)
    assert plan.report.max_abs_deviation == pytest.approx(0.0, abs=1e-9)
    assert plan.report.contiguity == 1.0
    pr = plan.report.per_region.set_index("region")
    assert pr.loc["A", "rms"] == 3 and pr.loc["B", "cells"] == 12
    assert plan.report.summary()["regions"] == 2
    # The same cells in one pass share county B's work over all four RMs, across the county line.
    single = TerritoryPlan.from_geodataframe(cells, rms, weights={"customers": 1.0}).solve()
    crossed = single.assignment_series().map(county_of_rm).to_numpy() != cells["county_code"].to_numpy()
    assert crossed.any()


def test_regions_in_two_worker_processes_give_the_same_plan():
    rng = np.random.default_rng(1)
    adj, xy = grid_arrays(6, 8)
    w = rng.lognormal(0, 0.8, 48)
    cell_region = np.where(xy[:, 0] < 400, "w", "e")
    homes = xy[[0, 18, 7, 47]]
    regions = (cell_region, np.array(["w", "w", "e", "e"]))
    one = TerritoryPlan.from_arrays(w, adj, homes, xy, np.ones(4), regions=regions).solve()
    two = TerritoryPlan.from_arrays(w, adj, homes, xy, np.ones(4), regions=regions).solve(workers=2)
    assert np.array_equal(one.assignment, two.assignment)
    assert (np.array(["w", "w", "e", "e"])[one.assignment] == cell_region).all()
    assert contiguous(one)


def test_locked_cell_in_another_region_is_refused():
    adj, xy = grid_arrays(1, 4)
    plan = TerritoryPlan.from_arrays(
        np.ones(4), adj, xy[[0, 3]], xy, np.ones(2), locked={0: 1}, regions=(["w", "w", "e", "e"], ["w", "e"])
    )
    with pytest.raises(ValueError, match="another region"):
        plan.solve()


def test_chain_moves_pass_workload_through_a_full_neighbour():
    # A line 0-1-...-8: RM 0 owns 0-4 (5 units), RM 1 owns 5-6 (2), RM 2 owns 7-8 (2); target 3 each.
    # RM 0 only touches RM 1, which is nearly full: single moves cannot help, a chain 0 -> 1 -> 2 can.
    from grid.territories.chain import chain_moves

    adj, xy = grid_arrays(1, 9)
    plan = TerritoryPlan.from_arrays(np.ones(9), adj, xy[[0, 5, 8]], xy, np.ones(3))
    p = plan._problem(move_penalty=False)
    a = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2])
    chain_moves(p, a, xy[[0, 5, 8]], tolerance=0.0)
    assert np.bincount(a).tolist() == [3, 3, 3]
    assert a.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_chain_moves_carry_the_small_pieces_a_cut_cell_would_leave():
    # RM 0 is a snake 0-1-2-3 whose only free end touches nobody: moving cell 1 to RM 1 must take cell 0 too.
    from grid.territories.chain import _with_cut_off

    adj, _ = grid_arrays(1, 6)
    plan = TerritoryPlan.from_arrays(np.ones(6), adj, np.zeros((2, 2)), np.zeros((6, 2)), np.ones(2))
    p = plan._problem(move_penalty=False)
    al = [0, 0, 0, 0, 1, 1]
    assert sorted(_with_cut_off(p, al, 1, 4)) == [0, 1]
    assert _with_cut_off(p, al, 3, 4) is None  # an end cell cuts nothing off


@settings(max_examples=40, deadline=None)
@given(grid_problems(), st.integers(0, 2))
def test_property_regions_never_crossed_and_contiguous(problem, cut):
    rows, cols, w, homes, locked, seed = problem
    adj, xy = grid_arrays(rows, cols)
    k = len(homes)
    # Two regions split by a column; each RM belongs to its home cell's region, locks inside it.
    split = 1 + cut % max(cols - 1, 1)
    cell_region = np.where(np.arange(rows * cols) % cols < split, 0, 1)
    rm_region = cell_region[homes]
    locked = {c: r for c, r in locked.items() if cell_region[c] == rm_region[r]}
    plan = TerritoryPlan.from_arrays(
        w, adj, xy[homes], xy, np.ones(k), locked=locked, seed=seed, regions=(cell_region, rm_region)
    ).solve()
    a = plan.assignment
    has_rm = np.isin(cell_region, rm_region)
    assert ((a >= 0) == has_rm).all()  # cells of a region without RMs stay unowned
    assert (rm_region[a[a >= 0]] == cell_region[a >= 0]).all()
    for c, r in locked.items():
        assert a[c] == r
    assert contiguous(plan)
    assert plan.report.max_abs_deviation >= plan.report.deviation_bound - 1e-9


# --- whole-territory moves: swaps and pair recombination ------------------------------------


def test_part_time_rm_hands_its_heavy_cell_to_a_full_time_one():
    # A line of 4 cells, 3 + 1 + 1 + 1 units; a part-time RM (target 2) at the heavy end, a full-time one
    # (target 4) at the other. The heavy cell fits the full-time RM, so the plan is exact: the part-time
    # RM takes the two light cells at the far end.
    adj, xy = grid_arrays(1, 4)
    plan = TerritoryPlan.from_arrays(np.array([3.0, 1, 1, 1]), adj, xy[[0, 3]], xy, np.array([0.5, 1.0])).solve()
    assert plan.assignment.tolist() == [1, 1, 0, 0]
    assert plan.report.max_abs_deviation == pytest.approx(0.0, abs=1e-9)
    assert contiguous(plan)


def test_recombine_moves_cells_both_ways_where_single_moves_and_chains_cannot():
    # The part-time RM 0 holds only the heavy cell (3 units for a target of 2): it cannot give it away
    # (it would be left with nothing), and any cell it takes makes it heavier. Redrawing the pair's
    # border moves cells both ways at once.
    from grid.territories.chain import chain_moves
    from grid.territories.recom import recombine
    from grid.territories.solver import polish

    adj, xy = grid_arrays(1, 4)
    plan = TerritoryPlan.from_arrays(np.array([3.0, 1, 1, 1]), adj, xy[[0, 3]], xy, np.array([0.5, 1.0]))
    p = plan._problem(move_penalty=False)
    a = np.array([0, 1, 1, 1])
    polish(p, a, xy[[0, 3]], tolerance=0.0)
    chain_moves(p, a, xy[[0, 3]], tolerance=0.0)
    assert a.tolist() == [0, 1, 1, 1]
    recombine(p, a, tolerance=0.0)
    assert a.tolist() == [1, 1, 0, 0]


def test_recombine_keeps_locked_cells_and_leaves_penalised_plans_alone():
    from grid.territories.recom import recombine

    adj, xy = grid_arrays(1, 4)
    plan = TerritoryPlan.from_arrays(np.array([3.0, 1, 1, 1]), adj, xy[[0, 3]], xy, np.array([0.5, 1.0]), locked={0: 0})
    a = recombine(plan._problem(move_penalty=False), np.array([0, 1, 1, 1]), tolerance=0.0)
    assert a.tolist() == [0, 1, 1, 1]  # the heavy cell is locked to RM 0: nothing better exists
    plan = TerritoryPlan.from_arrays(np.array([3.0, 1, 1, 1]), adj, xy[[0, 3]], xy, np.array([0.5, 1.0]),
                                     current=np.array([0, 1, 1, 1]))
    a = recombine(plan._problem(move_penalty=True), np.array([0, 1, 1, 1]), tolerance=0.0)
    assert a.tolist() == [0, 1, 1, 1]


def test_rms_of_one_outlet_swap_territories_but_not_across_outlets():
    from grid.territories.recom import swap_territories

    # Two territories of 4 and 2 units; the part-time RM 0 (target 2) holds the big one.
    adj, xy = grid_arrays(1, 6)
    w = np.ones(6)
    a0 = np.array([0, 0, 0, 0, 1, 1])
    for homes, expected in ((xy[[0, 0]], [1, 1, 1, 1, 0, 0]), (xy[[0, 5]], [0, 0, 0, 0, 1, 1])):
        plan = TerritoryPlan.from_arrays(w, adj, homes, xy, np.array([0.5, 1.0]))
        anchor = xy[[0, 5]].copy()
        a = swap_territories(plan._problem(move_penalty=False), a0.copy(), anchor, tolerance=0.0)
        assert a.tolist() == expected
        if expected[0] == 1:
            assert anchor.tolist() == xy[[5, 0]].tolist()  # anchors follow their territories


def test_dense_town_of_lumpy_cells_with_part_time_rms_is_balanced():
    # 4 x 6 cells of 0.5-1 units, 12 RMs (3 part-time) at 4 outlets: about two cells per RM, as in a
    # dense town. Single moves stall around 28% here; pair swaps and recombination get under 22%.
    devs = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        adj, xy = grid_arrays(4, 6)
        w = rng.uniform(0.5, 1.0, 24)
        homes = np.repeat(xy[rng.choice(24, 4, replace=False)], 3, axis=0)
        cap = np.ones(12)
        cap[[0, 4, 8]] = 0.5
        plan = TerritoryPlan.from_arrays(w, adj, homes, xy, cap, seed=seed).solve()
        assert contiguous(plan)
        devs.append(plan.report.max_abs_deviation)
    assert np.mean(devs) < 0.22
    assert max(devs) < 0.26


def test_report_judges_a_part_time_rm_at_a_heavy_cell_as_the_solver_does():
    # Cells 3, 1, 1, 1 on a line; the part-time RM (capacity 0.5) holds the heavy cell. A full-time RM could
    # carry it, so the solver counts the part-time holder as over target; the report's adjusted figure agrees
    # (it used to excuse the holder fully: 0.33, from the other two).
    adj = pairs_to_csr(np.array([[0, 1], [1, 2], [2, 3]]), 4)
    xy = np.array([[0, 0], [1, 0], [2, 0], [3, 0]], dtype=float)
    rep = plan_report(np.array([0, 1, 1, 2]), np.array([3.0, 1, 1, 1]), adj, xy[[0, 1, 3]], xy,
                      np.array([0.5, 1.0, 1.0]))
    # Excuse 3 * 0.5 / 1 = 1.5 for the part-time RM; the others share 4.5: level 2.25 per unit of capacity.
    assert rep.adjusted_max_deviation == pytest.approx((3 - 1.5) / (2.25 * 0.5))


def test_three_way_recombination_fixes_what_no_pair_can():
    # Cells 3 1 1 2 4 3 on a line (target 14/3), RMs 0 | 1 1 1 | 2 2: loads 3, 4, 7, max deviation 50%.
    # Neither pair can redraw its border better (0+1: 3|4 or 4|3; 1+2: 4|7, 8|3, 2|9, 1|10) and single moves
    # and chains are stuck, but cutting all three at once gives 3 1 1 | 2 4 | 3: loads 5, 6, 3, the best
    # any contiguous plan of this line reaches (max 5/14).
    from grid.territories.chain import chain_moves
    from grid.territories.recom import recombine
    from grid.territories.solver import _deviation, polish
    from grid.territories.triples import recombine_triples

    adj, xy = grid_arrays(1, 6)
    plan = TerritoryPlan.from_arrays(np.array([3.0, 1, 1, 2, 4, 3]), adj, xy[[0, 3, 5]], xy, np.ones(3))
    p = plan._problem(move_penalty=False)
    a = np.array([0, 1, 1, 1, 2, 2])
    for _ in range(3):
        recombine(p, a, tolerance=0.0)
        polish(p, a, xy[[0, 3, 5]], tolerance=0.0)
        chain_moves(p, a, xy[[0, 3, 5]], tolerance=0.0)
    assert a.tolist() == [0, 1, 1, 1, 2, 2]
    recombine_triples(p, a, tolerance=0.0)
    assert a.tolist() == [0, 0, 0, 1, 1, 2]
    assert np.abs(_deviation(p, a)[2]).max() == pytest.approx(5 / 14)


def test_three_way_recombination_keeps_locks_range_and_penalised_plans():
    from grid.territories.triples import recombine_triples

    adj, xy = grid_arrays(1, 6)
    w = np.array([3.0, 1, 1, 2, 4, 3])
    a0 = np.array([0, 1, 1, 1, 2, 2])
    # Cell 2 locked to RM 1: the best three-way cut (which hands it to RM 0) is ruled out.
    plan = TerritoryPlan.from_arrays(w, adj, xy[[0, 3, 5]], xy, np.ones(3), locked={2: 1})
    a = recombine_triples(plan._problem(move_penalty=False), a0.copy(), tolerance=0.0)
    assert a[2] == 1
    # Within 150 m of home RM 0 may hold cells 0-1 only: the best cut is out of its range, and no split
    # within everyone's range is better than the current one.
    plan = TerritoryPlan.from_arrays(w, adj, xy[[0, 3, 5]], xy, np.ones(3), max_distance_km=0.15)
    a = recombine_triples(plan._problem(move_penalty=False), a0.copy(), tolerance=0.0)
    assert a.tolist() == a0.tolist()
    plan = TerritoryPlan.from_arrays(w, adj, xy[[0, 3, 5]], xy, np.ones(3), current=a0)
    a = recombine_triples(plan._problem(move_penalty=True), a0.copy(), tolerance=0.0)
    assert a.tolist() == a0.tolist()


def test_report_says_in_words_why_5pct_cannot_be_reached():
    # 3 cells for 4 RMs: someone gets nothing, and each cell is 4/3 of a target.
    adj, xy = grid_arrays(1, 3)
    few = TerritoryPlan.from_arrays(np.ones(3), adj, xy[[0, 1, 2, 2]], xy, np.ones(4)).solve().report
    assert few.max_abs_deviation == pytest.approx(1.0) and few.empty_rms == 1
    assert any("3 cells for 4 RMs" in why for why in few.unreachable)
    assert any("cannot be reached" in note and "3 cells for 4 RMs" in note for note in few.notes)
    assert few.summary()["unreachable_5pct"] == few.unreachable
    # A heavy cell: its owner is 80% over; the report says the grid is too coarse there.
    adj, xy = grid_arrays(3, 4)
    w = np.ones(12)
    w[5] = 9.0
    heavy = TerritoryPlan.from_arrays(w, adj, xy[[0, 3, 8, 11]], xy, np.ones(4)).solve().report
    assert len(heavy.unreachable) == 1 and "1.80 times the largest target" in heavy.unreachable[0]
    assert "refine the grid" in heavy.unreachable[0]
    # Balanced data: nothing to excuse.
    ok = TerritoryPlan.from_arrays(np.ones(12), adj, xy[[0, 3, 8, 11]], xy, np.ones(4)).solve().report
    assert ok.unreachable == [] and ok.max_abs_deviation <= 0.05


def test_report_reasons_per_region():
    adj, xy = grid_arrays(2, 4)
    cells = np.array(["a"] * 4 + ["b"] * 4, dtype=object)
    # Region a: 4 cells, 2 RMs (fine); region b: 4 cells for 5 RMs.
    rms = np.array(["a", "a", "b", "b", "b", "b", "b"], dtype=object)
    homes = xy[[0, 3, 4, 5, 6, 7, 7]]
    plan = TerritoryPlan.from_arrays(np.ones(8), adj, homes, xy, np.ones(7), regions=(cells, rms)).solve()
    pr = plan.report.per_region.set_index("region")
    assert pr.loc["a", "unreachable_5pct"] == ""
    assert "4 cells for 5 RMs" in pr.loc["b", "unreachable_5pct"]
    assert any(why.startswith("b: 4 cells for 5 RMs") for why in plan.report.unreachable)
