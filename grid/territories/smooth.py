"""Smoothing: border cells handed to the neighbour that surrounds them, without giving up balance.

Balancing moves cells one at a time wherever the workload needs to go, and on
fine (refined) grids that leaves ragged borders: cells owned by one RM but
surrounded by another's, teeth and thin arms, which lower compactness (Polsby-
Popper) and lengthen routes. A smoothing pass moves a border cell to the
neighbouring RM that owns more of its edges than its own RM does, so the
shared border gets shorter, when

* the cell is not locked and within the receiver's range, its owner keeps at
  least one cell and stays one piece (the checks of every move,
  :class:`grid.territories.solver._Mover`), and
* neither RM ends further from its target than the band: the plan's max
  deviation before smoothing, or ``slack`` (4.5%) if that is larger; so the
  plan's max deviation never grows past either (the caller polishes the
  balance again afterwards).

A cell moved one way can be paid back by another moved the other way on the
same border, so a few passes shorten borders while balance holds.
"""

from __future__ import annotations

import numpy as np

from grid.territories.solver import Problem, _boundary, _deviation, _Mover


def smooth(
    p: Problem,
    a: np.ndarray,
    anchor_xy: np.ndarray,
    *,
    tolerance: float,
    slack: float = 0.045,
    max_passes: int = 20,
) -> np.ndarray:
    """Shorten borders by single border-cell moves that keep every RM within the band (in place).

    Examples
    --------
    >>> from grid.territories.graph import neighbour_lists, pairs_to_csr
    >>> # A 3x3 block: RM 0 owns the left column and the centre (a tooth), RM 1 the rest; the border straightens.
    >>> pairs = np.array([[0, 1], [1, 2], [3, 4], [4, 5], [6, 7], [7, 8], [0, 3], [3, 6], [1, 4], [4, 7], [2, 5], [5, 8]])
    >>> xy = np.array([[x, y] for y in range(3) for x in range(3)], dtype=float)
    >>> p = Problem(np.array([1, 1, 1, 1, 0.01, 1, 1, 1, 1.0]), neighbour_lists(pairs_to_csr(pairs, 9)), pairs, xy,
    ...     xy[[3, 5]], np.ones(2), np.full(9, -1), 0.0, None, None, np.random.default_rng(0))
    >>> smooth(p, np.array([0, 1, 1, 0, 0, 1, 0, 1, 1]), xy[[3, 5]], tolerance=0.0, slack=0.3).tolist()
    [0, 0, 1, 0, 0, 1, 0, 0, 1]
    """
    active = p.capacity > 0
    if active.sum() < 2:
        return a
    act = active.tolist()
    _, scale, dev = _deviation(p, a)
    band = max(tolerance, slack, float(np.abs(dev).max()))
    for _ in range(max_passes):
        if p.budget.over():
            break
        _, scale, dev = _deviation(p, a)
        sc, dv = scale.tolist(), dev.tolist()
        src, _ = _boundary(p, a)
        backup = a.copy()
        mv = _Mover(p, a, anchor_xy)
        al = mv.a
        moved = 0
        for i, c in enumerate(np.unique(src).tolist()):
            if i % 512 == 0 and p.budget.over():
                break
            donor = al[c]
            if not act[donor]:
                continue
            count: dict[int, int] = {}
            for v in p.nbrs[c]:
                o = al[v]
                count[o] = count.get(o, 0) + 1
            own = count.get(donor, 0)
            best = None
            for r, nr in count.items():
                if r == donor or r < 0 or not act[r] or nr <= own:
                    continue
                nd = dv[donor] - p.weight(c, donor) / sc[donor]
                ne = dv[r] + p.weight(c, r) / sc[r]
                if abs(nd) > band or abs(ne) > band:
                    continue
                key = (-(nr - own), max(abs(nd), abs(ne)))
                if best is None or key < best[0]:
                    best = (key, r, nd, ne)
            if best is None or not mv.can_move(c, best[1]):
                continue
            _, r, nd, ne = best
            mv.move(c, r)
            dv[donor], dv[r] = nd, ne
            moved += 1
        mv.result(a)
        # Targets shift when an RM's heaviest cell changes hands (grid.territories.bounds): a pass that
        # leaves anyone outside the band after all is undone.
        if moved == 0 or float(np.abs(_deviation(p, a)[2]).max()) > band + 1e-12:
            a[:] = backup
            break
    return a
