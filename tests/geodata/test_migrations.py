"""Alembic migrations go from empty to head and back, and match the table metadata."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, inspect, text

import geodata.visit_tables  # noqa: F401  (its tables are on metadata too)
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
    """Autogenerate finds nothing to do: tables, columns, types, indexes, keys and server defaults
    (a default changed by a column helper in ``geodata/tables/common.py`` shows as ``modify_default``)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": alembic_helpers.include_object,
                                                     "compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_cell_web_mercator_copies_follow_geom(engine):
    """cell.geom_3857 and cell.point_3857 (vector tiles) are generated from geom on insert and update."""
    square = "POLYGON((106 38, 106.01 38, 106.01 38.01, 106 38.01, 106 38))"
    with engine.connect() as conn:
        le = conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LEM', 'm') RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES ('649901', 'm', :le,"
                          " ST_Multi(ST_GeomFromText(:w, 4326)))"), {"le": le, "w": square})
        gid = conn.execute(text("INSERT INTO grid (county_code, kind) VALUES ('649901', 'village') RETURNING id")
                           ).scalar_one()
        conn.execute(text("INSERT INTO cell (grid_id, cell_id, area_km2, geom) VALUES (:g, 'a', 1,"
                          " ST_Multi(ST_GeomFromText(:w, 4326)))"), {"g": gid, "w": square})

        def copies():
            return conn.execute(text(
                "SELECT ST_SRID(geom_3857), ST_XMin(geom_3857), ST_YMax(geom_3857),"
                " ST_Contains(geom_3857, point_3857), ST_SRID(point_3857) FROM cell WHERE grid_id = :g"),
                {"g": gid}).one()

        srid, xmin, ymax, inside, psrid = copies()
        # 106 E and 38.01 N in Web Mercator metres
        assert (srid, psrid, inside) == (3857, 3857, True)
        assert abs(xmin - 11799866.02) < 0.01 and abs(ymax - 4580838.57) < 0.01
        conn.execute(text("UPDATE cell SET geom = ST_Translate(geom, 1, 0) WHERE grid_id = :g"), {"g": gid})
        srid, xmin, _, inside, _ = copies()
        assert abs(xmin - 11911185.51) < 0.01 and inside
        conn.rollback()


def test_db_migrate_takes_relative_revisions(empty_db_url, tmp_path, monkeypatch):
    """`gridmkt db migrate --revision +1` upgrades one step (Alembic's relative syntax), -1 goes back one."""
    import json

    from click.testing import CliRunner

    from api.cli import _register, cli

    _register()
    monkeypatch.setenv("GRIDMKT_DATABASE_URL", empty_db_url)
    monkeypatch.setenv("GRIDMKT_HOME", str(tmp_path))

    def migrate_to(rev: str) -> dict:
        r = CliRunner().invoke(cli, ["db", "migrate", "--revision", rev, "--json"])
        return json.loads(r.output)

    assert migrate_to("0003") == {"ok": True, "from": None, "to": "0003"}
    assert migrate_to("+1") == {"ok": True, "from": "0003", "to": "0004"}
    assert migrate_to("-2") == {"ok": True, "from": "0004", "to": "0002"}
    assert migrate_to("head") == {"ok": True, "from": "0002", "to": migrate.head()}
