"""Read replicas for real: a primary streaming to a hot standby (``pg_basebackup -R``) on this machine.

The API reads GETs from the standby (its own sessions show on the standby, and a standby whose replay is
paused serves the state from before a write), writes land on the primary, the writer reads its write at
once (the read-your-writes cookie), a standby behind by more than the bound or stopped is skipped, and
``/ready`` says so. Fixtures: tests/api/conftest.py (seeded data, users) on a primary of our own.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import create_engine, text

from api.replicas import APPLICATION_NAME, FRESH_COOKIE
from api.settings import AuthSettings, DatabaseSettings, ReplicaSettings, Settings, UploadSettings
from geodata import cluster, migrate, standby

pytestmark = pytest.mark.slow
MAX_LAG_S = 3.0


def _home(prefix: str) -> Path:
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(home, 0o755)
    return home


@pytest.fixture(scope="module")
def primary():
    """A cluster with wal_level=replica and a replication entry in pg_hba, migrated to head."""
    home = _home("gridmkt-primary-")
    info = standby.init_primary(home)
    eng = create_engine(info.url())
    migrate.upgrade(eng)
    eng.dispose()
    yield info
    cluster.destroy(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def db_url(primary):
    """This module's database is the primary's (overrides tests/conftest.py)."""
    return primary.url()


@pytest.fixture(scope="module")
def replica(primary):
    """A hot standby streaming from the primary, on a port of its own."""
    home = _home("gridmkt-standby-")
    info = standby.clone_standby(primary, home)
    yield info
    cluster.destroy(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def settings(db_url, replica, tmp_path_factory) -> Settings:
    return Settings(db=DatabaseSettings(url=db_url), auth=AuthSettings(secret_key="test"),
                    uploads=UploadSettings(max_bytes=200_000, dir=tmp_path_factory.mktemp("uploads")),
                    replicas=ReplicaSettings(urls=(replica.url(),), max_lag_s=MAX_LAG_S, check_s=0.2,
                                             read_your_writes_s=MAX_LAG_S + 0.5))


def _on_standby(replica, sql: str):
    conn = psycopg2.connect(replica.dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()
    finally:
        conn.close()


def _caught_up(app, replica, timeout: float = 20.0) -> None:
    """Wait until the standby has replayed everything the primary has written, and is up."""
    reads = app.state.reads
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        reads.check()
        if reads.replicas[0].state == "up" and reads.replicas[0].lag_s(time.time()) < 1.0:
            return
        time.sleep(0.1)
    raise AssertionError(f"standby not caught up: {reads.report()}")


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@pytest.fixture()
def auth(tokens):
    return lambda who: {"Authorization": f"Bearer {tokens[who]}"}


def test_tiles_and_get_routes_read_from_the_standby(client, app, data, replica, auth):
    _caught_up(app, replica)
    client.cookies.clear()
    r0 = app.state.reads.replicas[0].reads
    x, y = _tile(106.3, 38.5, 12)
    tile = client.get(f"/tiles/cells/12/{x}/{y}.pbf", params={"grid_id": data["grid_a"]}, headers=auth("rm_a1"))
    assert tile.status_code == 200 and tile.content
    cells = client.get(f"/api/v1/grids/{data['grid_a']}/cells", headers=auth("rm_a1"))
    assert cells.status_code == 200
    seen = {f["properties"]["cell_id"] for f in cells.json()["features"]}
    assert "a1" in seen and "b1" not in seen
    assert client.get(f"/ogc/collections/cells-{data['grid_a']}/items", headers=auth("planner_a")).status_code == 200
    assert app.state.reads.replicas[0].reads - r0 >= 3
    # The reads were the standby's own sessions (pooled, so still open there).
    assert _on_standby(replica, f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{APPLICATION_NAME}'"
                       )[0] >= 1


def test_a_page_reads_the_standby_and_audits_on_the_primary(client, app, engine, data, replica, auth):
    client.cookies.clear()
    r0 = app.state.reads.replicas[0].reads
    page = client.get("/maps/rm", params={"grid_id": data["grid_a"], "rm_code": "RA1"}, headers=auth("rm_a1"))
    assert page.status_code == 200, page.text
    assert app.state.reads.replicas[0].reads > r0
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM audit_log WHERE object_type = 'map:rm' AND username = 'rm_a1'"
                              )).scalar()
    assert n == 1
    assert FRESH_COOKIE not in page.cookies  # a GET opens no read-your-writes window


def test_sign_in_opens_no_read_your_writes_window(client, password):
    r = client.post("/api/v1/auth/token", data={"username": "rm_a1", "password": password})
    assert r.status_code == 200
    assert FRESH_COOKIE not in r.cookies
    client.cookies.clear()


def test_writer_reads_own_write_at_once_others_within_the_lag_bound(client, app, replica, auth):
    reads = app.state.reads
    _caught_up(app, replica)
    _on_standby(replica, "SELECT pg_wal_replay_pause()")
    try:
        client.cookies.clear()
        r = client.post("/api/v1/users", headers=auth("admin"), json={
            "username": "fresh_rm", "password": "a long enough password", "role": "analyst",
            "legal_entity_code": "LEA"})
        wrote = time.time()
        assert r.status_code == 201, r.text
        assert FRESH_COOKIE in r.cookies
        # The writer (its cookie) reads from the primary: its own write is there at once.
        r0 = reads.replicas[0].reads
        assert client.get("/api/v1/users/fresh_rm", headers=auth("admin")).status_code == 200
        assert reads.replicas[0].reads == r0
        # Another client (no cookie) reads the paused standby while it is within the bound: not there yet.
        client.cookies.clear()
        other = client.get("/api/v1/users/fresh_rm", headers=auth("admin"))
        if reads.replicas[0].reads > r0:
            assert other.status_code == 404
        else:  # this machine was slow: the bound had passed and the primary answered
            assert time.time() - wrote > MAX_LAG_S - 1 and other.status_code == 200
        # Past the bound, the paused standby is lagging: /ready says so, reads go to the primary.
        end = time.monotonic() + 20
        while (state := client.get("/ready").json())["replicas"][0]["state"] != "lagging":
            assert time.monotonic() < end, state
            time.sleep(0.2)
        assert state["ready"] is True and state["reads_from"] == "primary"
        r1 = reads.replicas[0].reads
        assert client.get("/api/v1/users/fresh_rm", headers=auth("admin")).status_code == 200
        assert reads.replicas[0].reads == r1
    finally:
        _on_standby(replica, "SELECT pg_wal_replay_resume()")
    # Replay resumed: the standby is up again and serves the write to everyone.
    _caught_up(app, replica)
    r2 = reads.replicas[0].reads
    client.cookies.clear()
    assert client.get("/api/v1/users/fresh_rm", headers=auth("admin")).status_code == 200
    assert reads.replicas[0].reads == r2 + 1


def test_no_get_route_writes_on_the_standby(client, app, data, replica, auth):
    """Every GET route without path parameters and every map page answers without a 500 on the standby
    (a GET that wrote there would fail: a standby is read-only)."""
    _caught_up(app, replica)
    client.cookies.clear()
    r0 = app.state.reads.replicas[0].reads
    paths = [p for p, ops in app.openapi()["paths"].items() if "get" in ops and "{" not in p]
    g = data["grid_a"]
    paths += [f"/api/v1/grids/{g}", f"/api/v1/grids/{g}/summary", f"/api/v1/grids/{g}/cells/a1",
              f"/api/v1/grids/{g}/cells/a1/customers", f"/api/v1/grids/{g}/unplaced",
              "/api/v1/customers/CA1", f"/maps/dashboard?grid_id={g}", f"/api/v1/grids/{g}/export"]
    for who in ("admin", "rm_a1"):
        for path in paths:
            r = client.get(path, headers=auth(who))
            assert r.status_code < 500, (who, path, r.status_code, r.text[:300])
    assert app.state.reads.replicas[0].reads - r0 >= len(paths)


def test_stopped_standby_reads_fall_back_and_ready_says_so(client, app, data, replica, auth):
    _caught_up(app, replica)
    client.cookies.clear()
    x, y = _tile(106.3, 38.5, 12)
    tile = f"/tiles/cells/12/{x}/{y}.pbf"
    assert cluster.stop(replica)
    try:
        fallback = app.state.reads.fallback_reads
        t = time.perf_counter()
        for _ in range(3):
            r = client.get(tile, params={"grid_id": data["grid_a"]}, headers=auth("rm_a1"))
            assert r.status_code == 200
        assert time.perf_counter() - t < 10
        assert app.state.reads.fallback_reads >= fallback + 2  # the first may be the one that found it down
        ready = client.get("/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["ready"] is True and body["reads_from"] == "primary"
        assert body["replicas"][0]["state"] == "down" and body["replicas"][0]["error"]
    finally:
        cluster.start(replica)
    _caught_up(app, replica)
    body = client.get("/ready").json()
    assert body["reads_from"] == "replicas" and body["replicas"][0]["state"] == "up"
