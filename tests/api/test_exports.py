"""Exports: GeoPackage read back with pyogrio, GeoJSON and CSV (the RM workbook: test_workbook.py);
contents follow scope, personal data masked for planners, every export audited."""

from __future__ import annotations

import csv
import io
import json

import pyogrio
import pytest
from sqlalchemy import text

from geodata import assign, grids


def _get(client, auth, who, gid, **params):
    return client.get(f"/api/v1/grids/{gid}/export", params=params, headers=auth(who))


def _gpkg(r, tmp_path, layer):
    path = tmp_path / "x.gpkg"
    path.write_bytes(r.content)
    return pyogrio.read_dataframe(path, layer=layer)


def test_cells_geopackage_for_a_planner(client, auth, data, tmp_path):
    """Both cells with owner, lock and latest score; opened with pyogrio."""
    r = _get(client, auth, "planner_a", data["grid_a"], format="gpkg", layer="cells")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geopackage+sqlite3"
    assert f'filename="grid{data["grid_a"]}_cells.gpkg"' in r.headers["content-disposition"]
    df = _gpkg(r, tmp_path, "cells").set_index("cell_id")
    assert list(df.index) == ["a1", "a2"]
    assert df.loc["a2", "owner_rm"] == "RA2" and bool(df.loc["a2", "locked"]) is True
    assert df.loc["a2", "gap_class"] == "blank" and df.loc["a2", "score"] == 80.0
    assert df.loc["a1", "customers"] == 1 and df.crs.to_epsg() == 4326


def test_rm_exports_only_their_cells(client, auth, data):
    """rm_a1: only a1 in cells, only RA1 in territories; another legal entity's grid is 404."""
    r = _get(client, auth, "rm_a1", data["grid_a"], format="geojson", layer="cells")
    fc = json.loads(r.content)
    assert [f["properties"]["cell_id"] for f in fc["features"]] == ["a1"]
    assert "RA2" not in r.text and "a2" not in r.text
    r = _get(client, auth, "bm_a", data["grid_a"], format="geojson", layer="territories")
    assert [f["properties"]["rm_code"] for f in json.loads(r.content)["features"]] == ["RA1"]
    assert _get(client, auth, "rm_a1", data["grid_b"], format="xlsx").status_code == 404
    assert _get(client, auth, "planner_a", data["grid_b"]).status_code == 404


def test_csv_has_wkt_and_a_point(client, auth, data):
    """CSV: UTF-8 with BOM, one row per RM territory, lon/lat and WKT columns."""
    r = _get(client, auth, "planner_a", data["grid_a"], format="csv", layer="territories")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    assert {"rm_code", "rm_name", "cells", "customers", "lon", "lat", "wkt"} <= set(rows[0])
    assert [row["rm_code"] for row in rows] == ["RA1", "RA2"]
    assert rows[0]["wkt"].startswith("MULTIPOLYGON") and float(rows[0]["lon"]) == pytest.approx(106.3)


def test_gaps_layer_has_components(client, auth, data, tmp_path):
    """Gaps GeoPackage: highest score first, each component contribution a column."""
    r = _get(client, auth, "analyst_a", data["grid_a"], format="gpkg", layer="gaps")
    df = _gpkg(r, tmp_path, "gaps")
    assert list(df["cell_id"]) == ["a2", "a1"]
    assert list(df["contrib_no_recent_visit"]) == [40.0, 0.0]
    assert df.loc[0, "reason_en"] == "no visit in 90 days"


def test_exports_are_audited(client, auth, data, engine):
    """Each download leaves an export entry naming format and layer."""
    _get(client, auth, "analyst_a", data["grid_a"], format="csv", layer="cells")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT username, detail FROM audit_log WHERE action = 'export'"
                                " AND object_type = 'grid_cells' ORDER BY id DESC LIMIT 1")).mappings().one()
    assert row["username"] == "analyst_a" and row["detail"]["format"] == "csv" and row["detail"]["features"] == 2


@pytest.mark.parametrize("params, name", [({"format": "shp"}, "format"), ({"layer": "customers"}, "layer")])
def test_bad_export_parameters(client, auth, data, params, name):
    """Unknown format or layer: 422 naming the parameter."""
    r = _get(client, auth, "planner_a", data["grid_a"], **params)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == name


def test_real_grid_exports_polygons(client, auth, engine, tmp_path):
    """A real H3 grid of 兴庆区 exports every cell as a polygon, areas summing to the county's."""
    with engine.begin() as conn:
        g = grids.build_grid(conn, county_code="640104", kind="h3", resolution=7)
        assign.assign_customers(conn, grid_id=g["id"])
    r = _get(client, auth, "planner_a", g["id"], format="gpkg", layer="cells")
    df = _gpkg(r, tmp_path, "cells")
    assert len(df) == g["cell_count"]
    assert set(df.geom_type) <= {"Polygon", "MultiPolygon"}
    assert df["customers"].fillna(0).sum() == 1
    empty = _get(client, auth, "planner_a", g["id"], format="geojson", layer="territories")
    assert json.loads(empty.content)["features"] == []
    empty = _get(client, auth, "planner_a", g["id"], format="gpkg", layer="territories")
    assert empty.status_code == 200 and len(_gpkg(empty, tmp_path, "territories")) == 0
