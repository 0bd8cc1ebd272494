"""Replication positions: how far the primary has written and how far a hot standby has replayed.

Positions are WAL byte offsets (``pg_lsn - '0/0'``), comparable across the primary and its standbys.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class StandbyPosition:
    """What a server reports about itself as a read replica."""

    in_recovery: bool  # False: not (or no longer) a standby, e.g. promoted
    replay: int | None  # WAL position replayed so far (visible to new snapshots)


def primary_position(conn: Connection) -> int:
    """The primary's WAL insert position: every commit already visible there lies at or before it."""
    return int(conn.execute(text("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")).scalar_one())


def standby_position(conn: Connection) -> StandbyPosition:
    """Whether ``conn``'s server is a standby, and its replay position."""
    row = conn.execute(text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn")).one()
    return StandbyPosition(in_recovery=bool(row[0]), replay=None if row[1] is None else int(row[1]))


def client_count(conn: Connection, *, application_name: str) -> int:
    """Sessions on ``conn``'s server opened under ``application_name`` (other than ``conn`` itself)."""
    return int(conn.execute(text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :a AND pid <> pg_backend_pid()"),
        {"a": application_name}).scalar_one())
