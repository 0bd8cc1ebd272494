"""Test fixtures: one throwaway PostGIS cluster per test run, a fresh database per test module.

The cluster is started by the same code ``gridmkt db up`` uses
(``geodata.cluster``), in a temporary directory; it never touches a
developer's ``.gridmkt`` data. Each module gets its own database cloned from a
migrated template, so modules cannot see each other's rows.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from geodata import DEMO_DATA, cluster, migrate

SHARED_DATA = DEMO_DATA
TEMPLATE_DB = "gridmkt_template"


@pytest.fixture(scope="session")
def pg_cluster():
    """A started throwaway cluster (ClusterInfo); destroyed at the end of the run."""
    home = Path(tempfile.mkdtemp(prefix="gridmkt-test-"))
    os.chmod(home, 0o755)
    info = cluster.ensure(home, throwaway=True)
    cluster.create_database(info, TEMPLATE_DB)
    eng = create_engine(info.url(TEMPLATE_DB))
    migrate.upgrade(eng)
    eng.dispose()
    yield info
    cluster.destroy(home)
    shutil.rmtree(home, ignore_errors=True)


def _fresh_db(info, name: str, template: str = TEMPLATE_DB):
    dbname = re.sub(r"[^a-z0-9_]", "_", name.lower())[-60:]
    cluster.drop_database(info, dbname)
    cluster.create_database(info, dbname, template=template)
    return dbname


# The default demo as tests run it: one county (640121), a small synthetic bank.
DEMO_TEMPLATE_DB = "gridmkt_demo_template"
DEMO_CUSTOMERS, DEMO_SEED = 3000, 7


@pytest.fixture(scope="session")
def demo_template(pg_cluster, tmp_path_factory) -> dict:
    """The demo pipeline (every default step) run once per test run into a database that modules clone
    (``demo_db_url``) instead of each running it again: ``as_of`` and ``steps`` of that run, its ``results``.

    A module's clone is its own: what one module changes, no other sees."""
    from api.demo import DemoContext, run_demo
    from api.settings import AuthSettings, DatabaseSettings, Settings

    home = tmp_path_factory.mktemp("demo-template")
    cluster.drop_database(pg_cluster, DEMO_TEMPLATE_DB)
    cluster.create_database(pg_cluster, DEMO_TEMPLATE_DB, template=TEMPLATE_DB)
    url = pg_cluster.url(DEMO_TEMPLATE_DB)
    eng = create_engine(url)
    try:
        ctx = DemoContext(engine=eng, settings=Settings(db=DatabaseSettings(url=url, home=home),
                                                        auth=AuthSettings(secret_key="t")),
                          customers=DEMO_CUSTOMERS, seed=DEMO_SEED, workdir=home / "demo")
        steps: list[str] = []
        results = run_demo(ctx, on_step=lambda name, r, sec: steps.append(name))
    finally:
        eng.dispose()  # CREATE DATABASE ... TEMPLATE needs the template without connections
    return {"as_of": ctx.as_of, "county": ctx.county, "steps": steps, "results": results}


@pytest.fixture(scope="module")
def demo_db_url(pg_cluster, demo_template, request):
    """URL of a database private to this test module holding the demo (a copy of ``demo_template``'s)."""
    dbname = _fresh_db(pg_cluster, "d_" + request.module.__name__.rsplit(".", 1)[-1], DEMO_TEMPLATE_DB)
    yield pg_cluster.url(dbname)
    cluster.drop_database(pg_cluster, dbname)


def wait_for_lock_waiter(engine, thread: threading.Thread | None = None, *, timeout: float = 10.0,
                         fail_on_timeout: bool = True) -> None:
    """Return once another session of this database waits on a lock, or ``thread`` has ended.

    After ``timeout`` seconds with neither: raise AssertionError if ``fail_on_timeout``, else return.
    Import it as ``from tests.conftest import wait_for_lock_waiter`` (tests/ is not a package).
    """
    end = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < end:
            if thread is not None and not thread.is_alive():
                return
            n = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                  " AND datname = current_database()")).scalar()
            conn.rollback()  # pg_stat_activity is a snapshot per transaction
            if n:
                return
            time.sleep(0.02)
    if fail_on_timeout:
        raise AssertionError("the second transaction never waited on a lock")


def seed_two_counties(engine, d: Path, *, le_code: str, score: bool = False) -> tuple[int, int]:
    """Two neighbouring square counties of legal entity ``le_code`` (added unless it exists), 640105 (west)
    and 640106 (east); customers W1, W2 (west) and E1 (east) imported from a file written in ``d``; an H3
    grid (res 8) for each, built, then assigned (and gap-scored with ``score``). Returns the grids' ids."""
    import shapely

    from geodata import assign, gaps, grids
    from geodata.importers import run_import

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES (:le, '甲农商行') ON CONFLICT (code) DO NOTHING"),
                     {"le": le_code})
        for code, geom in (("640105", shapely.box(106.0, 38.0, 106.2, 38.2)),
                           ("640106", shapely.box(106.2, 38.0, 106.4, 38.2))):
            conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES (:c, :c, "
                              "(SELECT id FROM legal_entity WHERE code = :le), ST_Multi(ST_GeomFromText(:w, 4326)))"),
                         {"c": code, "w": geom.wkt, "le": le_code})
    f = d / "customers.csv"
    f.write_text("customer_id,county_code,lon,lat,deposit_balance\n"
                 "W1,640105,106.05,38.05,100\nW2,640105,106.15,38.15,200\nE1,640106,106.25,38.05,400\n",
                 encoding="utf-8")
    assert run_import(engine, kind="customers", path=f, user="u", rejects_dir=d)["counts"]["inserted"] == 3
    with engine.begin() as conn:
        west, east = (grids.build_grid(conn, county_code=c, kind="h3", resolution=8)["id"] for c in ("640105", "640106"))
        for g in (west, east):
            assign.assign_customers(conn, grid_id=g)
            if score:
                gaps.score_grid(conn, grid_id=g, trigger="test")
    return west, east


@pytest.fixture(scope="module")
def db_url(pg_cluster, request):
    """URL of a migrated database private to this test module."""
    dbname = _fresh_db(pg_cluster, "t_" + request.module.__name__.rsplit(".", 1)[-1])
    yield pg_cluster.url(dbname)
    cluster.drop_database(pg_cluster, dbname)


@pytest.fixture(scope="module")
def engine(db_url):
    """SQLAlchemy engine on this module's database."""
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def empty_db_url(pg_cluster, request):
    """URL of a database with PostGIS but no schema (for migration tests)."""
    dbname = re.sub(r"[^a-z0-9_]", "_", ("e_" + request.node.name).lower())[:60]
    cluster.drop_database(pg_cluster, dbname)
    cluster.create_database(pg_cluster, dbname)
    yield pg_cluster.url(dbname)
    cluster.drop_database(pg_cluster, dbname)
