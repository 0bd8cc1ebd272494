"""Users, the audit log, sign-in failures and background jobs."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from geodata.tables.common import (
    TZ,
    _jsonb,
    _now,
    metadata,
)

# --- users, audit, jobs --------------------------------------------------------

app_user = Table(
    "app_user", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("legal_entity_id", Integer, ForeignKey("legal_entity.id")),
    Column("rm_code", String(32), ForeignKey("rm.code")),
    Column("outlet_codes", ARRAY(String(32)), nullable=False, server_default=text("'{}'")),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    _now(),
    CheckConstraint("role IN ('admin','planner','branch_manager','rm','analyst')", name="role"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger, primary_key=True),
    _now("at"),
    Column("username", Text, nullable=False),
    Column("action", String(16), nullable=False),
    Column("object_type", Text, nullable=False),
    Column("object_id", Text),
    _jsonb("detail"),
    Index("ix_audit_log_at", "at"),
)

# Failed sign-ins per submitted username (kind 'user') and per client address (kind 'address'):
# shared by every worker process, so a lockout holds whichever worker answers.
login_failure = Table(
    "login_failure", metadata,
    Column("kind", String(8), nullable=False),
    Column("key", Text, nullable=False),
    Column("failures", Integer, nullable=False),
    _now("window_start"),
    Column("locked_until", TZ),
    PrimaryKeyConstraint("kind", "key"),
    CheckConstraint("kind IN ('user','address')", name="kind"),
)

job = Table(
    "job", metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("status", String(10), nullable=False, server_default=text("'queued'")),
    Column("progress", Float, nullable=False, server_default=text("0")),
    Column("message", Text),
    Column("result", JSONB),
    Column("username", Text, nullable=False),
    Column("legal_entity_id", Integer),
    _now(),
    _now("updated_at"),
    CheckConstraint("status IN ('queued','running','done','failed')", name="status"),
)

