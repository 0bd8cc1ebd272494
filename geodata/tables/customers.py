"""Customers and what happens to them: visits, leads, tags."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID

from geodata.tables.common import (
    TZ,
    _import_ref,
    _legal_entity,
    _point,
    _source_crs,
    _synthetic,
    metadata,
)

customer = Table(
    "customer", metadata,
    Column("customer_id", String(32), primary_key=True),
    Column("name", Text),
    Column("id_number", String(18)),
    Column("phone", String(20)),
    _legal_entity(),
    Column("county_code", String(6), index=True),
    # No index on village_code: nothing selects customers by village (migration 0005).
    Column("village_code", String(12)),
    Column("deposit_balance", Numeric(18, 2), nullable=False, server_default=text("0")),
    Column("loan_balance", Numeric(18, 2), nullable=False, server_default=text("0")),
    Column("segment", Text),
    Column("opened_on", Date),
    _point(),
    _synthetic(),
    _source_crs(),
    _import_ref(),
)

visit = Table(
    "visit", metadata,
    Column("customer_id", String(32), nullable=False),
    Column("rm_code", String(32), nullable=False, index=True),
    Column("visited_at", TZ, nullable=False, index=True),
    Column("channel", Text),
    Column("outcome", Text),
    _point(),
    _synthetic(),
    _source_crs(),
    _import_ref(),
    # Check-ins from the phone (issue 16; docs/visits.md): the same table as imported visits.
    Column("visit_id", BigInteger, Identity(), nullable=False, unique=True),
    Column("source", String(8), nullable=False, server_default=text("'import'")),
    Column("kind", Text),  # 面访 (in person) / 电访 (by phone)
    Column("plan_id", Integer),
    Column("checkin_at", TZ),  # the phone's time
    Column("received_at", TZ, index=True),  # the server's
    Column("checkin_geom", Geometry("POINT", srid=4326, spatial_index=False)),
    Column("accuracy_m", Float),
    Column("distance_m", Float),
    Column("place_source", String(8)),
    Column("checkout_at", TZ),
    Column("note", Text),
    Column("flag_far", Boolean, nullable=False, server_default=text("false")),
    Column("flag_short", Boolean, nullable=False, server_default=text("false")),
    Column("idempotency_key", UUID(as_uuid=False), unique=True),
    Column("checkout_key", UUID(as_uuid=False), unique=True),
    PrimaryKeyConstraint("customer_id", "rm_code", "visited_at"),
    CheckConstraint("source IN ('import','checkin')", name="source"),
    CheckConstraint("kind IN ('面访','电访')", name="kind"),
)

lead = Table(
    "lead", metadata,
    Column("lead_id", String(40), primary_key=True),
    Column("customer_id", String(32), nullable=False, index=True),
    Column("lead_type", Text, nullable=False),
    Column("status", String(10), nullable=False, server_default=text("'open'")),
    Column("created_at", TZ),
    Column("due_on", Date),
    _synthetic(),
    _import_ref(),
)

customer_tag = Table(
    "customer_tag", metadata,
    Column("customer_id", String(32), nullable=False),
    Column("tag", Text, nullable=False),
    _synthetic(),
    _import_ref(),
    PrimaryKeyConstraint("customer_id", "tag"),
    Index("ix_customer_tag_tag", "tag"),
)

