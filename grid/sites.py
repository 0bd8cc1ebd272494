"""Where to put new service points: maximal covering location with existing facilities.

Demand points (cell centroids, weighted by households) count as covered when
a facility lies within ``radius_km`` (straight line, metric coordinates).
Existing outlets and service points are fixed: demand they already cover is
not counted again. :func:`suggest_sites` chooses up to ``k`` candidates that
maximise the demand *newly* covered (the MCLP of Church and ReVelle, solved as
an integer programme through PuLP with HiGHS); :func:`greedy_sites` is the
greedy baseline (each step takes the candidate adding most).

Formulation, after dropping demand that is already covered or that no
candidate reaches, and merging demand points covered by the same candidate
set into one row (same optimum, much smaller model)::

    max  sum_g W_g y_g
    s.t. y_g <= sum_{j covers g} x_j   for every demand group g
         sum_j x_j <= k
         x_j in {0, 1},  0 <= y_g <= 1
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import pulp
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from grid.projection import metric_crs

SOLVERS = ("highs", "cbc")


class SiteInputError(ValueError):
    """Coordinates, weights, k or radius are malformed."""


class SiteSolverError(RuntimeError):
    """The requested solver is not available."""


@dataclass(frozen=True)
class SiteResult:
    """Suggested sites and the demand covered before and after.

    ``chosen`` holds candidate row indices in the order of their marginal gain
    (the first adds most given the existing facilities, the second most given
    those and the first, ...); ``newly_covered[i]`` is the demand weight that
    ``chosen[i]`` adds in that order, so ``covered_before +
    newly_covered.sum() == covered_after``. Candidates that would add nothing
    are never listed, so fewer than ``k`` may be returned.
    """

    chosen: np.ndarray
    newly_covered: np.ndarray
    covered_before: float
    covered_after: float
    total_demand: float
    status: str
    optimal: bool
    method: str
    k: int
    radius_km: float
    covered_before_mask: np.ndarray = field(repr=False)
    covered_after_mask: np.ndarray = field(repr=False)
    sites: gpd.GeoDataFrame | None = field(default=None, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per suggestion: ``rank, candidate, newly_covered, covered_after``."""
        return pd.DataFrame({
            "rank": np.arange(1, len(self.chosen) + 1),
            "candidate": self.chosen,
            "newly_covered": self.newly_covered,
            "covered_after": self.covered_before + np.cumsum(self.newly_covered),
        })


def _xy(name: str, a, allow_empty: bool) -> np.ndarray:
    """An (n, 2) float array of metric coordinates."""
    arr = np.asarray(a, dtype=float).reshape(-1, 2) if np.size(a) == 0 else np.asarray(a, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise SiteInputError(f"{name}: expected an (n, 2) array of x, y metres, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise SiteInputError(f"{name}: coordinates must be finite")
    if not allow_empty and len(arr) == 0:
        raise SiteInputError(f"{name}: must not be empty")
    return arr


@dataclass
class _Instance:
    """The checked problem: coverage matrix and the demand left after existing facilities."""

    weight: np.ndarray
    remaining: np.ndarray
    before: np.ndarray
    cover: csr_matrix  # demand x candidate, True where the candidate is within the radius
    k: int
    radius_km: float


def _instance(demand_xy, demand_weight, candidate_xy, existing_xy, k, radius_km) -> _Instance:
    """Validate the inputs and build the coverage structures."""
    d = _xy("demand_xy", demand_xy, allow_empty=True)
    c = _xy("candidate_xy", candidate_xy, allow_empty=True)
    e = _xy("existing_xy", existing_xy, allow_empty=True)
    w = np.asarray(demand_weight, dtype=float).reshape(-1)
    if w.shape != (len(d),):
        raise SiteInputError(f"demand_weight: expected {len(d)} weights, got {w.shape[0]}")
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise SiteInputError("demand_weight: weights must be finite and >= 0")
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise SiteInputError(f"k: must be a whole number >= 0, got {k!r}")
    if not (np.isfinite(radius_km) and radius_km > 0):
        raise SiteInputError(f"radius_km: must be > 0, got {radius_km!r}")
    r = 1000.0 * float(radius_km)
    before = np.zeros(len(d), dtype=bool)
    if len(e) and len(d):
        dist, _ = cKDTree(e).query(d, k=1, distance_upper_bound=r * (1 + 1e-12))
        before = dist <= r
    remaining = np.where(before, 0.0, w)
    if len(c) and len(d):
        pairs = cKDTree(d).sparse_distance_matrix(cKDTree(c), r, output_type="ndarray")
        rows, cols = pairs["i"], pairs["j"]
    else:
        rows = cols = np.zeros(0, dtype=int)
    cover = csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(len(d), len(c)))
    cover.sum_duplicates()
    return _Instance(w, remaining, before, cover, int(k), float(radius_km))


def _marginal_order(inst: _Instance, picked) -> tuple[np.ndarray, np.ndarray]:
    """Order a chosen set by marginal gain (ties: lower index); drop sites that add nothing."""
    cover = inst.cover.tocsc()
    w = inst.remaining.copy()
    left = sorted(int(j) for j in picked)
    order: list[int] = []
    gains: list[float] = []
    while left:
        g = np.array([w[cover.indices[cover.indptr[j]:cover.indptr[j + 1]]].sum() for j in left])
        best = int(np.argmax(g))
        if g[best] <= 0:
            break
        j = left.pop(best)
        order.append(j)
        gains.append(float(g[best]))
        w[cover.indices[cover.indptr[j]:cover.indptr[j + 1]]] = 0.0
    return np.asarray(order, dtype=int), np.asarray(gains, dtype=float)


def _result(inst: _Instance, picked, status: str, optimal: bool, method: str) -> SiteResult:
    """Package a chosen set as a :class:`SiteResult`."""
    order, gains = _marginal_order(inst, picked)
    after = inst.before.copy()
    if len(order):
        after |= np.asarray(inst.cover[:, order].sum(axis=1)).reshape(-1) > 0
    return SiteResult(
        chosen=order,
        newly_covered=gains,
        covered_before=float(inst.weight[inst.before].sum()),
        covered_after=float(inst.weight[after].sum()),
        total_demand=float(inst.weight.sum()),
        status=status,
        optimal=optimal,
        method=method,
        k=inst.k,
        radius_km=inst.radius_km,
        covered_before_mask=inst.before,
        covered_after_mask=after,
    )


def greedy_sites(demand_xy, demand_weight, candidate_xy, existing_xy, k: int, radius_km: float,
                 *, solver: str = "greedy") -> SiteResult:
    """Greedy baseline: repeatedly add the candidate that newly covers most demand.

    Same arguments and result as :func:`suggest_sites` (``solver`` is ignored;
    it is there so both functions can be called alike). Ties go to the lower
    candidate index. Greedy is within ``1 - 1/e`` of the optimum, not optimal.

    Examples
    --------
    >>> demand = [[0, 0], [1500, 0], [3000, 0], [4500, 0]]
    >>> r = greedy_sites(demand, [2, 3, 3, 2], [[2250, 0], [750, 0], [3750, 0]],
    ...                  [], k=2, radius_km=1.0)
    >>> r.chosen.tolist(), r.newly_covered.tolist(), r.covered_after
    ([0, 1], [6.0, 2.0], 8.0)
    """
    inst = _instance(demand_xy, demand_weight, candidate_xy, existing_xy, k, radius_km)
    cover_t = inst.cover.T.tocsr().astype(float)
    cover = inst.cover.tocsc()
    w = inst.remaining.copy()
    picked: list[int] = []
    for _ in range(inst.k):
        gain = cover_t @ w
        gain[picked] = -1.0
        if len(gain) == 0:
            break
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        picked.append(j)
        w[cover.indices[cover.indptr[j]:cover.indptr[j + 1]]] = 0.0
    return _result(inst, picked, "greedy", optimal=False, method="greedy")


def _pulp_solver(solver: str, time_limit_s: float | None, mip_gap: float):
    """The PuLP solver object for a solver name."""
    if solver == "highs":
        s = pulp.HiGHS(msg=False, timeLimit=time_limit_s, gapRel=mip_gap)
    elif solver == "cbc":
        # a CBC on PATH first: PuLP 3.x deprecates its bundled binary (PULP_CBC_CMD)
        s = pulp.COIN_CMD(msg=False, timeLimit=time_limit_s, gapRel=mip_gap)
        if not s.available():
            s = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=mip_gap)
    else:
        raise SiteInputError(f"solver: expected one of {SOLVERS}, got {solver!r}")
    if not s.available():
        raise SiteSolverError(f"solver {solver!r} is not available in this environment")
    return s


def _variable(prob: pulp.LpProblem, name: str, lo: float, hi: float, cat: str) -> pulp.LpVariable:
    """A model variable; PuLP 3.x deprecates building LpVariable directly, 2.x lacks add_variable."""
    if hasattr(prob, "add_variable"):
        return prob.add_variable(name, lo, hi, cat=cat)
    return pulp.LpVariable(name, lo, hi, cat=cat)


def suggest_sites(demand_xy, demand_weight, candidate_xy, existing_xy, k: int, radius_km: float,
                  *, solver: str = "highs", time_limit_s: float | None = None,
                  mip_gap: float = 0.0) -> SiteResult:
    """Choose up to ``k`` new sites maximising demand newly covered within ``radius_km``.

    Parameters
    ----------
    demand_xy : array (n, 2)
        Demand points in metres (a metric CRS, see :func:`grid.projection.metric_crs`).
    demand_weight : array (n,)
        Weight of each demand point, e.g. households (>= 0).
    candidate_xy : array (m, 2)
        Candidate sites in metres.
    existing_xy : array (e, 2)
        Existing outlets and service points in metres (may be empty); fixed.
    k : int
        Most new sites to choose.
    radius_km : float
        Coverage radius in km (a demand point at exactly this distance is covered).
    solver : {'highs', 'cbc'}
        MIP solver used through PuLP.
    time_limit_s, mip_gap : optional
        Solver limits; ``optimal`` is False when the solver stopped before
        proving optimality (``mip_gap`` 0 asks for the proven optimum).

    Returns
    -------
    SiteResult
        ``chosen`` (candidate indices by marginal gain), ``newly_covered``,
        ``covered_before``, ``covered_after``, ``total_demand``, ``status``,
        ``optimal``, masks of covered demand before and after.

    Examples
    --------
    >>> demand = [[0, 0], [1500, 0], [3000, 0], [4500, 0]]
    >>> r = suggest_sites(demand, [2, 3, 3, 2], [[2250, 0], [750, 0], [3750, 0]],
    ...                   [], k=2, radius_km=1.0)
    >>> r.chosen.tolist(), r.newly_covered.tolist(), r.covered_after, r.optimal
    ([1, 2], [5.0, 5.0], 10.0, True)
    """
    inst = _instance(demand_xy, demand_weight, candidate_xy, existing_xy, k, radius_km)
    backend = _pulp_solver(solver, time_limit_s, mip_gap)
    cover = inst.cover[inst.remaining > 0]
    weight = inst.remaining[inst.remaining > 0]
    # demand covered by the same candidate set is one group: same optimum, fewer rows
    groups: dict[bytes, float] = {}
    for i in range(cover.shape[0]):
        cols = cover.indices[cover.indptr[i]:cover.indptr[i + 1]]
        if len(cols):
            key = np.sort(cols).astype(np.int64).tobytes()
            groups[key] = groups.get(key, 0.0) + weight[i]
    if not groups or inst.k == 0:
        return _result(inst, [], "Optimal Solution Found", optimal=True, method=solver)

    prob = pulp.LpProblem("mclp", pulp.LpMaximize)
    useful = sorted({int(j) for key in groups for j in np.frombuffer(key, dtype=np.int64)})
    x = {j: _variable(prob, f"x{j}", 0, 1, pulp.LpBinary) for j in useful}
    ys = []
    for g, (key, w) in enumerate(groups.items()):
        y = _variable(prob, f"y{g}", 0, 1, pulp.LpContinuous)
        ys.append((y, w))
        expr = pulp.LpAffineExpression([(y, 1.0)] + [(x[int(j)], -1.0) for j in np.frombuffer(key, dtype=np.int64)])
        prob += pulp.LpConstraint(expr, sense=pulp.LpConstraintLE, rhs=0.0)
    prob += pulp.LpAffineExpression(ys)
    prob += pulp.LpConstraint(pulp.LpAffineExpression([(v, 1.0) for v in x.values()]),
                              sense=pulp.LpConstraintLE, rhs=inst.k)
    prob.solve(backend)
    found = prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    status = pulp.LpSolution[prob.sol_status]
    if not found:
        # no incumbent at all (e.g. an extreme time limit): say so, fall back to greedy
        fallback = greedy_sites(demand_xy, demand_weight, candidate_xy, existing_xy, k, radius_km)
        return replace(fallback, status=f"{status}; greedy fallback")
    picked = [j for j, v in x.items() if (v.varValue or 0.0) > 0.5]
    return _result(inst, picked, status, optimal=prob.sol_status == pulp.LpSolutionOptimal, method=solver)


def suggest_sites_gdf(cells_gdf: gpd.GeoDataFrame, existing_points_gdf: gpd.GeoDataFrame | None,
                      k: int, radius_km: float, candidates: gpd.GeoDataFrame | None = None, *,
                      weight: str = "households", solver: str = "highs") -> SiteResult:
    """:func:`suggest_sites` on GeoDataFrames (EPSG:4326 or any CRS with one set).

    Demand is each cell's centroid (computed in the metric CRS that
    :func:`grid.projection.metric_crs` picks for the cells) weighted by the
    ``weight`` column; candidates default to the same centroids. ``solver``
    may also be ``'greedy'``. The result's ``sites`` holds the chosen
    candidate rows (point geometry in EPSG:4326) with ``rank``,
    ``newly_covered`` and ``covered_after`` columns.

    Examples
    --------
    >>> from shapely.geometry import Point
    >>> cells = gpd.GeoDataFrame({"households": [100, 50]},
    ...     geometry=[Point(106.0, 38.0), Point(106.2, 38.0)], crs=4326)
    >>> existing = gpd.GeoDataFrame(geometry=[Point(106.0, 38.001)], crs=4326)
    >>> r = suggest_sites_gdf(cells, existing, k=1, radius_km=2.0)
    >>> r.covered_before, r.covered_after, r.sites["rank"].tolist()
    (100.0, 150.0, [1])
    """
    if cells_gdf.crs is None:
        raise SiteInputError("cells_gdf: has no CRS")
    cells = cells_gdf.to_crs(4326)
    crs = metric_crs(cells)

    def centroids(gdf: gpd.GeoDataFrame | None) -> gpd.GeoSeries:
        if gdf is None or len(gdf) == 0:
            return gpd.GeoSeries([], crs=crs)
        if gdf.crs is None:
            raise SiteInputError("a GeoDataFrame has no CRS")
        return gdf.to_crs(crs).geometry.centroid

    def xy(points: gpd.GeoSeries) -> np.ndarray:
        return np.column_stack([points.x.to_numpy(), points.y.to_numpy()]) if len(points) else np.zeros((0, 2))

    demand = centroids(cells)
    cand_src = cells if candidates is None else candidates
    cand = demand if candidates is None else centroids(candidates)
    w = pd.to_numeric(cells[weight], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    args = (xy(demand), w, xy(cand), xy(centroids(existing_points_gdf)), k, radius_km)
    result = greedy_sites(*args) if solver == "greedy" else suggest_sites(*args, solver=solver)
    table = result.table()
    sites = gpd.GeoDataFrame(
        cand_src.iloc[result.chosen].drop(columns=cand_src.geometry.name).reset_index(drop=True),
        geometry=cand.iloc[result.chosen].to_crs(4326).reset_index(drop=True), crs=4326,
    )
    sites.insert(0, "rank", table["rank"].to_numpy())
    sites["newly_covered"] = table["newly_covered"].to_numpy()
    sites["covered_after"] = table["covered_after"].to_numpy()
    return replace(result, sites=sites)
