"""What OGC API Features serves: the collections a user may see, their extents, and their features.

Every read applies the collection's scope rule in SQL (``geodata.scope.where``
through ``geodata.reads.rows``), exactly as the ``/api/v1`` routes do: the
catalog entries are the same objects (``geodata.catalog``) and features are read
through the same ``geodata.reads.collections`` functions (bbox, filters, paging),
with the grid and ``datetime`` as extra conditions. A grid's layers
(cells, territories) are the catalog's :data:`~geodata.catalog.GRID_LAYERS`
with the grid as a filter; the grid itself must be in the user's ``grid`` scope.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.catalog import Collection
from geodata.errors import BadInput
from geodata.reads.access import scoped_grid
from geodata.reads.collections import get_item, list_items
from geodata.reads.rows import Filter
from geodata.reads.values import jsonable
from geodata.scope import Scope, where

#: The field each collection's ``datetime`` parameter filters on (collections not named have none).
TEMPORAL = {"customers": "opened_on", "cells": "last_visit_at"}

Interval = tuple[dt.datetime | None, dt.datetime | None]


def current_grids(conn: Connection, *, scope: Scope) -> list[dict[str, Any]]:
    """The newest grid of each county and kind that ``scope`` may see, with the county's name."""
    cond = where(scope, "grid", "g")
    rows = conn.execute(text(f"""
        SELECT DISTINCT ON (g.county_code, g.kind) g.id, g.county_code, k.name AS county_name, g.kind,
               g.resolution, g.created_at, g.assigned_at
          FROM grid g JOIN county k ON k.adcode = g.county_code
         WHERE {cond.sql}
         ORDER BY g.county_code, g.kind, g.id DESC"""), cond.params).mappings()
    return [dict(r) for r in rows]


def grid(conn: Connection, *, scope: Scope, grid_id: int) -> dict[str, Any]:
    """The grid with its county's name if ``scope`` may see it; NotFound otherwise."""
    g = scoped_grid(conn, scope=scope, grid_id=grid_id)
    name = conn.execute(text("SELECT name FROM county WHERE adcode = :c"), {"c": g["county_code"]}).scalar()
    return {**g, "county_name": name}


def extent(conn: Connection, *, scope: Scope, grid_id: int | None = None) -> list[float] | None:
    """[minx, miny, maxx, maxy] (WGS84) of the grid's county, or of every county ``scope`` may see."""
    if grid_id is not None:
        sql, params = "k.adcode = (SELECT county_code FROM grid WHERE id = :gid)", {"gid": grid_id}
    else:
        cond = where(scope, "county", "k")
        sql, params = cond.sql, cond.params
    row = conn.execute(text(f"""
        SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
          FROM (SELECT ST_Extent(k.geom) AS e FROM county k WHERE {sql}) x"""), params).one()
    return None if row[0] is None else [round(float(v), 7) for v in row]


def _temporal(coll: Collection, interval: Interval | None) -> list[Filter]:
    if interval is None or coll.id not in TEMPORAL:
        return []
    col = coll.field(TEMPORAL[coll.id]).sql
    start, end = interval
    out: list[Filter] = []
    if start is not None:
        out.append((f"{col} >= :dt_start", {"dt_start": start}))
    if end is not None:
        out.append((f"{col} <= :dt_end", {"dt_end": end}))
    if start is None and end is None:
        out.append((f"{col} IS NOT NULL", {}))
    return out


def _grid_filter(grid_id: int | None, coll: Collection) -> list[Filter]:
    return [] if grid_id is None else [(f"{coll.alias}.grid_id = :ogc_grid", {"ogc_grid": grid_id})]


def features(conn: Connection, coll: Collection, *, scope: Scope, limit: int, offset: int,
             grid_id: int | None = None, bbox: tuple[float, float, float, float] | None = None,
             interval: Interval | None = None, filters: dict[str, Any] | None = None,
             fields: tuple[str, ...] | None = None) -> tuple[list[dict[str, Any]], int]:
    """One page of ``coll``'s features ``scope`` may see (ordered by key), and the number matched.

    ``fields`` limits the properties (the key is always there); values are
    plain JSON values; each row has a ``geometry`` (GeoJSON, or None).
    """
    if fields is not None:
        unknown = [f for f in fields if f not in {x.name for x in coll.fields}]
        if unknown:
            raise BadInput(f"{coll.id} has no properties {', '.join(unknown)}; "
                           f"choose from {', '.join(f.name for f in coll.fields)}")
        fields = tuple(dict.fromkeys((coll.key.name, *fields)))
    rows, total = list_items(conn, coll, scope=scope, limit=limit, offset=offset, bbox=bbox, filters=filters,
                             extra=_grid_filter(grid_id, coll) + _temporal(coll, interval), fields=fields)
    return [jsonable(r) for r in rows], total


def feature(conn: Connection, coll: Collection, *, scope: Scope, key: Any,
            grid_id: int | None = None) -> dict[str, Any]:
    """The feature of ``coll`` with this key if ``scope`` may see it; NotFound otherwise."""
    return jsonable(get_item(conn, coll, scope=scope, key=key, extra=_grid_filter(grid_id, coll)))
