"""Fast, exact point-to-cell lookup for village grids (any set of polygons).

A regular lon/lat raster is laid over the cells. Raster squares that no cell
border crosses lie wholly inside one cell (or wholly outside all of them), so a
point there is answered by one array lookup computed with plain numpy
arithmetic. Only points in squares that a border crosses get an exact shapely
test, against the few cells listed for that square. The answers are identical
to an exact point-in-polygon join with ``covers`` semantics (a point on a shared
border belongs to the lowest row index), which the tests check point by point.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage

__all__ = ["VillageLocator", "locate_exact"]

MAX_RASTER_CELLS = 1 << 24  # 64 MB of int32 lookup table at most
STEPS_PER_CELL = 64  # raster squares across a typical cell: fewer border points
CHUNK = 1 << 20  # points per work unit: cache-friendly, and numpy frees the GIL per chunk
OUTSIDE = -1


def locate_exact(geoms, lon, lat) -> np.ndarray:
    """Exact lookup: lowest index of a geometry covering each point, -1 if none.

    Parameters
    ----------
    geoms : array-like of shapely (Multi)Polygons (EPSG:4326).
    lon, lat : array-like of float, same length.

    Returns
    -------
    numpy.ndarray of int64, one row index per point.

    Examples
    --------
    >>> import shapely
    >>> locate_exact([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], [0.5, 1.0, 3.0], [0.5, 0.5, 0.5])
    array([ 0,  0, -1])
    """
    geoms = np.asarray(geoms, dtype=object)
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    shapely.prepare(geoms)
    return _exact(shapely.STRtree(geoms), geoms, x, y)


def _exact(tree: shapely.STRtree, geoms: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Covers-semantics lookup via bounding-box candidates and prepared polygons."""
    out = np.full(len(x), OUTSIDE, dtype=np.int64)
    finite = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if len(finite) == 0 or len(geoms) == 0:
        return out
    pi, gi = tree.query(shapely.points(x[finite], y[finite]))
    hit = shapely.intersects_xy(geoms[gi], x[finite[pi]], y[finite[pi]])
    pi, gi = pi[hit], gi[hit]
    order = np.lexsort((gi, pi))
    pi, gi = pi[order], gi[order]
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, dtype=bool)
    out[finite[pi[first]]] = gi[first]
    return out


class VillageLocator:
    """Assign points to the cells of a grid, exactly and fast.

    Parameters
    ----------
    cells : GeoDataFrame (EPSG:4326) or array of shapely polygons. Cells may
        overlap or leave gaps; the answer is still the exact one.
    fine_res : raster step in degrees; by default 1/64 of a typical cell's
        width, coarsened so the table stays under 2**24 squares.

    Examples
    --------
    >>> import shapely
    >>> loc = VillageLocator([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    >>> loc.locate([0.5, 1.0, 1.5, 9.0], [0.5, 0.5, 0.5, 9.0])
    array([ 0,  0,  1, -1])
    """

    def __init__(self, cells, *, fine_res: float | None = None) -> None:
        geoms = cells.geometry.values if isinstance(cells, gpd.GeoDataFrame) else cells
        self.geoms = np.asarray(geoms, dtype=object)
        shapely.prepare(self.geoms)
        self._tree = shapely.STRtree(self.geoms)
        areal = self.geoms[~shapely.is_missing(self.geoms) & ~shapely.is_empty(self.geoms)]
        if len(areal) == 0:
            raise ValueError("VillageLocator needs at least one non-empty cell")
        minx, miny, maxx, maxy = shapely.total_bounds(areal)
        step = float(fine_res) if fine_res else _auto_step(areal, (minx, miny, maxx, maxy))
        # A margin of one square keeps every cell strictly inside the table.
        self.x0, self.y0 = minx - step, miny - step
        self.step = step
        self.nx = int(math.ceil((maxx - minx) / step)) + 3
        self.ny = int(math.ceil((maxy - miny) / step)) + 3
        if self.nx * self.ny > 4 * MAX_RASTER_CELLS:
            raise ValueError(
                f"fine_res={step} gives a {self.nx}x{self.ny} table; choose a coarser step"
            )
        self._inv = 1.0 / step
        self._build()

    def _flat_index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raster square of each point (flat, row-major) and whether it is on the table.

        Used both to mark border squares and to look points up: the same
        monotone float arithmetic on both sides is what makes the table exact.
        """
        fx = x - self.x0
        fx *= self._inv
        fy = y - self.y0
        fy *= self._inv
        ok = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)
        np.copyto(fx, 0.0, where=~ok)
        np.copyto(fy, 0.0, where=~ok)
        flat = fy.astype(np.int64)
        flat *= self.nx
        flat += fx.astype(np.int64)
        return flat, ok

    def _build(self) -> None:
        """Mark border squares, label the rest by connected component, list candidates."""
        cell_of_piece, bx0, by0, bx1, by1 = _border_pieces(self.geoms, self.step)
        # Expand by far more than float rounding so no border point escapes its mark.
        eps = 1e-9 * max(1.0, abs(self.x0), abs(self.y0))
        i_lo, _ = self._flat_index(bx0 - eps, by0 - eps)
        i_hi, _ = self._flat_index(bx1 + eps, by1 + eps)
        ix_lo, iy_lo = i_lo % self.nx, i_lo // self.nx
        ix_hi, iy_hi = i_hi % self.nx, i_hi // self.nx
        assert (ix_hi - ix_lo).max(initial=0) <= 2 and (iy_hi - iy_lo).max(initial=0) <= 2
        marks, owners = [], []
        # Pieces are at most one step long, so their boxes span at most 3x3 squares.
        for dx in range(3):
            for dy in range(3):
                keep = (ix_lo + dx <= ix_hi) & (iy_lo + dy <= iy_hi)
                marks.append((iy_lo[keep] + dy) * self.nx + ix_lo[keep] + dx)
                owners.append(cell_of_piece[keep])
        g = max(len(self.geoms), 1)
        keys = np.unique(np.concatenate(marks) * g + np.concatenate(owners))
        pair_sq, pair_cell = keys // g, keys % g
        mixed = np.unique(pair_sq)
        n = self.nx * self.ny
        clean = np.ones(n, dtype=bool)
        clean[mixed] = False
        # Neighbouring unmarked squares overlap (by eps) with no border between
        # them, so a whole component lies in one cell: one exact test each.
        labels, n_comp = ndimage.label(clean.reshape(self.ny, self.nx))
        labels = labels.ravel()
        # Any square of a component represents it (repeated-index writes keep one).
        rep = np.zeros(n_comp + 1, dtype=np.int64)
        rep[labels] = np.arange(n, dtype=np.int64)
        cx, cy = self._centres(rep[1:])
        comp_cell = np.full(n_comp + 1, OUTSIDE, dtype=np.int32)
        comp_cell[1:] = _exact(self._tree, self.geoms, cx, cy)
        table = comp_cell[labels]
        del labels, clean
        # Mixed squares hold -2 - m: m indexes the candidate lists below.
        table[mixed] = -2 - np.arange(len(mixed), dtype=np.int32)
        self.table = table
        self.n_mixed = len(mixed)
        # Candidates: cells with a border in the square, plus any cell covering
        # its centre (a cell can hold a whole square while others' borders cross it).
        cx, cy = self._centres(mixed)
        pi, gi = self._tree.query(shapely.points(cx, cy))
        hit = shapely.intersects_xy(self.geoms[gi], cx[pi], cy[pi])
        m_of_pair = np.searchsorted(mixed, pair_sq)
        cand = np.unique(np.r_[m_of_pair * g + pair_cell, pi[hit] * g + gi[hit]])
        self._cand_start = np.searchsorted(cand // g, np.arange(len(mixed) + 1)).astype(np.int64)
        self._cand = cand % g

    def _centres(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre coordinates of raster squares given flat indices."""
        ix, iy = flat % self.nx, flat // self.nx
        return self.x0 + (ix + 0.5) * self.step, self.y0 + (iy + 0.5) * self.step

    def locate(self, lon, lat, *, workers: int = 2) -> np.ndarray:
        """Row index of the cell covering each point (-1 outside every cell).

        A point on a border shared by several cells goes to the lowest row index.
        """
        x = np.ascontiguousarray(lon, dtype=float)
        y = np.ascontiguousarray(lat, dtype=float)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError("lon and lat must be 1-d arrays of the same length")
        out = np.empty(len(x), dtype=np.int64)
        spans = [(s, min(s + CHUNK, len(x))) for s in range(0, len(x), CHUNK)]
        if workers > 1 and len(spans) > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda se: self._locate_span(x, y, out, *se), spans))
        else:
            for s, e in spans:
                self._locate_span(x, y, out, s, e)
        return out

    def _locate_span(self, x: np.ndarray, y: np.ndarray, out: np.ndarray, s: int, e: int) -> None:
        """Fill ``out[s:e]``: table lookup, exact test only in mixed squares."""
        flat, ok = self._flat_index(x[s:e], y[s:e])
        t = self.table[flat]
        t[~ok] = OUTSIDE
        res = out[s:e]
        res[:] = t
        need = np.flatnonzero(t < OUTSIDE)
        if len(need) == 0:
            return
        m = -2 - t[need].astype(np.int64)
        start, count = self._cand_start[m], self._cand_start[m + 1] - self._cand_start[m]
        pt = np.repeat(np.arange(len(need)), count)
        offs = np.arange(len(pt)) - np.repeat(np.cumsum(count) - count, count)
        cand = self._cand[np.repeat(start, count) + offs]
        px, py = x[s:e][need], y[s:e][need]
        hit = shapely.intersects_xy(self.geoms[cand], px[pt], py[pt])
        # Candidates are sorted per square, so the first hit is the lowest index.
        hp, hc = pt[hit], cand[hit]
        first = np.r_[True, hp[1:] != hp[:-1]] if len(hp) else np.zeros(0, dtype=bool)
        found = np.full(len(need), OUTSIDE, dtype=np.int64)
        found[hp[first]] = hc[first]
        res[need] = found


def _auto_step(geoms: np.ndarray, bounds: tuple[float, float, float, float]) -> float:
    """Raster step: a fraction of the median cell width, capped by table size."""
    width = float(np.sqrt(np.median(shapely.area(geoms))))
    minx, miny, maxx, maxy = bounds
    floor = math.sqrt(max((maxx - minx) * (maxy - miny), 1e-18) / MAX_RASTER_CELLS)
    return max(width / STEPS_PER_CELL, floor, 1e-7)


def _border_pieces(geoms: np.ndarray, step: float):
    """Every cell border cut into pieces no longer than ``step``: owner and bounding box."""
    rings, ring_owner = shapely.get_parts(shapely.boundary(geoms), return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[1:] == ring_of[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    owner = ring_owner[ring_of[:-1][same]]
    n_sub = np.maximum(np.ceil(np.abs(b - a).max(axis=1) / step), 1).astype(np.int64)
    seg = np.repeat(np.arange(len(a)), n_sub)
    k = (np.arange(len(seg)) - np.repeat(np.cumsum(n_sub) - n_sub, n_sub)).astype(float)
    n = n_sub[seg].astype(float)
    d = b[seg] - a[seg]
    # Both ends by the same formula, so consecutive pieces share end points exactly.
    p0 = a[seg] + d * (k / n)[:, None]
    p1 = a[seg] + d * ((k + 1) / n)[:, None]
    lo, hi = np.minimum(p0, p1), np.maximum(p0, p1)
    return owner[seg], lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]
