"""import_run.options: how a file was read (crs, encoding, sheet, column map)

Two runs of the same file count as the same import only when they also read
it the same way; a re-import with a corrected --crs or --map must load again.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        'import_run',
        sa.Column('options', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
    )


def downgrade() -> None:
    op.drop_column('import_run', 'options')
