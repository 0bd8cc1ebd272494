"""Point-to-H3-cell assignment equals H3 and an exact intersects join on the stored cells."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from h3.api import basic_int as h3i
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from geodata import DEMO_DATA
from grid.errors import InvalidInput
from grid.h3cells import build_h3_cells
from grid.locate import H3Locator, locate_multi, lonlat_to_h3

COUNTIES = DEMO_DATA / "ningxia_counties_gcj02.geojson"


def reference(cells: gpd.GeoDataFrame, lon, lat) -> np.ndarray:
    """The documented rule, written out slowly: intersects, H3's cell on ties, else min H3.

    Every cell a point intersects comes from an STRtree query with shapely's intersects predicate (the
    same pairs as testing each point against every cell, which took seconds per 10,000 points), in cell
    order per point."""
    geoms = cells.geometry.to_numpy()
    h = cells["h3"].to_numpy()
    res = h3i.get_resolution(int(h[0]))
    out = np.full(len(lon), -1)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    pi, gi = shapely.STRtree(geoms).query(shapely.points(lon, lat), predicate="intersects")
    order = np.lexsort((gi, pi))
    pi, gi = pi[order], gi[order]
    if len(pi) == 0:
        return out
    cuts = np.flatnonzero(np.diff(pi)) + 1
    for k, hits in zip(pi[np.r_[0, cuts]], np.split(gi, cuts), strict=True):
        x, y = lon[k], lat[k]
        own = h3i.latlng_to_cell(y, x, res)
        mine = hits[h[hits] == own]
        out[k] = mine[0] if len(mine) else hits[np.argmin(h[hits])]
    return out


def test_lonlat_to_h3_equals_h3_in_parallel():
    rng = np.random.default_rng(7)
    lat, lon = rng.uniform(-60, 60, 250_000), rng.uniform(-180, 180, 250_000)
    got = lonlat_to_h3(lon, lat, 9, workers=2)
    assert got.dtype == np.uint64
    idx = rng.choice(len(lat), 2000, replace=False)
    assert [int(got[i]) for i in idx] == [h3i.latlng_to_cell(lat[i], lon[i], 9) for i in idx]
    assert np.array_equal(got, lonlat_to_h3(lon, lat, 9, workers=1))


@settings(max_examples=100, deadline=None)
@given(st.floats(-85, 85), st.floats(-180, 180), st.integers(0, 15))
def test_lonlat_to_h3_property(lat, lng, res):
    # longitude first, like every function of grid.locate (h3 itself takes lat first)
    assert int(lonlat_to_h3([lng], [lat], res)[0]) == h3i.latlng_to_cell(lat, lng, res)


def test_lonlat_to_h3_rejects_bad_input():
    with pytest.raises(InvalidInput):
        lonlat_to_h3([106.0], [38.0], 16)
    with pytest.raises(InvalidInput):
        lonlat_to_h3([106.0], [38.0, 1.0], 9)
    with pytest.raises(InvalidInput):
        lonlat_to_h3([106.0], [np.nan], 9)


def test_locate_multi_derives_parents():
    out = locate_multi([106.0, 106.3], [38.0, 38.2], 9, coarser=(8, 7))
    for k, (x, y) in enumerate([(106.0, 38.0), (106.3, 38.2)]):
        fine = h3i.latlng_to_cell(y, x, 9)
        assert int(out[9][k]) == fine
        assert int(out[8][k]) == h3i.cell_to_parent(fine, 8)
        assert int(out[7][k]) == h3i.cell_to_parent(fine, 7)


def test_square_county_literal_points():
    county = box(106.0, 38.0, 106.2, 38.15)
    cells = build_h3_cells(county, 7)
    loc = H3Locator(cells, workers=1)
    lon = np.array([106.1, 106.0, 106.2, 106.1, 105.9, 107.5, 106.0])
    lat = np.array([38.07, 38.07, 38.15, 38.0, 38.07, 38.0, 38.0])
    rows = loc.locate(lon, lat)
    # inside, west edge, NE corner, south edge, outside, far outside, SW corner
    assert (rows[[0, 1, 2, 3, 6]] >= 0).all() and (rows[[4, 5]] == -1).all()
    assert np.array_equal(rows, reference(cells, lon, lat))
    assert rows.dtype == np.int64


def test_shared_edge_and_vertex_points_are_deterministic():
    cells = build_h3_cells(box(106.0, 38.0, 106.2, 38.15), 8)
    loc = H3Locator(cells, workers=1)
    inner = cells[~cells.is_border]
    # Every vertex and edge midpoint of some inner hexagons: on 2 or 3 cells at once.
    ring = np.asarray(inner.geometry.iloc[len(inner) // 2].exterior.coords)
    pts = np.vstack([ring[:-1], (ring[:-1] + ring[1:]) / 2])
    rows = loc.locate(pts[:, 0], pts[:, 1])
    assert (rows >= 0).all()
    assert np.array_equal(rows, reference(cells, pts[:, 0], pts[:, 1]))
    assert np.array_equal(rows, loc.locate(pts[::-1, 0], pts[::-1, 1])[::-1])


def test_hole_and_multipart():
    outer = box(106.0, 38.0, 106.2, 38.2)
    hole = box(106.05, 38.05, 106.15, 38.15)
    county = MultiPolygon(
        [Polygon(outer.exterior.coords, [hole.exterior.coords]), box(106.3, 38.0, 106.35, 38.05)]
    )
    cells = build_h3_cells(county, 8)
    loc = H3Locator(cells, workers=1)
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(105.98, 106.37, 3000), rng.uniform(37.98, 38.22, 3000)
    rows = loc.locate(lon, lat)
    assert np.array_equal(rows, reference(cells, lon, lat))
    inside = shapely.intersects_xy(county, lon, lat)
    assert np.array_equal(rows >= 0, inside)
    assert (rows[(lon > 106.06) & (lon < 106.14) & (lat > 38.06) & (lat < 38.14)] == -1).all()


@st.composite
def county_and_points(draw):
    cx, cy = draw(st.floats(105.0, 107.0)), draw(st.floats(36.0, 39.0))
    n = draw(st.integers(5, 10))
    radii = np.array(draw(st.lists(st.floats(0.02, 0.06), min_size=n, max_size=n)))
    angles = np.sort(
        np.array(draw(st.lists(st.floats(0, 6.28), min_size=n, max_size=n, unique=True)))
    )
    poly = Polygon(np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)]))
    seed = draw(st.integers(0, 2**32 - 1))
    return poly, seed


@settings(max_examples=10, deadline=None)
@given(county_and_points(), st.sampled_from([7, 8]))
def test_random_points_land_in_the_cell_that_contains_them(case, res):
    county, seed = case
    if not county.is_valid:
        return
    cells = build_h3_cells(county, res)
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = county.bounds
    lon, lat = (
        rng.uniform(minx - 0.01, maxx + 0.01, 400),
        rng.uniform(miny - 0.01, maxy + 0.01, 400),
    )
    # Also points exactly on cell edges and vertices.
    # (A clipped border cell can be a MultiPolygon: take its first part.)
    ring = np.asarray(shapely.get_parts(cells.geometry.iloc[0])[0].exterior.coords)
    lon, lat = np.r_[lon, ring[:, 0]], np.r_[lat, ring[:, 1]]
    rows = H3Locator(cells, workers=1).locate(lon, lat)
    assert np.array_equal(rows, reference(cells, lon, lat))
    # Cell vertices made by clipping sit within rounding error of the county edge, so
    # compare with the county itself on the random points only.
    assert np.array_equal(rows[:400] >= 0, shapely.intersects_xy(county, lon[:400], lat[:400]))


def test_locator_multi_resolution():
    cells = build_h3_cells(box(106.0, 38.0, 106.1, 38.1), 9)
    loc = H3Locator(cells, workers=1)
    rows, out = loc.locate_multi([106.05, 107.0], [38.05, 38.0], coarser=(8, 7))
    assert rows[1] == -1 and out[9][1] == 0 and out[7][1] == 0
    fine = int(cells["h3"].iloc[rows[0]])
    assert int(out[9][0]) == fine and int(out[7][0]) == h3i.cell_to_parent(fine, 7)


def test_locator_rejects_bad_input():
    with pytest.raises(InvalidInput):
        H3Locator(build_h3_cells(box(106.0, 38.0, 106.1, 38.1), 7).iloc[:0])
    loc = H3Locator(build_h3_cells(box(106.0, 38.0, 106.1, 38.1), 7))
    with pytest.raises(InvalidInput):
        loc.locate([106.0], [38.0, 38.1])


@pytest.mark.parametrize("idx", [11, 14])  # 盐池县 (one icosahedron face), 原州区 (two faces)
def test_real_county_matches_exact_join(idx):
    county = gpd.read_file(COUNTIES).geometry.iloc[idx]
    cells = build_h3_cells(county, 8)
    rng = np.random.default_rng(idx)
    minx, miny, maxx, maxy = county.bounds
    n = 300_000
    lon, lat = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
    rows = H3Locator(cells, workers=2).locate(lon, lat)
    pi, gi = shapely.STRtree(cells.geometry.to_numpy()).query(
        shapely.points(lon, lat), predicate="intersects"
    )
    assert len(np.unique(pi)) == len(pi)  # random points never sit on an edge
    want = np.full(n, -1)
    want[pi] = gi
    assert np.array_equal(rows, want)


def test_two_face_county_uses_a_lattice_per_face():
    """原州区 straddles two icosahedron faces: each gets its lattice, few points take the exact path."""
    county = gpd.read_file(COUNTIES).geometry.iloc[14]
    loc = H3Locator(build_h3_cells(county, 9), workers=1)
    assert not loc._single_face and len(loc._faces) == 2
    assert len({t.face for t in loc._faces}) == 2
    pts = shapely.points(np.random.default_rng(5).uniform(*county.bounds[::2], 100_000),
                         np.random.default_rng(6).uniform(*county.bounds[1::2], 100_000))
    inside = shapely.contains(county, pts)
    x, y = shapely.get_x(pts[inside]), shapely.get_y(pts[inside])
    row, exact = loc._fast(x, y)
    assert exact.mean() < 0.02 and (row >= 0).mean() > 0.97
    assert np.array_equal(loc.locate(x, y), loc._exact(x, y))


def test_stored_h3_lookup_gives_the_same_answers_and_refuses_other_cells():
    county = shapely.box(106.0, 38.0, 106.3, 38.2)
    cells = build_h3_cells(county, 8)
    built = H3Locator(cells, workers=1)
    data = built.to_bytes()
    again = H3Locator.from_bytes(data, cells.copy(), workers=1)
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(105.95, 106.35, 50_000), rng.uniform(37.95, 38.25, 50_000)
    assert np.array_equal(again.locate(lon, lat), reference(cells, lon, lat))
    other = build_h3_cells(shapely.box(106.0, 38.0, 106.3, 38.21), 8)
    with pytest.raises(InvalidInput, match="other cells"):
        H3Locator.from_bytes(data, other)
    with pytest.raises(InvalidInput, match="not a stored H3 lookup"):
        H3Locator.from_bytes(b"nope", cells)


@pytest.mark.parametrize("res, d", [(6, 0.01), (7, 0.001), (8, 0.001)])
def test_tiny_grid_on_a_face_edge_takes_the_exact_path(res, d):
    """A few cells split over two icosahedron faces fit no lattice: the locator must still answer exactly."""
    lng, lat = 106.37707718661679, 36.11763745265365  # a cell centre of 原州区 on a face edge
    cells = build_h3_cells(box(lng - d, lat - d, lng + d, lat + d), res)
    loc = H3Locator(cells, workers=1)
    rng = np.random.default_rng(3)
    lon, la = rng.uniform(lng - 2 * d, lng + 2 * d, 2000), rng.uniform(lat - 2 * d, lat + 2 * d, 2000)
    got = loc.locate(lon, la)
    assert np.array_equal(got, reference(cells, lon, la)) and (got >= 0).any() and (got < 0).any()
    again = H3Locator.from_bytes(loc.to_bytes(), cells, workers=1)
    assert np.array_equal(again.locate(lon, la), got)
