"""Sign-in (OAuth2 password flow) and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api import signin
from api.auth import PERMISSIONS, allowed, create_token
from api.deps import EngineDep, SettingsDep, UserDep

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


@router.post("/token", response_model=Token, responses=signin.RESPONSES)
async def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], engine: EngineDep,
                settings: SettingsDep) -> Token:
    """Exchange a username and password for a signed bearer token that expires. Failed attempts are
    counted per username and per client address: past `GRIDMKT_LOGIN_MAX_FAILURES` (or
    `GRIDMKT_LOGIN_MAX_FAILURES_PER_ADDRESS`) within `GRIDMKT_LOGIN_WINDOW_S` seconds, sign-in is
    refused with 429 and `Retry-After` for `GRIDMKT_LOGIN_LOCKOUT_S` seconds."""
    user = await signin.check_password(request, engine=engine, settings=settings, username=form.username,
                                       password=form.password)
    token = create_token(settings.auth, username=user["username"], role=user["role"])
    return Token(access_token=token, expires_in=settings.auth.token_minutes * 60)


@router.get("/me", response_model=Me)
def me(user: UserDep) -> Me:
    """The signed-in user: role, legal entity, RM code, outlets and permitted actions."""
    s = user.scope
    return Me(username=user.username, role=user.role, legal_entity_id=user.legal_entity_id,
              rm_code=s.rm_code, outlet_codes=list(s.outlet_codes),
              permissions=[a for a in PERMISSIONS if allowed(user, a)])
