"""The FastAPI application: ``create_app(settings=None)`` is the only place it is built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api import errors
from api.db import open_engine
from api.jobs import JobRunner
from api.replicas import ReadRouter, ReadYourWrites
from api.routes import (
    audit,
    auth,
    customers,
    day,
    docs,
    exports,
    gaps,
    grids,
    health,
    imports,
    jobs,
    leads_tags,
    map_pages,
    ogc,
    ogc_tiles,
    reference,
    scenarios,
    session,
    territories,
    tiles,
    users,
    visits,
)
from api.settings import Settings
from api.signin import SignInGate

DESCRIPTION = """GIS grid marketing (网格化营销) for rural commercial banks.

Sign in at `/api/v1/auth/token` (OAuth2 password flow) and send the token as
`Authorization: Bearer ...`. Repeated failed sign-ins lock the username or the
client address out for a while (429 with `Retry-After`). Every answer is restricted to what the signed-in
user may see (legal entity, outlets, own territory); personal data is masked
for planners and analysts. Errors come as `{"error": type, "detail": message}`.
"""


#: Every router of the app, in the order they are mounted. Order matters where paths overlap:
#: the first route that matches wins, so fixed segments come before path parameters
#: (``/grids/{grid_id}/cells/leads`` before ``/grids/{grid_id}/cells/{cell_id}``).
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    docs.router,
    auth.router,
    session.router,
    users.router,
    audit.router,
    jobs.router,
    reference.router,
    customers.router,
    imports.router,
    leads_tags.router,  # before grids: its /cells/leads and /cells/tags are not cell ids
    grids.router,
    territories.router,
    scenarios.router,
    gaps.router,
    exports.router,
    visits.router,
    tiles.router,
    ogc.router,
    ogc_tiles.router,
    map_pages.router,
    day.router,  # the RM's day on the phone: /maps/rm/{rm_code}/day and the page's JSON door
)


def routers() -> list[APIRouter]:
    """The routers of :data:`ROUTERS`, in mounting order."""
    return list(ROUTERS)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine and job runner live from startup to shutdown on ``app.state``."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_engine(settings.db)
        app.state.engine = engine
        app.state.reads = ReadRouter.open(engine, settings.replicas)
        app.state.reads.start()
        app.state.jobs = JobRunner(engine)
        app.state.signin = SignInGate(settings.signin)
        try:
            yield
        finally:
            app.state.signin.close()
            app.state.jobs.shutdown(wait=True)
            app.state.reads.close()
            engine.dispose()

    app = FastAPI(
        title="gridmkt",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc come from api/routes/docs.py with local assets (FastAPI's load from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    errors.install(app)
    if settings.replicas.urls:
        app.add_middleware(ReadYourWrites, key=settings.auth.secret_key,
                           window_s=settings.replicas.read_your_writes_s)
    for router in routers():
        app.include_router(router)
    return app
