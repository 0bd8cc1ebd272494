"""Automatic territory balancing: divide a grid's cells among relationship managers.

Build a :class:`TerritoryPlan` from plain arrays (:meth:`TerritoryPlan.from_arrays`)
or from GeoDataFrames (:meth:`TerritoryPlan.from_geodataframe`); :meth:`~TerritoryPlan.solve`
returns the plan with ``assignment`` and ``report`` filled in.

Workload
--------
Each measure column (customers, households, deposit, loan, ...) is divided by
its total over the grid, so every measure sums to 1, and the plan's workload of
a cell is ``sum(weights[m] * x[m] / x[m].sum())``. A weight named ``"travel"``
adds a travel term owned by the RM: ``weights["travel"] * d(cell, home) / D``
with ``D`` the sum over cells of the distance to the nearest home outlet, so
that at the nearest-outlet assignment travel adds about ``weights["travel"]``
to the total, on the same scale as the measures. The target of an RM is the
total workload times its capacity over all capacities (a part-time RM with
capacity 0.5 gets half); capacity 0 marks an RM who takes no cells.

The algorithm and the islands rule are described in
:mod:`grid.territories.solver` and :mod:`grid.territories.graph`.
"""

from grid.territories.graph import cell_adjacency
from grid.territories.plan import TerritoryPlan
from grid.territories.report import PlanReport, plan_report, polsby_popper
from grid.territories.tasks import (
    evaluate_assignment,
    handover,
    nearest_outlet_assignment,
    nearest_outlet_baseline,
)

__all__ = [
    "PlanReport",
    "TerritoryPlan",
    "cell_adjacency",
    "evaluate_assignment",
    "handover",
    "nearest_outlet_assignment",
    "nearest_outlet_baseline",
    "plan_report",
    "polsby_popper",
]
