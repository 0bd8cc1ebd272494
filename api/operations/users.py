"""User changes (administrators): add, disable, enable; each writes one audit row ``<action> user <name>``.

``scope`` is the signed-in administrator's: one bound to a legal entity manages that entity's users only
(others are "not found"); the command line passes None (a local administrator)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from api.auth import hash_password
from geodata import audit, users
from geodata.errors import BadInput, NotFound
from geodata.scope import Scope

MIN_PASSWORD = 8


def _visible(scope: Scope | None, row: dict[str, Any]) -> dict[str, Any]:
    # An admin of one legal entity must not learn about users of another.
    if scope is not None and scope.legal_entity_id is not None and row["legal_entity_id"] != scope.legal_entity_id:
        raise NotFound(f"user {row['username']!r} does not exist")
    return row


def create(conn: Connection, *, actor: str, username: str, password: str, role: str,
           legal_entity_code: str | None = None, rm_code: str | None = None, outlet_codes: list[str] = (),
           scope: Scope | None = None) -> dict[str, Any]:
    """Add a user (the password stored as an argon2 hash)."""
    if len(password or "") < MIN_PASSWORD:
        raise BadInput(f"the password needs at least {MIN_PASSWORD} characters")
    le_id = users.legal_entity_id(conn, code=legal_entity_code) if legal_entity_code else None
    if scope is not None and scope.legal_entity_id is not None and le_id != scope.legal_entity_id:
        raise NotFound(f"legal entity {legal_entity_code!r} does not exist")
    row = users.create_user(conn, username=username, password_hash=hash_password(password), role=role,
                            legal_entity_id=le_id, rm_code=rm_code, outlet_codes=list(outlet_codes))
    audit.record(conn, username=actor, action="create", object_type="user", object_id=row["username"],
                 detail={"role": role, "legal_entity_id": le_id})
    return row


def disable(conn: Connection, *, actor: str, username: str, scope: Scope | None = None) -> dict[str, Any]:
    """Disable a user: sign-in refused, tokens stop working (Conflict for the last system-wide admin)."""
    _visible(scope, users.get_user(conn, username=username))
    row = users.disable_user(conn, username=username)
    audit.record(conn, username=actor, action="disable", object_type="user", object_id=username)
    return row


def enable(conn: Connection, *, actor: str, username: str, scope: Scope | None = None) -> dict[str, Any]:
    """Enable a disabled user again."""
    _visible(scope, users.get_user(conn, username=username))
    row = users.enable_user(conn, username=username)
    audit.record(conn, username=actor, action="enable", object_type="user", object_id=username)
    return row


def get(conn: Connection, *, username: str, scope: Scope | None = None) -> dict[str, Any]:
    """One user, if ``scope`` administers them."""
    return _visible(scope, users.get_user(conn, username=username))
