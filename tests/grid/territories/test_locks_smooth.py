"""A plan never breaks a lock (any number per RM, with part-time RMs, travel and keep_current), and smoothing
shortens borders without breaking a lock, a territory or the balance band (issue 17)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.territories import TerritoryPlan
from grid.territories.graph import pairs_to_csr, pieces_per_owner
from grid.territories.smooth import smooth
from grid.territories.solver import _deviation


def grid_arrays(rows: int, cols: int):
    """Adjacency, pairs and centroids (100 m squares) of a rows × cols grid; cell = r * cols + c."""
    pairs = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    pairs += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    xy = np.array([[c * 100.0 + 50, r * 100.0 + 50] for r in range(rows) for c in range(cols)])
    return pairs_to_csr(np.array(pairs), rows * cols), np.array(pairs), xy


@st.composite
def locked_problems(draw):
    rows, cols = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    n = rows * cols
    k = draw(st.integers(1, min(6, n)))
    w = np.array(draw(st.lists(st.floats(0.01, 9.0), min_size=n, max_size=n)))
    homes = draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k))
    capacity = np.array(draw(st.lists(st.sampled_from([0.5, 1.0, 1.0]), min_size=k, max_size=k)))
    cells = draw(st.lists(st.integers(0, n - 1), max_size=min(n, 3 * k), unique=True))
    locked = {c: draw(st.integers(0, k - 1)) for c in cells}  # several per RM, anywhere, even apart
    travel = draw(st.sampled_from([0.0, 0.3]))
    current = np.array(draw(st.lists(st.integers(-1, k - 1), min_size=n, max_size=n)))
    keep = draw(st.booleans())
    return rows, cols, w, homes, capacity, locked, travel, current, keep, draw(st.integers(0, 5))


@settings(max_examples=30, deadline=None)
@given(locked_problems())
def test_property_a_plan_never_breaks_a_lock(problem):
    rows, cols, w, homes, capacity, locked, travel, current, keep, seed = problem
    adj, _, xy = grid_arrays(rows, cols)
    plan = TerritoryPlan.from_arrays(w, adj, xy[homes], xy, capacity, locked=locked, seed=seed, travel_weight=travel,
                                     current=current if keep else None, keep_current=keep).solve(time_limit_s=5)
    a = plan.assignment
    assert all(a[c] == r for c, r in locked.items())
    assert ((a >= 0) & (a < len(homes))).all()


def _cut_edges(pairs: np.ndarray, a: np.ndarray) -> int:
    return int((a[pairs[:, 0]] != a[pairs[:, 1]]).sum())


@settings(max_examples=30, deadline=None)
@given(locked_problems(), st.sampled_from([0.0, 0.05, 0.3]))
def test_property_smoothing_keeps_locks_pieces_and_band(problem, slack):
    rows, cols, w, homes, capacity, locked, travel, _, _, seed = problem
    adj, pairs, xy = grid_arrays(rows, cols)
    plan = TerritoryPlan.from_arrays(w, adj, xy[homes], xy, capacity, locked=locked, seed=seed, travel_weight=travel)
    plan.solve(time_limit_s=5)
    p = plan._problem(move_penalty=False)
    a = plan.assignment.copy()
    k = len(homes)
    pieces = pieces_per_owner(plan.adjacency, a, k)
    before = float(np.abs(_deviation(p, a)[2]).max())
    cut = _cut_edges(pairs, a)
    smooth(p, a, xy[homes], tolerance=0.01, slack=slack)
    assert all(a[c] == r for c, r in locked.items())
    assert ((a >= 0) & (a < k)).all()
    # No territory falls apart or empties; the border only gets shorter; no RM leaves the band.
    assert (pieces_per_owner(plan.adjacency, a, k) <= np.maximum(pieces, 1)).all()
    assert (np.bincount(a, minlength=k) > 0).sum() == (np.bincount(plan.assignment, minlength=k) > 0).sum()
    assert _cut_edges(pairs, a) <= cut
    assert float(np.abs(_deviation(p, a)[2]).max()) <= max(before, slack, 0.01) + 1e-9


def test_smoothing_straightens_a_tooth():
    # 4 x 4 squares, two RMs split down the middle, except RM 0 owns one cell of RM 1's side (a tooth).
    adj, pairs, xy = grid_arrays(4, 4)
    a = np.array([0, 0, 1, 1] * 4)
    a[6] = 0  # row 1, column 2
    a[9] = 1  # and RM 1 one of RM 0's side (row 2, column 1): balance holds either way
    plan = TerritoryPlan.from_arrays(np.ones(16), adj, xy[[4, 7]], xy, np.ones(2))
    p = plan._problem(move_penalty=False)
    out = smooth(p, a.copy(), xy[[4, 7]], tolerance=0.0, slack=0.2)
    assert _cut_edges(pairs, out) < _cut_edges(pairs, a)
    assert np.bincount(out).tolist() == [8, 8]
