"""Is this grid, cell, scenario or RM in the user's scope? Lookups that answer NotFound, never the data.

Every rule comes from ``geodata.scope.where``; these functions only apply it to
one object (or list the objects of a grid a scope reaches) in SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import NotFound
from geodata.grids import get_grid
from geodata.scope import Scope, where

#: Roles that see the whole legal entity (every RM's cells and customers, masked for some).
LE_WIDE = ("admin", "planner", "analyst")


def scoped_grid(conn: Connection, *, scope: Scope, grid_id: int) -> dict[str, Any]:
    """The grid's summary if ``scope`` may see it; NotFound otherwise (also when out of scope)."""
    cond = where(scope, "grid", "g")
    seen = conn.execute(text(f"SELECT 1 FROM grid g WHERE g.id = :gid AND {cond.sql}"),
                        {**cond.params, "gid": grid_id}).first()
    if seen is None:
        raise NotFound(f"grid {grid_id} does not exist")
    return get_grid(conn, grid_id=grid_id)


def check_cell(conn: Connection, *, scope: Scope, grid_id: int, cell_id: str) -> None:
    """NotFound unless the cell exists and ``scope`` may see it (an RM: cells they own)."""
    cond = where(scope, "cell", "c")
    seen = conn.execute(text(f"SELECT 1 FROM cell c WHERE c.grid_id = :gid AND c.cell_id = :cid AND {cond.sql}"),
                        {**cond.params, "gid": grid_id, "cid": cell_id}).first()
    if seen is None:
        raise NotFound(f"grid {grid_id} has no cell {cell_id!r}")


def check_scenario(conn: Connection, *, scope: Scope, scenario_id: int) -> None:
    """NotFound unless the scenario exists and ``scope`` may see it."""
    cond = where(scope, "scenario", "s")
    if conn.execute(text(f"SELECT 1 FROM scenario s WHERE s.id = :sid AND {cond.sql}"),
                    {**cond.params, "sid": scenario_id}).first() is None:
        raise NotFound(f"scenario {scenario_id} does not exist")


def visible_cells(conn: Connection, *, scope: Scope, grid_id: int) -> set[str] | None:
    """Cells of a grid whose person-tied figures ``scope`` may see (None: all of them)."""
    if scope.role in LE_WIDE:
        return None
    cond = where(scope, "cell", "c")
    rows = conn.execute(text(f"SELECT c.cell_id FROM cell c WHERE c.grid_id = :gid AND {cond.sql}"),
                        {**cond.params, "gid": grid_id})
    return {r[0] for r in rows}


#: Cells with no current owner, under alias ``{a}`` (blank areas belong to no one's territory).
UNOWNED = ("NOT EXISTS (SELECT 1 FROM territory t_u WHERE t_u.grid_id = {a}.grid_id AND t_u.cell_id = {a}.cell_id"
           " AND t_u.role = 'owner' AND t_u.valid_to IS NULL)")


def unowned_cells(conn: Connection, *, grid_id: int) -> set[str]:
    """Cells with no current owner (blank areas belong to no one's territory)."""
    rows = conn.execute(text(f"SELECT c.cell_id FROM cell c WHERE c.grid_id = :gid AND {UNOWNED.format(a='c')}"),
                        {"gid": grid_id})
    return {r[0] for r in rows}


def visible_rms(conn: Connection, *, scope: Scope) -> set[str]:
    """RM codes ``scope`` may see (an RM: themselves; a branch manager: their outlets' RMs)."""
    cond = where(scope, "rm", "r")
    return {r[0] for r in conn.execute(text(f"SELECT r.code FROM rm r WHERE {cond.sql}"), cond.params)}


def check_rms(conn: Connection, *, scope: Scope, codes: tuple[str | None, ...]) -> None:
    """NotFound for the first RM code ``scope`` may not see (None entries are skipped).

    An RM of another legal entity is "not found", not "belongs elsewhere": no hint it exists.
    """
    wanted = [c for c in codes if c is not None]
    if not wanted:
        return
    cond = where(scope, "rm", "r")
    seen = {r[0] for r in conn.execute(text(f"SELECT r.code FROM rm r WHERE r.code = ANY(:codes) AND {cond.sql}"),
                                       {**cond.params, "codes": wanted})}
    for code in wanted:
        if code not in seen:
            raise NotFound(f"RM {code!r} does not exist")
