"""Customers you may see, masked by role, with deep links to the tag and lead services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from api.deps import BboxQuery, ConnDep, PageDep, SettingsDep, UserDep, WriteConnDep
from api.factory import page_model, public_model
from api.masking import mask_record
from api.services import customer_links
from geodata import audit
from geodata.catalog import CUSTOMERS
from geodata.reads import collections as reads

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])

CustomerPublic = public_model(
    CUSTOMERS, links=(dict[str, str], Field(description="Deep links to the customer's tag profile and leads.")))
CustomerPage = page_model(CustomerPublic, "CustomerPage")


def _public(row: dict[str, Any], user, settings) -> dict[str, Any]:
    out = mask_record(row, user.scope, CUSTOMERS.masked)
    out["links"] = customer_links(settings.links, row["customer_id"])
    return out


@router.get("", response_model=CustomerPage)
def list_customers(
    conn: ConnDep, audit_conn: WriteConnDep, user: UserDep, settings: SettingsDep, page: PageDep, bbox: BboxQuery = None,
    county_code: Annotated[str | None, Query(pattern=r"^[0-9]{6}$", description="Only customers of this county (6-digit adcode).")] = None,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$", description="Only customers of this village (12 digits).")] = None,
    segment: Annotated[str | None, Query(max_length=64, description="Only customers of this segment.")] = None,
    rm_code: Annotated[str | None, Query(max_length=32, description="Only customers in cells currently owned by this RM.")] = None,
) -> dict:
    """Customers you may see (an RM: those in cells they own; a branch manager: those of their
    outlets' RMs), newest scope rules in `geodata.scope`. Names, phones and ID numbers are masked
    for planners and analysts. The view is recorded in the audit log."""
    rows, total = reads.list_items(conn, CUSTOMERS, scope=user.scope, limit=page.limit, offset=page.offset,
                                   bbox=bbox, filters={"county_code": county_code, "village_code": village_code,
                                                       "segment": segment, "rm_code": rm_code},
                                   geometry=False)  # lon/lat are fields
    audit.record(audit_conn, username=user.username, action="view", object_type="customer_list",
                 detail={"filters": {"county_code": county_code, "village_code": village_code,
                                     "segment": segment, "rm_code": rm_code, "bbox": bbox},
                         "returned": len(rows), "offset": page.offset})
    nxt = page.offset + len(rows)
    return {"items": [_public(r, user, settings) for r in rows], "total": total,
            "next_offset": nxt if nxt < total else None}


@router.get("/{customer_id}", response_model=CustomerPublic)
def get_customer(
    customer_id: Annotated[str, Path(max_length=32, description="The bank's customer id.")],
    conn: ConnDep, audit_conn: WriteConnDep, user: UserDep, settings: SettingsDep,
) -> dict:
    """One customer with links to their tag profile and leads (404 outside your scope).
    The view is recorded in the audit log."""
    row = reads.get_item(conn, CUSTOMERS, scope=user.scope, key=customer_id, geometry=False)
    audit.record(audit_conn, username=user.username, action="view", object_type="customer",
                 object_id=customer_id)
    return _public(row, user, settings)
