"""Liveness and readiness probes (no login needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import EngineDep
from api.schemas import HealthPublic, ReadyPublic
from geodata import migrate

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def health(engine: EngineDep) -> JSONResponse:
    """Whether the service runs and its database answers (503 when it does not)."""
    if not migrate.answers(engine):
        return JSONResponse({"status": "unavailable", "database": False}, status_code=503)
    return JSONResponse({"status": "ok", "database": True})


@router.get("/ready", response_model=ReadyPublic, responses={503: {"model": ReadyPublic}})
def ready(engine: EngineDep) -> JSONResponse:
    """Whether the service can take requests: database reachable and its schema at the newest revision."""
    try:
        current = migrate.current(engine)
    except Exception:
        return JSONResponse({"ready": False, "reason": "database unreachable"}, status_code=503)
    head = migrate.head()
    if current != head:
        return JSONResponse({"ready": False, "reason": f"schema at {current}, expected {head}"},
                            status_code=503)
    return JSONResponse({"ready": True, "revision": current})
