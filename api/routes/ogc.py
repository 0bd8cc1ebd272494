"""OGC API - Features under /ogc: landing page, conformance, collections, items, one item.

For GIS clients (QGIS, ArcGIS, GDAL's OAPIF driver) with the same sign-in
(bearer header, or the session cookie) and the same scope as ``/api/v1``:
every read applies the collection's scope rule in SQL (``geodata.reads.ogc``),
and personal fields are masked by role. A grid's collections exist for every
grid you may see; ``/ogc/collections`` lists those of the newest grid of each
county and kind. See docs/ogc.md for connecting QGIS.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from api.deps import BrowserUserDep, ConnDep
from api.geojson import GeoJSONResponse, to_feature
from api.masking import mask_record
from api.ogc import (
    CONFORMANCE,
    CRS84,
    GEOJSON,
    JSON,
    REFERENCE_IDS,
    CollectionInfo,
    Collections,
    Conformance,
    Feature,
    FeatureCollection,
    InvalidParameter,
    LandingPage,
    Target,
    items_query,
    link,
    target,
    temporal_of,
)
from geodata.catalog import GRID_LAYERS
from geodata.errors import BadInput
from geodata.reads import ogc as reads
from geodata.scope import Scope

router = APIRouter(prefix="/ogc", tags=["ogc"])

CollectionId = Annotated[str, Path(max_length=64, description=(
    "A reference collection (`counties`, `townships`, `villages`, `outlets`, `service-points`, `customers`) "
    "or a grid's layer: `cells-{grid_id}`, `territories-{grid_id}`."))]
FeatureId = Annotated[str, Path(max_length=64, description="The feature's id (the collection's key).")]
_REFERENCE_TITLES = {"customers": "客户 Customers", "counties": "区县 Counties", "townships": "乡镇 Townships",
                     "villages": "村/社区 Villages", "outlets": "网点 Outlets",
                     "service-points": "便民服务点 Service points"}
_GRID_TITLES = {"cells": ("Cells", "网格单元"), "territories": ("Territories", "责任片区")}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def _resolve(conn: ConnDep, scope: Scope, collection_id: str) -> tuple[Target, dict[str, Any] | None]:
    """The collection and, for a grid layer, its grid (NotFound outside the user's scope)."""
    t = target(collection_id)
    return t, (reads.grid(conn, scope=scope, grid_id=t.grid_id) if t.grid_id is not None else None)


def _info(request: Request, t: Target, grid: dict[str, Any] | None, bbox: list[float] | None) -> dict[str, Any]:
    base = f"{_base(request)}/collections/{t.id}"
    if grid is None:
        title, description = _REFERENCE_TITLES.get(t.id, t.id), t.coll.description
    else:
        en, zh = _GRID_TITLES[t.coll.id]
        kind = f"H3 res {grid['resolution']}" if grid["kind"] == "h3" else "village grid"
        title = f"{zh} {en}: {grid['county_name']} ({kind}, grid {grid['id']})"
        description = t.coll.description
    links = [link(base, "self", JSON, "This collection"),
             link(f"{base}/items", "items", GEOJSON, "Items as GeoJSON")]
    if grid is not None:
        links.append(link(f"{base}/tiles", "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", JSON,
                          "Vector tilesets"))
    info: dict[str, Any] = {"id": t.id, "title": title, "description": description, "links": links,
                            "itemType": "feature", "crs": [CRS84], "storageCrs": CRS84}
    if bbox is not None:
        info["extent"] = {"spatial": {"bbox": [bbox], "crs": CRS84}}
    if temporal_of(t.coll):
        info["temporalProperty"] = temporal_of(t.coll)
    return info


@router.get("", response_model=LandingPage)
def landing(request: Request, user: BrowserUserDep) -> JSONResponse:
    """Landing page of the OGC API (Features and Tiles) with links to its definition, conformance and data."""
    base, root = _base(request), str(request.base_url).rstrip("/")
    return JSONResponse({
        "title": "gridmkt OGC API",
        "description": "Grid-marketing layers (cells, territories, gap scores, reference data) as OGC API "
                       "Features and Tiles, scoped to who you are.",
        "links": [
            link(base, "self", JSON, "This document"),
            link(f"{root}/openapi.json", "service-desc", "application/vnd.oai.openapi+json;version=3.0",
                 "The API definition"),
            link(f"{root}/docs", "service-doc", "text/html", "The API documentation"),
            link(f"{base}/conformance", "conformance", JSON, "Conformance classes"),
            link(f"{base}/collections", "data", JSON, "The collections"),
            link(f"{base}/tileMatrixSets", "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes", JSON,
                 "Tile matrix sets"),
        ],
    })


@router.get("/conformance", response_model=Conformance)
def conformance(user: BrowserUserDep) -> JSONResponse:
    """The conformance classes this server implements."""
    return JSONResponse({"conformsTo": list(CONFORMANCE)})


@router.get("/collections", response_model=Collections)
def collections(request: Request, conn: ConnDep, user: BrowserUserDep) -> JSONResponse:
    """The reference collections, and the cells and territories of the newest grid of each county and
    kind you may see (older grid versions answer by id as well)."""
    scope = user.scope
    everywhere = reads.extent(conn, scope=scope)
    out = [_info(request, target(cid), None, everywhere) for cid in REFERENCE_IDS]
    for g in reads.current_grids(conn, scope=scope):
        bbox = reads.extent(conn, scope=scope, grid_id=g["id"])
        out += [_info(request, target(f"{layer}-{g['id']}"), g, bbox) for layer in GRID_LAYERS]
    base = _base(request)
    return JSONResponse({"links": [link(f"{base}/collections", "self", JSON, "The collections")],
                         "collections": out})


@router.get("/collections/{collection_id}", response_model=CollectionInfo)
def collection(collection_id: CollectionId, request: Request, conn: ConnDep, user: BrowserUserDep) -> JSONResponse:
    """One collection: title, extent, CRS, links to its items (and tiles for a grid's layers)."""
    t, grid = _resolve(conn, user.scope, collection_id)
    return JSONResponse(_info(request, t, grid, reads.extent(conn, scope=user.scope, grid_id=t.grid_id)))


def _masked(t: Target, row: dict[str, Any], scope: Scope) -> dict[str, Any]:
    return mask_record(row, scope, t.coll.masked) if t.coll.masked else row


@router.get("/collections/{collection_id}/items", response_model=FeatureCollection,
            response_class=GeoJSONResponse)
def items(collection_id: CollectionId, request: Request, conn: ConnDep, user: BrowserUserDep) -> GeoJSONResponse:
    """Features of a collection you may see, ordered by key: `limit` (default 100, at most 10,000),
    `offset`, `bbox` (CRS84 lon/lat), `datetime` (customers: opened_on; cells: last_visit_at; an RFC 3339
    date, time or interval with `..`), `properties` (comma list), and the collection's own filters
    (`county_code`, `gap_class`, `owner_rm`, ...). Unknown parameters are a 400. `next`/`prev` links page."""
    t, _ = _resolve(conn, user.scope, collection_id)
    q = items_query(t.coll, request.query_params)
    try:
        rows, total = reads.features(conn, t.coll, scope=user.scope, limit=q.limit, offset=q.offset,
                                     grid_id=t.grid_id, bbox=q.bbox, interval=q.interval, filters=q.filters,
                                     fields=q.properties)
    except BadInput as exc:
        raise InvalidParameter(str(exc)) from None
    self_url = str(request.url)
    links = [link(self_url, "self", GEOJSON, "This page"),
             link(f"{_base(request)}/collections/{t.id}", "collection", JSON, "The collection")]
    if q.offset + len(rows) < total:
        nxt = request.url.include_query_params(offset=q.offset + len(rows), limit=q.limit)
        links.append(link(str(nxt), "next", GEOJSON, "Next page"))
    if q.offset > 0:
        prev = request.url.include_query_params(offset=max(0, q.offset - q.limit), limit=q.limit)
        links.append(link(str(prev), "prev", GEOJSON, "Previous page"))
    return GeoJSONResponse({
        "type": "FeatureCollection",
        "features": [to_feature(_masked(t, r, user.scope), t.coll.key.name) for r in rows],
        "numberMatched": total, "numberReturned": len(rows),
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    })


@router.get("/collections/{collection_id}/items/{feature_id}", response_model=Feature,
            response_class=GeoJSONResponse)
def item(collection_id: CollectionId, feature_id: FeatureId, request: Request, conn: ConnDep,
         user: BrowserUserDep) -> GeoJSONResponse:
    """One feature (404 when it does not exist or is outside your scope)."""
    t, _ = _resolve(conn, user.scope, collection_id)
    key: Any = feature_id
    if t.coll.key.type is int:
        if not feature_id.isdigit():
            raise InvalidParameter(f"{t.coll.key.name} is a number")
        key = int(feature_id)
    row = _masked(t, reads.feature(conn, t.coll, scope=user.scope, key=key, grid_id=t.grid_id), user.scope)
    base = f"{_base(request)}/collections/{t.id}"
    feat = to_feature(row, t.coll.key.name)
    feat["links"] = [link(str(request.url), "self", GEOJSON, "This feature"),
                     link(base, "collection", JSON, "The collection")]
    return GeoJSONResponse(feat)

