"""Visit tasks (走访任务): a branch manager asks one of their RMs to visit a customer by a date.

A task names an RM the requester may see (a branch manager: their outlets'
RMs) and a customer of that RM's territory that the requester sees too. Open
tasks enter the RM's plans first, always; a check-in at the customer by that
RM marks them done (``geodata.visits.checkins``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput, NotFound
from geodata.scope import Scope, where
from geodata.visits.common import check_rm, customer_clause

STATUSES = ("open", "done", "cancelled")
_COLUMNS = ("t.task_id, t.customer_id, c.name, t.rm_code, t.assigned_by, t.due_date, to_char(t.window_start, 'HH24:MI')"
            " AS window_start, to_char(t.window_end, 'HH24:MI') AS window_end, t.note, t.status, t.done_visit_id,"
            " t.created_at")


def create_task(conn: Connection, *, scope: Scope | None, user: str, rm_code: str, customer_id: str,
                due_date: dt.date, window_start: str | None = None, window_end: str | None = None,
                note: str | None = None) -> dict[str, Any]:
    """Store an open task for one of the RM's customers; returns it."""
    rm = check_rm(conn, scope=scope, rm_code=rm_code)
    cond, params = customer_clause(scope, rm, "c")
    if conn.execute(text(f"SELECT 1 FROM customer c WHERE c.customer_id = :cid AND {cond}"),
                    {**params, "cid": customer_id}).first() is None:
        raise NotFound(f"customer {customer_id!r} is not in RM {rm_code}'s territory")
    if (window_start is None) != (window_end is None):
        raise BadInput("window_start and window_end: give both or neither")
    if window_start is not None and window_start >= window_end:
        raise BadInput(f"window_start {window_start} must be before window_end {window_end}")
    tid = conn.execute(text(
        "INSERT INTO visit_task (customer_id, rm_code, assigned_by, due_date, window_start, window_end, note)"
        " VALUES (:c, :rm, :u, :d, CAST(:ws AS time), CAST(:we AS time), :n) RETURNING task_id"),
        {"c": customer_id, "rm": rm_code, "u": user, "d": due_date, "ws": window_start, "we": window_end,
         "n": note}).scalar_one()
    return get_task(conn, scope=scope, task_id=tid)


def _scoped(scope: Scope | None) -> tuple[str, dict[str, Any]]:
    if scope is None:
        return "TRUE", {}
    r, c = where(scope, "rm", "r"), where(scope, "customer", "c")
    return f"({r.sql}) AND ({c.sql})", r.params


def get_task(conn: Connection, *, scope: Scope | None, task_id: int) -> dict[str, Any]:
    """One task ``scope`` may see (its RM and its customer); NotFound otherwise."""
    cond, params = _scoped(scope)
    row = conn.execute(text(
        f"SELECT {_COLUMNS} FROM visit_task t JOIN rm r ON r.code = t.rm_code JOIN customer c"
        f" ON c.customer_id = t.customer_id WHERE t.task_id = :t AND {cond}"), {**params, "t": task_id}).mappings().first()
    if row is None:
        raise NotFound(f"visit task {task_id} does not exist")
    return dict(row)


def list_tasks(conn: Connection, *, scope: Scope | None, rm_code: str | None = None, status: str | None = None,
               limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Tasks ``scope`` may see, newest due first; (items, total)."""
    if status is not None and status not in STATUSES:
        raise BadInput(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    cond, params = _scoped(scope)
    base = (" FROM visit_task t JOIN rm r ON r.code = t.rm_code JOIN customer c ON c.customer_id = t.customer_id"
            f" WHERE {cond} AND (CAST(:rm AS text) IS NULL OR t.rm_code = :rm)"
            " AND (CAST(:st AS text) IS NULL OR t.status = :st)")
    params = {**params, "rm": rm_code, "st": status}
    total = conn.execute(text("SELECT count(*)" + base), params).scalar_one()
    rows = conn.execute(text(f"SELECT {_COLUMNS}{base} ORDER BY t.due_date DESC, t.task_id DESC"
                             " LIMIT :lim OFFSET :off"), {**params, "lim": limit, "off": offset}).mappings().all()
    return [dict(r) for r in rows], int(total)
