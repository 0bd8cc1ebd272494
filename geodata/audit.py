"""The audit log: who viewed, exported, imported or changed what, and when."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

ACTIONS = ("view", "export", "import", "create", "update", "disable", "enable", "delete", "login",
           "login_failed", "lockout", "publish")


def record(conn: Connection, *, username: str, action: str, object_type: str,
           object_id: str | None = None, detail: dict[str, Any] | None = None) -> int:
    """Append one entry and return its id; ``action`` is one of :data:`ACTIONS`."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    return conn.execute(
        text(
            "INSERT INTO audit_log (username, action, object_type, object_id, detail)"
            " VALUES (:u, :a, :t, :i, CAST(:d AS jsonb)) RETURNING id"
        ),
        {"u": username, "a": action, "t": object_type, "i": object_id,
         "d": json.dumps(detail or {}, ensure_ascii=False, default=str)},
    ).scalar_one()


def entries(conn: Connection, *, username: str | None = None, object_type: str | None = None,
            legal_entity_id: int | None = None, limit: int = 100,
            offset: int = 0) -> list[dict[str, Any]]:
    """Newest entries first, optionally for one user, object type or legal entity's users."""
    rows = conn.execute(
        text(
            "SELECT id, at, username, action, object_type, object_id, detail FROM audit_log"
            " WHERE (CAST(:u AS text) IS NULL OR username = :u)"
            " AND (CAST(:t AS text) IS NULL OR object_type = :t)"
            " AND (CAST(:le AS integer) IS NULL OR username IN"
            "      (SELECT username FROM app_user WHERE legal_entity_id = :le))"
            " ORDER BY id DESC LIMIT :l OFFSET :o"
        ),
        {"u": username, "t": object_type, "le": legal_entity_id, "l": limit, "o": offset},
    ).mappings()
    return [dict(r) for r in rows]
