"""User management (admins only; an admin bound to a legal entity manages that entity's users)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field

from api.deps import AdminDep, ConnDep
from api.operations import users as ops
from geodata import users

router = APIRouter(prefix="/api/v1/users", tags=["users"])

Role = Literal["admin", "planner", "branch_manager", "rm", "analyst"]
Username = Annotated[str, Path(max_length=64, description="The user's login name.")]


class UserCreate(BaseModel):
    """A new user: role, legal entity (none only for a system-wide admin), RM code for an rm,
    outlets for a branch manager."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[^\s]+$")
    password: str = Field(min_length=ops.MIN_PASSWORD, max_length=256)
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


@router.get("", response_model=list[UserPublic])
def list_users(conn: ConnDep, admin: AdminDep) -> list[dict]:
    """Every user you administer, disabled ones included."""
    return users.list_users(conn, legal_entity_id=admin.legal_entity_id)


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, conn: ConnDep, admin: AdminDep) -> dict:
    """Add a user (password hashed with argon2); the change is recorded in the audit log."""
    return ops.create(conn, actor=admin.username, scope=admin.scope, **body.model_dump())


@router.get("/{username}", response_model=UserPublic)
def get_user(username: Username, conn: ConnDep, admin: AdminDep) -> dict:
    """One user."""
    return ops.get(conn, username=username, scope=admin.scope)


@router.post("/{username}/disable", response_model=UserPublic,
             responses={409: {"description": "The user is the last active system-wide admin."}})
def disable_user(username: Username, conn: ConnDep, admin: AdminDep) -> dict:
    """Disable a user: their tokens stop working at once. Recorded in the audit log. 409 for the
    last active system-wide admin (enable or add another first)."""
    return ops.disable(conn, actor=admin.username, username=username, scope=admin.scope)


@router.post("/{username}/enable", response_model=UserPublic)
def enable_user(username: Username, conn: ConnDep, admin: AdminDep) -> dict:
    """Enable a disabled user again: they may sign in. Recorded in the audit log."""
    return ops.enable(conn, actor=admin.username, username=username, scope=admin.scope)
