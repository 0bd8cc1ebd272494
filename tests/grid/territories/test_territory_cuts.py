"""Large territories giving cells away: cut cells at any size, the balanced start, stuck-county cases."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from grid.territories import TerritoryPlan
from grid.territories.cuts import TerritoryCuts
from grid.territories.graph import neighbour_lists, pairs_to_csr, pieces_per_owner, stays_connected
from grid.territories.start import balanced_start


def grid_graph(rows: int, cols: int):
    """Adjacency and centroids (100 m squares) of a rows x cols grid; cell = r * cols + c."""
    pairs = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    pairs += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    xy = np.array([[c * 100.0 + 50, r * 100.0 + 50] for r in range(rows) for c in range(cols)])
    return pairs_to_csr(np.array(pairs), rows * cols), xy


def one_piece(adj, cells: np.ndarray) -> bool:
    """True if ``cells`` (indices) form one connected piece of ``adj`` (an empty set counts as one)."""
    if len(cells) == 0:
        return True
    sub = sparse.csr_array(adj)[cells][:, cells]
    return connected_components(sub, directed=False)[0] == 1


def ring_and_hub(n_ring: int = 480, n_hub: int = 6):
    """A cycle of ``n_ring`` cells around a path of ``n_hub`` cells, hub cell i touching ring cell i * n_ring / n_hub."""
    pairs = [(i, (i + 1) % n_ring) for i in range(n_ring)]
    pairs += [(n_ring + h, n_ring + h + 1) for h in range(n_hub - 1)]
    pairs += [(n_ring + h, h * n_ring // n_hub) for h in range(n_hub)]
    angle = 2 * np.pi * np.arange(n_ring) / n_ring
    ring = np.column_stack([np.cos(angle), np.sin(angle)]) * 8000.0
    hub = ring[[h * n_ring // n_hub for h in range(n_hub)]] * 0.9
    return pairs_to_csr(np.array(pairs), n_ring + n_hub), np.vstack([ring, hub])


def test_stays_connected_judges_a_ring_of_500_cells_exactly():
    # Every cell of a cycle fails the local test (its two neighbours meet only around the ring); the
    # old check refused territories over 400 cells there, though any one cell can go.
    adj, _ = ring_and_hub(500, 1)
    nbrs = neighbour_lists(adj)
    a = [0] * 500 + [1]
    cuts = TerritoryCuts(nbrs)
    assert stays_connected(nbrs, a, 250, 500)
    assert stays_connected(nbrs, a, 250, 500, cuts=cuts)
    a[250] = 1
    cuts.touch(0)
    cuts.touch(1)
    # Now a path from 251 round to 249: its inner cells cut it, its ends do not.
    assert not stays_connected(nbrs, a, 100, 499, cuts=cuts)
    assert stays_connected(nbrs, a, 251, 499, cuts=cuts)
    assert sorted(cuts.cut_off(a, 245, 499)) == [245, 246, 247, 248, 249]


def test_a_territory_of_480_cells_must_give_half_away_from_a_bad_start():
    # The stuck-county case in small: RM 0 holds a 480-cell ring, RM 1 six hub cells touching it.
    # Starting from that plan (keep_current), half the ring must move and both stay one piece.
    adj, xy = ring_and_hub()
    n = adj.shape[0]
    current = np.r_[np.zeros(480, dtype=int), np.ones(6, dtype=int)]
    homes = xy[[240, 483]]
    plan = TerritoryPlan.from_arrays(
        np.ones(n), adj, homes, xy, np.ones(2), current=current, keep_current=True
    ).solve()
    assert abs(plan.report.max_abs_deviation) <= 0.05
    assert plan.report.contiguity == 1.0
    assert (plan.assignment[:480] == 1).sum() > 200


def test_rms_sharing_one_outlet_at_the_edge_of_a_large_empty_area_are_balanced():
    # Six RMs at one outlet in the corner of a 24 x 24 area of light cells, two RMs at a busy town far off:
    # region growing walled RMs in here; the balanced start cuts the outlet's catchment into sectors.
    adj, xy = grid_graph(24, 24)
    w = np.full(24 * 24, 0.2)
    town = [r * 24 + c for r in range(20, 24) for c in range(20, 24)]
    w[town] = 3.0
    homes = np.vstack([np.repeat(xy[[0]], 6, axis=0), xy[[575, 575]]])
    plan = TerritoryPlan.from_arrays(w, adj, homes, xy, np.ones(8), seed=1).solve()
    rep = plan.report
    assert rep.contiguity == 1.0 and rep.empty_rms == 0
    assert rep.max_abs_deviation <= 0.1 + rep.deviation_bound


@st.composite
def territories(draw):
    """A random grid split between three owners (pieces allowed)."""
    rows, cols = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    owners = draw(st.lists(st.integers(0, 2), min_size=rows * cols, max_size=rows * cols))
    return rows, cols, owners


@settings(max_examples=80, deadline=None)
@given(territories())
@example((2, 3, [0, 0, 0, 1, 0, 1]))  # a hub cutting its territory into three single cells (CI found it)
def test_property_cut_cells_match_brute_force(problem):
    rows, cols, owners = problem
    adj, _ = grid_graph(rows, cols)
    nbrs = neighbour_lists(adj)
    a = np.array(owners)
    cuts = TerritoryCuts(nbrs)
    for c in range(rows * cols):
        own = np.flatnonzero(a == a[c])
        rest = own[own != c]
        whole = one_piece(adj, own)
        truth = whole and one_piece(adj, rest)
        assert cuts.removable(owners, c, len(own)) == truth  # a territory already in pieces gives nothing
        if whole:
            assert stays_connected(nbrs, owners, c, len(own), cuts=cuts) == truth
            assert stays_connected(nbrs, owners, c, len(own)) == truth
        group = cuts.cut_off(owners, c, len(own))
        if group is not None:
            # The cell and what it cuts off leave one piece behind, the largest one.
            assert c in group and len(set(group)) == len(group)
            left = np.setdiff1d(own, group)
            sub = sparse.csr_array(adj)[rest][:, rest]
            _, piece = connected_components(sub, directed=False)
            assert one_piece(adj, left) and len(left) == np.bincount(piece).max()


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.integers(1, 6), st.integers(0, 10_000))
def test_property_balanced_start_is_contiguous_and_complete(rows, cols, k, seed):
    adj, xy = grid_graph(rows, cols)
    n = rows * cols
    k = min(k, n)
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0, 1, n)
    # Homes at few cells, so several RMs often share an outlet.
    homes = xy[rng.integers(0, n, size=max(1, k // 2))][rng.integers(0, max(1, k // 2), size=k)]
    plan = TerritoryPlan.from_arrays(w, adj, homes, xy, np.ones(k))
    p = plan._problem(move_penalty=False)
    a, centre = balanced_start(p)
    assert ((a >= 0) & (a < k)).all()
    assert (pieces_per_owner(adj, a, k) <= 1).all()
    has = centre >= 0
    assert (a[centre[has]] == np.flatnonzero(has)).all()
    solved = plan.solve()
    assert solved.report.contiguity == 1.0 and solved.report.empty_rms == 0
