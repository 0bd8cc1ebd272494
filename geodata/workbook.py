"""The RM workbook (Excel) that branch staff open: one file with a few sheets, not one sheet per RM.

Sheets: 汇总 Summary (one row per RM with totals), 客户 Customers (every customer of the RMs in scope,
the RM as a column), 网格 Cells (the RMs' cells with statistics and score), 说明 About (the grid, the
export time, and a glossary of every column). Headers are Chinese with the English name in a second
header row; amounts have thousands separators and 2 decimals, counts are integers, times are real
Excel datetimes in China time (Asia/Shanghai); header rows are frozen, every table has an autofilter,
and columns have widths. Village and township names stand beside their codes.

Which RMs and customers go in follows a :class:`geodata.scope.Scope`; masking personal data is the
caller's job (``api.masking``), on the ``name``, ``phone`` and ``id_number`` columns of ``customers``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.exports_grid import cells_layer
from geodata.scope import Scope, where

CHINA_TZ = "Asia/Shanghai"
# One sheet holds at most 1,048,576 rows; two are headers.
CUSTOMER_LIMIT = 1_000_000
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
CUSTOMER_COLUMNS = [
    ("rm_code", "客户经理编号", "RM code", "text"),
    ("rm_name", "客户经理", "RM name", "text"),
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


@dataclass
class WorkbookData:
    """What goes in: the grid, a row per RM, their cells and their customers (``truncated`` past the limit)."""

    grid: dict
    summary: pd.DataFrame
    cells: pd.DataFrame
    customers: pd.DataFrame
    truncated: bool = False
    exported_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def workbook_data(conn: Connection, *, grid_id: int, scope: Scope, limit: int = CUSTOMER_LIMIT) -> WorkbookData:
    """The RMs ``scope`` may see that own cells of the grid, with their cells and their customers in scope."""
    rm_cond, cust_cond = where(scope, "rm", "r"), where(scope, "customer", "c")
    params = {**rm_cond.params, **cust_cond.params, "g": grid_id}
    grid = dict(conn.execute(text(
        "SELECT g.id, g.kind, g.resolution, g.county_code, co.name AS county_name FROM grid g"
        " JOIN county co ON co.adcode = g.county_code WHERE g.id = :g"), {"g": grid_id}).mappings().one())
    rms = pd.DataFrame([dict(r) for r in conn.execute(text(
        "SELECT DISTINCT r.code AS rm_code, r.name AS rm_name, r.outlet_code, o.name AS outlet_name"
        " FROM territory t JOIN rm r ON r.code = t.rm_code LEFT JOIN outlet o ON o.code = r.outlet_code"
        f" WHERE t.grid_id = :g AND t.role = 'owner' AND t.valid_to IS NULL AND {rm_cond.sql}"
        " ORDER BY r.code"), params).mappings()], columns=["rm_code", "rm_name", "outlet_code", "outlet_name"])
    cells = cells_layer(conn, grid_id=grid_id)
    cells = pd.DataFrame(cells[cells["owner_rm"].isin(set(rms["rm_code"]))].drop(columns="geometry"))
    cells = cells.assign(owner_name=cells["owner_rm"].map(dict(zip(rms["rm_code"], rms["rm_name"], strict=True))))
    cells = _with_place_names(conn, cells).sort_values(["owner_rm", "cell_id"]).reset_index(drop=True)
    rows = conn.execute(text(
        "SELECT t.rm_code, r.name AS rm_name, cc.cell_id, c.village_code,"
        " v.name AS village_name, c.customer_id, c.name, c.phone, c.id_number, c.segment,"
        " c.deposit_balance::float8 AS deposit_balance, c.loan_balance::float8 AS loan_balance, c.opened_on"
        " FROM customer c JOIN customer_cell cc ON cc.customer_id = c.customer_id AND cc.grid_id = :g"
        " JOIN territory t ON t.grid_id = cc.grid_id AND t.cell_id = cc.cell_id AND t.role = 'owner'"
        " AND t.valid_to IS NULL"
        " JOIN rm r ON r.code = t.rm_code"
        " LEFT JOIN village v ON v.code = c.village_code"
        f" WHERE {rm_cond.sql} AND {cust_cond.sql}"
        " ORDER BY t.rm_code, cc.cell_id, c.customer_id LIMIT :lim"), {**params, "lim": limit + 1}).mappings().all()
    customers = pd.DataFrame([dict(r) for r in rows[:limit]], columns=[k for k, *_ in CUSTOMER_COLUMNS])
    summary = _summary(rms, cells, customers)
    return WorkbookData(grid=grid, summary=summary, cells=cells, customers=customers, truncated=len(rows) > limit)


def _with_place_names(conn: Connection, cells: pd.DataFrame) -> pd.DataFrame:
    """Township and village names beside their codes."""
    codes = sorted({v for vs in cells["village_codes"] if isinstance(vs, list | tuple) for v in vs})
    townships = sorted({t for t in cells["township_code"] if isinstance(t, str)})
    villages = dict(conn.execute(text("SELECT code, name FROM village WHERE code = ANY(:c)"), {"c": codes}).all())
    towns = dict(conn.execute(text("SELECT code, name FROM township WHERE code = ANY(:c)"), {"c": townships}).all())

    def join(values, names) -> str | None:
        if not isinstance(values, list | tuple) or not values:
            return None
        return "、".join(names.get(v, v) for v in values)

    return cells.assign(
        village_names=[join(v, villages) for v in cells["village_codes"]],
        village_codes=[join(v, {}) for v in cells["village_codes"]],
        township_name=cells["township_code"].map(towns),
    )


def _summary(rms: pd.DataFrame, cells: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    def total(col: str) -> pd.Series:
        return pd.to_numeric(cells[col], errors="coerce").fillna(0).groupby(cells["owner_rm"]).sum()

    out = rms.copy()
    out["cells"] = out["rm_code"].map(cells.groupby("owner_rm").size()).fillna(0).astype(int)
    for col in ("customers", "households", "deposit", "loan", "area_km2"):
        out[col] = out["rm_code"].map(total(col)).fillna(0.0)
    out["customers_listed"] = out["rm_code"].map(customers.groupby("rm_code").size()).fillna(0).astype(int)
    return out


def write_workbook(path: Path, data: WorkbookData) -> Path:
    """Write ``data`` as the RM workbook (xlsxwriter, rows streamed: constant memory at any size)."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_urls": False,
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
    _table(wb.add_worksheet(SHEETS[0]), SUMMARY_COLUMNS, summary, head_zh, head_en, formats,
           total=(totals, bold))
    _table(wb.add_worksheet(SHEETS[1]), CUSTOMER_COLUMNS, data.customers, head_zh, head_en, formats)
    _table(wb.add_worksheet(SHEETS[2]), CELL_COLUMNS, data.cells, head_zh, head_en, formats)
    _about(wb.add_worksheet(SHEETS[3]), data, head_zh, formats)
    wb.close()
    return path


def _table(ws, columns, df: pd.DataFrame, head_zh, head_en, formats, total=None) -> None:
    """Two header rows (中文, English), frozen, an autofilter, widths, then one typed row per record."""
    ws.set_row(0, 30)
    # Rows are streamed (constant_memory): each row is written whole before the next one starts.
    for c, (key, zh, en, kind) in enumerate(columns):
        ws.set_column(c, c, _width(zh, en, df[key] if key in df else None, kind))
    ws.write_row(0, 0, [zh for _, zh, _, _ in columns], head_zh)
    ws.write_row(1, 0, [en for _, _, en, _ in columns], head_en)
    ws.freeze_panes(2, 0)
    ws.ignore_errors({"number_stored_as_text": "A1:XFD1048576"})  # codes and ids are text on purpose
    last = 1 + len(df)
    ws.autofilter(1, 0, max(last, 1), len(columns) - 1)
    keys = [k for k, *_ in columns]
    kinds = [kind for *_, kind in columns]
    frame = df.reindex(columns=keys)
    # Values converted a column at a time (None where missing); then one typed write per present value.
    columns_ = [_column_values(frame[k], kind) for k, kind in zip(keys, kinds, strict=True)]
    writers = [_WRITER.get(kind, "write_string") for kind in kinds]
    calls = [(getattr(ws, w), formats.get(kind)) for w, kind in zip(writers, kinds, strict=True)]
    for r, values in enumerate(zip(*columns_, strict=True), start=2):
        for c, v in enumerate(values):
            if v is not None:
                write, fmt = calls[c]
                write(r, c, v, fmt)
    if total is not None:
        values, fmts = total
        for c, (key, kind) in enumerate(zip(keys, kinds, strict=True)):
            if key in values:
                _cell(ws, last + 1, c, values[key], kind, fmts)


_WRITER = {"int": "write_number", "money": "write_number", "num2": "write_number", "score": "write_number",
           "datetime": "write_datetime", "date": "write_datetime", "bool": "write_boolean"}


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
