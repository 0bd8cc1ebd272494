"""Village cells: exact tiling, merging of shared points, honest reporting."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geodata import DEMO_DATA
from grid.locate import VillageLocator
from grid.villages import InvalidInput, build_village_cells, village_cell_lookup

DATA = DEMO_DATA
SQUARE = shapely.box(106.0, 38.0, 106.02, 38.02)


def villages(rows):
    """DataFrame in the canonical village fields from (code, lon, lat[, level[, township]])."""
    out = []
    for r in rows:
        code, lon, lat = r[:3]
        level = r[3] if len(r) > 3 else "village"
        town = r[4] if len(r) > 4 else code[:9]
        out.append(
            {
                "code": code,
                "name": f"v{code[-3:]}",
                "township_code": town,
                "lon": lon,
                "lat": lat,
                "coord_level": level,
            }
        )
    return pd.DataFrame(out)


def assert_tiles(cells: gpd.GeoDataFrame, county) -> None:
    """No overlaps, and the union is the county within 1e-9 relative area (EPSG:4326)."""
    geoms = np.asarray(cells.geometry.values, dtype=object)
    assert all(
        g.geom_type in ("Polygon", "MultiPolygon") and g.is_valid and g.area > 0 for g in geoms
    )
    total = county.area
    assert abs(shapely.area(geoms).sum() - total) <= 1e-9 * total
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    overlap = shapely.area(shapely.intersection(geoms[a[keep]], geoms[b[keep]])).sum()
    assert overlap <= 1e-9 * total
    union = shapely.union_all(geoms)
    assert shapely.symmetric_difference(union, county).area <= 1e-9 * total


def brute_force(geoms, x, y) -> np.ndarray:
    """Lowest index of a geometry covering each point, by testing every pair."""
    hits = shapely.intersects_xy(np.asarray(geoms, dtype=object)[:, None], x[None, :], y[None, :])
    return np.where(hits.any(axis=0), hits.argmax(axis=0), -1)


# ---------------------------------------------------------------- literal cases


def test_three_points_in_a_square_split_at_the_bisectors():
    v = villages(
        [
            ("640101001001", 106.0025, 38.01),
            ("640101001002", 106.01, 38.01),
            ("640101001003", 106.0175, 38.01),
        ]
    )
    cells, report = build_village_cells(SQUARE, v)
    assert list(cells.cell_id) == ["640101001001", "640101001002", "640101001003"]
    assert_tiles(cells, SQUARE)
    # Bisectors at 106.00625 and 106.01375: shares 5/16, 6/16, 5/16 (metric Voronoi, so ~1e-4 off).
    shares = shapely.area(cells.geometry.values) / SQUARE.area
    np.testing.assert_allclose(shares, [5 / 16, 6 / 16, 5 / 16], atol=1e-3)
    for g, (x, y) in zip(cells.geometry, zip(v.lon, v.lat, strict=True), strict=True):
        assert g.contains(shapely.Point(x, y))
    assert report == {
        "villages": 3,
        "placed": 3,
        "cells": 3,
        "merged_groups": 0,
        "merged_villages": 0,
        "unplaced": [],
        "outside_county": [],
        "method": "voronoi",
    }
    assert list(cells.n_villages) == [1, 1, 1]
    assert list(cells.point_level) == ["village"] * 3


def test_villages_sharing_a_point_are_one_cell_naming_all():
    v = villages(
        [
            ("640101001002", 106.005, 38.01, "township"),
            ("640101001001", 106.005, 38.01, "township"),
            ("640101002001", 106.015, 38.01, "village"),
        ]
    )
    cells, report = build_village_cells(SQUARE, v)
    assert list(cells.cell_id) == ["G640101001001", "640101002001"]
    merged = cells.iloc[0]
    assert merged.village_codes == ["640101001001", "640101001002"]
    assert merged.names == ["v001", "v002"]
    assert merged.n_villages == 2 and merged.township_code == "640101001"
    assert merged.point_level == "township"
    assert report["merged_groups"] == 1 and report["merged_villages"] == 2
    assert report["placed"] == 3 and report["cells"] == 2
    assert village_cell_lookup(cells) == {
        "640101001001": "G640101001001",
        "640101001002": "G640101001001",
        "640101002001": "640101002001",
    }
    assert_tiles(cells, SQUARE)


def test_merged_group_across_townships_has_no_township_and_stable_id():
    rows = [
        ("640101002005", 106.005, 38.01, "county"),
        ("640101001009", 106.005, 38.01, "county"),
        ("640101003001", 106.015, 38.01),
    ]
    cells, _ = build_village_cells(SQUARE, villages(rows))
    again, _ = build_village_cells(SQUARE, villages(rows[::-1]))
    assert cells.iloc[0].township_code is None
    assert cells.iloc[0].cell_id == "G640101001009"
    assert list(again.cell_id) == list(cells.cell_id)
    assert shapely.equals(cells.geometry.values, again.geometry.values).all()


def test_missing_and_outside_points_are_reported_not_placed():
    v = villages(
        [
            ("640101001001", 106.005, 38.01),
            ("640101001002", float("nan"), float("nan")),
            ("640101001003", 107.5, 38.01),
            ("640101001004", 106.015, 38.01),
        ]
    )
    cells, report = build_village_cells(SQUARE, v)
    assert report["placed"] == 2 and report["villages"] == 4
    assert report["unplaced"] == [
        {"code": "640101001002", "reason": "no coordinates"},
        {"code": "640101001003", "reason": "point outside county"},
    ]
    assert report["outside_county"] == ["640101001003"]
    assert "640101001002" not in village_cell_lookup(cells)
    assert_tiles(cells, SQUARE)


def test_no_placed_village_raises_and_one_village_gets_the_county():
    with pytest.raises(InvalidInput, match="none of the 1 villages"):
        build_village_cells(SQUARE, villages([("640101001001", float("nan"), float("nan"))]))
    assert issubclass(InvalidInput, ValueError)
    cells, report = build_village_cells(SQUARE, villages([("640101001001", 106.01, 38.01)]))
    assert len(cells) == 1 and report["cells"] == 1
    assert shapely.equals(cells.geometry.iloc[0], SQUARE)


def test_bad_inputs_raise_invalid_input():
    with pytest.raises(InvalidInput, match="Polygon"):
        build_village_cells(
            shapely.LineString([(0, 0), (1, 1)]), villages([("640101001001", 0.5, 0.5)])
        )
    with pytest.raises(InvalidInput, match="columns"):
        build_village_cells(SQUARE, pd.DataFrame({"code": ["1"]}))
    dup = villages([("640101001001", 106.005, 38.01), ("640101001001", 106.015, 38.01)])
    with pytest.raises(InvalidInput, match="duplicate"):
        build_village_cells(SQUARE, dup)


def test_township_polygons_clip_cells_to_each_village_township():
    county = shapely.box(106.0, 38.0, 106.02, 38.01)
    t1, t2 = shapely.box(106.0, 38.0, 106.01, 38.01), shapely.box(106.01, 38.0, 106.02, 38.01)
    towns = gpd.GeoDataFrame({"code": ["640101001", "640101002"]}, geometry=[t1, t2], crs=4326)
    # Unclipped, the bisector would sit near 106.0135, inside township 2.
    v = villages([("640101001001", 106.009, 38.005), ("640101002001", 106.018, 38.005)])
    cells, report = build_village_cells(county, v, township_polygons=towns)
    assert report["method"] == "voronoi"
    assert (
        shapely.equals(cells.geometry.iloc[0].normalize(), t1.normalize())
        or shapely.symmetric_difference(cells.geometry.iloc[0], t1).area < 1e-15
    )
    assert abs(cells.geometry.iloc[1].area - t2.area) < 1e-15
    assert_tiles(cells, county)
    plain, _ = build_village_cells(county, v)
    assert plain.geometry.iloc[0].area > t1.area * 1.2


def test_township_without_villages_goes_to_the_nearest_village():
    county = shapely.box(106.0, 38.0, 106.03, 38.01)
    towns = gpd.GeoDataFrame(
        {"code": ["640101001", "640101002", "640101003"]},
        geometry=[shapely.box(106.0 + 0.01 * i, 38.0, 106.01 + 0.01 * i, 38.01) for i in range(3)],
        crs=4326,
    )
    v = villages([("640101001001", 106.005, 38.005), ("640101003001", 106.025, 38.005)])
    cells, _ = build_village_cells(county, v, township_polygons=towns)
    assert_tiles(cells, county)
    # Township 2 has no village: split between both by plain Voronoi, nothing left out.
    assert 0.014 < cells.geometry.iloc[0].bounds[2] - 106.0 < 0.016


def test_polygons_with_overlap_and_gap_still_tile():
    county = shapely.box(0, 0, 3, 1)
    polys = gpd.GeoDataFrame(
        {"code": ["640101001002", "640101001001", "640101001003", "640101001009"]},
        geometry=[
            shapely.box(1, 0, 2, 1),  # overlaps the lower code's polygon on 1..1.2
            shapely.box(0, 0, 1.2, 1),
            shapely.union_all(
                [shapely.box(2.1, 0, 3.5, 1), shapely.box(2, 0.5, 2.1, 1)]
            ),  # sticks out
            shapely.box(5, 5, 6, 6),  # entirely outside the county
        ],
        crs=4326,
    )
    v = villages(
        [
            ("640101001001", np.nan, np.nan),
            ("640101001002", np.nan, np.nan),
            ("640101001003", np.nan, np.nan),
            ("640101001009", np.nan, np.nan),
            ("640101001010", np.nan, np.nan),
        ]
    )
    cells, report = build_village_cells(county, v, village_polygons=polys)
    assert report["method"] == "polygons"
    assert list(cells.cell_id) == ["640101001001", "640101001002", "640101001003"]
    assert_tiles(cells, county)
    a, b, c = cells.geometry
    assert abs(a.area - 1.2) < 1e-12  # lower code keeps the overlap
    assert abs(b.area - 0.8) < 1e-12
    # The gap 2..2.1 x 0..0.5 borders B for 0.5 and C for 0.6: C takes it.
    assert abs(c.area - 1.0) < 1e-12 and c.covers(shapely.Point(2.05, 0.25))
    assert report["unplaced"] == [
        {"code": "640101001009", "reason": "polygon outside county"},
        {"code": "640101001010", "reason": "no polygon"},
    ]
    assert report["outside_county"] == ["640101001009"]
    assert list(cells.point_level) == ["polygon"] * 3


def test_invalid_village_polygon_is_repaired():
    county = shapely.box(0, 0, 2, 1)
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    assert not bowtie.is_valid
    polys = gpd.GeoDataFrame(
        {"code": ["640101001001", "640101001002"]},
        geometry=[bowtie, shapely.box(1, 0, 2, 1)],
        crs=4326,
    )
    v = villages([("640101001001", np.nan, np.nan), ("640101001002", np.nan, np.nan)])
    cells, _ = build_village_cells(county, v, village_polygons=polys)
    assert_tiles(cells, county)
    a = cells.geometry.iloc[0]
    assert a.covers(shapely.Point(0.1, 0.5)) and a.covers(shapely.Point(0.9, 0.5))


# ---------------------------------------------------------------- properties


@st.composite
def county_and_points(draw):
    """A random star-shaped county (sometimes with a hole) and village points in it."""
    n = draw(st.integers(5, 14))
    cx, cy = draw(st.floats(100, 110)), draw(st.floats(30, 40))
    radii = draw(st.lists(st.floats(0.02, 0.1), min_size=n, max_size=n))
    ring = [
        (cx + r * math.cos(2 * math.pi * i / n), cy + r * math.sin(2 * math.pi * i / n))
        for i, r in enumerate(radii)
    ]
    county = shapely.Polygon(ring)
    if draw(st.booleans()):
        county = county.difference(shapely.Point(cx, cy).buffer(0.008))
    seed = draw(st.integers(0, 2**32 - 1))
    k = draw(st.integers(1, 25))
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = county.bounds
    pts = rng.uniform((minx, miny), (maxx, maxy), size=(20 * k, 2))
    pts = pts[shapely.contains_xy(county, pts[:, 0], pts[:, 1])][:k]
    if draw(st.booleans()) and len(pts) > 1:
        pts[-1] = pts[0]  # two villages on one point
    return county, pts, seed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(county_and_points())
def test_random_voronoi_cells_tile_and_locate_exactly(data):
    county, pts, seed = data
    if len(pts) == 0:
        return
    v = villages([(f"6401010010{i:02d}", x, y) for i, (x, y) in enumerate(pts)])
    cells, report = build_village_cells(county, v)
    assert report["placed"] == len(pts)
    assert sum(len(c) for c in cells.village_codes) == len(pts)
    assert_tiles(cells, county)
    geoms = np.asarray(cells.geometry.values, dtype=object)
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = county.bounds
    rx, ry = rng.uniform(minx, maxx, 400), rng.uniform(miny, maxy, 400)
    inside = shapely.contains_xy(county, rx, ry)
    covering = shapely.intersects_xy(geoms[:, None], rx[None, :], ry[None, :]).sum(axis=0)
    assert (covering[inside] == 1).all()  # random points are never on a border
    verts = shapely.get_coordinates(shapely.boundary(geoms))
    x, y = np.r_[rx, verts[:, 0]], np.r_[ry, verts[:, 1]]
    got = VillageLocator(cells).locate(x, y)
    np.testing.assert_array_equal(got, brute_force(geoms, x, y))


# ---------------------------------------------------------------- real Ningxia data


@pytest.fixture(scope="module")
def ningxia():
    if not DATA.exists():
        pytest.skip("shared Ningxia data not available")
    counties = gpd.read_file(DATA / "ningxia_counties_gcj02.geojson")
    counties["adcode"] = counties["adcode"].astype(str)
    v = pd.read_csv(
        DATA / "ningxia_villages.csv", dtype={"code": str, "street_code": str, "county_code": str}
    )
    v = v.rename(columns={"street_code": "township_code", "lon_wgs84": "lon", "lat_wgs84": "lat"})
    return counties, v


@pytest.mark.parametrize("adcode", ["640104", "640422", "640522"])
def test_real_counties_tile_and_account_for_every_village(ningxia, adcode):
    counties, v = ningxia
    county = counties.loc[counties.adcode == adcode, "geometry"].iloc[0]
    vv = v[v.county_code == adcode]
    cells, report = build_village_cells(county, vv)
    assert_tiles(cells, county)
    placed = [c for codes in cells.village_codes for c in codes]
    assert len(placed) == len(set(placed)) == report["placed"]
    assert report["placed"] + len(report["unplaced"]) == len(vv) == report["villages"]
    assert set(placed) | {u["code"] for u in report["unplaced"]} == set(vv.code)
    # Real lists mostly carry township seats: far fewer cells than villages.
    assert report["cells"] < len(vv) / 3
    assert report["merged_villages"] == cells.loc[cells.n_villages > 1, "n_villages"].sum()
    lookup = village_cell_lookup(cells)
    assert set(lookup) == set(placed)
    if adcode == "640104":  # GCJ-02 outline against WGS84 points: some fall outside, reported
        assert report["outside_county"] and all(
            u["reason"] == "point outside county" for u in report["unplaced"]
        )
    rng = np.random.default_rng(int(adcode))
    minx, miny, maxx, maxy = county.bounds
    x, y = rng.uniform(minx, maxx, 3000), rng.uniform(miny, maxy, 3000)
    verts = shapely.get_coordinates(shapely.boundary(cells.geometry.values))[::7]
    x, y = np.r_[x, verts[:, 0]], np.r_[y, verts[:, 1]]
    geoms = np.asarray(cells.geometry.values, dtype=object)
    np.testing.assert_array_equal(VillageLocator(cells).locate(x, y), brute_force(geoms, x, y))
