"""Balanced contiguous start: outlet catchments by a weighted graph Voronoi, each cut into its RMs' territories.

Region growing from one seed per RM balances badly when many RMs share an
outlet or one outlet faces a large empty area: RMs get walled in early and the
last ones with room take the rest (several times their target on a province).
This start is balanced by construction and contiguous whatever its numbers:

1. *Catchments.* RMs whose homes fall in one cell form an outlet. Every cell
   goes to the outlet minimising ``offset[o] + path length from the outlet's
   cell`` over the cell graph (edges as long as their centroids are apart), so
   each catchment is a subtree of one shortest-path tree and hence contiguous.
   One offset per outlet is tuned, each with its own step (halved when its
   deviation changes sign, as in Rprop), until every catchment holds about its
   RMs' share of the workload; the best round is kept.
2. *Territories.* Each catchment's tree is cut bottom-up: a subtree becomes an
   RM's territory once its workload reaches that RM's share (the threshold is
   searched so that the outlet's RMs get one piece each, the piece holding the
   outlet last). Subtrees of a shortest-path tree radiate from the outlet, so
   RMs sharing an outlet get sectors of its catchment.

The result is a start for :mod:`grid.territories.solver`, which balances the
rest; locks and the maximum distance are applied by the caller.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from grid.territories.solver import Problem


def _owner_of_top(pred: np.ndarray, top_label: np.ndarray) -> np.ndarray:
    """Label of every node of a tree rooted at node ``n`` (last of ``pred``): the label of the child of the root above it.

    ``top_label`` (n,) is the label of each node if it hangs from the root; -1 for unreached nodes.
    """
    n = len(top_label)
    up = np.asarray(pred[:n], dtype=np.int64).copy()
    top = up == n
    up[top] = np.flatnonzero(top)
    up[(up < 0) | (up >= n)] = -1
    # Pointer jumping: every round doubles how far up a node looks; the root's children point at themselves.
    while True:
        nxt = np.where(up >= 0, up[np.maximum(up, 0)], -1)
        if np.array_equal(nxt, up):
            break
        up = nxt
    return np.where(up >= 0, top_label[np.maximum(up, 0)], -1)


def _catchments(p: Problem, src: np.ndarray, share: np.ndarray, home: np.ndarray, *, rounds: int):
    """Outlet of every cell, shortest-path predecessors and path lengths, offsets tuned to ``share`` (module docstring)."""
    n, m = p.n, len(src)
    i, j = p.pairs[:, 0], p.pairs[:, 1]
    length = np.hypot(*(p.cell_xy[i] - p.cell_xy[j]).T) + 1e-3
    edge = float(np.median(length)) if len(length) else 1.0
    rows = np.concatenate([i, j, np.full(m, n)])
    cols = np.concatenate([j, i, src])
    top_label = np.full(n, -1, dtype=np.int64)
    top_label[src] = np.arange(m)
    offset = np.zeros(m)
    gain, prev = np.full(m, 0.25), None
    best = None
    for it in range(rounds):
        lift = offset - offset.min() + 1.0
        g = sparse.csr_array((np.concatenate([length, length, lift]), (rows, cols)), shape=(n + 1, n + 1))
        dist, pred = dijkstra(g, directed=True, indices=n, return_predecessors=True)
        p.budget.spend(n / 8.0)
        zone = _owner_of_top(pred, top_label)
        own = zone >= 0
        w = p.base[own].copy()
        if p.travel:
            w += p.travel * np.hypot(*(p.cell_xy[own] - home[zone[own]]).T)
        load = np.bincount(zone[own], weights=w, minlength=m)
        goal = load.sum() * share
        dev = np.where(goal > 0, load / np.where(goal > 0, goal, 1.0) - 1.0, 0.0)
        bad = (float(np.abs(dev).max()), float((dev**2).sum()))
        if best is None or bad < best[0]:
            best = (bad, zone, pred, dist)
        if bad[0] <= 0.01 or p.budget.over():
            break
        # Raising an offset by d moves the border in by about d / 2: steps scale with the catchment's radius
        # (~0.53 edge * sqrt(cells) for hexagons), times a factor per outlet that halves when its
        # deviation changes sign and grows while it keeps it (as in Rprop).
        size = np.bincount(zone[own], minlength=m)
        radius = 0.53 * edge * np.sqrt(np.maximum(size, n / (4.0 * m)))
        if it > 0:
            gain = np.where(np.sign(dev) * np.sign(prev) < 0, 0.5 * gain, np.minimum(1.2 * gain, 1.0))
        prev = dev
        offset += gain * radius * np.clip(dev, -1.0, 1.0)
    return best[1], best[2], best[3]


def _cut_tree(order: np.ndarray, parent: np.ndarray, w: np.ndarray, shares: np.ndarray, unit: float) -> tuple[list[int], float]:
    """Tops of the subtrees cut bottom-up at thresholds ``unit * shares[k]`` (at most len(shares) - 1), and the rest's workload.

    ``order`` lists the nodes children first (the root last); ``parent`` maps node to parent (-1 for the root).
    """
    rest = dict(zip(order.tolist(), w.tolist(), strict=True))
    tops: list[int] = []
    cuts = len(shares) - 1
    for v, up in zip(order.tolist(), parent.tolist(), strict=True):
        if up < 0:
            continue
        if len(tops) < cuts and rest[v] >= unit * shares[len(tops)]:
            tops.append(v)
        else:
            rest[up] += rest[v]
    return tops, rest[order[-1].item()] if len(order) else 0.0


def _split_catchment(nodes: np.ndarray, pred: np.ndarray, dist: np.ndarray, w: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Piece index (into ``shares``) of each of ``nodes``: one subtree per share, balanced by a search on the threshold."""
    order = np.argsort(-dist, kind="stable")
    ordered = nodes[order]
    parent = pred[ordered]
    inside = np.isin(parent, nodes)
    parent = np.where(inside, parent, -1)
    wo = w[order]
    total = float(wo.sum())
    lo, hi = 0.0, total / max(shares.sum(), 1e-12) * 2.0
    best = None
    # More cuts as the threshold falls: find the threshold where the last piece (the rest) is nearest its share.
    for _ in range(30):
        unit = 0.5 * (lo + hi)
        tops, rest = _cut_tree(ordered, parent, wo, shares, unit)
        err = abs(rest - unit * shares[-1]) if len(tops) == len(shares) - 1 else math.inf
        if best is None or err < best[0]:
            best = (err, tops)
        if len(tops) == len(shares) - 1 and rest > unit * shares[-1]:
            lo = unit  # all cuts made and the rest is too big: cut bigger pieces
        else:
            hi = unit
    tops = best[1]
    piece = np.full(len(nodes), len(shares) - 1, dtype=np.int64)
    top_index = {t: k for k, t in enumerate(tops)}
    pos = {v: k for k, v in enumerate(ordered.tolist())}
    label = np.full(len(ordered), len(shares) - 1, dtype=np.int64)
    # Parents before children: a node takes its own cut's piece, else its parent's.
    for k in range(len(ordered) - 1, -1, -1):
        v = int(ordered[k])
        if v in top_index:
            label[k] = top_index[v]
        elif parent[k] >= 0:
            label[k] = label[pos[int(parent[k])]]
    piece[order] = label
    return piece


def balanced_start(p: Problem, *, rounds: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """A contiguous, roughly balanced assignment of all reachable cells, and a centre cell per RM.

    Returns ``(assignment, centre)``: RM rows per cell (-1 when no outlet
    reaches the cell), and for each RM the cell of its territory nearest the
    territory's centroid (-1 for RMs without cells or capacity). Locks and the
    maximum distance are ignored here.

    Examples
    --------
    >>> from grid.territories.graph import neighbour_lists, pairs_to_csr
    >>> pairs = np.array([[i, i + 1] for i in range(7)])
    >>> xy = np.column_stack([np.arange(8.0), np.zeros(8)])
    >>> p = Problem(np.ones(8), neighbour_lists(pairs_to_csr(pairs, 8)), pairs, xy, xy[[0, 0, 7]], np.ones(3),
    ...     np.full(8, -1), 0.0, None, None, np.random.default_rng(0))
    >>> a, centre = balanced_start(p)
    >>> sorted(np.bincount(a).tolist()), bool((a[centre] == np.arange(3)).all())
    ([2, 3, 3], True)
    """
    n, k = p.n, p.k
    a = np.full(n, -1, dtype=np.int64)
    centre = np.full(k, -1, dtype=np.int64)
    active = np.flatnonzero(p.capacity > 0)
    if n == 0 or len(active) == 0:
        return a, centre
    # RMs whose homes fall nearest one cell share an outlet.
    _, cell_of = cKDTree(p.cell_xy).query(p.home_xy[active])
    src, group = np.unique(np.atleast_1d(cell_of), return_inverse=True)
    group = group.ravel()
    cap = p.capacity[active]
    share = np.bincount(group, weights=cap, minlength=len(src)) / cap.sum()
    home = p.home_xy[active][np.unique(group, return_index=True)[1]]
    zone, pred, dist = _catchments(p, src, share, home, rounds=rounds)
    for o in range(len(src)):
        nodes = np.flatnonzero(zone == o)
        rms = active[group == o]
        if len(nodes) == 0:
            continue
        if len(rms) == 1:
            a[nodes] = rms[0]
            continue
        w = p.base[nodes].copy()
        if p.travel:
            w += p.travel * np.hypot(*(p.cell_xy[nodes] - home[o]).T)
        piece = _split_catchment(nodes, pred, dist[nodes], w, p.capacity[rms])
        a[nodes] = rms[piece]
    own = a >= 0
    cnt = np.bincount(a[own], minlength=k)
    cx = np.bincount(a[own], weights=p.cell_xy[own, 0], minlength=k) / np.maximum(cnt, 1)
    cy = np.bincount(a[own], weights=p.cell_xy[own, 1], minlength=k) / np.maximum(cnt, 1)
    cells = np.flatnonzero(own)
    d2 = (p.cell_xy[cells, 0] - cx[a[cells]]) ** 2 + (p.cell_xy[cells, 1] - cy[a[cells]]) ** 2
    order = np.lexsort((d2, a[cells]))
    first = np.ones(len(order), dtype=bool)
    first[1:] = a[cells][order][1:] != a[cells][order][:-1]
    centre[a[cells][order][first]] = cells[order][first]
    return a, centre

