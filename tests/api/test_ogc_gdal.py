"""A real GIS client on /ogc: GDAL's OAPIF driver (what QGIS uses underneath) against a real uvicorn.

It lists the collections a user may see and reads every feature of a grid's cells with valid
geometries, in CRS84, and the right count; as an RM only that RM's cells; without a token nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import shapely
from sqlalchemy import text

from tests.api.conftest import serve_app

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin (ogrinfo) is not installed")]


@pytest.fixture(scope="module")
def server(app, data):
    with serve_app(app) as url:
        yield url


def _gdal(args: list[str], token: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "30", "CPL_DEBUG": "OFF"}
    env.pop("GDAL_HTTP_HEADERS", None)
    if token:
        env["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {token}"
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def _read(server: str, token: str, layer: str, tmp_path) -> dict:
    out = tmp_path / f"{layer}.geojson"
    r = _gdal(["ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{server}/ogc", layer], token)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def test_gdal_lists_the_collections_a_user_may_see(server, tokens, data):
    r = _gdal(["ogrinfo", "-ro", "-q", f"OAPIF:{server}/ogc"], tokens["planner_a"])
    assert r.returncode == 0, r.stderr
    layers = {line.split(":", 1)[1].split("(")[0].strip() for line in r.stdout.splitlines() if ":" in line}
    assert {"customers", "counties", f"cells-{data['grid_a']}", f"territories-{data['grid_a']}"} <= layers
    assert f"cells-{data['grid_b']}" not in layers


def test_gdal_reads_every_cell_with_valid_geometry_crs_and_count(server, tokens, data, engine, tmp_path):
    layer = f"cells-{data['grid_a']}"
    info = _gdal(["ogrinfo", "-ro", "-so", f"OAPIF:{server}/ogc", layer], tokens["planner_a"])
    assert info.returncode == 0, info.stderr
    assert "WGS 84" in info.stdout or "CRS84" in info.stdout
    fc = _read(server, tokens["planner_a"], layer, tmp_path)
    with engine.connect() as c:
        want = c.execute(text("SELECT count(*) FROM cell WHERE grid_id = :g"), {"g": data["grid_a"]}).scalar_one()
    assert len(fc["features"]) == want == 2
    for f in fc["features"]:
        geom = shapely.geometry.shape(f["geometry"])
        assert geom.geom_type == "MultiPolygon" and geom.is_valid and not geom.is_empty
        assert 104 < geom.centroid.x < 108 and 35 < geom.centroid.y < 40  # lon/lat order, in Ningxia


def test_gdal_as_an_rm_reads_only_their_cells(server, tokens, data, tmp_path):
    fc = _read(server, tokens["rm_a1"], f"cells-{data['grid_a']}", tmp_path)
    assert [f["properties"]["cell_id"] for f in fc["features"]] == ["a1"]
    fc = _read(server, tokens["rm_a1"], "customers", tmp_path)
    assert [f["properties"]["customer_id"] for f in fc["features"]] == ["CA1"]


def test_gdal_without_a_token_is_refused(server, data):
    r = _gdal(["ogrinfo", "-ro", "-q", f"OAPIF:{server}/ogc"], None)
    assert r.returncode != 0 and "401" in r.stderr
