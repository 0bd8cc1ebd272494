"""The FastAPI application: ``create_app(settings=None)`` is the only place it is built."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api import errors
from api.db import open_engine
from api.jobs import JobRunner
from api.settings import Settings

DESCRIPTION = """GIS grid marketing (网格化营销) for rural commercial banks.

Sign in at `/api/v1/auth/token` (OAuth2 password flow) and send the token as
`Authorization: Bearer ...`. Every answer is restricted to what the signed-in
user may see (legal entity, outlets, own territory); personal data is masked
for planners and analysts. Errors come as `{"error": type, "detail": message}`.
"""


def routers() -> list[APIRouter]:
    """The ``router`` of every module in ``api/routes`` (adding a module adds its routes)."""
    import api.routes as pkg

    found = []
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"api.routes.{mod.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine and job runner live from startup to shutdown on ``app.state``."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_engine(settings.db)
        app.state.engine = engine
        app.state.jobs = JobRunner(engine)
        try:
            yield
        finally:
            app.state.jobs.shutdown(wait=True)
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
    for router in routers():
        app.include_router(router)
    return app
