"""Scoped, paged GeoJSON FeatureCollections straight from PostGIS, for any table.

Table, column and alias names passed here are constants of the calling route,
never request input; values (bbox, filters, paging) are bound parameters.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Connection

from api.deps import Page
from geodata.errors import NotFound
from geodata.scope import Scope, where

Filter = tuple[str, dict[str, Any]]


def bbox_filter(alias: str, bbox: tuple[float, float, float, float] | None,
                geom: str = "geom") -> list[Filter]:
    """A filter keeping rows whose geometry intersects ``bbox`` (none when bbox is None)."""
    if bbox is None:
        return []
    x0, y0, x1, y1 = bbox
    return [(f"ST_Intersects({alias}.{geom}, ST_MakeEnvelope(:bx0, :by0, :bx1, :by1, 4326))",
             {"bx0": x0, "by0": y0, "bx1": x1, "by1": y1})]


def eq_filter(column: str, value: Any, name: str) -> list[Filter]:
    """A filter ``column = value`` (none when value is None); ``name`` is the bound parameter."""
    return [] if value is None else [(f"{column} = :{name}", {name: value})]


def _where(scope: Scope, kind: str, alias: str, filters: list[Filter]) -> tuple[str, dict[str, Any]]:
    cond = where(scope, kind, alias)
    parts, params = [cond.sql], dict(cond.params)
    for sql, p in filters:
        parts.append(sql)
        params.update(p)
    return " AND ".join(f"({p})" for p in parts), params


def select_rows(conn: Connection, *, scope: Scope, kind: str, table: str, alias: str,
                columns: str, order: str, filters: list[Filter], page: Page,
                geometry: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Rows of ``table`` visible to ``scope`` after filters and paging, and the total matched."""
    cond, params = _where(scope, kind, alias, filters)
    geo = f", ST_AsGeoJSON({alias}.{geometry}, 7)::json AS geometry" if geometry else ""
    base = f"FROM {table} {alias} WHERE {cond}"
    total = conn.execute(text(f"SELECT count(*) {base}"), params).scalar_one()
    rows = conn.execute(
        text(f"SELECT {columns}{geo} {base} ORDER BY {order} LIMIT :lim OFFSET :off"),
        {**params, "lim": page.limit, "off": page.offset},
    ).mappings()
    return [dict(r) for r in rows], total


def select_one(conn: Connection, *, scope: Scope, kind: str, table: str, alias: str,
               columns: str, key: str, value: Any, label: str,
               geometry: str | None = None) -> dict[str, Any]:
    """The one row with ``key = value`` visible to ``scope``; NotFound otherwise (also when out of scope)."""
    rows, _ = select_rows(conn, scope=scope, kind=kind, table=table, alias=alias, columns=columns,
                          order=key, filters=[(f"{key} = :key_value", {"key_value": value})],
                          page=Page(1, 0), geometry=geometry)
    if not rows:
        raise NotFound(f"{label} {value!r} does not exist")
    return rows[0]


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

    The content must already be plain JSON values (see ``api.grid_access.jsonable``).
    """

    media_type = "application/geo+json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
