"""The :class:`TerritoryPlan` model: cells, RMs and options of one plan, and its ``solve()``.

Workload and algorithm are described in :mod:`grid.territories` and
:mod:`grid.territories.solver`.
"""

from __future__ import annotations

import copy

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.spatial import cKDTree

from grid.errors import InvalidInput
from grid.projection import metric_crs, metric_geometries, project_points
from grid.territories.budget import Budget, default_work
from grid.territories.graph import cell_adjacency, neighbour_lists
from grid.territories.regions import solve_regions
from grid.territories.report import PlanReport, plan_report
from grid.territories.seeds import choose_seeds, distinct_seeds, grow, orphan_cells
from grid.territories.solver import Problem
from grid.territories.stages import improve
from grid.territories.start import balanced_start

DEFAULT_MEASURES = ("customers", "households", "deposit", "loan")


def _travel_per_metre(travel_weight: float, cell_xy: np.ndarray, home_xy: np.ndarray) -> float:
    """Turn a travel weight into workload per metre (see the module docstring)."""
    if not travel_weight or len(home_xy) == 0:
        return 0.0
    d, _ = cKDTree(home_xy).query(cell_xy)
    total = float(d.sum())
    return travel_weight / total if total > 0 else 0.0


class TerritoryPlan:
    """Cells, RMs and options of one territory plan; ``solve()`` fills ``assignment`` and ``report``.

    Rows are positions: cell row ``i`` of ``workload``/``cell_xy``, RM row ``r`` of
    ``capacity``/``rm_home_xy``. Plans built from GeoDataFrames also keep
    ``cell_ids``/``rm_ids`` to translate.
    """

    def __init__(
        self,
        workload: np.ndarray,
        adjacency,
        rm_home_xy: np.ndarray,
        cell_xy: np.ndarray,
        capacity: np.ndarray,
        *,
        locked: np.ndarray,
        current: np.ndarray | None,
        keep_current: bool,
        max_distance_km: float | None,
        seed: int,
        travel: float,
        tolerance: float | None,
        virtual_edges: np.ndarray | None = None,
        geometry: np.ndarray | None = None,
        customers: np.ndarray | None = None,
        cell_ids=None,
        rm_ids=None,
        regions: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.workload = np.asarray(workload, dtype=float)
        self.adjacency = sparse.csr_array(adjacency, dtype=bool)
        self.rm_home_xy = np.asarray(rm_home_xy, dtype=float).reshape(-1, 2)
        self.cell_xy = np.asarray(cell_xy, dtype=float).reshape(-1, 2)
        self.capacity = np.asarray(capacity, dtype=float)
        self.locked = locked
        self.current = current
        self.keep_current = keep_current
        self.max_distance_km = max_distance_km
        self.seed = seed
        self.travel = travel
        self.tolerance = tolerance if tolerance is not None else (0.05 if keep_current else 0.01)
        self.virtual_edges = virtual_edges
        self.geometry = geometry
        self.customers = customers
        self.cell_ids = cell_ids
        self.rm_ids = rm_ids
        self.regions = None if regions is None else tuple(np.asarray(x, dtype=object) for x in regions)
        self.assignment: np.ndarray | None = None
        self.seeds: np.ndarray | None = None
        self.report: PlanReport | None = None
        self.chains = True
        self.work_used = 0.0
        self.timed_out = False

    @classmethod
    def from_arrays(
        cls,
        workload: np.ndarray,
        adjacency,
        rm_home_xy: np.ndarray,
        cell_xy: np.ndarray,
        capacity: np.ndarray,
        *,
        locked: dict[int, int] | None = None,
        current: np.ndarray | None = None,
        keep_current: bool = False,
        max_distance_km: float | None = None,
        seed: int = 0,
        travel_weight: float = 0.0,
        tolerance: float | None = None,
        regions: tuple | None = None,
    ) -> TerritoryPlan:
        """Plan from arrays: workload (n,), adjacency (n, n), homes (k, 2) and cells (n, 2) in metres.

        ``locked`` maps cell row to RM row; ``current`` holds the RM row per cell (-1
        unowned). ``tolerance`` is the max relative deviation at which balancing
        stops (default 0.01, or 0.05 with ``keep_current`` so that cells move only
        when needed). ``travel_weight`` as in the module docstring. ``regions``
        is ``(cell labels (n,), RM labels (k,))``: each region (a county, a legal
        entity) is then planned on its own (:mod:`grid.territories.regions`).

        Examples
        --------
        >>> from grid.territories.graph import pairs_to_csr
        >>> adj = pairs_to_csr(np.array([[0, 1], [1, 2], [2, 3]]), 4)
        >>> xy = np.array([[0, 0], [1, 0], [2, 0], [3, 0]], dtype=float)
        >>> plan = TerritoryPlan.from_arrays(np.ones(4), adj, xy[[0, 3]], xy, np.ones(2)).solve()
        >>> plan.assignment.tolist()
        [0, 0, 1, 1]
        """
        n = len(workload)
        lock = np.full(n, -1, dtype=np.int64)
        for c, r in (locked or {}).items():
            lock[int(c)] = int(r)
        cur = None if current is None else np.asarray(current, dtype=np.int64).copy()
        return cls(
            workload,
            adjacency,
            rm_home_xy,
            cell_xy,
            capacity,
            locked=lock,
            current=cur,
            keep_current=keep_current,
            max_distance_km=max_distance_km,
            seed=seed,
            travel=_travel_per_metre(travel_weight, np.asarray(cell_xy, float), np.asarray(rm_home_xy, float)),
            tolerance=tolerance,
            regions=regions,
        )

    @classmethod
    def from_geodataframe(
        cls,
        cells: gpd.GeoDataFrame,
        rms: pd.DataFrame,
        *,
        weights: dict[str, float] | None = None,
        measures: list[str] | None = None,
        locked: dict | None = None,
        current: dict | pd.Series | None = None,
        keep_current: bool = False,
        max_distance_km: float | None = None,
        seed: int = 0,
        tolerance: float | None = None,
        adjacency=None,
        region_column: str | None = None,
    ) -> TerritoryPlan:
        """Plan from cells (``cell_id``, ``geometry`` EPSG:4326, measures) and RMs (``rm_id``, ``lon``, ``lat``, ``capacity``).

        ``measures`` defaults to the columns named in ``weights`` (else those of
        customers/households/deposit/loan present); ``weights`` defaults to 1 each;
        ``weights["travel"]`` adds the travel term. ``locked``/``current`` map
        cell_id to rm_id. ``adjacency`` may be passed as ``(csr, virtual_edges)``
        to reuse one built by :func:`cell_adjacency`. ``region_column`` names a column
        of both cells and RMs (e.g. ``county_code``): each region is planned on its
        own with its workload split over its own RMs.

        Examples
        --------
        >>> from shapely.geometry import box
        >>> cells = gpd.GeoDataFrame({"cell_id": list("abcd"), "customers": [1, 1, 1, 1]},
        ...     geometry=[box(106 + i * 0.01, 38, 106.01 + i * 0.01, 38.01) for i in range(4)], crs=4326)
        >>> rms = pd.DataFrame({"rm_id": ["x", "y"], "lon": [106.005, 106.035], "lat": [38.005] * 2,
        ...     "capacity": [1.0, 1.0]})
        >>> TerritoryPlan.from_geodataframe(cells, rms).solve().assignment_series().tolist()
        ['x', 'x', 'y', 'y']
        """
        weights = dict(weights or {})
        if measures is None:
            named = [m for m in weights if m != "travel"]
            measures = named or [m for m in DEFAULT_MEASURES if m in cells.columns]
        base = np.zeros(len(cells))
        for m in measures:
            x = cells[m].to_numpy(dtype=float)
            total = x.sum()
            if total > 0:
                base += weights.get(m, 1.0) * x / total
        crs = metric_crs(cells)
        geoms = metric_geometries(cells.geometry.to_crs(4326).to_numpy(), crs)
        cell_xy = shapely.get_coordinates(shapely.centroid(geoms))
        hx, hy = project_points(rms["lon"], rms["lat"], crs)
        home_xy = np.column_stack([hx, hy])
        if adjacency is None:
            adj, virtual = cell_adjacency(gpd.GeoSeries(geoms, crs=crs), return_virtual=True)
        else:
            adj, virtual = adjacency
        cell_ids = cells["cell_id"].tolist()
        rm_ids = rms["rm_id"].tolist()
        crow = {c: i for i, c in enumerate(cell_ids)}
        rrow = {r: i for i, r in enumerate(rm_ids)}
        lock = np.full(len(cells), -1, dtype=np.int64)
        for c, r in (locked or {}).items():
            lock[crow[c]] = rrow[r]
        cur = None
        if current is not None:
            cur = np.full(len(cells), -1, dtype=np.int64)
            for c, r in dict(current).items():
                if c in crow and r in rrow:
                    cur[crow[c]] = rrow[r]
        cap = rms["capacity"].to_numpy(dtype=float) if "capacity" in rms else np.ones(len(rms))
        return cls(
            base,
            adj,
            home_xy,
            cell_xy,
            cap,
            locked=lock,
            current=cur,
            keep_current=keep_current,
            max_distance_km=max_distance_km,
            seed=seed,
            travel=_travel_per_metre(weights.get("travel", 0.0), cell_xy, home_xy),
            tolerance=tolerance,
            virtual_edges=virtual,
            geometry=geoms,
            customers=cells["customers"].to_numpy(dtype=float) if "customers" in cells else None,
            cell_ids=cell_ids,
            rm_ids=rm_ids,
            regions=None if region_column is None else (cells[region_column].to_numpy(), rms[region_column].to_numpy()),
        )

    def _problem(self, move_penalty: bool) -> Problem:
        """Solver view of the plan."""
        rows, cols = sparse.triu(self.adjacency, k=1).nonzero()
        return Problem(
            base=self.workload,
            nbrs=neighbour_lists(self.adjacency),
            pairs=np.column_stack([rows, cols]).astype(np.int64),
            cell_xy=self.cell_xy,
            home_xy=self.rm_home_xy,
            capacity=self.capacity,
            locked=self.locked,
            travel=self.travel,
            max_distance_m=None if self.max_distance_km is None else self.max_distance_km * 1000.0,
            move_penalty=self.current if move_penalty else None,
            rng=np.random.default_rng(self.seed),
        )

    def solve(self, *, time_limit_s: float | None = None, work: float | None = None, report: bool = True,
              workers: int = 1) -> TerritoryPlan:
        """Run the optimiser; fills ``assignment``, ``seeds`` and ``report`` and returns ``self``.

        ``work`` bounds the improving stages in work units (:mod:`grid.territories.budget`;
        default :func:`~grid.territories.budget.default_work` of the plan's size, ``math.inf``
        for none): the same inputs and seed give the same plan on any machine, however
        loaded. ``time_limit_s`` is only a safety net: if the wall clock runs out first the
        best balance so far is kept and ``timed_out`` is set (territories stay contiguous
        either way). ``work_used`` says how much was spent. ``report=False`` skips the
        report (Polsby-Popper dissolves every territory, which takes long on a province);
        ``evaluate(plan.assignment)`` makes it later. With ``regions``, each region is
        solved on its own (with its own default budget), in ``workers`` processes.
        """
        if self.regions is not None:
            self.assignment, self.work_used, self.timed_out = solve_regions(
                self, time_limit_s=time_limit_s, work=work, workers=workers)
            self.seeds = None
            self.report = self.evaluate(self.assignment) if report else None
            return self
        keep = self.keep_current and self.current is not None
        total = Budget(default_work(len(self.workload), len(self.capacity)) if work is None else work, time_limit_s)
        # A sixth of the work (and of the time) is kept for smoothing the borders and polishing after it.
        smoothing = total.part(1 / 6) if not keep else Budget(0.0)
        budget = total.part(1.0 if keep else 5 / 6)
        if time_limit_s is not None and not keep:
            budget.end -= time_limit_s / 6
        p = self._problem(move_penalty=keep)
        p.budget = budget
        n, k = p.n, p.k
        a = np.full(n, -1, dtype=np.int64)
        if keep:
            cur = self.current
            ok = (cur >= 0) & (cur < k)
            ok[ok] = self.capacity[cur[ok]] > 0
            a[ok] = cur[ok]
        if keep:
            # An RM's only cell is no seed for another (it would leave that RM without any).
            owned = np.bincount(a[a >= 0], minlength=k)
            taken = (self.locked >= 0) | ((a >= 0) & (owned[np.maximum(a, 0)] == 1))
        else:
            taken = (self.locked >= 0) | (a >= 0)
        seeds = choose_seeds(p, taken=taken)
        if not keep:
            # A balanced contiguous start (grid.territories.start); locks are written over it and the
            # pieces they cut off regrown below. RMs anchor at their start's centre, unless locks seed them.
            start, centre = balanced_start(p)
            free = (self.locked < 0) & (start >= 0)
            if p.max_distance_m is not None:
                free &= np.hypot(*(self.cell_xy - self.rm_home_xy[np.maximum(start, 0)]).T) <= p.max_distance_m
            a[free] = start[free]
            locked_rm = np.bincount(self.locked[self.locked >= 0], minlength=k) > 0
            use = (centre >= 0) & ~locked_rm
            use[use] = free[centre[use]]
            seeds = np.where(use, centre, seeds)
            seeds = distinct_seeds(p, seeds, keep_rows=use | locked_rm)
        a[self.locked >= 0] = self.locked[self.locked >= 0]
        size = np.bincount(a[a >= 0], minlength=k)
        for r in np.flatnonzero(seeds >= 0):
            own = np.flatnonzero(a == r) if keep and size[r] > 0 else np.empty(0, dtype=np.int64)
            if len(own) == 0:  # no cells of its own (any more): start from its seed
                a[seeds[r]] = r
            else:
                seeds[r] = own[np.argmin(np.hypot(*(self.cell_xy[own] - self.rm_home_xy[r]).T))]
        anchor = np.where((seeds >= 0)[:, None], self.cell_xy[np.maximum(seeds, 0)], self.rm_home_xy)
        grow(p, a, anchor)
        orphans = orphan_cells(p, a, seeds)
        if len(orphans):
            a[orphans] = -1
            grow(p, a, anchor)
        improve(p, a, anchor, seeds, tolerance=self.tolerance, chains=self.chains, keep=keep, smoothing=smoothing)
        total.absorb(budget)
        total.absorb(smoothing)
        self.work_used, self.timed_out = total.used, total.timed_out
        self.assignment, self.seeds = a, seeds
        self.report = self.evaluate(a) if report else None
        return self

    def evaluate(self, assignment: np.ndarray) -> PlanReport:
        """Report on any assignment of this plan's cells (RM rows, -1 unowned)."""
        return plan_report(
            assignment,
            self.workload,
            self.adjacency,
            self.rm_home_xy,
            self.cell_xy,
            self.capacity,
            travel=self.travel,
            current=self.current,
            customers=self.customers,
            geometry=self.geometry,
            rm_ids=self.rm_ids,
            virtual_edges=self.virtual_edges,
            max_distance_km=self.max_distance_km,
            regions=self.regions,
            locked=self.locked,
        )

    def assignment_series(self) -> pd.Series:
        """The assignment as cell_id → rm_id (rows when the plan was built from arrays)."""
        if self.assignment is None:
            raise InvalidInput("plan not solved: call solve() first")
        ids = self.rm_ids if self.rm_ids is not None else list(range(len(self.capacity)))
        rm = [ids[r] if r >= 0 else None for r in self.assignment.tolist()]
        return pd.Series(rm, index=self.cell_ids, name="rm_id").rename_axis("cell_id")

    def rm_row(self, rm) -> int:
        """Row of an RM given its id (or its row for array-built plans)."""
        return self.rm_ids.index(rm) if self.rm_ids is not None else int(rm)

    def rows_of(self, assignment) -> np.ndarray:
        """RM rows per cell from an array of rows or a cell_id → rm_id mapping."""
        if isinstance(assignment, (dict, pd.Series)):
            m = dict(assignment)
            rrow = {r: i for i, r in enumerate(self.rm_ids or [])}
            return np.array([rrow.get(m.get(c), -1) for c in self.cell_ids], dtype=np.int64)
        return np.asarray(assignment, dtype=np.int64)

    def copy(self) -> TerritoryPlan:
        """An independent copy (arrays that solve() changes are copied)."""
        new = copy.copy(self)
        new.capacity = self.capacity.copy()
        new.locked = self.locked.copy()
        new.current = None if self.current is None else self.current.copy()
        return new
