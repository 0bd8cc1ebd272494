"""After a crash: interrupted jobs and import runs are marked failed, and a grid whose customers changed
since it was assigned says so until it is assigned again."""

import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from geodata import assign, gaps, grids, jobs, liveness
from geodata.importers import run_import
from geodata.importers.base import finish_run, start_run
from tests.conftest import seed_two_counties

CUSTOMERS = "customer_id,county_code,lon,lat,deposit_balance\n"


def _status(engine, table, key):
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT status, message FROM {table} WHERE id = :i"), {"i": key}).one())


def _dead_run(engine) -> int:
    """An import run row left 'running' by a process that is gone (nobody holds its lock)."""
    with engine.begin() as conn:
        return conn.execute(text("INSERT INTO import_run (kind, file_name, sha256, user_name) "
                                 "VALUES ('customers', 'c.csv', repeat('0', 64), 'u') RETURNING id")).scalar_one()


def test_recovery_fails_dead_work_and_leaves_a_live_process_alone(engine, db_url):
    """Before: a job or run whose process was killed stayed 'running' for ever. Now start-up marks it failed,
    but not the work of another process that is alive (another API worker, a CLI import)."""
    other = create_engine(db_url)  # another live process: its own owner session
    try:
        live_job = str(uuid.uuid4())
        liveness.hold_job(other, live_job)
        live_run = start_run(other, kind="customers", path=Path("live.csv"), sha="-", user="u", crs="wgs84",
                             dry_run=False, synthetic=False, options={})
        with engine.begin() as conn:
            jobs.create_job(conn, kind="import:customers", username="u", job_id=live_job)
            jobs.update_job(conn, live_job, status="running")
            dead_job = jobs.create_job(conn, kind="grid:assign", username="u")
            jobs.update_job(conn, dead_job, status="running")
            queued_job = jobs.create_job(conn, kind="grid:assign", username="u")
            done_job = jobs.create_job(conn, kind="grid:assign", username="u")
            jobs.update_job(conn, done_job, status="done")
        dead_run = _dead_run(engine)
        with engine.begin() as conn:
            got = liveness.recover_interrupted(conn)
        assert got == {"jobs": sorted([dead_job, queued_job]), "import_runs": [dead_run]}
        for key in (dead_job, queued_job):
            assert _status(engine, "job", key) == ("failed", liveness.INTERRUPTED)
        assert _status(engine, "import_run", dead_run) == ("failed", liveness.INTERRUPTED)
        assert _status(engine, "job", live_job)[0] == "running"
        assert _status(engine, "job", done_job)[0] == "done"
        assert _status(engine, "import_run", live_run)[0] == "running"
        # The live process finishes its run normally (and gives its lock up).
        finish_run(other, live_run, status="ok")
        assert _status(engine, "import_run", live_run)[0] == "ok"
        # Now it is killed while its job still runs: its session ends, and with it the lock.
        with engine.connect() as conn:
            pids = conn.execute(text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :c"),
                                {"c": liveness.JOB_LOCK_CLASS}).scalars().all()
            assert len(pids) == 1
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pids[0]})
        with engine.begin() as conn:
            for _ in range(100):  # the backend goes away asynchronously
                if not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                    {"p": pids[0]}).scalar():
                    break
                conn.execute(text("SELECT pg_sleep(0.05)"))
            assert liveness.recover_interrupted(conn) == {"jobs": [live_job], "import_runs": []}
        assert _status(engine, "job", live_job) == ("failed", liveness.INTERRUPTED)
    finally:
        other.dispose()


@pytest.fixture(scope="module")
def two(engine, tmp_path_factory):
    """Two neighbouring counties, an assigned and scored H3 grid each, three customers."""
    d = tmp_path_factory.mktemp("crash")
    west, east = seed_two_counties(engine, d, le_code="LC", score=True)
    return west, east, d


def _gap_run(engine, grid_id):
    with engine.connect() as conn:
        return gaps.latest_scores(conn, grid_id=grid_id).attrs["gap_run"]


def test_customers_imported_but_never_re_assigned_make_the_grid_stale_until_assigned_again(engine, two):
    """The process died between the import's commit and its automatic re-assignment: the gap answer said
    'stale: false' while the moved customer stayed in its old cell. Now both grids say why they are stale."""
    west, east, d = two
    assert not _gap_run(engine, west)["stale"] and not _gap_run(engine, east)["stale"]
    f = d / "moved.csv"
    f.write_text(CUSTOMERS + "W1,640105,106.05,38.05,100\nW2,640106,106.35,38.15,200\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="u", rejects_dir=d)
    assert s["counts"]["updated"] == 1, s
    # ... and here the process was killed: refresh.after_import never ran.
    for g in (west, east):  # W2 is still placed in the west grid, and missing from the east one
        run = _gap_run(engine, g)
        assert run["stale"], (g, run)
        assert f"1 customer(s) changed by import run(s) #{s['run_id']} after the customers were assigned" \
            in " ".join(run["stale_reasons"])
    with engine.begin() as conn:
        assign.assign_customers(conn, grid_id=west)
        assert assign.assignment_staleness(conn, grid_id=west) == []
        assert assign.assignment_staleness(conn, grid_id=east) != []
        assign.assign_customers(conn, grid_id=east)
        gaps.score_grid(conn, grid_id=west, trigger="test")
        gaps.score_grid(conn, grid_id=east, trigger="test")
    assert not _gap_run(engine, west)["stale"] and not _gap_run(engine, east)["stale"]


def test_a_run_that_stored_nothing_or_came_before_the_assignment_does_not_make_it_stale(engine, two):
    west, east, d = two
    f = d / "bad.csv"
    f.write_text(CUSTOMERS + "X1,640105,not-a-number,38.05,1\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="u", rejects_dir=d)  # every row rejected
    dead = _dead_run(engine)  # a crashed run that never committed rows
    with engine.begin() as conn:
        liveness.recover_interrupted(conn)
        assert assign.assignment_staleness(conn, grid_id=west) == [], s
        assert assign.assignment_staleness(conn, grid_id=east) == []
    assert _status(engine, "import_run", dead)[0] == "failed"


def test_only_the_newest_assigned_grid_of_a_county_and_kind_is_checked(engine, two):
    """Imports re-assign only the newest assigned version; older ones are history and are not flagged."""
    west, _east, d = two
    with engine.begin() as conn:
        newer = grids.build_grid(conn, county_code="640105", kind="h3", resolution=7)["id"]
        assign.assign_customers(conn, grid_id=newer)
    f = d / "moved_back.csv"
    f.write_text(CUSTOMERS + "W2,640105,106.15,38.15,200\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="u", rejects_dir=d)
    assert s["counts"]["updated"] == 1, s
    with engine.connect() as conn:
        assert assign.assignment_staleness(conn, grid_id=west) == []
        assert assign.assignment_staleness(conn, grid_id=newer) != []
