"""Everyday uses of a plan: the nearest-outlet baseline, a report on any assignment, a hand-over."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from grid.errors import InvalidInput
from grid.territories.plan import TerritoryPlan
from grid.territories.regions import region_rows
from grid.territories.report import PlanReport

__all__ = ["evaluate_assignment", "handover", "nearest_outlet_assignment", "nearest_outlet_baseline"]


def nearest_outlet_assignment(cell_xy: np.ndarray, rm_home_xy: np.ndarray, capacity=None) -> np.ndarray:
    """Each cell to an RM of its nearest home outlet; RMs of one outlet deal its cells round-robin by distance.

    Examples
    --------
    >>> xy = np.array([[0, 0], [1, 0], [2, 0], [9, 0]], dtype=float)
    >>> nearest_outlet_assignment(xy, np.array([[0, 0], [0, 0], [10, 0]], dtype=float)).tolist()
    [0, 1, 0, 2]
    """
    home = np.asarray(rm_home_xy, dtype=float)
    active = np.arange(len(home)) if capacity is None else np.flatnonzero(np.asarray(capacity) > 0)
    outlets, group = np.unique(np.round(home[active], 3), axis=0, return_inverse=True)
    dist, near = cKDTree(outlets).query(np.asarray(cell_xy, dtype=float))
    a = np.full(len(near), -1, dtype=np.int64)
    for g in range(len(outlets)):
        rms = active[group.ravel() == g]
        cells = np.flatnonzero(near == g)
        cells = cells[np.argsort(dist[cells], kind="stable")]
        a[cells] = rms[np.arange(len(cells)) % len(rms)]
    return a


def nearest_outlet_baseline(plan: TerritoryPlan) -> TerritoryPlan:
    """A copy of ``plan`` solved by the nearest-outlet rule (locked cells kept; within regions), with the same report.

    Examples
    --------
    >>> from grid.territories.graph import pairs_to_csr
    >>> adj = pairs_to_csr(np.array([[0, 1], [1, 2]]), 3)
    >>> xy = np.array([[0, 0], [1, 0], [2, 0]], dtype=float)
    >>> base = nearest_outlet_baseline(TerritoryPlan.from_arrays(np.ones(3), adj, xy[[0, 2]], xy, np.ones(2)))
    >>> base.assignment.tolist(), round(base.report.max_abs_deviation, 2)
    ([0, 0, 1], 0.33)
    """
    new = plan.copy()
    if plan.regions is None:
        a = nearest_outlet_assignment(plan.cell_xy, plan.rm_home_xy, plan.capacity)
    else:
        # Within each region, among its own RMs.
        a = np.full(len(plan.workload), -1, dtype=np.int64)
        for _, cells, rms in region_rows(*plan.regions):
            if len(cells) and (plan.capacity[rms] > 0).any():
                sub = nearest_outlet_assignment(plan.cell_xy[cells], plan.rm_home_xy[rms], plan.capacity[rms])
                a[cells] = rms[sub]
    a[plan.locked >= 0] = plan.locked[plan.locked >= 0]
    new.assignment = a
    new.report = new.evaluate(a)
    return new


def evaluate_assignment(cells: gpd.GeoDataFrame, rms: pd.DataFrame, assignment, **plan_options) -> PlanReport:
    """Report on any assignment (cell_id → rm_id mapping, or RM rows) with the plan's measures.

    ``plan_options`` are those of :meth:`TerritoryPlan.from_geodataframe`, so a
    baseline, a hand-edited scenario and an optimised plan are reported alike.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> cells = gpd.GeoDataFrame({"cell_id": [1, 2], "customers": [3, 1]},
    ...     geometry=[box(106, 38, 106.01, 38.01), box(106.01, 38, 106.02, 38.01)], crs=4326)
    >>> rms = pd.DataFrame({"rm_id": ["x", "y"], "lon": [106.0, 106.02], "lat": [38.0, 38.0],
    ...     "capacity": [1.0, 1.0]})
    >>> evaluate_assignment(cells, rms, {1: "x", 2: "y"}).max_abs_deviation
    0.5
    """
    plan = TerritoryPlan.from_geodataframe(cells, rms, **plan_options)
    return plan.evaluate(plan.rows_of(assignment))


def handover(plan: TerritoryPlan, leaving, to=None) -> TerritoryPlan:
    """Hand every cell of a leaving RM to ``to``, or spread them by the optimiser.

    The starting point is ``plan.assignment`` if solved, else ``plan.current``.
    With ``to=None`` all other cells are locked to their owner and only the
    leaving RM's cells are grown into by the neighbouring territories and
    balanced. The leaving RM gets capacity 0. Returns a new solved plan whose
    ``current`` is the starting point, so its report counts the cells handed over.

    Examples
    --------
    >>> from grid.territories.graph import pairs_to_csr
    >>> adj = pairs_to_csr(np.array([[0, 1], [1, 2]]), 3)
    >>> xy = np.array([[0, 0], [1, 0], [2, 0]], dtype=float)
    >>> plan = TerritoryPlan.from_arrays(np.ones(3), adj, xy, xy, np.ones(3), current=np.array([0, 1, 2]))
    >>> handover(plan, 1, to=2).assignment.tolist()
    [0, 2, 2]
    """
    start = plan.assignment if plan.assignment is not None else plan.current
    if start is None:
        raise InvalidInput("handover needs a solved plan or a plan with current owners")
    out = plan.copy()
    r_leave = plan.rm_row(leaving)
    out.current = np.asarray(start, dtype=np.int64).copy()
    out.capacity[r_leave] = 0.0
    if to is not None:
        a = out.current.copy()
        a[a == r_leave] = plan.rm_row(to)
        out.assignment, out.report = a, out.evaluate(a)
        return out
    free = out.current == r_leave
    out.locked = np.where(free, -1, out.current)
    out.locked[plan.locked >= 0] = np.where(
        plan.locked[plan.locked >= 0] == r_leave, -1, plan.locked[plan.locked >= 0]
    )
    out.keep_current = True
    out.assignment = None
    return out.solve()
