"""Export round trip: what is stored comes back out as CSV, GeoJSON and GeoPackage."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from geodata import DEMO_DATA
from geodata.errors import BadInput
from geodata.export import export
from geodata.importers import run_import

DATA = DEMO_DATA


@pytest.fixture(scope="module")
def villages(engine, tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    src = pd.read_csv(DATA / "ningxia_villages.csv", dtype=str)
    src = src[src.county_code == "640122"][["code", "name", "lon_gcj02", "lat_gcj02", "lon_wgs84", "lat_wgs84"]]
    src = src.reset_index(drop=True)
    src.loc[0, ["lon_gcj02", "lat_gcj02"]] = ""  # one village without a point
    path = d / "v.csv"
    src.drop(columns=["lon_wgs84", "lat_wgs84"]).rename(
        columns={"lon_gcj02": "经度", "lat_gcj02": "纬度"}).to_csv(path, index=False)
    s = run_import(engine, kind="villages", path=path, user="u", crs="gcj02", rejects_dir=d)
    assert s["counts"]["inserted"] == len(src)
    return src


def test_csv_round_trip(engine, villages, tmp_path):
    out = export(engine, kind="villages", path=tmp_path / "v.csv")
    assert out["rows"] == len(villages)
    assert (tmp_path / "v.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    back = pd.read_csv(tmp_path / "v.csv", dtype={"code": str}, encoding="utf-8-sig")
    m = back.merge(villages, on="code")
    assert list(m.name_x) == list(m.name_y)
    assert np.isnan(m.lon[0]) and m.coord_level[0] == "none" and pd.isna(m.source_crs[0])
    assert np.allclose(m.lon[1:], m.lon_wgs84[1:].astype(float), atol=1e-5)
    assert set(m.source_crs[1:]) == {"gcj02"}


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_spatial_round_trip(engine, villages, tmp_path, suffix):
    path = tmp_path / f"v{suffix}"
    assert export(engine, kind="villages", path=path, chunk_size=7)["rows"] == len(villages)
    back = gpd.read_file(path)
    assert len(back) == len(villages) and back.crs.to_epsg() == 4326
    back = back.merge(villages, on="code").sort_values("code")
    has = back.geometry.notna() & ~back.geometry.is_empty
    assert has.sum() == len(villages) - 1
    assert np.allclose(back[has].geometry.x, back[has].lon_wgs84.astype(float), atol=1e-5)
    assert "source_crs" in back.columns


def test_bad_extension(engine, tmp_path):
    with pytest.raises(BadInput, match="use .geojson, .gpkg or .csv"):
        export(engine, kind="villages", path=tmp_path / "v.shp")
