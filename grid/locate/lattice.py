"""The hexagon lattice of H3 cells on one icosahedron face, in the face's gnomonic plane.

H3 cells of one resolution are the hexagons of a regular lattice in the
gnomonic projection of their icosahedron face (apart from H3's small
distortions, which :class:`grid.locate.H3Locator` measures as margins). This
module fits that lattice to cell centres and rounds points to their hexagon
with numpy alone; :data:`FACE_DIRS` are the faces' centre directions;
:class:`FaceTable` is one face's lookup table of a locator.
"""

from __future__ import annotations

import numpy as np
import shapely
from h3.api import basic_int as h3i

from grid.errors import GridError
from grid.h3cells import hexagons

MARGIN_SAMPLES = (0.3, 0.5, 0.7)
_HALO = -2  # table code: a cell of the ring around the grid
_EMPTY = -3  # table code: no cell


def unit_vectors(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Unit vectors on the sphere, shape (n, 3)."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    cl = np.cos(lat)
    return np.column_stack([cl * np.cos(lon), cl * np.sin(lon), np.sin(lat)])


class Lattice:
    """The hexagon lattice of one icosahedron face, fitted to H3 cell centres."""

    def __init__(self, face_centre: np.ndarray, centres_lonlat: np.ndarray, origin: int):
        c = face_centre / np.linalg.norm(face_centre)
        e1 = np.cross([0.0, 0.0, 1.0], c)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(c, e1)
        self.c, self.e1, self.e2 = c, e1, e2
        uv = self._gnomonic(centres_lonlat[:, 0], centres_lonlat[:, 1])
        # Neighbour vectors of the origin cell give a first estimate of the lattice basis.
        nb = np.array([x for x in h3i.grid_disk(origin, 1) if x != origin], dtype=np.uint64)
        nb_ll = np.array([h3i.cell_to_latlng(int(x))[::-1] for x in nb])
        o_ll = np.array(h3i.cell_to_latlng(int(origin))[::-1])
        o = self._gnomonic(o_ll[None, 0], o_ll[None, 1])[0]
        d = self._gnomonic(nb_ll[:, 0], nb_ll[:, 1]) - o
        ang = np.arctan2(d[:, 1], d[:, 0])
        a1 = d[0]
        a2 = d[np.argmin(np.abs(((ang - ang[0]) - np.pi / 3 + np.pi) % (2 * np.pi) - np.pi))]
        ij = np.linalg.solve(np.column_stack([a1, a2]), (uv - o).T).T
        k = np.rint(ij)
        # Refit on every centre: (u, v) = o + i a1 + j a2, least squares.
        A = np.column_stack([np.ones(len(k)), k])
        coef, *_ = np.linalg.lstsq(A, uv, rcond=None)
        self.o, basis = coef[0], coef[1:].T  # basis columns a1, a2
        self.inv = np.linalg.inv(basis)
        self.ij = k.astype(np.int64)
        fit = self._frac(uv) - k
        self.residual = float(np.abs(fit).max()) if len(fit) else 0.0
        # Fold projection axes, inverse basis and origin into two constant vectors.
        self._ai = self.inv[0, 0] * self.e1 + self.inv[0, 1] * self.e2
        self._aj = self.inv[1, 0] * self.e1 + self.inv[1, 1] * self.e2
        self._b = self.inv @ self.o

    def _gnomonic(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        p = unit_vectors(lon, lat)
        w = p @ self.c
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.column_stack([(p @ self.e1) / w, (p @ self.e2) / w])

    def _frac(self, uv: np.ndarray) -> np.ndarray:
        return (uv - self.o) @ self.inv.T

    def _axial(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional lattice coordinates of points (gnomonic plane, fitted basis)."""
        lo, la = np.radians(lon), np.radians(lat)
        cl = np.cos(la)
        return self._axial_xyz(cl * np.cos(lo), cl * np.sin(lo), np.sin(la))

    def _axial_xyz(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_axial` of points given as unit vector components."""
        c, ai, aj = self.c, self._ai, self._aj
        with np.errstate(divide="ignore", invalid="ignore"):
            w = 1.0 / (x * c[0] + y * c[1] + z * c[2])
            w[w <= 0] = np.nan  # the far hemisphere has no gnomonic image
            fi = (x * ai[0] + y * ai[1] + z * ai[2]) * w - self._b[0]
            fj = (x * aj[0] + y * aj[1] + z * aj[2]) * w - self._b[1]
        return fi, fj

    def round(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest lattice hexagon (i, j) of points and how far inside it they are.

        The margin is in units of the centre spacing: 0.5 at the centre, 0 on
        an edge, negative (or -1 for unprojectable points) means unknown.
        """
        return self._round(*self._axial(lon, lat))

    def round_xyz(self, x, y, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`round` of points given as unit vector components."""
        return self._round(*self._axial_xyz(x, y, z))

    @staticmethod
    def _round(fi: np.ndarray, fj: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fk = -fi - fj
        # Cube rounding: with a 60-degree basis (i, j, k = -i-j) the nearest
        # lattice point is found by rounding and fixing the worst coordinate.
        ri, rj, rk = np.rint(fi), np.rint(fj), np.rint(fk)
        di, dj, dk = np.abs(ri - fi), np.abs(rj - fj), np.abs(rk - fk)
        fix_i = (di > dj) & (di > dk)
        fix_j = ~fix_i & (dj > dk)
        ri = np.where(fix_i, -rj - rk, ri)
        rj = np.where(fix_j, -ri - rk, rj)
        dx, dy = fi - ri, fj - rj
        s = np.maximum(np.abs(dx + 0.5 * dy), np.abs(dy + 0.5 * dx))
        np.maximum(s, np.abs(0.5 * (dy - dx)), out=s)
        margin = 0.5 - s
        bad = ~np.isfinite(margin)
        if bad.any():
            margin[bad] = -1.0
            ri[bad] = rj[bad] = 0.0
        return ri.astype(np.int64), rj.astype(np.int64), margin


def _icosahedron_faces() -> np.ndarray:
    """Unit centre directions of the 20 icosahedron faces (from H3's 12 base pentagons)."""
    verts = unit_vectors(*np.array([h3i.cell_to_latlng(p)[::-1] for p in h3i.get_pentagons(0)]).T)
    near = (verts @ verts.T) > 0.3  # neighbouring vertices are 63.4 degrees apart (cos 0.447)
    tri = [(i, j, k) for i in range(12) for j in range(i + 1, 12) for k in range(j + 1, 12)
           if near[i, j] and near[j, k] and near[i, k]]
    dirs = np.array([verts[list(t)].sum(axis=0) for t in tri])
    assert len(tri) == 20
    return dirs / np.linalg.norm(dirs, axis=1)[:, None]


FACE_DIRS = _icosahedron_faces()


class FaceTable:
    """The lattice of one icosahedron face, the dense (i, j) -> row table and the safety margin.

    ``locator`` is the :class:`grid.locate.H3Locator` being built (its ``geoms`` and ``border``).
    """

    def __init__(self, locator, fit_h3: np.ndarray, rows: np.ndarray, centres: np.ndarray, face: int):
        self.face = face  # row in FACE_DIRS
        lat = Lattice(FACE_DIRS[face], centres, int(fit_h3[0]))
        if lat.residual > 1e-6:
            raise GridError(f"lattice fit residual {lat.residual:g} too large")
        i, j = lat.ij[:, 0], lat.ij[:, 1]
        self.i0, self.j0 = int(i.min()), int(j.min())
        table = np.full((int(i.max()) - self.i0 + 1, int(j.max()) - self.j0 + 1), _EMPTY, dtype=np.int32)
        table[i - self.i0, j - self.j0] = rows
        self.table, self.lattice = table, lat
        # Margin: how far the stored straight (lng, lat) edges stray from the lattice
        # hexagon, sampled along every edge, doubled for safety. Inner cells are stored
        # as whole hexagons: only border and halo cells need theirs built.
        inner = np.flatnonzero(rows >= 0)
        inner = inner[~locator.border[rows[inner]]]
        hexes = np.empty(len(fit_h3), dtype=object)
        hexes[inner] = locator.geoms[rows[inner]]
        rest = np.ones(len(fit_h3), dtype=bool)
        rest[inner] = False
        hexes[rest] = hexagons(fit_h3[rest])
        # Whole hexagons have no holes: their coordinates are their exterior rings'.
        coords, idx = shapely.get_coordinates(hexes, return_index=True)
        worst = 0.0
        # The gap between a straight edge and the lattice's is a smooth bump, zero at both
        # vertices and largest near the middle: three samples find it (and it is doubled below).
        nxt = np.r_[coords[1:], coords[-1:]]
        same = np.r_[idx[1:] == idx[:-1], False]
        for t in MARGIN_SAMPLES:
            pts = np.where(same[:, None], coords + t * (nxt - coords), coords)
            pi, pj, m = lat.round(pts[:, 0], pts[:, 1])
            own = (pi == lat.ij[idx, 0]) & (pj == lat.ij[idx, 1])
            worst = max(worst, float(np.abs(np.where(own, m, -m)).max()))
        if not worst < 0.01:
            raise GridError(f"stored hexagons stray {worst:g} from the lattice")
        self.delta = 2.0 * worst + 1e-9

    def lookup(self, x: np.ndarray, y: np.ndarray, xyz=None) -> tuple[np.ndarray, np.ndarray]:
        """Table code of each point's hexagon (row, _HALO or _EMPTY) and whether it is clearly inside.

        ``xyz``: the points' unit vector components, when already computed.
        """
        i, j, m = self.lattice.round(x, y) if xyz is None else self.lattice.round_xyz(*xyz)
        i -= self.i0
        j -= self.j0
        ni, nj = self.table.shape
        inside = (i >= 0) & (i < ni) & (j >= 0) & (j < nj)
        code = self.table.ravel().take(np.where(inside, i * nj + j, 0))
        code[~inside] = _EMPTY
        return code, m >= self.delta
