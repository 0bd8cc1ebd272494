"""Where to put new service points: maximal covering location with existing facilities.

Demand points (cell centroids, weighted by households) count as covered when
a facility lies within ``radius_km`` (straight line, metric coordinates).
Existing outlets and service points are fixed: demand they already cover is
not counted again. :func:`suggest_sites` chooses up to ``k`` candidates that
maximise the demand *newly* covered (the MCLP of Church and ReVelle, solved as
an integer programme by HiGHS); :func:`greedy_sites` is the greedy baseline
(each step takes the candidate adding most).

The solver calls are :mod:`grid.site_solvers`. HiGHS is called through highspy rather than PuLP: the model is passed as
arrays (PuLP builds it one Python object per coefficient) and the greedy
answer is given as the starting incumbent, which PuLP's HiGHS interface cannot
do; so a solve stopped by its time limit is never worse than greedy. CBC via
PuLP (``solver='cbc'``) remains as an independent cross-check.

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
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from grid.errors import SiteInputError, SiteSolverError
from grid.projection import metric_crs
from grid.site_solvers import solve_highs, solve_pulp

__all__ = [
    "SOLVERS",
    "SiteInputError",
    "SiteResult",
    "SiteSolverError",
    "greedy_sites",
    "suggest_sites",
    "suggest_sites_gdf",
]

SOLVERS = ("highs", "cbc")

@dataclass(frozen=True)
class SiteResult:
    """Suggested sites and the demand covered before and after.

    ``chosen`` holds candidate row indices in the order of their marginal gain
    (the first adds most given the existing facilities, the second most given
    those and the first, ...); ``newly_covered[i]`` is the demand weight that
    ``chosen[i]`` adds in that order, so ``covered_before +
    newly_covered.sum() == covered_after``. Candidates that would add nothing
    are never listed, so fewer than ``k`` may be returned. ``optimal`` says
    the solver proved the optimum; otherwise ``gap`` is its relative MIP gap
    (NaN when no bound was reached, and always NaN for greedy).
    """

    chosen: np.ndarray
    newly_covered: np.ndarray
    covered_before: float
    covered_after: float
    total_demand: float
    status: str
    optimal: bool
    gap: float
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


def _result(inst: _Instance, picked, status: str, *, optimal: bool, method: str, gap: float) -> SiteResult:
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
        gap=gap,
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
    return _result(inst, _greedy_picks(inst), "greedy", optimal=False, method="greedy", gap=float("nan"))


def _greedy_picks(inst: _Instance) -> list[int]:
    """Greedy choice: candidate indices in the order picked."""
    cover_t = inst.cover.T.tocsr().astype(float)
    cover = inst.cover.tocsc()
    w = inst.remaining.copy()
    picked: list[int] = []
    for _ in range(inst.k):
        if cover_t.shape[0] == 0:
            break
        gain = cover_t @ w
        gain[picked] = -1.0
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        picked.append(j)
        w[cover.indices[cover.indptr[j]:cover.indptr[j + 1]]] = 0.0
    return picked


def _groups(inst: _Instance) -> tuple[csr_matrix, np.ndarray, np.ndarray]:
    """Demand still uncovered, merged by covering set: (groups x useful candidates, weights, candidate ids)."""
    keep = inst.remaining > 0
    cover = inst.cover[keep]
    cover.sort_indices()
    weight = inst.remaining[keep]
    # demand covered by the same candidate set is one group: same optimum, fewer rows
    groups: dict[bytes, float] = {}
    for i in range(cover.shape[0]):
        cols = cover.indices[cover.indptr[i]:cover.indptr[i + 1]]
        if len(cols):
            key = cols.astype(np.int64).tobytes()
            groups[key] = groups.get(key, 0.0) + weight[i]
    sets = [np.frombuffer(key, dtype=np.int64) for key in groups]
    useful = np.unique(np.concatenate(sets)) if sets else np.zeros(0, dtype=np.int64)
    local = [np.searchsorted(useful, cols) for cols in sets]
    indptr = np.cumsum([0] + [len(c) for c in local])
    indices = np.concatenate(local) if local else np.zeros(0, dtype=np.int64)
    mat = csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(len(sets), len(useful)))
    return mat, np.fromiter(groups.values(), dtype=float, count=len(groups)), useful


def suggest_sites(demand_xy, demand_weight, candidate_xy, existing_xy, k: int, radius_km: float,
                  *, solver: str = "highs", time_limit_s: float | None = 60.0,
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
        'highs': HiGHS through highspy, warm-started with the greedy answer, so
        a solve stopped by the time limit is never worse than greedy.
        'cbc': CBC through PuLP (a cross-check; no warm start).
    time_limit_s, mip_gap : optional
        Solver limits. ``optimal`` is False when the solver stopped before
        proving optimality; ``gap`` then holds HiGHS's relative MIP gap.

    Returns
    -------
    SiteResult
        ``chosen`` (candidate indices by marginal gain), ``newly_covered``,
        ``covered_before``, ``covered_after``, ``total_demand``, ``status``,
        ``optimal``, ``gap``, masks of covered demand before and after.

    Examples
    --------
    >>> demand = [[0, 0], [1500, 0], [3000, 0], [4500, 0]]
    >>> r = suggest_sites(demand, [2, 3, 3, 2], [[2250, 0], [750, 0], [3750, 0]],
    ...                   [], k=2, radius_km=1.0)
    >>> r.chosen.tolist(), r.newly_covered.tolist(), r.covered_after, r.optimal
    ([1, 2], [5.0, 5.0], 10.0, True)
    """
    if solver not in SOLVERS:
        raise SiteInputError(f"solver: expected one of {SOLVERS}, got {solver!r}")
    if time_limit_s is not None and not time_limit_s > 0:
        raise SiteInputError(f"time_limit_s: must be > 0, got {time_limit_s!r}")
    if not 0 <= mip_gap < 1:
        raise SiteInputError(f"mip_gap: must be in [0, 1), got {mip_gap!r}")
    inst = _instance(demand_xy, demand_weight, candidate_xy, existing_xy, k, radius_km)
    mat, weight, useful = _groups(inst)
    if mat.shape[0] == 0 or inst.k == 0:
        return _result(inst, [], "Optimal", optimal=True, method=solver, gap=0.0)
    if solver == "highs":
        start = np.searchsorted(useful, _greedy_picks(inst))
        local, status, optimal, gap = solve_highs(mat, weight, inst.k, start, time_limit_s, mip_gap)
    else:
        local, status, optimal, gap = solve_pulp(mat, weight, inst.k, solver, time_limit_s, mip_gap)
    return _result(inst, useful[local], status, optimal=optimal, method=solver, gap=gap)


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
    # no cells, no bounds to pick a zone from: any metric CRS will do, as there is nothing to cover
    crs = metric_crs(cells) if len(cells) else "EPSG:3857"

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
