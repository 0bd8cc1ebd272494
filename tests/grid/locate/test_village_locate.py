"""VillageLocator: identical to an exact covers join, lowest index on shared borders."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grid.locate.village_locator as vl
from grid.errors import InvalidInput
from grid.locate import VillageLocator, locate_exact


def brute_force(geoms, x, y) -> np.ndarray:
    """Lowest index of a geometry covering each point, by testing every pair."""
    geoms = np.asarray(geoms, dtype=object)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    hits = shapely.intersects_xy(geoms[:, None], x[None, :], y[None, :])
    return np.where(hits.any(axis=0), hits.argmax(axis=0), -1)


FOUR = [
    shapely.box(0, 0, 1, 1),
    shapely.box(1, 0, 2, 1),
    shapely.box(0, 1, 1, 2),
    shapely.box(1, 1, 2, 2),
]


def test_literal_points_inside_on_borders_on_vertices_and_outside():
    loc = VillageLocator(FOUR)
    x = [0.5, 1.5, 0.5, 1.5, 1.0, 1.0, 1.0, 0.0, 2.0, 2.0, 2.0000001, -5.0, 0.5]
    y = [0.5, 0.5, 1.5, 1.5, 0.5, 1.5, 1.0, 0.0, 2.0, 1.5, 1.0, 0.5, 2.5]
    expect = [0, 1, 2, 3, 0, 2, 0, 0, 3, 3, -1, -1, -1]
    got = loc.locate(x, y)
    assert got.dtype == np.int64
    assert got.tolist() == expect
    assert locate_exact(FOUR, x, y).tolist() == expect


def test_nan_and_infinite_coordinates_are_outside():
    loc = VillageLocator(FOUR)
    got = loc.locate([np.nan, 0.5, np.inf, -np.inf, 1e300], [0.5, np.nan, 0.5, 0.5, 0.5])
    assert got.tolist() == [-1, -1, -1, -1, -1]


def test_geodataframe_input_and_empty_cells():
    cells = gpd.GeoDataFrame(geometry=[shapely.Polygon(), *FOUR[:2], None], crs=4326)
    loc = VillageLocator(cells)
    assert loc.locate([0.5, 1.5, 3.0], [0.5, 0.5, 0.5]).tolist() == [1, 2, -1]
    with pytest.raises(ValueError):
        VillageLocator([shapely.Polygon()])
    with pytest.raises(ValueError):
        loc.locate([0.5, 1.0], [0.5])


def test_overlapping_cells_lowest_index_wins_even_inside_a_whole_square():
    big, tiny = shapely.box(0, 0, 10, 10), shapely.box(4.0, 4.0, 4.001, 4.001)
    # Fine squares (0.01 wide) are much larger than the tiny cell: squares near it
    # lie wholly inside the big cell, whose border never marks them.
    x = [4.0005, 4.0, 4.001, 4.005, 5.0, 11.0]
    y = [4.0005, 4.0, 4.0005, 4.005, 5.0, 5.0]
    assert VillageLocator([big, tiny], fine_res=0.01).locate(x, y).tolist() == [0, 0, 0, 0, 0, -1]
    assert VillageLocator([tiny, big], fine_res=0.01).locate(x, y).tolist() == [0, 0, 0, 1, 1, -1]


def test_donut_and_its_core_and_multipolygon_cells():
    donut = shapely.box(0, 0, 3, 3).difference(shapely.box(1, 1, 2, 2))
    core = shapely.box(1, 1, 2, 2)
    pair = shapely.MultiPolygon([shapely.box(4, 0, 5, 1), shapely.box(6, 0, 7, 1)])
    cells = [donut, core, pair]
    x = np.array([0.5, 1.5, 1.0, 2.0, 4.5, 6.5, 5.5, 3.5])
    y = np.array([0.5, 1.5, 1.5, 2.0, 0.5, 0.5, 0.5, 0.5])
    got = VillageLocator(cells).locate(x, y)
    assert got.tolist() == [0, 1, 0, 0, 2, 2, -1, -1]
    np.testing.assert_array_equal(got, brute_force(cells, x, y))


def test_points_on_raster_lines_and_many_chunks_in_threads(monkeypatch):
    monkeypatch.setattr(vl, "CHUNK", 997)
    cells = [shapely.box(0, 0, 1, 1), shapely.Polygon([(1, 0), (2, 0.3), (1.7, 1.2), (1, 1)])]
    loc = VillageLocator(cells, fine_res=1 / 64)
    k = np.arange(-3, loc.nfx + 3)
    # Points exactly on fine raster lines and their float neighbours.
    xs = loc.x0 + k * loc.step
    x = np.concatenate([xs, np.nextafter(xs, -np.inf), np.nextafter(xs, np.inf)])
    y = np.full_like(x, 0.5)
    x, y = np.r_[x, np.full_like(x, 1.0)], np.r_[y, x]
    single = loc.locate(x, y, workers=1)
    np.testing.assert_array_equal(single, brute_force(cells, x, y))
    np.testing.assert_array_equal(loc.locate(x, y, workers=2), single)


def test_most_points_are_answered_by_the_table():
    loc = VillageLocator(FOUR, fine_res=0.01)
    # Only fine squares along the two borders need an exact test.
    assert 0 < loc.n_mixed < 0.05 * loc.ncx * loc.ncy * 64
    assert (loc.coarse >= 0).sum() > 0


def test_stored_lookup_gives_the_same_answers_and_refuses_other_cells():
    rng = np.random.default_rng(11)
    sites = rng.uniform(0, 1, (40, 2))
    cells = shapely.voronoi_polygons(shapely.multipoints(sites), extend_to=shapely.box(0, 0, 1, 1))
    cells = np.asarray([shapely.intersection(c, shapely.box(0, 0, 1, 1)) for c in shapely.get_parts(cells)])
    pts = rng.uniform(-0.1, 1.1, (50_000, 2))
    built = VillageLocator(cells)
    data = built.to_bytes()
    again = VillageLocator.from_bytes(data, shapely.from_wkb(shapely.to_wkb(cells)))
    want = locate_exact(cells, pts[:, 0], pts[:, 1])
    assert np.array_equal(again.locate(pts[:, 0], pts[:, 1]), want)
    assert np.array_equal(built.locate(pts[:, 0], pts[:, 1]), want)
    moved = cells.copy()
    moved[3] = shapely.affinity.translate(moved[3], 1e-9)
    with pytest.raises(InvalidInput, match="other cells"):
        VillageLocator.from_bytes(data, moved)
    with pytest.raises(InvalidInput, match="other cells"):
        VillageLocator.from_bytes(data, cells[::-1])
    with pytest.raises(InvalidInput, match="not a stored village lookup"):
        VillageLocator.from_bytes(b"garbage", cells)


@st.composite
def polygons_and_points(draw):
    """Random (possibly overlapping) triangles and boxes plus points, vertices included."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 12))
    geoms = []
    for _ in range(n):
        if rng.random() < 0.5:
            x0, y0 = rng.uniform(0, 1, 2)
            w, h = rng.uniform(0.01, 0.5, 2)
            geoms.append(shapely.box(x0, y0, x0 + w, y0 + h))
        else:
            tri = shapely.Polygon(rng.uniform(0, 1, (3, 2)))
            geoms.append(tri if tri.area > 1e-6 else shapely.box(0, 0, 0.1, 0.1))
    pts = rng.uniform(-0.1, 1.6, (300, 2))
    verts = shapely.get_coordinates(np.asarray(geoms, dtype=object))
    edge_mid = (verts[1:] + verts[:-1]) / 2
    pts = np.vstack([pts, verts, edge_mid])
    fine = draw(st.sampled_from([None, 0.003, 0.02, 0.1]))
    return geoms, pts, fine


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polygons_and_points())
def test_random_polygons_match_brute_force(data):
    geoms, pts, fine = data
    got = VillageLocator(geoms, fine_res=fine).locate(pts[:, 0], pts[:, 1])
    np.testing.assert_array_equal(got, brute_force(geoms, pts[:, 0], pts[:, 1]))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(2, 40))
def test_voronoi_tilings_match_brute_force_on_borders(seed, n):
    rng = np.random.default_rng(seed)
    pts = shapely.multipoints(rng.uniform((106, 38), (106.2, 38.2), (n, 2)))
    county = shapely.Polygon([(106, 38), (106.2, 38.05), (106.15, 38.2), (106.02, 38.15)])
    vor = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=county))
    cells = [c for c in shapely.intersection(vor, county) if c.area > 0]
    assert abs(sum(c.area for c in cells) - county.area) < 1e-9 * county.area
    verts = shapely.get_coordinates(np.asarray(cells, dtype=object))
    x = np.r_[rng.uniform(105.99, 106.21, 500), verts[:, 0]]
    y = np.r_[rng.uniform(37.99, 38.21, 500), verts[:, 1]]
    got = VillageLocator(cells).locate(x, y)
    np.testing.assert_array_equal(got, brute_force(cells, x, y))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.floats(0.05, 1.5),
    st.floats(0.02, 2.0),
    st.integers(0, 2**32 - 1),
)
def test_cells_across_a_thin_gap_match_brute_force(angle, gap_steps, seed):
    # Two cells facing each other across a gap thinner than a fine square: a
    # square marked only by one cell's border may lie wholly inside the other.
    step = 0.01
    d = np.array([np.cos(angle), np.sin(angle)])
    n = np.array([-d[1], d[0]])
    a0, a1 = -d, 2 * d
    off = n * gap_steps * step
    low = shapely.Polygon([a0, a1, a1 - n, a0 - n])
    high = shapely.Polygon([a0 + off, a0 + off + n, a1 + off + n, a1 + off])
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, 4000)
    s = rng.uniform(-3, 3 + gap_steps, 4000) * step
    pts = a0 + np.outer(t * 3, d) + np.outer(s, n)
    for cells in ([low, high], [high, low]):
        got = VillageLocator(cells, fine_res=step).locate(pts[:, 0], pts[:, 1])
        np.testing.assert_array_equal(got, brute_force(cells, pts[:, 0], pts[:, 1]))


def test_square_marked_by_a_nearby_segment_it_does_not_cross():
    # Found by search: the square holding the point is marked only by the long
    # edge of ``low`` (its bounding box reaches it) yet lies wholly inside
    # ``high``, whose tip is near that edge; the edge's sides must not decide.
    low = shapely.Polygon(
        [
            (-0.1669448622252966, -0.1101336141991933),
            (0.1669448622252966, 0.1101336141991933),
            (0.22201166932489325, 0.026661183086545012),
            (-0.11187805512569993, -0.1936060453118416),
        ]
    )
    high = shapely.Polygon(
        [
            (-0.025726584474034638, -0.01489325515768752),
            (0.01750542536479936, 0.07527876558763548),
            (-0.12572466018469797, -0.015513621311218336),
        ]
    )
    x, y = [-0.031944862225296605], [-0.008606045311841615]
    assert VillageLocator([low, high], fine_res=0.01).locate(x, y).tolist() == [1]
    loc = VillageLocator([low, high], fine_res=0.01)
    xs = loc.x0 + (np.arange(loc.nfx) + 0.5) * loc.step
    ys = loc.y0 + (np.arange(loc.nfy) + 0.5) * loc.step
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    np.testing.assert_array_equal(loc.locate(gx, gy), brute_force([low, high], gx, gy))
