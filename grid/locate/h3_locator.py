"""Fast, exact assignment of points to H3 cells and to the cells of a clipped H3 grid.

Membership rule of :class:`H3Locator` (deterministic, same as an exact
``intersects`` join on the stored geometry):

* a point belongs to the cell whose stored geometry contains it, boundary
  included, so points on the county boundary count as inside;
* a point on a boundary shared by several cells (an edge or a vertex) goes
  to the cell H3 itself puts it in (``h3.latlng_to_cell``) if that is one of
  them, otherwise to the one with the smallest H3 index;
* anything else gets ``-1``.

How it is fast: H3 cells are hexagons of a regular lattice in the gnomonic
plane of their icosahedron face. The locator fits that lattice once, then
rounds every point to its hexagon with a few numpy operations (no per-point
Python call). A point is accepted only when it lies clearly inside the stored
hexagon, by a margin measured at build time that covers the difference
between H3's curved edges and the stored straight (lng, lat) edges. The few
points near an edge, in clipped border cells or near an icosahedron edge take
the exact path: H3 index, then shapely's exact predicates.

The lattice geometry and the per-face lookup tables are :mod:`grid.locate.lattice`;
the forked workers of :meth:`H3Locator.locate` are :mod:`grid.locate.forked`;
points to plain H3 indexes (no grid) are :mod:`grid.locate.h3_points`.

A county across an icosahedron edge gets one lattice per face; each point is
rounded on the lattice of the face it lies on (the nearest face centre), and
unplaced points near the face edge, where cells straddle both faces, take the
exact path.
"""

from __future__ import annotations

from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import shapely
from h3.api import basic_int as h3i

from grid.errors import GridError, InvalidInput
from grid.h3cells import h3_parents
from grid.locate.forked import run_forked
from grid.locate.h3_points import cells_serial, lonlat_arrays
from grid.locate.lattice import _EMPTY, _HALO, FACE_DIRS, FaceTable, Lattice, unit_vectors
from grid.locate.stored import cells_fingerprint, pack, unpack

_CHUNK = 1 << 16
FORMAT = 1  # of stored lookups (H3Locator.to_bytes): bumped whenever the tables change meaning


def _fingerprint(h3: np.ndarray, border: np.ndarray, geoms) -> str:
    """The cells (indexes, border flags, geometry) a stored lookup was built on."""
    return cells_fingerprint(geoms, np.asarray(h3, dtype="<u8"), np.asarray(border, dtype=bool))


class H3Locator:
    """Assign points to the cells of a clipped H3 grid (see the module docstring for the rule).

    Parameters
    ----------
    cells : GeoDataFrame
        Output of :func:`grid.h3cells.build_h3_cells` (``h3``, ``is_border``,
        geometry in EPSG:4326), in any row order.
    workers : int
        Processes for the vectorised pass over large inputs (fork); 1 for one process.

    Examples
    --------
    >>> from shapely import box
    >>> from grid.h3cells import build_h3_cells
    >>> cells = build_h3_cells(box(106.0, 38.0, 106.1, 38.1), 8)
    >>> rows = H3Locator(cells).locate([106.05, 107.0], [38.05, 38.0])
    >>> bool(cells.geometry.iloc[rows[0]].contains(shapely.Point(106.05, 38.05))), int(rows[1])
    (True, -1)
    """

    def __init__(self, cells: gpd.GeoDataFrame, workers: int = 2):
        self._cells(cells, workers)
        h = self.h3
        res = {h3i.get_resolution(int(x)) for x in h[:: max(1, len(h) // 1000)]}
        if len(res) != 1:
            raise InvalidInput("cells must be unique H3 cells of one resolution")
        self.res = res.pop()
        shapely.prepare(self.geoms)
        self._tree = shapely.STRtree(self.geoms)
        halo = {n for c in h[self.border].tolist() for n in h3i.grid_disk(c, 1)}
        halo = np.sort(np.fromiter(halo, dtype=np.uint64, count=len(halo)))
        pos = np.minimum(np.searchsorted(self._sorted, halo), len(h) - 1)
        self._halo = halo[self._sorted[pos] != halo]  # the ring around the grid, not in it
        minx, miny, maxx, maxy = shapely.total_bounds(self.geoms)
        pad = 2 * (maxy - miny + maxx - minx) / max(1.0, np.sqrt(len(h)))
        self._bbox = (minx - pad, miny - pad, maxx + pad, maxy + pad)
        self._lattice = None
        try:
            self._build_lattice()
        except (GridError, np.linalg.LinAlgError):
            self._lattice = None  # every point takes the exact path: slower, same answer

    def to_bytes(self) -> bytes:
        """The fitted lattices and tables (not the cells) as bytes, to store with the grid version.

        :meth:`from_bytes` with the same cells gives a locator with identical answers
        without fitting again.
        """
        meta = {"res": self.res, "bbox": list(self._bbox), "lattice": self._lattice is not None}
        arrays = {"halo": self._halo}
        if self._lattice is not None:
            meta.update(single_face=self._single_face, edge_gap=getattr(self, "_edge_gap", 0.0),
                        faces=[[t.face, t.i0, t.j0, t.delta] for t in self._faces])
            arrays.update(face_slot=self._face_slot, cand_dirs=self._cand_dirs, cand_slot=self._cand_slot)
            for k, t in enumerate(self._faces):
                lat = t.lattice
                arrays[f"table{k}"] = t.table
                arrays[f"lattice{k}"] = np.concatenate([lat.c, lat._ai, lat._aj, lat._b])
        return pack(meta, arrays, format=FORMAT, fingerprint=_fingerprint(self.h3, self.border, self.geoms))

    @classmethod
    def from_bytes(cls, data: bytes, cells: gpd.GeoDataFrame, workers: int = 2) -> H3Locator:
        """A locator from :meth:`to_bytes` output and the very cells it was built on.

        Raises InvalidInput for bytes of another format or built on other cells.
        """
        self = cls.__new__(cls)
        self._cells(cells, workers)
        meta, z = unpack(data, what="H3", format=FORMAT, fingerprint=_fingerprint(self.h3, self.border, self.geoms))
        self.res, self._bbox, self._halo = meta["res"], tuple(meta["bbox"]), z["halo"]
        shapely.prepare(self.geoms)
        self._tree = shapely.STRtree(self.geoms)
        self._lattice = None
        if meta["lattice"]:
            self._single_face, self._edge_gap = meta["single_face"], meta["edge_gap"]
            self._face_slot, self._cand_dirs, self._cand_slot = z["face_slot"], z["cand_dirs"], z["cand_slot"]
            self._faces = []
            for k, (face, i0, j0, delta) in enumerate(meta["faces"]):
                t = FaceTable.__new__(FaceTable)
                t.face, t.i0, t.j0, t.delta, t.table = face, i0, j0, delta, z[f"table{k}"]
                lat = Lattice.__new__(Lattice)
                v = z[f"lattice{k}"]
                lat.c, lat._ai, lat._aj, lat._b = v[0:3], v[3:6], v[6:9], v[9:11]
                t.lattice = lat
                self._faces.append(t)
            self._lattice = self._faces[0].lattice
        return self

    def _cells(self, cells: gpd.GeoDataFrame, workers: int) -> None:
        """Cell arrays and the sorted index (shared by building and loading)."""
        if len(cells) == 0:
            raise InvalidInput("the grid has no cells")
        h = cells["h3"].to_numpy(dtype=np.uint64)
        self._order = np.argsort(h, kind="stable")
        self._sorted = h[self._order]
        if (self._sorted[1:] == self._sorted[:-1]).any():
            raise InvalidInput("cells must be unique H3 cells of one resolution")
        self.workers = workers
        self.h3 = h
        self.geoms = cells.geometry.to_numpy()
        self.border = cells["is_border"].to_numpy(dtype=bool)

    def _build_lattice(self) -> None:
        """Fit one lattice per icosahedron face the grid covers (see :class:`FaceTable`)."""
        table_h3 = np.concatenate([self.h3, self._halo])
        if any(h3i.is_pentagon(int(c)) for c in table_h3[:1]):
            raise GridError("pentagon cells: no lattice")
        rows_all = np.concatenate([np.arange(len(self.h3)), np.full(len(self._halo), _HALO)])
        centres = np.array([h3i.cell_to_latlng(int(c))[::-1] for c in table_h3])
        # A cell's face is the one holding its centre. Only cells near a face edge may cross it:
        # H3 is asked about those alone (the others are several cell sizes away from any edge).
        dots = unit_vectors(centres[:, 0], centres[:, 1]) @ FACE_DIRS.T
        single = np.argmax(dots, axis=1)
        top = np.sort(dots, axis=1)
        edge_rad = h3i.average_hexagon_edge_length(self.res, unit="km") / 6371.0
        for k in np.flatnonzero(top[:, -1] - top[:, -2] < 4.0 * edge_rad * 0.714):
            if len(h3i.get_icosahedron_faces(int(table_h3[k]))) > 1:
                single[k] = -1
        counts = np.bincount(single[single >= 0], minlength=20)
        if counts.sum() == 0:
            raise GridError("no single-face cells to fit a lattice to")
        self._single_face = bool((single >= 0).all()) and int((counts > 0).sum()) == 1
        self._faces: list[FaceTable] = []
        self._face_slot = np.full(20, -1, dtype=np.int64)
        # Largest face first; a face whose lattice cannot be fitted is left to the exact path.
        for face in np.argsort(-counts, kind="stable"):
            if counts[face] < 7:
                break
            on = single == face
            try:
                table = FaceTable(self, table_h3[on], rows_all[on], centres[on], int(face))
            except (GridError, np.linalg.LinAlgError):
                if not self._faces:
                    raise
                continue
            self._face_slot[table.face] = len(self._faces)
            self._faces.append(table)
        if not self._faces:  # a few cells split over faces: too few on any one to fit
            raise GridError("no face holds enough cells to fit a lattice")
        self._lattice = self._faces[0].lattice
        # The faces the padded box reaches. Faces are far larger than a county: where one meets the
        # box it holds at least a 72-degree wedge (a face corner) reaching a quarter box size out,
        # so samples 1/43 of the box apart over the box widened by that quarter cannot miss it.
        minx, miny, maxx, maxy = self._bbox
        m = 0.25 * max(maxx - minx, maxy - miny)
        gx, gy = np.meshgrid(np.linspace(minx - m, maxx + m, 65), np.linspace(miny - m, maxy + m, 65))
        cand = np.unique(np.argmax(unit_vectors(gx.ravel(), gy.ravel()) @ FACE_DIRS.T, axis=1))
        self._cand_dirs = FACE_DIRS[cand]
        self._cand_slot = self._face_slot[cand]
        # Ten cell edges away from a face edge (in differences of the dot products with the two
        # nearest face centres, which change by 0.71 per radian across that edge) no cell crosses it.
        self._edge_gap = 10.0 * edge_rad * 0.714

    def _fast(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised pass: (row or -1, needs-exact flag); small chunks stay in cache."""
        n = len(lon)
        row = np.empty(n, dtype=np.int64)
        exact = np.empty(n, dtype=bool)
        for a in range(0, n, _CHUNK):
            b = min(n, a + _CHUNK)
            x, y = lon[a:b], lat[a:b]
            if self._single_face:
                code, sure = self._faces[0].lookup(x, y)
                r = np.where(sure & (code >= 0), code, -1)
                unsure = ~sure & (code != _EMPTY)
            else:
                # Each point is rounded on the lattice of its own face (the nearest face
                # centre), then judged as on one face. Cells across a face edge are in no
                # table: an unplaced point near a face edge is asked of H3.
                r = np.full(len(x), -1, dtype=np.int64)
                unsure = np.zeros(len(x), dtype=bool)
                near = np.flatnonzero(self._in_bbox(x, y))  # beyond the padded box: no cell
                lo, la = np.radians(x[near]), np.radians(y[near])
                cl = np.cos(la)
                ux, uy, uz = cl * np.cos(lo), cl * np.sin(lo), np.sin(la)
                # Dot products with the centres of the faces the box reaches (2-3 of 20).
                dots = np.stack([ux * d[0] + uy * d[1] + uz * d[2] for d in self._cand_dirs])
                best = np.argmax(dots, axis=0)
                slot = self._cand_slot[best]
                # Cells across a face edge lie within a few cell sizes of it.
                if len(dots) > 1:
                    top = np.sort(dots, axis=0)
                    near_edge = top[-1] - top[-2] < self._edge_gap
                else:
                    near_edge = np.zeros(len(near), dtype=bool)
                unsure[near[slot < 0]] = True
                rn = np.full(len(near), -1, dtype=np.int64)
                for s, table in enumerate(self._faces):
                    sel = np.flatnonzero(slot == s)
                    if len(sel):
                        code, sure = table.lookup(None, None, (ux[sel], uy[sel], uz[sel]))
                        rn[sel] = np.where(sure & (code >= 0), code, -1)
                        unsure[near[sel]] = ~sure & (code != _EMPTY)
                r[near] = rn
                unsure[near[(rn < 0) & near_edge]] = True
            bd = np.flatnonzero(r >= 0)
            bd = bd[self.border[r[bd]]]
            if len(bd):
                ok = shapely.intersects_xy(self.geoms[r[bd]], x[bd], y[bd])
                r[bd[~ok]] = -1
            row[a:b] = r
            exact[a:b] = unsure
        return row, exact

    def _in_bbox(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        minx, miny, maxx, maxy = self._bbox
        return (lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)

    def _exact(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Exact path: H3's own cell first, then every cell whose geometry meets the point."""
        n = len(lon)
        row = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return row
        h = cells_serial(lon, lat, self.res)
        pos = np.minimum(np.searchsorted(self._sorted, h), len(self._sorted) - 1)
        found = self._sorted[pos] == h
        cand = self._order[pos]
        ok = np.zeros(n, dtype=bool)
        ok[found] = shapely.intersects_xy(self.geoms[cand[found]], lon[found], lat[found])
        row[ok] = cand[ok]
        # A point whose H3 cell is neither in the grid nor next to it is far outside.
        hpos = np.minimum(np.searchsorted(self._halo, h), max(0, len(self._halo) - 1))
        near = found | ((self._halo[hpos] == h) if len(self._halo) else False)
        rest = np.flatnonzero(~ok & near)
        if len(rest):
            pi, gi = self._tree.query(shapely.points(lon[rest], lat[rest]), predicate="intersects")
            if len(pi):
                key = np.lexsort((self.h3[gi], pi))  # smallest H3 index first per point
                pi, gi = pi[key], gi[key]
                first = np.r_[True, pi[1:] != pi[:-1]]
                row[rest[pi[first]]] = gi[first]
        return row

    def locate(self, lon, lat) -> np.ndarray:
        """Row position (int64) of the cell holding each point, -1 outside the grid.

        Examples
        --------
        >>> from shapely import box
        >>> from grid.h3cells import build_h3_cells
        >>> loc = H3Locator(build_h3_cells(box(106.0, 38.0, 106.1, 38.1), 7))
        >>> loc.locate([106.0], [38.05])[0] >= 0   # on the county boundary: inside
        np.True_
        """
        lon, lat = lonlat_arrays(lon, lat)
        if self._lattice is None:
            return self._exact(lon, lat)
        row, exact = run_forked(
            len(lon),
            lambda a, b: self._fast(lon[a:b], lat[a:b]),
            [np.int64, np.bool_],
            self.workers,
        )
        idx = np.flatnonzero(exact)
        if len(idx):
            row[idx] = self._exact(lon[idx], lat[idx])
        return row

    def locate_multi(
        self, lon, lat, coarser: Iterable[int] = (8, 7)
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Rows as :meth:`locate`, plus the H3 index of the assigned cell and of its parents.

        Returns
        -------
        (rows, cells)
            ``rows`` int64 (-1 outside); ``cells`` maps the grid resolution and
            every coarser one to uint64 indexes (0 outside). Parents follow
            H3's hierarchy, matching :func:`grid.h3cells.rollup_geometry`.
        """
        rows = self.locate(lon, lat)
        fine = np.where(rows >= 0, self.h3[np.maximum(rows, 0)], np.uint64(0))
        out = {self.res: fine}
        for r in coarser:
            out[int(r)] = h3_parents(fine, r)
        return rows, out
