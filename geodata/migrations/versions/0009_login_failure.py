"""login_failure: failed sign-ins per username and per client address, with lockouts

Kept in the database rather than in memory so that every worker process
counts the same failures and honours the same lockout.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'login_failure',
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('key', sa.Text(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('window_start', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('locked_until', postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('user','address')", name=op.f('ck_login_failure_kind')),
        sa.PrimaryKeyConstraint('kind', 'key', name=op.f('pk_login_failure')),
    )


def downgrade() -> None:
    op.drop_table('login_failure')
