"""Summary figures of grids as a reader may see them: numerator and denominator within one scope.

The dashboard's and the province overview's 入格率 (coverage) divided the
customers placed in a branch manager's cells by every customer of the county
(4.8 % for a branch whose own customers are all placed). Here every figure is
counted in SQL under :func:`geodata.scope.where` only:

- ``cells``: cells of the grid in the ``cell`` scope;
- ``customers``: customers in the ``customer`` scope placed in one of those cells;
- ``unplaced``: customers in the ``customer`` scope of the grid's county placed
  in no cell of the grid (no usable location, or imported since the assignment);
- ``scope_customers``: ``customers + unplaced``, the reader's customers as this
  grid sees them (the denominator of 入格率; a customer the reader sees through
  another grid, placed here in someone else's cells, is that reader's here);
- ``coverage``: ``customers / scope_customers`` (None when that is 0);
- ``households``, ``population``: summed over those cells (apportioned figures,
  ``apportioned_cells`` says how many cells have some);
- ``blank_cells``: those cells the grid's latest gap run calls blank (None
  without a run), ``no_potential_cells``: those it calls no-potential (too few
  households and no customers: nothing to win; None without a run);
  ``rms``: their current owners within the ``rm`` scope.

For planners, analysts and admins the scopes are the legal entity's, so
coverage is the county's; for a branch manager it is that of the customers of
their outlets' territories, for an RM that of their own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.scope import Scope, where


def grid_figures(conn: Connection, *, scope: Scope, grid_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Summary figures of each grid of ``grid_ids`` within ``scope`` (grids it may not see: all zero). One statement."""
    if not grid_ids:
        return {}
    cell, cust, rm = where(scope, "cell", "c"), where(scope, "customer", "cu"), where(scope, "rm", "r")
    sql = f"""
    WITH g AS (SELECT g.id, g.county_code FROM grid g WHERE g.id = ANY(:gids)),
    sc AS (SELECT c.grid_id, c.cell_id FROM g JOIN cell c ON c.grid_id = g.id WHERE {cell.sql}),
    st AS (SELECT sc.grid_id, count(*) AS cells, sum(s.households) AS households, sum(s.population) AS population,
                  count(*) FILTER (WHERE s.apportioned) AS apportioned_cells
             FROM sc LEFT JOIN cell_stat s ON s.grid_id = sc.grid_id AND s.cell_id = sc.cell_id
            GROUP BY sc.grid_id),
    -- Customers of the county in the customer scope, each once, with their cell in this grid if it is in
    -- the cell scope: placed there (the numerator), or placed in no cell of this grid (unplaced). Those
    -- placed in another reader's cells of this grid are that reader's, not this one's.
    cu AS (SELECT g.id AS grid_id, count(*) FILTER (WHERE sc.cell_id IS NOT NULL) AS customers,
                  count(*) FILTER (WHERE cc.cell_id IS NULL) AS unplaced
             FROM g JOIN customer cu ON cu.county_code = g.county_code
             LEFT JOIN customer_cell cc ON cc.grid_id = g.id AND cc.customer_id = cu.customer_id
             LEFT JOIN sc ON sc.grid_id = g.id AND sc.cell_id = cc.cell_id
            WHERE {cust.sql} GROUP BY g.id),
    run AS (SELECT r.grid_id, max(r.id) AS run_id FROM gap_run r JOIN g ON g.id = r.grid_id GROUP BY r.grid_id),
    blank AS (SELECT sc.grid_id, count(*) FILTER (WHERE s.gap_class = 'blank') AS blank_cells,
                     count(*) FILTER (WHERE s.gap_class = 'no-potential') AS no_potential_cells
                FROM sc JOIN run ON run.grid_id = sc.grid_id
                JOIN gap_score s ON s.gap_run_id = run.run_id AND s.cell_id = sc.cell_id
               GROUP BY sc.grid_id),
    own AS (SELECT sc.grid_id, count(DISTINCT t.rm_code) AS rms FROM sc
              JOIN territory t ON t.grid_id = sc.grid_id AND t.cell_id = sc.cell_id AND t.valid_to IS NULL
                   AND t.role = 'owner'
              JOIN rm r ON r.code = t.rm_code WHERE {rm.sql} GROUP BY sc.grid_id)
    SELECT g.id AS grid_id, COALESCE(st.cells, 0) AS cells, COALESCE(cu.customers, 0) AS customers,
           COALESCE(cu.unplaced, 0) AS unplaced, COALESCE(st.households, 0) AS households,
           COALESCE(st.population, 0) AS population, COALESCE(st.apportioned_cells, 0) AS apportioned_cells,
           CASE WHEN run.run_id IS NULL THEN NULL ELSE COALESCE(blank.blank_cells, 0) END AS blank_cells,
           CASE WHEN run.run_id IS NULL THEN NULL ELSE COALESCE(blank.no_potential_cells, 0) END
             AS no_potential_cells,
           COALESCE(own.rms, 0) AS rms
      FROM g LEFT JOIN st ON st.grid_id = g.id LEFT JOIN cu ON cu.grid_id = g.id LEFT JOIN run ON run.grid_id = g.id
      LEFT JOIN blank ON blank.grid_id = g.id LEFT JOIN own ON own.grid_id = g.id"""
    out = {}
    for r in conn.execute(text(sql), {**cell.params, **cust.params, **rm.params, "gids": list(grid_ids)}).mappings():
        row = {k: (int(v) if k not in ("households", "population") and v is not None else v) for k, v in r.items()}
        row["households"], row["population"] = float(row["households"]), float(row["population"])
        row["scope_customers"] = row["customers"] + row["unplaced"]
        row["coverage"] = row["customers"] / row["scope_customers"] if row["scope_customers"] else None
        out[row["grid_id"]] = row
    return out
