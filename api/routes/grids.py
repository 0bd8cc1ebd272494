"""Grid versions and their cells: list, build (job), cells as GeoJSON, one cell, its customers, assignment."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import AfterValidator, BaseModel, Field

from api.cells import cell_collection, cell_detail, parse_properties
from api.deps import BboxQuery, ConnDep, PageDep, SettingsDep, UserDep, WriteConnDep, permitted
from api.factory import page_model, public_model
from api.geojson import GeoJSONResponse
from api.grid_access import (
    CellIdPath,
    GridDep,
    JobStarted,
    cell_in_scope,
    items,
    jsonable,
    require_le_wide,
    start_job,
)
from api.masking import mask_record
from api.operations import grids as grid_ops
from api.schemas import (
    CellCollection,
    CellDetailPublic,
    GridPublic,
    GridsPublic,
    UnplacedPagePublic,
)
from api.services import customer_links
from geodata import assign, audit, grids
from geodata.catalog import CUSTOMERS
from geodata.reads.cells import CELL_CUSTOMER_FIELDS, customers_in_cell, unplaced_count
from geodata.reads.figures import grid_figures

router = APIRouter(prefix="/api/v1/grids", tags=["grids"])

CellCustomerPublic = public_model(
    CUSTOMERS, name="CellCustomerPublic", fields=CELL_CUSTOMER_FIELDS,
    links=(dict[str, str], Field(description="Deep links to the customer's tag profile and leads.")))
CellCustomersPublic = page_model(CellCustomerPublic, "CellCustomersPublic")
PlannerDep = permitted("plan")


class GridRefine(BaseModel):
    """Adaptive cells: split cells whose customers' workload exceeds a share of an RM's target, recursively."""

    share: float = Field(gt=0, le=10, description="Share of one RM's target a cell may hold (e.g. 0.5).")
    rms: float | None = Field(default=None, gt=0, description="RMs (capacity) sharing the county's work "
                              "(default: the county's active RMs).")
    max_res: int | None = Field(default=None, ge=6, le=13, description="Finest H3 resolution (default 11).")
    village_res: int | None = Field(default=None, ge=6, le=12, description="Village grids: H3 resolution a "
                                    "village over the limit is cut by (default 8).")


class GridCreate(BaseModel):
    """A new grid version for a county: H3 cells at a resolution, or one cell per village."""

    county_code: str = Field(pattern=r"^[0-9]{6}$", description="6-digit adcode of the county to cut.")
    kind: Literal["h3", "village"] = Field(description="`h3` hexagons or `village` cells.")
    resolution: int | None = Field(default=None, ge=6, le=10, description=(
        f"H3 resolution 6..10 (h3 only; default {grid_ops.DEFAULT_H3_RESOLUTION}, as from the command line)."))
    refine: GridRefine | None = Field(default=None, description="Split cells too busy for one RM (off when absent); "
                                      "see docs/grids.md.")


@router.get("", response_model=GridsPublic, response_model_exclude_unset=True)
def list_grids(
    conn: ConnDep, user: UserDep, page: PageDep,
    county_code: Annotated[str | None, Query(pattern=r"^[0-9]{6}$", description="Only grids of this county (6-digit adcode).")] = None,
) -> dict:
    """Grid versions of your legal entity's counties, newest first: county, kind, resolution, cell count, created time."""
    rows = grids.list_grids(conn, county_code=county_code, legal_entity_id=user.scope.legal_entity_id)
    return items(jsonable(rows[page.offset:page.offset + page.limit]), len(rows), page)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobStarted)
def build_grid(body: GridCreate, request: Request, conn: ConnDep, user: PlannerDep) -> JobStarted:
    """Build a new grid version for a county as a background job (planners and admins); 202 with the job to poll.
    Building again makes a new version; older versions and their assignments stay readable."""
    # checked now (404 out of scope, the default resolution), not in a failed job
    params = grid_ops.build_params(conn, scope=user.scope, **body.model_dump(exclude={"refine"}))
    refine = None if body.refine is None else body.refine.model_dump()
    grid_ops.refine_options(refine, resolution=params["resolution"])  # a bad option fails now, not in the job

    def fn(jconn, progress):
        return grid_ops.build(jconn, actor=user.username, progress=progress, refine=refine, **params)

    return start_job(request, kind="grid:build", user=user, fn=fn)


@router.get("/{grid_id}", response_model=GridPublic, response_model_exclude_unset=True)
def get_grid(grid: GridDep, conn: ConnDep) -> dict:
    """One grid version: county, kind, resolution, cell count, when built and assigned, build report, and
    `assignment_stale_reasons`: why the stored assignment no longer matches the customers (customers
    imported after it that were never placed again, e.g. after a crash), empty when it does."""
    return jsonable({**grid, "assignment_stale_reasons": assign.assignment_staleness(conn, grid_id=grid["id"])})


class GridFiguresPublic(BaseModel):
    """A grid's summary figures, each counted within your scope (numerator and denominator alike)."""

    grid_id: int
    cells: int = Field(description="Cells you may see (an RM: own; a branch manager: their outlets' RMs').")
    customers: int = Field(description="Your customers placed in those cells (入格客户).")
    unplaced: int = Field(description="Your customers of the grid's county placed in no cell of the grid.")
    scope_customers: int = Field(description="customers + unplaced: the denominator of 入格率.")
    coverage: float | None = Field(description="入格率 = customers / scope_customers (null when that is 0).")
    households: float = Field(description="Households of those cells, as stored (apportioned shares have decimals).")
    population: float
    apportioned_cells: int = Field(description="Cells whose households are apportioned from a shared point.")
    blank_cells: int | None = Field(description="Those cells the latest gap run calls blank (null: never scored).")
    no_potential_cells: int | None = Field(description="Those cells the latest gap run calls no-potential: too few "
                                           "households and no customers, nothing to win (null: never scored).")
    rms: int = Field(description="Current owners of those cells that you may see.")


@router.get("/{grid_id}/summary", response_model=GridFiguresPublic)
def grid_summary(grid: GridDep, conn: ConnDep, user: UserDep) -> dict:
    """The figures the dashboard and province overview show for this grid (cells, customers placed, 入格率,
    households, blank and no-potential cells, RMs), counted within your scope: a branch manager's coverage is that of the
    customers of their outlets' territories, an RM's that of their own, a planner's the county's."""
    return grid_figures(conn, scope=user.scope, grid_ids=[grid["id"]])[grid["id"]]


@router.get("/{grid_id}/cells", response_model=CellCollection, response_class=GeoJSONResponse)
def list_cells(
    grid: GridDep, conn: ConnDep, user: UserDep, page: PageDep, bbox: BboxQuery = None,
    properties: Annotated[str | None, Query(
        max_length=500, description="Comma-separated properties to include (default: all of the allow-list): "
        "label, is_border, village_codes, township_code, area_km2, customers, households, population, "
        "apportioned, deposit, loan, visits_90d, customers_visited_90d, last_visit_at, owner_rm, locked, "
        "score, gap_class."), AfterValidator(parse_properties)] = None,
    res: Annotated[int | None, Query(ge=0, le=15, description="Roll an H3 grid up to this coarser resolution "
                                     "(H3 parents; sums of the children's figures).")] = None,
) -> dict:
    """Cells of the grid as a GeoJSON FeatureCollection (WGS84), paged, optionally inside `bbox`.
    Every user of the legal entity sees every cell's geometry; figures tied to customers and the owner
    are null for cells outside your territory (RMs) or your outlets' territories (branch managers)."""
    return GeoJSONResponse(jsonable(
        cell_collection(conn, user.scope, grid, bbox=bbox, page=page, properties=properties, res=res)))


@router.get("/{grid_id}/cells/{cell_id}", response_model=CellDetailPublic, response_model_exclude_unset=True)
def get_cell(grid: GridDep, cell_id: CellIdPath, conn: ConnDep, user: UserDep, settings: SettingsDep) -> dict:
    """One cell as a GeoJSON Feature: statistics, owner and co-owners, lock, latest gap score with its
    components and reasons, and deep links to the tag and lead services for the cell's customers
    (404 for a cell outside your scope: an RM only reaches cells they own)."""
    cell_in_scope(conn, user.scope, grid["id"], cell_id)
    return cell_detail(conn, user.scope, grid, cell_id, settings.links)


@router.get("/{grid_id}/cells/{cell_id}/customers", response_model=CellCustomersPublic, response_model_exclude_unset=True)
def cell_customers(grid: GridDep, cell_id: CellIdPath, conn: ConnDep, audit_conn: WriteConnDep, user: UserDep,
                   settings: SettingsDep, page: PageDep) -> dict:
    """Customers placed in the cell that you may see, masked by role, each with tag/lead deep links.
    The view is recorded in the audit log."""
    cell_in_scope(conn, user.scope, grid["id"], cell_id)
    rows, total = customers_in_cell(conn, scope=user.scope, grid_id=grid["id"], cell_id=cell_id,
                                    limit=page.limit, offset=page.offset)
    audit.record(audit_conn, username=user.username, action="view", object_type="cell_customers",
                 object_id=f"{grid['id']}/{cell_id}", detail={"returned": len(rows), "offset": page.offset})
    out = []
    for r in rows:
        d = mask_record(r, user.scope, CUSTOMERS.masked)
        d["links"] = customer_links(settings.links, r["customer_id"])
        out.append(d)
    return items(out, total, page)


@router.post("/{grid_id}/assignment", status_code=status.HTTP_202_ACCEPTED, response_model=JobStarted)
def assign_customers(grid: GridDep, request: Request, conn: ConnDep, user: PlannerDep) -> JobStarted:
    """Place every customer of the grid's county in exactly one cell and refresh the per-cell statistics,
    as a background job (planners and admins); 202 with the job to poll."""
    gid = grid["id"]
    return start_job(request, kind="grid:assign", user=user, fn=lambda jconn, progress: grid_ops.assign(
        jconn, actor=user.username, grid_id=gid, progress=progress))


@router.get("/{grid_id}/unplaced", response_model=UnplacedPagePublic, response_model_exclude_unset=True)
def unplaced(grid: GridDep, conn: ConnDep, audit_conn: WriteConnDep, user: UserDep, page: PageDep) -> dict:
    """Customers of the grid's county that got no cell, with the reason (`outside`, `no_location`):
    planners, analysts and admins only (unplaced customers belong to no territory)."""
    require_le_wide(user, "unplaced customers")
    rows = assign.unplaced_customers(conn, grid_id=grid["id"], limit=page.limit, offset=page.offset)
    total = unplaced_count(conn, grid_id=grid["id"])
    audit.record(audit_conn, username=user.username, action="view", object_type="unplaced_customers",
                 object_id=str(grid["id"]), detail={"returned": len(rows), "offset": page.offset})
    return items(rows, total, page)
