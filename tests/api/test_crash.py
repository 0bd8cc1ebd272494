"""Crash test: the real server (``gridmkt serve``) killed with SIGKILL during an import and during the
re-assignment that follows one, then started again.

Before: the job and the import run stayed ``running`` for ever, and after a crash between an import's
commit and its re-assignment the gap answers said ``stale: false`` while moved customers kept their old
cell. The test makes each moment deterministic by holding, from its own session, the lock the server's
import (or re-assignment) must wait for, and kills the server while it waits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from api.auth import create_token
from api.settings import AuthSettings
from geodata import assign, liveness
from tests.conftest import seed_two_counties, wait_for_lock_waiter

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEY = "crash-test-key-0123456789abcdef0123456789"
CUSTOMERS = "customer_id,county_code,lon,lat,deposit_balance\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``gridmkt serve`` in a child process on this module's database."""

    def __init__(self, db_url: str, home: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "GRIDMKT_DATABASE_URL": db_url, "GRIDMKT_HOME": str(home),
                    "GRIDMKT_SECRET_KEY": KEY, "GRIDMKT_UPLOAD_DIR": str(home / "uploads"),
                    "PYTHONPATH": str(ROOT)}
        self.proc: subprocess.Popen | None = None
        self.log = home / "server.log"

    def start(self) -> None:
        """Start the server, unless it is serving already (the restarted server of the test before: one
        start fewer, each costs seconds of imports)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/health", timeout=10).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            self.kill()
        with open(self.log, "ab") as log:  # a file, not a pipe nobody reads: the server must never block on it
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(self.port),
                 "--log-level", "warning"], cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        end = time.monotonic() + 300  # imports alone take a minute on a loaded 2-core machine
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server did not start: {self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


@pytest.fixture(scope="module")
def world(engine, db_url, tmp_path_factory):
    """Two counties with an assigned, scored H3 grid each, three customers, an outlet and its RM, a
    system-wide admin."""
    d = tmp_path_factory.mktemp("crash")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LK', '甲农商行')"))
        conn.execute(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) VALUES ('O1', '网点',"
                          " (SELECT id FROM legal_entity WHERE code = 'LK'), '640105',"
                          " ST_SetSRID(ST_MakePoint(106.1, 38.1), 4326))"))
        conn.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) VALUES ('R1', '客户经理',"
                          " (SELECT id FROM legal_entity WHERE code = 'LK'), 'O1')"))
        conn.execute(text("INSERT INTO app_user (username, password_hash, role) VALUES ('root', 'x', 'admin')"))
    ids = seed_two_counties(engine, d, le_code="LK", score=True)
    server = Server(db_url, d)
    headers = {"Authorization": "Bearer " + create_token(AuthSettings(secret_key=KEY), username="root",
                                                         role="admin")}
    yield {"west": ids[0], "east": ids[1], "server": server, "h": headers}
    server.stop()


def _upload(w, name: str, body: str) -> str:
    r = httpx.post(f"{w['server'].url}/api/v1/imports/customers", headers=w["h"], timeout=60,
                   files={"file": (name, body.encode(), "text/csv")})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def _row(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).mappings().first()


def _finished(job: dict) -> dict | None:
    return job if job["status"] in ("done", "failed") else None


def _wait(check, what: str, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if got := check():
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_during_an_import_leaves_nothing_running_after_restart(engine, world):
    server = world["server"]
    server.start()
    with engine.connect() as blocker:
        # The import's upsert needs ROW EXCLUSIVE on customer: it waits while this session holds SHARE.
        blocker.execute(text("LOCK TABLE customer IN SHARE MODE"))
        job_id = _upload(world, "more.csv", CUSTOMERS + "N1,640105,106.06,38.06,5\n")
        _wait(lambda: _row(engine, "SELECT 1 FROM job WHERE id = :i AND status = 'running'", i=job_id), "job")
        wait_for_lock_waiter(engine, timeout=60)
        run = _row(engine, "SELECT id, status FROM import_run WHERE file_name = 'more.csv'")
        assert run["status"] == "running"
        server.kill()
        blocker.rollback()
    # What a killed process leaves: both rows still say running.
    assert _row(engine, "SELECT status FROM job WHERE id = :i", i=job_id)["status"] == "running"
    server.start()
    job = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=world["h"], timeout=30).json()
    assert job["status"] == "failed" and job["message"] == liveness.INTERRUPTED, job
    after = _row(engine, "SELECT status, message, finished_at FROM import_run WHERE id = :i", i=run["id"])
    assert after["status"] == "failed" and after["message"] == liveness.INTERRUPTED and after["finished_at"]
    assert _row(engine, "SELECT count(*) AS n FROM job WHERE status IN ('queued', 'running')")["n"] == 0
    assert _row(engine, "SELECT count(*) AS n FROM import_run WHERE status = 'running'")["n"] == 0
    assert _row(engine, "SELECT count(*) AS n FROM customer WHERE customer_id = 'N1'")["n"] == 0  # rolled back


def test_kill_during_the_re_assignment_after_an_import_shows_the_grids_as_stale(engine, world):
    server, west, east = world["server"], world["west"], world["east"]
    server.start()
    with engine.connect() as blocker:
        # The re-assignment that follows the import waits for this session's per-grid assignment locks.
        for g in (west, east):
            blocker.execute(text("SELECT pg_advisory_lock(:c, :g)"), {"c": assign.ASSIGN_LOCK_CLASS, "g": g})
        blocker.commit()
        job_id = _upload(world, "moved.csv", CUSTOMERS + "W2,640106,106.35,38.15,200\n")
        run = _wait(lambda: _row(engine, "SELECT id FROM import_run WHERE file_name = 'moved.csv' AND status = 'ok'"),
                    "the import to commit")
        wait_for_lock_waiter(engine, timeout=60)
        server.kill()
        blocker.execute(text("SELECT pg_advisory_unlock_all()"))
        blocker.commit()
    server.start()
    h, url = world["h"], server.url
    job = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=h, timeout=30).json()
    assert job["status"] == "failed" and job["message"] == liveness.INTERRUPTED, job
    # W2 moved east but still sits in a west cell: both grids say so, in the API and on the dashboard.
    assert _row(engine, "SELECT count(*) AS n FROM customer_cell WHERE grid_id = :g AND customer_id = 'W2'",
                g=west)["n"] == 1
    reason = f"1 customer(s) changed by import run(s) #{run['id']}"
    for g in (west, east):
        answer = httpx.get(f"{url}/api/v1/grids/{g}/gaps", headers=h, timeout=30).json()
        assert answer["gap_run"]["stale"] is True, answer["gap_run"]
        assert any(reason in r for r in answer["gap_run"]["stale_reasons"]), answer["gap_run"]
        detail = httpx.get(f"{url}/api/v1/grids/{g}", headers=h, timeout=30).json()
        assert any(reason in r for r in detail["assignment_stale_reasons"]), detail
    # (no households here, so no cell has a gap score: the page is coloured by customers)
    page = httpx.get(f"{url}/maps/dashboard", params={"grid_id": west, "measure": "customers"}, headers=h,
                     timeout=60)
    assert page.status_code == 200 and reason in page.text, page.text[:500]
    # Assigning again clears it.
    for g in (west, east):
        poll = httpx.post(f"{url}/api/v1/grids/{g}/assignment", headers=h, timeout=30).json()["poll"]
        done = _wait(lambda p=poll: _finished(httpx.get(f"{url}{p}", headers=h, timeout=30).json()),
                     "the re-assignment")
        assert done["status"] == "done", done
        assert httpx.get(f"{url}/api/v1/grids/{g}", headers=h, timeout=30).json()["assignment_stale_reasons"] == []
    assert _row(engine, "SELECT count(*) AS n FROM customer_cell WHERE grid_id = :g AND customer_id = 'W2'",
                g=east)["n"] == 1
    server.kill()
