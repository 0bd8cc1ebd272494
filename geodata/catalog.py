"""The collections catalog: one entry per collection of stored objects (table, key, geometry, fields,
scope rule, masking rule), in the spirit of tipg's catalog.

An entry is data, not code: ``api.factory`` turns each entry of
:data:`REFERENCE` into a list and a get route, ``geodata.reads.collections``
reads any entry with its scope rule in SQL, and the same entries can drive
exports and OGC API Features. SQL names here are constants (allow-listed by
being written here); values always arrive as bound parameters.

>>> COLLECTIONS["outlets"].columns().split(", ")[:2]
['o.code AS code', 'o.name AS name']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from geodata.scope import KINDS

ADCODE = r"^[0-9]{6}$"
TOWNSHIP_CODE = r"^[0-9]{9}$"
VILLAGE_CODE = r"^[0-9]{12}$"


@dataclass(frozen=True)
class Field:
    """One property of a collection: its name, SQL expression under the entry's alias, type, meaning."""

    name: str
    sql: str
    type: type = str
    description: str = ""


@dataclass(frozen=True)
class Param:
    """A value a caller gives: an item's key, or a filter (``sql`` holds one bound ``:name``).

    ``pattern``/``max_length`` (text) or ``ge``/``le`` (integers) are the input
    checks, applied by whoever parses a request.
    """

    name: str
    type: type = str
    description: str = ""
    sql: str = ""
    pattern: str | None = None
    max_length: int | None = None
    ge: int | None = None
    le: int | None = None


@dataclass(frozen=True)
class Collection:
    """A collection: where its rows live, who may see which (``scope``, a ``geodata.scope`` kind) and
    which fields are personal data to mask (``masked``: field → kind, see ``api.masking``)."""

    id: str
    model: str
    label: str
    description: str
    table: str
    alias: str
    key: Param
    scope: str
    fields: tuple[Field, ...]
    geometry: str | None = None
    masked: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    filters: tuple[Param, ...] = ()

    def __post_init__(self) -> None:
        if self.scope not in KINDS:
            raise ValueError(f"collection {self.id}: no scope rule for {self.scope!r}")
        names = [f.name for f in self.fields]
        if self.key.name not in names:
            raise ValueError(f"collection {self.id}: key {self.key.name!r} is not one of its fields")
        if set(self.masked) - set(names):
            raise ValueError(f"collection {self.id}: masks unknown fields {sorted(set(self.masked) - set(names))}")

    @property
    def key_sql(self) -> str:
        """The key's SQL expression."""
        return next(f.sql for f in self.fields if f.name == self.key.name)

    def field(self, name: str) -> Field:
        """The field called ``name`` (KeyError for an unknown one)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def columns(self, names: tuple[str, ...] | None = None) -> str:
        """The SELECT list of the fields (all, or those of ``names`` in that order)."""
        chosen = self.fields if names is None else tuple(self.field(n) for n in names)
        return ", ".join(f"{f.sql} AS {f.name}" for f in chosen)


def _eq(name: str, column: str, description: str, type_: type = str, **checks: Any) -> Param:
    """A filter ``column = :name``."""
    return Param(name, type_, description, sql=f"{column} = :{name}", **checks)


def _f(alias: str, *names: str, types: Mapping[str, type] | None = None) -> tuple[Field, ...]:
    """Plain columns of the entry's table, text unless ``types`` says otherwise."""
    return tuple(Field(n, f"{alias}.{n}", (types or {}).get(n, str)) for n in names)


COUNTY_FILTER = dict(pattern=ADCODE)
_CUSTOMERS_OF_RM = """EXISTS (SELECT 1 FROM customer_cell cf_ JOIN territory tf_
    ON tf_.grid_id = cf_.grid_id AND tf_.cell_id = cf_.cell_id
    WHERE cf_.customer_id = c.customer_id AND tf_.valid_to IS NULL AND tf_.role = 'owner'
      AND tf_.rm_code = :rm_code)"""

LEGAL_ENTITIES = Collection(
    id="legal-entities", model="LegalEntity", label="legal entity", table="legal_entity", alias="le",
    description="Legal entities (法人机构) you may see: your own, or all of them for a system-wide admin.",
    key=Param("id", int, "Id of the legal entity.", ge=1, le=2**31 - 1), scope="legal_entity",
    fields=_f("le", "id", "code", "name", "synthetic", types={"id": int, "synthetic": bool}),
)
COUNTIES = Collection(
    id="counties", model="County", label="county", table="county", alias="k", geometry="geom",
    description="Counties of your legal entity (MultiPolygons, WGS84).",
    key=Param("adcode", str, "6-digit county adcode.", pattern=ADCODE), scope="county",
    fields=_f("k", "adcode", "name", "city_code", "legal_entity_id", "source_crs", types={"legal_entity_id": int}),
)
TOWNSHIPS = Collection(
    id="townships", model="Township", label="township", table="township", alias="tw", geometry="boundary",
    description="Townships (乡镇/街道) of your legal entity's counties (boundaries where known).",
    key=Param("code", str, "9-digit township code.", pattern=TOWNSHIP_CODE), scope="township",
    fields=_f("tw", "code", "name", "county_code", "population", "households",
              types={"population": int, "households": int}),
    filters=(_eq("county_code", "tw.county_code", "Only townships of this county (6-digit adcode).", **COUNTY_FILTER),),
)
VILLAGES = Collection(
    id="villages", model="Village", label="village", table="village", alias="v", geometry="geom",
    description="Villages (村/社区) as points; `coord_level` says whether the point is the village's own, its "
                "township seat's or its county seat's (null geometry when none is known).",
    key=Param("code", str, "12-digit village code.", pattern=VILLAGE_CODE), scope="village",
    fields=_f("v", "code", "name", "township_code", "township_name", "county_code", "households", "population",
              "is_community", "coord_level", "outside_county",
              types={"households": int, "population": int, "is_community": bool, "outside_county": bool}),
    filters=(_eq("county_code", "v.county_code", "Only objects of this county (6-digit adcode).", **COUNTY_FILTER),
             _eq("township_code", "v.township_code", "Only villages of this township (9 digits).",
                 pattern=TOWNSHIP_CODE)),
)
OUTLETS = Collection(
    id="outlets", model="Outlet", label="outlet", table="outlet", alias="o", geometry="geom",
    description="Outlets (网点) of your legal entity as points.",
    key=Param("code", str, "Code of the object.", max_length=32), scope="outlet",
    fields=_f("o", "code", "name", "legal_entity_id", "county_code", "village_code", "kind", "synthetic",
              types={"legal_entity_id": int, "synthetic": bool}),
    filters=(_eq("county_code", "o.county_code", "Only objects of this county (6-digit adcode).", **COUNTY_FILTER),),
)
SERVICE_POINTS = Collection(
    id="service-points", model="ServicePoint", label="service point", table="service_point", alias="s",
    geometry="geom", description="Service points (助农服务点) of your legal entity as points.",
    key=Param("code", str, "Code of the object.", max_length=32), scope="service_point",
    fields=_f("s", "code", "name", "legal_entity_id", "outlet_code", "county_code", "village_code", "synthetic",
              types={"legal_entity_id": int, "synthetic": bool}),
    filters=(_eq("county_code", "s.county_code", "Only objects of this county (6-digit adcode).", **COUNTY_FILTER),
             _eq("outlet_code", "s.outlet_code", "Only service points attached to this outlet.", max_length=32)),
)
RMS = Collection(
    id="rms", model="Rm", label="RM", table="rm", alias="r",
    description="Relationship managers (客户经理) you may see: the legal entity's for planners and analysts, "
                "your outlets' for a branch manager, yourself for an RM. Phones are masked for planners and analysts.",
    key=Param("code", str, "Code of the object.", max_length=32), scope="rm",
    fields=_f("r", "code", "name", "legal_entity_id", "outlet_code", "phone", "capacity", "hired_on", "active",
              "synthetic", types={"legal_entity_id": int, "capacity": float, "hired_on": dt.date, "active": bool,
                                  "synthetic": bool}),
    masked=MappingProxyType({"phone": "phone"}),
    filters=(_eq("outlet_code", "r.outlet_code", "Only RMs of this outlet.", max_length=32),
             _eq("active", "r.active", "Only active (true) or inactive (false) RMs.", bool)),
)
CUSTOMERS = Collection(
    id="customers", model="Customer", label="customer", table="customer", alias="c", geometry="geom",
    description="Customers you may see (an RM: those in cells they own; a branch manager: those of their "
                "outlets' RMs). Names, phones and ID numbers are masked for planners and analysts.",
    key=Param("customer_id", str, "The bank's customer id.", max_length=32), scope="customer",
    fields=(*_f("c", "customer_id", "name", "id_number", "phone", "legal_entity_id", "county_code", "village_code",
                types={"legal_entity_id": int}),
            Field("deposit_balance", "c.deposit_balance::float8", float),
            Field("loan_balance", "c.loan_balance::float8", float),
            *_f("c", "segment", "opened_on", "synthetic", types={"opened_on": dt.date, "synthetic": bool}),
            Field("lon", "ST_X(c.geom)", float, "Longitude (WGS84), null when unknown."),
            Field("lat", "ST_Y(c.geom)", float, "Latitude (WGS84), null when unknown.")),
    masked=MappingProxyType({"name": "name", "phone": "phone", "id_number": "id_number"}),
    filters=(_eq("county_code", "c.county_code", "Only customers of this county (6-digit adcode).", **COUNTY_FILTER),
             _eq("village_code", "c.village_code", "Only customers of this village (12 digits).",
                 pattern=VILLAGE_CODE),
             _eq("segment", "c.segment", "Only customers of this segment.", max_length=64),
             Param("rm_code", str, "Only customers in cells currently owned by this RM.", sql=_CUSTOMERS_OF_RM,
                   max_length=32)),
)

# A grid's layers, read from the qgis.* views (migration 0008: statistics, owner and score joined,
# MultiPolygon 4326). Their OGC collection ids carry the grid id (``cells-12``); the grid is a filter.
_GRID_FILTER = Param("grid_id", int, "The grid version.", ge=1, le=2**31 - 1)
GRID_CELLS = Collection(
    id="cells", model="GridCell", label="cell", table="qgis.cells", alias="qc", geometry="geom",
    description="Cells of the grid with their latest statistics, current owner and latest gap score "
                "(an RM: the cells they own; a branch manager: their outlets' RMs' cells).",
    key=Param("cell_id", str, "Id of the cell (H3 index or village-grid id).", max_length=64), scope="cell",
    fields=(*_f("qc", "cell_id", "grid_id", "county_code", "label", "township_code", "is_border",
                types={"grid_id": int, "is_border": bool}),
            Field("village_codes", "array_to_string(qc.village_codes, ',')", str, "Village codes, comma-separated."),
            Field("area_km2", "qc.area_km2::float8", float),
            *_f("qc", "customers", "households", "population", "apportioned",
                types={"customers": int, "households": float, "population": float, "apportioned": bool}),
            Field("deposit", "qc.deposit::float8", float), Field("loan", "qc.loan::float8", float),
            *_f("qc", "visits_90d", "customers_visited_90d", "last_visit_at", "owner_rm", "owner_name",
                "owner_outlet", types={"visits_90d": int, "customers_visited_90d": int,
                                       "last_visit_at": dt.datetime}),
            Field("score", "qc.score::float8", float), *_f("qc", "gap_class", "reason_zh", "reason_en")),
    filters=(_eq("gap_class", "qc.gap_class", "Only cells of this gap class (blank, under-served, covered, no-potential).",
                 max_length=32),
             _eq("owner_rm", "qc.owner_rm", "Only cells owned by this RM.", max_length=32)),
)
GRID_TERRITORIES = Collection(
    id="territories", model="GridTerritory", label="territory", table="qgis.territories", alias="qt",
    geometry="geom", description="One shape per RM owning cells of the grid, with totals (an RM: their own; "
                                 "a branch manager: their outlets' RMs').",
    key=Param("rm_code", str, "Code of the owning RM.", max_length=32), scope="territory",
    fields=(*_f("qt", "rm_code", "rm_name", "outlet_code", "grid_id", "county_code", "cells",
                types={"grid_id": int, "cells": int}),
            Field("customers", "qt.customers::float8", float), Field("households", "qt.households::float8", float),
            Field("deposit", "qt.deposit::float8", float), Field("loan", "qt.loan::float8", float),
            Field("area_km2", "qt.area_km2::float8", float)),
)
#: Per-grid layers by id; their rows are filtered by :data:`GRID_FILTER` ``grid_id``.
GRID_LAYERS: Mapping[str, Collection] = MappingProxyType({c.id: c for c in (GRID_CELLS, GRID_TERRITORIES)})
GRID_FILTER = _GRID_FILTER

#: Collections served by the generic list/get routes (``api.routes.reference``), in this order.
REFERENCE = (LEGAL_ENTITIES, COUNTIES, VILLAGES, OUTLETS, SERVICE_POINTS, RMS)
#: Every collection by id.
COLLECTIONS: Mapping[str, Collection] = MappingProxyType(
    {c.id: c for c in (LEGAL_ENTITIES, COUNTIES, TOWNSHIPS, VILLAGES, OUTLETS, SERVICE_POINTS, RMS, CUSTOMERS)})
