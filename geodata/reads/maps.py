"""What the map index (/maps/) lists for a user: the grids, RMs and scenarios of their scope, in SQL."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.scope import Scope, where


def visible_grids(conn: Connection, *, scope: Scope) -> list[dict]:
    """Grids ``scope`` may see with how many of their cells it sees (an RM: own cells; a branch manager: the
    cells of their outlets' RMs), newest first per county: id, county_code, county_name, kind, resolution, cells, scored (has gap scores)."""
    g_cond, c_cond = where(scope, "grid", "g"), where(scope, "cell", "c")
    rows = conn.execute(text(f"""
        SELECT g.id, g.county_code, k.name AS county_name, g.kind, g.resolution,
               (SELECT count(*) FROM cell c WHERE c.grid_id = g.id AND {c_cond.sql}) AS cells,
               EXISTS (SELECT 1 FROM gap_run r WHERE r.grid_id = g.id) AS scored
          FROM grid g JOIN county k ON k.adcode = g.county_code
         WHERE {g_cond.sql} ORDER BY k.name, g.county_code, g.id DESC"""), {**g_cond.params, **c_cond.params})
    return [dict(r) for r in rows.mappings()]


def visible_counties(conn: Connection, *, scope: Scope) -> list[str]:
    """Codes of the counties in which ``scope`` sees cells (an RM: where they own cells now), in code order."""
    g_cond, c_cond = where(scope, "grid", "g"), where(scope, "cell", "c")
    rows = conn.execute(text(f"""
        SELECT DISTINCT g.county_code FROM grid g
         WHERE {g_cond.sql} AND EXISTS (SELECT 1 FROM cell c WHERE c.grid_id = g.id AND {c_cond.sql})
         ORDER BY g.county_code"""), {**g_cond.params, **c_cond.params})
    return [r[0] for r in rows]


def visible_rm_owners(conn: Connection, *, scope: Scope) -> list[dict]:
    """RMs ``scope`` may see who currently own cells, per grid: grid_id, code, name; by grid and code."""
    cond = where(scope, "rm", "r")
    rows = conn.execute(text(f"""
        SELECT DISTINCT t.grid_id, r.code, r.name FROM territory t JOIN rm r ON r.code = t.rm_code
         WHERE t.valid_to IS NULL AND t.role = 'owner' AND {cond.sql} ORDER BY t.grid_id, r.code"""), cond.params)
    return [dict(r) for r in rows.mappings()]


def visible_scenarios(conn: Connection, *, scope: Scope) -> list[dict]:
    """Live (draft or published) scenarios ``scope`` may see: id, grid_id, name, status; newest first."""
    cond = where(scope, "scenario", "s")
    rows = conn.execute(text(f"SELECT s.id, s.grid_id, s.name, s.status FROM scenario s "
                             f"WHERE s.status <> 'discarded' AND {cond.sql} ORDER BY s.grid_id, s.id DESC"), cond.params)
    return [dict(r) for r in rows.mappings()]
