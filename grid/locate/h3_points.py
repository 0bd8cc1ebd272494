"""Points to H3 indexes (no grid): :func:`lonlat_to_h3` on several cores, and :func:`locate_multi` with parents.

Every function takes longitude first, like shapely and GeoJSON (``h3`` itself takes lat first).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat

import numpy as np
from h3.api import basic_int as h3i

from grid.errors import InvalidInput
from grid.h3cells import h3_parents
from grid.locate.forked import run_forked


def lonlat_arrays(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """``lon`` and ``lat`` as contiguous float arrays; InvalidInput unless both are 1-d, of one length
    and finite."""
    lon = np.ascontiguousarray(lon, dtype=float)
    lat = np.ascontiguousarray(lat, dtype=float)
    if lon.shape != lat.shape or lon.ndim != 1:
        raise InvalidInput("lon and lat must be 1-d arrays of the same length")
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InvalidInput("lon and lat must be finite")
    return lon, lat


def cells_serial(lon: np.ndarray, lat: np.ndarray, res: int) -> np.ndarray:
    """h3.latlng_to_cell over arrays (which takes lat first); ``map`` avoids Python bytecode per point."""
    f = h3i.latlng_to_cell
    return np.fromiter(
        map(f, lat.tolist(), lon.tolist(), repeat(res)), dtype=np.uint64, count=len(lat)
    )


def lonlat_to_h3(lon, lat, res: int, workers: int = 2) -> np.ndarray:
    """H3 cells (uint64) of points, identical to ``h3.latlng_to_cell``, on several cores.

    Parameters
    ----------
    lon, lat : array-like of float
        WGS84 degrees, longitude first (as shapely and GeoJSON; ``h3`` itself takes lat first).
    res : int
        H3 resolution, 0 to 15.
    workers : int
        Processes to use (fork); 1 for a single process.

    Returns
    -------
    ndarray of uint64, one cell per point.

    Examples
    --------
    >>> format(int(lonlat_to_h3([106.0], [38.0], 9)[0]), "x")
    '8924c202ab3ffff'
    """
    if isinstance(res, bool) or not isinstance(res, int | np.integer) or not 0 <= res <= 15:
        raise InvalidInput(f"H3 resolution must be an integer from 0 to 15, got {res!r}")
    lon, lat = lonlat_arrays(lon, lat)
    (out,) = run_forked(
        len(lon), lambda a, b: (cells_serial(lon[a:b], lat[a:b], int(res)),), [np.uint64], workers
    )
    return out


def locate_multi(
    lon, lat, res_fine: int, coarser: Iterable[int] = (8, 7), workers: int = 2
) -> dict[int, np.ndarray]:
    """H3 cells of points at a fine resolution, and coarser ones derived as its parents.

    Coarser cells are ``cell_to_parent`` of the fine cell (H3's hierarchy), not
    ``latlng_to_cell`` at the coarser resolution: near cell edges the two can
    differ, and the hierarchy is what roll-ups use.

    Returns
    -------
    dict
        ``{res: ndarray of uint64}`` for ``res_fine`` and every coarser resolution.

    Examples
    --------
    >>> out = locate_multi([106.0], [38.0], 9, coarser=(7,))
    >>> sorted(out), format(int(out[7][0]), "x")
    ([7, 9], '8724c202affffff')
    """
    fine = lonlat_to_h3(lon, lat, res_fine, workers=workers)
    out = {int(res_fine): fine}
    for r in coarser:
        out[int(r)] = h3_parents(fine, r)
    return out
