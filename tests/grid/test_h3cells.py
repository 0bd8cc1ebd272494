"""H3 grids tile a county exactly; parents and roll-ups match H3."""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from h3.api import basic_int as h3i
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from geodata import DEMO_DATA
from grid.errors import GridError, InvalidInput
from grid.h3cells import build_h3_cells, h3_parents, hexagons, rollup, rollup_geometry

COUNTIES = DEMO_DATA / "ningxia_counties_gcj02.geojson"


def assert_tiles(cells: gpd.GeoDataFrame, county) -> None:
    """No gaps, no overlaps, union = county (areas in EPSG:4326 coordinates)."""
    geoms = cells.geometry.to_numpy()
    total = county.area
    assert abs(shapely.area(geoms).sum() - total) <= 1e-9 * total
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    pair = i < j
    overlap = shapely.area(shapely.intersection(geoms[i[pair]], geoms[j[pair]])).sum()
    assert overlap <= 1e-9 * total
    union = shapely.union_all(geoms)
    assert shapely.area(shapely.symmetric_difference(union, county)) <= 1e-9 * total
    assert not shapely.is_empty(geoms).any()
    assert set(shapely.get_type_id(geoms)) <= {3, 6}
    assert cells["h3"].is_unique and cells["h3"].is_monotonic_increasing


def test_square_county_res7_tiles_with_whole_inner_hexagons():
    county = box(106.0, 38.0, 106.2, 38.15)
    cells = build_h3_cells(county, 7)
    assert list(cells.columns) == ["cell_id", "h3", "is_border", "geometry"]
    assert cells.crs.to_epsg() == 4326 and cells["h3"].dtype == np.uint64
    assert_tiles(cells, county)
    inner = cells[~cells.is_border]
    assert len(inner) > 10 and cells.is_border.sum() > 10
    # Inner cells are exactly H3's hexagon, in (lng, lat) order.
    for h, geom in zip(inner["h3"].head(5), inner.geometry.head(5), strict=True):
        lat, lng = h3.cell_to_latlng(format(int(h), "x"))
        assert geom.contains(shapely.Point(lng, lat))
        ring = [(x, y) for y, x in h3i.cell_to_boundary(int(h))]
        assert shapely.equals(geom, Polygon(ring))
    assert (cells["cell_id"] == [format(int(h), "x") for h in cells["h3"]]).all()
    # Every hexagon that meets the square is there, and nothing else.
    want = set(h3i.h3shape_to_cells_experimental(h3.geo_to_h3shape(county), 7, contain="overlap"))
    hexes = hexagons(np.array(sorted(want), dtype=np.uint64))
    assert set(cells["h3"].tolist()) == {
        int(h) for h, g in zip(sorted(want), hexes, strict=True) if g.intersects(county)
    }


def test_hole_and_enclave_are_left_out():
    outer = box(106.0, 38.0, 106.2, 38.2)
    hole = box(106.05, 38.05, 106.15, 38.15)
    county = Polygon(outer.exterior.coords, [hole.exterior.coords])
    cells = build_h3_cells(county, 8)
    assert_tiles(cells, county)
    centre = shapely.Point(106.1, 38.1)
    assert not shapely.intersects(cells.geometry.to_numpy(), centre).any()
    # A border cell ends at the hole's edge.
    assert cells.geometry.intersects(hole.exterior).sum() > 0


def test_two_part_county():
    county = MultiPolygon([box(106.0, 38.0, 106.1, 38.1), box(106.3, 38.3, 106.35, 38.32)])
    cells = build_h3_cells(county, 7)
    assert_tiles(cells, county)
    for part in county.geoms:
        assert shapely.area(
            shapely.intersection(cells.geometry.to_numpy(), part)
        ).sum() == pytest.approx(part.area, rel=1e-9)


def test_sliver_kept_and_geodataframe_input():
    # A thin strip only a few metres wide still ends up in cells, with no lost area.
    county = gpd.GeoDataFrame(geometry=[box(106.0, 38.0, 106.2, 38.00005)], crs=4326)
    cells = build_h3_cells(county, 9)
    assert_tiles(cells, county.geometry.iloc[0])
    assert cells.is_border.all()


@pytest.mark.parametrize("res", [5, 11, 7.0, "8", True])
def test_bad_resolution(res):
    with pytest.raises(InvalidInput):
        build_h3_cells(box(106, 38, 106.1, 38.1), res)


@pytest.mark.parametrize(
    "county",
    [
        shapely.Point(106, 38),
        Polygon(),
        Polygon([(106, 38), (106.1, 38.1), (106.1, 38), (106, 38.1)]),  # bow tie
        gpd.GeoSeries([box(0, 0, 1000, 1000)], crs=32648),
    ],
)
def test_bad_county(county):
    with pytest.raises(InvalidInput) as err:
        build_h3_cells(county, 7)
    assert isinstance(err.value, ValueError) and isinstance(err.value, GridError)


@st.composite
def star_polygons(draw):
    """Random simple star-shaped polygons about 5-15 km across, sometimes with a hole."""
    cx = draw(st.floats(105.0, 107.0))
    cy = draw(st.floats(36.0, 39.0))
    n = draw(st.integers(5, 14))
    radii = draw(st.lists(st.floats(0.02, 0.07), min_size=n, max_size=n))
    angles = np.sort(
        np.array(draw(st.lists(st.floats(0, 2 * np.pi), min_size=n, max_size=n, unique=True)))
    )
    ring = np.column_stack(
        [cx + np.array(radii) * np.cos(angles), cy + np.array(radii) * np.sin(angles)]
    )
    poly = Polygon(ring)
    # near-duplicate angles can make the ring touch itself: such a drawing is not a county
    assume(poly.is_valid)
    if draw(st.booleans()):
        poly = poly.difference(shapely.Point(cx, cy).buffer(0.01, quad_segs=3))
    return poly


@settings(max_examples=15, deadline=None)
@given(star_polygons(), st.sampled_from([7, 8]))
def test_random_polygons_tile(county, res):
    if not county.is_valid or county.is_empty:
        return
    assert_tiles(build_h3_cells(county, res), county)


@settings(max_examples=200, deadline=None)
@given(st.floats(-80, 80), st.floats(-179.9, 179.9), st.integers(0, 15), st.integers(0, 15))
def test_parents_equal_h3(lat, lng, res, parent):
    fine, coarse = max(res, parent), min(res, parent)
    c = h3i.latlng_to_cell(lat, lng, fine)
    got = h3_parents(np.array([c, 0], dtype=np.uint64), coarse)
    assert int(got[0]) == h3i.cell_to_parent(c, coarse)
    assert got[1] == 0


def test_parents_reject_finer_target():
    c = np.array([h3i.latlng_to_cell(38, 106, 7)], dtype=np.uint64)
    with pytest.raises(InvalidInput):
        h3_parents(c, 8)


def test_rollup_sums_per_parent():
    a, b = h3i.cell_to_children(h3i.latlng_to_cell(38.0, 106.0, 7), 9)[:2]
    other = h3i.latlng_to_cell(38.5, 106.5, 9)
    df = pd.DataFrame(
        {
            "cell_id": [format(x, "x") for x in (a, b, other)],
            "customers": [3, 4, 5],
            "deposit": [1.5, 2.0, 0.5],
            "name": list("xyz"),
        }
    )
    out = rollup(df, 7)
    assert list(out.columns) == ["cell_id", "h3", "customers", "deposit"]
    got = dict(zip(out["h3"].tolist(), out["customers"].tolist(), strict=True))
    assert got == {h3i.cell_to_parent(a, 7): 7, h3i.cell_to_parent(other, 7): 5}
    same = rollup(df.assign(h3=h3_of(df)).drop(columns="cell_id"), 7)
    assert same["customers"].tolist() == out["customers"].tolist()


def h3_of(df):
    return np.array([int(s, 16) for s in df["cell_id"]], dtype=np.uint64)


def test_rollup_geometry_still_tiles():
    county = Polygon([(106.0, 38.0), (106.25, 38.02), (106.2, 38.2), (106.05, 38.15)])
    fine = build_h3_cells(county, 9)
    coarse = rollup_geometry(fine, 7)
    assert_tiles(coarse, county)
    assert coarse["n_children"].sum() == len(fine)
    assert set(coarse["h3"].tolist()) == {h3i.cell_to_parent(int(h), 7) for h in fine["h3"]}
    # A parent is border exactly when one of its children is.
    parents = h3_parents(fine["h3"].to_numpy(), 7)
    bparents = set(parents[fine["is_border"].to_numpy()].tolist())
    assert set(coarse.loc[coarse.is_border, "h3"].tolist()) == bparents


def _counties():
    return gpd.read_file(COUNTIES)


def test_real_ningxia_counties_res7():
    for geom in _counties().geometry:
        assert_tiles(build_h3_cells(geom, 7), geom)


# At res 8 (the demo's): the demo county, the smallest, and the two with several parts (隆德县 also has a
# hole); res 7 above tiles all 22 borders. (All 22 at res 8 took a minute of a loaded suite.)
RES8_COUNTIES = ("640121", "640106", "640423", "640425")


@pytest.mark.slow
def test_real_ningxia_counties_res8():
    counties = _counties().set_index("adcode").loc[list(RES8_COUNTIES)]
    assert any(g.geom_type == "MultiPolygon" for g in counties.geometry)
    for geom in counties.geometry:
        assert_tiles(build_h3_cells(geom, 8), geom)


def test_geometry_collection_keeps_its_polygons():
    square = shapely.box(106.0, 38.0, 106.05, 38.05)
    mixed = shapely.GeometryCollection([square, shapely.LineString([(106.1, 38.1), (106.2, 38.2)])])
    cells = build_h3_cells(mixed, 8)
    assert abs(shapely.area(cells.geometry.values).sum() - square.area) < 1e-9 * square.area
    with pytest.raises(InvalidInput, match="empty"):  # nothing polygonal left
        build_h3_cells(shapely.GeometryCollection([shapely.Point(106, 38)]), 8)
