"""H3 grids that tile a county exactly, and roll-ups to coarser resolutions.

Inner cells are whole H3 hexagons; border cells are the hexagon clipped to the
county, so the cells of a grid cover the county with no gaps and no overlaps.
Hexagons are drawn from H3's own vertices, which neighbouring cells share
bit for bit, so whole hexagons meet exactly along their edges.

Everything is in EPSG:4326 (lng, lat). Counties that cross the antimeridian are
not supported (no Chinese county does).
"""

from __future__ import annotations

from itertools import chain, repeat

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from h3.api import basic_int as h3i

from grid.errors import InvalidInput

MIN_RES = 6
MAX_RES = 10

_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF) << _RES_SHIFT


def check_res(res: int) -> int:
    """Return ``res`` as an int, or raise :class:`InvalidInput` outside 6..10."""
    if (
        isinstance(res, bool)
        or not isinstance(res, int | np.integer)
        or not MIN_RES <= res <= MAX_RES
    ):
        raise InvalidInput(
            f"H3 resolution must be an integer from {MIN_RES} to {MAX_RES}, got {res!r}"
        )
    return int(res)


def county_geometry(county) -> shapely.Geometry:
    """The county as one valid (Multi)Polygon in EPSG:4326, or :class:`InvalidInput`."""
    if isinstance(county, gpd.GeoDataFrame | gpd.GeoSeries):
        if county.crs is not None and not county.crs.equals("EPSG:4326"):
            raise InvalidInput(f"county must be in EPSG:4326, got {county.crs}")
        county = county.union_all() if len(county) else shapely.Polygon()
    if isinstance(county, shapely.GeometryCollection) and not isinstance(county, shapely.MultiPolygon):
        # e.g. the output of make_valid or difference: keep the area, drop stray lines and points
        parts = [p for p in shapely.get_parts(county) if isinstance(p, shapely.Polygon | shapely.MultiPolygon)]
        county = shapely.union_all(parts) if parts else shapely.Polygon()
    if not isinstance(county, shapely.Polygon | shapely.MultiPolygon):
        raise InvalidInput(f"county must be a Polygon or MultiPolygon, got {type(county).__name__}")
    if county.is_empty:
        raise InvalidInput("county geometry is empty")
    if not county.is_valid:
        raise InvalidInput(
            f"county geometry is invalid ({shapely.is_valid_reason(county)}); repair it first, "
            "e.g. with shapely.make_valid"
        )
    return county


def cell_ids(h3_index: np.ndarray) -> np.ndarray:
    """H3 string ids (``'8924c202ab3ffff'``) of uint64 indexes, as an object array."""
    return np.array(
        [format(int(x), "x") for x in np.asarray(h3_index, dtype=np.uint64)], dtype=object
    )


def h3_of_ids(ids) -> np.ndarray:
    """uint64 indexes of H3 string ids."""
    return np.array([int(s, 16) for s in ids], dtype=np.uint64)


def hexagons(h3_index: np.ndarray) -> np.ndarray:
    """Whole-hexagon polygons (lng, lat) of uint64 H3 cells, vectorised where possible."""
    rings = list(map(h3i.cell_to_boundary, np.asarray(h3_index, dtype=np.uint64).tolist()))
    if len(rings) == 0:
        return np.array([], dtype=object)
    counts = np.fromiter(map(len, rings), dtype=np.int64, count=len(rings))
    flat = chain.from_iterable(chain.from_iterable(rings))
    # cell_to_boundary gives (lat, lng); shapely wants (lng, lat): swap columns.
    latlng = np.fromiter(flat, dtype=float, count=2 * int(counts.sum())).reshape(-1, 2)
    ring_ids = np.repeat(np.arange(len(rings)), counts)
    lr = shapely.linearrings(latlng[:, ::-1], indices=ring_ids)
    return shapely.polygons(lr)


def _local_inradius_deg(county: shapely.Geometry, res: int) -> tuple[float, float]:
    """Inradius of a hexagon near the county centre, in degrees of latitude and of longitude."""
    p = county.representative_point()
    hexagon = hexagons(np.array([h3i.latlng_to_cell(p.y, p.x, res)], dtype=np.uint64))[0]
    c = hexagon.centroid
    k = np.cos(np.radians(c.y))
    # Distances measured in a locally isotropic frame (longitude scaled by cos(lat)).
    ring = np.asarray(hexagon.exterior.coords)
    local = shapely.Polygon(np.column_stack([(ring[:, 0] - c.x) * k, ring[:, 1] - c.y]))
    r = shapely.Point(0, 0).distance(local.exterior)
    return r, r / k


def candidate_cells(county: shapely.Geometry, res: int) -> np.ndarray:
    """Sorted uint64 H3 cells whose hexagon may intersect the county (a superset).

    Samples the county's bounding box densely enough that every hexagon touching
    it holds at least one sample; much faster than H3's polygon fill on
    counties with thousands of boundary vertices.
    """
    r_lat, r_lon = _local_inradius_deg(county, res)
    # A square grid of step s leaves no point farther than s/sqrt(2) from a sample;
    # keeping that below 0.6 of the inradius puts a sample inside every hexagon.
    s_lat, s_lon = 0.6 * np.sqrt(2) * r_lat, 0.6 * np.sqrt(2) * r_lon
    pad_lat, pad_lon = 3 * r_lat, 3 * r_lon
    minx, miny, maxx, maxy = county.bounds
    xs = np.arange(minx - pad_lon, maxx + pad_lon + s_lon, s_lon)
    ys = np.arange(miny - pad_lat, maxy + pad_lat + s_lat, s_lat)
    # Skip blocks of samples far from the county: most of a bbox is empty for odd shapes.
    b = 16
    bx0, by0 = xs[::b], ys[::b]
    bx1 = np.minimum(bx0 + b * s_lon, xs[-1] + s_lon)
    by1 = np.minimum(by0 + b * s_lat, ys[-1] + s_lat)
    gx, gy = np.meshgrid(np.arange(len(bx0)), np.arange(len(by0)), indexing="ij")
    boxes = shapely.box(bx0[gx] - pad_lon, by0[gy] - pad_lat, bx1[gx] + pad_lon, by1[gy] + pad_lat)
    shapely.prepare(county)
    keep = shapely.intersects(county, boxes)
    lons, lats = [], []
    for i, j in zip(gx[keep], gy[keep], strict=True):
        bxs, bys = xs[i * b : (i + 1) * b], ys[j * b : (j + 1) * b]
        mx, my = np.meshgrid(bxs, bys, indexing="ij")
        lons.append(mx.ravel())
        lats.append(my.ravel())
    lon = np.concatenate(lons) if lons else np.array([])
    lat = np.concatenate(lats) if lats else np.array([])
    to_cell = h3i.latlng_to_cell
    cells = np.fromiter(
        map(to_cell, lat.tolist(), lon.tolist(), repeat(res)), dtype=np.uint64, count=len(lat)
    )
    return np.unique(cells)


def build_h3_cells(county, res: int) -> gpd.GeoDataFrame:
    """Cut a county into H3 cells that tile it exactly.

    Parameters
    ----------
    county : shapely Polygon or MultiPolygon, GeoSeries or GeoDataFrame
        The county in EPSG:4326 (lng, lat); must be valid. Holes and enclaves
        are respected; several rows are unioned.
    res : int
        H3 resolution, 6 to 10.

    Returns
    -------
    GeoDataFrame
        One row per cell, sorted by H3 index, EPSG:4326, columns ``cell_id``
        (H3 string), ``h3`` (uint64), ``is_border`` (bool: clipped by the
        county boundary) and ``geometry`` (Polygon or MultiPolygon). Inner
        cells are whole hexagons; border cells are hexagon ∩ county, slivers
        included, empty intersections dropped.

    Raises
    ------
    InvalidInput
        Resolution outside 6..10, or a county that is not a valid, non-empty
        polygonal geometry in EPSG:4326.

    Examples
    --------
    >>> from shapely import box
    >>> cells = build_h3_cells(box(106.0, 38.0, 106.1, 38.1), 7)
    >>> list(cells.columns)
    ['cell_id', 'h3', 'is_border', 'geometry']
    >>> bool(abs(shapely.area(cells.geometry.values).sum() - 0.01) < 1e-12)
    True
    """
    res = check_res(res)
    county = county_geometry(county)
    cand = candidate_cells(county, res)
    hexes = hexagons(cand)
    shapely.prepare(county)
    touches = shapely.intersects(county, hexes)
    cand, hexes = cand[touches], hexes[touches]
    inner = shapely.covers(county, hexes)
    geoms = hexes.copy()
    border = np.flatnonzero(~inner)
    if len(border):
        geoms[border] = _polygonal(shapely.intersection(hexes[border], county))
    keep = ~shapely.is_empty(geoms) & (shapely.area(geoms) > 0)
    h = cand[keep]
    return gpd.GeoDataFrame(
        {"cell_id": cell_ids(h), "h3": h, "is_border": ~inner[keep]},
        geometry=geoms[keep],
        crs="EPSG:4326",
    )


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal parts of overlay results (drop touching lines and points)."""
    out = geoms.copy()
    types = shapely.get_type_id(geoms)
    for i in np.flatnonzero(types == 7):  # GeometryCollection
        parts = [
            p for p in shapely.get_parts(geoms[i]) if p.geom_type in ("Polygon", "MultiPolygon")
        ]
        polys = [q for p in parts for q in shapely.get_parts(p)]
        out[i] = (
            shapely.MultiPolygon(polys)
            if len(polys) > 1
            else polys[0]
            if polys
            else shapely.Polygon()
        )
    bad = ~np.isin(types, (3, 6, 7))  # Polygon, MultiPolygon, handled collections
    out[bad] = shapely.Polygon()
    return out


def h3_parents(h3_index: np.ndarray, res: int) -> np.ndarray:
    """Parents of uint64 H3 cells at a coarser resolution, by bit manipulation.

    Equal to ``h3.cell_to_parent`` element by element; zeros (no cell) stay zero.

    Parameters
    ----------
    h3_index : array of uint64
        Cells, all at resolution ``res`` or finer.
    res : int
        Parent resolution, 0 to 15.

    Returns
    -------
    ndarray of uint64, same shape.

    Examples
    --------
    >>> c = np.array([0x8924c202ab3ffff], dtype=np.uint64)
    >>> format(int(h3_parents(c, 7)[0]), "x")
    '8724c202affffff'
    """
    if isinstance(res, bool) or not isinstance(res, int | np.integer) or not 0 <= res <= 15:
        raise InvalidInput(f"parent resolution must be an integer from 0 to 15, got {res!r}")
    h = np.asarray(h3_index, dtype=np.uint64)
    nonzero = h != 0
    own = (h & _RES_MASK) >> _RES_SHIFT
    if np.any(own[nonzero] < res):
        raise InvalidInput(f"some cells are coarser than resolution {res}")
    # Digits below the parent resolution become 7 ("unused"), as H3 specifies.
    low = np.uint64((1 << (3 * (15 - res))) - 1)
    out = (h & ~_RES_MASK & ~low) | (np.uint64(res) << _RES_SHIFT) | low
    return np.where(nonzero, out, np.uint64(0))


def _h3_column(df: pd.DataFrame) -> np.ndarray:
    """uint64 H3 indexes from an ``h3`` or ``cell_id`` column."""
    if "h3" in df.columns:
        return df["h3"].to_numpy(dtype=np.uint64)
    if "cell_id" in df.columns:
        return h3_of_ids(df["cell_id"])
    raise InvalidInput("expected an 'h3' (uint64) or 'cell_id' (H3 string) column")


def rollup(cells_values: pd.DataFrame, to_res: int) -> pd.DataFrame:
    """Sum per-cell numbers up to parent cells at a coarser resolution.

    Parameters
    ----------
    cells_values : DataFrame
        An ``h3`` (uint64) or ``cell_id`` (H3 string) column plus numeric
        columns; other columns are ignored.
    to_res : int
        Parent resolution, no finer than the cells'.

    Returns
    -------
    DataFrame
        Columns ``cell_id``, ``h3`` and the summed numeric columns, one row
        per parent, sorted by ``h3``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"cell_id": ["8924c202ab3ffff", "8924c202abbffff"], "customers": [3, 4]})
    >>> rollup(df, 7)[["cell_id", "customers"]].values.tolist()
    [['8724c202affffff', 7]]
    """
    parents = h3_parents(_h3_column(cells_values), to_res)
    numeric = cells_values.drop(columns=[c for c in ("h3", "cell_id") if c in cells_values.columns])
    numeric = numeric.select_dtypes(include="number").select_dtypes(exclude="bool")
    sums = numeric.groupby(parents, sort=True).sum()
    h = sums.index.to_numpy(dtype=np.uint64)
    out = pd.DataFrame({"cell_id": cell_ids(h), "h3": h})
    return pd.concat([out, sums.reset_index(drop=True)], axis=1)


def rollup_geometry(cells: gpd.GeoDataFrame, to_res: int) -> gpd.GeoDataFrame:
    """Dissolve a grid's cells into their parents so the coarser grid still tiles the county.

    A parent's geometry is the union of its clipped children (H3 children do
    not exactly fill the parent hexagon, so this is not the parent hexagon).

    Parameters
    ----------
    cells : GeoDataFrame
        Output of :func:`build_h3_cells` (``h3`` or ``cell_id``, ``is_border``, geometry).
    to_res : int
        Parent resolution, no finer than the cells'.

    Returns
    -------
    GeoDataFrame
        Columns ``cell_id``, ``h3``, ``is_border`` (any child clipped),
        ``n_children`` and ``geometry``, sorted by ``h3``.

    Examples
    --------
    >>> from shapely import box
    >>> fine = build_h3_cells(box(106.0, 38.0, 106.1, 38.1), 8)
    >>> coarse = rollup_geometry(fine, 7)
    >>> area = lambda g: shapely.area(g.geometry.values).sum()
    >>> bool(abs(area(coarse) - area(fine)) < 1e-12)
    True
    """
    parents = h3_parents(_h3_column(cells), to_res)
    order = np.argsort(parents, kind="stable")
    p_sorted = parents[order]
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
    geoms = cells.geometry.to_numpy()[order]
    border = cells["is_border"].to_numpy(dtype=bool)[order]
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    merged = np.empty(len(starts), dtype=object)
    for g, (a, b) in enumerate(zip(starts, np.r_[starts[1:], len(order)], strict=True)):
        if b - a == 1:
            merged[g] = geoms[a]
        elif not border[a:b].any():
            # Whole hexagons share H3's vertices exactly: a valid coverage, and
            # coverage union is many times faster than a general union.
            merged[g] = shapely.coverage_union_all(geoms[a:b])
        else:
            merged[g] = shapely.union_all(geoms[a:b])
    h = p_sorted[starts]
    return gpd.GeoDataFrame(
        {
            "cell_id": cell_ids(h),
            "h3": h,
            "is_border": np.logical_or.reduceat(border, starts) if len(starts) else border[:0],
            "n_children": np.bincount(group, minlength=len(starts)),
        },
        geometry=merged,
        crs=cells.crs,
    )


__all__ = [
    "build_h3_cells",
    "h3_parents",
    "rollup",
    "rollup_geometry",
    "hexagons",
    "cell_ids",
    "h3_of_ids",
    "check_res",
    "county_geometry",
]
