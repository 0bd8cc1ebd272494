"""Lumpy workloads: what balance a contiguous plan can reach when single cells are heavy.

A cell cannot be split between RMs, so an RM who owns a cell heavier than
its target is above target whatever the plan does. Two figures follow:

* the *deviation bound*: a lower bound on the max deviation any assignment
  can reach: the heaviest cell over the largest target, minus 1 (and the
  locked cells of each RM over its target, minus 1; and 100% when there are
  more RMs than cells, since someone gets nothing);
* *achievable targets*: each RM's target raised to the workload of its
  heaviest cell where that is above it, the rest of the workload shared by
  capacity among the others (water-filling). The optimiser balances against
  these, so one stuck RM does not stop the others from being balanced.
"""

from __future__ import annotations

import numpy as np


def heaviest_cell(assignment: np.ndarray, cell_load: np.ndarray, k: int) -> np.ndarray:
    """Workload of each RM's heaviest cell (0 for RMs without cells), shape (k,).

    Examples
    --------
    >>> heaviest_cell(np.array([0, 0, 1, -1]), np.array([1.0, 3.0, 2.0, 9.0]), 3).tolist()
    [3.0, 2.0, 0.0]
    """
    a = np.asarray(assignment)
    own = a >= 0
    out = np.zeros(k)
    np.maximum.at(out, a[own], np.asarray(cell_load, dtype=float)[own])
    return out


def achievable_targets(total: float, capacity: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Targets by capacity, raised to ``floor`` where that is higher, the rest shared (water-filling).

    Finds the level ``lam`` with ``sum(max(lam * capacity, floor)) == total`` over
    RMs with capacity > 0 and returns ``max(lam * capacity, floor)`` (0 for RMs
    without capacity). When the floors alone exceed the total, the floors are
    returned.

    Examples
    --------
    >>> achievable_targets(10.0, np.ones(4), np.array([6.0, 0, 0, 0])).tolist()
    [6.0, 1.3333333333333333, 1.3333333333333333, 1.3333333333333333]
    >>> achievable_targets(8.0, np.ones(4), np.array([1.5, 0, 0, 0])).tolist()
    [2.0, 2.0, 2.0, 2.0]
    """
    cap = np.clip(np.asarray(capacity, dtype=float), 0, None)
    floor = np.where(cap > 0, np.asarray(floor, dtype=float), 0.0)
    active = cap > 0
    if not active.any():
        return np.zeros(len(cap))
    pinned = np.zeros(len(cap), dtype=bool)
    # Each round pins the RMs whose floor is above the shared level; it only grows, so <= k rounds.
    for _ in range(len(cap) + 1):
        free = active & ~pinned
        if not free.any():
            return floor.copy()
        lam = (total - floor[pinned].sum()) / cap[free].sum()
        over = free & (floor > lam * cap)
        if not over.any():
            break
        pinned |= over
    return np.where(active, np.where(pinned, floor, max(lam, 0.0) * cap), 0.0)


def deviation_bound(
    workload: np.ndarray,
    capacity: np.ndarray,
    total: float | None = None,
    *,
    locked: np.ndarray | None = None,
) -> tuple[float, float, int]:
    """Lower bound on the max relative deviation of any assignment, the indivisible share and its cell.

    Parameters
    ----------
    workload : ndarray (n,)
        Workload of each cell (owner-independent part: travel only adds, so the bound stays valid).
    capacity : ndarray (k,)
        Targets are ``total * capacity / capacity.sum()``.
    total : float, optional
        Total workload (default ``workload.sum()``; pass the plan's total with travel).
    locked : ndarray (n,) int, optional
        RM row each cell is locked to, -1 if free: an RM's locked cells are its minimum.

    Returns
    -------
    (bound, indivisible_share, cell)
        ``indivisible_share`` is the heaviest cell over the largest target
        (above 1: no plan can balance that cell's owner), ``cell`` its row (-1
        without cells); ``bound`` is ``max(0, share - 1, locked load / target - 1,
        1 if there are more RMs with capacity than cells)``.

    Examples
    --------
    >>> deviation_bound(np.array([5.0, 1, 1, 1]), np.ones(4))
    (1.5, 2.5, 0)
    >>> deviation_bound(np.ones(4), np.ones(2))
    (0.0, 0.5, 0)
    """
    w = np.asarray(workload, dtype=float)
    cap = np.clip(np.asarray(capacity, dtype=float), 0, None)
    total = float(w.sum()) if total is None else float(total)
    if len(w) == 0 or cap.sum() <= 0 or total <= 0:
        return 0.0, 0.0, -1
    target = total * cap / cap.sum()
    cell = int(np.argmax(w))
    share = float(w[cell] / target.max())
    bound = max(0.0, share - 1.0)
    if locked is not None:
        lk = np.asarray(locked)
        mine = lk >= 0
        if mine.any():
            held = np.bincount(lk[mine], weights=w[mine], minlength=len(cap))[: len(cap)]
            act = cap > 0
            bound = max(bound, float((held[act] / target[act] - 1.0).max()))
    if int((cap > 0).sum()) > len(w):
        bound = max(bound, 1.0)
    return bound, share, cell


def unreachable_reasons(
    workload: np.ndarray,
    capacity: np.ndarray,
    total: float | None = None,
    *,
    locked: np.ndarray | None = None,
    goal: float = 0.05,
) -> list[str]:
    """Why no plan of whole cells can bring the raw max deviation to ``goal`` or below, in words (empty if it may).

    Each reason is one of: fewer cells than RMs with capacity (someone gets
    none); a cell heavier than the largest target by more than ``goal``; an
    RM's locked cells already over its target by more than ``goal``.

    Examples
    --------
    >>> unreachable_reasons(np.ones(2), np.ones(3))[0]
    '2 cells for 3 RMs: at least one RM gets no cell (deviation 100%); use a finer grid or fewer RMs'
    >>> unreachable_reasons(np.array([5.0, 1, 1, 1]), np.ones(4))[0][:66]
    'the heaviest cell (row 0) holds 2.50 times the largest target: its'
    >>> unreachable_reasons(np.ones(8), np.ones(4))
    []
    """
    w = np.asarray(workload, dtype=float)
    cap = np.clip(np.asarray(capacity, dtype=float), 0, None)
    active = int((cap > 0).sum())
    out: list[str] = []
    if active > len(w):
        out.append(
            f"{len(w)} cells for {active} RMs: at least one RM gets no cell (deviation 100%); "
            "use a finer grid or fewer RMs"
        )
    total = float(w.sum()) if total is None else float(total)
    if len(w) == 0 or cap.sum() <= 0 or total <= 0:
        return out
    target = total * cap / cap.sum()
    cell = int(np.argmax(w))
    share = float(w[cell] / target.max())
    if share - 1.0 > goal:
        out.append(
            f"the heaviest cell (row {cell}) holds {share:.2f} times the largest target: its RM is at least "
            f"{share - 1.0:.1%} over; refine the grid where it is too coarse (a cell at the finest resolution "
            "that is still this heavy holds one heavy customer or village point, which no grid can split)"
        )
    if locked is not None:
        lk = np.asarray(locked)
        mine = lk >= 0
        if mine.any():
            held = np.bincount(lk[mine], weights=w[mine], minlength=len(cap))[: len(cap)]
            with np.errstate(divide="ignore", invalid="ignore"):
                over = np.where(cap > 0, held / target - 1.0, -np.inf)
            for r in np.flatnonzero(over > goal).tolist():
                out.append(f"RM row {r}'s locked cells hold {over[r] + 1:.2f} times its target ({over[r]:.1%} over)")
    return out
