"""The one place that chooses a metric projection for areas and distances.

Geometry is stored in EPSG:4326; anything measured in metres goes through
:func:`metric_crs` so that every module measures the same way.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer

EARTH_RADIUS_KM = 6371.0088


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone that contains ``(lon, lat)``.

    Examples
    --------
    >>> utm_epsg(106.2, 38.4)   # Yinchuan
    32648
    """
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def metric_crs(geom_or_bounds) -> CRS:
    """Metric CRS (UTM) for a geometry, GeoSeries/GeoDataFrame or ``(minx, miny, maxx, maxy)``.

    Examples
    --------
    >>> metric_crs((105.9, 38.1, 106.5, 38.6)).to_epsg()
    32648
    """
    if hasattr(geom_or_bounds, "total_bounds"):
        minx, miny, maxx, maxy = geom_or_bounds.total_bounds
    elif hasattr(geom_or_bounds, "bounds"):
        minx, miny, maxx, maxy = geom_or_bounds.bounds
    else:
        minx, miny, maxx, maxy = geom_or_bounds
    return CRS.from_epsg(utm_epsg((minx + maxx) / 2.0, (miny + maxy) / 2.0))


# Edges of geometries that cross themselves once projected are cut to this length (degrees, about 10 m)
# before projecting again: a straight edge in degrees bows by up to centimetres in metres, by micrometres
# over 10 m.
_DENSIFY_DEG = 1e-4


def metric_geometries(geoms, crs) -> np.ndarray:
    """EPSG:4326 geometries projected to ``crs`` (metres), each valid there.

    A geometry is exact in degrees, where the grid is built and stored; a
    straight edge in degrees is a curve in metres, drawn as the chord between
    its projected ends, up to centimetres off the curve over a kilometre. A
    needle narrower than that (a county outline folding back on itself, or a
    cell clipped by one) can then cross itself in metres although it is valid
    in degrees, and GEOS refuses to intersect or union it. Such geometries are
    densified in degrees first (every edge then follows its curve within
    micrometres) and made valid in metres, keeping their polygonal parts; all
    others are projected as they are, vertex for vertex.

    Examples
    --------
    >>> needle = shapely.Polygon([(105.558, 37.0), (105.532, 37.0), (105.541, 37.000000001),
    ...                           (105.51, 37.03), (105.47, 37.004), (105.53, 36.991)])
    >>> crs = metric_crs(needle.bounds)
    >>> plain = gpd.GeoSeries([needle], crs=4326).to_crs(crs).iloc[0]
    >>> bool(needle.is_valid), bool(plain.is_valid), bool(metric_geometries([needle], crs)[0].is_valid)
    (True, False, True)
    """
    geoms = np.asarray(geoms, dtype=object)
    tr = Transformer.from_crs(4326, crs, always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))

    out = shapely.transform(geoms, project)
    bad = np.flatnonzero(~shapely.is_valid(out) & ~shapely.is_empty(out))
    if len(bad):
        fixed = shapely.make_valid(shapely.transform(shapely.segmentize(geoms[bad], _DENSIFY_DEG), project))
        out[bad] = [_polygonal_part(g) if isinstance(orig, shapely.Polygon | shapely.MultiPolygon) else g
                    for g, orig in zip(fixed, geoms[bad], strict=True)]
    return out


def _polygonal_part(g: shapely.Geometry) -> shapely.Geometry:
    """The polygons of ``g`` (make_valid may add the lines a collapsed needle leaves)."""
    if isinstance(g, shapely.Polygon | shapely.MultiPolygon):
        return g
    parts = [p for p in shapely.get_parts(g) if isinstance(p, shapely.Polygon | shapely.MultiPolygon)]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def to_metric(gdf: gpd.GeoDataFrame | gpd.GeoSeries, crs=None) -> gpd.GeoDataFrame | gpd.GeoSeries:
    """Reproject EPSG:4326 data to its metric CRS (see :func:`metric_crs`), every geometry valid there
    (:func:`metric_geometries`)."""
    crs = metric_crs(gdf) if crs is None else CRS.from_user_input(crs)
    geoms = metric_geometries(gdf.geometry.to_crs(4326).to_numpy() if gdf.crs is not None else gdf.geometry.to_numpy(),
                              crs)
    if isinstance(gdf, gpd.GeoSeries):
        return gpd.GeoSeries(geoms, index=gdf.index, crs=crs, name=gdf.name)
    return gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=crs), crs=crs)


def areas_m2(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> np.ndarray:
    """Area of each geometry in square metres."""
    return to_metric(gdf).area.to_numpy()


def project_points(lon, lat, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 lon/lat arrays into ``crs`` (metres)."""
    tr = Transformer.from_crs(4326, crs, always_xy=True)
    x, y = tr.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x), np.asarray(y)


def haversine_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in km between broadcastable lon/lat arrays.

    Examples
    --------
    >>> round(float(haversine_km(106.0, 38.0, 106.0, 39.0)), 1)
    111.2
    """
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(a, dtype=float)) for a in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
