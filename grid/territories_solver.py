"""Territory optimiser internals: seeded region growing, flow rebalancing, local polish.

Algorithm (all on the cell adjacency graph, distances in metres):

1. *Seeds.* Each active RM (capacity > 0) gets one seed cell: its locked cell
   nearest its home outlet, else the free cell nearest the home. RMs sharing
   an outlet get seeds spread by farthest-point sampling over the cells
   nearest that outlet (as many as their share of the grid), so co-located
   RMs split the outlet's surroundings instead of piling on one cell.
2. *Region growing.* Multi-source: the RM with the lowest load / capacity
   takes the frontier cell nearest its seed; cells beyond ``max_distance`` are
   taken only when no RM has a cell within range. Every territory grows from
   one seed through adjacent cells, so it is contiguous by construction.
3. *Flow rebalancing.* The excess ``load - target`` of every RM is routed over
   the RM adjacency graph by the minimum-norm flow (solve ``L phi = excess``
   with the boundary-weighted Laplacian ``L``); each RM pair then moves border
   cells along its flow, cells nearest the receiver's seed first. Repeated until
   the flows no longer improve the balance. Global imbalance moves in a few rounds.
4. *Local polish.* Single border-cell moves that lower the sum of squared
   relative deviations, worst RMs first, with compactness (distance to the
   receiver's seed versus the donor's) as the tie-breaker.

A move never takes a locked cell, never empties the donor and never cuts the
donor in two (:func:`grid.territories_graph.stays_connected`); the receiver is
adjacent to the cell, so it stays connected too.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import spsolve
from scipy.spatial import cKDTree

from grid.territories_graph import stays_connected


@dataclass
class Problem:
    """Everything the solver needs, as arrays."""

    base: np.ndarray  # (n,) workload that does not depend on the owner
    nbrs: list[list[int]]
    pairs: np.ndarray  # (m, 2) undirected adjacency pairs, i < j
    cell_xy: np.ndarray  # (n, 2) metres
    home_xy: np.ndarray  # (k, 2) metres
    capacity: np.ndarray  # (k,)
    locked: np.ndarray  # (n,) rm row or -1
    travel: float  # workload per metre of distance from the owner's home
    max_distance_m: float | None
    move_penalty: np.ndarray | None  # (n,) current owner, when moves are penalised
    rng: np.random.Generator

    @property
    def n(self) -> int:
        return len(self.base)

    @property
    def k(self) -> int:
        return len(self.capacity)

    def dist(self, cell: int, rm: int) -> float:
        """Metres from a cell to an RM's home."""
        d = self.cell_xy[cell] - self.home_xy[rm]
        return float(np.hypot(d[0], d[1]))

    def weight(self, cell: int, rm: int) -> float:
        """Workload of a cell when owned by ``rm``."""
        if self.travel == 0.0:
            return float(self.base[cell])
        return float(self.base[cell]) + self.travel * self.dist(cell, rm)

    def in_range(self, cell: int, rm: int) -> bool:
        """True if ``cell`` is within the maximum distance of ``rm``'s home."""
        return self.max_distance_m is None or self.dist(cell, rm) <= self.max_distance_m


def loads_of(p: Problem, a: np.ndarray) -> np.ndarray:
    """Workload per RM of an assignment (unassigned cells ignored)."""
    own = a >= 0
    load = np.bincount(a[own], weights=p.base[own], minlength=p.k)
    if p.travel:
        d = np.hypot(*(p.cell_xy[own] - p.home_xy[a[own]]).T)
        load += p.travel * np.bincount(a[own], weights=d, minlength=p.k)
    return load


def targets_of(p: Problem, total: float) -> np.ndarray:
    """Target workload per RM: the total split in proportion to capacity."""
    cap = np.clip(p.capacity, 0, None)
    return total * cap / cap.sum() if cap.sum() > 0 else np.zeros(p.k)


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
    return seeds


def grow(p: Problem, a: np.ndarray, anchor_xy: np.ndarray) -> np.ndarray:
    """Assign every cell with ``a == -1`` by multi-source region growing (in place)."""
    load = loads_of(p, a)
    cap = np.where(p.capacity > 0, p.capacity, 1.0)
    frontier: list[list[tuple[int, float, int]]] = [[] for _ in range(p.k)]

    def push(r: int, c: int) -> None:
        d = float(np.hypot(*(p.cell_xy[c] - anchor_xy[r])))
        heapq.heappush(frontier[r], (0 if p.in_range(c, r) else 1, d, c))

    for c in np.flatnonzero(a >= 0).tolist():
        r = int(a[c])
        if p.capacity[r] > 0:
            for v in p.nbrs[c]:
                if a[v] < 0:
                    push(r, v)
    tie = p.rng.random(p.k)
    order = [(0, load[r] / cap[r], tie[r], r) for r in range(p.k) if frontier[r]]
    heapq.heapify(order)
    while order:
        flag, _, t, r = heapq.heappop(order)
        fr = frontier[r]
        while fr and a[fr[0][2]] >= 0:
            heapq.heappop(fr)
        if not fr:
            continue
        if fr[0][0] != flag:
            heapq.heappush(order, (fr[0][0], load[r] / cap[r], t, r))
            continue
        _, _, c = heapq.heappop(fr)
        a[c] = r
        load[r] += p.weight(c, r)
        for v in p.nbrs[c]:
            if a[v] < 0:
                push(r, v)
        if fr:
            heapq.heappush(order, (fr[0][0], load[r] / cap[r], t, r))
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


def _boundary(p: Problem, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed cut pairs (cell, neighbour) whose owners differ, both owned."""
    i, j = p.pairs[:, 0], p.pairs[:, 1]
    cut = (a[i] != a[j]) & (a[i] >= 0) & (a[j] >= 0)
    i, j = i[cut], j[cut]
    return np.concatenate([i, j]), np.concatenate([j, i])


def _score(p: Problem, c: int, donor: int, receiver: int, anchor_xy: np.ndarray) -> float:
    """Lower is better: cells nearer the receiver's seed than the donor's, no penalised moves."""
    db = np.hypot(*(p.cell_xy[c] - anchor_xy[receiver]))
    da = np.hypot(*(p.cell_xy[c] - anchor_xy[donor]))
    s = float(db - da)
    if p.move_penalty is not None:
        cur = p.move_penalty[c]
        s += 1e9 if cur == donor else (-1e9 if cur == receiver else 0.0)
    return s


def _can_move(p: Problem, a: np.ndarray, size: np.ndarray, c: int, receiver: int) -> bool:
    """Whether ``c`` may leave its owner for the adjacent ``receiver``."""
    donor = a[c]
    return (
        p.locked[c] < 0
        and size[donor] > 1
        and p.in_range(c, receiver)
        and stays_connected(p.nbrs, a, c, int(size[donor]))
    )


def rebalance(
    p: Problem, a: np.ndarray, anchor_xy: np.ndarray, *, tolerance: float, max_rounds: int = 60
) -> np.ndarray:
    """Flow rebalancing rounds (in place); stops at ``tolerance`` or when rounds stop helping."""
    active = p.capacity > 0
    size = np.bincount(a[a >= 0], minlength=p.k)
    best, stale = np.inf, 0
    for _ in range(max_rounds):
        load = loads_of(p, a)
        target = targets_of(p, load.sum())
        dev = np.where(active, (load - target) / np.where(active, target, 1.0), 0.0)
        worst = float(np.abs(dev).max())
        if worst <= tolerance:
            break
        if worst < best - 1e-4:
            best, stale = worst, 0
        else:
            stale += 1
            if stale >= 3:
                break
        src, dst = _boundary(p, a)
        ra, rb = a[src], a[dst]
        ok = active[ra] & active[rb]
        src, dst, ra, rb = src[ok], dst[ok], ra[ok], rb[ok]
        w = sparse.coo_array((np.ones(len(ra)), (ra, rb)), shape=(p.k, p.k)).tocsr()
        w.sum_duplicates()
        lap = sparse.diags(np.asarray(w.sum(axis=1)).ravel()) - w
        excess = np.where(active, load - target, 0.0)
        ncomp, comp = connected_components(w, directed=False)
        # Each connected group of RMs can only balance within itself.
        for g in range(ncomp):
            m = comp == g
            excess[m] -= excess[m].mean()
        reg = sparse.diags(np.full(p.k, 1e-9 * max(float(lap.diagonal().max()), 1.0)))
        phi = spsolve((lap + reg).tocsc(), excess)
        wc = w.tocoo()
        flow = phi[wc.row] - phi[wc.col]
        go = flow > 0
        edges = sorted(
            zip(flow[go].tolist(), wc.row[go].tolist(), wc.col[go].tolist(), strict=True),
            reverse=True,
        )
        # Border cells of each (donor, receiver) pair.
        order = np.lexsort((rb, ra))
        ra_s, rb_s, src_s = ra[order], rb[order], src[order]
        key = ra_s.astype(np.int64) * p.k + rb_s
        starts = np.searchsorted(key, [d * p.k + r for _, d, r in edges])
        ends = np.searchsorted(key, [d * p.k + r for _, d, r in edges], side="right")
        for (f, donor, receiver), s0, s1 in zip(edges, starts, ends, strict=True):
            cand = [(_score(p, c, donor, receiver, anchor_xy), c) for c in set(src_s[s0:s1].tolist())]
            heapq.heapify(cand)
            remaining = f
            seen: set[int] = set()
            while cand and remaining > 0:
                _, c = heapq.heappop(cand)
                if c in seen or a[c] != donor:
                    continue
                seen.add(c)
                wr = p.weight(c, receiver)
                if wr >= 2 * remaining or not _can_move(p, a, size, c, receiver):
                    continue
                a[c] = receiver
                size[donor] -= 1
                size[receiver] += 1
                remaining -= wr
                for v in p.nbrs[c]:
                    if a[v] == donor and v not in seen:
                        heapq.heappush(cand, (_score(p, v, donor, receiver, anchor_xy), v))
    return a


def polish(
    p: Problem, a: np.ndarray, anchor_xy: np.ndarray, *, tolerance: float, max_passes: int = 30
) -> np.ndarray:
    """Single border-cell moves lowering the sum of squared deviations (in place)."""
    active = p.capacity > 0
    size = np.bincount(a[a >= 0], minlength=p.k)
    for _ in range(max_passes):
        load = loads_of(p, a)
        target = np.where(active, targets_of(p, load.sum()), 1.0)
        dev = np.where(active, (load - target) / target, 0.0)
        if np.abs(dev).max() <= tolerance:
            break
        src, dst = _boundary(p, a)
        border: dict[int, list[tuple[int, int]]] = {}
        for c, v in zip(src.tolist(), dst.tolist(), strict=True):
            border.setdefault(int(a[c]), []).append((c, v))
        moved = 0
        for r in np.argsort(-np.abs(dev)).tolist():
            if abs(dev[r]) <= tolerance or not active[r]:
                break
            # Overloaded: give a cell away; underloaded: take one from a neighbour.
            if dev[r] > 0:
                options = [(c, int(a[v])) for c, v in border.get(r, [])]
            else:
                options = [(v, r) for c, v in border.get(r, [])]
            best = None
            for c, recv in options:
                donor = int(a[c])
                if donor == recv or not (active[donor] and active[recv]):
                    continue
                wd, wr = p.weight(c, donor), p.weight(c, recv)
                old = dev[donor] ** 2 + dev[recv] ** 2
                nd = dev[donor] - wd / target[donor]
                nr = dev[recv] + wr / target[recv]
                gain = old - nd**2 - nr**2
                if gain <= 1e-12:
                    continue
                cand = (-gain, _score(p, c, donor, recv, anchor_xy), c, recv)
                if best is None or cand < best:
                    if _can_move(p, a, size, c, recv):
                        best = cand
            if best is None:
                continue
            _, _, c, recv = best
            donor = int(a[c])
            dev[donor] -= p.weight(c, donor) / target[donor]
            dev[recv] += p.weight(c, recv) / target[recv]
            a[c] = recv
            size[donor] -= 1
            size[recv] += 1
            moved += 1
            # Border lists of these two RMs are stale now; refreshed next pass.
            border.pop(donor, None)
            border.pop(recv, None)
        if moved == 0:
            break
    return a
