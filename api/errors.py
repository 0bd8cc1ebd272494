"""One table from domain exceptions to HTTP status codes; JSON body ``{"error", "detail"}``."""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geodata import errors as gd
from grid import errors as ge
from maps.site import error_page

log = logging.getLogger("gridmkt.api")


# Most specific first: the first matching class wins.
STATUS: dict[type[Exception], int] = {
    gd.NotFound: 404,
    gd.Forbidden: 403,
    gd.Conflict: 409,
    gd.BadInput: 422,
    gd.DatabaseUnavailable: 503,
    gd.Busy: 503,  # with Retry-After: a retry racing its original, or a lock held too long
    OperationalError: 503,
    PoolTimeout: 503,  # every pooled connection busy for pool_timeout seconds: overloaded, not broken
    ge.InvalidInput: 422,  # and its subclasses: GapConfigError, GapInputError, SiteInputError, Visit*Error
    ge.SiteSolverError: 500,  # the solver asked for is not installed here: ours, not the request's
    ge.GridError: 400,
    gd.GeodataError: 400,
}


# psycopg2 refuses NUL characters in any text value it sends; that is bad input, not our failure.
_NUL_IN_TEXT = "cannot contain NUL (0x00) characters"


def _nul_in_text(exc: Exception) -> bool:
    return type(exc) is ValueError and _NUL_IN_TEXT in str(exc)


def status_for(exc: Exception) -> int:
    """HTTP status for a domain exception (500 when it is not in the table)."""
    if _nul_in_text(exc):
        return 422
    for cls, status in STATUS.items():
        if isinstance(exc, cls):
            return status
    return 500


# How long a client should wait before retrying a 503 (the pool or the database is busy or restarting).
RETRY_AFTER_S = 5


def _detail(exc: Exception, status: int) -> str:
    if isinstance(exc, OperationalError):
        return "the database is unreachable"
    if isinstance(exc, PoolTimeout):
        return "the service is busy; try again shortly"
    return str(exc) if status < 500 or isinstance(exc, gd.GeodataError) else "internal error"


def wants_page(request: Request) -> bool:
    """A browser opening a map page (GET /maps/..., Accept: text/html) gets an HTML error page, not JSON."""
    path = request.url.path
    return (request.method == "GET" and (path == "/maps" or path.startswith("/maps/"))
            and not path.startswith("/maps/static/") and "text/html" in request.headers.get("accept", ""))


def _page(status: int, detail: object, request: Request, headers: dict | None = None) -> HTMLResponse:
    return HTMLResponse(error_page(status, detail, path=request.url.path), status_code=status, headers=headers)


def _status_name(status: int) -> str:
    """'Unauthorized', 'Forbidden', 'NotFound', 'TooManyRequests', ...: the ``error`` of an HTTP-level failure;
    a 503 is 'ServiceBusy' like the pool's (too many sign-ins at once)."""
    if status == 503:
        return "ServiceBusy"
    try:
        return "".join(HTTPStatus(status).phrase.title().split())
    except ValueError:
        return "HTTPError"


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """HTTPException (401, 403, an unknown path's 404, 405): ``{"error", "detail"}`` like every other error,
    or a page for a browser on /maps."""
    headers = getattr(exc, "headers", None)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    if wants_page(request):
        return _page(exc.status_code, exc.detail, request, headers)
    return JSONResponse({"error": _status_name(exc.status_code), "detail": exc.detail}, status_code=exc.status_code,
                        headers=headers)


async def _handle(request: Request, exc: Exception) -> Response:
    status = status_for(exc)
    if status >= 500:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    name = ("DatabaseUnavailable" if isinstance(exc, OperationalError)
            else "ServiceBusy" if isinstance(exc, PoolTimeout)
            else "BadInput" if _nul_in_text(exc)
            # A bug is not named to the client by its Python class; the log has it.
            else "InternalError" if status >= 500 and not isinstance(exc, gd.GeodataError)
            else type(exc).__name__)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    if wants_page(request):
        return _page(status, _detail(exc, status), request, headers)
    return JSONResponse({"error": name, "detail": _detail(exc, status)}, status_code=status, headers=headers)


def _finite(value: Any) -> Any:
    # A rejected NaN or Infinity echoed back as a float cannot be written as JSON (it was a 500).
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 (``detail`` lists each error with its ``loc``), plus ``error`` like every other
    error body; rejected non-finite numbers are echoed as strings. A browser on /maps gets a page."""
    detail = _finite(jsonable_encoder(exc.errors()))
    if wants_page(request):
        return _page(422, detail, request)
    return JSONResponse({"error": "RequestValidationError", "detail": detail}, status_code=422)


class CatchAll:
    """Any exception no handler took becomes a logged 500 ``{"error", "detail"}`` answer, and goes no further.

    Starlette's own last-resort handler answers 500 but then raises the exception again, to the
    server: uvicorn then closes the connection, and the client's next request on that keep-alive
    connection is reset. Here the exception stops, so the connection stays usable.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # half a response is out: only closing the connection can tell the client
                raise
            response = await _handle(Request(scope), exc)
            await response(scope, receive, send)


def _document_422(app: FastAPI) -> None:
    """The OpenAPI document's 422 shape says what 422 answers hold: ``error`` and a ``detail`` that is
    FastAPI's list of field errors (RequestValidationError) or one sentence (BadInput and the other
    domain errors mapped to 422). FastAPI's default promised the list only."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            shape = doc.get("components", {}).get("schemas", {}).get("HTTPValidationError")
            if shape is not None:
                listed = shape["properties"]["detail"]
                shape["properties"] = {
                    "error": {"type": "string", "title": "Error",
                              "description": "RequestValidationError, BadInput, or another domain error's name."},
                    "detail": {"title": "Detail", "anyOf": [{k: v for k, v in listed.items() if k != "title"},
                                                             {"type": "string"}],
                               "description": "The field errors, or one sentence naming the field and the reason."},
                }
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the handlers for every class of the table, and the catch-all for everything else."""
    _document_422(app)
    for cls in STATUS:
        app.add_exception_handler(cls, _handle)
    # Only NUL-in-text ValueErrors become 422; any other ValueError still answers 500 (and is logged).
    app.add_exception_handler(ValueError, _handle)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_middleware(CatchAll)
