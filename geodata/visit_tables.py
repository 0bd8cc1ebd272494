"""Tables of the RM's day (issue 16): visit tasks, day plans and their stops.

Check-ins extend the ``visit`` table of :mod:`geodata.tables` (imported visits
and check-ins are the same data). These tables live on the same ``metadata``;
importing this module registers them (``geodata/migrations/env.py`` does).
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Time,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from geodata.tables import TZ, metadata
from geodata.tables.common import _now

# 走访任务: a branch manager asks one of their RMs to visit a customer by a date.
visit_task = Table(
    "visit_task", metadata,
    Column("task_id", Integer, primary_key=True),
    Column("customer_id", String(32), nullable=False),
    Column("rm_code", String(32), nullable=False),
    Column("assigned_by", Text, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("window_start", Time),
    Column("window_end", Time),
    Column("note", Text),
    Column("status", String(10), nullable=False, server_default=text("'open'")),
    Column("done_visit_id", BigInteger),
    _now(),
    CheckConstraint("status IN ('open','done','cancelled')", name="status"),
    Index("ix_visit_task_rm_status", "rm_code", "status"),
)

# One RM's plan for one day; the newest per (rm_code, plan_date) is the current one.
visit_plan = Table(
    "visit_plan", metadata,
    Column("plan_id", Integer, primary_key=True),
    Column("rm_code", String(32), nullable=False),
    Column("plan_date", Date, nullable=False),
    Column("start_source", String(8), nullable=False),
    Column("start_geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
    Column("leave_at", TZ),
    Column("weights", JSONB, nullable=False),
    Column("solver", Text, nullable=False),
    Column("seed", Integer, nullable=False, server_default=text("0")),
    Column("length_m", Float),
    Column("end_at", TZ),
    _now(),
    Column("created_by", Text, nullable=False),
    CheckConstraint("start_source IN ('outlet','phone')", name="start_source"),
    Index("ix_visit_plan_rm_date", "rm_code", "plan_date"),
)

plan_stop = Table(
    "plan_stop", metadata,
    Column("plan_id", Integer, ForeignKey("visit_plan.plan_id", ondelete="CASCADE"), nullable=False),
    Column("customer_id", String(32), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("task_id", Integer),
    Column("score", Float),
    Column("reasons", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("reason_zh", Text),
    Column("reason_en", Text),
    Column("place_source", String(8)),
    Column("geom", Geometry("POINT", srid=4326, spatial_index=False)),
    Column("window_start", Time),
    Column("window_end", Time),
    Column("service_min", Float, nullable=False),
    Column("route_seq", Integer),
    Column("arrive_at", TZ),
    Column("start_at", TZ),
    Column("depart_at", TZ),
    Column("drop_reason", Text),
    Column("removed", Boolean, nullable=False, server_default=text("false")),
    PrimaryKeyConstraint("plan_id", "customer_id"),
    CheckConstraint("kind IN ('task','added','proposed')", name="kind"),
)
