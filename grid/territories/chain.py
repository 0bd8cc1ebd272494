"""Chain moves: carry workload from the worst RM to one on the other side through a path of territories.

When cells are lumpy (urban cells holding a large share of a target), single
border moves stall: the heaviest RM's neighbours are heavy too, and any cell
they take pushes them over. A chain ``s -> r1 -> ... -> t`` moves one border
cell at every step: ``s`` gives a cell to ``r1``, ``r1`` gives one of about
the weight it got (plus its own excess) to ``r2``, and so on until an RM
on the other side of the target takes the last one. Paths are the fewest-hops
paths over the RM adjacency graph, to the nearest few RMs on the other side.
A chain is kept when it lowers the max deviation, or keeps it and lowers the
sum of squared deviations; otherwise it is undone. Every step is a checked
single-cell move (:class:`grid.territories.solver._Mover`) or, when the cell
is a cut cell of its territory, the cell with the small pieces it would cut
off (all adjacent to it, so the receiver stays one piece); locks, range and
contiguity hold after every chain.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from grid.territories.cuts import TerritoryCuts
from grid.territories.solver import Problem, _boundary, _deviation, _Mover


def _rm_graph(p: Problem, a: np.ndarray) -> tuple[list[set[int]], dict[tuple[int, int], list[int]]]:
    """RM neighbours and, per (donor, receiver), donor cells on their shared border."""
    src, dst = _boundary(p, a)
    donors, receivers = a[src].tolist(), a[dst].tolist()
    nb: list[set[int]] = [set() for _ in range(p.k)]
    border: dict[tuple[int, int], list[int]] = {}
    for c, d, r in zip(src.tolist(), donors, receivers, strict=True):
        nb[d].add(r)
        border.setdefault((d, r), []).append(c)
    return nb, border


def _paths(nb: list[set[int]], start: int, goal: np.ndarray, active: list[bool], limit: int, hops: int):
    """Fewest-hops paths from ``start`` to up to ``limit`` RMs with ``goal`` set, nearest first."""
    parent = {start: -1}
    queue = deque([(start, 0)])
    found = []
    while queue and len(found) < limit:
        u, d = queue.popleft()
        if d >= hops:
            continue
        for v in sorted(nb[u]):
            if v in parent or not active[v]:
                continue
            parent[v] = u
            if goal[v]:
                path = [v]
                while parent[path[-1]] != -1:
                    path.append(parent[path[-1]])
                found.append(path[::-1])
            queue.append((v, d + 1))
    return found


def _badness(p: Problem, a: np.ndarray) -> tuple[float, float]:
    """Max absolute deviation and sum of squared deviations (from achievable targets)."""
    _, _, dev = _deviation(p, a)
    return float(np.abs(dev).max()), float((dev**2).sum())


def chain_moves(
    p: Problem,
    a: np.ndarray,
    anchor_xy: np.ndarray,
    *,
    tolerance: float,
    max_chains: int | None = None,
    targets_per_rm: int = 6,
    max_hops: int = 8,
) -> np.ndarray:
    """Improve balance by chains of single border-cell moves (in place); see the module docstring.

    Examples
    --------
    >>> from grid.territories.graph import neighbour_lists, pairs_to_csr
    >>> adj = pairs_to_csr(np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]), 6)
    >>> xy = np.column_stack([np.arange(6.0), np.zeros(6)])
    >>> rows, cols = adj.nonzero()
    >>> p = Problem(np.ones(6), neighbour_lists(adj), np.array([[i, i + 1] for i in range(5)]), xy,
    ...     xy[[0, 2, 5]], np.ones(3), np.full(6, -1), 0.0, None, None, np.random.default_rng(0))
    >>> chain_moves(p, np.array([0, 0, 0, 0, 1, 2]), xy[[0, 2, 5]], tolerance=0.0).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    active = p.capacity > 0
    act = active.tolist()
    max_chains = max_chains if max_chains is not None else 4 * p.k + 50
    bad = _badness(p, a)
    tried: set[tuple[int, int]] = set()
    done = 0
    while done < max_chains and bad[0] > tolerance and not p.budget.over():
        _, scale, dev = _deviation(p, a)
        nb, border = _rm_graph(p, a)
        improved = False
        for s in np.argsort(-np.abs(dev)).tolist():
            if not act[s] or abs(dev[s]) <= tolerance or p.budget.over():
                break
            over = dev[s] > 0
            goal = (dev < 0) if over else (dev > 0)
            for path in _paths(nb, s, goal & active, act, targets_per_rm, max_hops):
                if not over:
                    path = path[::-1]  # workload flows from the over RM to the under one
                key = (path[0], path[-1])
                if key in tried:
                    continue
                tried.add(key)
                if _try_chain(p, a, anchor_xy, path, dev * scale, border, bad):
                    bad = _badness(p, a)
                    improved = True
                    break
            if improved:
                break
        done += 1
        if not improved:
            break
        tried.clear()
    return a


def _try_chain(p, a, anchor_xy, path, excess, border, bad) -> bool:
    """Apply one chain along ``path``; keep it if the balance improves, else undo it."""
    mv = _Mover(p, a, anchor_xy)
    al = mv.a
    carried = 0.0
    # The first donor sheds what brings both ends nearest their targets.
    want = min(excess[path[0]], -excess[path[-1]])
    for i in range(len(path) - 1):
        d, r = path[i], path[i + 1]
        desired = want if i == 0 else carried
        best = None
        # Candidates nearest the wanted weight first; stop at the first that moves alone (a cut cell moves
        # with what it cuts off, which weighs more, so only those ranked before it can beat it).
        ranked = sorted(
            (abs(p.weight(c, r) - desired), mv.score(c, d, r), c)
            for c in set(border.get((d, r), []))
            if al[c] == d and any(al[v] == r for v in p.nbrs[c])
        )
        for _, _, c in ranked:
            if mv.can_move(c, r):
                w = p.weight(c, r)
                key = (abs(w - desired), mv.score(c, d, r))
                if best is None or key < best[0]:
                    best = (key, [c], w)
                break
            group = _with_cut_off(p, al, c, mv.size[d], mv.cuts)
            if group is None or not all(p.in_range(x, r) for x in group):
                continue
            w = sum(p.weight(x, r) for x in group)
            key = (abs(w - desired), mv.score(c, d, r))
            if best is None or key < best[0]:
                best = (key, group, w)
        if best is None:
            break
        _, group, w = best
        for x in group:
            mv.move(x, r)
        carried = w
    else:
        trial = a.copy()
        mv.result(trial)
        new = _badness(p, trial)
        if new[0] < bad[0] - 1e-12 or (new[0] <= bad[0] + 1e-12 and new[1] < bad[1] - 1e-12):
            a[:] = trial
            return True
    return False


def _with_cut_off(p: Problem, al: list[int], cell: int, size: int, cuts: TerritoryCuts | None = None) -> list[int] | None:
    """``cell`` and the pieces of its owner that removing it would cut off (the largest piece stays).

    None when ``cell`` cuts nothing off, or it or a cut-off cell is locked.
    ``cuts`` reuses a search of the territory (any size) kept by the caller.
    """
    if p._locked[cell] >= 0:
        return None
    group = (cuts or TerritoryCuts(p.nbrs)).cut_off(al, cell, size)
    if group is None or any(p._locked[x] >= 0 for x in group):
        return None
    return group
