"""Whole-territory moves: RMs of one outlet trading territories, and pair recombination.

Single-cell moves and chains move one cell per step, and every step must keep
its donor one piece and not overload its receiver. Where each RM holds only a
handful of heavy cells (dense towns) a fix often needs several cells to change
hands together, in both directions: a part-time RM holding one cell heavier
than its target must hand that cell to a full-time neighbour *and* take some
lighter cells back, which no sequence of single moves can do (the first move
would empty it or overload someone).

A recombination merges two adjacent territories ``s`` and ``t`` (one piece,
since they touch), draws random spanning trees of the merged cells and, for
every tree edge, considers cutting it: the two subtrees are connected, so
either may go to ``s`` and the other to ``t``. The best split by the pair's
deviations (max first, then sum of squares) replaces the current one when it
is better (as ReCom does for electoral districts). Locked cells stay with
their RM and cells beyond the maximum distance are not handed over; other
territories are untouched, so contiguity holds for everyone.

Before that, RMs sharing an outlet trade whole territories
(:func:`swap_territories`) where capacities and loads are mismatched; shapes
do not change. Neither move runs when moves are penalised (``keep_current``).
"""

from __future__ import annotations

import numpy as np

from grid.territories.solver import Problem, _boundary, _deviation, cell_loads


def _local_edges(p: Problem, cells: list[int], where: dict[int, int]) -> list[tuple[int, int]]:
    """Edges of the graph among ``cells`` as pairs of local rows (i < j)."""
    get = where.get
    return [(i, j) for i, c in enumerate(cells) for v in p.nbrs[c] if (j := get(v, -1)) > i]


def _tree(p: Problem, cells: list[int], where: dict[int, int], rng: np.random.Generator, edges=None):
    """Random spanning tree of ``cells``: its nodes (local rows) in depth-first preorder, their subtree sizes and parents.

    The subtree of the node at preorder position ``i`` is positions ``i .. i + size - 1``; ``parent[i]`` is the
    position of its parent (-1 for the root). None if not connected. ``edges`` (:func:`_local_edges`) may be
    passed when several trees of the same cells are drawn.
    """
    m = len(cells)
    p.budget.spend(m / 8.0)
    if edges is None:
        edges = _local_edges(p, cells, where)
    root = list(range(m))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    # Kruskal on random edge weights.
    adj: list[list[int]] = [[] for _ in range(m)]
    joined = 0
    for e in np.argsort(rng.random(len(edges))).tolist():
        i, j = edges[e]
        ri, rj = find(i), find(j)
        if ri != rj:
            root[ri] = rj
            adj[i].append(j)
            adj[j].append(i)
            joined += 1
            if joined == m - 1:
                break
    start = int(rng.integers(m))
    pre, parent, seen = [], [], {start}
    stack = [(start, -1)]
    while stack:
        u, up = stack.pop()
        pre.append(u)
        parent.append(up)
        for v in adj[u]:
            if v not in seen:
                seen.add(v)
                stack.append((v, len(pre) - 1))
    if len(pre) < m:
        return None
    size = [1] * m
    for k in range(m - 1, 0, -1):
        size[parent[k]] += size[k]
    return np.array(pre, dtype=np.int64), np.array(size, dtype=np.int64), parent


def _subtree_max(values: list[float], parent: list[int]) -> np.ndarray:
    """Max of ``values`` (by preorder position) over the subtree of every position."""
    out = list(values)
    for k in range(len(out) - 1, 0, -1):
        up = parent[k]
        if out[k] > out[up]:
            out[up] = out[k]
    return np.array(out)


def swap_territories(
    p: Problem,
    a: np.ndarray,
    anchor_xy: np.ndarray,
    *,
    tolerance: float,
    seeds: np.ndarray | None = None,
) -> np.ndarray:
    """RMs of one outlet trade whole territories where that improves their balance (in place, anchors and seeds too).

    Territories do not change shape, so contiguity holds; a part-time RM left
    with a territory a full-time colleague should carry (one heavy town cell)
    trades it for a lighter one. Locked cells and penalised moves rule a swap out.

    Examples
    --------
    >>> from grid.territories.graph import neighbour_lists, pairs_to_csr
    >>> pairs = np.array([[0, 1], [1, 2]])
    >>> xy = np.zeros((3, 2))
    >>> p = Problem(np.array([2.0, 0.5, 0.5]), neighbour_lists(pairs_to_csr(pairs, 3)), pairs, xy, xy[[0, 0]],
    ...     np.array([0.5, 1.0]), np.full(3, -1), 0.0, None, None, np.random.default_rng(0))
    >>> swap_territories(p, np.array([0, 1, 1]), xy[[0, 0]], tolerance=0.0).tolist()
    [1, 0, 0]
    """
    active = p.capacity > 0
    if active.sum() < 2 or p.move_penalty is not None:
        return a
    _, outlet = np.unique(np.round(p.home_xy, 3), axis=0, return_inverse=True)
    outlet = outlet.ravel()
    cap = p.capacity
    cap_max = float(cap[active].max())
    locked = np.zeros(p.k, dtype=bool)
    locked[p.locked[p.locked >= 0]] = True
    for _ in range(p.k):
        if p.budget.over():
            break
        load, scale, dev = _deviation(p, a)
        level = float((scale[active] / cap[active]).min())
        w = cell_loads(p, a)
        heavy = np.zeros(p.k)
        np.maximum.at(heavy, a[a >= 0], w[a >= 0])
        best = None
        for s in np.argsort(-np.abs(dev)).tolist():
            if abs(dev[s]) <= tolerance:
                break
            if not active[s] or locked[s]:
                continue
            for t in np.flatnonzero((outlet == outlet[s]) & active & ~locked & (cap != cap[s])).tolist():
                # Same home: a territory weighs the same for either RM.
                goal_s = max(level * cap[s], heavy[t] * cap[s] / cap_max)
                goal_t = max(level * cap[t], heavy[s] * cap[t] / cap_max)
                ds = (load[t] - goal_s) / (level * cap[s])
                dt = (load[s] - goal_t) / (level * cap[t])
                key = (max(abs(ds), abs(dt), tolerance), ds * ds + dt * dt)
                now = (max(abs(dev[s]), abs(dev[t]), tolerance), dev[s] ** 2 + dev[t] ** 2)
                if key[0] < now[0] - 1e-9 or (key[0] <= now[0] and key[1] < now[1] - 1e-12):
                    if best is None or key < best[0]:
                        best = (key, s, t)
            if best is not None:
                break
        if best is None:
            break
        _, s, t = best
        mine, theirs = a == s, a == t
        a[mine], a[theirs] = t, s
        anchor_xy[[s, t]] = anchor_xy[[t, s]]
        if seeds is not None:
            seeds[[s, t]] = seeds[[t, s]]
    return a


def _pair_key(dev: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Max first (floored at ``tolerance``), then the sum of squares of the pair's deviations (columns)."""
    return np.maximum(np.abs(dev).max(axis=0), tolerance), (dev**2).sum(axis=0)


def _territories(p: Problem, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[set[int]], dict[int, list[int]]]:
    """Per round: cell loads, each RM's heaviest cell, its neighbouring RMs and its cells."""
    w = cell_loads(p, a)
    heavy = np.zeros(p.k)
    np.maximum.at(heavy, a[a >= 0], w[a >= 0])
    src, dst = _boundary(p, a)
    nb: list[set[int]] = [set() for _ in range(p.k)]
    for d, r in zip(a[src].tolist(), a[dst].tolist(), strict=True):
        nb[d].add(r)
    members: dict[int, list[int]] = {}
    for c, r in enumerate(a.tolist()):
        if r >= 0:
            members.setdefault(r, []).append(c)
    return w, heavy, nb, members


def recombine(
    p: Problem,
    a: np.ndarray,
    *,
    tolerance: float,
    trees: int = 4,
    max_cells: int = 240,
    max_rounds: int = 20,
) -> np.ndarray:
    """Redraw borders of neighbouring pairs where that improves their balance (in place); see the module docstring.

    Pairs holding more than ``max_cells`` cells together are left to the single moves.
    Deviations are those of :func:`grid.territories.solver._deviation`, with the
    shared level kept for a round.

    Examples
    --------
    >>> from grid.territories.graph import neighbour_lists, pairs_to_csr
    >>> pairs = np.array([[0, 1], [1, 2], [2, 3]])
    >>> xy = np.column_stack([np.arange(4.0), np.zeros(4)])
    >>> p = Problem(np.array([3.0, 1, 1, 1]), neighbour_lists(pairs_to_csr(pairs, 4)), pairs, xy, xy[[0, 3]],
    ...     np.array([0.5, 1.0]), np.full(4, -1), 0.0, None, None, np.random.default_rng(0))
    >>> recombine(p, np.array([0, 1, 1, 1]), tolerance=0.0).tolist()  # the part-time RM gives up the heavy cell
    [1, 1, 0, 0]
    """
    active = p.capacity > 0
    if active.sum() < 2 or p.move_penalty is not None:
        return a
    cap = p.capacity
    cap_max = float(cap[active].max())
    for _ in range(max_rounds):
        load, scale, dev = _deviation(p, a)
        if np.abs(dev).max() <= tolerance or p.budget.over():
            break
        level = float((scale[active] / cap[active]).min())
        w, heavy, nb, members = _territories(p, a)
        changed: set[int] = set()
        improved = 0
        # The worst RMs first, down to half the worst deviation (the single moves see to the rest).
        floor = max(tolerance, 0.5 * float(np.abs(dev).max()))
        for s in np.argsort(-np.abs(dev)).tolist():
            if abs(dev[s]) <= floor or p.budget.over():
                break
            if not active[s] or s in changed:
                continue
            best = None
            for t in sorted(nb[s]):
                if not active[t] or t in changed or len(members[s]) + len(members[t]) > max_cells:
                    continue
                # Any split's deviations average (by scale) between these: skip pairs that cannot improve.
                both = level * (cap[s] + cap[t])
                top = max(heavy[s], heavy[t]) / cap_max
                lo = (load[s] + load[t] - max(level, top) * (cap[s] + cap[t])) / both
                hi = (load[s] + load[t]) / both - 1.0
                if min(abs(lo), abs(hi)) * (lo * hi > 0) >= max(abs(dev[s]), abs(dev[t])) - 1e-9:
                    continue
                found = _best_split(p, members[s], members[t], s, t, level, cap_max, trees, tolerance, dev, heavy)
                if found is not None and (best is None or found[0] < best[0]):
                    best = (found[0], t, found[1])
            if best is None:
                continue
            _, t, to_s = best
            cells = np.array(members[s] + members[t], dtype=np.int64)
            a[cells] = np.where(to_s, s, t)
            changed.update((s, t))
            improved += 1
        if not improved:
            break
    return a


def _best_split(p, cells_s, cells_t, s, t, level, cap_max, trees, tolerance, dev, heavy):
    """Best (key, to_s mask over cells_s + cells_t) over random tree cuts, if better than now; else None."""
    cells = cells_s + cells_t
    m = len(cells)
    if m < 3:
        return None
    where = {c: i for i, c in enumerate(cells)}
    idx = np.array(cells, dtype=np.int64)
    ws = p.base[idx].copy()
    wt = p.base[idx].copy()
    if p.travel:
        ws += p.travel * np.hypot(*(p.cell_xy[idx] - p.home_xy[s]).T)
        wt += p.travel * np.hypot(*(p.cell_xy[idx] - p.home_xy[t]).T)
    lock = p.locked[idx]
    ok_s = (lock < 0) | (lock == s)
    ok_t = (lock < 0) | (lock == t)
    if p.max_distance_m is not None:
        ok_s &= np.hypot(*(p.cell_xy[idx] - p.home_xy[s]).T) <= p.max_distance_m
        ok_t &= np.hypot(*(p.cell_xy[idx] - p.home_xy[t]).T) <= p.max_distance_m
        # A cell out of range of both may stay where it is.
        stuck = ~ok_s & ~ok_t
        ok_s |= stuck & (np.arange(m) < len(cells_s))
        ok_t |= stuck & (np.arange(m) >= len(cells_s))
    cs, ct = float(p.capacity[s]), float(p.capacity[t])

    def devs(load_s, load_t, heavy_s, heavy_t):
        # Goals as in _deviation: the shared level, raised by a heavy cell as far as its holder's capacity allows.
        goal_s = np.maximum(level * cs, heavy_s * cs / cap_max)
        goal_t = np.maximum(level * ct, heavy_t * ct / cap_max)
        return np.vstack([(load_s - goal_s) / (level * cs), (load_t - goal_t) / (level * ct)])

    now = np.array([[dev[s]], [dev[t]]])
    cur_key = _pair_key(now, tolerance)
    best_key = (float(cur_key[0][0]) - 1e-9, float(cur_key[1][0]) - 1e-12)
    best = None
    tot_s, tot_t = float(ws.sum()), float(wt.sum())
    edges = _local_edges(p, cells, where)
    # Small pairs are cheap and their good splits rare among trees: draw more of them.
    for _ in range(max(trees, min(4 * trees, 1200 // m))):
        tree = _tree(p, cells, where, p.rng, edges)
        if tree is None:
            return None
        nodes, sizes, parent = tree
        # Subtree of position i is nodes[i : i + sizes[i]]; prefix sums give their workloads.
        pws = np.concatenate([[0.0], np.cumsum(ws[nodes])])
        pwt = np.concatenate([[0.0], np.cumsum(wt[nodes])])
        pos = np.arange(1, m)
        end = pos + sizes[1:]
        sub_s, sub_t = pws[end] - pws[pos], pwt[end] - pwt[pos]
        # Max of a subtree and of its complement: sparse enough to do directly for small pairs.
        hs, ht = ws[nodes], wt[nodes]
        in_hs = _subtree_max(hs.tolist(), parent)[1:]
        in_ht = _subtree_max(ht.tolist(), parent)[1:]
        pre_s, pre_t = np.maximum.accumulate(hs), np.maximum.accumulate(ht)
        suf_s = np.maximum.accumulate(hs[::-1])[::-1]
        suf_t = np.maximum.accumulate(ht[::-1])[::-1]
        suf_s, suf_t = np.append(suf_s, 0.0), np.append(suf_t, 0.0)
        out_hs = np.maximum(pre_s[pos - 1], suf_s[end])
        out_ht = np.maximum(pre_t[pos - 1], suf_t[end])
        # Subtree to s (rest to t), or subtree to t (rest to s).
        d1 = devs(sub_s, tot_t - sub_t, in_hs, out_ht)
        d2 = devs(tot_s - sub_s, sub_t, out_hs, in_ht)
        for d, sub_to_s in ((d1, True), (d2, False)):
            mx, sq = _pair_key(d, tolerance)
            for i in np.lexsort((sq, mx))[:4].tolist():
                key = (float(mx[i]), float(sq[i]))
                if key >= best_key:
                    break
                inside = np.zeros(m, dtype=bool)
                inside[nodes[pos[i] : end[i]]] = True
                to_s = inside if sub_to_s else ~inside
                if (to_s & ~ok_s).any() or (~to_s & ~ok_t).any():
                    continue
                best_key, best = key, to_s
                break
    return None if best is None else (best_key, best)
