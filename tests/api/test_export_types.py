"""Cells are stored and exported as one type, MultiPolygon (GDAL no longer reads "Unknown (any)"), and
last_visit_at is a datetime field in GeoPackage exports. Read back with pyogrio (GDAL)."""

from __future__ import annotations

import pyogrio
import pytest
import shapely
from sqlalchemy import create_engine, text

from geodata import assign, grids, migrate
from geodata.grids import as_multipolygons


@pytest.fixture(scope="module")
def real_grid(engine, data):
    """An H3 grid of 兴庆区 (border cells cut by the county line), a visit time on one cell."""
    with engine.begin() as conn:
        g = grids.build_grid(conn, county_code="640104", kind="h3", resolution=7)
        assign.assign_customers(conn, grid_id=g["id"])
        conn.execute(text("UPDATE cell_stat SET last_visit_at = '2026-03-04 09:30:00+08' WHERE grid_id = :g"
                          " AND cell_id = (SELECT min(cell_id) FROM cell_stat WHERE grid_id = :g)"), {"g": g["id"]})
    return g


def test_stored_cells_are_all_multipolygons(engine, real_grid):
    with engine.connect() as conn:
        types = dict(conn.execute(text("SELECT ST_GeometryType(geom), count(*) FROM cell WHERE grid_id = :g"
                                       " GROUP BY 1"), {"g": real_grid["id"]}).all())
        col = conn.execute(text("SELECT type, srid FROM geometry_columns WHERE f_table_name = 'cell'"
                                " AND f_geometry_column = 'geom'")).one()
    assert types == {"ST_MultiPolygon": real_grid["cell_count"]}
    assert tuple(col) == ("MULTIPOLYGON", 4326)


def _download(client, auth, gid, tmp_path, fmt, layer):
    r = client.get(f"/api/v1/grids/{gid}/export", params={"format": fmt, "layer": layer}, headers=auth("planner_a"))
    assert r.status_code == 200, r.text
    path = tmp_path / f"{layer}.{fmt}"
    path.write_bytes(r.content)
    return path


@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
@pytest.mark.parametrize("layer", ["cells", "territories", "gaps"])
def test_exports_are_typed_multipolygon(client, auth, data, real_grid, tmp_path, fmt, layer):
    gid = data["grid_a"] if layer == "gaps" else real_grid["id"]  # the fixture grid has scores
    path = _download(client, auth, gid, tmp_path, fmt, layer)
    info = pyogrio.read_info(path)
    if info["features"] or fmt == "gpkg":  # an empty GeoJSON has no type to read; a GeoPackage keeps it
        assert info["geometry_type"] == "MultiPolygon", info
    if info["features"]:
        df = pyogrio.read_dataframe(path)
        assert set(df.geom_type) == {"MultiPolygon"}


def test_geopackage_last_visit_at_is_a_datetime(client, auth, data, real_grid, tmp_path):
    path = _download(client, auth, real_grid["id"], tmp_path, "gpkg", "cells")
    info = pyogrio.read_info(path)
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["last_visit_at"].startswith("datetime64"), types
    assert types["customers"].startswith("int") or types["customers"].startswith("float")
    df = pyogrio.read_dataframe(path)
    when = df["last_visit_at"].dropna()
    assert len(when) == 1
    assert when.iloc[0].tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M") == "2026-03-04 09:30"
    assert "datetime" in pyogrio.read_info(path)["dtypes"][list(info["fields"]).index("last_visit_at")]


def test_as_multipolygons():
    square = shapely.box(0, 0, 1, 1)
    mixed = shapely.GeometryCollection([square, shapely.LineString([(0, 0), (2, 2)])])
    out = as_multipolygons([square, shapely.MultiPolygon([square]), mixed, None])
    assert [g.geom_type if g is not None else None for g in out] == ["MultiPolygon"] * 3 + [None]
    assert out[2].equals(shapely.MultiPolygon([square]))


def test_migration_converts_stored_polygons(empty_db_url):
    """0007 turns cells stored as Polygon (before it) into MultiPolygons and types the column."""
    eng = create_engine(empty_db_url)
    try:
        migrate.upgrade(eng, "0006")
        square = "POLYGON((106 38, 106.01 38, 106.01 38.01, 106 38.01, 106 38))"
        with eng.begin() as conn:
            le = conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('L', 'l') RETURNING id")).scalar()
            conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES ('649901', 'm', :le,"
                              " ST_Multi(ST_GeomFromText(:w, 4326)))"), {"le": le, "w": square})
            gid = conn.execute(text("INSERT INTO grid (county_code, kind) VALUES ('649901', 'h3') RETURNING id")).scalar()
            conn.execute(text("INSERT INTO cell (grid_id, cell_id, area_km2, geom) VALUES (:g, 'a', 1,"
                              " ST_GeomFromText(:w, 4326))"), {"g": gid, "w": square})
        migrate.upgrade(eng)
        with eng.connect() as conn:
            row = conn.execute(text("SELECT ST_GeometryType(geom), ST_GeometryType(geom_3857) FROM cell")).one()
            assert tuple(row) == ("ST_MultiPolygon", "ST_MultiPolygon")
        migrate.downgrade(eng, "0006")
        migrate.upgrade(eng)
    finally:
        eng.dispose()
