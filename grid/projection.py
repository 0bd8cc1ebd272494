"""The one place that chooses a metric projection for areas and distances.

Geometry is stored in EPSG:4326; anything measured in metres goes through
:func:`metric_crs` so that every module measures the same way.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
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


def to_metric(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> gpd.GeoDataFrame | gpd.GeoSeries:
    """Reproject EPSG:4326 data to its metric CRS (see :func:`metric_crs`)."""
    return gdf.to_crs(metric_crs(gdf))


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
