"""Background job rows: created queued, moved through running to done or failed, with progress."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import NotFound
from geodata.scope import Scope, where

STATUSES = ("queued", "running", "done", "failed")
_COLUMNS = "id, kind, status, progress, message, result, username, legal_entity_id, created_at, updated_at"


def create_job(conn: Connection, *, kind: str, username: str,
               legal_entity_id: int | None = None, job_id: str | None = None) -> str:
    """Insert a queued job and return its id (a UUID string; ``job_id`` if given)."""
    job_id = job_id or str(uuid.uuid4())
    conn.execute(
        text("INSERT INTO job (id, kind, username, legal_entity_id) VALUES (:i, :k, :u, :le)"),
        {"i": job_id, "k": kind, "u": username, "le": legal_entity_id},
    )
    return job_id


def update_job(conn: Connection, job_id: str, *, status: str | None = None,
               progress: float | None = None, message: str | None = None,
               result: dict[str, Any] | None = None) -> None:
    """Change the given fields of a job (others stay) and touch ``updated_at``."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown job status {status!r}")
    if progress is not None:
        progress = min(1.0, max(0.0, float(progress)))
    done = conn.execute(
        text(
            "UPDATE job SET status = COALESCE(:s, status), progress = COALESCE(:p, progress),"
            " message = COALESCE(:m, message), result = COALESCE(CAST(:r AS jsonb), result),"
            " updated_at = now() WHERE id = :i"
        ),
        {"i": job_id, "s": status, "p": progress, "m": message,
         "r": None if result is None else json.dumps(result, ensure_ascii=False, default=str)},
    ).rowcount
    if not done:
        raise NotFound(f"job {job_id!r} does not exist")


def get_job(conn: Connection, job_id: str, *, scope: Scope | None = None) -> dict[str, Any]:
    """One job as a dict; NotFound if absent or outside ``scope``."""
    cond = where(scope, "job", "j") if scope else None
    sql = f"SELECT {_COLUMNS} FROM job j WHERE id = :id" + (f" AND {cond.sql}" if cond else "")
    row = conn.execute(text(sql), {"id": job_id, **(cond.params if cond else {})}).mappings().first()
    if row is None:
        raise NotFound(f"job {job_id!r} does not exist")
    return dict(row)
