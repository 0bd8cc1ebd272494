"""Sign-in (OAuth2 password flow) and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.auth import PERMISSIONS, allowed, create_token, verify_password
from api.deps import ConnDep, SettingsDep, UserDep
from geodata import audit, users
from geodata.errors import NotFound

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class Token(BaseModel):
    """A bearer token and when it expires."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    """The signed-in user, their scope and what their role may do."""

    username: str
    role: str
    legal_entity_id: int | None
    rm_code: str | None
    outlet_codes: list[str]
    permissions: list[str]


@router.post("/token", response_model=Token)
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], conn: ConnDep,
          settings: SettingsDep) -> Token:
    """Exchange a username and password for a signed bearer token that expires."""
    try:
        user = users.get_user(conn, username=form.username, with_hash=True)
    except NotFound:
        user = None
    ok = verify_password(form.password, user["password_hash"] if user else None)
    if not ok or user is None or user["disabled"]:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password",
                            headers={"WWW-Authenticate": "Bearer"})
    audit.record(conn, username=user["username"], action="login", object_type="user",
                 object_id=user["username"])
    token = create_token(settings.auth, username=user["username"], role=user["role"])
    return Token(access_token=token, expires_in=settings.auth.token_minutes * 60)


@router.get("/me", response_model=Me)
def me(user: UserDep) -> Me:
    """The signed-in user: role, legal entity, RM code, outlets and permitted actions."""
    s = user.scope
    return Me(username=user.username, role=user.role, legal_entity_id=user.legal_entity_id,
              rm_code=s.rm_code, outlet_codes=list(s.outlet_codes),
              permissions=[a for a in PERMISSIONS if allowed(user, a)])
