"""OGC API - Tiles under /ogc: vector tiles of a grid's cells and territories in WebMercatorQuad.

One implementation, two URLs: the tiles are those of ``/tiles/{layer}/{z}/{x}/{y}.pbf``
(``geodata.tiles``: one statement per tile, scope in SQL, low-zoom
aggregation), addressed the OGC way, ``/ogc/collections/{collection_id}/tiles/
WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}`` (zoom, row from the north, column).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from api.deps import BrowserUserDep, ConnDep
from api.ogc import JSON, MVT, Link, Open, Target, link, target
from api.routes.ogc import CollectionId, _base
from geodata import tiles
from geodata.errors import NotFound
from geodata.reads import ogc as reads

router = APIRouter(prefix="/ogc", tags=["ogc"])

TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
EPSG3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
_ORIGIN = 20037508.3427892
# Tiles depend on who asks: never stored by shared caches (as /tiles).
_HEADERS = {"Cache-Control": "private, max-age=60", "Vary": "Authorization, Cookie"}
TmsId = Annotated[str, Path(max_length=32, description="The tile matrix set: `WebMercatorQuad`.")]


class TileMatrixSets(Open):
    """The tile matrix sets (tiling schemes) this server uses."""

    tileMatrixSets: list[dict[str, Any]]


class TileMatrixSet(Open):
    """A tile matrix set definition (OGC 17-083r4)."""

    id: str
    uri: str
    crs: str
    tileMatrices: list[dict[str, Any]]


class TileSets(Open):
    """The tilesets of a collection."""

    links: list[Link]
    tilesets: list[dict[str, Any]]


class TileSet(Open):
    """A tileset: its tiling scheme, layers and the templated link to its tiles."""

    title: str
    dataType: str
    crs: str
    tileMatrixSetURI: str
    links: list[Link]


def _matrices() -> list[dict[str, Any]]:
    return [{"id": str(z), "scaleDenominator": 559082264.028717 / 2**z, "cellSize": 156543.033928041 / 2**z,
             "cornerOfOrigin": "topLeft", "pointOfOrigin": [-_ORIGIN, _ORIGIN],
             "matrixWidth": 2**z, "matrixHeight": 2**z, "tileWidth": 256, "tileHeight": 256}
            for z in range(tiles.MAX_ZOOM + 1)]


def _check_tms(tms: str) -> None:
    if tms != TMS_ID:
        raise NotFound(f"tile matrix set {tms!r} does not exist; this server uses {TMS_ID}")


@router.get("/tileMatrixSets", response_model=TileMatrixSets)
def tile_matrix_sets(request: Request, user: BrowserUserDep) -> JSONResponse:
    """The tiling schemes: WebMercatorQuad."""
    href = f"{_base(request)}/tileMatrixSets/{TMS_ID}"
    return JSONResponse({"tileMatrixSets": [{"id": TMS_ID, "title": "Google Maps compatible (Web Mercator)",
                                             "uri": TMS_URI, "links": [link(href, "self", JSON, TMS_ID)]}]})


@router.get("/tileMatrixSets/{tileMatrixSetId}", response_model=TileMatrixSet)
def tile_matrix_set(tileMatrixSetId: TmsId, user: BrowserUserDep) -> JSONResponse:  # noqa: N803 (OGC's name)
    """The WebMercatorQuad definition, zoom 0 to 22."""
    _check_tms(tileMatrixSetId)
    return JSONResponse({"id": TMS_ID, "title": "Google Maps compatible (Web Mercator)", "uri": TMS_URI,
                         "crs": EPSG3857, "orderedAxes": ["X", "Y"],
                         "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
                         "tileMatrices": _matrices()})


def _tiled(collection_id: str) -> Target:
    """The grid layer a collection id names (NotFound for one without tiles)."""
    t = target(collection_id)
    if t.grid_id is None:
        raise NotFound(f"collection {collection_id!r} has no tiles (a grid's cells and territories have)")
    return t


def _layer(conn, user, collection_id: str) -> tuple[str, str, dict[str, Any]]:
    t = _tiled(collection_id)
    return t.id, t.coll.id, reads.grid(conn, scope=user.scope, grid_id=t.grid_id)


def _tileset(request: Request, cid: str, layer: str, grid: dict[str, Any], bbox: list[float] | None) -> dict:
    base = f"{_base(request)}/collections/{cid}/tiles/{TMS_ID}"
    out = {"title": f"{layer} of grid {grid['id']} ({grid['county_name']})", "dataType": "vector", "crs": EPSG3857,
           "tileMatrixSetURI": TMS_URI,
           "layers": [{"id": layer, "dataType": "vector", "geometryDimension": 2}],
           "links": [link(base, "self", JSON, "This tileset"),
                     link(f"{_base(request)}/tileMatrixSets/{TMS_ID}",
                          "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", JSON, TMS_ID),
                     link(f"{base}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}", "item", MVT, "Tiles", templated=True)]}
    if bbox is not None:
        out["boundingBox"] = {"lowerLeft": bbox[:2], "upperRight": bbox[2:],
                              "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    return out


@router.get("/collections/{collection_id}/tiles", response_model=TileSets)
def tilesets(collection_id: CollectionId, request: Request, conn: ConnDep, user: BrowserUserDep) -> JSONResponse:
    """The vector tilesets of a grid's layer (one, in WebMercatorQuad)."""
    cid, layer, grid = _layer(conn, user, collection_id)
    one = _tileset(request, cid, layer, grid, reads.extent(conn, scope=user.scope, grid_id=grid["id"]))
    return JSONResponse({"links": [link(f"{_base(request)}/collections/{cid}/tiles", "self", JSON, "Tilesets")],
                         "tilesets": [one]})


@router.get("/collections/{collection_id}/tiles/{tileMatrixSetId}", response_model=TileSet)
def tileset(collection_id: CollectionId, tileMatrixSetId: TmsId, request: Request, conn: ConnDep,  # noqa: N803
            user: BrowserUserDep) -> JSONResponse:
    """The tileset of a grid's layer: its layers, bounding box and the templated link to its tiles."""
    cid, layer, grid = _layer(conn, user, collection_id)
    _check_tms(tileMatrixSetId)
    return JSONResponse(_tileset(request, cid, layer, grid, reads.extent(conn, scope=user.scope, grid_id=grid["id"])))


@router.get(
    "/collections/{collection_id}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    response_class=Response,
    responses={200: {"content": {MVT: {}}, "description": "The tile (Mapbox Vector Tile 2.1)."},
               204: {"description": "Nothing of yours in this tile."}},
)
def tile(collection_id: CollectionId, tileMatrixSetId: TmsId,  # noqa: N803 (the standard's names)
         tileMatrix: Annotated[int, Path(ge=0, le=tiles.MAX_ZOOM, description="Zoom level 0..22.")],  # noqa: N803
         tileRow: Annotated[int, Path(ge=0, le=2**tiles.MAX_ZOOM - 1, description="Row from the north.")],  # noqa: N803
         tileCol: Annotated[int, Path(ge=0, le=2**tiles.MAX_ZOOM - 1, description="Column from the west.")],  # noqa: N803
         conn: ConnDep, user: BrowserUserDep) -> Response:
    """One vector tile of a grid's cells or territories as you may see it (the same tile as
    `/tiles/{layer}/{z}/{x}/{y}.pbf`); 204 when it holds nothing for you, 404 outside your scope."""
    _check_tms(tileMatrixSetId)
    t = _tiled(collection_id)
    # One statement, as /tiles: geodata.tiles checks the grid's scope itself (NotFound outside it).
    body = tiles.tile(conn, layer=t.coll.id, z=tileMatrix, x=tileCol, y=tileRow, grid_id=t.grid_id, scope=user.scope)
    if not body:
        return Response(status_code=204, headers=_HEADERS)
    return Response(content=body, media_type=MVT, headers=_HEADERS)
