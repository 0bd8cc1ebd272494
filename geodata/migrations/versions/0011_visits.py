"""The RM's day (issue 16): visit tasks, day plans and their stops; check-in columns on visit

Check-ins are visits: the ``visit`` table gains a ``visit_id``, where the row
came from (``source``), the phone's time and position with its accuracy, the
distance to the stop's place and the far/short flags, and the idempotency keys
of the check-in and the check-out (a retry never records a visit twice).

Revision ID: 0011
Revises: 0010
"""
import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TZ = postgresql.TIMESTAMP(timezone=True)


def _point(name: str = 'geom', nullable: bool = True) -> sa.Column:
    return sa.Column(name, geoalchemy2.Geometry(geometry_type='POINT', srid=4326, spatial_index=False,
                                                from_text='ST_GeomFromEWKT', name='geometry'), nullable=nullable)


def upgrade() -> None:
    op.add_column('visit', sa.Column('visit_id', sa.BigInteger(), sa.Identity(), nullable=False))
    op.create_unique_constraint(op.f('uq_visit_visit_id'), 'visit', ['visit_id'])
    op.add_column('visit', sa.Column('source', sa.String(8), server_default=sa.text("'import'"), nullable=False))
    op.add_column('visit', sa.Column('kind', sa.Text(), nullable=True))
    op.add_column('visit', sa.Column('plan_id', sa.Integer(), nullable=True))
    op.add_column('visit', sa.Column('checkin_at', TZ, nullable=True))
    op.add_column('visit', sa.Column('received_at', TZ, nullable=True))
    op.add_column('visit', _point('checkin_geom'))
    op.add_column('visit', sa.Column('accuracy_m', sa.Float(), nullable=True))
    op.add_column('visit', sa.Column('distance_m', sa.Float(), nullable=True))
    op.add_column('visit', sa.Column('place_source', sa.String(8), nullable=True))
    op.add_column('visit', sa.Column('checkout_at', TZ, nullable=True))
    op.add_column('visit', sa.Column('note', sa.Text(), nullable=True))
    op.add_column('visit', sa.Column('flag_far', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('visit', sa.Column('flag_short', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('visit', sa.Column('idempotency_key', postgresql.UUID(as_uuid=False), nullable=True))
    op.add_column('visit', sa.Column('checkout_key', postgresql.UUID(as_uuid=False), nullable=True))
    op.create_unique_constraint(op.f('uq_visit_idempotency_key'), 'visit', ['idempotency_key'])
    op.create_unique_constraint(op.f('uq_visit_checkout_key'), 'visit', ['checkout_key'])
    op.create_check_constraint(op.f('ck_visit_source'), 'visit', "source IN ('import','checkin')")
    op.create_check_constraint(op.f('ck_visit_kind'), 'visit', "kind IN ('面访','电访')")
    op.create_index(op.f('ix_visit_received_at'), 'visit', ['received_at'], unique=False)

    op.create_table(
        'visit_task',
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.String(32), nullable=False),
        sa.Column('rm_code', sa.String(32), nullable=False),
        sa.Column('assigned_by', sa.Text(), nullable=False),
        sa.Column('due_date', sa.Date(), nullable=False),
        sa.Column('window_start', sa.Time(), nullable=True),
        sa.Column('window_end', sa.Time(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('status', sa.String(10), server_default=sa.text("'open'"), nullable=False),
        sa.Column('done_visit_id', sa.BigInteger(), nullable=True),
        sa.Column('created_at', TZ, server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("status IN ('open','done','cancelled')", name=op.f('ck_visit_task_status')),
        sa.PrimaryKeyConstraint('task_id', name=op.f('pk_visit_task')),
    )
    op.create_index('ix_visit_task_rm_status', 'visit_task', ['rm_code', 'status'], unique=False)
    op.create_table(
        'visit_plan',
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('rm_code', sa.String(32), nullable=False),
        sa.Column('plan_date', sa.Date(), nullable=False),
        sa.Column('start_source', sa.String(8), nullable=False),
        _point('start_geom', nullable=False),
        sa.Column('leave_at', TZ, nullable=True),
        sa.Column('weights', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('solver', sa.Text(), nullable=False),
        sa.Column('seed', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('length_m', sa.Float(), nullable=True),
        sa.Column('end_at', TZ, nullable=True),
        sa.Column('created_at', TZ, server_default=sa.text('now()'), nullable=False),
        sa.Column('created_by', sa.Text(), nullable=False),
        sa.CheckConstraint("start_source IN ('outlet','phone')", name=op.f('ck_visit_plan_start_source')),
        sa.PrimaryKeyConstraint('plan_id', name=op.f('pk_visit_plan')),
    )
    op.create_index('ix_visit_plan_rm_date', 'visit_plan', ['rm_code', 'plan_date'], unique=False)
    op.create_table(
        'plan_stop',
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.String(32), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(10), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=True),
        sa.Column('score', sa.Float(), nullable=True),
        sa.Column('reasons', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column('reason_zh', sa.Text(), nullable=True),
        sa.Column('reason_en', sa.Text(), nullable=True),
        sa.Column('place_source', sa.String(8), nullable=True),
        _point(),
        sa.Column('window_start', sa.Time(), nullable=True),
        sa.Column('window_end', sa.Time(), nullable=True),
        sa.Column('service_min', sa.Float(), nullable=False),
        sa.Column('route_seq', sa.Integer(), nullable=True),
        sa.Column('arrive_at', TZ, nullable=True),
        sa.Column('start_at', TZ, nullable=True),
        sa.Column('depart_at', TZ, nullable=True),
        sa.Column('drop_reason', sa.Text(), nullable=True),
        sa.Column('removed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.CheckConstraint("kind IN ('task','added','proposed')", name=op.f('ck_plan_stop_kind')),
        sa.ForeignKeyConstraint(['plan_id'], ['visit_plan.plan_id'], name=op.f('fk_plan_stop_plan_id_visit_plan'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('plan_id', 'customer_id', name=op.f('pk_plan_stop')),
    )


def downgrade() -> None:
    op.drop_table('plan_stop')
    op.drop_index('ix_visit_plan_rm_date', table_name='visit_plan')
    op.drop_table('visit_plan')
    op.drop_index('ix_visit_task_rm_status', table_name='visit_task')
    op.drop_table('visit_task')
    op.drop_index(op.f('ix_visit_received_at'), table_name='visit')
    op.drop_constraint(op.f('ck_visit_kind'), 'visit', type_='check')
    op.drop_constraint(op.f('ck_visit_source'), 'visit', type_='check')
    for col in ('checkout_key', 'idempotency_key', 'flag_short', 'flag_far', 'note', 'checkout_at', 'place_source',
                'distance_m', 'accuracy_m', 'checkin_geom', 'received_at', 'checkin_at', 'plan_id', 'kind', 'source',
                'visit_id'):
        op.drop_column('visit', col)
