"""Import runs a user may see (runs started by users of the same legal entity), newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.scope import Scope, where

_RUN = ("r.id, r.kind, r.file_name, r.user_name, r.started_at, r.finished_at, r.status, r.dry_run,"
        " r.synthetic, r.encoding, r.source_crs, r.counts, r.warnings, r.message, r.rejects_path")


def import_runs(conn: Connection, *, scope: Scope, limit: int, offset: int,
                run_id: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """One page of the import runs ``scope`` may see (or just run ``run_id``), and the total.

    ``rejects_path`` is the server-side file of rejected rows (None when there is none).
    """
    cond = where(scope, "import_run", "r")
    extra = "" if run_id is None else " AND r.id = :run_id"
    params = {**cond.params, "run_id": run_id, "lim": limit, "off": offset}
    total = conn.execute(text(f"SELECT count(*) FROM import_run r WHERE {cond.sql}{extra}"), params).scalar_one()
    rows = conn.execute(text(f"SELECT {_RUN} FROM import_run r WHERE {cond.sql}{extra}"
                             " ORDER BY r.id DESC LIMIT :lim OFFSET :off"), params).mappings()
    return [dict(r) for r in rows], total


def import_run_visible(conn: Connection, *, scope: Scope, run_id: int) -> bool:
    """Whether ``scope`` may see an import run (runs started by users of its legal entity)."""
    cond = where(scope, "import_run", "r")
    return conn.execute(text(f"SELECT 1 FROM import_run r WHERE r.id = :rid AND {cond.sql}"),
                        {**cond.params, "rid": run_id}).first() is not None
