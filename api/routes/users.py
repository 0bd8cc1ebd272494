"""User management (admins only; an admin bound to a legal entity manages that entity's users)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field

from api.auth import hash_password
from api.deps import AdminDep, ConnDep
from geodata import audit, users
from geodata.errors import NotFound

router = APIRouter(prefix="/api/v1/users", tags=["users"])

Role = Literal["admin", "planner", "branch_manager", "rm", "analyst"]
Username = Annotated[str, Path(max_length=64, description="The user's login name.")]


class UserCreate(BaseModel):
    """A new user: role, legal entity (none only for a system-wide admin), RM code for an rm,
    outlets for a branch manager."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[^\s]+$")
    password: str = Field(min_length=8, max_length=256)
    role: Role
    legal_entity_code: str | None = Field(default=None, max_length=32)
    rm_code: str | None = Field(default=None, max_length=32)
    outlet_codes: list[str] = Field(default_factory=list, max_length=500)


class UserPublic(BaseModel):
    """A user as shown to admins (never the password hash)."""

    username: str
    role: str
    legal_entity_id: int | None
    legal_entity_code: str | None
    rm_code: str | None
    outlet_codes: list[str]
    disabled: bool
    created_at: dt.datetime


def _visible(admin, row: dict) -> dict:
    # An admin of one legal entity must not learn about users of another.
    if admin.legal_entity_id is not None and row["legal_entity_id"] != admin.legal_entity_id:
        raise NotFound(f"user {row['username']!r} does not exist")
    return row


@router.get("", response_model=list[UserPublic])
def list_users(conn: ConnDep, admin: AdminDep) -> list[dict]:
    """Every user you administer, disabled ones included."""
    return users.list_users(conn, legal_entity_id=admin.legal_entity_id)


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, conn: ConnDep, admin: AdminDep) -> dict:
    """Add a user (password hashed with argon2); the change is recorded in the audit log."""
    le_id = users.legal_entity_id(conn, code=body.legal_entity_code) if body.legal_entity_code else None
    if admin.legal_entity_id is not None and le_id != admin.legal_entity_id:
        raise NotFound(f"legal entity {body.legal_entity_code!r} does not exist")
    row = users.create_user(conn, username=body.username, password_hash=hash_password(body.password),
                            role=body.role, legal_entity_id=le_id, rm_code=body.rm_code,
                            outlet_codes=body.outlet_codes)
    audit.record(conn, username=admin.username, action="create", object_type="user",
                 object_id=row["username"], detail={"role": body.role, "legal_entity_id": le_id})
    return row


@router.get("/{username}", response_model=UserPublic)
def get_user(username: Username, conn: ConnDep, admin: AdminDep) -> dict:
    """One user."""
    return _visible(admin, users.get_user(conn, username=username))


@router.post("/{username}/disable", response_model=UserPublic,
             responses={409: {"description": "The user is the last active system-wide admin."}})
def disable_user(username: Username, conn: ConnDep, admin: AdminDep) -> dict:
    """Disable a user: their tokens stop working at once. Recorded in the audit log. 409 for the
    last active system-wide admin (enable or add another first)."""
    _visible(admin, users.get_user(conn, username=username))
    row = users.disable_user(conn, username=username)
    audit.record(conn, username=admin.username, action="disable", object_type="user", object_id=username)
    return row


@router.post("/{username}/enable", response_model=UserPublic)
def enable_user(username: Username, conn: ConnDep, admin: AdminDep) -> dict:
    """Enable a disabled user again: they may sign in. Recorded in the audit log."""
    _visible(admin, users.get_user(conn, username=username))
    row = users.enable_user(conn, username=username)
    audit.record(conn, username=admin.username, action="enable", object_type="user", object_id=username)
    return row
