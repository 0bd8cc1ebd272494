"""The RM's day on the phone: the page, its service worker, and the page's own door to the visits operations.

``/maps/rm/{rm_code}/day`` is signed in like the other map pages (the session
cookie), for the RM whose day it is: another RM's code is 404, other roles 403
(managers read visits in ``/api/v1/visits/report``). The page's script cannot
send a bearer token (the cookie is HttpOnly: script never sees it), and the
``/api/v1`` routes are bearer-only, so the page reads and writes through
``/maps/rm/{rm_code}/day/...``: the same operations (``api.operations.visits``)
and the same bodies and answers as ``/api/v1/visits/...``, for that RM only.
A write must come from this site's pages (``Origin``/``Sec-Fetch-Site``, on top
of the SameSite=Strict cookie), as sign-in and sign-out do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api import map_pages
from api.auth import CurrentUser
from api.deps import BriefBrowserUserDep, ConnDep, EngineDep, SettingsDep, WriteConnDep
from api.operations import visits as ops
from api.routes.map_pages import _login, _page, _viewer
from api.routes.session import from_this_site
from api.routes.visits import (
    CheckinCreate,
    CheckoutCreate,
    Lat,
    Lon,
    record_checkin,
    record_checkout,
    start_point,
)
from api.visit_schemas import CheckinPublic, CheckoutPublic, PlanPublic
from geodata import audit
from geodata.reads.maps import visible_counties
from geodata.visits.common import visit_rm
from maps.day import RM_CODE, day_context, day_page, service_worker

router = APIRouter(prefix="/maps/rm", tags=["maps"])

RmPath = Annotated[str, Path(max_length=32, pattern=f"^{RM_CODE}$", description="Your RM code.")]


def _own_day(rm_code: RmPath, user: BriefBrowserUserDep, request: Request) -> CurrentUser:
    # A dependency, so another RM's day answers 404 (and a cross-site write 403) before any body is read.
    if user.scope.role != "rm":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the day page is an RM's own; managers read the visits report")
    if rm_code != user.scope.rm_code:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"RM {rm_code!r} not found")
    if request.method != "GET" and not from_this_site(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
    return user


DayUser = Annotated[CurrentUser, Depends(_own_day)]


def _own_visit(visit_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="Id of the visit.")],
               user: DayUser, engine: EngineDep) -> int:
    with engine.connect() as conn:
        visit_rm(conn, scope=user.scope, visit_id=visit_id)
    return visit_id


@router.get("/sw.js", include_in_schema=False)
def day_worker(settings: SettingsDep) -> Response:
    """The day page's service worker (scope /maps/rm/): keeps the page, its assets, today's plan and the map tiles
    of the RM's territory offline."""
    return Response(service_worker(tile_url=settings.maps.tile_url), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})


@router.get("/{rm_code}/day", response_class=HTMLResponse)
def day(request: Request, rm_code: RmPath, conn: ConnDep, audit_conn: WriteConnDep, settings: SettingsDep) -> Response:
    """An RM's day on the phone: today's route with numbered stops, navigate links, 签到 check-in and 签退
    check-out, working offline once loaded (RMs only, their own day)."""
    user = _viewer(request, conn, settings)
    if user is None:
        return _login(request)
    if user.scope.role != "rm":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the day page is an RM's own; managers read the visits report")
    if rm_code != user.scope.rm_code:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"RM {rm_code!r} not found")
    options = map_pages.page_options(settings, inline=False)
    # The context layer of the counties the RM has cells in (outline, townships, villages), as the other pages.
    context = day_context((map_pages.background(conn, c) for c in visible_counties(conn, scope=user.scope)), options)
    html = day_page(rm_code=rm_code, options=options, tz=settings.visits.timezone, context=context)
    audit.record(audit_conn, username=user.username, action="view", object_type="map:day", object_id=rm_code)
    return _page(html)


@router.get("/{rm_code}/day/plan", response_model=PlanPublic)
def day_plan(user: DayUser, conn: ConnDep, settings: SettingsDep) -> dict:
    """Today's plan of the signed-in RM (as ``GET /api/v1/visits/plans/today``); 404 when none was made."""
    return ops.today_plan(conn, scope=user.scope, settings=settings)


class DayPlanCreate(BaseModel):
    """Plan today from the outlet, or from where the phone is."""

    start_lon: Lon | None = None
    start_lat: Lat | None = None


@router.post("/{rm_code}/day/plan", response_model=PlanPublic, status_code=201)
def day_make_plan(body: DayPlanCreate, user: DayUser, conn: ConnDep, settings: SettingsDep) -> dict:
    """Make (or make again) today's plan (as ``POST /api/v1/visits/plans``)."""
    return ops.make_plan(conn, actor=user.username, scope=user.scope, settings=settings,
                         start=start_point(body.start_lon, body.start_lat))


@router.post("/{rm_code}/day/checkins", response_model=CheckinPublic, status_code=201,
             responses={200: {"model": CheckinPublic, "description": "A replay: the check-in stored under this key."}})
def day_checkin(body: CheckinCreate, response: Response, user: DayUser, engine: EngineDep,
                settings: SettingsDep) -> dict:
    """签到 (as ``POST /api/v1/visits/checkins``): 201 recorded, 200 a replay of the key with the same body."""
    # As /api/v1, no pooled connection held between dependencies: a village of phones regaining signal
    # sends its outboxes at once.
    return record_checkin(engine, user, settings, body, response)


@router.post("/{rm_code}/day/visits/{visit_id}/checkout", response_model=CheckoutPublic)
def day_checkout(visit_id: Annotated[int, Depends(_own_visit)], body: CheckoutCreate, user: DayUser,
                 engine: EngineDep, settings: SettingsDep) -> dict:
    """签退 (as ``POST /api/v1/visits/{visit_id}/checkout``), idempotent per key."""
    return record_checkout(engine, user, settings, visit_id, body)
