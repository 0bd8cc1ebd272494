"""Background jobs: run a function in a worker thread, its progress written to the ``job`` row.

The route that polls a job is ``api/routes/jobs.py``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import Engine

from api.auth import CurrentUser
from geodata import jobs, liveness
from geodata.errors import GeodataError

log = logging.getLogger("gridmkt.jobs")

ProgressFn = Callable[..., None]
JobFn = Callable[[ProgressFn], dict[str, Any] | None]


class JobRunner:
    """A small thread pool whose jobs report progress into the database."""

    def __init__(self, engine: Engine, *, workers: int = 2, min_interval_s: float = 0.5):
        self.engine = engine
        self.min_interval_s = min_interval_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gridmkt-job")
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, *, kind: str, user: CurrentUser, fn: JobFn) -> str:
        """Create a queued job row, start ``fn(progress)`` in a worker, return the job id.

        From before its row exists until it ends, this process holds the job's advisory lock
        (``geodata.liveness``): a job whose process died is marked failed on the next start-up.
        """
        job_id = str(uuid.uuid4())
        liveness.hold_job(self.engine, job_id)
        try:
            with self.engine.begin() as conn:
                jobs.create_job(conn, kind=kind, username=user.username,
                                legal_entity_id=user.legal_entity_id, job_id=job_id)
            future = self._pool.submit(self._run, job_id, fn)
        except BaseException:
            liveness.release_job(self.engine, job_id)
            raise
        with self._lock:
            self._futures[job_id] = future
        future.add_done_callback(lambda _f: self._forget(job_id))
        return job_id

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until a job of this runner has finished (tests, CLI)."""
        with self._lock:
            future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting jobs; wait for the running ones unless told not to."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._futures.pop(job_id, None)

    def _update(self, job_id: str, **fields: Any) -> None:
        with self.engine.begin() as conn:
            jobs.update_job(conn, job_id, **fields)

    def _progress(self, job_id: str) -> ProgressFn:
        last = [0.0]

        def progress(fraction: float, message: str = "") -> None:
            # Throttled: an importer may call this per chunk, thousands of times.
            now = time.monotonic()
            if fraction < 1.0 and now - last[0] < self.min_interval_s:
                return
            last[0] = now
            self._update(job_id, progress=fraction, message=message or None)

        return progress

    def _run(self, job_id: str, fn: JobFn) -> None:
        try:
            self._run_held(job_id, fn)
        finally:
            liveness.release_job(self.engine, job_id)

    def _run_held(self, job_id: str, fn: JobFn) -> None:
        self._update(job_id, status="running")
        try:
            result = fn(self._progress(job_id))
        except Exception as exc:
            log.exception("job %s failed", job_id)
            # Domain errors explain themselves; anything else is reported by type only.
            message = str(exc) if isinstance(exc, (GeodataError, ValueError)) else type(exc).__name__
            self._update(job_id, status="failed", message=message[:2000])
            return
        try:
            self._update(job_id, status="done", progress=1.0, result=result or {})
        except Exception:
            # e.g. a NaN jsonb refuses: the job must not stay 'running' for ever
            log.exception("job %s: result not stored", job_id)
            self._update(job_id, status="failed", message="the job finished but its result could not be stored")
