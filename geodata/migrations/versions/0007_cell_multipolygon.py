"""cell.geom: one geometry type, MultiPolygon (SRID 4326)

Cells were stored as a mix of Polygon and MultiPolygon (a border cell cut in
two by the county line is a MultiPolygon), so GDAL read the exports as
"Unknown (any)" and QGIS had to promote types. Stored cells are converted
with ST_Multi and the column is typed ``geometry(MultiPolygon, 4326)``, so
every writer must send MultiPolygons (``geodata.grids.save_grid`` does) and
QGIS sees the type in ``geometry_columns``. The Web Mercator copies are
generated from ``geom`` and are dropped and generated again around the change.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _mercator_copies() -> None:
    op.add_column('cell', sa.Column(
        'geom_3857', Geometry(srid=3857, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT',
                              name='geometry', nullable=False),
        sa.Computed('ST_Transform(geom, 3857)', persisted=True), nullable=False))
    op.add_column('cell', sa.Column(
        'point_3857', Geometry(geometry_type='POINT', srid=3857, dimension=2, spatial_index=False,
                               from_text='ST_GeomFromEWKT', name='geometry', nullable=False),
        sa.Computed('ST_PointOnSurface(ST_Transform(geom, 3857))', persisted=True), nullable=False))
    op.create_geospatial_index('idx_cell_geom_3857', 'cell', ['geom_3857'], unique=False,
                               postgresql_using='gist', postgresql_ops={})


def _retype(sql_type: str, using: str) -> None:
    # A column that generated columns are computed from cannot change type: drop them first.
    op.drop_geospatial_index('idx_cell_geom_3857', table_name='cell', postgresql_using='gist',
                             column_name='geom_3857')
    op.drop_column('cell', 'point_3857')
    op.drop_column('cell', 'geom_3857')
    op.execute(f"ALTER TABLE cell ALTER COLUMN geom TYPE {sql_type} USING {using}")
    _mercator_copies()


def upgrade() -> None:
    # ST_CollectionExtract keeps the polygons of a collection (a clip that also touched a line).
    _retype("geometry(MultiPolygon, 4326)", "ST_Multi(ST_CollectionExtract(geom, 3))")


def downgrade() -> None:
    _retype("geometry(Geometry, 4326)", "geom")
