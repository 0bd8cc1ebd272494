"""Territory optimiser internals: balanced start, region growing, flow rebalancing, local polish.

Algorithm (all on the cell adjacency graph, distances in metres):

1. *Start.* A new plan starts from :func:`grid.territories.start.balanced_start`:
   outlet catchments by a graph Voronoi with tuned offsets, each catchment's
   shortest-path tree cut into one subtree per RM of the outlet, so the start
   is contiguous and roughly balanced; locks are written over it. Each RM is
   anchored at its start territory's centre.
2. *Region growing.* Cells left unowned (pieces cut off by locks, cells out of
   range, and every free cell when ``keep_current`` starts from the current
   owners) are grown into: the RM with the lowest load / capacity takes the
   frontier cell nearest its anchor (seeds as in
   :func:`grid.territories.seeds.choose_seeds` for RMs without one); cells beyond
   ``max_distance`` are taken only when no RM has a cell within range.
3. *Flow rebalancing.* The excess ``load - target`` of every RM is routed over
   the RM adjacency graph by the minimum-norm flow (solve ``L phi = excess``
   with the boundary-weighted Laplacian ``L``); each RM pair then moves border
   cells along its flow, cells nearest the receiver's seed first. Repeated until
   the flows no longer improve the balance. Global imbalance moves in a few rounds.
4. *Local polish.* Single border-cell moves that lower the sum of squared
   relative deviations, worst RMs first, with compactness (distance to the
   receiver's seed versus the donor's) as the tie-breaker.
5. *Compound moves.* RMs of one outlet trade whole territories, then pair
   recombinations (:mod:`grid.territories.recom`: two neighbours' border
   redrawn along a random spanning tree, cells moving both ways at once)
   alternate with chains (:mod:`grid.territories.chain`) while they help.
6. *Smoothing.* With the last sixth of the work budget, border cells go to
   the neighbour owning more of their edges within a balance band
   (:mod:`grid.territories.smooth`), and the balance is polished again.

Stages 1 and 3-6 stop at the tolerance or when the plan's work budget is
spent (:mod:`grid.territories.budget`: counted moves and cells, not
seconds), so a plan depends on its inputs and seed only, not on the
machine's speed or load; the wall clock is a safety net
(:mod:`grid.territories.stages` runs stages 2-6).

A move never takes a locked cell, never empties the donor and never cuts the
donor in two (:func:`grid.territories.graph.stays_connected`, exact for
territories of any size through :class:`grid.territories.cuts.TerritoryCuts`);
the receiver is adjacent to the cell, so it stays connected too.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import spsolve

from grid.territories.bounds import achievable_targets, heaviest_cell
from grid.territories.budget import Budget
from grid.territories.cuts import TerritoryCuts
from grid.territories.graph import stays_connected


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
    # Work units left for the improving stages (grid.territories.budget); unlimited unless the plan sets one.
    budget: Budget = field(default_factory=Budget, repr=False)
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


class _Mover:
    """Single-cell moves on a plain-list assignment, with the checks every move needs."""

    def __init__(self, p: Problem, a: np.ndarray, anchor_xy: np.ndarray) -> None:
        self.p = p
        self.a = a.tolist()
        self.size = np.bincount(a[a >= 0], minlength=p.k).tolist()
        self.ax, self.ay = anchor_xy[:, 0].tolist(), anchor_xy[:, 1].tolist()
        self.penalty = None if p.move_penalty is None else p.move_penalty.tolist()
        self.cuts = TerritoryCuts(p.nbrs)

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
        p.budget.used += 1.0
        return (
            p._locked[c] < 0
            and self.size[donor] > 1
            # Border lists go stale as cells move: the receiver must still touch the cell.
            and any(a[v] == receiver for v in p.nbrs[c])
            and p.in_range(c, receiver)
            and stays_connected(p.nbrs, a, c, self.size[donor], cuts=self.cuts)
        )

    def move(self, c: int, receiver: int) -> None:
        """Give ``c`` to ``receiver``."""
        self.cuts.touch(self.a[c])
        self.cuts.touch(receiver)
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


def cell_loads(p: Problem, a: np.ndarray) -> np.ndarray:
    """Workload of each cell under its owner (0 for unowned cells)."""
    own = a >= 0
    w = np.where(own, p.base, 0.0)
    if p.travel:
        w[own] += p.travel * np.hypot(*(p.cell_xy[own] - p.home_xy[a[own]]).T)
    return w


def _deviation(p: Problem, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loads, scales (1 for inactive RMs) and deviations from achievable targets (0 for inactive RMs).

    Targets are raised to an RM's heaviest cell where that is above them
    (:func:`grid.territories.bounds.achievable_targets`): a cell heavier than a
    target keeps its owner above it in any plan, and the others should still
    share the rest evenly. The excuse is what the cell costs an RM of the
    largest capacity (its weight times capacity over the largest capacity):
    a part-time RM holding a cell a full-time one could carry is over target,
    not pinned, so the cell is pushed to a full-time RM.
    """
    active = p.capacity > 0
    load = loads_of(p, a)
    cap_max = float(p.capacity[active].max()) if active.any() else 1.0
    floor = heaviest_cell(a, cell_loads(p, a), p.k) * np.clip(p.capacity, 0, None) / cap_max
    goal = achievable_targets(load.sum(), p.capacity, floor)
    # Relative to the shared level, so an RM pinned by a heavy cell pays for extra cells like anyone.
    level = (goal[active] / p.capacity[active]).min() if active.any() else 1.0
    scale = np.where(active & (level > 0), level * p.capacity, 1.0)
    return load, scale, np.where(active, (load - goal) / scale, 0.0)


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
    p: Problem,
    a: np.ndarray,
    anchor_xy: np.ndarray,
    *,
    tolerance: float,
    max_rounds: int = 40,
) -> np.ndarray:
    """Flow rebalancing rounds (in place); stops at ``tolerance`` or when rounds stop helping.

    A round that leaves the balance worse (cells too heavy or pinned by
    contiguity make flows pile up in between) is undone and the next round
    moves only half of each flow.
    """
    active = p.capacity > 0

    def badness(x: np.ndarray) -> tuple[float, float]:
        _, scale, dev = _deviation(p, x)
        return float(np.abs(dev).max()), float(np.abs(dev * scale)[active].sum())

    best, best_bad = a.copy(), badness(a)
    damping, stale = 1.0, 0
    for _ in range(max_rounds):
        if best_bad[0] <= tolerance or stale >= 4 or p.budget.over():
            break
        a[:] = best
        _, scale, dev = _deviation(p, a)
        src, dst = _boundary(p, a)
        ra, rb = a[src], a[dst]
        ok = active[ra] & active[rb]
        src, ra, rb = src[ok], ra[ok], rb[ok]
        edges = _flows(p, ra, rb, np.where(active, dev * scale, 0.0))
        # Border cells of each (donor, receiver) pair.
        order = np.lexsort((rb, ra))
        key = ra[order].astype(np.int64) * p.k + rb[order]
        src_s = src[order]
        wanted = [d * p.k + r for _, d, r in edges]
        starts = np.searchsorted(key, wanted).tolist()
        ends = np.searchsorted(key, wanted, side="right").tolist()
        mv = _Mover(p, a, anchor_xy)
        al = mv.a
        for e, ((f, donor, receiver), s0, s1) in enumerate(zip(edges, starts, ends, strict=True)):
            if e % 256 == 0 and p.budget.over():
                break
            cand = [(mv.score(c, donor, receiver), c) for c in set(src_s[s0:s1].tolist())]
            heapq.heapify(cand)
            remaining = f * damping
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
        bad = badness(a)
        better_max = bad[0] < best_bad[0] * 0.98
        if better_max or (bad[1] < best_bad[1] * 0.995 and bad[0] <= best_bad[0] * 1.02):
            stale = 0 if bad[1] < best_bad[1] * 0.95 else stale + 1
            best, best_bad = a.copy(), bad
            damping = min(1.0, damping * 1.5)
        else:
            stale += 1
            damping *= 0.5
    a[:] = best
    return a


def polish(
    p: Problem,
    a: np.ndarray,
    anchor_xy: np.ndarray,
    *,
    tolerance: float,
    max_passes: int = 10,
) -> np.ndarray:
    """Single border-cell moves lowering the sum of squared deviations (in place)."""
    active = p.capacity > 0
    act = active.tolist()
    for _ in range(max_passes):
        _, target, dev = _deviation(p, a)
        if np.abs(dev).max() <= tolerance or p.budget.over():
            break
        src, dst = _boundary(p, a)
        border: dict[int, list[tuple[int, int]]] = {}
        for c, v in zip(src.tolist(), dst.tolist(), strict=True):
            border.setdefault(int(a[c]), []).append((c, v))
        mv = _Mover(p, a, anchor_xy)
        al = mv.a
        tg, dv = target.tolist(), dev.tolist()
        moved = 0
        for i, r in enumerate(np.argsort(-np.abs(dev)).tolist()):
            if abs(dv[r]) <= tolerance or not act[r] or (i % 256 == 0 and p.budget.over()):
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
