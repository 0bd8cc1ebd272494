"""Failed sign-ins and lockouts (``login_failure``), per submitted username and per client address.

A key (``("user", "alice")`` or ``("address", "10.0.0.7")``) collects failures in a window of
``window_s`` seconds; reaching its limit locks it for ``lockout_s`` seconds. The counts live in the
database, so every worker process sees the same lockout. The checking of passwords is the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

Key = tuple[str, str]  # (kind, key): kind 'user' or 'address'
KINDS = ("user", "address")
_KEY_CHARS = 200  # a submitted username may be any length: keys are cut, never refused


def _key(kind: str, key: str) -> dict[str, str]:
    if kind not in KINDS:
        raise ValueError(f"unknown login key kind {kind!r}")
    return {"k": kind, "key": key[:_KEY_CHARS]}


def locked_for(conn: Connection, *, keys: Sequence[Key]) -> int:
    """Seconds until the longest running lockout of ``keys`` ends (0: none is locked out)."""
    best = 0
    for kind, key in keys:
        left = conn.execute(text(
            "SELECT ceil(extract(epoch FROM locked_until - now())) FROM login_failure"
            " WHERE kind = :k AND key = :key AND locked_until > now()"), _key(kind, key)).scalar()
        best = max(best, int(left or 0))
    return best


def record_failure(conn: Connection, *, keys: Sequence[Key], limits: Mapping[str, int], window_s: int,
                   lockout_s: int) -> list[tuple[str, str, int]]:
    """Count one failure against each key (atomically: concurrent workers each count theirs).

    Returns ``(kind, key, failures)`` for each key whose lockout starts with this failure.
    """
    started = []
    for kind, key in keys:
        row = conn.execute(text(
            "INSERT INTO login_failure AS f (kind, key, failures, window_start, locked_until)"
            " VALUES (:k, :key, 1, now(), CASE WHEN 1 >= :lim THEN now() + make_interval(secs => :lock) END)"
            " ON CONFLICT (kind, key) DO UPDATE SET"
            "  failures = CASE WHEN f.window_start < now() - make_interval(secs => :win) THEN 1"
            "             ELSE f.failures + 1 END,"
            "  window_start = CASE WHEN f.window_start < now() - make_interval(secs => :win) THEN now()"
            "                 ELSE f.window_start END,"
            "  locked_until = CASE WHEN (CASE WHEN f.window_start < now() - make_interval(secs => :win) THEN 1"
            "                            ELSE f.failures + 1 END) >= :lim"
            "                  AND (f.locked_until IS NULL OR f.locked_until <= now())"
            "                 THEN now() + make_interval(secs => :lock) ELSE f.locked_until END"
            # now() is the transaction's start: equal only when this statement set the lockout
            " RETURNING f.failures, f.locked_until = now() + make_interval(secs => :lock)"),
            {**_key(kind, key), "lim": limits[kind], "win": window_s, "lock": lockout_s}).one()
        failures, starts = row
        if starts:
            started.append((kind, key[:_KEY_CHARS], failures))
    # Keep the table small: keys whose window and lockout are both over count for nothing.
    conn.execute(text(
        "DELETE FROM login_failure WHERE ctid = ANY(ARRAY(SELECT ctid FROM login_failure"
        " WHERE window_start < now() - make_interval(secs => :win)"
        " AND (locked_until IS NULL OR locked_until < now()) LIMIT 100))"), {"win": window_s})
    return started


def clear(conn: Connection, *, key: Key) -> None:
    """Forget the failures of one key (a successful sign-in clears its username's count)."""
    conn.execute(text("DELETE FROM login_failure WHERE kind = :k AND key = :key"), _key(*key))
