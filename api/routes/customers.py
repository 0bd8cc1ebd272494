"""Customers you may see, masked by role, with deep links to the tag and lead services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import BboxQuery, ConnDep, PageDep, SettingsDep, UserDep
from api.geojson import bbox_filter, eq_filter, select_one, select_rows
from api.masking import mask_record
from api.services import customer_links
from geodata import audit

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])

_COLUMNS = (
    "c.customer_id, c.name, c.id_number, c.phone, c.legal_entity_id, c.county_code, c.village_code,"
    " c.deposit_balance::float8 AS deposit_balance, c.loan_balance::float8 AS loan_balance, c.segment, c.opened_on, c.synthetic,"
    " ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat"
)
# Customers in a cell currently owned by the given RM (any grid).
_OWNED_BY = """EXISTS (SELECT 1 FROM customer_cell cf_ JOIN territory tf_
    ON tf_.grid_id = cf_.grid_id AND tf_.cell_id = cf_.cell_id
    WHERE cf_.customer_id = c.customer_id AND tf_.valid_to IS NULL AND tf_.role = 'owner'
      AND tf_.rm_code = :owner_rm)"""


def _public(row: dict[str, Any], user, settings) -> dict[str, Any]:
    out = mask_record(row, user.scope)
    out["links"] = customer_links(settings.links, row["customer_id"])
    return out


@router.get("")
def list_customers(
    conn: ConnDep, user: UserDep, settings: SettingsDep, page: PageDep, bbox: BboxQuery = None,
    county_code: Annotated[str | None, Query(pattern=r"^[0-9]{6}$", description="Only customers of this county (6-digit adcode).")] = None,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$", description="Only customers of this village (12 digits).")] = None,
    segment: Annotated[str | None, Query(max_length=64, description="Only customers of this segment.")] = None,
    rm_code: Annotated[str | None, Query(max_length=32, description="Only customers in cells currently owned by this RM.")] = None,
) -> dict:
    """Customers you may see (an RM: those in cells they own; a branch manager: those of their
    outlets' RMs), newest scope rules in `geodata.scope`. Names, phones and ID numbers are masked
    for planners and analysts. The view is recorded in the audit log."""
    filters = (bbox_filter("c", bbox) + eq_filter("c.county_code", county_code, "county_code")
               + eq_filter("c.village_code", village_code, "village_code")
               + eq_filter("c.segment", segment, "segment")
               + ([(_OWNED_BY, {"owner_rm": rm_code})] if rm_code else []))
    rows, total = select_rows(conn, scope=user.scope, kind="customer", table="customer", alias="c",
                              columns=_COLUMNS, order="c.customer_id", filters=filters, page=page)
    audit.record(conn, username=user.username, action="view", object_type="customer_list",
                 detail={"filters": {"county_code": county_code, "village_code": village_code,
                                     "segment": segment, "rm_code": rm_code, "bbox": bbox},
                         "returned": len(rows), "offset": page.offset})
    nxt = page.offset + len(rows)
    return {"items": [_public(r, user, settings) for r in rows], "total": total,
            "next_offset": nxt if nxt < total else None}


@router.get("/{customer_id}")
def get_customer(
    customer_id: Annotated[str, Path(max_length=32, description="The bank's customer id.")],
    conn: ConnDep, user: UserDep, settings: SettingsDep,
) -> dict:
    """One customer with links to their tag profile and leads (404 outside your scope).
    The view is recorded in the audit log."""
    row = select_one(conn, scope=user.scope, kind="customer", table="customer", alias="c",
                     columns=_COLUMNS, key="c.customer_id", value=customer_id, label="customer")
    audit.record(conn, username=user.username, action="view", object_type="customer",
                 object_id=customer_id)
    return _public(row, user, settings)
