"""Per-cell figures from the bank's lead and tag services (or the local tables when none is set).

``api.app.ROUTERS`` mounts this router before ``grids``: ``/grids/{grid_id}/cells/leads``
must be matched before ``/grids/{grid_id}/cells/{cell_id}`` would take ``leads`` for a cell id.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, BaseModel, Field

from api.deps import ConnDep, SettingsDep, UserDep, WriteConnDep
from api.services import Unavailable, open_leads_by_cell, tagged_customers_by_cell
from geodata import audit, leads_tags

router = APIRouter(prefix="/api/v1/grids", tags=["tag and lead services"])

MAX_CELLS = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _visible_grid(
    grid_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="Id of a stored grid.")],
    conn: ConnDep, user: UserDep,
) -> int:
    """The grid id once the user may see the grid (404 otherwise, before other parameters are judged)."""
    leads_tags.check_grid(conn, grid_id=grid_id, scope=user.scope)
    return grid_id


GridDep = Annotated[int, Depends(_visible_grid)]


def _parse_cell_ids(value: str | None) -> list[str] | None:
    if value is None:
        return None
    ids = [p.strip() for p in value.split(",") if p.strip()]
    if not ids:
        raise ValueError("cell_ids needs at least one cell id")
    if len(ids) > MAX_CELLS:
        raise ValueError(f"at most {MAX_CELLS} cell ids per request")
    if any(len(i) > 32 for i in ids):
        raise ValueError("a cell id has at most 32 characters")
    if _CONTROL.search(value):
        raise ValueError("cell ids cannot contain control characters")
    return list(dict.fromkeys(ids))


CellIdsQuery = Annotated[
    str | None,
    Query(max_length=80_000, description=(
        f"Comma-separated cell ids (at most {MAX_CELLS}); all cells of the grid you may see when omitted. "
        "Cells you may not see are left out of the answer."), examples=["88283082a3fffff,88283082a7fffff"]),
    AfterValidator(_parse_cell_ids),
]


class LeadCountsPublic(BaseModel):
    """Open leads per cell and lead type, or why the figure is unavailable."""

    grid_id: int
    available: bool = Field(description="False when the lead service could not be asked; other data is unaffected.")
    source: Literal["service", "local"] = Field(
        description="`service`: the lead service's API; `local`: the imported `lead` table.")
    reason: str | None = Field(None, description="Why the figure is unavailable.")
    cells: dict[str, dict[str, int]] | None = Field(
        None, description="Per visible cell: open leads by lead type (`{}` when none).")
    total: dict[str, int] | None = Field(None, description="Open leads by lead type over these cells.")


class TagCountsPublic(BaseModel):
    """Customers carrying a tag per cell, or why the figure is unavailable."""

    grid_id: int
    tag: str
    available: bool = Field(description="False when the tag service could not be asked; other data is unaffected.")
    source: Literal["service", "local"] = Field(
        description="`service`: the tag service's API; `local`: the imported `customer_tag` table.")
    reason: str | None = Field(None, description="Why the figure is unavailable.")
    cells: dict[str, int] | None = Field(None, description="Per visible cell: customers carrying the tag.")
    total: int | None = Field(None, description="Customers carrying the tag over these cells.")


@router.get("/{grid_id}/cells/leads", response_model=LeadCountsPublic)
def cell_leads(grid_id: GridDep, conn: ConnDep, audit_conn: WriteConnDep, user: UserDep, settings: SettingsDep,
               cell_ids: CellIdsQuery = None) -> LeadCountsPublic:
    """Open leads (营销线索) per cell and lead type, for the cells you may see (an RM: the cells
    they own). From the lead service when `GRIDMKT_LEAD_API` is set, else from imported leads.
    When the service is down the answer is still 200, with `available: false` and a `reason`."""
    cells = leads_tags.visible_cells(conn, grid_id=grid_id, cell_ids=cell_ids, scope=user.scope)
    source = "local" if settings.links.lead_api is None else "service"
    got = open_leads_by_cell(conn, grid_id=grid_id, cell_ids=cells, settings=settings.links,
                             scope=user.scope)
    audit.record(audit_conn, username=user.username, action="view", object_type="cell_leads",
                 object_id=str(grid_id), detail={"cells": len(cells), "available": not isinstance(got, Unavailable)})
    if isinstance(got, Unavailable):
        return LeadCountsPublic(grid_id=grid_id, available=False, source=source, reason=got.reason)
    total: dict[str, int] = {}
    for counts in got.values():
        for kind, n in counts.items():
            total[kind] = total.get(kind, 0) + n
    return LeadCountsPublic(grid_id=grid_id, available=True, source=source, cells=got, total=total)


@router.get("/{grid_id}/cells/tags", response_model=TagCountsPublic)
def cell_tags(
    grid_id: GridDep, conn: ConnDep, audit_conn: WriteConnDep, user: UserDep, settings: SettingsDep,
    tag: Annotated[str, Query(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$",
                              description="The tag (客户标签), e.g. 高净值 (no control characters).",
                              examples=["高净值"])],
    cell_ids: CellIdsQuery = None,
) -> TagCountsPublic:
    """Customers carrying a tag per cell, for the cells you may see. From the tag service when
    `GRIDMKT_TAG_API` is set, else from imported tags. When the service is down the answer is
    still 200, with `available: false` and a `reason`."""
    cells = leads_tags.visible_cells(conn, grid_id=grid_id, cell_ids=cell_ids, scope=user.scope)
    source = "local" if settings.links.tag_api is None else "service"
    got = tagged_customers_by_cell(conn, grid_id=grid_id, cell_ids=cells, tag=tag,
                                   settings=settings.links, scope=user.scope)
    audit.record(audit_conn, username=user.username, action="view", object_type="cell_tags",
                 object_id=str(grid_id), detail={"cells": len(cells), "tag": tag, "available": not isinstance(got, Unavailable)})
    if isinstance(got, Unavailable):
        return TagCountsPublic(grid_id=grid_id, tag=tag, available=False, source=source, reason=got.reason)
    return TagCountsPublic(grid_id=grid_id, tag=tag, available=True, source=source, cells=got,
                           total=sum(got.values()))
