"""import_run.status may be 'rejected': every row of the file was rejected, nothing was imported

Such a run used to be recorded 'ok' with 0 inserted, so the same file imported
again once its cause was fixed (say, its legal entity imported first) counted
as 'unchanged' and still imported nothing.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f('ck_import_run_status'), 'import_run', type_='check')
    op.create_check_constraint(op.f('ck_import_run_status'), 'import_run',
                               "status IN ('running','ok','failed','unchanged','rejected')")


def downgrade() -> None:
    op.execute("UPDATE import_run SET status = 'ok' WHERE status = 'rejected'")
    op.drop_constraint(op.f('ck_import_run_status'), 'import_run', type_='check')
    op.create_check_constraint(op.f('ck_import_run_status'), 'import_run',
                               "status IN ('running','ok','failed','unchanged')")
