"""The RM workbook (Excel) that branch staff open: one file with a few sheets, not one sheet per RM.

Sheets: 汇总 Summary (one row per RM with totals), 客户 Customers (every customer of the RMs in scope,
the RM as a column), 网格 Cells (the RMs' cells with statistics and score), 说明 About (the grid, the
export time, and a glossary of every column). Headers are Chinese with the English name in a second
header row; amounts have thousands separators and 2 decimals, counts are integers, times are real
Excel datetimes in China time (Asia/Shanghai); header rows are frozen, every table has an autofilter,
and columns have widths. Village and township names stand beside their codes.

What goes in is read by :func:`geodata.reads.workbook.workbook_data` (the RMs, cells and customers a
:class:`geodata.scope.Scope` may see); masking personal data is the caller's job (``api.masking``), on the
``name``, ``phone`` and ``id_number`` columns of ``customers``.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from geodata.reads.workbook import CUSTOMER_LIMIT, WorkbookData
from geodata.xlsxrows import Table, splice_rows

CHINA_TZ = "Asia/Shanghai"
# (key, 中文, English, format); formats: text, int, money, num2, score, datetime, date, bool.
SUMMARY_COLUMNS = [
    ("rm_code", "客户经理编号", "RM code", "text"),
    ("rm_name", "客户经理", "RM name", "text"),
    ("outlet_code", "网点编号", "outlet code", "text"),
    ("outlet_name", "网点", "outlet", "text"),
    ("cells", "网格数", "cells", "int"),
    ("customers", "客户数", "customers", "int"),
    ("households", "户数（估）", "households (apportioned ≈)", "int"),
    ("deposit", "存款余额（元）", "deposits (yuan)", "money"),
    ("loan", "贷款余额（元）", "loans (yuan)", "money"),
    ("area_km2", "面积（平方公里）", "area (km²)", "num2"),
    ("customers_listed", "客户表行数", "rows in Customers", "int"),
]
# The RM's name is on 汇总 Summary, beside the code: not repeated on every customer row (one column of
# 100,000 cells fewer for a spreadsheet to load).
CUSTOMER_COLUMNS = [
    ("rm_code", "客户经理编号", "RM code", "text"),
    ("cell_id", "网格编号", "cell", "text"),
    ("village_code", "村代码", "village code", "text"),
    ("village_name", "村名", "village", "text"),
    ("customer_id", "客户号", "customer id", "text"),
    ("name", "姓名", "name", "text"),
    ("phone", "电话", "phone", "text"),
    ("id_number", "证件号码", "ID number", "text"),
    ("segment", "客群", "segment", "text"),
    ("deposit_balance", "存款余额（元）", "deposit balance (yuan)", "money"),
    ("loan_balance", "贷款余额（元）", "loan balance (yuan)", "money"),
    ("opened_on", "开户日期", "opened on", "date"),
]
CELL_COLUMNS = [
    ("owner_rm", "客户经理编号", "RM code", "text"),
    ("owner_name", "客户经理", "RM name", "text"),
    ("cell_id", "网格编号", "cell", "text"),
    ("label", "网格名称", "cell name", "text"),
    ("township_code", "乡镇代码", "township code", "text"),
    ("township_name", "乡镇", "township", "text"),
    ("village_codes", "村代码", "village codes", "text"),
    ("village_names", "村名", "villages", "text"),
    ("customers", "客户数", "customers", "int"),
    ("households", "户数（估）", "households (apportioned ≈)", "int"),
    ("population", "人口（估）", "population (apportioned ≈)", "int"),
    ("deposit", "存款余额（元）", "deposits (yuan)", "money"),
    ("loan", "贷款余额（元）", "loans (yuan)", "money"),
    ("visits_90d", "90天走访次数", "visits in 90 days", "int"),
    ("customers_visited_90d", "90天走访客户数", "customers visited in 90 days", "int"),
    ("last_visit_at", "最近走访时间", "last visit", "datetime"),
    ("area_km2", "面积（平方公里）", "area (km²)", "num2"),
    ("locked", "锁定", "locked", "bool"),
    ("score", "空白评分", "gap score", "score"),
    ("gap_class", "空白等级", "gap class", "text"),
    ("reason_zh", "原因", "reason (zh)", "text"),
    ("reason_en", "原因（英文）", "reason (en)", "text"),
]
NUMBER_FORMATS = {"int": "#,##0", "money": "#,##0.00", "num2": "#,##0.00", "score": "0.0",
                  "datetime": "yyyy-mm-dd hh:mm", "date": "yyyy-mm-dd"}
SHEETS = ("汇总 Summary", "客户 Customers", "网格 Cells", "说明 About")


def write_workbook(path: Path, data: WorkbookData) -> Path:
    """Write ``data`` as the RM workbook: xlsxwriter writes the frame, the rows are streamed in (``xlsxrows``)."""
    import xlsxwriter

    frame = io.BytesIO()
    wb = xlsxwriter.Workbook(frame, {"in_memory": True, "strings_to_urls": False,
                                     "strings_to_formulas": False, "strings_to_numbers": False})
    head_zh = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True,
                             "valign": "vcenter"})
    head_en = wb.add_format({"italic": True, "font_color": "#595959", "bg_color": "#F2F2F2", "border": 1,
                             "text_wrap": True})
    formats = {kind: wb.add_format({"num_format": f}) for kind, f in NUMBER_FORMATS.items()}
    bold = {kind: wb.add_format({"bold": True, "num_format": f, "top": 1}) for kind, f in NUMBER_FORMATS.items()}
    bold["text"] = wb.add_format({"bold": True, "top": 1})

    summary = data.summary
    totals = {"rm_code": "合计 Total", **{k: summary[k].sum() for k, _, _, kind in SUMMARY_COLUMNS
                                          if kind in ("int", "money", "num2")}}
    tables = [
        _table(wb.add_worksheet(SHEETS[0]), SUMMARY_COLUMNS, summary, head_zh, head_en, formats,
               total=(totals, bold)),
        _table(wb.add_worksheet(SHEETS[1]), CUSTOMER_COLUMNS, data.customers, head_zh, head_en, formats),
        _table(wb.add_worksheet(SHEETS[2]), CELL_COLUMNS, data.cells, head_zh, head_en, formats),
    ]
    _about(wb.add_worksheet(SHEETS[3]), data, head_zh, formats)
    wb.close()
    with zipfile.ZipFile(frame) as z:
        return splice_rows(z, path, tables)


def _table(ws, columns, df: pd.DataFrame, head_zh, head_en, formats, total=None) -> Table:
    """Two header rows (中文, English), frozen, an autofilter, widths and number formats by column; the
    data rows are returned as a :class:`Table` to stream in; a total row, if any, below them."""
    ws.set_row(0, 30)
    for c, (key, zh, en, kind) in enumerate(columns):
        ws.set_column(c, c, _width(zh, en, df[key] if key in df else None, kind), formats.get(kind))
    ws.write_row(0, 0, [zh for _, zh, _, _ in columns], head_zh)
    ws.write_row(1, 0, [en for _, _, en, _ in columns], head_en)
    ws.freeze_panes(2, 0)
    ws.ignore_errors({"number_stored_as_text": "A1:XFD1048576"})  # codes and ids are text on purpose
    last = 1 + len(df)
    ws.autofilter(1, 0, max(last, 1), len(columns) - 1)
    keys = [k for k, *_ in columns]
    kinds = [kind for *_, kind in columns]
    frame = df.reindex(columns=keys).reset_index(drop=True)
    if total is not None:
        values, fmts = total
        for c, (key, kind) in enumerate(zip(keys, kinds, strict=True)):
            if key in values:
                _cell(ws, last + 1, c, values[key], kind, fmts)

    def column(c: int, start: int, stop: int) -> list:
        return _column_values(frame[keys[c]].iloc[start:stop], kinds[c])

    return Table(sheet=ws.name, kinds=kinds, rows=len(frame), column=column)


def _column_values(col: pd.Series, kind: str) -> list:
    """A column as the Python values xlsxwriter writes, None where missing (or not a finite number)."""
    if kind in ("int", "money", "num2", "score"):
        x = pd.to_numeric(col, errors="coerce").astype("float64")
        x = x.where(np.isfinite(x))
        if kind == "int":
            x = x.round()
        return [None if v != v else (int(v) if kind == "int" else v) for v in x.tolist()]
    if kind == "datetime":
        try:
            ts = pd.to_datetime(col)
        except (TypeError, ValueError):  # several zones in one column
            ts = pd.to_datetime(col, utc=True)
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize(CHINA_TZ)
        ts = ts.dt.tz_convert(CHINA_TZ).dt.tz_localize(None)  # Excel has no zones: China time
        return [None if pd.isna(v) else v.to_pydatetime() for v in ts]
    if kind == "date":
        d = pd.to_datetime(col, errors="coerce")
        return [None if pd.isna(v) else v.to_pydatetime() for v in d]
    if kind == "bool":
        return [None if _missing(v) else bool(v) for v in col.tolist()]
    return [None if _missing(v) else str(v) for v in col.tolist()]


def _missing(v) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _cell(ws, r: int, c: int, v, kind: str, formats) -> None:
    if _missing(v):
        return
    fmt = formats.get(kind)
    if kind in ("int", "money", "num2", "score"):
        x = float(v)
        if math.isfinite(x):
            ws.write_number(r, c, round(x) if kind == "int" else x, fmt)
    elif kind == "datetime":
        ts = pd.Timestamp(v)
        ts = ts.tz_localize(CHINA_TZ) if ts.tzinfo is None else ts.tz_convert(CHINA_TZ)
        ws.write_datetime(r, c, ts.tz_localize(None).to_pydatetime(), fmt)  # Excel has no zones: China time
    elif kind == "date":
        d = v if isinstance(v, dt.date) else pd.Timestamp(v).date()
        ws.write_datetime(r, c, dt.datetime(d.year, d.month, d.day), fmt)
    elif kind == "bool":
        ws.write_boolean(r, c, bool(v), fmt)
    else:
        ws.write_string(r, c, str(v), fmt)


def _text_width(s: str) -> float:
    return sum(2.0 if ord(ch) > 0x2E7F else 1.1 for ch in s)


def _width(zh: str, en: str, values: pd.Series | None, kind: str) -> float:
    """Column width from the headers and the first values (CJK characters count double)."""
    width = max(_text_width(zh), _text_width(en) * 0.9)
    if kind == "money":
        width = max(width, 16)
    elif kind in ("datetime", "date"):
        width = max(width, 17 if kind == "datetime" else 11)
    elif values is not None and kind == "text" and len(values):
        sample = values.head(500).dropna().astype(str)
        if len(sample):
            width = max(width, float(sample.map(_text_width).quantile(0.95)))
    return min(max(width + 1, 8), 50)


def _about(ws, data: WorkbookData, head, formats) -> None:
    g = data.grid
    ws.set_column(0, 0, 18)
    ws.set_column(1, 1, 26)
    ws.set_column(2, 2, 30)
    ws.set_column(3, 3, 60)
    kind = {"h3": "H3 六边形 hexagons", "village": "村网格 village cells"}.get(g["kind"], g["kind"])
    rows = [
        ("网格 grid", f"{g['id']}"),
        ("区县 county", f"{g['county_name']} ({g['county_code']})"),
        ("网格类型 kind", kind + (f", res {g['resolution']}" if g.get("resolution") is not None else "")),
    ]
    for r, (k, v) in enumerate(rows):
        ws.write_string(r, 0, k, head)
        ws.write_string(r, 1, v)
    ws.write_string(len(rows), 0, "导出时间 exported", head)
    exported = pd.Timestamp(data.exported_at).tz_convert(CHINA_TZ).tz_localize(None).to_pydatetime()
    ws.write_datetime(len(rows), 1, exported, formats["datetime"])
    notes = ["时间均为北京时间 (Asia/Shanghai). Times are China time.",
             "户数、人口按村分摊，为估计值 (≈). Households and population are apportioned estimates.",
             "规划、分析角色导出的姓名、电话、证件号已脱敏. Names, phones and ID numbers are masked for planners"
             " and analysts."]
    if data.truncated:
        notes.append(f"客户表只列出前 {CUSTOMER_LIMIT:,} 行. Customers lists the first {CUSTOMER_LIMIT:,} rows only.")
    r = len(rows) + 2
    for note in notes:
        ws.write_string(r, 0, note)
        r += 1
    r += 1
    ws.write_row(r, 0, ("工作表 sheet", "中文列名 column", "English column", "格式 format"), head)
    described = {"text": "文本 text", "int": "整数 integer", "money": "金额，两位小数 amount, 2 decimals",
                 "num2": "两位小数 2 decimals", "score": "一位小数 1 decimal", "datetime": "日期时间 date and time",
                 "date": "日期 date", "bool": "是/否 TRUE/FALSE"}
    for sheet, columns in zip(SHEETS, (SUMMARY_COLUMNS, CUSTOMER_COLUMNS, CELL_COLUMNS), strict=False):
        for _, zh, en, kind_ in columns:
            r += 1
            for c, v in enumerate((sheet, zh, en, described[kind_])):
                ws.write_string(r, c, v)
