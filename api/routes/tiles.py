"""Mapbox vector tiles of a grid's cells, territories and customers for Leaflet.VectorGrid.

Not under /api/v1 (tile clients expect a plain ``/tiles/{layer}/{z}/{x}/{y}.pbf``
template); signed in by bearer header or the session cookie, scoped like the API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.exceptions import RequestValidationError

from api.deps import BrowserUserDep, ConnDep
from geodata import tiles

router = APIRouter(tags=["tiles"])

MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
# Tiles depend on who asks: never stored by shared caches; a short private reuse
# keeps panning back and forth cheap.
CACHE = "private, max-age=60"
_MAX = 2**tiles.MAX_ZOOM - 1


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.pbf",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "The tile (Mapbox Vector Tile 2.1)."},
               204: {"description": "Nothing of yours in this tile."}},
)
def get_tile(
    conn: ConnDep, user: BrowserUserDep,
    layer: Annotated[str, Path(max_length=32, description=(
        "`cells` (polygons: cell_id, customers, households, rm, score, gap_class), `territories` "
        "(from z12 cells dissolved per owner RM: rm, cells; below z12 cell by cell with rm) or `customers` "
        "(z<=14 one point per cell with cell_id and `count`, z>=15 single customers with `customer_id`; "
        "customers sharing a pixel as one point with their `count`)."))],
    z: Annotated[int, Path(ge=0, le=tiles.MAX_ZOOM, description="Zoom level 0..22.")],
    x: Annotated[int, Path(ge=0, le=_MAX, description="Tile column, 0..2^z-1.")],
    y: Annotated[int, Path(ge=0, le=_MAX, description="Tile row from the north, 0..2^z-1.")],
    grid_id: Annotated[int, Query(ge=1, le=2**31 - 1, description="Id of the grid version.")],
) -> Response:
    """One vector tile (layer name = the `layer` path part) of a grid as you may see it: an RM gets only
    their own cells and customers, a branch manager their outlets' RMs', planners and analysts the legal
    entity's. 204 when the tile holds nothing for you, 404 for an unknown layer or a grid you may not see,
    422 for a tile outside the pyramid. Sign in with a bearer token or the `gridmkt_token` cookie."""
    for name, value in (("x", x), ("y", y)):
        if value >= 1 << z:
            # FastAPI's own 422 shape, naming the parameter, like any other bad path value.
            raise RequestValidationError([{
                "type": "less_than", "loc": ("path", name), "input": value, "ctx": {"lt": 1 << z},
                "msg": f"Input should be less than {1 << z} (2^z tiles per axis at zoom {z})"}])
    body = tiles.tile(conn, layer=layer, z=z, x=x, y=y, grid_id=grid_id, scope=user.scope)
    headers = {"Cache-Control": CACHE, "Vary": "Authorization, Cookie"}
    if not body:
        return Response(status_code=204, headers=headers)
    return Response(content=body, media_type=MEDIA_TYPE, headers=headers)
