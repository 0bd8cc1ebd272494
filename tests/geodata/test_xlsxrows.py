"""The RM workbook's rows as streamed by geodata.xlsxrows, read back with openpyxl (whole and read-only): values
in the right columns around missing ones, types and column formats, shared strings (no inline strings), few
cell references, odd text kept, and a file smaller than xlsxwriter's own constant_memory writing."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import openpyxl
import pandas as pd
import pytest

from geodata.reads.workbook import CUSTOMER_KEYS, WorkbookData
from geodata.workbook import SHEETS, write_workbook

GRID = {"id": 7, "kind": "h3", "resolution": 8, "county_code": "640121", "county_name": "永宁县"}


def _customers(n: int) -> pd.DataFrame:
    rows = [{"rm_code": f"R{i % 3}", "cell_id": f"88{i // 7:013x}",
             "village_code": f"640121{i % 40:06d}", "village_name": f"村{i % 40}", "customer_id": f"C{i:09d}",
             "name": "张三", "phone": f"138{i:08d}", "id_number": f"640121{i:012d}", "segment": "farmer",
             "deposit_balance": 1000.5 + i, "loan_balance": 0.0, "opened_on": dt.date(2020, 1, 1)} for i in range(n)]
    return pd.DataFrame(rows, columns=CUSTOMER_KEYS)


def _data(customers: pd.DataFrame) -> WorkbookData:
    summary = pd.DataFrame({"rm_code": ["R0"], "rm_name": ["经理0"], "outlet_code": ["O1"], "outlet_name": ["网点"],
                            "cells": [1], "customers": [len(customers)], "households": [3.4], "deposit": [1e6],
                            "loan": [0.0], "area_km2": [0.74], "customers_listed": [len(customers)]})
    cells = pd.DataFrame({"owner_rm": ["R0"], "owner_name": ["经理0"], "cell_id": ["88aa"], "label": ["a"],
                          "customers": [2], "households": [3.4], "locked": [True], "score": [41.25],
                          "last_visit_at": [pd.Timestamp("2026-03-04 01:30", tz="UTC")]})
    return WorkbookData(grid=GRID, summary=summary, cells=cells, customers=customers,
                        exported_at=dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC))


@pytest.fixture
def odd(tmp_path):
    """Missing values at the start, middle and end of rows; text needing escapes; a control character."""
    c = _customers(3)
    c.loc[0, "rm_code"] = None  # the first cell missing
    c.loc[1, ["phone", "id_number"]] = None  # a gap in the middle
    c.loc[1, "name"] = " <A&B> "
    c.loc[2, "opened_on"] = None  # last cell missing
    c.loc[2, "name"] = "tab\there\x01bell"
    c.loc[2, "deposit_balance"] = 88100563.79
    return write_workbook(tmp_path / "odd.xlsx", _data(c))


@pytest.mark.parametrize("read_only", [False, True])
def test_values_land_in_their_columns_typed_and_formatted(odd, read_only):
    wb = openpyxl.load_workbook(odd, read_only=read_only)
    assert wb.sheetnames == list(SHEETS)
    rows = list(wb["客户 Customers"].iter_rows(min_row=3, values_only=True))
    assert len(rows) == 3
    en = [c.value for c in next(wb["客户 Customers"].iter_rows(min_row=2, max_row=2))]
    r0, r1, r2 = ({h: v for h, v in zip(en, row, strict=False)} for row in rows)
    assert r0["RM code"] is None and r0["cell"] == "88" + "0" * 13
    assert r0["customer id"] == "C000000000" and r0["opened on"] == dt.datetime(2020, 1, 1)
    assert r1["phone"] is None and r1["ID number"] is None and r1["name"] == " <A&B> "
    assert r1["segment"] == "farmer" and r1["deposit balance (yuan)"] == 1001.5 and r1["loan balance (yuan)"] == 0
    assert r2["opened on"] is None and r2["deposit balance (yuan)"] == 88100563.79
    assert r2["name"] == "tab\there_x0001_bell"  # Excel reads the escape back as \x01; openpyxl keeps it
    cells = {h: v for h, v in zip([c.value for c in next(wb["网格 Cells"].iter_rows(min_row=2, max_row=2))],
                                  next(wb["网格 Cells"].iter_rows(min_row=3, values_only=True)), strict=False)}
    assert cells["last visit"] == dt.datetime(2026, 3, 4, 9, 30)  # China time
    assert cells["locked"] is True and cells["gap score"] == 41.25 and cells["customers"] == 2


def test_formats_come_from_the_columns(odd):
    ws = openpyxl.load_workbook(odd)["客户 Customers"]
    formats = {ws.cell(2, c).value: ws.cell(3, c).number_format for c in range(1, ws.max_column + 1)}
    assert formats["deposit balance (yuan)"] == "#,##0.00" and formats["opened on"] == "yyyy-mm-dd"
    assert formats["customer id"] == "General" and ws["E3"].data_type == "s"
    assert ws.freeze_panes == "A3" and ws.auto_filter.ref == "A2:L5"
    assert ws.max_row == 5 and ws.max_column == 12


def test_shared_strings_and_few_cell_references(tmp_path):
    path = write_workbook(tmp_path / "c.xlsx", _data(_customers(500)))
    with zipfile.ZipFile(path) as z:
        sheet = z.read("xl/worksheets/sheet2.xml").decode()
        sst = z.read("xl/sharedStrings.xml").decode()
    assert "inlineStr" not in sheet
    assert '<dimension ref="A1:L502"/>' in sheet
    # Only the header rows (written by xlsxwriter) name their cells; data rows are counted.
    assert len(re.findall(r'<c r="', sheet)) == 24
    # Repeated text once in the table: 3 RM codes, 40 village names, one segment...
    assert sst.count("<t>farmer</t>") == 1 and sst.count("<t>村7</t>") == 1
    wb = openpyxl.load_workbook(path)
    assert [c.value for c in wb["客户 Customers"]["A"]][2:5] == ["R0", "R1", "R2"]


def test_smaller_than_inline_strings(tmp_path):
    """The same rows written cell by cell by xlsxwriter in constant_memory mode (how the workbook was written
    before) make a bigger file."""
    import xlsxwriter

    data = _data(_customers(5000))
    ours = write_workbook(tmp_path / "ours.xlsx", data).stat().st_size
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"constant_memory": True, "in_memory": True})
    ws = wb.add_worksheet()
    for r, row in enumerate(data.customers.astype(str).itertuples(index=False)):
        ws.write_row(r, 0, row)
    wb.close()
    assert ours < 0.7 * len(buf.getvalue())
