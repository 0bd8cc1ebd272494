"""Coverage gaps of a grid: scoring (job), latest scores as GeoJSON, blank areas, one cell's why, sites (job).

Scores hold no personal data, but their measures name the owning RM and count
customers: RMs and branch managers see the cells of their (outlets') territory
plus the cells nobody owns (blank areas belong to no territory yet); planners,
analysts and admins see every cell of their legal entity.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import BboxQuery, ConnDep, PageDep, UserDep, permitted
from api.grid_access import CellIdPath, GridDep, JobStarted, require_le_wide, start_job
from api.operations import gaps as gap_ops
from api.schemas import BlankAreasPublic, GapCollection, GapExplanationPublic
from geodata import grids
from geodata.errors import NotFound
from geodata.reads import gaps as reads
from geodata.reads.values import feature_collection, geojson_geometries

router = APIRouter(prefix="/api/v1/grids/{grid_id}/gaps", tags=["gaps"])
PlannerDep = permitted("plan")
GapClass = Literal["blank", "under-served", "covered", "no-potential"]


class ScoreRequest(BaseModel):
    """Score every cell of the grid; weights and thresholds from a TOML text (defaults when omitted)."""

    config_toml: str | None = Field(default=None, max_length=20_000,
                                    description="Gap configuration as TOML text (weights, class thresholds).")


class SitesRequest(BaseModel):
    """Where up to `count` new service points would newly cover the most households within `radius_km`."""

    model_config = ConfigDict(allow_inf_nan=False)  # NaN, Infinity, 1e400: 422, not a number

    count: int = Field(ge=1, le=gap_ops.SITES_MAX_COUNT, description="Most new sites to choose.")
    radius_km: float = Field(gt=0, le=gap_ops.SITES_MAX_RADIUS_KM, description="Coverage radius in km (straight line).")


@router.post("/score", status_code=status.HTTP_202_ACCEPTED, response_model=JobStarted)
def score(grid: GridDep, request: Request, conn: ConnDep, user: PlannerDep, body: ScoreRequest | None = None) -> JobStarted:
    """Score every cell 0–100 from normalised components as a background job (planners and admins);
    the run is stored with the grid version and time, and its summary is the job's result."""
    gid, cfg = grid["id"], body.config_toml if body else None
    gap_ops.check_config(cfg)  # a mistake in the weights is the request's fault: say so now, not in a failed job
    return start_job(request, kind="gaps:score", user=user, fn=lambda jconn, progress: gap_ops.score(
        jconn, actor=user.username, grid_id=gid, config_text=cfg, trigger="api"))


@router.get("", response_model=GapCollection, response_model_exclude_unset=True)
def latest_scores(
    grid: GridDep, conn: ConnDep, user: UserDep, page: PageDep, bbox: BboxQuery = None,
    gap_class: Annotated[GapClass | None, Query(description="Only cells of this class.")] = None,
) -> dict:
    """Latest gap scores as a GeoJSON FeatureCollection, highest score first: score, class, component
    contributions, measures and reasons (zh/en) per cell; `gap_run` says when they were computed and
    whether they are `stale` (a manual territory change or a new customer assignment since, or customers
    imported but not placed again since the grid was assigned: see `stale_reasons`; imports and publishing
    re-assign and rescore by themselves)."""
    part, total, run = reads.latest_scores(conn, scope=user.scope, grid_id=grid["id"], gap_class=gap_class,
                                           bbox=bbox, limit=page.limit, offset=page.offset)
    geoms: dict[str, Any] = {}
    if part:
        cells = grids.load_cells(conn, grid_id=grid["id"], cell_ids=[r["cell_id"] for r in part], with_stats=False)
        geoms = dict(zip(cells["cell_id"], geojson_geometries(cells.geometry), strict=True))
    return feature_collection([{"type": "Feature", "id": r["cell_id"], "geometry": geoms.get(r["cell_id"]),
                                "properties": r} for r in part], total, offset=page.offset, gap_run=run)


@router.get("/blank", response_model=BlankAreasPublic, response_model_exclude_unset=True)
def blank_areas(
    grid: GridDep, conn: ConnDep, user: UserDep,
    top: Annotated[int, Query(ge=1, le=1000, description="How many blank areas to return.")] = 50,
) -> dict:
    """Blank areas (业务空白区域) ranked by score, each with the reason in plain words (zh and en)."""
    rows, _, _ = reads.latest_scores(conn, scope=user.scope, grid_id=grid["id"], gap_class="blank", limit=top)
    return {"grid_id": grid["id"], "items": [{"rank": i, **r} for i, r in enumerate(rows, start=1)]}


@router.get("/cells/{cell_id}", response_model=GapExplanationPublic, response_model_exclude_unset=True)
def explain_cell(grid: GridDep, cell_id: CellIdPath, conn: ConnDep, user: UserDep) -> dict:
    """Why one cell scores as it does: score, class, each component's value, weight (points at value 1)
    and contribution = weight × value (largest first), the measures behind them and the reasons in zh/en
    (404 outside your scope)."""
    if not reads.score_visible(conn, scope=user.scope, grid_id=grid["id"], cell_id=cell_id):
        raise NotFound(f"grid {grid['id']} has no cell {cell_id!r}")
    rows, _, run = reads.latest_scores(conn, scope=user.scope, grid_id=grid["id"], cell_ids=[cell_id])
    if not rows:
        raise NotFound(f"grid {grid['id']} has no score for cell {cell_id!r}")
    r = rows[0]
    comps = r.get("components") or {}
    contrib = sorted(((k.removeprefix("contrib_"), v) for k, v in comps.items() if k.startswith("contrib_")),
                     key=lambda kv: -(kv[1] or 0))
    values = {k.removeprefix("comp_"): v for k, v in comps.items() if k.startswith("comp_")}
    # a run stored without weights (none written by score_grid) has no weight to show
    weights = _points_per_component((run.get("config") or {}).get("weights"))
    return {**r, "gap_run": run, "contributions": [
        {"component": k, "contribution": v, "value": values.get(k), **({"weight": weights[k]} if k in weights else {})}
        for k, v in contrib]}


def _points_per_component(weights: dict | None) -> dict[str, float]:
    """The run's weights rescaled to sum to 100: the points each component adds at value 1."""
    if not weights or not sum(weights.values()) > 0:
        return {}
    total = sum(weights.values())
    return {c: 100.0 * w / total for c, w in weights.items()}


@router.post("/sites", status_code=status.HTTP_202_ACCEPTED, response_model=JobStarted)
def suggest_sites(body: SitesRequest, grid: GridDep, request: Request, conn: ConnDep, user: UserDep) -> JobStarted:
    """Suggest new service-point sites (maximal covering with existing outlets and service points fixed)
    as a background job (admins, planners, analysts); the result gives households covered before and
    after, per suggestion."""
    require_le_wide(user, "site suggestions")
    gid = grid["id"]
    return start_job(request, kind="gaps:sites", user=user, fn=lambda jconn, progress: gap_ops.sites(
        jconn, actor=user.username, grid_id=gid, count=body.count, radius_km=body.radius_km))
