"""Village grids: one cell per village (or per group of villages sharing a point).

The cells always tile the county exactly in EPSG:4326: every cell is an
intersection with the county itself, so no re-projection bends a shared edge.
Best geometry first: village polygons when the caller has them, otherwise
Voronoi cells around the distinct village points. Nothing is invented: a
village without a usable point or polygon is reported, never guessed.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from grid.errors import InvalidInput
from grid.projection import metric_crs, project_points

__all__ = ["build_village_cells", "village_cell_lookup", "InvalidInput"]

CELL_COLUMNS = [
    "cell_id",
    "village_codes",
    "names",
    "township_code",
    "n_villages",
    "point_level",
    "geometry",
]
# Most specific first: a point shared by villages of different levels keeps the best claim.
LEVEL_RANK = {"village": 0, "township": 1, "county": 2, "none": 3}


def build_village_cells(
    county: BaseGeometry,
    villages: pd.DataFrame,
    *,
    village_polygons: gpd.GeoDataFrame | None = None,
    township_polygons: gpd.GeoDataFrame | None = None,
) -> tuple[gpd.GeoDataFrame, dict]:
    """Cut a county into village cells that tile it exactly.

    Parameters
    ----------
    county : shapely Polygon or MultiPolygon in EPSG:4326.
    villages : DataFrame with ``code`` (12-digit str), ``name``, ``township_code``,
        ``lon``, ``lat`` (NaN when unknown) and ``coord_level``
        (``village``/``township``/``county``/``none``).
    village_polygons : optional GeoDataFrame ``[code, geometry]``; used when given
        (then villages without a polygon are reported, not placed by point).
        Invalid shapes are repaired, overlaps go to the lower code, gaps go to the
        neighbour sharing the longest border (an island with no neighbour: the
        nearest cell).
    township_polygons : optional GeoDataFrame ``[code, geometry]``; Voronoi cells
        are then also clipped to each village's township (a township with no
        placed village, and county area outside every township, are split among
        all villages by plain Voronoi).

    Returns
    -------
    cells : GeoDataFrame (EPSG:4326) with ``cell_id``, ``village_codes`` (list),
        ``names`` (list), ``township_code`` (None if mixed), ``n_villages``,
        ``point_level``, ``geometry``; ordered by smallest village code.
        A single village's cell id is its code; a merged group's is
        ``'G' + smallest code`` (stable across rebuilds). ``point_level`` is the
        point's ``coord_level`` (the most specific one if members differ), or
        ``'polygon'`` for cells built from polygons. Voronoi nearness is
        measured in metres (UTM from :mod:`grid.projection`).
    report : dict with ``villages``, ``placed``, ``cells``, ``merged_groups``,
        ``merged_villages``, ``unplaced`` (list of ``{code, reason}``),
        ``outside_county`` (codes) and ``method`` (``'polygons'``/``'voronoi'``).

    Raises
    ------
    InvalidInput
        If the county is empty or not polygonal, columns are missing, or no
        village can be placed.

    Examples
    --------
    >>> import pandas as pd, shapely
    >>> v = pd.DataFrame({"code": ["640101001001", "640101001002"], "name": ["A", "B"],
    ...     "township_code": "640101001", "lon": [0.25, 0.75], "lat": [0.5, 0.5],
    ...     "coord_level": "village"})
    >>> cells, report = build_village_cells(shapely.box(0, 0, 1, 1), v)
    >>> list(cells.cell_id), round(float(shapely.area(cells.geometry.values).sum()), 12), report["method"]
    (['640101001001', '640101001002'], 1.0, 'voronoi')
    """
    county = _check_county(county)
    v = _normalise_villages(villages)
    if village_polygons is not None and len(village_polygons) > 0:
        cells, unplaced, outside = _cells_from_polygons(county, v, village_polygons)
        method = "polygons"
    else:
        cells, unplaced, outside = _cells_from_points(county, v, township_polygons)
        method = "voronoi"
    merged = cells[cells["n_villages"] > 1]
    report = {
        "villages": int(len(v)),
        "placed": int(cells["n_villages"].sum()),
        "cells": int(len(cells)),
        "merged_groups": int(len(merged)),
        "merged_villages": int(merged["n_villages"].sum()),
        "unplaced": unplaced,
        "outside_county": outside,
        "method": method,
    }
    return cells, report


def village_cell_lookup(cells: gpd.GeoDataFrame) -> dict[str, str]:
    """Map every village code (merged ones included) to its cell id.

    Used for customers that carry a village code but no coordinates.

    Examples
    --------
    >>> import pandas as pd
    >>> cells = pd.DataFrame({"cell_id": ["G640101001001"],
    ...     "village_codes": [["640101001001", "640101001002"]]})
    >>> village_cell_lookup(cells)["640101001002"]
    'G640101001001'
    """
    return {
        code: cid
        for cid, codes in zip(cells["cell_id"], cells["village_codes"], strict=True)
        for code in codes
    }


def _check_county(county: BaseGeometry) -> BaseGeometry:
    """Validate the county outline: non-empty, polygonal, valid."""
    if not isinstance(county, BaseGeometry) or county.is_empty:
        raise InvalidInput("county must be a non-empty shapely Polygon or MultiPolygon")
    if county.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(f"county must be a Polygon or MultiPolygon, got {county.geom_type}")
    if not county.is_valid:
        county = _polygonal(shapely.make_valid(county))
        if county.is_empty:
            raise InvalidInput("county outline has no area after repair")
    return county


def _normalise_villages(villages: pd.DataFrame) -> pd.DataFrame:
    """Canonical, code-sorted copy of the village list."""
    missing = {"code", "name"} - set(villages.columns)
    if missing:
        raise InvalidInput(f"villages lack required columns: {sorted(missing)}")
    v = pd.DataFrame({"code": villages["code"].astype(str), "name": villages["name"].astype(str)})
    if v["code"].duplicated().any():
        dup = sorted(v.loc[v["code"].duplicated(), "code"].unique())[:5]
        raise InvalidInput(f"duplicate village codes: {dup}")
    tc = (
        villages["township_code"] if "township_code" in villages else pd.Series(None, index=v.index)
    )
    # docs/fields.md: the township defaults to the first 9 digits of the village code.
    v["township_code"] = [
        str(t) if isinstance(t, str) and t else c[:9] for t, c in zip(tc, v["code"], strict=True)
    ]
    for col in ("lon", "lat"):
        v[col] = pd.to_numeric(villages[col], errors="coerce") if col in villages else np.nan
    lvl = villages["coord_level"] if "coord_level" in villages else pd.Series("none", index=v.index)
    v["coord_level"] = [x if x in LEVEL_RANK else "none" for x in lvl]
    return v.sort_values("code", kind="stable").reset_index(drop=True)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the areal parts of a geometry (overlays may add lines/points)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


def _disjoint(geoms: list[BaseGeometry]) -> list[BaseGeometry]:
    """Remove from each geometry what earlier ones already cover (earlier wins)."""
    tree = shapely.STRtree(geoms)
    out = []
    for i, g in enumerate(geoms):
        earlier = [j for j in tree.query(g, predicate="intersects") if j < i]
        if earlier:
            g = _polygonal(shapely.difference(g, shapely.union_all([out[j] for j in earlier])))
        out.append(g)
    return out


def _cells_frame(rows: list[dict], geoms: list[BaseGeometry]) -> gpd.GeoDataFrame:
    """Assemble the output GeoDataFrame in the documented column order."""
    df = pd.DataFrame(rows, columns=CELL_COLUMNS[:-1])
    df["n_villages"] = df["n_villages"].astype("int64")
    # Object dtype keeps a mixed township as None rather than the string dtype's NaN.
    df["township_code"] = pd.Series([r["township_code"] for r in rows], dtype=object)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=4326), crs=4326)[CELL_COLUMNS]


def _group_row(members: pd.DataFrame) -> dict:
    """Attributes of one cell from its (code-sorted) member villages."""
    codes = list(members["code"])
    towns = set(members["township_code"])
    levels = sorted(members["coord_level"], key=LEVEL_RANK.__getitem__)
    return {
        "cell_id": codes[0] if len(codes) == 1 else "G" + codes[0],
        "village_codes": codes,
        "names": list(members["name"]),
        "township_code": towns.pop() if len(towns) == 1 else None,
        "n_villages": len(codes),
        "point_level": levels[0],
    }


def _cells_from_points(
    county: BaseGeometry, v: pd.DataFrame, township_polygons: gpd.GeoDataFrame | None
) -> tuple[gpd.GeoDataFrame, list[dict], list[str]]:
    """Voronoi cells around distinct village points, clipped to county and townships."""
    unplaced = [
        {"code": c, "reason": "no coordinates"}
        for c in v.loc[v["lon"].isna() | v["lat"].isna(), "code"]
    ]
    has_pt = v.dropna(subset=["lon", "lat"])
    inside = shapely.intersects_xy(county, has_pt["lon"].to_numpy(), has_pt["lat"].to_numpy())
    outside = list(has_pt.loc[~inside, "code"])
    unplaced += [{"code": c, "reason": "point outside county"} for c in outside]
    placed = has_pt[inside]
    if placed.empty:
        raise InvalidInput(
            f"none of the {len(v)} villages has a point inside the county "
            f"({len(outside)} outside, {len(v) - len(has_pt)} without coordinates)"
        )
    # Exact float equality: villages carrying the same seat point are one place.
    keys = pd.Series(list(zip(placed["lon"], placed["lat"], strict=True)), index=placed.index)
    groups = [g for _, g in placed.groupby(keys, sort=False)]
    groups.sort(key=lambda g: g["code"].iloc[0])
    rows = [_group_row(g) for g in groups]
    sites = np.array([(g["lon"].iloc[0], g["lat"].iloc[0]) for g in groups])
    towns = [set(g["township_code"]) for g in groups]
    pieces = _voronoi_pieces(county, sites, towns, township_polygons)
    keep_rows, keep_geoms = [], []
    for row, geom in zip(rows, pieces, strict=True):
        if geom.is_empty or geom.area == 0.0:
            unplaced += [
                {"code": c, "reason": "no area left after clipping to its township"}
                for c in row["village_codes"]
            ]
            continue
        keep_rows.append(row)
        keep_geoms.append(geom)
    if not keep_rows:
        raise InvalidInput("no village cell has any area inside the county")
    unplaced.sort(key=lambda u: u["code"])
    return _cells_frame(keep_rows, keep_geoms), unplaced, sorted(outside)


def _voronoi_pieces(
    county: BaseGeometry,
    sites: np.ndarray,
    towns: list[set[str]],
    township_polygons: gpd.GeoDataFrame | None,
) -> list[BaseGeometry]:
    """Geometry of each site's cell: Voronoi region ∩ its region(s) of the county."""
    all_sites = np.arange(len(sites))
    regions: list[tuple[BaseGeometry, np.ndarray]] = []
    if township_polygons is not None and len(township_polygons) > 0:
        tp = township_polygons.sort_values("code", kind="stable")
        tgeoms = _disjoint([_polygonal(shapely.make_valid(g)) for g in tp.geometry])
        for code, g in zip(tp["code"].astype(str), tgeoms, strict=True):
            g = _polygonal(shapely.intersection(g, county))
            if g.is_empty:
                continue
            members = np.array([i for i, t in enumerate(towns) if code in t], dtype=int)
            # A township with no placed village falls back to the nearest villages overall.
            regions.append((g, members if len(members) else all_sites))
        rest = _polygonal(shapely.difference(county, shapely.union_all([g for g, _ in regions])))
        if not rest.is_empty:
            regions.append((rest, all_sites))
    else:
        regions.append((county, all_sites))
    cache: dict[bytes, list[BaseGeometry]] = {}
    parts: list[list[BaseGeometry]] = [[] for _ in sites]
    for region, members in regions:
        key = members.tobytes()
        if key not in cache:
            cache[key] = _voronoi_4326(sites[members], county)
        for i, cell in zip(members, cache[key], strict=True):
            piece = _polygonal(shapely.intersection(cell, region))
            if not piece.is_empty:
                parts[i].append(piece)
    return [
        _polygonal(shapely.union_all(p)) if len(p) > 1 else (p[0] if p else shapely.Polygon())
        for p in parts
    ]


def _voronoi_4326(sites: np.ndarray, county: BaseGeometry) -> list[BaseGeometry]:
    """Voronoi cells (one per site, same order) in EPSG:4326, covering the county.

    Nearness is decided in metres (a degree of longitude is ~20 % shorter than
    one of latitude here); only the cell vertices are carried back to 4326, and
    shared vertices map to identical coordinates, so the cells still tile.
    """
    minx, miny, maxx, maxy = county.bounds
    if len(sites) == 1:
        return [shapely.box(minx - 1, miny - 1, maxx + 1, maxy + 1)]
    crs = metric_crs(county.bounds)
    x, y = project_points(sites[:, 0], sites[:, 1], crs)
    bx, by = project_points(
        np.array([minx, maxx, minx, maxx]), np.array([miny, miny, maxy, maxy]), crs
    )
    span = max(bx.max() - bx.min(), by.max() - by.min(), 1.0)
    # Far beyond the county so no cell is cut short before the county clip.
    env = shapely.box(bx.min() - span, by.min() - span, bx.max() + span, by.max() + span)
    vor = shapely.voronoi_polygons(
        shapely.multipoints(np.column_stack([x, y])), extend_to=env, ordered=True
    )
    back = Transformer.from_crs(crs, 4326, always_xy=True)

    def to_lonlat(xy: np.ndarray) -> np.ndarray:
        lon, lat = back.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return list(shapely.transform(shapely.get_parts(vor), to_lonlat))


def _cells_from_polygons(
    county: BaseGeometry, v: pd.DataFrame, village_polygons: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, list[dict], list[str]]:
    """Cells from village polygons: repaired, made disjoint, gaps filled, clipped."""
    vp = village_polygons.assign(code=village_polygons["code"].astype(str))
    vp = (
        vp[vp["code"].isin(set(v["code"]))]
        .drop_duplicates("code")
        .sort_values("code", kind="stable")
    )
    known = set(vp["code"])
    unplaced = [{"code": c, "reason": "no polygon"} for c in v["code"] if c not in known]
    clipped = [
        _polygonal(shapely.intersection(_polygonal(shapely.make_valid(g)), county))
        for g in vp.geometry
    ]
    outside = [c for c, g in zip(vp["code"], clipped, strict=True) if g.is_empty or g.area == 0.0]
    unplaced += [{"code": c, "reason": "polygon outside county"} for c in outside]
    keep = [
        (c, g)
        for c, g in zip(vp["code"], clipped, strict=True)
        if not (g.is_empty or g.area == 0.0)
    ]
    if not keep:
        raise InvalidInput(f"none of the {len(v)} villages has a polygon inside the county")
    codes = [c for c, _ in keep]
    geoms = _disjoint([g for _, g in keep])
    covered = [c for c, g in zip(codes, geoms, strict=True) if g.is_empty or g.area == 0.0]
    unplaced += [{"code": c, "reason": "polygon covered by lower codes"} for c in covered]
    alive = [not (g.is_empty or g.area == 0.0) for g in geoms]
    codes = [c for c, a in zip(codes, alive, strict=True) if a]
    geoms = [g for g, a in zip(geoms, alive, strict=True) if a]
    geoms = _fill_gaps(county, geoms)
    members = v.set_index("code")
    rows = []
    for c in codes:
        m = members.loc[[c]].reset_index()
        rows.append(_group_row(m) | {"point_level": "polygon"})
    unplaced.sort(key=lambda u: u["code"])
    return _cells_frame(rows, geoms), unplaced, sorted(outside)


def _fill_gaps(county: BaseGeometry, geoms: list[BaseGeometry]) -> list[BaseGeometry]:
    """Give every uncovered part of the county to the neighbour sharing the longest border."""
    leftover = _polygonal(shapely.difference(county, shapely.union_all(geoms)))
    if leftover.is_empty:
        return geoms
    tree = shapely.STRtree(geoms)
    minx, miny, maxx, maxy = county.bounds
    # Overlay output is only nearly coincident: measure borders with a tiny tolerance.
    tol = 1e-9 * max(maxx - minx, maxy - miny, 1e-9)
    extra: list[list[BaseGeometry]] = [[] for _ in geoms]
    for part in shapely.get_parts(leftover):
        if part.area == 0.0:
            continue
        ring = part.boundary
        best, best_len = -1, 0.0
        for j in sorted(tree.query(part, predicate="dwithin", distance=tol)):
            shared = shapely.length(shapely.intersection(ring, shapely.buffer(geoms[j], tol)))
            if shared > best_len:
                best, best_len = int(j), shared
        if best < 0:  # an island with no neighbour: nearest cell, still never invented area
            best = int(tree.nearest(part))
        extra[best].append(part)
    return [
        _polygonal(shapely.union_all([g, *e])) if e else g
        for g, e in zip(geoms, extra, strict=True)
    ]
