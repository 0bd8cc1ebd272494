"""The territories and cells CSV downloads neutralise spreadsheet formulas (issue 13: =HYPERLINK verbatim)."""

from __future__ import annotations

import csv
import io

from sqlalchemy import text

from geodata.csvsafe import safe_text

PAYLOAD = '=HYPERLINK("http://evil.example","点我")'


def _rows(r) -> list[dict]:
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    for row in rows:
        for cell in row:
            assert safe_text(cell) == cell, f"formula cell {cell!r}"
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_territories_csv_quotes_a_formula_rm_name(client, auth, data, engine):
    with engine.begin() as c:
        c.execute(text("UPDATE rm SET name = :n WHERE code = 'RA1'"), {"n": PAYLOAD})
    try:
        r = client.get(f"/api/v1/grids/{data['grid_a']}/export", params={"format": "csv", "layer": "territories"},
                       headers=auth("planner_a"))
        assert r.status_code == 200, r.text
        rows = {row["rm_code"]: row for row in _rows(r)}
        assert rows["RA1"]["rm_name"] == "'" + PAYLOAD
        assert float(rows["RA1"]["lon"]) > 0
    finally:
        with engine.begin() as c:
            c.execute(text("UPDATE rm SET name = 'RA1' WHERE code = 'RA1'"))


def test_cells_csv_has_no_formula_cells(client, auth, data, engine):
    with engine.begin() as c:
        c.execute(text("UPDATE cell SET label = '@SUM(A1)' WHERE grid_id = :g AND cell_id = 'a1'"), {"g": data["grid_a"]})
    r = client.get(f"/api/v1/grids/{data['grid_a']}/export", params={"format": "csv", "layer": "cells"},
                   headers=auth("analyst_a"))
    assert r.status_code == 200, r.text
    rows = {row["cell_id"]: row for row in _rows(r)}
    assert rows["a1"]["label"] == "'@SUM(A1)"
