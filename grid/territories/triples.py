"""Three-way recombination: three neighbouring territories merged and re-cut into three.

Where every RM holds two or three cells of about half a target each (dense
towns), a pair of territories often has no better two-way split: the cells
they hold together simply do not add up to two targets in any grouping. A
third territory brings other cell sizes into the pool. As in multi-district
ReCom, the three territories (one piece, since they touch) are merged, a
random spanning tree of their cells is drawn, and every pair of tree edges is
considered as a cut: removing two edges leaves three connected pieces, which
go to the three RMs in any of the six orders. The best split by the triple's
deviations (max first, then sum of squares) replaces the current one when it
is better. Locked cells stay with their RM, cells beyond the maximum distance
are not handed over, other territories are untouched (so contiguity holds),
and nothing moves when moves are penalised (``keep_current``).
"""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np

from grid.territories.recom import _local_edges, _territories, _tree
from grid.territories.solver import Problem, _deviation

_ORDERS = list(permutations(range(3)))
_ORDER_IDX = np.array(_ORDERS)  # (order, rm): the piece each RM gets
_RMS = np.arange(3)[None, :]


def recombine_triples(
    p: Problem,
    a: np.ndarray,
    *,
    tolerance: float,
    trees: int = 6,
    max_cells: int = 24,
    max_rounds: int = 4,
    tried: set | None = None,
) -> np.ndarray:
    """Redraw the borders of three mutually near territories where that improves their balance (in place).

    The worst RMs first: each with two of its neighbours, or a neighbour and a
    neighbour's neighbour, holding at most ``max_cells`` cells together.
    ``tried`` (kept by the caller between calls) holds the trios, with their
    cells, found without a better split; they are not drawn again until their cells change.

    Examples
    --------
    >>> from grid.territories.graph import neighbour_lists, pairs_to_csr
    >>> pairs = np.array([[i, i + 1] for i in range(5)])
    >>> xy = np.column_stack([np.arange(6.0), np.zeros(6)])
    >>> p = Problem(np.array([1.0, 2, 1, 2, 1, 2]), neighbour_lists(pairs_to_csr(pairs, 6)), pairs, xy,
    ...     xy[[0, 2, 4]], np.ones(3), np.full(6, -1), 0.0, None, None, np.random.default_rng(0))
    >>> recombine_triples(p, np.array([0, 0, 0, 1, 2, 2]), tolerance=0.0).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    active = p.capacity > 0
    if active.sum() < 3 or p.move_penalty is not None:
        return a
    cap = p.capacity
    cap_max = float(cap[active].max())
    for _ in range(max_rounds):
        load, scale, dev = _deviation(p, a)
        worst = float(np.abs(dev).max())
        if worst <= tolerance or p.budget.over():
            break
        level = float((scale[active] / cap[active]).min())
        _, heavy, nb, members = _territories(p, a)
        changed: set[int] = set()
        improved = 0
        floor = max(tolerance, 0.5 * worst)
        for s in np.argsort(-np.abs(dev)).tolist():
            if abs(dev[s]) <= floor or p.budget.over():
                break
            if not active[s] or s in changed:
                continue
            seen: set[tuple[int, int, int]] = set()
            best = None
            for t in sorted(nb[s]):
                for u in sorted(nb[s] | nb[t]):
                    trio = tuple(sorted((s, t, u)))
                    if u in (s, t) or trio in seen:
                        continue
                    seen.add(trio)
                    if not (active[t] and active[u]) or t in changed or u in changed:
                        continue
                    if sum(len(members[r]) for r in trio) > max_cells:
                        continue
                    rr = list(trio)
                    # Any split's deviations average (by scale) between these: skip trios that cannot improve.
                    both = level * cap[rr].sum()
                    top = float(heavy[rr].max()) / cap_max
                    lo = (load[rr].sum() - max(level, top) * cap[rr].sum()) / both
                    hi = load[rr].sum() / both - 1.0
                    if min(abs(lo), abs(hi)) * (lo * hi > 0) >= float(np.abs(dev[rr]).max()) - 1e-9:
                        continue
                    memo = (trio, *(tuple(members[r]) for r in rr))
                    if tried is not None and memo in tried:
                        continue
                    found = _best_triple(p, rr, members, level, cap_max, trees, tolerance, dev)
                    if found is None and tried is not None:
                        tried.add(memo)
                    if found is not None and (best is None or _better(found[0], best[0])):
                        best = (found[0], rr, found[1])
            if best is None:
                continue
            _, rr, owner = best
            cells = np.concatenate([np.array(members[r], dtype=np.int64) for r in rr])
            a[cells] = owner
            changed.update(rr)
            improved += 1
        if not improved:
            break
    return a


def _better(key: tuple[float, float, float], ref: tuple[float, float, float]) -> bool:
    """Lower max deviation, else lower sum of squares, else less distance (ties within rounding)."""
    if abs(key[0] - ref[0]) > 1e-9:
        return key[0] < ref[0]
    if abs(key[1] - ref[1]) > 1e-12:
        return key[1] < ref[1]
    return key[2] < ref[2]


def _best_triple(p, rr, members, level, cap_max, trees, tolerance, dev):
    """Best (key, owner per cell of the trio) over random two-edge tree cuts, if better than now; else None."""
    cells = [c for r in rr for c in members[r]]
    m = len(cells)
    if m < 4:
        return None
    where = {c: i for i, c in enumerate(cells)}
    idx = np.array(cells, dtype=np.int64)
    now_owner = np.repeat(np.array(rr, dtype=np.int64), [len(members[r]) for r in rr])
    d = np.stack([np.hypot(*(p.cell_xy[idx] - p.home_xy[r]).T) for r in rr])  # (3, m)
    w = p.base[idx][None, :] + p.travel * d
    lock = p.locked[idx]
    ok = np.stack([(lock < 0) | (lock == r) for r in rr])
    if p.max_distance_m is not None:
        ok &= d <= p.max_distance_m
        # A cell out of range of all three may stay where it is.
        ok |= ~ok.any(axis=0) & (now_owner[None, :] == np.array(rr)[:, None])
    cap = p.capacity[rr].astype(float)
    # The current split, which only a better balance beats (compactness breaks ties between candidates only).
    best_key = (max(float(np.abs(dev[rr]).max()), tolerance), float((dev[rr] ** 2).sum()), -math.inf)
    best = None
    pos = np.arange(m)
    edges = _local_edges(p, cells, where)
    for _ in range(max(trees, min(4 * trees, 600 // m))):
        tree = _tree(p, cells, where, p.rng, edges)
        if tree is None:
            return None
        nodes, sizes, _ = tree
        # in_sub[i, q]: position q lies in the subtree of position i (the part cut off by i's parent edge).
        in_sub = (pos[None, :] >= pos[1:, None]) & (pos[None, :] < (pos[1:] + sizes[1:])[:, None])
        i, j = np.triu_indices(m - 1, k=1)
        mi, mj = in_sub[i], in_sub[j]
        # Cutting the edges above positions i < j: j's subtree, the rest of i's subtree, and the rest of the tree.
        parts = np.stack([mj, mi & ~mj, ~(mi | mj)])  # (piece, cut, position)
        wn, okn, dn = w[:, nodes], ok[:, nodes], d[:, nodes]
        f = parts.astype(float)
        load = np.einsum("pcq,rq->prc", f, wn)  # (piece, rm, cut)
        far = np.einsum("pcq,rq->prc", f, dn)
        heavy = (f[:, None] * wn[None, :, None, :]).max(axis=3)
        bad = (parts[:, None] & ~okn[None, :, None, :]).any(axis=3)
        goal = np.maximum(level * cap[None, :, None], heavy * cap[None, :, None] / cap_max)
        devs = (load - goal) / (level * cap[None, :, None])
        # All six orders at once: order o gives piece _ORDERS[o][r] to RM r.
        dv = devs[_ORDER_IDX, _RMS]  # (order, rm, cut)
        mx = np.maximum(np.abs(dv).max(axis=1), tolerance)
        mx[bad[_ORDER_IDX, _RMS].any(axis=1)] = np.inf
        sq = (dv**2).sum(axis=1)
        km = far[_ORDER_IDX, _RMS].sum(axis=1)
        # Rounded, so that distance decides between orders equal but for float noise.
        pick = np.lexsort((km.ravel(), np.round(sq, 12).ravel(), np.round(mx, 9).ravel()))[0]
        o, c = np.unravel_index(int(pick), mx.shape)
        key = (float(mx[o, c]), float(sq[o, c]), float(km[o, c]))
        if _better(key, best_key):
            owner_pos = np.empty(m, dtype=np.int64)
            for r in range(3):
                owner_pos[parts[_ORDERS[o][r], c]] = rr[r]
            owner = np.empty(m, dtype=np.int64)
            owner[nodes] = owner_pos
            best_key, best = key, owner
    return None if best is None else (best_key, best)
