"""Response models (``*Public``) of the grid, territory, scenario, gap and import routes.

They are what the OpenAPI document shows. Each names the fields every answer has; answers may carry
more (``extra="allow"``: reports, summaries and parameters grow with the optimiser and importers, and
are passed on as they are). Routes use them with ``response_model_exclude_unset=True``, so an answer
holds exactly the keys it always held. Reference collections' models: ``geodata.catalog`` (``api.factory``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

Json = dict[str, Any]
# Times as Python writes them (2025-01-02T00:26:55+00:00), as these answers always did.
Timestamp = Annotated[dt.datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str)]
# A count or amount as stored: integers stay integers.
Number = int | float
NextOffset = Field(None, description="Offset of the next page (null on the last).")
Total = Field(description="Items matching the query, over all pages.")


class Open(BaseModel):
    """A shape whose named fields are always there; further fields are passed on."""

    model_config = ConfigDict(extra="allow")


# --- grids and cells ---------------------------------------------------------------------------------

class GridSummaryPublic(Open):
    """One grid version in a list."""

    id: int
    county_code: str
    county_name: str | None = None
    kind: Literal["h3", "village"]
    resolution: int | None = None
    cell_count: int
    created_at: Timestamp
    assigned_at: Timestamp | None = None


class GridsPublic(BaseModel):
    """A page of grid versions, newest first."""

    items: list[GridSummaryPublic]
    total: int = Total
    next_offset: int | None = NextOffset


class GridPublic(GridSummaryPublic):
    """One grid version with its legal entity, territory version and build report."""

    legal_entity_id: int | None = None
    territory_version: int
    report: Json = Field(default_factory=dict, description="What the build did (cells, merged villages, ...).")
    assignment_stale_reasons: list[str] | None = Field(None, description="Why the assignment is stale; [] if not.")


class CellProperties(Open):
    """Properties of a cell in a collection: those asked for (`properties`); figures tied to customers
    and the owner are null outside your territory scope."""

    cell_id: str
    label: str | None = None
    is_border: bool | None = None
    village_codes: list[str] | None = None
    township_code: str | None = None
    area_km2: Number | None = None
    customers: Number | None = None
    households: Number | None = None
    population: Number | None = None
    apportioned: bool | None = None
    deposit: Number | None = None
    loan: Number | None = None
    visits_90d: Number | None = None
    customers_visited_90d: Number | None = None
    last_visit_at: str | None = None
    owner_rm: str | None = None
    locked: bool | None = None
    score: Number | None = None
    gap_class: str | None = None
    resolution: int | None = Field(None, description="The roll-up resolution (only with `res`).")


class CellFeature(BaseModel):
    """A cell as a GeoJSON Feature."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Json | None = None
    properties: CellProperties


class CellCollection(BaseModel):
    """A page of cells as a GeoJSON FeatureCollection (WGS84)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[CellFeature]
    numberMatched: int = Total
    numberReturned: int
    next_offset: int | None = NextOffset


class CellDetailProperties(CellProperties):
    """One cell: statistics, owners, lock, latest gap score and deep links."""

    owner_since: Timestamp | None = None
    co_owners: list[str] = Field(default_factory=list)
    gap: Json | None = Field(None, description="Latest gap score of the cell with components and reasons.")
    customers_visible: int = Field(description="Customers of the cell you may see.")
    links: Json = Field(description="The cell's customers, and deep links to the tag and lead services.")


class CellDetailPublic(BaseModel):
    """One cell as a GeoJSON Feature."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Json | None = None
    properties: CellDetailProperties


class UnplacedPublic(Open):
    """A customer of the grid's county that got no cell, and why."""

    customer_id: str
    how: str = Field(description="`outside` the county's cells or `no_location`.")


class UnplacedPagePublic(BaseModel):
    """A page of unplaced customers."""

    items: list[UnplacedPublic]
    total: int = Total
    next_offset: int | None = NextOffset


# --- territories -------------------------------------------------------------------------------------

class TerritoryPublic(Open):
    """One RM's current territory in a grid."""

    rm_code: str
    outlet_code: str | None = None
    cells: list[str]
    co_owned_cells: list[str]
    customers: int
    locked_cells: int
    cell_count: int


class TerritoriesPublic(BaseModel):
    """Current territory of each RM you may see."""

    grid_id: int
    territory_version: int
    items: list[TerritoryPublic]


class HistoryEntryPublic(Open):
    """One ownership period of a cell."""

    cell_id: str
    rm_code: str
    role: Literal["owner", "co_owner"]
    valid_from: Timestamp
    valid_to: Timestamp | None = None
    reason: str | None = None
    changed_by: str | None = None
    scenario_id: int | None = None


class HistoryPublic(BaseModel):
    """A page of ownership history, newest first."""

    items: list[HistoryEntryPublic]
    next_offset: int | None = NextOffset


class RmCellPublic(Open):
    """A cell an RM owns."""

    cell_id: str
    valid_from: Timestamp
    reason: str | None = None
    customers: int
    locked: bool


class RmTerritoryPublic(BaseModel):
    """A page of the cells one RM owns."""

    rm_code: str
    items: list[RmCellPublic]
    total: int = Total
    next_offset: int | None = NextOffset


class TerritoryChangePublic(Open):
    """What a manual territory change did, with the hand-over list (customers whose RM changes)."""

    grid_id: int
    customers_changing_rm: int
    handover: list[Json]


# --- scenarios ---------------------------------------------------------------------------------------

class ScenarioSummaryPublic(Open):
    """One scenario in a list."""

    id: int
    grid_id: int
    name: str
    status: Literal["draft", "published", "discarded"]
    base_version: int | None = None
    created_by: str | None = None
    created_at: Timestamp
    published_at: Timestamp | None = None


class ScenariosPublic(BaseModel):
    """A page of scenarios, newest first."""

    items: list[ScenarioSummaryPublic]
    total: int = Total
    next_offset: int | None = NextOffset


class ScenarioPublic(ScenarioSummaryPublic):
    """One scenario: parameters, plan report and cells per RM."""

    params: Json | None = None
    report: Json | None = None
    per_rm: list[Json]


class ScenarioOutcomePublic(Open):
    """What publishing or discarding a scenario did (publishing: the hand-over list, rescoring)."""

    scenario_id: int
    name: str
    status: Literal["published", "discarded"]


class ComparePublic(Open):
    """Two assignments compared: cells moved, per-RM workload, customers changing RM."""

    grid_id: int
    a: str
    b: str
    cells_moved: int
    moved: list[Json]
    customers_changing_rm: int
    handover_sample: list[Json]


# --- gaps --------------------------------------------------------------------------------------------

class GapScorePublic(Open):
    """A cell's latest gap score: class, components, measures and reasons (zh/en)."""

    cell_id: str
    score: Number
    gap_class: str
    components: Json | None = None
    measures: Json | None = None
    reason_zh: str | None = None
    reason_en: str | None = None


class GapRunPublic(Open):
    """When the scores were computed, with which configuration, and whether they are stale."""

    id: int
    computed_at: Timestamp
    as_of: Timestamp | None = Field(None, description="Date scored as of (90-day visits, days since visit).")
    trigger: str | None = None
    config: Json | None = None
    stale: bool
    stale_reasons: list[str]
    cells_owner_changed: int


class GapFeature(BaseModel):
    """A scored cell as a GeoJSON Feature."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Json | None = None
    properties: GapScorePublic


class GapCollection(BaseModel):
    """A page of the latest gap scores as a GeoJSON FeatureCollection, highest first."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    gap_run: GapRunPublic
    features: list[GapFeature]
    numberMatched: int = Total
    numberReturned: int
    next_offset: int | None = NextOffset


class BlankAreaPublic(GapScorePublic):
    """A blank area (业务空白区域) and its rank."""

    rank: int


class BlankAreasPublic(BaseModel):
    """Blank areas ranked by score."""

    grid_id: int
    items: list[BlankAreaPublic]


class ContributionPublic(BaseModel):
    """One component of a score: its value, weight (points at value 1) and contribution."""

    component: str
    contribution: Number | None = None
    value: Number | None = None
    weight: Number | None = None


class GapExplanationPublic(GapScorePublic):
    """Why one cell scores as it does."""

    gap_run: GapRunPublic
    contributions: list[ContributionPublic]


# --- imports -----------------------------------------------------------------------------------------

class ImportRunPublic(Open):
    """One import run: counts, warnings, message and a link to its rejected rows."""

    id: int
    kind: str
    file_name: str
    user_name: str
    started_at: Timestamp
    finished_at: Timestamp | None = None
    status: str
    dry_run: bool
    synthetic: bool
    encoding: str | None = None
    source_crs: str | None = None
    counts: Json
    warnings: list[Any]
    message: str | None = None
    rejects: str | None = Field(None, description="Where to fetch the rejected rows (null when none).")


class ImportRunsPublic(BaseModel):
    """A page of import runs, newest first."""

    items: list[ImportRunPublic]
    total: int = Total
    next_offset: int | None = NextOffset


# --- audit -------------------------------------------------------------------------------------------

class AuditEntryPublic(Open):
    """Who viewed, exported, imported or changed what, and when."""

    id: int
    at: Timestamp
    username: str
    action: str
    object_type: str
    object_id: str | None = None
    detail: Json | None = None


class AuditPublic(BaseModel):
    """A page of audit entries, newest first."""

    items: list[AuditEntryPublic]
