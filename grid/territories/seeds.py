"""Initial territories: seeds, region growing, orphan repair.

See :mod:`grid.territories.solver` for the whole algorithm.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from grid.territories.solver import Problem, loads_of


def choose_seeds(p: Problem, taken: np.ndarray) -> np.ndarray:
    """One seed cell per active RM (-1 when none is left); ``taken`` marks unavailable cells."""
    seeds = np.full(p.k, -1)
    active = np.flatnonzero(p.capacity > 0)
    busy = taken.copy()
    for r in active:
        own = np.flatnonzero(p.locked == r)
        if len(own):
            seeds[r] = own[np.argmin(np.hypot(*(p.cell_xy[own] - p.home_xy[r]).T))]
            busy[own] = True
    free = np.flatnonzero(~busy)
    if len(free) == 0:
        return seeds
    tree = cKDTree(p.cell_xy[free])
    todo = [r for r in active if seeds[r] < 0]
    groups: dict[tuple[int, int], list[int]] = {}
    for r in todo:
        groups.setdefault(tuple(np.round(p.home_xy[r]).astype(int)), []).append(int(r))
    per_rm = p.n / max(len(active), 1)
    used = np.zeros(p.n, dtype=bool)
    for _, rms in sorted(groups.items()):
        pool_size = min(len(free), max(len(rms), int(np.ceil(len(rms) * per_rm))))
        _, idx = tree.query(p.home_xy[rms[0]], k=pool_size)
        pool = free[np.atleast_1d(idx)]
        pool = pool[~used[pool]]
        if len(pool) == 0:
            continue
        pts = p.cell_xy[pool]
        mind = np.full(len(pool), np.inf)
        pick = 0  # the free cell nearest the outlet first
        for r in rms:
            seeds[r] = pool[pick]
            used[pool[pick]] = True
            mind = np.minimum(mind, np.hypot(*(pts - pts[pick]).T))
            mind[used[pool]] = -1.0
            if mind.max() < 0:
                break
            pick = int(np.argmax(mind))
    # Pools of nearby outlets can run dry on small grids: then the nearest unused free cell.
    for r in todo:
        left = free[~used[free]]
        if seeds[r] >= 0 or len(left) == 0:
            continue
        seeds[r] = left[np.argmin(np.hypot(*(p.cell_xy[left] - p.home_xy[r]).T))]
        used[seeds[r]] = True
    return seeds


def grow(p: Problem, a: np.ndarray, anchor_xy: np.ndarray) -> np.ndarray:
    """Assign every cell with ``a == -1`` by multi-source region growing (in place)."""
    load = loads_of(p, a).tolist()
    cap = np.where(p.capacity > 0, p.capacity, 1.0).tolist()
    ax, ay = anchor_xy[:, 0].tolist(), anchor_xy[:, 1].tolist()
    cx, cy, nbrs = p._cx, p._cy, p.nbrs
    al = a.tolist()
    frontier: list[list[tuple[int, float, int]]] = [[] for _ in range(p.k)]

    def push(r: int, c: int) -> None:
        d = math.hypot(cx[c] - ax[r], cy[c] - ay[r])
        heapq.heappush(frontier[r], (0 if p.in_range(c, r) else 1, d, c))

    for c in np.flatnonzero(a >= 0).tolist():
        r = al[c]
        if p.capacity[r] > 0:
            for v in nbrs[c]:
                if al[v] < 0:
                    push(r, v)
    tie = p.rng.random(p.k).tolist()
    order = [(0, load[r] / cap[r], tie[r], r) for r in range(p.k) if frontier[r]]
    heapq.heapify(order)
    while order:
        flag, _, t, r = heapq.heappop(order)
        fr = frontier[r]
        while fr and al[fr[0][2]] >= 0:
            heapq.heappop(fr)
        if not fr:
            continue
        if fr[0][0] != flag:
            heapq.heappush(order, (fr[0][0], load[r] / cap[r], t, r))
            continue
        _, _, c = heapq.heappop(fr)
        al[c] = r
        load[r] += p.weight(c, r)
        for v in nbrs[c]:
            if al[v] < 0:
                push(r, v)
        if fr:
            heapq.heappush(order, (fr[0][0], load[r] / cap[r], t, r))
    a[:] = al
    left = np.flatnonzero(a < 0)
    active = np.flatnonzero(p.capacity > 0)
    if len(left) and len(active):
        # Unreachable cells (no islands rule, or no seed could reach them): nearest home.
        _, j = cKDTree(p.home_xy[active]).query(p.cell_xy[left])
        a[left] = active[j]
    return a


def orphan_cells(p: Problem, a: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Unlocked cells of every piece of a territory except its main piece.

    The main piece holds the seed, else the most workload.
    """
    same = a[p.pairs[:, 0]] == a[p.pairs[:, 1]]
    e = p.pairs[same]
    g = sparse.csr_array((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(p.n, p.n))
    _, label = connected_components(g, directed=False)
    own = a >= 0
    piece_w = np.bincount(label[own], weights=p.base[own] + 1e-12, minlength=p.n)
    main = np.full(p.k, -1)
    best = np.full(p.k, -1.0)
    for c in np.flatnonzero(own):
        r = a[c]
        if piece_w[label[c]] > best[r]:
            best[r], main[r] = piece_w[label[c]], label[c]
    for r in np.flatnonzero(seeds >= 0):
        if a[seeds[r]] == r:
            main[r] = label[seeds[r]]
    orphan = own & (label != main[np.where(own, a, 0)]) & (p.locked < 0)
    return np.flatnonzero(orphan)


def distinct_seeds(p: Problem, seeds: np.ndarray, keep_rows: np.ndarray) -> np.ndarray:
    """Seeds with duplicates resolved: RMs not in ``keep_rows`` that share a seed move to the nearest unused free cell."""
    used = set(seeds[keep_rows & (seeds >= 0)].tolist())
    tree = None
    for r in np.flatnonzero(~keep_rows & (p.capacity > 0)).tolist():
        if seeds[r] >= 0 and seeds[r] not in used:
            used.add(int(seeds[r]))
            continue
        tree = tree or cKDTree(p.cell_xy)
        _, near = tree.query(p.home_xy[r], k=min(p.n, len(used) + 64))
        pick = next((c for c in np.atleast_1d(near).tolist() if c not in used and p._locked[c] < 0), -1)
        seeds[r] = pick
        if pick >= 0:
            used.add(pick)
    return seeds
