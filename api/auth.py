"""Passwords (pwdlib argon2), signed expiring tokens (PyJWT HS256) and role permissions.

The login route is ``api/routes/auth.py``; the dependency that turns a bearer
token into a :class:`CurrentUser` is ``api.deps.UserDep``.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import HTTPException, status
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from api.settings import AuthSettings
from geodata.scope import Scope

ALGORITHM = "HS256"
# Argon2id with pwdlib's recommended cost; the hash string records its own
# parameters, so changing them later still verifies old hashes.
_HASHER = PasswordHash((Argon2Hasher(),))


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the user does not exist, so timing does not reveal usernames.
    return _HASHER.hash("not a password")


# Which roles may do what (read access is governed by geodata.scope instead).
PERMISSIONS: dict[str, frozenset[str]] = {
    "import": frozenset({"admin", "planner"}),
    "view_imports": frozenset({"admin", "planner", "analyst"}),
    "plan": frozenset({"admin", "planner"}),
    "export": frozenset({"admin", "planner", "branch_manager", "rm", "analyst"}),
    "manage_users": frozenset({"admin"}),
    "view_audit": frozenset({"admin"}),
}


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when ``password`` matches; spends the same time when there is no hash."""
    if not password_hash:
        _HASHER.verify(password, _dummy_hash())
        return False
    try:
        return _HASHER.verify(password, password_hash)
    except Exception:  # a malformed stored hash must read as "wrong password", not 500
        return False


def create_token(auth: AuthSettings, *, username: str, role: str,
                 now: dt.datetime | None = None, minutes: int | None = None) -> str:
    """A signed token for ``username`` that expires after ``auth.token_minutes``."""
    now = now or dt.datetime.now(dt.UTC)
    exp = now + dt.timedelta(minutes=auth.token_minutes if minutes is None else minutes)
    claims = {"sub": username, "role": role, "iat": now, "exp": exp}
    return jwt.encode(claims, auth.secret_key, algorithm=ALGORITHM)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def decode_token(auth: AuthSettings, token: str) -> dict[str, Any]:
    """Claims of a valid token; 401 when it is forged, malformed or expired."""
    try:
        return jwt.decode(token, auth.secret_key, algorithms=[ALGORITHM],
                          options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("invalid token") from None


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user and the scope every query of the request is restricted to."""

    username: str
    role: str
    legal_entity_id: int | None
    scope: Scope

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CurrentUser:
        if row.get("disabled"):
            raise _unauthorized("user disabled")
        return cls(row["username"], row["role"], row["legal_entity_id"], Scope.from_user(row))


def allowed(user: CurrentUser, action: str) -> bool:
    """Whether the user's role may do ``action`` (a key of :data:`PERMISSIONS`)."""
    return user.role in PERMISSIONS[action]


def require(user: CurrentUser, action: str) -> None:
    """403 unless the user's role may do ``action``."""
    if not allowed(user, action):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role!r} may not {action}")
