"""The RM workbook read with openpyxl: four sheets (not one per RM), Chinese and English headers, number
formats, real datetimes in China time, frozen headers, autofilters, widths, village names, totals."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy import text

SHEETS = ["汇总 Summary", "客户 Customers", "网格 Cells", "说明 About"]


@pytest.fixture(scope="module")
def dated(engine, data):
    """CA1 opened on a date, living in a named village; a visit time on cell a1; a big balance."""
    with engine.begin() as c:
        c.execute(text("UPDATE village SET name = '望远村' WHERE code = '640104001002'"))
        c.execute(text("UPDATE customer SET opened_on = '2021-05-06', village_code = '640104001002',"
                       " deposit_balance = 88100563.79 WHERE customer_id = 'CA1'"))
        c.execute(text("UPDATE cell SET village_codes = '{640104001002}' WHERE grid_id = :g AND cell_id = 'a1'"),
                  {"g": data["grid_a"]})
        c.execute(text("UPDATE cell_stat SET last_visit_at = '2026-03-04 01:30:00+00', deposit = 88100563.79"
                       " WHERE grid_id = :g AND cell_id = 'a1'"), {"g": data["grid_a"]})
    return data


def _book(client, auth, who, gid):
    r = client.get(f"/api/v1/grids/{gid}/export", params={"format": "xlsx"}, headers=auth(who))
    assert r.status_code == 200, r.text
    return openpyxl.load_workbook(io.BytesIO(r.content)), r


def _rows(ws) -> list[dict]:
    """Data rows under the English header row, keyed by the English header."""
    en = [c.value for c in ws[2]]
    return [{h: cell for h, cell in zip(en, row, strict=True)} for row in ws.iter_rows(min_row=3)]


def test_a_few_sheets_with_bilingual_frozen_filtered_headers(client, auth, dated):
    wb, r = _book(client, auth, "planner_a", dated["grid_a"])
    assert wb.sheetnames == SHEETS  # was a summary and one sheet per RM
    assert len(r.content) < 100_000
    for name in SHEETS[:3]:
        ws = wb[name]
        assert ws.freeze_panes == "A3", name
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A2:"), name
        assert all(ws.column_dimensions[col].width >= 8 for col in ("A", "B", "C")), name
    customers = wb["客户 Customers"]
    assert [c.value for c in customers[1]][:8] == ["客户经理编号", "网格编号", "村代码", "村名", "客户号", "姓名", "电话",
                                                   "证件号码"]
    assert [c.value for c in customers[2]][:3] == ["RM code", "cell", "village code"]
    assert "RM name" not in [c.value for c in customers[2]]  # on the summary, not on every customer row
    assert [c.value for c in wb["汇总 Summary"][2]][:2] == ["RM code", "RM name"]
    about = [c.value for row in wb["说明 About"].iter_rows() for c in row if c.value is not None]
    assert "存款余额（元）" in about and "deposit balance (yuan)" in about  # the glossary


@pytest.mark.parametrize("who", ["planner_a", "analyst_a"])
def test_customers_typed_formatted_masked_and_named(client, auth, dated, who):
    wb, _ = _book(client, auth, who, dated["grid_a"])
    rows = {row["customer id"].value: row for row in _rows(wb["客户 Customers"])}
    assert set(rows) == {"CA1", "CA2"}
    ca1 = rows["CA1"]
    assert ca1["RM code"].value == "RA1" and ca1["cell"].value == "a1"
    assert ca1["village code"].value == "640104001002" and ca1["village"].value == "望远村"
    assert ca1["name"].value == "张*" and ca1["phone"].value == "138****1234"
    assert ca1["deposit balance (yuan)"].value == pytest.approx(88100563.79)
    assert ca1["deposit balance (yuan)"].number_format == "#,##0.00"
    assert isinstance(ca1["opened on"].value, dt.datetime) and ca1["opened on"].value.date() == dt.date(2021, 5, 6)
    assert ca1["opened on"].number_format == "yyyy-mm-dd"
    assert ca1["customer id"].data_type == "s"


def test_cells_counts_integers_and_china_time(client, auth, dated):
    wb, _ = _book(client, auth, "planner_a", dated["grid_a"])
    rows = {row["cell"].value: row for row in _rows(wb["网格 Cells"])}
    a1 = rows["a1"]
    assert a1["RM code"].value == "RA1" and a1["villages"].value == "望远村"
    assert a1["customers"].value == 1 and a1["customers"].number_format == "#,##0"
    assert a1["households (apportioned ≈)"].number_format == "#,##0"
    # 01:30 UTC is 09:30 in Asia/Shanghai, written as an Excel datetime, not text.
    assert a1["last visit"].value == dt.datetime(2026, 3, 4, 9, 30)
    assert a1["last visit"].number_format == "yyyy-mm-dd hh:mm"
    assert a1["deposits (yuan)"].number_format == "#,##0.00"


def test_summary_has_a_row_per_rm_and_totals(client, auth, dated):
    wb, _ = _book(client, auth, "planner_a", dated["grid_a"])
    ws = wb["汇总 Summary"]
    rows = _rows(ws)
    assert [r["RM code"].value for r in rows] == ["RA1", "RA2", "合计 Total"]
    total = rows[-1]
    assert total["cells"].value == 2 and total["customers"].value == 2
    assert total["deposits (yuan)"].value == pytest.approx(88100563.79 + 1000)
    assert total["deposits (yuan)"].number_format == "#,##0.00" and total["RM code"].font.b
    assert ws.auto_filter.ref == f"A2:{ws.cell(2, ws.max_column).column_letter}4"  # the RM rows, not the total


def test_an_rm_sees_only_their_rows_unmasked(client, auth, dated):
    wb, _ = _book(client, auth, "rm_a1", dated["grid_a"])
    assert [r["RM code"].value for r in _rows(wb["汇总 Summary"])] == ["RA1", "合计 Total"]
    customers = _rows(wb["客户 Customers"])
    assert [r["customer id"].value for r in customers] == ["CA1"] and customers[0]["name"].value == "张三"
    assert {r["cell"].value for r in _rows(wb["网格 Cells"])} == {"a1"}


def test_column_values_missing_and_zones():
    """Missing and non-finite numbers are empty cells; aware times are China time, naive ones read as China time."""
    import pandas as pd

    from geodata.reads.workbook import CUSTOMER_KEYS
    from geodata.workbook import CUSTOMER_COLUMNS, _column_values

    assert [k for k, *_ in CUSTOMER_COLUMNS] == CUSTOMER_KEYS  # what is read is what is written

    assert _column_values(pd.Series([1.6, None, float("nan"), float("inf"), "x"]), "int") == [2, None, None, None, None]
    assert _column_values(pd.Series([1234.5, None], dtype=object), "money") == [1234.5, None]
    aware = pd.Series([pd.Timestamp("2026-03-04 01:30", tz="UTC"), None])
    assert _column_values(aware, "datetime") == [dt.datetime(2026, 3, 4, 9, 30), None]
    naive = pd.Series([dt.datetime(2026, 3, 4, 9, 30)])
    assert _column_values(naive, "datetime") == [dt.datetime(2026, 3, 4, 9, 30)]
    assert _column_values(pd.Series([dt.date(2021, 5, 6), None]), "date") == [dt.datetime(2021, 5, 6), None]
    assert _column_values(pd.Series(["640104", None, float("nan")]), "text") == ["640104", None, None]
