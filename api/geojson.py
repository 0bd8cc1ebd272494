"""GeoJSON for the API: Features and FeatureCollections from scoped rows, and a fast response class.

The rows come from ``geodata.reads.rows`` (scope and paging in SQL); table,
column and alias names passed through are constants of the calling route or of
``geodata.catalog``, never request input.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from api.deps import Page
from geodata.reads import rows as reads
from geodata.reads.rows import Filter, bbox_filter, eq_filter
from geodata.scope import Scope

__all__ = ["Filter", "GeoJSONResponse", "bbox_filter", "collection", "eq_filter", "select_one", "select_rows",
           "to_feature"]


def select_rows(conn: Connection, *, scope: Scope, kind: str, table: str, alias: str,
                columns: str, order: str, filters: list[Filter], page: Page,
                geometry: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Rows of ``table`` visible to ``scope`` after filters and paging, and the total matched."""
    return reads.select_rows(conn, scope=scope, kind=kind, table=table, alias=alias, columns=columns,
                             order=order, filters=filters, limit=page.limit, offset=page.offset,
                             geometry=geometry)


def select_one(conn: Connection, *, scope: Scope, kind: str, table: str, alias: str,
               columns: str, key: str, value: Any, label: str,
               geometry: str | None = None) -> dict[str, Any]:
    """The one row with ``key = value`` visible to ``scope``; NotFound otherwise (also when out of scope)."""
    return reads.select_one(conn, scope=scope, kind=kind, table=table, alias=alias, columns=columns,
                            key=key, value=value, label=label, geometry=geometry)


def to_feature(row: dict[str, Any], id_key: str) -> dict[str, Any]:
    """A GeoJSON Feature from a row with a ``geometry`` value; the rest become properties."""
    props = {k: v for k, v in row.items() if k != "geometry"}
    return {"type": "Feature", "id": row[id_key], "geometry": row.get("geometry"), "properties": props}


def collection(rows: list[dict[str, Any]], total: int, page: Page, id_key: str) -> dict[str, Any]:
    """A FeatureCollection with OGC-style counts and the offset of the next page, if any."""
    nxt = page.offset + len(rows)
    return {
        "type": "FeatureCollection",
        "features": [to_feature(r, id_key) for r in rows],
        "numberMatched": total,
        "numberReturned": len(rows),
        "next_offset": nxt if nxt < total else None,
    }


class GeoJSONResponse(JSONResponse):
    """GeoJSON rendered straight with json.dumps: big collections skip FastAPI's per-value encoder.

    The content must already be plain JSON values (see ``geodata.reads.values.jsonable``).
    """

    media_type = "application/geo+json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
