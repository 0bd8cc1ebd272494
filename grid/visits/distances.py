"""Travel distances and times between an RM's start point and the day's stops.

Without a road network the distance between two places is the great-circle
(haversine) distance times a detour factor: rural roads wind, so 1 km as the
crow flies is about 1.4 km on the road in the hills of southern Ningxia and
less on the plain. A road-distance matrix, when a caller has one, replaces
both (:meth:`grid.visits.DayRoute.from_cost_matrix`).
"""

from __future__ import annotations

import numpy as np

from grid.errors import VisitInputError

# mean Earth radius (IUGG), metres
EARTH_RADIUS_M = 6_371_008.8
DEFAULT_DETOUR_FACTOR = 1.4
DEFAULT_SPEED_KMH = 30.0


def points_to_distance_matrix(lon, lat, *, detour_factor: float = DEFAULT_DETOUR_FACTOR) -> np.ndarray:
    """Road-distance estimate in metres between every pair of WGS84 points.

    Parameters
    ----------
    lon, lat : array_like
        Longitudes and latitudes in degrees (WGS84), same length.
    detour_factor : float
        Road distance per straight-line distance (>= 1).

    Returns
    -------
    ndarray
        ``(n, n)`` float metres, symmetric, zero diagonal.

    Examples
    --------
    >>> d = points_to_distance_matrix([106.0, 106.0], [38.0, 38.01], detour_factor=1.0)
    >>> round(float(d[0, 1]))
    1112
    """
    lo = np.asarray(lon, dtype=float)
    la = np.asarray(lat, dtype=float)
    if lo.shape != la.shape or lo.ndim != 1:
        raise VisitInputError(f"lon and lat must be 1-D and of one length, got {lo.shape} and {la.shape}")
    bad = ~(np.isfinite(lo) & np.isfinite(la)) | (np.abs(la) > 90) | (np.abs(lo) > 180)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise VisitInputError(f"point {i}: lon/lat ({lo[i]}, {la[i]}) is not a WGS84 coordinate")
    if not (np.isfinite(detour_factor) and detour_factor >= 1.0):
        raise VisitInputError(f"detour_factor must be >= 1, got {detour_factor!r}")
    phi = np.radians(la)
    lam = np.radians(lo)
    dphi = phi[:, None] - phi[None, :]
    dlam = lam[:, None] - lam[None, :]
    a = np.sin(dphi / 2) ** 2 + np.cos(phi)[:, None] * np.cos(phi)[None, :] * np.sin(dlam / 2) ** 2
    d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return d * float(detour_factor)


def distance_to_duration(distance_m, *, speed_kmh: float = DEFAULT_SPEED_KMH) -> np.ndarray:
    """Travel seconds for distances in metres at a constant speed.

    Examples
    --------
    >>> distance_to_duration([0.0, 15_000.0], speed_kmh=30).tolist()
    [0.0, 1800.0]
    """
    if not (np.isfinite(speed_kmh) and speed_kmh > 0):
        raise VisitInputError(f"speed_kmh must be > 0, got {speed_kmh!r}")
    return np.asarray(distance_m, dtype=float) * 3.6 / float(speed_kmh)
