"""OGC API helpers: which collection an id names, the query parameters the standard defines, links, models.

OGC API - Features Part 1 (Core, GeoJSON, OpenAPI 3.0) and OGC API - Tiles
(vector tiles of the grid layers) under ``/ogc``. The collections are the
catalog's (``geodata.catalog``): the reference collections with a geometry and,
per grid, ``cells-{grid_id}`` and ``territories-{grid_id}``. Parameters are
parsed here rather than by FastAPI's validation because the standard asks for
400 (not 422) on an unknown or invalid parameter.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import QueryParams

from geodata.catalog import COLLECTIONS, GRID_LAYERS, Collection
from geodata.errors import GeodataError, NotFound
from geodata.reads.ogc import TEMPORAL, Interval

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GEOJSON = "application/geo+json"
JSON = "application/json"
MVT = "application/vnd.mapbox-vector-tile"
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

_FEATURES = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
_TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    _FEATURES + "core", _FEATURES + "geojson", _FEATURES + "oas30",
    _TILES + "core", _TILES + "tileset", _TILES + "tilesets-list", _TILES + "geodata-tilesets", _TILES + "mvt",
)

#: Reference collections served as features (those with a geometry), in this order.
REFERENCE_IDS = tuple(c.id for c in COLLECTIONS.values() if c.geometry)
_GRID_ID = re.compile(r"^(?P<layer>[a-z]+)-(?P<grid>[1-9][0-9]{0,9})$")


class InvalidParameter(GeodataError):
    """A query parameter the standard does not define here, or an invalid value (400)."""


@dataclass(frozen=True)
class Target:
    """What a collection id names: a catalog entry, and the grid for a grid layer."""

    id: str
    coll: Collection
    grid_id: int | None = None


def target(collection_id: str) -> Target:
    """The collection an id names (NotFound for an unknown id; the grid's scope is checked by the caller)."""
    if collection_id in REFERENCE_IDS:
        return Target(collection_id, COLLECTIONS[collection_id])
    m = _GRID_ID.match(collection_id)
    if m and m["layer"] in GRID_LAYERS and int(m["grid"]) <= 2**31 - 1:
        return Target(collection_id, GRID_LAYERS[m["layer"]], int(m["grid"]))
    raise NotFound(f"collection {collection_id!r} does not exist")


def _number(name: str, value: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value) or not lo <= int(value) <= hi:
        raise InvalidParameter(f"{name} must be an integer from {lo} to {hi} (got {value!r})")
    return int(value)


def _bbox(value: str) -> tuple[float, float, float, float]:
    try:
        nums = [float(v) for v in value.split(",")]
    except ValueError:
        raise InvalidParameter(f"bbox must be 4 or 6 comma-separated numbers (got {value!r})") from None
    if len(nums) not in (4, 6) or not all(math.isfinite(n) for n in nums):
        raise InvalidParameter(f"bbox must be 4 or 6 comma-separated finite numbers (got {value!r})")
    x0, y0, x1, y1 = (nums[0], nums[1], nums[3], nums[4]) if len(nums) == 6 else nums
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise InvalidParameter(f"bbox must be lon/lat in CRS84 with miny <= maxy (got {value!r})")
    return x0, y0, x1, y1


def _instant(text: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"datetime must be RFC 3339 (2025-01-31 or 2025-01-31T08:00:00Z) or an "
                               f"interval start/end with '..' for an open end (got {text!r})") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _interval(value: str) -> Interval:
    if "/" in value:
        start, _, end = value.partition("/")
        a, b = _instant(start), _instant(end)
        if a is not None and b is not None and a > b:
            raise InvalidParameter(f"datetime interval ends before it starts ({value!r})")
        return a, b
    at = _instant(value)
    if at is None:
        raise InvalidParameter("datetime needs a date, a time or an interval")
    if "T" not in value:  # a whole day
        return at, at + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return at, at


@dataclass(frozen=True)
class ItemsQuery:
    """The parsed query of an items request."""

    limit: int
    offset: int
    bbox: tuple[float, float, float, float] | None
    interval: Interval | None
    properties: tuple[str, ...] | None
    filters: dict[str, str]


def items_query(coll: Collection, params: QueryParams) -> ItemsQuery:
    """Parse ``limit``, ``offset``, ``bbox``, ``bbox-crs``, ``datetime``, ``properties``, ``f`` and the
    collection's own filters (queryables); InvalidParameter for anything else or a bad value."""
    filters = {p.name for p in coll.filters}
    known = {"limit", "offset", "bbox", "bbox-crs", "datetime", "properties", "f"} | filters
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidParameter(f"unknown query parameter(s) {', '.join(unknown)}; "
                               f"{coll.id} takes {', '.join(sorted(known))}")
    if params.get("f", "json") not in ("json", "geojson"):
        raise InvalidParameter("f must be json or geojson")
    crs = params.get("bbox-crs")
    if crs is not None and crs != CRS84:
        raise InvalidParameter(f"bbox-crs must be {CRS84}")
    props = params.get("properties")
    return ItemsQuery(
        limit=min(_number("limit", params["limit"], 1, 10**9), MAX_LIMIT) if "limit" in params else DEFAULT_LIMIT,
        offset=_number("offset", params["offset"], 0, 10**9) if "offset" in params else 0,
        bbox=_bbox(params["bbox"]) if "bbox" in params else None,
        interval=_interval(params["datetime"]) if "datetime" in params else None,
        properties=tuple(p.strip() for p in props.split(",") if p.strip()) if props is not None else None,
        filters={n: params[n] for n in filters if n in params},
    )


def link(href: str, rel: str, type_: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """One link object."""
    out = {"href": href, "rel": rel, "type": type_, **extra}
    if title:
        out["title"] = title
    return out


def temporal_of(coll: Collection) -> str | None:
    """The property ``datetime`` filters on, if any."""
    return TEMPORAL.get(coll.id)


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Link(Open):
    """A link (RFC 8288) as OGC API writes it."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class LandingPage(Open):
    """The landing page: title, description and links to the API definition, conformance and collections."""

    title: str
    description: str
    links: list[Link]


class Conformance(Open):
    """The conformance classes this server implements."""

    conformsTo: list[str]


class CollectionInfo(Open):
    """One collection: id, title, extent, CRS and links to its items (and tiles for grid layers)."""

    id: str
    title: str
    description: str | None = None
    links: list[Link]
    extent: dict[str, Any] | None = None
    itemType: str = "feature"
    crs: list[str] = Field(default_factory=lambda: [CRS84])


class Collections(Open):
    """The collections you may see."""

    links: list[Link]
    collections: list[CollectionInfo]


class Feature(Open):
    """A GeoJSON Feature (WGS84 lon/lat)."""

    type: str = "Feature"
    id: str | int
    geometry: dict[str, Any] | None = None
    properties: dict[str, Any]


class FeatureCollection(Open):
    """A page of features: GeoJSON with numberMatched, numberReturned, timeStamp and next/prev links."""

    type: str = "FeatureCollection"
    features: list[Feature]
    numberMatched: int
    numberReturned: int
    timeStamp: str
    links: list[Link]
