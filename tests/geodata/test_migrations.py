"""Alembic migrations go from empty to head and back, and match the table metadata."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, inspect, text

from geodata import migrate
from geodata.tables import metadata


def _tables(eng) -> set[str]:
    return set(inspect(eng).get_table_names()) - {"spatial_ref_sys"}


def test_upgrade_downgrade_roundtrip(empty_db_url):
    eng = create_engine(empty_db_url)
    assert migrate.current(eng) is None
    assert migrate.upgrade(eng) == migrate.head()
    tables = _tables(eng)
    for name in ("county", "village", "customer", "customer_cell", "territory", "scenario", "import_run"):
        assert name in tables
    with eng.connect() as conn:
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'customer_cell'")).scalar()
        assert kind == "p"  # partitioned: one partition per grid version
        gist = conn.execute(text(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'customer' AND indexdef ILIKE '%gist%'"
        )).scalar()
        assert gist == 1
    assert migrate.downgrade(eng) is None
    assert _tables(eng) <= {"alembic_version"}
    assert migrate.upgrade(eng) == migrate.head()
    eng.dispose()


def test_migrated_schema_matches_metadata(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": alembic_helpers.include_object})
        diff = compare_metadata(ctx, metadata)
    assert diff == []
