"""cell.geom_3857, cell.point_3857: cells in Web Mercator for vector tiles

Every tile reprojected each of its cells (about 1,400 at z10) and computed a
point on each one's surface on every request. Both are now stored, generated
by the database from ``geom`` so they can never disagree with it, whoever
writes the cell (COPY in ``geodata.grids.save_grid``, tests, scripts).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
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


def downgrade() -> None:
    op.drop_geospatial_index('idx_cell_geom_3857', table_name='cell', postgresql_using='gist',
                             column_name='geom_3857')
    op.drop_column('cell', 'point_3857')
    op.drop_column('cell', 'geom_3857')
