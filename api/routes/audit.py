"""The audit log (admins): who viewed, exported, imported or changed what, and when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ConnDep, PageDep, permitted
from api.schemas import AuditPublic
from geodata import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
AuditorDep = permitted("view_audit")


@router.get("", response_model=AuditPublic, response_model_exclude_unset=True)
def list_audit(
    conn: ConnDep, user: AuditorDep, page: PageDep,
    username: Annotated[str | None, Query(max_length=64, description="Only entries of this user.")] = None,
    object_type: Annotated[str | None, Query(max_length=64, description="Only entries about this object type (e.g. customer, user).")] = None,
) -> dict:
    """Audit entries, newest first (an admin bound to a legal entity sees its users' entries only)."""
    return {"items": audit.entries(conn, username=username, object_type=object_type,
                                   legal_entity_id=user.legal_entity_id,
                                   limit=page.limit, offset=page.offset)}
