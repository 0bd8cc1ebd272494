"""Reference and planners' tables: legal entities, import runs, counties, townships, villages, outlets,
service points and RMs."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    text,
)

from geodata.tables.common import (
    TZ,
    _import_ref,
    _jsonb,
    _legal_entity,
    _now,
    _point,
    _source_crs,
    _synthetic,
    metadata,
)

legal_entity = Table(
    "legal_entity", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    _synthetic(),
    _import_ref(),
)

import_run = Table(
    "import_run", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("user_name", Text, nullable=False),
    _now("started_at"),
    Column("finished_at", TZ),
    Column("status", String(16), nullable=False, server_default=text("'running'")),
    Column("dry_run", Boolean, nullable=False, server_default=text("false")),
    _synthetic(),
    Column("encoding", String(32)),
    Column("source_crs", String(8)),
    _jsonb("counts"),
    _jsonb("warnings", "[]"),
    Column("rejects_path", Text),
    Column("message", Text),
    # How the file was read (crs, encoding, sheet, column map): same file read
    # differently is a different import.
    _jsonb("options"),
    CheckConstraint("status IN ('running','ok','failed','unchanged','rejected')", name="status"),
)

county = Table(
    "county", metadata,
    Column("adcode", String(6), primary_key=True),
    Column("name", Text, nullable=False),
    Column("city_code", String(4)),
    Column("legal_entity_id", Integer, ForeignKey("legal_entity.id", ondelete="SET NULL"), index=True),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False),
    _source_crs(),
    _import_ref(),
    CheckConstraint("adcode ~ '^[0-9]{6}$'", name="adcode_digits"),
)

township = Table(
    "township", metadata,
    Column("code", String(9), primary_key=True),
    Column("name", Text, nullable=False),
    Column("county_code", String(6), nullable=False, index=True),
    Column("population", Integer),
    Column("households", Integer),
    _point(),
    Column("boundary", Geometry("MULTIPOLYGON", srid=4326, spatial_index=True)),
    _source_crs(),
    _import_ref(),
    CheckConstraint("code ~ '^[0-9]{9}$'", name="code_digits"),
)

village = Table(
    "village", metadata,
    Column("code", String(12), primary_key=True),
    Column("name", Text, nullable=False),
    Column("township_code", String(9), nullable=False, index=True),
    Column("township_name", Text),
    Column("county_code", String(6), nullable=False, index=True),
    Column("households", Integer),
    Column("population", Integer),
    Column("is_community", Boolean),
    _point(),
    Column("coord_level", String(10), nullable=False, server_default=text("'none'")),
    Column("boundary", Geometry("MULTIPOLYGON", srid=4326, spatial_index=True)),
    Column("outside_county", Boolean, nullable=False, server_default=text("false")),
    _source_crs(),
    _import_ref(),
    CheckConstraint("code ~ '^[0-9]{12}$'", name="code_digits"),
    CheckConstraint("coord_level IN ('village','township','county','none')", name="coord_level"),
)

outlet = Table(
    "outlet", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    _legal_entity(),
    Column("county_code", String(6), index=True),
    Column("village_code", String(12)),
    Column("kind", Text),
    _point(nullable=False),
    _synthetic(),
    _source_crs(),
    _import_ref(),
)

service_point = Table(
    "service_point", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    _legal_entity(),
    Column("outlet_code", String(32), ForeignKey("outlet.code", ondelete="SET NULL")),
    Column("county_code", String(6), index=True),
    Column("village_code", String(12)),
    _point(nullable=False),
    _synthetic(),
    _source_crs(),
    _import_ref(),
)

rm = Table(
    "rm", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    _legal_entity(),
    Column("outlet_code", String(32), ForeignKey("outlet.code"), nullable=False, index=True),
    Column("phone", String(20)),
    Column("capacity", Float, nullable=False, server_default=text("1.0")),
    Column("hired_on", Date),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _synthetic(),
    _import_ref(),
    CheckConstraint("capacity > 0 AND capacity <= 2", name="capacity_range"),
)

