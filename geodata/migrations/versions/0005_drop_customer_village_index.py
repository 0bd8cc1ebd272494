"""customer: drop the btree on village_code

No query selects customers by village code: they are read by county
(assignment, counts), by legal entity (scoping), by key and by location
(tiles). The index only cost every import: building it took about as long
as the county index (2 s per million rows).

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f('ix_customer_village_code'), table_name='customer')


def downgrade() -> None:
    op.create_index(op.f('ix_customer_village_code'), 'customer', ['village_code'], unique=False)
