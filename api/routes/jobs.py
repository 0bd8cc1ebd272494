"""Background jobs (imports, grid builds, plans): poll their progress."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from api.deps import ConnDep, UserDep
from geodata import jobs

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class JobPublic(BaseModel):
    """A background job: status queued/running/done/failed, progress 0..1, result when done."""

    id: str
    kind: str
    status: str
    progress: float
    message: str | None
    result: dict[str, Any] | None
    username: str
    created_at: dt.datetime
    updated_at: dt.datetime


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: Annotated[str, Path(max_length=36, description="Job id returned when the job was started.")],
            conn: ConnDep, user: UserDep) -> dict:
    """One of your jobs (admins: any job) with its progress and, when done, its result."""
    return jobs.get_job(conn, job_id, scope=user.scope)
