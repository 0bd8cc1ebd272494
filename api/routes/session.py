"""Browser sign-in: a session cookie for pages and tiles, sign-out, and a plain login page.

``POST /api/v1/auth/session`` checks the password like ``/api/v1/auth/token``
(:mod:`api.signin`: lockouts, bounded checks) and puts the same signed token in an
HttpOnly, SameSite=Strict cookie (``Secure`` over https, as a trusted proxy reports
it) that :data:`api.deps.BrowserUserDep` accepts. Script on a page never sees the token. ``GET /maps/login`` is a form that posts there and
comes back to ``next``; it loads nothing from elsewhere (bank intranets).
"""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from api import signin
from api.auth import create_token
from api.deps import SESSION_COOKIE, EngineDep, SettingsDep
from api.proxies import client_scheme
from api.replicas import nothing_to_read_back

router = APIRouter(tags=["auth"])

DEFAULT_NEXT = "/maps/"
LOGIN_PAGE = "/maps/login"


class SessionPublic(BaseModel):
    """Who is signed in and for how long (the token itself stays in the HttpOnly cookie)."""

    username: str
    role: str
    expires_in: int


def safe_next(value: str | None) -> str:
    """A same-site path to return to; anything else (other hosts, ``//x``, ``\\``) becomes the default."""
    if (not value or not value.startswith("/") or value.startswith("//") or "\\" in value
            or any(ord(ch) < 32 for ch in value)):
        return DEFAULT_NEXT
    return value


def from_this_site(request: Request) -> bool:
    """False for a browser request sent by another site's page (its ``Origin`` is another host, or
    ``Sec-Fetch-Site`` says cross-site). Scripts and curl send neither and pass."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin != "null" and urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def _refuse_cross_site(request: Request) -> None:
    # SameSite=Strict keeps the cookie from being sent by another site, not from being set: without this
    # a page elsewhere could post its own credentials here and sign the visitor in as someone else.
    if not from_this_site(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "sign-in and sign-out are refused from another site")


@router.post("/api/v1/auth/session", response_model=SessionPublic,
             responses={303: {"description": "Signed in (or not) from the login form: back to `next`."},
                        **signin.RESPONSES})
async def create_session(
    request: Request, engine: EngineDep, settings: SettingsDep,
    username: Annotated[str, Form(max_length=64, description="User name.")],
    password: Annotated[str, Form(max_length=1024, description="Password.")],
    next: Annotated[str | None, Form(max_length=2000, description=(
        "Form login only: a path on this site to redirect to (303) after signing in; "
        "a failed attempt goes back to the login page."))] = None,
) -> Response:
    """Sign in with a username and password and get the `gridmkt_token` HttpOnly cookie
    (SameSite=Strict; Secure over https, as seen by a trusted proxy when `GRIDMKT_TRUSTED_PROXIES`
    is set) that tiles and map pages accept. Without `next` the answer is JSON (401 on a wrong
    password, 429 while locked out, 503 when too many sign-ins run at once, like
    `/api/v1/auth/token`); with `next` (the login form) a 303 redirect. 403 when a browser sends it
    from another site's page (its `Origin` is not this host)."""
    _refuse_cross_site(request)
    try:
        user = await signin.check_password(request, engine=engine, settings=settings, username=username,
                                           password=password, detail={"session": True})
    except HTTPException as exc:
        if next is None or exc.status_code not in (401, 429, 503):
            raise
        why = "failed=1" if exc.status_code == 401 else "retry=1"
        target = f"{LOGIN_PAGE}?{why}&next={quote(safe_next(next), safe='/')}"
        return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    token = create_token(settings.auth, username=user["username"], role=user["role"])
    max_age = settings.auth.token_minutes * 60
    if next is not None:
        resp: Response = RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    else:
        resp = JSONResponse(SessionPublic(username=user["username"], role=user["role"],
                                          expires_in=max_age).model_dump())
    resp.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="strict",
                    secure=client_scheme(request, settings.proxies) == "https")
    resp.headers["Cache-Control"] = "no-store"
    return resp


@router.post("/api/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, settings: SettingsDep) -> Response:
    """Sign out of the browser session: the `gridmkt_token` cookie is cleared (tokens already
    handed out stay valid until they expire; disable the user to cut them off). 403 from another
    site's page."""
    _refuse_cross_site(request)
    nothing_to_read_back(request)
    resp = Response(status_code=status.HTTP_204_NO_CONTENT)
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                       secure=client_scheme(request, settings.proxies) == "https")
    return resp


_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gridmkt 登录 / Sign in</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f3f5f7;margin:0;display:flex;min-height:100vh;
align-items:center;justify-content:center}}
form{{background:#fff;padding:24px;border-radius:8px;box-shadow:0 1px 4px #0002;width:min(320px,90vw)}}
h1{{font-size:1.2em;margin:0 0 16px}}label{{display:block;margin:10px 0 4px}}
input{{width:100%;box-sizing:border-box;padding:8px;font-size:1em}}
button{{margin-top:16px;width:100%;padding:10px;font-size:1em;background:#1f6f43;color:#fff;border:0;
border-radius:4px}}.err{{color:#b00020}}
</style></head><body>
<form method="post" action="/api/v1/auth/session">
<h1>网格化营销 gridmkt</h1>{error}
<label for="username">用户名 / User</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">密码 / Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">登录 / Sign in</button>
</form></body></html>
"""


@router.get(LOGIN_PAGE, response_class=HTMLResponse)
def login_page(
    next: Annotated[str | None, Query(max_length=2000, description="Path to return to after signing in.")] = None,
    failed: Annotated[bool, Query(description="Show the 'wrong username or password' note.")] = False,
    retry: Annotated[bool, Query(description="Show the 'too many sign-ins, try again later' note.")] = False,
) -> HTMLResponse:
    """A sign-in form for map pages (no scripts, nothing loaded from elsewhere): posts to
    `/api/v1/auth/session`, which sets the session cookie and redirects to `next`."""
    error = ('<p class="err" role="alert">登录尝试过多，请稍后再试 / Too many sign-in attempts; try again later</p>'
             if retry else
             '<p class="err" role="alert">用户名或密码错误 / Wrong username or password</p>' if failed else "")
    body = _PAGE.format(error=error, next=html.escape(safe_next(next), quote=True))
    # No framing (clickjacking of the form), no scripts at all, posting only to ourselves.
    headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'",
               "X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "same-origin"}
    return HTMLResponse(body, headers=headers)
