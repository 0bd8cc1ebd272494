"""Export round trip: what is stored comes back out as CSV, GeoJSON and GeoPackage."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

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
    with pytest.raises(BadInput, match="use .geojson, .gpkg, .csv or .parquet"):
        export(engine, kind="villages", path=tmp_path / "v.shp")


def test_legal_entity_links_survive_a_round_trip(engine, tmp_path):
    """Exports name a row's legal entity by code (as imports do), and a legal entity's counties."""
    (tmp_path / "c.geojson").write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"adcode":"640122","name":"贺兰县"},'
        '"geometry":{"type":"Polygon","coordinates":[[[106,38],[106.2,38],[106.2,38.2],[106,38]]]}}]}',
        encoding="utf-8")
    run_import(engine, kind="counties", path=tmp_path / "c.geojson", user="u", rejects_dir=tmp_path)
    (tmp_path / "le.csv").write_text("code,name,county_codes\nNX09,贺兰农商行,640122\n", encoding="utf-8")
    run_import(engine, kind="legal-entities", path=tmp_path / "le.csv", user="u", rejects_dir=tmp_path)
    (tmp_path / "o.csv").write_text("code,name,legal_entity,county_code,lon,lat\nO9,贺兰支行,NX09,640122,106.1,38.1\n",
                                    encoding="utf-8")
    run_import(engine, kind="outlets", path=tmp_path / "o.csv", user="u", rejects_dir=tmp_path)

    export(engine, kind="counties", path=tmp_path / "back.geojson")
    export(engine, kind="outlets", path=tmp_path / "back.csv")
    export(engine, kind="legal-entities", path=tmp_path / "le_back.csv")
    county = gpd.read_file(tmp_path / "back.geojson").set_index("adcode").loc["640122"]
    assert county["legal_entity"] == "NX09"
    outlets = pd.read_csv(tmp_path / "back.csv", dtype=str, encoding="utf-8-sig").set_index("code")
    assert outlets.loc["O9", "legal_entity"] == "NX09"
    les = pd.read_csv(tmp_path / "le_back.csv", dtype=str, encoding="utf-8-sig").set_index("code")
    assert les.loc["NX09", "county_codes"] == "640122"
    # Re-importing the exports keeps the links (they used to be dropped: legal_entity_id was not a field).
    for kind, name in (("counties", "back.geojson"), ("outlets", "back.csv"), ("legal-entities", "le_back.csv")):
        s = run_import(engine, kind=kind, path=tmp_path / name, user="u", rejects_dir=tmp_path)
        assert s["counts"]["rejected"] == 0, s
    with engine.connect() as conn:
        linked = conn.execute(text(
            "SELECT (SELECT l.code FROM county c JOIN legal_entity l ON l.id = c.legal_entity_id WHERE c.adcode = '640122'),"
            " (SELECT l.code FROM outlet o JOIN legal_entity l ON l.id = o.legal_entity_id WHERE o.code = 'O9')")).one()
    assert tuple(linked) == ("NX09", "NX09")


def test_timestamps_come_back_in_china_time(engine, tmp_path):
    """Imports read a timestamp without offset as China time; the CSV export must write China time too."""
    (tmp_path / "cu.csv").write_text("customer_id,name\nCT1,张三\n", encoding="utf-8")
    run_import(engine, kind="customers", path=tmp_path / "cu.csv", user="u", rejects_dir=tmp_path)
    (tmp_path / "l.csv").write_text("lead_id,customer_id,lead_type,status,created_at\nLT1,CT1,产品到期,open,2025-01-02 08:26:55\n",
                                    encoding="utf-8")
    assert run_import(engine, kind="leads", path=tmp_path / "l.csv", user="u", rejects_dir=tmp_path)["counts"]["inserted"] == 1
    export(engine, kind="leads", path=tmp_path / "back.csv")
    back = pd.read_csv(tmp_path / "back.csv", dtype=str, encoding="utf-8-sig").set_index("lead_id")
    assert back.loc["LT1", "created_at"].startswith("2025-01-02 08:26:55")
    s = run_import(engine, kind="leads", path=tmp_path / "back.csv", user="u", rejects_dir=tmp_path)
    assert s["counts"]["updated"] == 0 and s["counts"]["inserted"] == 0
