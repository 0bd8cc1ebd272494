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
import math
from dataclasses import dataclass, field

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
    # Plain-list copies: the move loops index single cells, where lists beat numpy.
    _cx: list[float] = field(init=False, repr=False)
    _cy: list[float] = field(init=False, repr=False)
    _hx: list[float] = field(init=False, repr=False)
    _hy: list[float] = field(init=False, repr=False)
    _base: list[float] = field(init=False, repr=False)
    _locked: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cx, self._cy = self.cell_xy[:, 0].tolist(), self.cell_xy[:, 1].tolist()
        self._hx, self._hy = self.home_xy[:, 0].tolist(), self.home_xy[:, 1].tolist()
        self._base = self.base.tolist()
        self._locked = self.locked.tolist()

    @property
    def n(self) -> int:
        return len(self.base)

    @property
    def k(self) -> int:
        return len(self.capacity)

    def dist(self, cell: int, rm: int) -> float:
        """Metres from a cell to an RM's home."""
        return math.hypot(self._cx[cell] - self._hx[rm], self._cy[cell] - self._hy[rm])

    def weight(self, cell: int, rm: int) -> float:
        """Workload of a cell when owned by ``rm``."""
        if self.travel == 0.0:
            return self._base[cell]
        return self._base[cell] + self.travel * self.dist(cell, rm)

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


def _boundary(p: Problem, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed cut pairs (cell, neighbour) whose owners differ, both owned."""
    i, j = p.pairs[:, 0], p.pairs[:, 1]
    cut = (a[i] != a[j]) & (a[i] >= 0) & (a[j] >= 0)
    i, j = i[cut], j[cut]
    return np.concatenate([i, j]), np.concatenate([j, i])


class _Mover:
    """Single-cell moves on a plain-list assignment, with the checks every move needs."""

    def __init__(self, p: Problem, a: np.ndarray, anchor_xy: np.ndarray) -> None:
        self.p = p
        self.a = a.tolist()
        self.size = np.bincount(a[a >= 0], minlength=p.k).tolist()
        self.ax, self.ay = anchor_xy[:, 0].tolist(), anchor_xy[:, 1].tolist()
        self.penalty = None if p.move_penalty is None else p.move_penalty.tolist()

    def score(self, c: int, donor: int, receiver: int) -> float:
        """Lower is better: cells nearer the receiver's seed than the donor's; no penalised moves."""
        p, ax, ay = self.p, self.ax, self.ay
        x, y = p._cx[c], p._cy[c]
        s = math.hypot(x - ax[receiver], y - ay[receiver]) - math.hypot(x - ax[donor], y - ay[donor])
        if self.penalty is not None:
            cur = self.penalty[c]
            s += 1e9 if cur == donor else (-1e9 if cur == receiver else 0.0)
        return s

    def can_move(self, c: int, receiver: int) -> bool:
        """Whether ``c`` may leave its owner for ``receiver``."""
        p, a = self.p, self.a
        donor = a[c]
        return (
            p._locked[c] < 0
            and self.size[donor] > 1
            # Border lists go stale as cells move: the receiver must still touch the cell.
            and any(a[v] == receiver for v in p.nbrs[c])
            and p.in_range(c, receiver)
            and stays_connected(p.nbrs, a, c, self.size[donor])
        )

    def move(self, c: int, receiver: int) -> None:
        """Give ``c`` to ``receiver``."""
        self.size[self.a[c]] -= 1
        self.size[receiver] += 1
        self.a[c] = receiver

    def result(self, a: np.ndarray) -> np.ndarray:
        """Write the moves back into ``a``."""
        a[:] = self.a
        return a


def _boundary(p: Problem, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed cut pairs (cell, neighbour) whose owners differ, both owned."""
    i, j = p.pairs[:, 0], p.pairs[:, 1]
    cut = (a[i] != a[j]) & (a[i] >= 0) & (a[j] >= 0)
    i, j = i[cut], j[cut]
    return np.concatenate([i, j]), np.concatenate([j, i])


def _deviation(p: Problem, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loads, targets (1 for inactive RMs) and relative deviations (0 for inactive RMs)."""
    active = p.capacity > 0
    load = loads_of(p, a)
    target = np.where(active, targets_of(p, load.sum()), 1.0)
    target = np.where(target > 0, target, 1.0)
    return load, target, np.where(active, (load - target) / target, 0.0)


def _flows(p: Problem, ra: np.ndarray, rb: np.ndarray, excess: np.ndarray):
    """Minimum-norm flow of ``excess`` over the RM graph: sorted (amount, donor, receiver)."""
    w = sparse.coo_array((np.ones(len(ra)), (ra, rb)), shape=(p.k, p.k)).tocsr()
    w.sum_duplicates()
    lap = sparse.diags(np.asarray(w.sum(axis=1)).ravel()) - w
    ncomp, comp = connected_components(w, directed=False)
    # Each connected group of RMs can only balance within itself.
    excess = excess - (np.bincount(comp, weights=excess) / np.bincount(comp))[comp]
    reg = sparse.diags(np.full(p.k, 1e-9 * max(float(lap.diagonal().max()), 1.0)))
    phi = spsolve((lap + reg).tocsc(), excess)
    wc = w.tocoo()
    flow = wc.data * (phi[wc.row] - phi[wc.col])
    go = flow > 0
    return sorted(
        zip(flow[go].tolist(), wc.row[go].tolist(), wc.col[go].tolist(), strict=True), reverse=True
    )


def rebalance(
    p: Problem, a: np.ndarray, anchor_xy: np.ndarray, *, tolerance: float, max_rounds: int = 60
) -> np.ndarray:
    """Flow rebalancing rounds (in place); stops at ``tolerance`` or when rounds stop helping."""
    active = p.capacity > 0
    best, stale = np.inf, 0
    for _ in range(max_rounds):
        load, target, dev = _deviation(p, a)
        worst = float(np.abs(dev).max())
        if worst <= tolerance:
            break
        if worst < best * 0.98:
            best, stale = worst, 0
        else:
            stale += 1
            if stale >= 3:
                break
        src, dst = _boundary(p, a)
        ra, rb = a[src], a[dst]
        ok = active[ra] & active[rb]
        src, ra, rb = src[ok], ra[ok], rb[ok]
        edges = _flows(p, ra, rb, np.where(active, load - target, 0.0))
        # Border cells of each (donor, receiver) pair.
        order = np.lexsort((rb, ra))
        key = ra[order].astype(np.int64) * p.k + rb[order]
        src_s = src[order]
        wanted = [d * p.k + r for _, d, r in edges]
        starts = np.searchsorted(key, wanted).tolist()
        ends = np.searchsorted(key, wanted, side="right").tolist()
        mv = _Mover(p, a, anchor_xy)
        al = mv.a
        for (f, donor, receiver), s0, s1 in zip(edges, starts, ends, strict=True):
            cand = [(mv.score(c, donor, receiver), c) for c in set(src_s[s0:s1].tolist())]
            heapq.heapify(cand)
            remaining = f
            seen: set[int] = set()
            while cand and remaining > 0:
                _, c = heapq.heappop(cand)
                if c in seen or al[c] != donor:
                    continue
                seen.add(c)
                wr = p.weight(c, receiver)
                if wr >= 2 * remaining or not mv.can_move(c, receiver):
                    continue
                mv.move(c, receiver)
                remaining -= wr
                for v in p.nbrs[c]:
                    if al[v] == donor and v not in seen:
                        heapq.heappush(cand, (mv.score(v, donor, receiver), v))
        mv.result(a)
    return a


def polish(
    p: Problem, a: np.ndarray, anchor_xy: np.ndarray, *, tolerance: float, max_passes: int = 30
) -> np.ndarray:
    """Single border-cell moves lowering the sum of squared deviations (in place)."""
    active = p.capacity > 0
    act = active.tolist()
    for _ in range(max_passes):
        _, target, dev = _deviation(p, a)
        if np.abs(dev).max() <= tolerance:
            break
        src, dst = _boundary(p, a)
        border: dict[int, list[tuple[int, int]]] = {}
        for c, v in zip(src.tolist(), dst.tolist(), strict=True):
            border.setdefault(int(a[c]), []).append((c, v))
        mv = _Mover(p, a, anchor_xy)
        al = mv.a
        tg, dv = target.tolist(), dev.tolist()
        moved = 0
        for r in np.argsort(-np.abs(dev)).tolist():
            if abs(dv[r]) <= tolerance or not act[r]:
                break
            # Overloaded: give a cell away; underloaded: take one from a neighbour.
            if dv[r] > 0:
                options = [(c, al[v]) for c, v in border.get(r, [])]
            else:
                options = [(v, r) for _, v in border.get(r, [])]
            ranked = []
            for c, recv in set(options):
                donor = al[c]
                if donor == recv or not (act[donor] and act[recv]):
                    continue
                nd = dv[donor] - p.weight(c, donor) / tg[donor]
                nr = dv[recv] + p.weight(c, recv) / tg[recv]
                gain = dv[donor] ** 2 + dv[recv] ** 2 - nd**2 - nr**2
                if gain > 1e-12:
                    ranked.append((-gain, mv.score(c, donor, recv), c, recv))
            ranked.sort()
            # The contiguity check is the costly part: test the best moves first.
            best = next((m for m in ranked if mv.can_move(m[2], m[3])), None)
            if best is None:
                continue
            _, _, c, recv = best
            donor = al[c]
            dv[donor] -= p.weight(c, donor) / tg[donor]
            dv[recv] += p.weight(c, recv) / tg[recv]
            mv.move(c, recv)
            moved += 1
            # Border lists of these two RMs are stale now; refreshed next pass.
            border.pop(donor, None)
            border.pop(recv, None)
        mv.result(a)
        if moved == 0:
            break
    return a
