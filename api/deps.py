"""Typed dependency aliases every route uses: settings, connection, user, scope, paging, bbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import APIKeyCookie, OAuth2PasswordBearer
from pydantic import AfterValidator
from sqlalchemy.engine import Connection, Engine

from api.auth import CurrentUser, decode_token, require
from api.replicas import FRESH_COOKIE, READ_METHODS, ReadRouter, wrote_recently
from api.settings import Settings
from geodata import users
from geodata.errors import NotFound
from geodata.scope import Scope

TOKEN_URL = "/api/v1/auth/token"
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL)
# Browsers fetching tiles and map pages cannot add an Authorization header: they send the
# HttpOnly cookie set by POST /api/v1/auth/session instead (see BrowserUserDep).
SESSION_COOKIE = "gridmkt_token"
_optional_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                               description="Session cookie set by `POST /api/v1/auth/session`.")


async def get_settings(request: Request) -> Settings:
    """Settings of the running app (async: no I/O, so no worker thread hop)."""
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    """The engine opened by the app's lifespan (async: no I/O, so no worker thread hop)."""
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]


def get_conn(request: Request, engine: EngineDep) -> Iterator[Connection]:
    """One connection and transaction per request, committed when the route succeeds.

    On a read replica for a GET or HEAD when replicas are configured and this client has not written
    within the read-your-writes window (api/replicas.py); on the primary otherwise.
    """
    reads: ReadRouter | None = getattr(request.app.state, "reads", None)
    if reads is None or not reads.replicas:
        conn = engine.connect()
    else:
        settings = request.app.state.settings
        conn = reads.connect(on_replica=request.method in READ_METHODS and not wrote_recently(
            settings.auth.secret_key, request.cookies.get(FRESH_COOKIE), settings.replicas.read_your_writes_s))
    with conn, conn.begin():
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]


def get_write_conn(conn: ConnDep, engine: EngineDep) -> Iterator[Connection]:
    """A transaction on the primary for what a GET writes (its audit row): the request's own when that
    is on the primary (one commit, as before), else a short one of its own."""
    if conn.engine is engine:
        yield conn
        return
    with engine.begin() as primary:
        yield primary


WriteConnDep = Annotated[Connection, Depends(get_write_conn)]


def _user_of_token(token: str, settings: Settings, conn: Connection) -> CurrentUser:
    claims = decode_token(settings.auth, token)
    try:
        row = users.get_user(conn, username=claims["sub"])
    except NotFound:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown user",
                            headers={"WWW-Authenticate": "Bearer"}) from None
    return CurrentUser.from_row(row)


def get_current_user(token: Annotated[str, Depends(_bearer)], settings: SettingsDep,
                     conn: ConnDep) -> CurrentUser:
    """The user of a valid bearer token; re-read each request so disabling takes effect at once."""
    return _user_of_token(token, settings, conn)


UserDep = Annotated[CurrentUser, Depends(get_current_user)]


def get_user_briefly(token: Annotated[str, Depends(_bearer)], settings: SettingsDep,
                     engine: EngineDep) -> CurrentUser:
    """The user of a valid bearer token, read on a connection held only for that read.

    For routes many phones call at once (check-in): such a route opens its own transaction in one
    worker-thread call, so no request ever holds a pooled connection while it waits for a worker
    thread (with ``ConnDep`` it does between dependencies, and hundreds of requests at once then
    starve the pool and the thread pool of each other).
    """
    with engine.connect() as conn:
        return _user_of_token(token, settings, conn)


BriefUserDep = Annotated[CurrentUser, Depends(get_user_briefly)]


def get_browser_user(bearer: Annotated[str | None, Depends(_optional_bearer)],
                     cookie: Annotated[str | None, Depends(_session_cookie)],
                     settings: SettingsDep, conn: ConnDep) -> CurrentUser:
    """The user of a bearer header or, failing that, of the session cookie (401 when neither is valid).

    For GET routes a browser loads by itself (tiles, map pages). The /api/v1
    routes stay bearer-only, so a cookie alone never drives a write there; the
    one cookie-driven write is the RM's day page's own door (api/routes/day.py),
    which also refuses requests from other sites' pages (``from_this_site``).
    """
    return _user_of_token(_browser_token(bearer, cookie), settings, conn)


def _browser_token(bearer: str | None, cookie: str | None) -> str:
    if not (bearer or cookie):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not signed in",
                            headers={"WWW-Authenticate": "Bearer"})
    return bearer or cookie


BrowserUserDep = Annotated[CurrentUser, Depends(get_browser_user)]


def get_browser_user_briefly(bearer: Annotated[str | None, Depends(_optional_bearer)],
                             cookie: Annotated[str | None, Depends(_session_cookie)],
                             settings: SettingsDep, engine: EngineDep) -> CurrentUser:
    """:func:`get_browser_user` on a connection held only for that read (the phone page's check-ins, which
    many phones send at once: see :func:`get_user_briefly`)."""
    with engine.connect() as conn:
        return _user_of_token(_browser_token(bearer, cookie), settings, conn)


BriefBrowserUserDep = Annotated[CurrentUser, Depends(get_browser_user_briefly)]


def get_scope(user: UserDep) -> Scope:
    """The scope of the signed-in user (see geodata.scope)."""
    return user.scope


ScopeDep = Annotated[Scope, Depends(get_scope)]


def permitted(action: str):
    """A dependency alias for a user whose role may do ``action`` (403 otherwise)."""

    def dep(user: UserDep) -> CurrentUser:
        require(user, action)
        return user

    dep.__name__ = f"require_{action}"
    return Annotated[CurrentUser, Depends(dep)]


AdminDep = permitted("manage_users")
ImporterDep = permitted("import")


@dataclass(frozen=True)
class Page:
    """Paging of a list: at most ``limit`` items after skipping ``offset``."""

    limit: int
    offset: int


def get_page(
    limit: Annotated[int, Query(ge=1, le=1000, description="Maximum number of items to return (1 to 1000).")] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Number of items to skip (for paging).")] = 0,
) -> Page:
    """Paging parameters shared by every list."""
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(get_page)]


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` in WGS84 degrees, checked for order and range."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 4:
        raise ValueError("bbox needs four numbers: minlon,minlat,maxlon,maxlat")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise ValueError("bbox values must be numbers") from None
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise ValueError("bbox must be minlon<=maxlon in [-180,180] and minlat<=maxlat in [-90,90]")
    return x0, y0, x1, y1


BboxQuery = Annotated[
    str | None,
    Query(
        description="Only features intersecting this box: `minlon,minlat,maxlon,maxlat` in WGS84 degrees.",
        examples=["105.9,38.3,106.4,38.6"],
    ),
    AfterValidator(parse_bbox),
]
