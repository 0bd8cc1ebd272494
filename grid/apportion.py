"""Apportion village households and population to the cells of a grid.

The rule, in order (the ``apportioned`` flag tells a reader which cells got
numbers by area share rather than by a village's own point):

1. A village with a point of its own (``coord_level == 'village'``) gives all
   its households to the cell that contains the point.
2. Villages that only carry a shared point (their township seat or county
   seat: most real village lists) are grouped by that point; the group's
   households are spread over the group's Voronoi region (the same region a
   village grid would make for it, clipped to the county) in proportion to the
   area each cell covers of it, measured in the metric projection.
3. Villages without any usable point are not apportioned; their totals are
   reported as unplaced so a planner sees what is missing.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from grid.locate import locate_exact
from grid.projection import metric_crs, metric_geometries
from grid.villages import build_village_cells

__all__ = ["apportion_to_cells"]


def apportion_to_cells(
    cells: gpd.GeoDataFrame, villages: pd.DataFrame, county: BaseGeometry
) -> tuple[pd.DataFrame, dict]:
    """Households and population per cell from a village list.

    Parameters
    ----------
    cells : GeoDataFrame with ``cell_id`` and ``geometry`` (EPSG:4326) tiling ``county``.
    villages : DataFrame with ``code``, ``name``, ``township_code``, ``lon``, ``lat``,
        ``coord_level``, ``households``, ``population`` (NaN counts as 0).
    county : the county (Multi)Polygon.

    Returns
    -------
    per_cell : DataFrame ``cell_id, households, population, apportioned`` (one row per cell).
    report : dict with households placed by point, by area share, and unplaced.

    Examples
    --------
    >>> import shapely, geopandas as gpd, pandas as pd
    >>> cells = gpd.GeoDataFrame({"cell_id": ["a", "b"]},
    ...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs=4326)
    >>> v = pd.DataFrame({"code": ["1"], "name": ["x"], "township_code": ["t"], "lon": [0.5],
    ...     "lat": [0.5], "coord_level": ["village"], "households": [10], "population": [30]})
    >>> apportion_to_cells(cells, v, shapely.box(0, 0, 2, 1))[0]["households"].tolist()
    [10.0, 0.0]
    """
    n = len(cells)
    hh = np.zeros(n)
    pop = np.zeros(n)
    apportioned = np.zeros(n, dtype=bool)
    v = villages.copy()
    for col in ("households", "population"):
        v[col] = pd.to_numeric(v.get(col), errors="coerce").fillna(0.0).astype(float)
    has_point = v["lon"].notna() & v["lat"].notna()
    own = has_point & (v["coord_level"] == "village")
    geoms = cells.geometry.to_numpy()

    idx = locate_exact(geoms, v.loc[own, "lon"].to_numpy(), v.loc[own, "lat"].to_numpy())
    inside = idx >= 0
    np.add.at(hh, idx[inside], v.loc[own, "households"].to_numpy()[inside])
    np.add.at(pop, idx[inside], v.loc[own, "population"].to_numpy()[inside])
    by_point = float(v.loc[own, "households"].to_numpy()[inside].sum())
    outside_hh = float(v.loc[own, "households"].to_numpy()[~inside].sum())

    shared = v[has_point & ~own]
    by_area = 0.0
    if len(shared):
        groups, rep = build_village_cells(county, shared)
        outside_hh += float(shared.loc[shared["code"].isin(rep["outside_county"]), "households"].sum())
        totals = shared.set_index("code")[["households", "population"]]
        crs = metric_crs(county.bounds)
        g_m = metric_geometries(groups.geometry.to_numpy(), crs)
        c_m = metric_geometries(cells.geometry.to_numpy(), crs)
        tree = shapely.STRtree(c_m)
        for gi, codes in enumerate(groups["village_codes"]):
            g_hh, g_pop = totals.loc[list(codes)].sum().to_numpy()
            if g_hh == 0 and g_pop == 0:
                continue
            cand = tree.query(g_m[gi], predicate="intersects")
            if len(cand) == 0:
                continue
            share = shapely.area(shapely.intersection(c_m[cand], g_m[gi]))
            if share.sum() <= 0:
                continue
            share = share / share.sum()
            hh[cand] += g_hh * share
            pop[cand] += g_pop * share
            apportioned[cand[share > 0]] = True
            by_area += g_hh
    unplaced = float(v.loc[~has_point, "households"].sum())
    per_cell = pd.DataFrame({
        "cell_id": cells["cell_id"].to_numpy(), "households": hh, "population": pop,
        "apportioned": apportioned,
    })
    report = {
        "households_by_point": by_point, "households_by_area_share": by_area,
        "households_unplaced": unplaced + outside_hh,
        "villages_without_point": int((~has_point).sum()),
    }
    return per_cell, report


def household_sources(villages: pd.DataFrame, county: BaseGeometry) -> tuple[pd.DataFrame, gpd.GeoDataFrame]:
    """Where households sit by the rule above: points (own-point villages) and areas (groups' Voronoi regions).

    Returns ``points`` (``lon, lat, households``) and ``areas`` (``households``,
    geometry EPSG:4326): a cell gets a point's households if it holds the point,
    and an area's in proportion to the part of the area it covers. Used to
    weigh cells while refining a grid (:mod:`grid.refine`), before cells exist.

    Examples
    --------
    >>> import shapely
    >>> v = pd.DataFrame({"code": ["1", "2", "3"], "name": list("xyz"), "township_code": "t",
    ...     "lon": [0.5, 1.5, 1.5], "lat": [0.5, 0.5, 0.5], "coord_level": ["village", "township", "township"],
    ...     "households": [10, 20, 5], "population": [30, 60, 15]})
    >>> pts, areas = household_sources(v, shapely.box(0, 0, 2, 1))
    >>> pts["households"].tolist(), areas["households"].tolist()
    ([10.0], [25.0])
    """
    v = villages.copy()
    v["households"] = pd.to_numeric(v.get("households"), errors="coerce").fillna(0.0).astype(float)
    has_point = v["lon"].notna() & v["lat"].notna()
    own = has_point & (v["coord_level"] == "village")
    points = pd.DataFrame({"lon": v.loc[own, "lon"].to_numpy(float), "lat": v.loc[own, "lat"].to_numpy(float),
                           "households": v.loc[own, "households"].to_numpy(float)})
    shared = v[has_point & ~own]
    if len(shared) == 0:
        return points, gpd.GeoDataFrame({"households": []}, geometry=[], crs=4326)
    groups, _ = build_village_cells(county, shared)
    hh = shared.set_index("code")["households"]
    weights = [float(hh.loc[list(codes)].sum()) for codes in groups["village_codes"]]
    return points, gpd.GeoDataFrame({"households": weights}, geometry=groups.geometry.to_numpy(), crs=4326)
