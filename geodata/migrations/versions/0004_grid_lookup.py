"""grid_lookup: the stored point lookup of a grid version

Building a VillageLocator costs more than looking 10 million points up with
it (an H3Locator, a third of it). Grid versions never change, so the lookup is built once, with the grid,
and stored; assigning customers loads it (checked against the cells by a
fingerprint) instead of rebuilding it.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'grid_lookup',
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['grid_id'], ['grid.id'], name=op.f('fk_grid_lookup_grid_id_grid'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('grid_id', name=op.f('pk_grid_lookup')),
    )


def downgrade() -> None:
    op.drop_table('grid_lookup')
