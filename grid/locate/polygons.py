"""Exact point-in-polygon lookup, and the border arithmetic behind :class:`grid.locate.VillageLocator`'s tables.

:func:`locate_exact` is the reference answer (``covers`` semantics, lowest row
on a shared border); the rest cuts cell borders into segments, finds
overlapping and invalid cells, and joins raster components.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["locate_exact"]

MAX_COARSE = 1 << 22  # coarse squares: 16 MB of int32 table at most
STEPS_PER_CELL = 6  # coarse squares across a typical cell (build cost vs border points)
SHIFT = 3  # each coarse square crossed by a border holds 2**SHIFT x 2**SHIFT fine squares
SUB = 1 << SHIFT
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


def _join_components(lab_c, lab_f, blocks, ncx, n_c, n_f) -> np.ndarray:
    """Component of every node after joining clean squares that touch across block sides."""
    nb = len(blocks)
    lab_f = lab_f.reshape(nb, SUB, SUB)
    bx, by = blocks % ncx, blocks // ncx
    us, vs = [], []
    # (neighbour offset, this block's edge row/col, the neighbour's facing edge)
    sides = [
        ((1, 0), lab_f[:, :, -1], lambda i: lab_f[i, :, 0]),
        ((-1, 0), lab_f[:, :, 0], lambda i: lab_f[i, :, -1]),
        ((0, 1), lab_f[:, -1, :], lambda i: lab_f[i, 0, :]),
        ((0, -1), lab_f[:, 0, :], lambda i: lab_f[i, -1, :]),
    ]
    for (dx, dy), edge, facing in sides:
        nidx = (by + dy) * ncx + bx + dx
        lc = lab_c[nidx]
        rows = np.flatnonzero(lc > 0)
        e = edge[rows]
        sel = e > 0
        us.append(n_c + e[sel] - 1)
        vs.append(np.broadcast_to(lc[rows][:, None], e.shape)[sel] - 1)
        if dx + dy > 0:  # block-to-block: once per pair of sides
            pos = np.minimum(np.searchsorted(blocks, nidx), nb - 1)
            nbr = np.flatnonzero(blocks[pos] == nidx)
            a, f = edge[nbr], facing(pos[nbr])
            sel = (a > 0) & (f > 0)
            us.append(n_c + a[sel] - 1)
            vs.append(n_c + f[sel] - 1)
    n = n_c + n_f
    u, v = np.concatenate(us), np.concatenate(vs)
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _overlaps_and_invalid(tree: shapely.STRtree, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both orders of every pair of overlapping cells, and the rows of invalid cells."""
    return (*_overlapping_pairs(tree, geoms), np.flatnonzero(~shapely.is_valid(geoms)))


def _overlapping_pairs(tree: shapely.STRtree, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both orders of every pair of cells whose interiors intersect."""
    a, b = tree.query(geoms)
    keep = a < b
    a, b = a[keep], b[keep]
    inter = shapely.relate_pattern(geoms[a], geoms[b], "T********")
    a, b = a[inter], b[inter]
    return np.r_[a, b], np.r_[b, a]


def _expand(m: np.ndarray, cell: np.ndarray, over_a: np.ndarray, over_b: np.ndarray):
    """For each (square, cell) pair, the (square, other) pairs of cells overlapping it."""
    if len(over_a) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(over_a, kind="stable")
    over_a, over_b = over_a[order], over_b[order]
    lo = np.searchsorted(over_a, cell, side="left")
    cnt = np.searchsorted(over_a, cell, side="right") - lo
    sq = np.repeat(m, cnt)
    offs = np.arange(len(sq)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return sq, over_b[np.repeat(lo, cnt) + offs]


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: numpy 2's hash-based unique is slower here)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _auto_step(geoms: np.ndarray, bounds: tuple[float, float, float, float]) -> float:
    """Fine raster step: a fraction of the median cell width, capped by table size."""
    width = float(np.sqrt(np.median(shapely.area(geoms))))
    minx, miny, maxx, maxy = bounds
    floor = math.sqrt(max((maxx - minx) * (maxy - miny), 1e-18) / MAX_COARSE)
    return max(width / STEPS_PER_CELL, floor, 1e-6) / SUB


def _segments(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every straight segment of every cell border: start, end, owner cell."""
    rings, ring_owner = shapely.get_parts(shapely.boundary(geoms), return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[1:] == ring_of[:-1]
    return coords[:-1][same], coords[1:][same], ring_owner[ring_of[:-1][same]]


def _distinct(a: np.ndarray, b: np.ndarray, owner: np.ndarray, unsafe: np.ndarray):
    """Distinct segments (a shared border appears once per cell) and the cell on each side.

    Returns start, end, the cell left and right of start->end (-1: none), and
    whether the sides can be trusted: one cell at most per side, non-zero
    length, and no owner that overlaps another cell or is invalid.
    """
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo, hi = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
    rows, inv = np.unique(np.column_stack([lo, hi]), axis=0, return_inverse=True)
    inv = inv.ravel()
    n = len(rows)
    side = swap.astype(np.int64)  # the owner is left of lo->hi unless the segment was swapped
    sides = np.full((n, 2), OUTSIDE, dtype=np.int64)
    sides[inv, side] = owner
    crowded = np.bincount(inv * 2 + side, minlength=2 * n).reshape(n, 2).max(axis=1) > 1
    risky = np.bincount(inv, weights=np.isin(owner, unsafe), minlength=n) > 0
    simple = ~crowded & ~risky & (rows[:, :2] != rows[:, 2:]).any(axis=1)
    return rows[:, :2], rows[:, 2:], sides[:, 0], sides[:, 1], simple


def _pieces(a: np.ndarray, b: np.ndarray, step: float):
    """Segments cut into pieces no longer than ``step``: segment index and bounding box."""
    n_sub = np.maximum(np.ceil(np.abs(b - a).max(axis=1) / step), 1).astype(np.int64)
    seg = np.repeat(np.arange(len(a)), n_sub)
    k = (np.arange(len(seg)) - np.repeat(np.cumsum(n_sub) - n_sub, n_sub)).astype(float)
    n = n_sub[seg].astype(float)
    a0 = a[seg]
    d = b[seg] - a0
    # Both ends by the same formula, so consecutive pieces share end points exactly.
    p0 = a0 + d * (k / n)[:, None]
    p1 = a0 + d * ((k + 1) / n)[:, None]
    lo, hi = np.minimum(p0, p1), np.maximum(p0, p1)
    return seg, lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]
