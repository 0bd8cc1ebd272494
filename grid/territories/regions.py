"""Regions: plan each county (or legal entity) on its own, its workload split over its own RMs.

A bank's territories never cross counties or legal entities. With a region
label per cell and per RM, :func:`solve_regions` cuts the plan into one
sub-plan per region (the cells and RMs with that label), solves them
independently, optionally in worker processes, and writes the assignment
back. The islands rule is applied again inside each region (a county's cells
can fall apart once its neighbours are cut away); those virtual edges are
added to the plan's graph so that its report judges contiguity the same way.
Cells of a region without RMs stay unowned (the report notes them).
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import sparse

from grid.errors import InvalidInput
from grid.territories.graph import connect_components, pairs_to_csr


def region_rows(cell_region, rm_region) -> list[tuple[object, np.ndarray, np.ndarray]]:
    """(label, cell rows, RM rows) of every region, largest first (ties by label).

    Examples
    --------
    >>> [(g, c.tolist(), r.tolist()) for g, c, r in region_rows(["a", "b", "a"], ["b", "a"])]
    [('a', [0, 2], [1]), ('b', [1], [0])]
    """
    cells = np.asarray(cell_region, dtype=object)
    rms = np.asarray(rm_region, dtype=object)
    labels = sorted(set(cells.tolist()) | set(rms.tolist()), key=str)
    out = [(g, np.flatnonzero(cells == g), np.flatnonzero(rms == g)) for g in labels]
    return sorted(out, key=lambda t: -len(t[1]))


def sub_plan(plan, cells: np.ndarray, rms: np.ndarray):
    """The plan restricted to ``cells`` and ``rms``, islands reconnected; returns (sub-plan, virtual edges in plan rows).

    The sub-plan is built by ``type(plan)``, so this module needs no import of the plan module (which imports it).
    """
    adj = sparse.csr_array(plan.adjacency)[cells][:, cells]
    xy = plan.cell_xy[cells]
    virtual = np.empty((0, 2), dtype=np.int64)
    if len(cells) > 1:
        adj, virtual = connect_components(adj, xy)
    rm_of = np.full(len(plan.capacity), -1, dtype=np.int64)
    rm_of[rms] = np.arange(len(rms))
    locked = plan.locked[cells]
    if ((locked >= 0) & (rm_of[np.maximum(locked, 0)] < 0)).any():
        raise InvalidInput("a locked cell belongs to an RM of another region")
    locked = np.where(locked >= 0, rm_of[np.maximum(locked, 0)], -1)
    current = None
    if plan.current is not None:
        cur = plan.current[cells]
        current = np.where(cur >= 0, rm_of[np.maximum(cur, 0)], -1)
    sub = type(plan)(
        plan.workload[cells],
        adj,
        plan.rm_home_xy[rms],
        xy,
        plan.capacity[rms],
        locked=locked,
        current=current,
        keep_current=plan.keep_current,
        max_distance_km=plan.max_distance_km,
        seed=plan.seed,
        travel=plan.travel,
        tolerance=plan.tolerance,
    )
    sub.chains = plan.chains
    return sub, cells[virtual] if len(virtual) else virtual


def _solve(sub, time_limit_s: float | None, deadline: float | None = None,
           work: float | None = None) -> tuple[np.ndarray, float, bool]:
    """Solve one sub-plan without its report: its assignment (sub-plan RM rows), work used, whether it timed out.

    ``deadline`` (``time.monotonic()``, shared by the worker processes) caps the time limit (a safety net:
    the work budget decides when a sub-plan stops).
    """
    if len(sub.capacity) == 0 or not (sub.capacity > 0).any():
        return np.full(len(sub.workload), -1, dtype=np.int64), 0.0, False
    if deadline is not None:
        time_limit_s = max(0.2, min(time_limit_s, deadline - time.monotonic()))
    sub.solve(time_limit_s=time_limit_s, work=work, report=False)
    return sub.assignment, sub.work_used, sub.timed_out


def solve_regions(plan, *, time_limit_s: float | None = None, work: float | None = None,
                  workers: int = 1) -> tuple[np.ndarray, float, bool]:
    """Assignment (plan RM rows, -1 unowned) solving each region of ``plan.regions`` on its own; work used; timed out.

    Each region gets the default work budget of its size, or ``work`` split by cell count.
    ``time_limit_s`` is the whole safety net: one deadline shared by every region (no region runs past it),
    so a plan inside its limit is the work budget's plan whatever the machine's speed. Adds the regions' virtual edges to
    ``plan.adjacency`` and ``plan.virtual_edges``.

    Examples
    --------
    >>> from grid.territories.plan import TerritoryPlan
    >>> adj = pairs_to_csr(np.array([[0, 1], [1, 2], [2, 3]]), 4)
    >>> xy = np.column_stack([np.arange(4.0), np.zeros(4)])
    >>> plan = TerritoryPlan.from_arrays(np.ones(4), adj, xy[[0, 3]], xy, np.ones(2),
    ...     regions=(["w", "w", "w", "e"], ["w", "e"]))
    >>> solve_regions(plan)[0].tolist()
    [0, 0, 0, 1]
    """
    cell_region, rm_region = plan.regions
    parts = region_rows(cell_region, rm_region)
    subs, virtual = [], [np.asarray(plan.virtual_edges if plan.virtual_edges is not None else [], dtype=np.int64).reshape(-1, 2)]
    for _, cells, rms in parts:
        sub, ve = sub_plan(plan, cells, rms)
        subs.append(sub)
        virtual.append(ve)
    sizes = [len(c) for _, c, _ in parts]
    deadline = None
    if time_limit_s is None:
        limits = [None] * len(parts)
    else:
        # The work budget decides where each region stops; the clock is one shared deadline for all of
        # them (largest regions first, each taken by the next free worker). A fixed share of the time per
        # region cut small regions short while the whole plan was far inside its limit (27 s of 57 s,
        # timed_out), which made the plan depend on the machine's speed.
        deadline = time.monotonic() + time_limit_s
        limits = [time_limit_s] * len(parts)
    works = [None if work is None else work * n / max(1, sum(sizes)) for n in sizes]
    if workers > 1 and len(parts) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_solve, subs, limits, [deadline] * len(subs), works))
    else:
        results = [_solve(s, t, deadline, w) for s, t, w in zip(subs, limits, works, strict=True)]
    a = np.full(len(plan.workload), -1, dtype=np.int64)
    for (_, cells, rms), (sub_a, _, _) in zip(parts, results, strict=True):
        if len(rms):
            a[cells] = np.where(sub_a >= 0, rms[np.maximum(sub_a, 0)], -1)
    ve = np.vstack(virtual)
    if len(ve) > (0 if plan.virtual_edges is None else len(plan.virtual_edges)):
        rows, cols = sparse.triu(plan.adjacency, k=1).nonzero()
        plan.adjacency = pairs_to_csr(np.vstack([np.column_stack([rows, cols]), ve]), len(a))
        plan.virtual_edges = ve
    return a, sum(r[1] for r in results), any(r[2] for r in results)

