"""A planner's real village spreadsheet: title row, Chinese headers, GBK/XLSX, GCJ-02, bad rows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from sqlalchemy import text

from geodata import DEMO_DATA
from geodata.errors import BadInput
from geodata.importers import load, run_import
from grid.projection import haversine_km

DATA = DEMO_DATA
COUNTY = "640121"  # 永宁县
TITLE = "永宁县行政村名录（2023年）"
HEADER = ["村名称", "统计用区划代码", "乡镇名称", "经度", "纬度", "户数"]


def _villages() -> pd.DataFrame:
    df = pd.read_csv(DATA / "ningxia_villages.csv", dtype=str)
    return df[df.county_code == COUNTY].reset_index(drop=True)


def _rows(df: pd.DataFrame) -> list[list[str]]:
    """Good rows (GCJ-02 points, household counts) then the planted bad ones."""
    rows = [[r["name"], r["code"], r["street_name"], r["lon_gcj02"], r["lat_gcj02"], str(100 + i)]
            for i, r in df.iterrows()]
    g = df.iloc[0]
    bad = [
        ["短代码村", g["code"][:11], g["street_name"], g["lon_gcj02"], g["lat_gcj02"], "10"],  # 11 digits
        ["重复村", df.iloc[1]["code"], g["street_name"], g["lon_gcj02"], g["lat_gcj02"], "10"],  # duplicate
        ["零点村", "640121999001", g["street_name"], "0", "0", "10"],  # (0,0)
        ["户数错村", "640121999003", g["street_name"], g["lon_gcj02"], g["lat_gcj02"], "很多"],  # households
        ["纬度错村", "640121999004", g["street_name"], "106.2", "138.5", "10"],  # out of range
    ]
    swapped = ["颠倒村", "640121999002", g["street_name"], g["lat_gcj02"], g["lon_gcj02"], "10"]
    return rows + bad + [swapped]


def write_csv(path: Path, rows, encoding="gbk") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow([TITLE, "", "", "", "", ""])
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def write_xlsx(path: Path, rows) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append([TITLE])
    ws.merge_cells("A1:F1")
    ws.append(HEADER)
    for r in rows:
        # Codes and numbers typed as numbers, the way Excel users leave them.
        ws.append([r[0], int(r[1]) if r[1].isdigit() else r[1], r[2],
                   float(r[3]), float(r[4]), int(r[5]) if r[5].isdigit() else r[5]])
    wb.save(path)
    return path


def _count(engine, sql, **kw):
    with engine.connect() as c:
        return c.execute(text(sql), kw).scalar()


@pytest.fixture(scope="module")
def df():
    return _villages()


def _import(engine, path, tmp_path, **kw):
    return run_import(engine, kind="villages", path=path, user="planner", crs="gcj02",
                      rejects_dir=tmp_path, **kw)


def test_gbk_csv_with_title_row(engine, df, tmp_path):
    path = write_csv(tmp_path / "永宁县村名录.csv", _rows(df))
    s = _import(engine, path, tmp_path)
    n = len(df)
    assert s["status"] == "ok" and s["encoding"] == "gb18030" and s["header_line"] == 2
    assert s["counts"] == {"rows": n + 6, "inserted": n + 1, "updated": 0, "unchanged": 0, "rejected": 5}
    rej = pd.read_csv(s["rejects_path"], dtype=str, encoding="utf-8-sig")
    got = {(int(r.line), r.field, r.reason) for r in rej.itertuples()}
    first_bad = n + 3  # title, header, then n good rows
    assert got == {
        (first_bad, "code", "must be 12 digits"),
        (first_bad + 1, "code", "duplicate of line 4"),
        (first_bad + 2, "lon", "(0,0) is not a location"),
        (first_bad + 3, "households", "not a number"),
        (first_bad + 4, "lon", "coordinate out of range (lon -180..180, lat -90..90)"),
    }
    assert list(rej.columns[:4]) == ["line", "field", "value", "reason"] and "村名称" in rej.columns
    assert s["warnings"] == {"swapped_lon_lat": 1}
    assert s["warning_rows"][0]["line"] == first_bad + 5
    # Stored points equal the WGS84 columns of the source within 1 m.
    with engine.connect() as c:
        got = pd.read_sql(text("SELECT code, ST_X(geom) x, ST_Y(geom) y, source_crs, coord_level,"
                               " households FROM village"), c)
    m = got.merge(df, on="code")
    assert len(m) == n
    d_km = haversine_km(m.x, m.y, m.lon_wgs84.astype(float), m.lat_wgs84.astype(float))
    assert float(np.max(d_km)) < 0.001
    assert set(m.source_crs) == {"gcj02"} and set(m.coord_level_x) == {"village"}
    # Re-importing the same file changes nothing and says so.
    again = _import(engine, path, tmp_path)
    assert again["status"] == "unchanged"
    assert _count(engine, "SELECT count(*) FROM village") == n + 1


def test_changed_file_updates_only_what_changed(engine, df, tmp_path):
    rows = _rows(df)
    rows[0][5] = "999"
    rows[1][0] = "改名村"
    s = _import(engine, write_csv(tmp_path / "v2.csv", rows, encoding="utf-8-sig"), tmp_path)
    assert s["encoding"] == "utf-8-sig"
    assert s["counts"]["updated"] == 2 and s["counts"]["inserted"] == 0
    assert s["counts"]["unchanged"] == len(df) - 1
    assert _count(engine, "SELECT households FROM village WHERE code = :c", c=df.code[0]) == 999


def test_xlsx_same_content(engine, df, tmp_path):
    rows = _rows(df)
    rows[0][5] = "999"
    rows[1][0] = "改名村"
    s = _import(engine, write_xlsx(tmp_path / "v.xlsx", rows), tmp_path)
    assert s["header_line"] == 2 and s["counts"]["rejected"] == 5
    # Same values as the CSV just loaded: XLSX numbers are read back as the same text.
    assert s["counts"]["updated"] == 0 and s["counts"]["unchanged"] == len(df) + 1


def test_failure_mid_load_leaves_database_unchanged(engine, df, tmp_path, monkeypatch):
    before = _count(engine, "SELECT md5(string_agg(v::text, ',' ORDER BY code)) FROM village v")
    rows = _rows(df)
    rows[2][5] = "12345"

    def broken(cur, spec, run_id):
        load_upsert(cur, spec, run_id)
        raise RuntimeError("disk full")

    load_upsert = load.upsert
    monkeypatch.setattr(load, "upsert", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _import(engine, write_csv(tmp_path / "v3.csv", rows), tmp_path)
    assert _count(engine, "SELECT md5(string_agg(v::text, ',' ORDER BY code)) FROM village v") == before
    assert _count(engine, "SELECT status FROM import_run ORDER BY id DESC LIMIT 1") == "failed"


def test_villages_without_points_are_kept(engine, tmp_path):
    path = tmp_path / "nopoint.csv"
    path.write_text("code,name\n640121888001,无坐标村\n", encoding="utf-8")
    s = run_import(engine, kind="villages", path=path, user="u", rejects_dir=tmp_path)
    assert s["counts"]["inserted"] == 1
    with engine.connect() as c:
        row = c.execute(text("SELECT geom, coord_level, county_code, township_code FROM village"
                             " WHERE code = '640121888001'")).one()
    assert tuple(row) == (None, "none", "640121", "640121888")


def test_unreadable_and_missing_columns(engine, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(BadInput, match="required field.*code.*columns found: foo, bar"):
        run_import(engine, kind="villages", path=path, user="u", rejects_dir=tmp_path)
    bad = tmp_path / "x.xlsx"
    bad.write_bytes(b"not a workbook")
    with pytest.raises(BadInput, match="cannot be read as an XLSX"):
        run_import(engine, kind="villages", path=bad, user="u", rejects_dir=tmp_path)
    assert _count(engine, "SELECT status FROM import_run ORDER BY id DESC LIMIT 1") == "failed"


def test_only_rejects_is_status_rejected_with_zero_inserted(engine, tmp_path):
    path = tmp_path / "allbad.csv"
    path.write_text("code,name\n123,坏村\n", encoding="utf-8")
    s = run_import(engine, kind="villages", path=path, user="u", rejects_dir=tmp_path)
    assert s["status"] == "rejected" and s["counts"]["inserted"] == 0 and s["counts"]["rejected"] == 1
    assert s["message"].startswith("nothing was imported: all 1 rows were rejected (1 × must be 12 digits)")
    assert _count(engine, f"SELECT status FROM import_run WHERE id = {s['run_id']}") == "rejected"


def test_same_file_read_differently_is_imported_again(engine, tmp_path):
    path = tmp_path / "crs.csv"
    path.write_text("code,name,lon,lat\n640121777001,坐标村,106.3,38.3\n", encoding="utf-8")
    first = run_import(engine, kind="villages", path=path, user="u", rejects_dir=tmp_path)
    assert first["counts"]["inserted"] == 1
    # The planner notices the points were Amap (GCJ-02): the same bytes must load again.
    fixed = run_import(engine, kind="villages", path=path, user="u", rejects_dir=tmp_path, crs="gcj02")
    assert fixed["status"] == "ok" and fixed["counts"]["updated"] == 1
    again = run_import(engine, kind="villages", path=path, user="u", rejects_dir=tmp_path, crs="gcj02")
    assert again["status"] == "unchanged"


def test_ragged_rows_count_as_rows_of_the_file(engine, tmp_path):
    """Rows with too many cells were rejected but not counted as rows: 3 rejected of 2 rows."""
    path = tmp_path / "ragged.csv"
    path.write_text("code,name\n123,坏村\n640121100009,多,余\n640121100010,好村,多,余\n", encoding="utf-8")
    s = run_import(engine, kind="villages", path=path, user="u", rejects_dir=tmp_path)
    assert s["counts"]["rows"] == 3 and s["counts"]["rejected"] == 3 and s["status"] == "rejected"
    assert s["rejected_reasons"] == {"must be 12 digits": 1, "wrong number of cells": 2}
    assert "all 3 rows were rejected" in s["message"] and "To fix" not in s["message"]
