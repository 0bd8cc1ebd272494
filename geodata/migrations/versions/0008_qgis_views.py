"""qgis.*: views for desktop GIS users, one per purpose, typed MultiPolygon 4326

A QGIS user connecting to the database found one ``cell`` table for all grids
with a composite key, and had to join statistics, owner and score by hand.
Each view has a one-column text key ``key`` (QGIS asks for one) and a typed
geometry column, so ``geometry_columns`` lists it as MULTIPOLYGON, SRID 4326:

- ``qgis.cells``: every cell of every grid version with its statistics, its
  current owner (RM, name, outlet) and its latest gap score, class and reasons;
- ``qgis.current_cells``: the same for the newest grid of each county and kind;
- ``qgis.territories``: one shape per grid and owning RM, with totals;
- ``qgis.blank_cells``: the cells the latest gap run of each grid calls blank.

A later migration that changes a column these views read must drop and create
them again around the change (PostgreSQL refuses otherwise).

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_LATEST_RUN = "(SELECT DISTINCT ON (grid_id) id, grid_id, computed_at FROM gap_run ORDER BY grid_id, id DESC)"

CELLS = f"""
CREATE VIEW qgis.cells AS
SELECT c.grid_id || '/' || c.cell_id AS key,
       c.grid_id, c.cell_id, g.county_code, co.name AS county_name, g.kind AS grid_kind, g.resolution,
       g.created_at AS grid_created_at, c.label, c.township_code, c.village_codes, c.is_border, c.area_km2,
       s.customers, s.households, s.population, s.apportioned, s.deposit, s.loan,
       s.visits_90d, s.customers_visited_90d, s.last_visit_at, s.computed_at AS stats_at,
       t.rm_code AS owner_rm, r.name AS owner_name, r.outlet_code AS owner_outlet,
       gs.score, gs.gap_class, gs.reason_zh, gs.reason_en, lr.computed_at AS scored_at,
       c.geom
  FROM cell c
  JOIN grid g ON g.id = c.grid_id
  JOIN county co ON co.adcode = g.county_code
  LEFT JOIN cell_stat s ON s.grid_id = c.grid_id AND s.cell_id = c.cell_id
  LEFT JOIN territory t ON t.grid_id = c.grid_id AND t.cell_id = c.cell_id AND t.role = 'owner'
                       AND t.valid_to IS NULL
  LEFT JOIN rm r ON r.code = t.rm_code
  LEFT JOIN {_LATEST_RUN} lr ON lr.grid_id = c.grid_id
  LEFT JOIN gap_score gs ON gs.gap_run_id = lr.id AND gs.cell_id = c.cell_id
"""

CURRENT = """
CREATE VIEW qgis.current_cells AS
SELECT * FROM qgis.cells
 WHERE grid_id IN (SELECT DISTINCT ON (county_code, kind) id FROM grid ORDER BY county_code, kind, id DESC)
"""

TERRITORIES = """
CREATE VIEW qgis.territories AS
SELECT t.grid_id || '/' || t.rm_code AS key,
       t.grid_id, g.county_code, t.rm_code, r.name AS rm_name, r.outlet_code,
       count(*) AS cells, coalesce(sum(s.customers), 0) AS customers,
       coalesce(sum(s.households), 0) AS households, coalesce(sum(s.deposit), 0) AS deposit,
       coalesce(sum(s.loan), 0) AS loan, sum(c.area_km2) AS area_km2,
       ST_Multi(ST_CollectionExtract(ST_Union(c.geom), 3))::geometry(MultiPolygon, 4326) AS geom
  FROM territory t
  JOIN grid g ON g.id = t.grid_id
  JOIN cell c ON c.grid_id = t.grid_id AND c.cell_id = t.cell_id
  JOIN rm r ON r.code = t.rm_code
  LEFT JOIN cell_stat s ON s.grid_id = t.grid_id AND s.cell_id = t.cell_id
 WHERE t.role = 'owner' AND t.valid_to IS NULL
 GROUP BY t.grid_id, g.county_code, t.rm_code, r.name, r.outlet_code
"""

BLANK = """
CREATE VIEW qgis.blank_cells AS
SELECT * FROM qgis.cells WHERE gap_class = 'blank'
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS qgis")
    for sql in (CELLS, CURRENT, TERRITORIES, BLANK):
        op.execute(sql)
    op.execute("COMMENT ON SCHEMA qgis IS 'gridmkt views for desktop GIS (QGIS): typed MultiPolygon, SRID 4326'")
    for name, what in (("cells", "every cell of every grid with statistics, current owner and latest gap score"),
                       ("current_cells", "qgis.cells of the newest grid of each county and kind"),
                       ("territories", "one shape per grid and owning RM, with totals"),
                       ("blank_cells", "cells the latest gap run calls blank")):
        op.execute(f"COMMENT ON VIEW qgis.{name} IS '{what}'")


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS qgis CASCADE")
