"""Liveness and readiness probes (no login needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import EngineDep
from api.health_schemas import HealthPublic, ReadyPublic
from geodata import migrate

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def health(engine: EngineDep) -> JSONResponse:
    """Whether the service runs and its database answers (503 when it does not)."""
    if not migrate.answers(engine):
        return JSONResponse({"status": "unavailable", "database": False}, status_code=503)
    return JSONResponse({"status": "ok", "database": True})


@router.get("/ready", response_model=ReadyPublic, responses={503: {"model": ReadyPublic}})
def ready(request: Request, engine: EngineDep) -> JSONResponse:
    """Whether the service can take requests: database reachable and its schema at the newest revision.

    With read replicas (`GRIDMKT_READ_DATABASE_URLS`), each is checked now and reported (up, lagging,
    down); one down or lagging leaves the service ready, its reads going to the primary."""
    try:
        current = migrate.current(engine)
    except Exception:
        return JSONResponse({"ready": False, "reason": "database unreachable"}, status_code=503)
    head = migrate.head()
    if current != head:
        return JSONResponse({"ready": False, "reason": f"schema at {current}, expected {head}"},
                            status_code=503)
    body = {"ready": True, "revision": current}
    reads = getattr(request.app.state, "reads", None)
    if reads is not None and reads.replicas:
        reads.check()
        body["replicas"] = reads.report()
        body["reads_from"] = "replicas" if any(r["state"] == "up" for r in body["replicas"]) else "primary"
    return JSONResponse(body)
