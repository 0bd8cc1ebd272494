"""GeoParquet in and out: customers through the same checks and rejects as a CSV, and back out with the
``geo`` metadata a GIS or a data platform reads."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from sqlalchemy import text

from geodata.errors import BadInput
from geodata.export import export
from geodata.importers import run_import


def _customers(path, rows, crs=4326):
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows).drop(columns=["geometry"]),
                           geometry=[r["geometry"] for r in rows], crs=crs)
    gdf.to_parquet(path, index=False)
    return path


ROWS = [
    {"customer_id": "P1", "name": "张三", "county_code": "640121", "deposit_balance": 1000.5,
     "opened_on": pd.Timestamp("2021-03-04").date(), "geometry": shapely.Point(106.2512345678901, 38.27)},
    {"customer_id": "P2", "name": "李四", "county_code": "640121", "deposit_balance": -5.0,
     "opened_on": None, "geometry": shapely.Point(106.21, 38.31)},
    {"customer_id": "P3", "name": "王五", "county_code": "640121", "deposit_balance": 7.0,
     "opened_on": None, "geometry": shapely.box(106.2, 38.2, 106.3, 38.3)},
    {"customer_id": "P4", "name": "赵六", "county_code": "640121", "deposit_balance": 0.0,
     "opened_on": None, "geometry": None},
]


def _rejects(path):
    with open(path, encoding="utf-8-sig") as f:
        return {r["line"]: r for r in csv.DictReader(f)}


def test_customers_round_trip_through_geoparquet(engine, tmp_path):
    src = _customers(tmp_path / "customers.parquet", ROWS)
    s = run_import(engine, kind="customers", path=src, user="t", rejects_dir=tmp_path)
    assert s["status"] == "ok" and s["counts"]["rows"] == 4
    assert s["counts"]["inserted"] == 2 and s["counts"]["rejected"] == 2
    bad = _rejects(s["rejects_path"])
    # Row 2: a negative amount, named by the ordinary check; row 3: a polygon where a point belongs.
    assert bad["2"]["field"] == "deposit_balance" and "negative" in bad["2"]["reason"]
    assert bad["3"]["field"] == "geometry" and "Polygon, not a point" in bad["3"]["reason"]
    with engine.connect() as conn:
        got = conn.execute(text("SELECT customer_id, ST_X(geom), ST_Y(geom), deposit_balance, opened_on"
                                " FROM customer WHERE customer_id IN ('P1','P4') ORDER BY 1")).all()
    assert got[0][:3] == ("P1", 106.2512345678901, 38.27) and float(got[0][3]) == 1000.5
    assert str(got[0][4]) == "2021-03-04"
    assert got[1][1] is None  # no geometry: stored without a point, as an empty lon/lat in a CSV

    out = tmp_path / "out.parquet"
    r = export(engine, kind="customers", path=out)
    assert r["rows"] == 2 and r["format"] == "parquet"
    meta = json.loads(pq.read_schema(out).metadata[b"geo"])
    assert meta["primary_column"] == "geometry" and meta["columns"]["geometry"]["encoding"] == "WKB"
    assert meta["columns"]["geometry"]["geometry_types"] == ["Point"]
    back = gpd.read_parquet(out)
    assert back.crs.equals("OGC:CRS84") or back.crs.to_epsg() == 4326
    p1 = back.set_index("customer_id").loc["P1"]
    assert (p1.geometry.x, p1.geometry.y) == (106.2512345678901, 38.27)
    assert str(p1["deposit_balance"]) == "1000.50" and str(p1["opened_on"]) == "2021-03-04"
    if shutil.which("ogrinfo") and "Parquet" in subprocess.run(["ogrinfo", "--formats"], capture_output=True,
                                                               text=True).stdout:
        info = subprocess.run(["ogrinfo", "-so", "-al", str(out)], capture_output=True, text=True)
        assert info.returncode == 0 and "Feature Count: 2" in info.stdout

    # What we wrote imports again (into a cleared table) with every value the same.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM customer"))
    s2 = run_import(engine, kind="customers", path=out, user="t", rejects_dir=tmp_path)
    assert s2["status"] == "ok" and s2["counts"]["inserted"] == 2 and s2["counts"]["rejected"] == 0
    with engine.connect() as conn:
        again = conn.execute(text("SELECT customer_id, ST_X(geom), ST_Y(geom), deposit_balance, opened_on"
                                  " FROM customer WHERE customer_id IN ('P1','P4') ORDER BY 1")).all()
    assert again == got


def test_lon_lat_columns_without_geometry(engine, tmp_path):
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"客户号": ["Q1", "Q2"], "经度": [106.2, 200.0], "纬度": [38.3, 38.3]}).to_parquet(path)
    s = run_import(engine, kind="customers", path=path, user="t", rejects_dir=tmp_path, dry_run=True)
    assert s["counts"]["inserted"] == 1 and s["counts"]["rejected"] == 1
    assert _rejects(s["rejects_path"])["2"]["field"] == "lon"


def test_geometry_in_another_crs_is_refused(engine, tmp_path):
    path = _customers(tmp_path / "utm.parquet", [{**ROWS[0], "geometry": shapely.Point(500000, 4200000)}],
                      crs=32648)
    with pytest.raises(BadInput, match="WGS84"):
        run_import(engine, kind="customers", path=path, user="t", rejects_dir=tmp_path)


def test_cells_export_as_geoparquet(tmp_path):
    from geodata.exports_grid import write_layer

    gdf = gpd.GeoDataFrame({"cell_id": ["a"], "customers": [3]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    write_layer(gdf, tmp_path / "cells.parquet", fmt="parquet", layer="cells")
    back = gpd.read_parquet(tmp_path / "cells.parquet")
    assert list(back["cell_id"]) == ["a"] and back.geometry.iloc[0].geom_type == "MultiPolygon"


def test_cli_import_and_export_parquet(db_url, tmp_path):
    from click.testing import CliRunner

    from api.cli import _register, cli

    _register()
    env = {"GRIDMKT_DATABASE_URL": db_url, "GRIDMKT_HOME": str(tmp_path)}
    src = _customers(tmp_path / "c.parquet", ROWS[:1])
    res = CliRunner().invoke(cli, ["import", "customers", str(src), "--dry-run", "--json"], env=env)
    s = json.loads(res.output.strip().splitlines()[-1])
    assert res.exit_code == 0 and s["counts"]["rows"] == 1 and s["counts"]["rejected"] == 0, res.output
    res = CliRunner().invoke(cli, ["export", "customers", "-o", str(tmp_path / "o.parquet"), "--json"], env=env)
    assert res.exit_code == 0 and json.loads(res.output.strip().splitlines()[-1])["format"] == "parquet"
