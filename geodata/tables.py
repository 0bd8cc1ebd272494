"""The gridmkt schema: SQLAlchemy Core tables with geoalchemy2 geometry (EPSG:4326).

Alembic migrations in ``geodata/migrations`` create exactly these tables; a
test checks that the migrated database and this metadata agree.

Scoping: every row a user can see hangs off a legal entity (法人机构), either
directly (``legal_entity_id``) or through its county.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, UUID

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


def _now() -> Column:
    return Column("created_at", TZ, nullable=False, server_default=text("now()"))


def _import_ref() -> Column:
    return Column("import_run_id", Integer, ForeignKey("import_run.id", ondelete="SET NULL"))


def _source_crs() -> Column:
    return Column("source_crs", String(8), nullable=True)


legal_entity = Table(
    "legal_entity", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
    _import_ref(),
)

import_run = Table(
    "import_run", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("user_name", Text, nullable=False),
    Column("started_at", TZ, nullable=False, server_default=text("now()")),
    Column("finished_at", TZ),
    Column("status", String(16), nullable=False, server_default=text("'running'")),
    Column("dry_run", Boolean, nullable=False, server_default=text("false")),
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
    Column("encoding", String(32)),
    Column("source_crs", String(8)),
    Column("counts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("warnings", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("rejects_path", Text),
    Column("message", Text),
    # How the file was read (crs, encoding, sheet, column map): same file read
    # differently is a different import.
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
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
    Column("legal_entity_id", Integer, ForeignKey("legal_entity.id"), index=True),
    Column("county_code", String(6), index=True),
    Column("village_code", String(12)),
    Column("kind", Text),
    _point(nullable=False),
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
    _source_crs(),
    _import_ref(),
)

service_point = Table(
    "service_point", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("legal_entity_id", Integer, ForeignKey("legal_entity.id"), index=True),
    Column("outlet_code", String(32), ForeignKey("outlet.code", ondelete="SET NULL")),
    Column("county_code", String(6), index=True),
    Column("village_code", String(12)),
    _point(nullable=False),
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
    _source_crs(),
    _import_ref(),
)

rm = Table(
    "rm", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("legal_entity_id", Integer, ForeignKey("legal_entity.id"), index=True),
    Column("outlet_code", String(32), ForeignKey("outlet.code"), nullable=False, index=True),
    Column("phone", String(20)),
    Column("capacity", Float, nullable=False, server_default=text("1.0")),
    Column("hired_on", Date),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
    _import_ref(),
    CheckConstraint("capacity > 0 AND capacity <= 2", name="capacity_range"),
)

customer = Table(
    "customer", metadata,
    Column("customer_id", String(32), primary_key=True),
    Column("name", Text),
    Column("id_number", String(18)),
    Column("phone", String(20)),
    Column("legal_entity_id", Integer, ForeignKey("legal_entity.id"), index=True),
    Column("county_code", String(6), index=True),
    # No index on village_code: nothing selects customers by village (migration 0005).
    Column("village_code", String(12)),
    Column("deposit_balance", Numeric(18, 2), nullable=False, server_default=text("0")),
    Column("loan_balance", Numeric(18, 2), nullable=False, server_default=text("0")),
    Column("segment", Text),
    Column("opened_on", Date),
    _point(),
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
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
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
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
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
    _import_ref(),
)

customer_tag = Table(
    "customer_tag", metadata,
    Column("customer_id", String(32), nullable=False),
    Column("tag", Text, nullable=False),
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
    _import_ref(),
    PrimaryKeyConstraint("customer_id", "tag"),
    Index("ix_customer_tag_tag", "tag"),
)

# --- grids -------------------------------------------------------------------

grid = Table(
    "grid", metadata,
    Column("id", Integer, primary_key=True),
    Column("county_code", String(6), ForeignKey("county.adcode"), nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("resolution", Integer),
    _now(),
    Column("cell_count", Integer, nullable=False, server_default=text("0")),
    Column("report", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # Bumped by every change of current ownership; scenarios remember the
    # version they started from so a stale one cannot be published.
    Column("territory_version", Integer, nullable=False, server_default=text("0")),
    Column("assigned_at", TZ),
    CheckConstraint("kind IN ('h3','village')", name="kind"),
)

cell = Table(
    "cell", metadata,
    Column("grid_id", Integer, ForeignKey("grid.id", ondelete="CASCADE"), nullable=False),
    Column("cell_id", String(32), nullable=False),
    Column("label", Text),
    Column("is_border", Boolean, nullable=False, server_default=text("false")),
    Column("village_codes", ARRAY(String(12))),
    Column("township_code", String(9)),
    Column("area_km2", Float, nullable=False),
    # One type for every cell (a border cell may be in parts): GDAL and QGIS read a typed layer.
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False),
    # Web Mercator copies for vector tiles, generated from geom by the database (never stale).
    Column("geom_3857", Geometry("GEOMETRY", srid=3857, spatial_index=True),
           Computed("ST_Transform(geom, 3857)", persisted=True), nullable=False),
    Column("point_3857", Geometry("POINT", srid=3857, spatial_index=False),
           Computed("ST_PointOnSurface(ST_Transform(geom, 3857))", persisted=True), nullable=False),
    PrimaryKeyConstraint("grid_id", "cell_id"),
)

# The point lookup of a grid version (grid.locate.H3Locator / grid.locate.VillageLocator
# .to_bytes), built once with the grid: assigning customers then skips rebuilding it.
grid_lookup = Table(
    "grid_lookup", metadata,
    Column("grid_id", Integer, ForeignKey("grid.id", ondelete="CASCADE"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    _now(),
)

# Per-grid customer placement is a partitioned table: each assignment run
# writes a fresh partition with COPY and swaps it in (no UPDATE ... FROM).
customer_cell = Table(
    "customer_cell", metadata,
    Column("grid_id", Integer, nullable=False),
    Column("customer_id", String(32), nullable=False),
    Column("cell_id", String(32)),
    # 'point' (by coordinates), 'village' (by village code), or why it is unplaced
    Column("how", String(16), nullable=False),
    postgresql_partition_by="LIST (grid_id)",
)

cell_stat = Table(
    "cell_stat", metadata,
    Column("grid_id", Integer, nullable=False),
    Column("cell_id", String(32), nullable=False),
    Column("customers", Integer, nullable=False, server_default=text("0")),
    Column("households", Float, nullable=False, server_default=text("0")),
    Column("population", Float, nullable=False, server_default=text("0")),
    Column("apportioned", Boolean, nullable=False, server_default=text("false")),
    Column("deposit", Numeric(20, 2), nullable=False, server_default=text("0")),
    Column("loan", Numeric(20, 2), nullable=False, server_default=text("0")),
    Column("visits_90d", Integer, nullable=False, server_default=text("0")),
    Column("customers_visited_90d", Integer, nullable=False, server_default=text("0")),
    Column("last_visit_at", TZ),
    Column("computed_at", TZ, nullable=False, server_default=text("now()")),
    # The reference date of the visit measures (visits_90d: the 90 days before it); migration 0010.
    Column("as_of", TZ),
    PrimaryKeyConstraint("grid_id", "cell_id"),
    ForeignKeyConstraint(["grid_id", "cell_id"], ["cell.grid_id", "cell.cell_id"], ondelete="CASCADE"),
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
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("report", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
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
    Column("valid_from", TZ, nullable=False, server_default=text("now()")),
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
    Column("locked_at", TZ, nullable=False, server_default=text("now()")),
    Column("reason", Text),
    PrimaryKeyConstraint("grid_id", "cell_id"),
)

# --- gaps ----------------------------------------------------------------------

gap_run = Table(
    "gap_run", metadata,
    Column("id", Integer, primary_key=True),
    Column("grid_id", Integer, ForeignKey("grid.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("computed_at", TZ, nullable=False, server_default=text("now()")),
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
    Column("at", TZ, nullable=False, server_default=text("now()")),
    Column("username", Text, nullable=False),
    Column("action", String(16), nullable=False),
    Column("object_type", Text, nullable=False),
    Column("object_id", Text),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_audit_log_at", "at"),
)

# Failed sign-ins per submitted username (kind 'user') and per client address (kind 'address'):
# shared by every worker process, so a lockout holds whichever worker answers.
login_failure = Table(
    "login_failure", metadata,
    Column("kind", String(8), nullable=False),
    Column("key", Text, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("window_start", TZ, nullable=False, server_default=text("now()")),
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
    Column("updated_at", TZ, nullable=False, server_default=text("now()")),
    CheckConstraint("status IN ('queued','running','done','failed')", name="status"),
)

