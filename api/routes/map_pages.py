"""Map sandbox pages served behind the same login and scoping as the API.

Pages are HTML built by ``api.map_pages`` with assets from ``/maps/static``
(nothing from the internet). A browser without a session is sent to
``/maps/login``; a signed-in user who may not see a page gets 403/404, never
the data: an RM only reaches their own phone map, a branch manager the
dashboard and province overview of their outlets' RMs and those RMs' maps;
planners, analysts and admins everything of their legal entity.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Connection

from api import map_pages
from api.auth import CurrentUser
from api.deps import SESSION_COOKIE, ConnDep, SettingsDep, WriteConnDep, _user_of_token
from api.grid_access import scoped_grid, visible_rms
from api.masking import mask_name
from geodata import audit, scenarios
from geodata.reads import imports as import_reads
from geodata.reads import maps as index_reads
from geodata.scope import sees_pii
from maps.assets import asset_files
from maps.dashboard import MEASURES
from maps.site import index_page

router = APIRouter(prefix="/maps", tags=["maps"])

GridQuery = Annotated[int, Query(ge=1, le=2**31 - 1, description="Grid id (see /api/v1/grids).")]
_ASSETS: dict[str, object] = {}


def _viewer(request: Request, conn: Connection, settings) -> CurrentUser | None:
    auth = request.headers.get("authorization", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return _user_of_token(token, settings, conn)
    except HTTPException:
        return None


def _login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/maps/login?next={quote(target, safe='')}", status_code=status.HTTP_303_SEE_OTHER)


def _missing(name: str, msg: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, naming the query parameter."""
    return RequestValidationError([{"type": "missing", "loc": ("query", name), "msg": msg, "input": None}])


def _page(html: str) -> HTMLResponse:
    # Not to be framed by another site (clickjacking a signed-in page); the pages themselves embed nothing.
    return HTMLResponse(html, headers={"Cache-Control": "private, no-store", "X-Frame-Options": "DENY",
                                       "Content-Security-Policy": "frame-ancestors 'none'"})


PLANNERS = ("admin", "planner", "analyst")


def _only(user: CurrentUser, roles: tuple[str, ...], why: str) -> None:
    if user.scope.role not in roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, why)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, conn: ConnDep, settings: SettingsDep) -> Response:
    """The pages the signed-in user may open, per grid (sign-in page when not signed in): an RM their phone
    map; a branch manager the dashboard and their RMs' maps; planners, analysts and admins also scenario
    compare and the previews of village grids."""
    user = _viewer(request, conn, settings)
    if user is None:
        return _login(request)
    scope = user.scope
    grids = index_reads.visible_grids(conn, scope=scope)
    rms = index_reads.visible_rm_owners(conn, scope=scope) if scope.role != "rm" else []
    found = index_reads.visible_scenarios(conn, scope=scope) if scope.role in PLANNERS else []
    return _page(index_page(username=user.username, role=scope.role, grids=grids, rms=rms, scenarios=found,
                            own_rm=scope.rm_code))


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, grid_id: GridQuery, conn: ConnDep, audit_conn: WriteConnDep, settings: SettingsDep,
              measure: Annotated[str, Query(pattern="^(" + "|".join(MEASURES) + ")$",
                                            description="What colours the cells.")] = "gap_score") -> Response:
    """Branch dashboard: cells coloured by a measure, territories, outlets, summary (branch managers: their outlets)."""
    user = _viewer(request, conn, settings)
    if user is None:
        return _login(request)
    _only(user, (*PLANNERS, "branch_manager"), "this page is for managers and planners; RMs open /maps/rm")
    scoped_grid(conn, user.scope, grid_id)
    outlets = list(user.scope.outlet_codes) if user.scope.role == "branch_manager" else None
    if user.scope.role == "branch_manager" and not outlets:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "no outlets are assigned to you")
    options = replace(map_pages.page_options(settings, inline=False),
                      customer_tiles_url=f"/tiles/customers/{{z}}/{{x}}/{{y}}.pbf?grid_id={grid_id}")
    html = map_pages.dashboard_html(conn, grid_id=grid_id, options=options, measure=measure, outlets=outlets,
                                    scope=user.scope, tz=settings.visits.timezone)
    audit.record(audit_conn, username=user.username, action="view", object_type="map:dashboard", object_id=str(grid_id))
    return _page(html)


@router.get("/visits", response_class=HTMLResponse)
def visits(request: Request, conn: ConnDep, audit_conn: WriteConnDep, settings: SettingsDep,
           week: Annotated[str | None, Query(pattern=r"^\d{4}-W\d{2}$",
                                             description="ISO week, e.g. 2026-W50 (default: this week).")] = None,
           grid_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description=(
               "Grid of the visits map (default: the grid most of your RMs own cells of, of equals the one showing you more cells, then the newest)."
           ))] = None) -> Response:
    """拜访过程: per RM you may see and week, planned vs done, flagged check-ins, visits in blank or under-served
    cells, customers visited in 90 days, the process score explained; and a map of visits per customer per cell
    (where nobody goes). Branch managers: their outlets' RMs; an RM: themselves; planners and analysts (names
    masked): the legal entity."""
    user = _viewer(request, conn, settings)
    if user is None:
        return _login(request)
    if user.scope.role == "branch_manager" and not user.scope.outlet_codes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "no outlets are assigned to you")
    if grid_id is not None:
        scoped_grid(conn, user.scope, grid_id)
    html = map_pages.visits_html(conn, scope=user.scope, settings=settings, week=week, grid_id=grid_id,
                                 options=map_pages.page_options(settings, inline=False))
    audit.record(audit_conn, username=user.username, action="view", object_type="map:visits", object_id=week or "")
    return _page(html)


@router.get("/province", response_class=HTMLResponse)
def province(request: Request, conn: ConnDep, audit_conn: WriteConnDep, settings: SettingsDep,
             kind: Annotated[str, Query(pattern="^(h3|village)$", description="Grid kind to draw.")] = "h3",
             res: Annotated[int | None, Query(ge=0, le=15, description=(
                 "Only H3 grids of this resolution (default: each county's latest grid of the kind)."))] = None
             ) -> Response:
    """Every county you may see on one page: each one's latest grid of a kind, drawn from /tiles (cells by gap
    score, territories, customers), with a summary per county and links to its dashboard. Admins, planners,
    analysts (their legal entity) and branch managers (their outlets' territories); RMs open /maps/rm."""
    user = _viewer(request, conn, settings)
    if user is None:
        return _login(request)
    _only(user, (*PLANNERS, "branch_manager"), "this page is for managers and planners; RMs open /maps/rm")
    if user.scope.role == "branch_manager" and not user.scope.outlet_codes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "no outlets are assigned to you")
    html = map_pages.province_html(conn, scope=user.scope, kind=kind, resolution=res,
                                   options=map_pages.page_options(settings, inline=False))
    audit.record(audit_conn, username=user.username, action="view", object_type="map:province",
                 object_id=kind if res is None else f"{kind}/{res}")
    return _page(html)


@router.get("/rm", response_class=HTMLResponse)
def rm_map(request: Request, grid_id: GridQuery, conn: ConnDep, audit_conn: WriteConnDep, settings: SettingsDep,
           rm_code: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_\-]+$",
                                                description="RM code (RMs: only their own; default their own).")] = None
           ) -> Response:
    """An RM's phone map: only that RM's cells and customers (names masked unless you may see them)."""
    user = _viewer(request, conn, settings)
    if user is None:
        return _login(request)
    rm_code = rm_code or user.scope.rm_code
    if rm_code is None:
        raise _missing("rm_code", "rm_code is required (only RMs have a map of their own)")
    scoped_grid(conn, user.scope, grid_id)
    if rm_code not in visible_rms(conn, user.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"RM {rm_code!r} not found")
    mask = (lambda v: v) if sees_pii(user.scope) else mask_name
    html = map_pages.rm_html(conn, grid_id=grid_id, rm_code=rm_code,
                             options=map_pages.page_options(settings, inline=False), mask=mask)
    audit.record(audit_conn, username=user.username, action="view", object_type="map:rm", object_id=f"{grid_id}/{rm_code}")
    return _page(html)


@router.get("/preview", response_class=HTMLResponse)
def preview(request: Request, conn: ConnDep, settings: SettingsDep,
            grid_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Village grid id.")] = None,
            import_run: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Import run of villages.")] = None
            ) -> Response:
    """Planner preview: placed, merged and unplaced villages of a village grid or an import run."""
    user = _viewer(request, conn, settings)
    if user is None:
        return _login(request)
    _only(user, PLANNERS, "the preview is for planners")
    if grid_id is None and import_run is None:
        raise _missing("grid_id", "give grid_id or import_run")
    if grid_id is not None:
        scoped_grid(conn, user.scope, grid_id)
    if import_run is not None and not import_reads.import_run_visible(conn, scope=user.scope, run_id=import_run):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import run {import_run} not found")
    html = map_pages.preview_html(conn, options=map_pages.page_options(settings, inline=False),
                                  grid_id=grid_id, import_run=import_run)
    return _page(html)


@router.get("/compare", response_class=HTMLResponse)
def compare(request: Request, grid_id: GridQuery, conn: ConnDep, settings: SettingsDep,
            a: Annotated[str, Query(max_length=100, description="Scenario name or id, or `current`.")] = "current",
            b: Annotated[str, Query(max_length=100, description="Scenario name or id, or `current`.")] = "current"
            ) -> Response:
    """Scenario compare: moved cells highlighted, workload per RM before and after."""
    user = _viewer(request, conn, settings)
    if user is None:
        return _login(request)
    _only(user, PLANNERS, "scenarios are for planners")
    scoped_grid(conn, user.scope, grid_id)
    for ref in (a, b):
        if ref != scenarios.CURRENT and scenarios.find_scenario(conn, ref=ref, grid_id=grid_id)["grid_id"] != grid_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"scenario {ref!r} not found")
    html = map_pages.compare_html(conn, grid_id=grid_id, a=a, b=b, options=map_pages.page_options(settings, inline=False))
    return _page(html)


@router.get("/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    """Leaflet and the pages' own scripts and styles (a fixed list: no paths outside it)."""
    if not _ASSETS:
        _ASSETS.update(asset_files())
    file = _ASSETS.get(path)
    if file is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such asset")
    return FileResponse(file, headers={"Cache-Control": "public, max-age=86400"})
