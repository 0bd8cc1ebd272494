"""The gridmkt schema: SQLAlchemy Core tables with geoalchemy2 geometry (EPSG:4326).

Alembic migrations in ``geodata/migrations`` create exactly these tables; a
test checks that the migrated database and this metadata agree.

Scoping: every row a user can see hangs off a legal entity (法人机构), either
directly (``legal_entity_id``) or through its county.

One module per concept: ``common`` (metadata, column helpers), ``reference``, ``customers``, ``grids``,
``territories``, ``gaps``, ``users``; every table is importable from here.
"""

from geodata.tables.common import COORD_LEVELS, SOURCE_CRS, TZ, metadata
from geodata.tables.customers import customer, customer_tag, lead, visit
from geodata.tables.gaps import gap_run, gap_score
from geodata.tables.grids import cell, cell_stat, customer_cell, grid, grid_lookup
from geodata.tables.reference import (
    county,
    import_run,
    legal_entity,
    outlet,
    rm,
    service_point,
    township,
    village,
)
from geodata.tables.territories import cell_lock, scenario, scenario_cell, territory
from geodata.tables.users import app_user, audit_log, job, login_failure

__all__ = [
    "COORD_LEVELS", "SOURCE_CRS", "TZ", "app_user", "audit_log", "cell", "cell_lock", "cell_stat", "county",
    "customer", "customer_cell", "customer_tag", "gap_run", "gap_score", "grid", "grid_lookup", "import_run",
    "job", "lead", "legal_entity", "login_failure", "metadata", "outlet", "rm", "scenario", "scenario_cell",
    "service_point", "territory", "township", "village", "visit",
]
