"""Response models of the probes (``/health``, ``/ready``), kept beside ``api/schemas.py`` (at its
400-line limit) with the same conventions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas import Open


class HealthPublic(Open):
    """Liveness: whether the service and its database answer."""

    status: Literal["ok", "unavailable"]
    database: bool


class ReplicaPublic(Open):
    """One read replica as this worker process last checked it (docs/replicas.md)."""

    name: str = Field(description="host:port/database of the replica.")
    state: Literal["up", "lagging", "down", "unknown"] = Field(
        description="up: serves reads; lagging: behind the primary by more than the bound (reads go to the"
                    " primary); down: unreachable or not a standby (reads go to the primary); unknown: not"
                    " checked yet.")
    lag_s: float | None = Field(description="At most this many seconds of commits are missing on it (null"
                                            " before its first good check).")
    error: str | None = Field(None, description="Why it is down.")
    reads: int = Field(description="Requests this worker process served from it.")


class ReadyPublic(Open):
    """Readiness: database reachable and its schema at the newest revision; each read replica's state.

    A replica down or lagging does not make the service unready: its reads go to the primary.
    """

    ready: bool
    revision: str | None = None
    reason: str | None = None
    reads_from: Literal["primary", "replicas"] | None = Field(
        None, description="Where GET requests read now: replicas while at least one is up, else the primary.")
    replicas: list[ReplicaPublic] = Field(default_factory=list, description="Empty when none is configured.")
