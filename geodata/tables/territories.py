"""Territories (who owns which cell, with history), locks, and scenarios (the sandbox)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from geodata.tables.common import (
    TZ,
    _jsonb,
    _now,
    metadata,
)

# --- territories and scenarios -------------------------------------------------

scenario = Table(
    "scenario", metadata,
    Column("id", Integer, primary_key=True),
    Column("grid_id", Integer, ForeignKey("grid.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("status", String(10), nullable=False, server_default=text("'draft'")),
    Column("base_version", Integer, nullable=False),
    Column("created_by", Text, nullable=False),
    _now(),
    Column("published_at", TZ),
    _jsonb("params"),
    _jsonb("report"),
    CheckConstraint("status IN ('draft','published','discarded')", name="status"),
)
Index(
    "uq_scenario_live_name", scenario.c.grid_id, scenario.c.name, unique=True,
    postgresql_where=text("status = 'draft'"),
)

scenario_cell = Table(
    "scenario_cell", metadata,
    Column("scenario_id", Integer, ForeignKey("scenario.id", ondelete="CASCADE"), nullable=False),
    Column("cell_id", String(32), nullable=False),
    Column("rm_code", String(32), ForeignKey("rm.code")),
    Column("co_owners", ARRAY(String(32)), nullable=False, server_default=text("'{}'")),
    Column("locked", Boolean, nullable=False, server_default=text("false")),
    PrimaryKeyConstraint("scenario_id", "cell_id"),
)

territory = Table(
    "territory", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("grid_id", Integer, ForeignKey("grid.id", ondelete="CASCADE"), nullable=False),
    Column("cell_id", String(32), nullable=False),
    Column("rm_code", String(32), ForeignKey("rm.code"), nullable=False, index=True),
    Column("role", String(10), nullable=False, server_default=text("'owner'")),
    _now("valid_from"),
    Column("valid_to", TZ),
    Column("reason", Text, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("scenario_id", Integer, ForeignKey("scenario.id", ondelete="SET NULL")),
    CheckConstraint("role IN ('owner','co_owner')", name="role"),
    Index("ix_territory_current", "grid_id", "cell_id", postgresql_where=text("valid_to IS NULL")),
    Index(
        "uq_territory_one_owner", "grid_id", "cell_id", unique=True,
        postgresql_where=text("valid_to IS NULL AND role = 'owner'"),
    ),
)

cell_lock = Table(
    "cell_lock", metadata,
    Column("grid_id", Integer, ForeignKey("grid.id", ondelete="CASCADE"), nullable=False),
    Column("cell_id", String(32), nullable=False),
    Column("locked_by", Text, nullable=False),
    _now("locked_at"),
    Column("reason", Text),
    PrimaryKeyConstraint("grid_id", "cell_id"),
)

