"""Gap runs and their per-cell scores."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from geodata.tables.common import (
    TZ,
    _now,
    metadata,
)

# --- gaps ----------------------------------------------------------------------

gap_run = Table(
    "gap_run", metadata,
    Column("id", Integer, primary_key=True),
    Column("grid_id", Integer, ForeignKey("grid.id", ondelete="CASCADE"), nullable=False, index=True),
    _now("computed_at"),
    Column("config", JSONB, nullable=False),
    Column("trigger", Text, nullable=False),
    # The date the run scored as of; its visit measures were counted as of the same date (migration 0010).
    Column("as_of", TZ),
)

gap_score = Table(
    "gap_score", metadata,
    Column("gap_run_id", Integer, ForeignKey("gap_run.id", ondelete="CASCADE"), nullable=False),
    Column("cell_id", String(32), nullable=False),
    Column("score", Float, nullable=False),
    Column("gap_class", String(14), nullable=False),
    Column("components", JSONB, nullable=False),
    Column("measures", JSONB, nullable=False),
    Column("reason_zh", Text),
    Column("reason_en", Text),
    PrimaryKeyConstraint("gap_run_id", "cell_id"),
)

