"""Counties from GeoJSON, outlets → RMs with references, customers streamed in chunks, visits."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

import geodata.importers as imp
from geodata import DEMO_DATA
from geodata.importers import run_import

DATA = DEMO_DATA


def _q(engine, sql, **kw):
    with engine.connect() as c:
        return c.execute(text(sql), kw).all()


def test_real_counties_are_22_valid_multipolygons(engine, counties):
    assert counties["counts"]["inserted"] == 22 and counties["counts"]["rejected"] == 0
    rows = _q(engine, "SELECT count(*), bool_and(ST_IsValid(geom)), min(GeometryType(geom)),"
                      " max(GeometryType(geom)), min(source_crs) FROM county")
    assert tuple(rows[0]) == (22, True, "MULTIPOLYGON", "MULTIPOLYGON", "gcj02")
    assert _q(engine, "SELECT name FROM county WHERE adcode = '640121'")[0][0] == "永宁县"


def test_outlets_then_rms_with_missing_outlet_rejected(engine, counties, tmp_path):
    le = tmp_path / "le.csv"
    le.write_text("code,name,county_codes\nNX01,永宁农商行,640121\n", encoding="utf-8")
    run_import(engine, kind="legal-entities", path=le, user="u", rejects_dir=tmp_path)
    outlets = tmp_path / "outlets.csv"
    outlets.write_text(
        "网点代码,网点名称,区县代码,经度,纬度\n"
        "O1,望远支行,640121,106.35,38.38\nO2,坏网点,640121,,\nO3,法人错,640121,106.3,38.3\n",
        encoding="utf-8",
    )
    s = run_import(engine, kind="outlets", path=outlets, user="u", rejects_dir=tmp_path)
    assert s["counts"]["inserted"] == 2 and s["counts"]["rejected"] == 1
    # No legal entity column: the county's entity is taken.
    assert _q(engine, "SELECT l.code FROM outlet o JOIN legal_entity l ON l.id = o.legal_entity_id"
                      " WHERE o.code = 'O1'")[0][0] == "NX01"
    rms = tmp_path / "rms.csv"
    rms.write_text("工号,姓名,所属网点,法人机构,入职日期,工作量系数\n"
                   "R1,张三,O1,,2020/3/1,1\nR2,李四,O9,,20200301,\nR3,王五,O1,XX,2021-01-01,0.5\n"
                   "R4,赵六,O3,,45000,3\n", encoding="utf-8")
    s = run_import(engine, kind="rms", path=rms, user="u", rejects_dir=tmp_path)
    assert s["counts"]["inserted"] == 1
    rej = pd.read_csv(s["rejects_path"], dtype=str, encoding="utf-8-sig")
    assert rej[["line", "field", "reason"]].values.tolist() == [
        ["3", "outlet_code", "no such outlet (import outlets first)"],
        ["4", "legal_entity", "unknown legal entity code"],
        ["5", "capacity", "must be above 0 and at most 2 (1.0 = full time)"],
    ]
    assert tuple(_q(engine, "SELECT hired_on::text, capacity, active FROM rm WHERE code = 'R1'")[0]) == (
        "2020-03-01", 1.0, True)


def _customers(n: int, start: int = 0) -> pd.DataFrame:
    i = pd.RangeIndex(start, start + n)
    return pd.DataFrame({
        "客户号": [f"C{k:07d}" for k in i],
        "客户姓名": [f"客户{k}" for k in i],
        "村代码": "640121100001",
        "经度": [f"{106.2 + (k % 100) * 0.001:.6f}" for k in i],
        "纬度": [f"{38.3 + (k % 50) * 0.001:.6f}" for k in i],
        "存款余额": [f"{k * 10.5:.2f}" for k in i],
        "贷款余额": "",
        "开户日期": "2019-05-01",
    })


@pytest.mark.parametrize("direct", [False, True])
def test_customers_stream_in_chunks(engine, counties, tmp_path, monkeypatch, direct):
    with engine.begin() as c:
        c.execute(text("DELETE FROM customer"))
    monkeypatch.setattr(imp, "DIRECT_LOAD_MIN_ROWS", 10 if direct else 10**9)
    df = _customers(250)
    df.loc[200, "客户号"] = df.loc[3, "客户号"]  # duplicate in a later chunk
    df.loc[201, "存款余额"] = "-5"
    path = tmp_path / "cust.csv"
    df.to_csv(path, index=False, encoding="gb18030")
    seen = []
    s = run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path, crs="wgs84",
                   chunk_size=64, progress=lambda f, m="": seen.append(f))
    assert s["counts"] == {"rows": 250, "inserted": 248, "updated": 0, "unchanged": 0, "rejected": 2}
    assert len(seen) >= 4
    rej = pd.read_csv(s["rejects_path"], dtype=str, encoding="utf-8-sig")
    assert rej[["line", "reason"]].values.tolist() == [["202", "duplicate of line 5"],
                                                       ["203", "must not be negative"]]
    row = _q(engine, "SELECT county_code, deposit_balance::text, loan_balance::text, ST_AsText(geom),"
                     " opened_on::text FROM customer WHERE customer_id = 'C0000010'")[0]
    assert tuple(row) == ("640121", "105.00", "0.00", "POINT(106.21 38.31)", "2019-05-01")
    # Indexes dropped for the direct load are back.
    idx = {r[0] for r in _q(engine, "SELECT indexname FROM pg_indexes WHERE tablename = 'customer'")}
    assert idx == {"pk_customer", "idx_customer_geom", "ix_customer_county_code",
                   "ix_customer_legal_entity_id"}
    # A changed file: 10 balances changed, 5 new customers plus the 2 rejected last time.
    df2 = pd.concat([_customers(250), _customers(5, start=1000)], ignore_index=True)
    df2.loc[:9, "存款余额"] = "1.00"
    df2.to_csv(path, index=False, encoding="gb18030")
    s2 = run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path, chunk_size=64)
    assert s2["counts"] == {"rows": 255, "inserted": 7, "updated": 10, "unchanged": 238, "rejected": 0}


def test_dry_run_writes_nothing(engine, counties, tmp_path):
    path = tmp_path / "dry.csv"
    _customers(3, start=5000).to_csv(path, index=False)
    s = run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path, dry_run=True)
    assert s["counts"]["inserted"] == 3
    assert _q(engine, "SELECT count(*) FROM customer WHERE customer_id = 'C0005000'")[0][0] == 0
    assert _q(engine, "SELECT dry_run, status FROM import_run WHERE id = :i", i=s["run_id"])[0] == (True, "ok")


def test_visits_dates_and_unknown_rm(engine, counties, tmp_path):
    path = tmp_path / "visits.csv"
    path.write_text("客户号,走访人工号,走访时间,走访方式\nC0000001,R1,2024-05-01 09:30,上门\n"
                    "C0000002,R1,2024/5/2,电话\nC0000003,RX,2024-05-03,上门\nC0000004,R1,昨天,上门\n",
                    encoding="utf-8")
    s = run_import(engine, kind="visits", path=path, user="u", rejects_dir=tmp_path)
    assert s["counts"]["inserted"] == 2 and s["counts"]["rejected"] == 2
    got = _q(engine, "SELECT to_char(visited_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI')"
                     " FROM visit ORDER BY 1")
    assert [r[0] for r in got] == ["2024-05-01 09:30", "2024-05-02 00:00"]


def test_village_outside_its_county_is_flagged(engine, counties, tmp_path):
    path = tmp_path / "v.csv"
    # 640121 is 永宁县 (south of Yinchuan); 106.70,37.00 lies far to the south-east of it.
    path.write_text("code,name,lon,lat\n640121100001,望远村,106.3,38.3\n640121100002,远村,106.70,37.00\n",
                    encoding="utf-8")
    s = run_import(engine, kind="villages", path=path, user="u", rejects_dir=tmp_path)
    assert s["warnings"] == {"outside_county": 1} and s["warning_rows"][0]["line"] == 3
    got = dict(_q(engine, "SELECT code, outside_county FROM village"))
    assert got == {"640121100001": False, "640121100002": True}


@pytest.mark.parametrize("kind, header, good, bad", [
    ("customers", "客户号,姓名,村代码", "N1,李四,640121100001", "N2,张\x00三,640121100001"),  # binary COPY
    ("villages", "code,name,lon,lat", "640121100091,望远村,106.3,38.3", "640121100092,远\x00村,106.3,38.3"),  # CSV
])
def test_a_nul_character_is_a_rejected_row_not_a_failed_import(engine, counties, tmp_path, kind, header, good, bad):
    # PostgreSQL cannot store NUL in text: the COPY used to fail for the whole file with a staging line number.
    path = tmp_path / f"nul-{kind}.csv"
    path.write_bytes(f"{header}\n{good}\n{bad}\n".encode())
    s = run_import(engine, kind=kind, path=path, user="u", rejects_dir=tmp_path)
    assert s["status"] == "ok" and s["counts"]["inserted"] == 1 and s["counts"]["rejected"] == 1
    rejects = pd.read_csv(s["rejects_path"], dtype=str, encoding="utf-8-sig")
    assert rejects[["line", "field"]].values.tolist() == [["3", "name"]]
    assert rejects["reason"][0].startswith("contains a NUL character")


def test_legal_entity_links_its_counties(engine, counties):
    got = _q(engine, "SELECT c.adcode FROM county c JOIN legal_entity l ON l.id = c.legal_entity_id"
                     " WHERE l.code = 'NX01'")
    assert [r[0] for r in got] == ["640121"]


def test_rejected_legal_entity_rows_link_no_counties(engine, counties, tmp_path):
    # Rows rejected for any reason must not touch county links: an unknown code used to set them to NULL,
    # a duplicate's counties overrode the first row's, and a NUL in a code failed the whole import.
    path = tmp_path / "le2.csv"
    path.write_bytes("code,name,county_codes\n"
                     "NX02,贺兰农商行,640122\n"
                     ",无代码,640121\n"
                     "NX03,,640121\n"
                     "NX02,重复,640181\n"
                     "NX\x004,空字符,640181\n".encode())
    try:
        s = run_import(engine, kind="legal-entities", path=path, user="u", rejects_dir=tmp_path)
        assert s["status"] == "ok" and s["counts"]["inserted"] == 1 and s["counts"]["rejected"] == 4
        links = _q(engine, "SELECT c.adcode, l.code FROM county c JOIN legal_entity l ON l.id = c.legal_entity_id"
                           " ORDER BY 1")
        assert [tuple(r) for r in links] == [("640121", "NX01"), ("640122", "NX02")]
    finally:
        with engine.begin() as c:
            c.execute(text("UPDATE county SET legal_entity_id = NULL WHERE adcode = '640122'"))
            c.execute(text("DELETE FROM legal_entity WHERE code = 'NX02'"))


def test_bd09_points_are_converted(engine, counties, tmp_path):
    from grid.chinacrs import wgs84_to_bd09

    x, y = wgs84_to_bd09(106.25, 38.25)
    path = tmp_path / "o.csv"
    path.write_text(f"code,name,lon,lat\nB1,百度网点,{float(x)!r},{float(y)!r}\n", encoding="utf-8")
    run_import(engine, kind="outlets", path=path, user="u", crs="bd09", rejects_dir=tmp_path)
    lon, lat, crs = _q(engine, "SELECT ST_X(geom), ST_Y(geom), source_crs FROM outlet WHERE code = 'B1'")[0]
    assert abs(lon - 106.25) < 1e-7 and abs(lat - 38.25) < 1e-7 and crs == "bd09"


def test_the_real_province_lists_import_cleanly(engine, counties, tmp_path):
    towns = run_import(
        engine, kind="townships", path=DATA / "ningxia_townships.csv", user="u", crs="gcj02",
        rejects_dir=tmp_path, mapping={"street_code": "code", "street_name": "name",
                                       "town_lon_gcj": "lon", "town_lat_gcj": "lat"},
    )
    assert towns["counts"]["inserted"] == 259 and towns["counts"]["rejected"] == 0
    with engine.begin() as c:
        c.execute(text("DELETE FROM village"))
    v = run_import(
        engine, kind="villages", path=DATA / "ningxia_villages.csv", user="u", crs="gcj02",
        rejects_dir=tmp_path, mapping={"street_code": "township_code", "street_name": "township_name",
                                       "lon_gcj02": "lon", "lat_gcj02": "lat"},
    )
    assert v["counts"]["inserted"] == 2912 and v["counts"]["rejected"] == 0
    assert "lon_wgs84" in v["ignored_columns"]
    levels = dict(_q(engine, "SELECT coord_level, count(*) FROM village GROUP BY 1"))
    assert levels == {"village": 108, "township": 2429, "county": 375}
