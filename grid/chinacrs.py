"""Chinese map coordinate systems: GCJ-02 (Amap, Tencent) and BD-09 (Baidu) to and from WGS84.

GCJ-02 is a published-by-leak obfuscation of WGS84 (the ``a``/``ee`` constants and
the two trigonometric series below are the well-known ones used by every open
implementation); BD-09 is Baidu's further rotation/scale of GCJ-02.  Neither has
a closed-form inverse, so the inverses here are fixed-point iterations that stop
when the forward transform of the estimate is within ``tol_m`` metres of the
input.  The one-step inverse found in most snippets is off by up to ~2.6 m in
Ningxia, which is too much for placing customers in 100 m cells.

Every function takes scalars or numpy arrays (broadcast together) and returns
float arrays; NaN stays NaN.  Importers call :func:`to_wgs84` once and store
WGS84 (STYLE.md, rule 8); :func:`coordinate_problems` classifies raw inputs first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from grid.errors import InvalidInput

__all__ = [
    "CRS_NAMES",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "coordinate_problems",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

CRS_NAMES = ("wgs84", "gcj02", "bd09")

# Krasovsky 1940 ellipsoid as used by the GCJ-02 algorithm.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
# Metres per degree of latitude, only to express the stopping tolerance.
_M_PER_DEG = 111_320.0


def _arrays(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast inputs to float arrays."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return np.broadcast_arrays(lon, lat)


def out_of_china(lon, lat) -> np.ndarray:
    """True where the point lies outside the rough China box that gets no GCJ-02 offset.

    The box (72.004–137.8347 E, 0.8293–55.8271 N) is the one every open
    implementation uses; Amap likewise leaves such points unchanged.

    Examples
    --------
    >>> out_of_china([106.2, 2.35], [38.5, 48.85]).tolist()
    [False, True]
    """
    lon, lat = _arrays(lon, lat)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 (lon, lat), ignoring the China box.

    Same series as the published algorithm, with sines of 3θ taken from sin θ
    (sin 3θ = 3 sin θ - 4 sin³ θ) and cos(lat) from sin(lat): 8 transcendental
    calls instead of 12, which is most of the cost.  Agrees to ~1e-13 degrees.
    """
    x = lon - 105.0
    y = lat - 35.0
    s2x = np.sin(2.0 * np.pi * x)
    sx3 = np.sin(np.pi / 3.0 * x)
    sy3 = np.sin(np.pi / 3.0 * y)
    s6x = s2x * (3.0 - 4.0 * s2x * s2x)
    sx = sx3 * (3.0 - 4.0 * sx3 * sx3)
    sy = sy3 * (3.0 - 4.0 * sy3 * sy3)
    common = (20.0 * s6x + 20.0 * s2x) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += common
    dlat += (20.0 * sy + 40.0 * sy3) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += common
    dlon += (20.0 * sx + 40.0 * sx3) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    sinlat = np.sin(lat / 180.0 * np.pi)
    magic = 1.0 - _EE * sinlat * sinlat
    sqrtmagic = np.sqrt(magic)
    coslat = np.sqrt(np.maximum(1.0 - sinlat * sinlat, 0.0))
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * coslat * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 to GCJ-02 (the standard forward algorithm; unchanged outside China).

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(116.397128, 39.916527)   # Tiananmen
    >>> round(float(lon), 5), round(float(lat), 5)
    (116.40337, 39.91793)
    """
    lon, lat = _arrays(lon, lat)
    dlon, dlat = _gcj_delta(lon, lat)
    outside = out_of_china(lon, lat)
    return np.where(outside, lon, lon + dlon), np.where(outside, lat, lat + dlat)


def _invert(
    forward, lon, lat, tol_m: float, max_iter: int, start=None, contraction: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Solve forward(x) = (lon, lat) by fixed-point iteration x <- x - (forward(x) - target).

    Both offsets are small and smooth (derivative far below 1), so the
    iteration contracts fast: two or three steps reach millimetres.

    A point stops when its residual is within ``tol_m``; with ``contraction``
    (a bound on how much one step shrinks the error) it stops one forward
    evaluation earlier, as soon as the error left after its last step,
    at most ``contraction`` times the residual that step removed, is within ``tol_m``.
    """
    tlon, tlat = _arrays(lon, lat)
    shape = tlon.shape
    tlon, tlat = tlon.ravel(), tlat.ravel()
    x, y = (tlon.copy(), tlat.copy()) if start is None else (a.ravel().copy() for a in start)
    coslat = np.maximum(np.cos(np.radians(tlat)), 1e-6)
    tol2 = tol_m * tol_m
    # Rows that met the tolerance leave the loop, so later rounds touch only the stragglers.
    todo = np.arange(tlon.size)
    for _ in range(max_iter):
        fx, fy = forward(x[todo], y[todo])
        ex, ey = fx - tlon[todo], fy - tlat[todo]
        x[todo] -= ex
        y[todo] -= ey
        err2 = (ex * coslat[todo] * _M_PER_DEG) ** 2 + (ey * _M_PER_DEG) ** 2
        if contraction is not None:
            err2 *= contraction * contraction
        # NaN rows compare False and so leave at once.
        todo = todo[err2 > tol2]
        if todo.size == 0:
            break
    x, y = x.reshape(shape), y.reshape(shape)
    return x, y


# How much one fixed-point step shrinks the error of the GCJ-02 inverse, at most: the
# offset's derivative is below 0.0082 everywhere in China (2 million random points; a
# test checks a dense grid), so the error left after a step is under 1% of the step.
GCJ02_CONTRACTION = 0.01


def gcj02_to_wgs84(
    lon, lat, *, tol_m: float = 0.05, max_iter: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 to WGS84 by iterating the forward transform until within ``tol_m`` metres.

    Two forward evaluations suffice for 5 cm anywhere in China (the error left
    is at most :data:`GCJ02_CONTRACTION` times the second correction, which is a
    few metres); the one-step inverse of most snippets is off by up to 4.9 m.

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 coordinates in degrees.
    tol_m : float
        Stop when the forward transform of the estimate is this close (metres) to the input.
    max_iter : int
        Upper bound on iterations (2 reach centimetres, 3 millimetres anywhere in China).

    Returns
    -------
    (lon, lat) : tuple of float arrays
        WGS84 degrees; unchanged outside China.

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(116.41024449916938, 39.91640428150164)
    >>> round(float(lon), 7), round(float(lat), 7)
    (116.404, 39.915)
    """
    return _invert(wgs84_to_gcj02, lon, lat, tol_m, max_iter, contraction=GCJ02_CONTRACTION)


def gcj02_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 to BD-09 (Baidu's closed-form forward transform, applied everywhere).

    Examples
    --------
    >>> lon, lat = gcj02_to_bd09(116.404, 39.915)
    >>> round(float(lon), 6), round(float(lat), 6)
    (116.410369, 39.921337)
    """
    lon, lat = _arrays(lon, lat)
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd09_to_gcj02_once(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The usual closed-form approximate inverse (off by up to a few decimetres)."""
    x = lon - 0.0065
    y = lat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def bd09_to_gcj02(
    lon, lat, *, tol_m: float = 0.01, max_iter: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 to GCJ-02: the closed-form inverse, then refined by iteration to ``tol_m`` metres.

    Examples
    --------
    >>> lon, lat = bd09_to_gcj02(*gcj02_to_bd09(106.23, 38.48))
    >>> round(float(lon), 7), round(float(lat), 7)
    (106.23, 38.48)
    """
    tlon, tlat = _arrays(lon, lat)
    # Starting from the closed form leaves the loop only its small residue to remove.
    start = _bd09_to_gcj02_once(tlon, tlat)
    return _invert(gcj02_to_bd09, tlon, tlat, tol_m, max_iter, start=start)


def wgs84_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 to BD-09 (through GCJ-02).

    Examples
    --------
    >>> lon, lat = wgs84_to_bd09(116.404, 39.915)
    >>> round(float(lon), 6), round(float(lat), 6)
    (116.416627, 39.9227)
    """
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(
    lon, lat, *, tol_m: float = 0.01, max_iter: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 to WGS84 (both iterated inverses; each step within ``tol_m`` metres).

    Examples
    --------
    >>> lon, lat = bd09_to_wgs84(*wgs84_to_bd09(106.23, 38.48))
    >>> round(float(lon), 7), round(float(lat), 7)
    (106.23, 38.48)
    """
    glon, glat = bd09_to_gcj02(lon, lat, tol_m=tol_m / 2, max_iter=max_iter)
    return gcj02_to_wgs84(glon, glat, tol_m=tol_m / 2, max_iter=max_iter)


def to_wgs84(lon, lat, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert from ``crs`` (``'wgs84'``, ``'gcj02'`` or ``'bd09'``, any case) to WGS84.

    Examples
    --------
    >>> lon, lat = to_wgs84([116.41024449916938], [39.91640428150164], "GCJ02")
    >>> round(float(lon[0]), 7), round(float(lat[0]), 7)
    (116.404, 39.915)
    """
    name = str(crs).strip().lower()
    if name == "wgs84":
        # Copies, so the caller never gets its own input arrays back (no aliasing surprises).
        x, y = _arrays(lon, lat)
        return x.copy(), y.copy()
    if name == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if name == "bd09":
        return bd09_to_wgs84(lon, lat)
    raise InvalidInput(f"unknown coordinate system {crs!r}; allowed: {', '.join(CRS_NAMES)}")


def _parse(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers from raw cells, plus masks of missing and unparseable cells."""
    s = pd.Series(np.asarray(values, dtype=object).ravel())
    text = s.astype("string").str.strip()
    missing = (s.isna() | (text == "")).to_numpy(dtype=bool)
    num = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64").to_numpy()
    num = np.where(np.isfinite(num), num, np.nan)
    return num, missing, ~missing & np.isnan(num)


def coordinate_problems(
    lon, lat, bbox: tuple[float, float, float, float] = (73.5, 18.0, 135.1, 53.6)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify raw coordinate pairs and propose fixed values.

    Parameters
    ----------
    lon, lat : array_like
        Raw cells: numbers, strings (``'106.2'``, ``' 38.5 '``, ``'12,3'``), None or NaN.
    bbox : (min_lon, min_lat, max_lon, max_lat)
        Where valid points must lie (default: China).

    Returns
    -------
    codes : object array
        Per row ``None`` (fine) or the first problem of ``'missing'``,
        ``'non_numeric'``, ``'zero'``, ``'swapped'``, ``'out_of_range'``,
        ``'outside_bbox'``.  A swap is tested before the range because a
        swapped Chinese pair has "latitude" > 90.
    fixed_lon, fixed_lat : float arrays
        The pair to use: as given when fine or ``'outside_bbox'`` (the caller
        decides), exchanged when ``'swapped'``, NaN otherwise.

    Examples
    --------
    >>> codes, x, y = coordinate_problems(["106.2", "38.5", None], [38.5, 106.2, 1])
    >>> codes.tolist(), x.tolist()[:2]
    ([None, 'swapped', 'missing'], [106.2, 106.2])
    """
    x, x_missing, x_bad = _parse(lon)
    y, y_missing, y_bad = _parse(lat)
    if x.shape != y.shape:
        raise InvalidInput(f"lon and lat differ in length: {x.shape[0]} != {y.shape[0]}")
    min_lon, min_lat, max_lon, max_lat = bbox

    def inside(a, b):
        return (a >= min_lon) & (a <= max_lon) & (b >= min_lat) & (b <= max_lat)

    missing = x_missing | y_missing
    bad = ~missing & (x_bad | y_bad)
    numeric = ~missing & ~bad
    zero = numeric & (x == 0) & (y == 0)
    given_in = inside(x, y)
    swapped = numeric & ~zero & ~given_in & inside(y, x)
    out_range = numeric & ~zero & ~swapped & ((np.abs(x) > 180) | (np.abs(y) > 90))
    outside = numeric & ~zero & ~swapped & ~out_range & ~given_in

    codes = np.full(x.shape, None, dtype=object)
    # Later assignments never overlap earlier ones: the masks above are exclusive.
    for mask, code in (
        (missing, "missing"),
        (bad, "non_numeric"),
        (zero, "zero"),
        (swapped, "swapped"),
        (out_range, "out_of_range"),
        (outside, "outside_bbox"),
    ):
        codes[mask] = code
    usable = numeric & ~zero & ~out_range & ~swapped
    fixed_lon = np.where(swapped, y, np.where(usable, x, np.nan))
    fixed_lat = np.where(swapped, x, np.where(usable, y, np.nan))
    return codes, fixed_lon, fixed_lat
