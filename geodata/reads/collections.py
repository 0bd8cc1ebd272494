"""Items of any catalog collection (``geodata.catalog``) a user may see: filtered, bounded, paged in SQL.

:func:`item_filters` is the one place that turns a request's bbox and filter values into SQL
conditions; the ``/api/v1`` list routes and OGC API Features (``geodata.reads.ogc``) both read
through :func:`list_items` and :func:`get_item`, so a collection is filtered and scoped alike on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from geodata.catalog import Collection
from geodata.errors import BadInput
from geodata.reads.rows import Filter, bbox_filter, select_one, select_rows
from geodata.scope import Scope


def item_filters(coll: Collection, *, bbox: tuple[float, float, float, float] | None = None,
                 filters: Mapping[str, Any] | None = None, extra: list[Filter] | None = None) -> list[Filter]:
    """The conditions on ``coll``'s rows: ``bbox`` (if it has a geometry), the entry's filters by name
    (a None value: not used; an unknown name: BadInput), then the caller's ``extra`` conditions."""
    values = {name: value for name, value in (filters or {}).items() if value is not None}
    known = {p.name: p for p in coll.filters}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BadInput(f"{coll.id} cannot be filtered by {', '.join(unknown)}; "
                       f"choose from {', '.join(known) or '(none)'}")
    return ((bbox_filter(coll.alias, bbox, coll.geometry) if coll.geometry else [])
            + [(known[name].sql, {name: value}) for name, value in values.items()] + list(extra or []))


def list_items(conn: Connection, coll: Collection, *, scope: Scope, limit: int, offset: int,
               bbox: tuple[float, float, float, float] | None = None, filters: Mapping[str, Any] | None = None,
               extra: list[Filter] | None = None, geometry: bool = True,
               fields: tuple[str, ...] | None = None) -> tuple[list[dict[str, Any]], int]:
    """One page of ``coll``'s items ``scope`` may see (ordered by key) and the number matched.

    ``bbox``, ``filters`` and ``extra`` as in :func:`item_filters`; rows carry a ``geometry``
    GeoJSON value when the collection has one and ``geometry`` is true.
    """
    return select_rows(conn, scope=scope, kind=coll.scope, table=coll.table, alias=coll.alias,
                       columns=coll.columns(fields), order=coll.key_sql,
                       filters=item_filters(coll, bbox=bbox, filters=filters, extra=extra), limit=limit,
                       offset=offset, geometry=coll.geometry if geometry else None)


def get_item(conn: Connection, coll: Collection, *, scope: Scope, key: Any, geometry: bool = True,
             fields: tuple[str, ...] | None = None, extra: list[Filter] | None = None) -> dict[str, Any]:
    """The item of ``coll`` with this key if ``scope`` may see it and it meets the ``extra`` conditions;
    NotFound otherwise (also out of scope)."""
    return select_one(conn, scope=scope, kind=coll.scope, table=coll.table, alias=coll.alias,
                      columns=coll.columns(fields), key=coll.key_sql, value=key, label=coll.label,
                      geometry=coll.geometry if geometry else None, extra=extra)
