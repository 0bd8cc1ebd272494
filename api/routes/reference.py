"""Reference data of the signed-in user's legal entity: legal entities, counties, villages,
outlets, service points and RMs (GeoJSON where the objects have a place)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import BboxQuery, ConnDep, PageDep, ScopeDep
from api.geojson import bbox_filter, collection, eq_filter, select_one, select_rows, to_feature
from api.masking import mask_record

router = APIRouter(prefix="/api/v1", tags=["reference"])

CountyCode = Annotated[str | None, Query(pattern=r"^[0-9]{6}$", description="Only objects of this county (6-digit adcode).")]
WithGeometry = Annotated[bool, Query(description="Include geometries (false gives a much lighter answer).")]
Code = Annotated[str, Path(max_length=32, description="Code of the object.")]

_LE = "le.id, le.code, le.name, le.synthetic"
_COUNTY = "k.adcode, k.name, k.city_code, k.legal_entity_id, k.source_crs"
_VILLAGE = ("v.code, v.name, v.township_code, v.township_name, v.county_code, v.households,"
            " v.population, v.is_community, v.coord_level, v.outside_county")
_OUTLET = "o.code, o.name, o.legal_entity_id, o.county_code, o.village_code, o.kind, o.synthetic"
_SP = "s.code, s.name, s.legal_entity_id, s.outlet_code, s.county_code, s.village_code, s.synthetic"
_RM = ("r.code, r.name, r.legal_entity_id, r.outlet_code, r.phone, r.capacity, r.hired_on,"
       " r.active, r.synthetic")


def _items(rows: list[dict[str, Any]], total: int, page) -> dict[str, Any]:
    nxt = page.offset + len(rows)
    return {"items": rows, "total": total, "next_offset": nxt if nxt < total else None}


@router.get("/legal-entities")
def list_legal_entities(conn: ConnDep, scope: ScopeDep, page: PageDep) -> dict:
    """Legal entities (法人机构) you may see: your own, or all of them for a system-wide admin."""
    rows, total = select_rows(conn, scope=scope, kind="legal_entity", table="legal_entity", alias="le",
                              columns=_LE, order="le.code", filters=[], page=page)
    return _items(rows, total, page)


@router.get("/legal-entities/{legal_entity_id}")
def get_legal_entity(legal_entity_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="Id of the legal entity.")],
                     conn: ConnDep, scope: ScopeDep) -> dict:
    """One legal entity (404 when it does not exist or is not yours)."""
    return select_one(conn, scope=scope, kind="legal_entity", table="legal_entity", alias="le",
                      columns=_LE, key="le.id", value=legal_entity_id, label="legal entity")


@router.get("/counties")
def list_counties(conn: ConnDep, scope: ScopeDep, page: PageDep, bbox: BboxQuery = None,
                  geometry: WithGeometry = True) -> dict:
    """Counties of your legal entity as a GeoJSON FeatureCollection (MultiPolygons, WGS84)."""
    rows, total = select_rows(conn, scope=scope, kind="county", table="county", alias="k",
                              columns=_COUNTY, order="k.adcode", filters=bbox_filter("k", bbox),
                              page=page, geometry="geom" if geometry else None)
    return collection(rows, total, page, "adcode")


@router.get("/counties/{adcode}")
def get_county(adcode: Annotated[str, Path(pattern=r"^[0-9]{6}$", description="6-digit county adcode.")],
               conn: ConnDep, scope: ScopeDep) -> dict:
    """One county as a GeoJSON Feature (404 when it is not in your legal entity)."""
    row = select_one(conn, scope=scope, kind="county", table="county", alias="k", columns=_COUNTY,
                     key="k.adcode", value=adcode, label="county", geometry="geom")
    return to_feature(row, "adcode")


@router.get("/villages")
def list_villages(
    conn: ConnDep, scope: ScopeDep, page: PageDep, bbox: BboxQuery = None, county_code: CountyCode = None,
    township_code: Annotated[str | None, Query(pattern=r"^[0-9]{9}$", description="Only villages of this township (9 digits).")] = None,
) -> dict:
    """Villages (村/社区) as GeoJSON points; `coord_level` says whether the point is the village's own,
    its township seat's or its county seat's (null geometry when none is known)."""
    filters = bbox_filter("v", bbox) + eq_filter("v.county_code", county_code, "county_code") \
        + eq_filter("v.township_code", township_code, "township_code")
    rows, total = select_rows(conn, scope=scope, kind="village", table="village", alias="v",
                              columns=_VILLAGE, order="v.code", filters=filters, page=page, geometry="geom")
    return collection(rows, total, page, "code")


@router.get("/villages/{village_code}")
def get_village(village_code: Annotated[str, Path(pattern=r"^[0-9]{12}$", description="12-digit village code.")],
                conn: ConnDep, scope: ScopeDep) -> dict:
    """One village as a GeoJSON Feature."""
    row = select_one(conn, scope=scope, kind="village", table="village", alias="v", columns=_VILLAGE,
                     key="v.code", value=village_code, label="village", geometry="geom")
    return to_feature(row, "code")


@router.get("/outlets")
def list_outlets(conn: ConnDep, scope: ScopeDep, page: PageDep, bbox: BboxQuery = None,
                 county_code: CountyCode = None) -> dict:
    """Outlets (网点) of your legal entity as GeoJSON points."""
    filters = bbox_filter("o", bbox) + eq_filter("o.county_code", county_code, "county_code")
    rows, total = select_rows(conn, scope=scope, kind="outlet", table="outlet", alias="o",
                              columns=_OUTLET, order="o.code", filters=filters, page=page, geometry="geom")
    return collection(rows, total, page, "code")


@router.get("/outlets/{outlet_code}")
def get_outlet(outlet_code: Code, conn: ConnDep, scope: ScopeDep) -> dict:
    """One outlet as a GeoJSON Feature."""
    row = select_one(conn, scope=scope, kind="outlet", table="outlet", alias="o", columns=_OUTLET,
                     key="o.code", value=outlet_code, label="outlet", geometry="geom")
    return to_feature(row, "code")


@router.get("/service-points")
def list_service_points(
    conn: ConnDep, scope: ScopeDep, page: PageDep, bbox: BboxQuery = None, county_code: CountyCode = None,
    outlet_code: Annotated[str | None, Query(max_length=32, description="Only service points attached to this outlet.")] = None,
) -> dict:
    """Service points (助农服务点) of your legal entity as GeoJSON points."""
    filters = bbox_filter("s", bbox) + eq_filter("s.county_code", county_code, "county_code") \
        + eq_filter("s.outlet_code", outlet_code, "outlet_code")
    rows, total = select_rows(conn, scope=scope, kind="service_point", table="service_point", alias="s",
                              columns=_SP, order="s.code", filters=filters, page=page, geometry="geom")
    return collection(rows, total, page, "code")


@router.get("/service-points/{service_point_code}")
def get_service_point(service_point_code: Code, conn: ConnDep, scope: ScopeDep) -> dict:
    """One service point as a GeoJSON Feature."""
    row = select_one(conn, scope=scope, kind="service_point", table="service_point", alias="s",
                     columns=_SP, key="s.code", value=service_point_code, label="service point",
                     geometry="geom")
    return to_feature(row, "code")


@router.get("/rms")
def list_rms(
    conn: ConnDep, scope: ScopeDep, page: PageDep,
    outlet_code: Annotated[str | None, Query(max_length=32, description="Only RMs of this outlet.")] = None,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) RMs.")] = None,
) -> dict:
    """Relationship managers (客户经理) you may see: the legal entity's for planners and analysts,
    your outlets' for a branch manager, yourself for an RM. Phones are masked for planners and analysts."""
    filters = eq_filter("r.outlet_code", outlet_code, "outlet_code") + eq_filter("r.active", active, "active")
    rows, total = select_rows(conn, scope=scope, kind="rm", table="rm", alias="r", columns=_RM,
                              order="r.code", filters=filters, page=page)
    return _items([mask_record(r, scope, {"phone": "phone"}) for r in rows], total, page)


@router.get("/rms/{rm_code}")
def get_rm(rm_code: Code, conn: ConnDep, scope: ScopeDep) -> dict:
    """One relationship manager (404 when outside your scope)."""
    row = select_one(conn, scope=scope, kind="rm", table="rm", alias="r", columns=_RM,
                     key="r.code", value=rm_code, label="RM")
    return mask_record(row, scope, {"phone": "phone"})
