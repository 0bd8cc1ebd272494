"""Territories of a grid as a user may see them: each RM's cells, one RM's cells, ownership history.

An RM sees their own territory, a branch manager their outlets' RMs', the
roles of :data:`~geodata.reads.access.LE_WIDE` every RM's (``geodata.scope``
kind ``rm``). The condition is part of each statement; paging is too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.reads.access import LE_WIDE
from geodata.scope import Scope, where


def current(conn: Connection, *, scope: Scope, grid_id: int) -> list[dict[str, Any]]:
    """Current territory of each RM ``scope`` may see: owned and co-owned cells, customers, locked cells."""
    cond = where(scope, "rm", "r")
    rows = conn.execute(text(
        "SELECT r.code AS rm_code, r.outlet_code, t.role, array_agg(t.cell_id ORDER BY t.cell_id) AS cells,"
        " count(*) FILTER (WHERE l.cell_id IS NOT NULL) AS locked,"
        " coalesce(sum(s.customers), 0) AS customers FROM territory t JOIN rm r ON r.code = t.rm_code"
        " LEFT JOIN cell_lock l ON l.grid_id = t.grid_id AND l.cell_id = t.cell_id"
        " LEFT JOIN cell_stat s ON s.grid_id = t.grid_id AND s.cell_id = t.cell_id"
        f" WHERE t.grid_id = :g AND t.valid_to IS NULL AND {cond.sql}"
        " GROUP BY r.code, r.outlet_code, t.role ORDER BY r.code, t.role DESC"),
        {**cond.params, "g": grid_id}).mappings().all()
    per_rm: dict[str, dict[str, Any]] = {}
    for r in rows:
        d = per_rm.setdefault(r["rm_code"], {"rm_code": r["rm_code"], "outlet_code": r["outlet_code"],
                                             "cells": [], "co_owned_cells": [], "customers": 0, "locked_cells": 0})
        if r["role"] == "owner":
            d.update(cells=list(r["cells"]), customers=int(r["customers"]), locked_cells=int(r["locked"]))
        else:
            d["co_owned_cells"] = list(r["cells"])
    return [{**d, "cell_count": len(d["cells"])} for d in per_rm.values()]


def rm_cells(conn: Connection, *, grid_id: int, rm_code: str, limit: int, offset: int
             ) -> tuple[list[dict[str, Any]], int]:
    """One page of the cells an RM currently owns (with customers and lock), and how many there are.

    The caller checks first that the RM is in the user's scope
    (:func:`geodata.reads.access.check_rms`).
    """
    base = ("FROM territory t WHERE t.grid_id = :g AND t.rm_code = :r AND t.role = 'owner'"
            " AND t.valid_to IS NULL")
    params = {"g": grid_id, "r": rm_code}
    total = conn.execute(text(f"SELECT count(*) {base}"), params).scalar_one()
    rows = conn.execute(text(
        "SELECT t.cell_id, t.valid_from, t.reason, coalesce(s.customers, 0) AS customers,"
        " (l.cell_id IS NOT NULL) AS locked FROM territory t"
        " LEFT JOIN cell_stat s ON s.grid_id = t.grid_id AND s.cell_id = t.cell_id"
        " LEFT JOIN cell_lock l ON l.grid_id = t.grid_id AND l.cell_id = t.cell_id"
        " WHERE t.grid_id = :g AND t.rm_code = :r AND t.role = 'owner' AND t.valid_to IS NULL"
        " ORDER BY t.cell_id LIMIT :lim OFFSET :off"), {**params, "lim": limit, "off": offset}).mappings().all()
    return [dict(r) for r in rows], total


def history(conn: Connection, *, scope: Scope, grid_id: int, cell_id: str | None = None,
            rm_code: str | None = None, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    """Ownership history, newest first, of the RMs ``scope`` may see (roles seeing the whole
    legal entity: every entry of the grid)."""
    params: dict[str, Any] = {"g": grid_id, "c": cell_id, "r": rm_code, "l": limit, "o": offset}
    mine = ""
    if scope.role not in LE_WIDE:
        cond = where(scope, "rm", "r_h")
        mine = f" AND EXISTS (SELECT 1 FROM rm r_h WHERE r_h.code = t.rm_code AND {cond.sql})"
        params.update(cond.params)
    rows = conn.execute(text(
        "SELECT t.cell_id, t.rm_code, t.role, t.valid_from, t.valid_to, t.reason, t.changed_by, t.scenario_id "
        "FROM territory t WHERE t.grid_id = :g AND (CAST(:c AS text) IS NULL OR t.cell_id = :c) "
        f"AND (CAST(:r AS text) IS NULL OR t.rm_code = :r){mine} "
        "ORDER BY t.valid_from DESC, t.id DESC LIMIT :l OFFSET :o"), params).mappings().all()
    return [dict(r) for r in rows]
