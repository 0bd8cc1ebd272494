"""After a crash: interrupted jobs and import runs are marked failed."""

import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from geodata import jobs, liveness
from geodata.importers.base import finish_run, start_run

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
