"""Leads and customer tags per cell from the local tables (``gridmkt import leads|tags``).

These are the figures used when no lead or tag service is configured, and the
customer ids of cells that are sent to the services when one is. Every
function takes an optional :class:`~geodata.scope.Scope`: cells outside it are
left out, and only customers the scope may see are counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import NotFound
from geodata.scope import Clause, Scope, where

_ALL = Clause("TRUE", {})


def _where(scope: Scope | None, kind: str, alias: str) -> Clause:
    return _ALL if scope is None else where(scope, kind, alias)


def check_grid(conn: Connection, *, grid_id: int, scope: Scope | None = None) -> None:
    """Raise NotFound unless the grid exists and ``scope`` may see it."""
    cond = _where(scope, "grid", "g")
    found = conn.execute(text(f"SELECT 1 FROM grid g WHERE g.id = :grid_id AND {cond.sql}"),
                         {**cond.params, "grid_id": grid_id}).first()
    if found is None:
        raise NotFound(f"grid {grid_id} does not exist")


def visible_cells(conn: Connection, *, grid_id: int, cell_ids: Sequence[str] | None,
                  scope: Scope | None = None) -> list[str]:
    """Ids of the grid's cells (all, or those of ``cell_ids``) that ``scope`` may see, sorted."""
    cond = _where(scope, "cell", "c")
    pick = "" if cell_ids is None else " AND c.cell_id = ANY(:cell_ids)"
    rows = conn.execute(
        text(f"SELECT c.cell_id FROM cell c WHERE c.grid_id = :grid_id{pick} AND {cond.sql}"
             " ORDER BY c.cell_id"),
        {**cond.params, "grid_id": grid_id, "cell_ids": list(cell_ids or ())},
    )
    return [r[0] for r in rows]


def _customers_sql(scope: Scope | None, join: str = "") -> tuple[str, dict]:
    """FROM/WHERE of the customers placed in cells ``:cell_ids`` of grid ``:grid_id`` in scope."""
    cond = _where(scope, "customer", "cu")
    sql = (f" FROM customer_cell cc JOIN customer cu ON cu.customer_id = cc.customer_id{join}"
           f" WHERE cc.grid_id = :grid_id AND cc.cell_id = ANY(:cell_ids) AND {cond.sql}")
    return sql, cond.params


def customers_by_cell(conn: Connection, *, grid_id: int, cell_ids: Sequence[str],
                      scope: Scope | None = None) -> dict[str, list[str]]:
    """Customer ids per cell (every cell of ``cell_ids`` present, possibly with an empty list)."""
    base, params = _customers_sql(scope)
    out: dict[str, list[str]] = {c: [] for c in cell_ids}
    rows = conn.execute(text(f"SELECT cc.cell_id, cc.customer_id{base} ORDER BY 1, 2"),
                        {**params, "grid_id": grid_id, "cell_ids": list(cell_ids)})
    for cell, cid in rows:
        out[cell].append(cid)
    return out


def open_leads_by_cell(conn: Connection, *, grid_id: int, cell_ids: Sequence[str],
                       scope: Scope | None = None) -> dict[str, dict[str, int]]:
    """Open leads of the local ``lead`` table per cell and lead type (``{cell: {type: n}}``)."""
    base, params = _customers_sql(scope, " JOIN lead l ON l.customer_id = cc.customer_id")
    out: dict[str, dict[str, int]] = {c: {} for c in cell_ids}
    rows = conn.execute(
        text(f"SELECT cc.cell_id, l.lead_type, count(*){base} AND l.status = 'open' GROUP BY 1, 2"),
        {**params, "grid_id": grid_id, "cell_ids": list(cell_ids)},
    )
    for cell, lead_type, n in rows:
        out[cell][lead_type] = int(n)
    return out


def tagged_customers_by_cell(conn: Connection, *, grid_id: int, cell_ids: Sequence[str], tag: str,
                             scope: Scope | None = None) -> dict[str, int]:
    """Customers carrying ``tag`` in the local ``customer_tag`` table, per cell (``{cell: n}``)."""
    base, params = _customers_sql(scope)
    out = dict.fromkeys(cell_ids, 0)
    rows = conn.execute(
        text(f"SELECT cc.cell_id, count(*){base} AND EXISTS (SELECT 1 FROM customer_tag t"
             " WHERE t.customer_id = cc.customer_id AND t.tag = :tag) GROUP BY 1"),
        {**params, "grid_id": grid_id, "cell_ids": list(cell_ids), "tag": tag},
    )
    for cell, n in rows:
        out[cell] = int(n)
    return out
