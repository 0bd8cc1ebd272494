"""What goes in the RM workbook (``geodata.workbook`` writes it): the RMs a scope may see that own cells
of a grid, their cells with statistics, score and place names, and their customers in scope.

Scope is applied in SQL (``geodata.scope.where`` on RMs and customers); nothing is fetched and dropped.
Personal data is returned as stored: masking is the caller's job (``api.masking``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.exports_grid import cells_layer
from geodata.scope import Scope, where

# One sheet holds at most 1,048,576 rows; two are headers.
CUSTOMER_LIMIT = 1_000_000
CUSTOMER_KEYS = ["rm_code", "cell_id", "village_code", "village_name", "customer_id", "name", "phone",
                 "id_number", "segment", "deposit_balance", "loan_balance", "opened_on"]


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
        "SELECT t.rm_code, cc.cell_id, c.village_code,"
        " v.name AS village_name, c.customer_id, c.name, c.phone, c.id_number, c.segment,"
        " c.deposit_balance::float8 AS deposit_balance, c.loan_balance::float8 AS loan_balance, c.opened_on"
        " FROM customer c JOIN customer_cell cc ON cc.customer_id = c.customer_id AND cc.grid_id = :g"
        " JOIN territory t ON t.grid_id = cc.grid_id AND t.cell_id = cc.cell_id AND t.role = 'owner'"
        " AND t.valid_to IS NULL"
        " JOIN rm r ON r.code = t.rm_code"
        " LEFT JOIN village v ON v.code = c.village_code"
        f" WHERE {rm_cond.sql} AND {cust_cond.sql}"
        " ORDER BY t.rm_code, cc.cell_id, c.customer_id LIMIT :lim"), {**params, "lim": limit + 1}).mappings().all()
    customers = pd.DataFrame([dict(r) for r in rows[:limit]], columns=CUSTOMER_KEYS)
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
