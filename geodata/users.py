"""Users of gridmkt: repository functions over ``app_user`` (hashing is done by the caller)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput, Conflict, NotFound
from geodata.scope import ROLES

_COLUMNS = (
    "u.id, u.username, u.role, u.legal_entity_id, le.code AS legal_entity_code,"
    " u.rm_code, u.outlet_codes, u.disabled, u.created_at"
)
_FROM = "FROM app_user u LEFT JOIN legal_entity le ON le.id = u.legal_entity_id"


def legal_entity_id(conn: Connection, *, code: str) -> int:
    """Id of the legal entity with this code."""
    found = conn.execute(text("SELECT id FROM legal_entity WHERE code = :c"), {"c": code}).scalar()
    if found is None:
        raise NotFound(f"legal entity {code!r} does not exist")
    return found


def _check(conn: Connection, role: str, le_id: int | None, rm_code: str | None,
           outlets: list[str]) -> None:
    """Refuse a user whose role and attachments do not fit together."""
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role != "admin" and le_id is None:
        raise BadInput(f"a {role} needs a legal entity")
    if role == "rm" and not rm_code:
        raise BadInput("an rm user needs an RM code (their employee code)")
    if role == "branch_manager" and not outlets:
        raise BadInput("a branch_manager needs at least one outlet")
    if le_id is not None and conn.execute(
        text("SELECT 1 FROM legal_entity WHERE id = :i"), {"i": le_id}
    ).first() is None:
        raise NotFound(f"legal entity id {le_id} does not exist")
    if rm_code:
        le = conn.execute(text("SELECT legal_entity_id FROM rm WHERE code = :c"), {"c": rm_code}).first()
        if le is None:
            raise NotFound(f"RM {rm_code!r} does not exist")
        if le_id is not None and le[0] is not None and le[0] != le_id:
            raise BadInput(f"RM {rm_code!r} belongs to another legal entity")
    if outlets:
        rows = conn.execute(
            text("SELECT code, legal_entity_id FROM outlet WHERE code = ANY(:c)"), {"c": outlets}
        ).all()
        missing = sorted(set(outlets) - {r[0] for r in rows})
        if missing:
            raise NotFound(f"outlet(s) {', '.join(missing)} do not exist")
        if any(le_id is not None and r[1] is not None and r[1] != le_id for r in rows):
            raise BadInput("every outlet must belong to the user's legal entity")


def create_user(conn: Connection, *, username: str, password_hash: str, role: str,
                legal_entity_id: int | None = None, rm_code: str | None = None,
                outlet_codes: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Add a user; refuses duplicates and roles without the attachments they need."""
    username = username.strip()
    if not username or len(username) > 64:
        raise BadInput("username must be 1 to 64 characters")
    outlets = list(dict.fromkeys(outlet_codes))
    _check(conn, role, legal_entity_id, rm_code, outlets)
    if conn.execute(text("SELECT 1 FROM app_user WHERE username = :u"), {"u": username}).first():
        raise Conflict(f"user {username!r} already exists")
    conn.execute(
        text(
            "INSERT INTO app_user (username, password_hash, role, legal_entity_id, rm_code, outlet_codes)"
            " VALUES (:u, :h, :r, :le, :rm, :o)"
        ),
        {"u": username, "h": password_hash, "r": role, "le": legal_entity_id, "rm": rm_code, "o": outlets},
    )
    return get_user(conn, username=username)


def get_user(conn: Connection, *, username: str, with_hash: bool = False) -> dict[str, Any]:
    """One user as a dict (``password_hash`` only when asked); NotFound if absent."""
    cols = _COLUMNS + (", u.password_hash" if with_hash else "")
    row = conn.execute(text(f"SELECT {cols} {_FROM} WHERE u.username = :u"), {"u": username}).mappings().first()
    if row is None:
        raise NotFound(f"user {username!r} does not exist")
    out = dict(row)
    out["outlet_codes"] = list(out["outlet_codes"] or [])
    return out


def list_users(conn: Connection, *, legal_entity_id: int | None = None,
               include_disabled: bool = True) -> list[dict[str, Any]]:
    """Users ordered by name, optionally of one legal entity only."""
    sql = f"SELECT {_COLUMNS} {_FROM} WHERE (CAST(:le AS integer) IS NULL OR u.legal_entity_id = :le)"
    if not include_disabled:
        sql += " AND NOT u.disabled"
    rows = conn.execute(text(sql + " ORDER BY u.username"), {"le": legal_entity_id}).mappings()
    return [{**r, "outlet_codes": list(r["outlet_codes"] or [])} for r in rows]


def disable_user(conn: Connection, *, username: str) -> dict[str, Any]:
    """Disable a user (their tokens stop working at once); NotFound if absent, Conflict when they are
    the last active system-wide admin (nobody could manage users any more)."""
    # Lock every active system-wide admin row first: two admins disabling each other at the same
    # time must not both succeed.
    admins = set(conn.execute(text(
        "SELECT username FROM app_user WHERE role = 'admin' AND legal_entity_id IS NULL AND NOT disabled"
        " ORDER BY id FOR UPDATE")).scalars())
    if admins == {username}:
        raise Conflict(f"user {username!r} is the last active system-wide admin; "
                       "add or enable another system-wide admin first")
    done = conn.execute(
        text("UPDATE app_user SET disabled = true WHERE username = :u"), {"u": username}
    ).rowcount
    if not done:
        raise NotFound(f"user {username!r} does not exist")
    return get_user(conn, username=username)


def enable_user(conn: Connection, *, username: str) -> dict[str, Any]:
    """Enable a disabled user again (they may sign in); NotFound if absent."""
    done = conn.execute(
        text("UPDATE app_user SET disabled = false WHERE username = :u"), {"u": username}
    ).rowcount
    if not done:
        raise NotFound(f"user {username!r} does not exist")
    return get_user(conn, username=username)


def delete_user(conn: Connection, *, username: str) -> bool:
    """Delete a user outright (demo set-up re-creating its users); whether one was deleted."""
    return bool(conn.execute(text("DELETE FROM app_user WHERE username = :u"), {"u": username}).rowcount)
