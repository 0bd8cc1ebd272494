"""Grid versions, their cells, the stored point lookup, customer placement and cell statistics."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    Numeric,
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

# --- grids -------------------------------------------------------------------

grid = Table(
    "grid", metadata,
    Column("id", Integer, primary_key=True),
    Column("county_code", String(6), ForeignKey("county.adcode"), nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("resolution", Integer),
    _now(),
    Column("cell_count", Integer, nullable=False, server_default=text("0")),
    _jsonb("report"),
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
    _now("computed_at"),
    # The reference date of the visit measures (visits_90d: the 90 days before it); migration 0010.
    Column("as_of", TZ),
    PrimaryKeyConstraint("grid_id", "cell_id"),
    ForeignKeyConstraint(["grid_id", "cell_id"], ["cell.grid_id", "cell.cell_id"], ondelete="CASCADE"),
)

