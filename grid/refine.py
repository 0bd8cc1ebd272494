"""Adaptive cells: split grid cells whose workload is too much for one RM, keeping the exact tiling.

A plan of whole cells cannot balance an RM whose single cell holds more work
than its target (a town cell at res 8 can hold several targets). Refining
replaces such a cell by finer ones, recursively, until every cell holds at
most ``limit`` (for example half an RM's target) or the finest resolution is
reached:

* an H3 cell (whole hexagon or clipped border cell) is replaced by its H3
  children at the next resolution, cut from the parent's (clipped) shape
  (:func:`split_h3_cell`: H3 children do not fill their parent exactly, so each
  part of the parent goes to the nearest child centre), so the pieces tile the
  parent exactly and the grid still tiles the county. Every piece keeps its
  child's H3 index, so ids stay unique and the H3 parent of a piece is the
  cell it replaced (roll-ups to coarser resolutions stay exact);
* a village cell is split by the H3 cells inside it (:func:`grid.h3cells.build_h3_cells`
  on its shape, at ``village_res``), each part refined further as above; parts
  keep the village codes and get ids ``<village cell id>-<h3 id>``.

Workload is measured from points (customers) with a weight each; points on a
border shared by two pieces count in the lowest piece (as
:func:`grid.locate.locate_exact` decides).
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from h3.api import basic_int as h3i

from grid.errors import InvalidInput
from grid.h3cells import _polygonal, build_h3_cells, cell_ids, h3_of_ids
from grid.locate.polygons import locate_exact

MAX_REFINE_RES = 12  # about 300 m across: finer cells are smaller than a village street

__all__ = ["MAX_REFINE_RES", "refine_h3_cells", "refine_village_cells", "split_h3_cell", "refine_limit"]


def refine_limit(total: float, rms: float, share: float) -> float:
    """Workload above which a cell is split: ``share`` of an RM's target ``total / rms``.

    Examples
    --------
    >>> refine_limit(1000.0, 20, 0.5)
    25.0
    """
    if not (rms > 0):
        raise InvalidInput(f"refinement needs a number of RMs above 0, got {rms!r}")
    if not (0 < share <= 10):
        raise InvalidInput(f"refinement share of an RM's target must be in (0, 10], got {share!r}")
    return float(total) / float(rms) * float(share)


def split_h3_cell(geom: shapely.Geometry, h3: int) -> tuple[np.ndarray, np.ndarray]:
    """Children of H3 cell ``h3`` cut from ``geom`` (its possibly clipped shape), tiling ``geom`` exactly.

    Each part of ``geom`` goes to the nearest child centre (a Voronoi diagram of
    the children's centres, in a frame where a degree of longitude is as long as
    one of latitude, clipped to ``geom``). On H3's lattice these regions are the
    children's hexagons up to H3's own curvature; unlike the hexagons they cover
    the parent with no gap, so no slivers need to be glued on (glued slivers
    leave spikes that self-intersect once projected to metres). Returns uint64
    child indexes and their pieces; children whose region misses ``geom`` are left out.

    Examples
    --------
    >>> from grid.h3cells import hexagons
    >>> h = h3i.latlng_to_cell(38.0, 106.0, 7)
    >>> parent = hexagons(np.array([h], dtype=np.uint64))[0]
    >>> kids, pieces = split_h3_cell(parent, h)
    >>> len(kids), bool(abs(shapely.area(pieces).sum() - parent.area) < 1e-15)
    (7, True)
    """
    kids = np.array(sorted(h3i.cell_to_children(int(h3))), dtype=np.uint64)
    latlng = np.array([h3i.cell_to_latlng(int(c)) for c in kids.tolist()])
    k = math.cos(math.radians(float(latlng[:, 0].mean())))
    minx, miny, maxx, maxy = geom.bounds
    frame = shapely.box(minx * k - 1, miny - 1, maxx * k + 1, maxy + 1)
    regions = shapely.voronoi_polygons(shapely.multipoints(np.column_stack([latlng[:, 1] * k, latlng[:, 0]])),
                                       extend_to=frame, ordered=True)
    regions = np.asarray(shapely.get_parts(regions), dtype=object)
    regions = shapely.transform(regions, lambda xy: np.column_stack([xy[:, 0] / k, xy[:, 1]]))
    pieces = _polygonal(shapely.intersection(regions, geom))
    keep = ~shapely.is_empty(pieces) & (shapely.area(pieces) > 0)
    return kids[keep], pieces[keep]


def _weights_by_row(geoms: np.ndarray, lon: np.ndarray, lat: np.ndarray, weight: np.ndarray, areas=None):
    """Row of each point (-1 outside) and the summed weight per row (points, plus area shares of ``areas``)."""
    row = locate_exact(geoms, lon, lat) if len(lon) else np.empty(0, dtype=np.int64)
    inside = row >= 0
    load = np.bincount(row[inside], weights=weight[inside], minlength=len(geoms)).astype(float)
    if areas is not None and len(geoms):
        tree, region, density = areas
        gi, ri = tree.query(geoms, predicate="intersects")
        if len(gi):
            part = shapely.area(shapely.intersection(geoms[gi], region[ri]))
            load += np.bincount(gi, weights=part * density[ri], minlength=len(geoms))
    return row, load


def _area_index(areas: gpd.GeoDataFrame | None):
    """(tree, geometries, weight per square degree) of areas with positive weight and area, or None."""
    if areas is None or len(areas) == 0:
        return None
    if "weight" not in areas:
        raise InvalidInput("areas need a 'weight' column")
    g = areas.geometry.to_numpy()
    w = areas["weight"].to_numpy(dtype=float)
    a = shapely.area(g)
    ok = (a > 0) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return None
    g = g[ok]
    return shapely.STRtree(g), g, w[ok] / a[ok]


def _check_points(lon, lat, weight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    weight = np.ones(len(lon)) if weight is None else np.asarray(weight, dtype=float)
    if not (lon.shape == lat.shape == weight.shape) or lon.ndim != 1:
        raise InvalidInput("lon, lat and weight must be 1-d arrays of the same length")
    ok = np.isfinite(lon) & np.isfinite(lat) & np.isfinite(weight)
    return lon[ok], lat[ok], weight[ok]


def _refine(h3: np.ndarray, geoms: np.ndarray, lon, lat, weight, limit: float, max_res: int, areas=None):
    """Refine cells (uint64, pieces) given their points; returns (h3, geoms, workload, whole-hexagon flag)."""
    row, load = _weights_by_row(geoms, lon, lat, weight, areas)
    out_h, out_g, out_w, out_whole = [], [], [], []
    order = np.argsort(row, kind="stable")
    bounds = np.searchsorted(row[order], np.arange(len(geoms) + 1))
    for i, (h, g) in enumerate(zip(h3.tolist(), geoms, strict=True)):
        if load[i] <= limit or h3i.get_resolution(h) >= max_res:
            out_h.append(h)
            out_g.append(g)
            out_w.append(load[i])
            out_whole.append(None)
            continue
        kids, pieces = split_h3_cell(g, h)
        mine = order[bounds[i] : bounds[i + 1]]
        kh, kg, kw, _ = _refine(kids, pieces, lon[mine], lat[mine], weight[mine], limit, max_res, areas)
        out_h += kh
        out_g += kg
        out_w += kw
        out_whole += [False] * len(kh)
    return out_h, out_g, out_w, out_whole


def refine_h3_cells(
    cells: gpd.GeoDataFrame,
    lon,
    lat,
    weight=None,
    *,
    limit: float,
    max_res: int = MAX_REFINE_RES,
    areas: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Split the H3 cells of a grid whose points weigh more than ``limit``, recursively (see the module docstring).

    Parameters
    ----------
    cells : GeoDataFrame
        An H3 grid (:func:`grid.h3cells.build_h3_cells`: ``cell_id`` or ``h3``,
        ``is_border``, geometry EPSG:4326), possibly refined already.
    lon, lat, weight : array-like
        Points (customers) and their workload (1 each when ``weight`` is None);
        points outside every cell, or not finite, are ignored.
    limit : float
        A cell whose points weigh more than this is split.
    max_res : int
        No cell is split below this resolution (at most 15).
    areas : GeoDataFrame, optional
        Workload spread evenly over areas (a ``weight`` column, geometry EPSG:4326):
        a cell weighs the share of each area it covers (households apportioned by
        area, :func:`grid.apportion.household_sources`).

    Returns
    -------
    GeoDataFrame
        ``cell_id``, ``h3``, ``is_border`` (not a whole hexagon: clipped, or a refined
        piece), ``res``, ``parent_id`` (the cell of the input it came from),
        ``workload`` and geometry, sorted by ``cell_id``; the pieces of a split cell
        tile it exactly.

    Examples
    --------
    >>> from shapely import box
    >>> cells = build_h3_cells(box(106.0, 38.0, 106.05, 38.05), 8)
    >>> h = int(cells["h3"].iloc[0]); c = shapely.centroid(cells.geometry.iloc[0])
    >>> fine = refine_h3_cells(cells, [c.x] * 10, [c.y] * 10, limit=5, max_res=9)
    >>> len(fine) > len(cells), float(fine["workload"].max())
    (True, 10.0)
    """
    if not 0 <= int(max_res) <= 15:
        raise InvalidInput(f"max_res must be an H3 resolution 0..15, got {max_res!r}")
    if not (limit >= 0):
        raise InvalidInput(f"limit must be a number >= 0, got {limit!r}")
    lon, lat, weight = _check_points(lon, lat, weight)
    area_index = _area_index(areas)
    h = cells["h3"].to_numpy(dtype=np.uint64) if "h3" in cells else h3_of_ids(cells["cell_id"])
    geoms = cells.geometry.to_numpy()
    border = cells["is_border"].to_numpy(dtype=bool) if "is_border" in cells else np.zeros(len(cells), bool)
    row, _ = _weights_by_row(geoms, lon, lat, weight)
    order = np.argsort(row, kind="stable")
    bounds = np.searchsorted(row[order], np.arange(len(geoms) + 1))
    rows = []
    for i in range(len(geoms)):
        mine = order[bounds[i] : bounds[i + 1]]
        kh, kg, kw, whole = _refine(h[i : i + 1], geoms[i : i + 1], lon[mine], lat[mine], weight[mine],
                                    float(limit), int(max_res), area_index)
        for x, g, w, wh in zip(kh, kg, kw, whole, strict=True):
            rows.append((x, g, w, bool(border[i]) if wh is None else True, i))
    hh = np.array([r[0] for r in rows], dtype=np.uint64)
    ids = cell_ids(hh)
    out = gpd.GeoDataFrame(
        {
            "cell_id": ids,
            "h3": hh,
            "is_border": np.array([r[3] for r in rows], dtype=bool),
            "res": np.array([h3i.get_resolution(int(x)) for x in hh.tolist()], dtype=np.int64),
            "parent_id": cell_ids(h)[[r[4] for r in rows]],
            "workload": np.array([r[2] for r in rows], dtype=float),
        },
        geometry=np.array([r[1] for r in rows], dtype=object),
        crs=cells.crs,
    )
    return out.sort_values("cell_id", kind="stable").reset_index(drop=True)


def refine_village_cells(
    cells: gpd.GeoDataFrame,
    lon,
    lat,
    weight=None,
    *,
    limit: float,
    village_res: int = 8,
    max_res: int = MAX_REFINE_RES,
    areas: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Split village cells whose points (and ``areas``, as in :func:`refine_h3_cells`) weigh more than ``limit``
    by the H3 cells inside them.

    A village cell over the limit becomes the H3 cells of ``village_res`` that
    cut its shape (:func:`grid.h3cells.build_h3_cells`), each refined further
    like :func:`refine_h3_cells`. Parts keep every column of the village cell
    (``village_codes``, names, township) and get ``cell_id`` ``<village cell id>-<h3 id>``
    and ``parent_id`` the village cell's id; cells kept whole keep their id.
    A ``workload`` column holds the points' weight per cell.

    Examples
    --------
    >>> import pandas as pd
    >>> v = gpd.GeoDataFrame({"cell_id": ["640101001001"], "village_codes": [["640101001001"]]},
    ...     geometry=[shapely.box(106.0, 38.0, 106.05, 38.05)], crs=4326)
    >>> out = refine_village_cells(v, [106.01, 106.04], [38.01, 38.04], limit=1, village_res=8)
    >>> len(out) > 1, set(map(tuple, out["village_codes"])) == {("640101001001",)}
    (True, True)
    """
    lon, lat, weight = _check_points(lon, lat, weight)
    geoms = cells.geometry.to_numpy()
    row, load = _weights_by_row(geoms, lon, lat, weight, _area_index(areas))
    order = np.argsort(row, kind="stable")
    bounds = np.searchsorted(row[order], np.arange(len(geoms) + 1))
    parts = []
    for i in range(len(cells)):
        base = cells.iloc[[i]].drop(columns="geometry")
        if load[i] <= limit:
            parts.append(gpd.GeoDataFrame(base.assign(parent_id=base["cell_id"], workload=load[i]),
                                          geometry=[geoms[i]], crs=cells.crs))
            continue
        mine = order[bounds[i] : bounds[i + 1]]
        hexes = build_h3_cells(geoms[i], village_res)
        fine = refine_h3_cells(hexes, lon[mine], lat[mine], weight[mine], limit=limit, max_res=max_res, areas=areas)
        rep = base.loc[base.index.repeat(len(fine))].reset_index(drop=True)
        rep["parent_id"] = rep["cell_id"]
        rep["cell_id"] = [f"{cells['cell_id'].iloc[i]}-{x}" for x in fine["cell_id"]]
        rep["workload"] = fine["workload"].to_numpy()
        parts.append(gpd.GeoDataFrame(rep, geometry=fine.geometry.to_numpy(), crs=cells.crs))
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=cells.crs)
