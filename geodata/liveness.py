"""Which queued or running jobs and import runs still have a live process behind them.

A process that starts a job or an import run holds a session-level advisory lock keyed
by its id, on a database session of its own (its *owner session*), from before the row
is written until the row is finished. The lock lives exactly as long as that session,
so as long as the process: after ``kill -9`` or a power cut the session ends and the
lock is free. :func:`recover_interrupted`, which every process that opens the database
runs first (``api.db.open_engine``), marks failed every ``queued``/``running`` row whose
lock it can take: no live process holds it. A job of another live API worker keeps its
lock and is left alone.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("gridmkt.liveness")

JOB_LOCK_CLASS = 0x6A62  # 'jb': (JOB_LOCK_CLASS, hashtext(job id))
RUN_LOCK_CLASS = 0x7272  # 'rr': (RUN_LOCK_CLASS, import run id)
INTERRUPTED = "interrupted: the process ended while it was running"


class _Owner:
    """One process's owner session on one database; opened on the first lock, closed with the last."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._mutex = threading.Lock()
        self._raw = None
        self._held: dict[tuple[int, int | str], int] = {}

    def _cursor(self):
        if self._raw is None:
            raw = self._engine.raw_connection()
            raw.detach()  # never handed back to the pool: its locks must not go to another user
            raw.dbapi_connection.autocommit = True
            self._raw = raw
        return self._raw.cursor()

    def _close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            except Exception:  # already broken: nothing more to release
                pass
            self._raw = None

    def hold(self, cls: int, key: int | str) -> None:
        with self._mutex:
            sql = "SELECT pg_advisory_lock(%s, hashtext(%s))" if isinstance(key, str) else \
                "SELECT pg_advisory_lock(%s, %s)"
            try:
                cur = self._cursor()
                cur.execute(sql, (cls, key))
                cur.close()
            except Exception:
                self._close()
                raise
            self._held[(cls, key)] = self._held.get((cls, key), 0) + 1

    def release(self, cls: int, key: int | str) -> None:
        with self._mutex:
            n = self._held.get((cls, key), 0)
            if not n:
                return
            if n > 1:
                self._held[(cls, key)] = n - 1
            else:
                del self._held[(cls, key)]
            sql = "SELECT pg_advisory_unlock(%s, hashtext(%s))" if isinstance(key, str) else \
                "SELECT pg_advisory_unlock(%s, %s)"
            try:
                if self._raw is not None:
                    cur = self._cursor()
                    cur.execute(sql, (cls, key))
                    cur.close()
            except Exception:  # a broken session has released everything already
                log.warning("could not release advisory lock %s/%s", cls, key, exc_info=True)
                self._close()
            if not self._held:
                self._close()


_OWNERS: weakref.WeakKeyDictionary[Engine, tuple[int, _Owner]] = weakref.WeakKeyDictionary()
_OWNERS_MUTEX = threading.Lock()


def _owner(engine: Engine) -> _Owner:
    with _OWNERS_MUTEX:
        found = _OWNERS.get(engine)
        if found is None or found[0] != os.getpid():  # a forked child has its own sessions
            found = (os.getpid(), _Owner(engine))
            _OWNERS[engine] = found
        return found[1]


def hold_job(engine: Engine, job_id: str) -> None:
    """Mark job ``job_id`` as owned by this process until :func:`release_job` (before its row exists)."""
    _owner(engine).hold(JOB_LOCK_CLASS, str(job_id))


def release_job(engine: Engine, job_id: str) -> None:
    """The job has ended (done or failed) or was never started."""
    _owner(engine).release(JOB_LOCK_CLASS, str(job_id))


def hold_run(engine: Engine, run_id: int) -> None:
    """Mark import run ``run_id`` as owned by this process until :func:`release_run`."""
    _owner(engine).hold(RUN_LOCK_CLASS, int(run_id))


def release_run(engine: Engine, run_id: int) -> None:
    """The import run is finished (its status written)."""
    _owner(engine).release(RUN_LOCK_CLASS, int(run_id))


def recover_interrupted(conn: Connection) -> dict[str, list]:
    """Mark failed, with the reason, every queued or running job and running import run that no live
    process holds; returns their ids. Rows held by a live process (any host) are left alone."""
    # A transaction-level try-lock succeeds only when no session holds the row's lock; it is given
    # back at commit. Only rows still queued/running are tried.
    job_ids = conn.execute(text(
        "UPDATE job SET status = 'failed', message = :m, updated_at = now() WHERE id IN ("
        " SELECT id FROM job WHERE status IN ('queued', 'running')"
        " AND pg_try_advisory_xact_lock(:c, hashtext(id))) RETURNING id"),
        {"m": INTERRUPTED, "c": JOB_LOCK_CLASS}).scalars().all()
    run_ids = conn.execute(text(
        "UPDATE import_run SET status = 'failed', message = :m, finished_at = now() WHERE id IN ("
        " SELECT id FROM import_run WHERE status = 'running' AND pg_try_advisory_xact_lock(:c, id))"
        " RETURNING id"),
        {"m": INTERRUPTED, "c": RUN_LOCK_CLASS}).scalars().all()
    if job_ids or run_ids:
        log.warning("marked failed as interrupted: jobs %s, import runs %s", job_ids, run_ids)
    return {"jobs": sorted(job_ids), "import_runs": sorted(run_ids)}
