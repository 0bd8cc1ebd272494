"""What every table module shares: the metadata (naming convention), column helpers, value lists."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

COORD_LEVELS = ("village", "township", "county", "none")
SOURCE_CRS = ("wgs84", "gcj02", "bd09")
TZ = TIMESTAMP(timezone=True)


def _point(nullable: bool = True) -> Column:
    return Column("geom", Geometry("POINT", srid=4326, spatial_index=True), nullable=nullable)


def _now(name: str = "created_at") -> Column:
    """A timestamp the database sets when the row is written (``now()``)."""
    return Column(name, TZ, nullable=False, server_default=text("now()"))


def _synthetic() -> Column:
    """True for rows of the seeded synthetic bank (the demo's, and tests')."""
    return Column("synthetic", Boolean, nullable=False, server_default=text("false"))


def _legal_entity() -> Column:
    """The legal entity (法人机构) a row belongs to, which scope rules select on (indexed)."""
    return Column("legal_entity_id", Integer, ForeignKey("legal_entity.id"), index=True)


def _jsonb(name: str, empty: str = "{}") -> Column:
    """A JSONB column that is never NULL: an empty object (or ``empty``) until written."""
    return Column(name, JSONB, nullable=False, server_default=text(f"'{empty}'::jsonb"))


def _import_ref() -> Column:
    return Column("import_run_id", Integer, ForeignKey("import_run.id", ondelete="SET NULL"))


def _source_crs() -> Column:
    return Column("source_crs", String(8), nullable=True)
