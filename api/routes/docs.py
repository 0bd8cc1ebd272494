"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), with every file served from here.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN, so on a bank's
intranet or offline they stay blank. These load the copies installed from the npm
registry into ``maps/static/node_modules`` (pinned by its lockfile), served under
``/maps/static`` like the map pages' Leaflet.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

from maps.assets import BUNDLES, STATIC_PREFIX

router = APIRouter(include_in_schema=False)
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def _asset(bundle: str, suffix: str) -> str:
    return f"{STATIC_PREFIX}/" + next(rel for rel in BUNDLES[bundle] if rel.endswith(suffix))


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: try the API from the browser (sign in with the Authorize button)."""
    app = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url, title=f"{app.title} · API",
        swagger_js_url=_asset("swagger", ".js"), swagger_css_url=_asset("swagger", ".css"),
        swagger_favicon_url=_asset("swagger", ".png"), oauth2_redirect_url=OAUTH2_REDIRECT,
    )


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
def swagger_ui_redirect() -> HTMLResponse:
    """Where Swagger UI's OAuth2 sign-in returns to."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the same OpenAPI description as one readable page."""
    app = request.app
    return get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} · API",
                          redoc_js_url=_asset("redoc", ".js"), redoc_favicon_url=_asset("swagger", ".png"),
                          with_google_fonts=False)
