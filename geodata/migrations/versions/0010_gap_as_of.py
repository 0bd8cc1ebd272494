"""gap_run.as_of and cell_stat.as_of: the one reference date of a gap run and of its visit measures

A gap run scored "days since the last visit" as of one date (then: now) while
``visits_90d``, ``customers_visited_90d`` and ``last_visit_at`` in ``cell_stat``
had been counted as of another (the assignment's), so a cell with 41 visits in
the last 90 days could read "no visit in 90 days". Both now record the date
they are measured at; scoring recounts the visit measures as of its own date.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('gap_run', sa.Column('as_of', sa.DateTime(timezone=True), nullable=True))
    op.add_column('cell_stat', sa.Column('as_of', sa.DateTime(timezone=True), nullable=True))
    # Runs and statistics stored before this revision were measured as of when they were computed
    # (unless an explicit date was given, which was not recorded).
    op.execute("UPDATE gap_run SET as_of = computed_at")
    op.execute("UPDATE cell_stat SET as_of = computed_at")


def downgrade() -> None:
    op.drop_column('cell_stat', 'as_of')
    op.drop_column('gap_run', 'as_of')
