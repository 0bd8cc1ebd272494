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

The exact lookup and the border arithmetic the tables are built from are
:mod:`grid.locate.polygons`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage

from grid.errors import InvalidInput
from grid.locate.polygons import (
    MAX_COARSE,
    OUTSIDE,
    SHIFT,
    SUB,
    _auto_step,
    _distinct,
    _exact,
    _expand,
    _join_components,
    _overlaps_and_invalid,
    _pieces,
    _segments,
    _unique,
    locate_exact,
)
from grid.locate.stored import cells_fingerprint, pack, unpack

__all__ = ["VillageLocator", "locate_exact"]

CHUNK = 1 << 20  # points per work unit: cache-friendly, and numpy frees the GIL per chunk
MIXED = -2  # fine square several borders may cross: exact test
FAST = -3  # FAST - s: only segment s crosses the square; its side decides
# Orientation signs above this share of the terms' magnitude are certain
# (Shewchuk's bound for orient2d is 3.3e-16); others go to the exact test.
ORIENT_ERR = 1e-15
# Stored lookups (VillageLocator.to_bytes): bumped whenever the tables change meaning.
FORMAT = 1
_ARRAYS = ("coarse", "fine", "_seg", "_sides", "_cand_start", "_cand")
_SCALARS = ("x0", "y0", "step", "ncx", "ncy", "nfx", "nfy", "_inv", "n_mixed", "n_fast")


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
