"""Scoped, paged rows of one table, straight from PostGIS, optionally with GeoJSON geometry.

Table, column and alias names passed here are constants of the caller (the
collections catalog, a repository function), never request input; values
(bbox, filters, paging) are bound parameters. Scope is a condition of the
statement (``geodata.scope.where``): rows the user may not see are never read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import NotFound
from geodata.scope import Scope, narrowed, where

#: A SQL condition and the bound parameters it needs.
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


def scoped_where(scope: Scope, kind: str, alias: str, filters: list[Filter]) -> tuple[str, dict[str, Any]]:
    """The scope condition of ``kind`` AND every filter, with all their parameters."""
    cond = where(scope, kind, alias)
    parts, params = [cond.sql], dict(cond.params)
    for sql, p in filters:
        parts.append(sql)
        params.update(p)
    return " AND ".join(f"({p})" for p in parts), params


def select_rows(conn: Connection, *, scope: Scope, kind: str, table: str, alias: str,
                columns: str, order: str, filters: list[Filter], limit: int, offset: int,
                geometry: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Rows of ``table`` visible to ``scope`` after filters and paging, and the total matched."""
    cond, params = scoped_where(scope, kind, alias, filters)
    geo = f", ST_AsGeoJSON({alias}.{geometry}, 7)::json AS geometry" if geometry else ""
    base = f"FROM {table} {alias} WHERE {cond}"
    if narrowed(scope, kind):
        # The page and the count from one evaluation of the scope's join: an RM's customer list ran it
        # twice (count, then page), each time reading every customer placed in every grid version.
        rows = [dict(r) for r in conn.execute(
            text(f"SELECT {columns}{geo}, count(*) OVER () AS matched_total_ {base}"
                 f" ORDER BY {order} LIMIT :lim OFFSET :off"),
            {**params, "lim": limit, "off": offset}).mappings()]
        totals = {r.pop("matched_total_") for r in rows}
        if totals or offset == 0:
            return rows, int(next(iter(totals), 0))
        # A page past the end: count on its own.
        return rows, conn.execute(text(f"SELECT count(*) {base}"), params).scalar_one()
    total = conn.execute(text(f"SELECT count(*) {base}"), params).scalar_one()
    rows = conn.execute(
        text(f"SELECT {columns}{geo} {base} ORDER BY {order} LIMIT :lim OFFSET :off"),
        {**params, "lim": limit, "off": offset},
    ).mappings()
    return [dict(r) for r in rows], total


def select_one(conn: Connection, *, scope: Scope, kind: str, table: str, alias: str,
               columns: str, key: str, value: Any, label: str,
               geometry: str | None = None, extra: list[Filter] | None = None) -> dict[str, Any]:
    """The one row with ``key = value`` visible to ``scope`` and meeting ``extra``; NotFound otherwise
    (also when out of scope)."""
    rows, _ = select_rows(conn, scope=scope, kind=kind, table=table, alias=alias, columns=columns,
                          order=key, filters=[(f"{key} = :key_value", {"key_value": value}), *(extra or [])],
                          limit=1, offset=0, geometry=geometry)
    if not rows:
        raise NotFound(f"{label} {value!r} does not exist")
    return rows[0]
