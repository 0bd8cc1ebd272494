"""Fast, exact point-to-cell lookup for village grids (any set of polygons).

A regular lon/lat raster is laid over the cells, in two levels: coarse
squares, and fine squares (8 x 8 per coarse one) only where a border passes.
Squares that no cell border crosses lie wholly inside one cell (or wholly
outside all of them), so a point there is answered by array lookups computed
with plain numpy arithmetic. In a fine square crossed by a single border
segment, the side of that segment decides (an orientation sign, used only when
float rounding cannot flip it). Only the remaining points get an exact shapely
test, against the few cells listed for their block. The answers are identical
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
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from grid.errors import InvalidInput
from grid.stored import cells_fingerprint, pack, unpack

__all__ = ["VillageLocator", "locate_exact"]

MAX_COARSE = 1 << 22  # coarse squares: 16 MB of int32 table at most
STEPS_PER_CELL = 6  # coarse squares across a typical cell (build cost vs border points)
SHIFT = 3  # each coarse square crossed by a border holds 2**SHIFT x 2**SHIFT fine squares
SUB = 1 << SHIFT
CHUNK = 1 << 20  # points per work unit: cache-friendly, and numpy frees the GIL per chunk
OUTSIDE = -1
MIXED = -2  # fine square several borders may cross: exact test
FAST = -3  # FAST - s: only segment s crosses the square; its side decides
# Orientation signs above this share of the terms' magnitude are certain
# (Shewchuk's bound for orient2d is 3.3e-16); others go to the exact test.
ORIENT_ERR = 1e-15
# Stored lookups (VillageLocator.to_bytes): bumped whenever the tables change meaning.
FORMAT = 1
_ARRAYS = ("coarse", "fine", "_seg", "_sides", "_cand_start", "_cand")
_SCALARS = ("x0", "y0", "step", "ncx", "ncy", "nfx", "nfy", "_inv", "n_mixed", "n_fast")


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
    fine_res : fine raster step in degrees (coarse squares are 8 times wider);
        by default 1/64 of a typical cell's width, coarsened so the coarse
        table stays under 2**22 squares.

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
            raise InvalidInput("VillageLocator needs at least one non-empty cell")
        minx, miny, maxx, maxy = shapely.total_bounds(areal)
        step = float(fine_res) if fine_res else _auto_step(areal, (minx, miny, maxx, maxy))
        coarse = step * SUB  # exact in binary: fine squares nest in coarse ones
        # Margins (>= 1 coarse square) lie outside every cell: clamped points land there.
        self.x0, self.y0 = minx - coarse, miny - coarse
        self.step = step
        self.ncx = int(math.ceil((maxx - minx) / coarse)) + 3
        self.ncy = int(math.ceil((maxy - miny) / coarse)) + 3
        if self.ncx * self.ncy > 4 * MAX_COARSE:
            raise InvalidInput(
                f"fine_res={step} gives a {self.ncx}x{self.ncy} coarse table; too fine"
            )
        self.nfx, self.nfy = self.ncx * SUB, self.ncy * SUB
        self._inv = 1.0 / step
        self._build()
        self._prepare_lookups()

    def _prepare_lookups(self) -> None:
        # GEOS builds a prepared polygon's point index lazily, and that is not
        # thread-safe (libgeos/geos#825): build them all here, in one thread.
        corner = shapely.bounds(self.geoms)
        shapely.intersects_xy(self.geoms, corner[:, 0], corner[:, 1])

    def to_bytes(self) -> bytes:
        """The lookup tables (not the cells) as bytes, to store with the grid version.

        :meth:`from_bytes` with the same cells gives a locator with identical
        answers, without rebuilding: building costs several times a lookup.
        """
        return pack({k: getattr(self, k) for k in _SCALARS}, {k.lstrip("_"): getattr(self, k) for k in _ARRAYS},
                    format=FORMAT, fingerprint=cells_fingerprint(self.geoms))

    @classmethod
    def from_bytes(cls, data: bytes, cells) -> VillageLocator:
        """A locator from :meth:`to_bytes` output and the very cells it was built on.

        Raises InvalidInput if the bytes are of another format or were built on
        other cells (compared by :func:`cells_fingerprint`).
        """
        geoms = cells.geometry.values if isinstance(cells, gpd.GeoDataFrame) else cells
        geoms = np.asarray(geoms, dtype=object)
        meta, z = unpack(data, what="village", format=FORMAT, fingerprint=cells_fingerprint(geoms))
        self = cls.__new__(cls)
        self.geoms = geoms
        shapely.prepare(self.geoms)
        self._tree = shapely.STRtree(self.geoms)
        for k in _SCALARS:
            setattr(self, k, meta[k])
        for k in _ARRAYS:
            setattr(self, k, z[k.lstrip("_")])
        self._prepare_lookups()
        return self

    def _fine_index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fine raster column and row (int32) of each point, clamped to the table.

        Used both to mark border squares and to look points up: the same
        monotone float arithmetic on both sides is what makes the table exact.
        Points off the table (or NaN) are clamped into the margin, which lies
        outside every cell, so they need no mask.
        """
        out = []
        for v, v0, n in ((x, self.x0, self.nfx), (y, self.y0, self.nfy)):
            f = v - v0
            f *= self._inv
            # fmax/fmin send NaN to 0 and clamp infinities: every cast is defined.
            np.fmax(f, 0.0, out=f)
            np.fmin(f, n - 1.0, out=f)
            out.append(f.astype(np.int32))
        return out[0], out[1]

    def _build(self) -> None:
        """Mark border squares, label the rest by connected component, list candidates."""
        g = len(self.geoms)
        n_coarse = self.ncx * self.ncy
        # Fine marks say where a border may pass (so where a lookup is not enough).
        # Oriented rings put each cell's interior on the left of its segments.
        # Overlap and validity tests (GEOS, GIL released) run beside the segment extraction;
        # both only read the cells (no prepared geometry is touched, see __init__).
        with ThreadPoolExecutor(1) as pool:
            checks = pool.submit(_overlaps_and_invalid, self._tree, self.geoms)
            seg_a, seg_b, seg_owner = _segments(shapely.orient_polygons(self.geoms))
            over_a, over_b, invalid = checks.result()
        unsafe = np.union1d(over_a, invalid)
        lo, hi, left, right, simple = _distinct(seg_a, seg_b, seg_owner, unsafe)
        ix, iy, seg = self._marks(lo, hi, coarse=False)
        coarse_of = (iy >> SHIFT) * self.ncx + (ix >> SHIFT)
        has_mark = np.zeros(n_coarse, dtype=bool)
        has_mark[coarse_of] = True
        blocks = np.flatnonzero(has_mark)
        nb = len(blocks)
        block_of = np.full(n_coarse, -1, dtype=np.int64)
        block_of[blocks] = np.arange(nb)
        clean_f = np.ones(nb * SUB * SUB, dtype=bool)
        pos = block_of[coarse_of] * (SUB * SUB) + (iy & (SUB - 1)) * SUB + (ix & (SUB - 1))
        clean_f[pos] = False
        del ix, iy, coarse_of
        # Squares crossed by one segment only: its two sides are two faces.
        keys = _unique(pos * len(lo) + seg)
        kpos, kseg = keys // len(lo), keys % len(lo)
        alone = np.r_[True, kpos[1:] != kpos[:-1]] & np.r_[kpos[:-1] != kpos[1:], True]
        fast = alone & simple[kseg]
        # Marks are conservative: the sides decide only if the segment really
        # crosses the square (shrunk by eps), so each side touches the segment.
        fast[fast] = self._crosses(kpos[fast], blocks, lo[kseg[fast]], hi[kseg[fast]])
        del keys, pos, seg
        lab_c, n_c = ndimage.label(~has_mark.reshape(self.ncy, self.ncx))
        lab_c = lab_c.ravel()
        within_block = np.zeros((3, 3, 3), dtype=bool)
        within_block[1] = ndimage.generate_binary_structure(2, 1)
        lab_f, n_f = ndimage.label(clean_f.reshape(nb, SUB, SUB), structure=within_block)
        # Nodes: coarse components 0..n_c-1, then in-block components; edges join
        # touching clean squares across block sides, which no border separates.
        comp = _join_components(lab_c, lab_f, blocks, self.ncx, n_c, n_f)
        node_x, node_y = self._node_centres(lab_c, lab_f, blocks, n_c, n_f)
        rep = np.zeros(comp.max(initial=-1) + 1, dtype=np.int64)
        rep[comp] = np.arange(len(comp))
        node_cell = _exact(self._tree, self.geoms, node_x[rep], node_y[rep])[comp].astype(np.int32)

        coarse = np.full(n_coarse, OUTSIDE, dtype=np.int32)
        coarse[lab_c > 0] = node_cell[lab_c[lab_c > 0] - 1]
        coarse[blocks] = -2 - np.arange(nb, dtype=np.int32)
        lab_f = lab_f.ravel()
        fine = np.full(nb * SUB * SUB, MIXED, dtype=np.int32)
        fine[lab_f > 0] = node_cell[n_c + lab_f[lab_f > 0] - 1]
        fine[kpos[fast]] = FAST - kseg[fast]
        self.coarse, self.fine = coarse, fine
        self.n_mixed = int((fine < OUTSIDE).sum())
        self.n_fast = int(fast.sum())
        self._seg = np.column_stack([lo, hi])
        self._sides = np.column_stack([right, left]).astype(np.int64)

        # Candidates per block: cells whose border may pass through it (coarse
        # marks, with owners), plus every cell overlapping one of those: only such
        # a cell can hold the whole block while also sharing a point with one.
        cix, ciy, seg = self._marks(seg_a, seg_b, coarse=True)
        owner = seg_owner[seg]
        blk = block_of[(ciy >> SHIFT) * self.ncx + (cix >> SHIFT)]
        keep = blk >= 0
        blk, owner = blk[keep], owner[keep]
        extra_b, extra_c = _expand(blk, owner, over_a, over_b)
        cand = _unique(np.r_[blk * g + owner, extra_b * g + extra_c])
        self._cand_start = np.searchsorted(cand // g, np.arange(nb + 1))
        self._cand = cand % g

    def _marks(
        self, a: np.ndarray, b: np.ndarray, coarse: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Squares that the segments ``a``-``b`` may touch: (column, row, segment) triples.

        Segments are cut into pieces at most one square long; each piece marks
        every square its bounding box (widened by far more than float rounding)
        reaches, so no border point escapes its mark. Coarse squares are given
        by the fine index of their first fine square.
        """
        piece = self.step * SUB if coarse else self.step
        seg, bx0, by0, bx1, by1 = _pieces(a, b, piece)
        eps = 1e-9 * max(1.0, abs(self.x0), abs(self.y0))
        ixl, iyl = self._fine_index(bx0 - eps, by0 - eps)
        ixh, iyh = self._fine_index(bx1 + eps, by1 + eps)
        shift = SHIFT if coarse else 0
        ixl, iyl, ixh, iyh = ixl >> shift, iyl >> shift, ixh >> shift, iyh >> shift
        spanx, spany = ixh - ixl, iyh - iyl
        assert spanx.max(initial=0) <= 2 and spany.max(initial=0) <= 2
        xs, ys, ss = [ixl], [iyl], [seg]
        # A piece spans 1-2 squares per axis (3 only when eps crosses a line).
        for dx, dy in ((1, 0), (0, 1), (1, 1), (2, 0), (2, 1), (0, 2), (1, 2), (2, 2)):
            k = np.flatnonzero((spanx >= dx) & (spany >= dy))
            xs.append(ixl[k] + dx)
            ys.append(iyl[k] + dy)
            ss.append(seg[k])
        return np.concatenate(xs) << shift, np.concatenate(ys) << shift, np.concatenate(ss)

    def _crosses(
        self, pos: np.ndarray, blocks: np.ndarray, a: np.ndarray, b: np.ndarray
    ) -> np.ndarray:
        """Whether segment a-b meets fine square ``pos`` (block-local index) shrunk by eps.

        Liang-Barsky clipping; its rounding is far below eps, so "yes" is certain.
        """
        blk, loc = blocks[pos // (SUB * SUB)], pos % (SUB * SUB)
        fx = (blk % self.ncx) * SUB + loc % SUB
        fy = (blk // self.ncx) * SUB + loc // SUB
        eps = 1e-9 * max(1.0, abs(self.x0), abs(self.y0))
        box = [
            (
                a[:, 0],
                self.x0 + fx * self.step + eps,
                self.x0 + (fx + 1) * self.step - eps,
                b[:, 0] - a[:, 0],
            ),
            (
                a[:, 1],
                self.y0 + fy * self.step + eps,
                self.y0 + (fy + 1) * self.step - eps,
                b[:, 1] - a[:, 1],
            ),
        ]
        t0, t1 = np.zeros(len(pos)), np.ones(len(pos))
        ok = np.ones(len(pos), dtype=bool)
        for start, low, high, delta in box:
            for p, q in ((-delta, start - low), (delta, high - start)):
                ok &= (p != 0) | (q >= 0)  # parallel and outside this side
                with np.errstate(divide="ignore", invalid="ignore"):
                    r = q / p
                t0 = np.where(p < 0, np.maximum(t0, r), t0)
                t1 = np.where(p > 0, np.minimum(t1, r), t1)
        return ok & (t0 <= t1)

    def _node_centres(self, lab_c, lab_f, blocks, n_c, n_f) -> tuple[np.ndarray, np.ndarray]:
        """A square centre inside each component node (coarse then in-block)."""
        rep_c = np.zeros(n_c + 1, dtype=np.int64)
        rep_c[lab_c] = np.arange(len(lab_c))
        rep_c = rep_c[1:]
        xc = self.x0 + ((rep_c % self.ncx) + 0.5) * self.step * SUB
        yc = self.y0 + ((rep_c // self.ncx) + 0.5) * self.step * SUB
        flat = lab_f.ravel()
        rep_f = np.zeros(n_f + 1, dtype=np.int64)
        rep_f[flat] = np.arange(len(flat))
        rep_f = rep_f[1:]
        blk, loc = blocks[rep_f // (SUB * SUB)], rep_f % (SUB * SUB)
        fx = (blk % self.ncx) * SUB + loc % SUB
        fy = (blk // self.ncx) * SUB + loc // SUB
        xf = self.x0 + (fx + 0.5) * self.step
        yf = self.y0 + (fy + 0.5) * self.step
        return np.r_[xc, xf], np.r_[yc, yf]

    def locate(self, lon, lat, *, workers: int = 2) -> np.ndarray:
        """Row index of the cell covering each point (-1 outside every cell).

        A point on a border shared by several cells goes to the lowest row index.
        """
        x = np.ascontiguousarray(lon, dtype=float)
        y = np.ascontiguousarray(lat, dtype=float)
        if x.shape != y.shape or x.ndim != 1:
            raise InvalidInput("lon and lat must be 1-d arrays of the same length")
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
        """Fill ``out[s:e]``: two table lookups, an exact test only in border squares."""
        xs, ys = x[s:e], y[s:e]
        ix, iy = self._fine_index(xs, ys)
        c = iy >> SHIFT
        c *= self.ncx
        c += ix >> SHIFT
        v = self.coarse[c]
        blk = np.flatnonzero(v < OUTSIDE)
        b = (-2 - v[blk]).astype(np.int64)
        v[blk] = self.fine[b * (SUB * SUB) + (iy[blk] & (SUB - 1)) * SUB + (ix[blk] & (SUB - 1))]
        res = out[s:e]
        res[:] = v
        w = v[blk]
        fast = np.flatnonzero(w <= FAST)
        unsure = fast[:0]
        if len(fast):
            pts = blk[fast]
            sid = (FAST - w[fast]).astype(np.int64)
            seg = self._seg[sid]
            px, py = xs[pts], ys[pts]
            dl = (seg[:, 2] - seg[:, 0]) * (py - seg[:, 1])
            dr = (seg[:, 3] - seg[:, 1]) * (px - seg[:, 0])
            det = dl - dr
            res[pts] = self._sides[sid, (det > 0).astype(np.int64)]
            unsure = fast[np.abs(det) <= ORIENT_ERR * (np.abs(dl) + np.abs(dr))]
        need = np.flatnonzero(w == MIXED)
        if len(unsure):
            need = np.sort(np.r_[need, unsure])
        if len(need):
            pts = blk[need]
            res[pts] = self._exact_in_blocks(b[need], xs[pts], ys[pts])

    def _exact_in_blocks(self, m: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Exact answer for points in border squares of blocks ``m``: candidates in ascending order."""
        start = self._cand_start[m]
        count = self._cand_start[m + 1] - start
        found = np.full(len(m), OUTSIDE, dtype=np.int64)
        pending = np.arange(len(m))
        k = 0
        while len(pending):
            pending = pending[count[pending] > k]
            if not len(pending):
                break
            cand = self._cand[start[pending] + k]
            hit = shapely.intersects_xy(self.geoms[cand], px[pending], py[pending])
            found[pending[hit]] = cand[hit]
            pending = pending[~hit]
            k += 1
        # No candidate covers it: outside, or inside a cell holding the whole square.
        miss = np.flatnonzero(found == OUTSIDE)
        if len(miss):
            found[miss] = _exact(self._tree, self.geoms, px[miss], py[miss])
        return found


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
