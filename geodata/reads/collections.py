"""Items of any catalog collection (``geodata.catalog``) a user may see: filtered, bounded, paged in SQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from geodata.catalog import Collection
from geodata.errors import BadInput
from geodata.reads.rows import Filter, bbox_filter, select_one, select_rows
from geodata.scope import Scope


def _filters(coll: Collection, values: Mapping[str, Any]) -> list[Filter]:
    known = {p.name: p for p in coll.filters}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BadInput(f"{coll.id} cannot be filtered by {', '.join(unknown)}; "
                       f"choose from {', '.join(known) or '(none)'}")
    return [(known[name].sql, {name: value}) for name, value in values.items() if value is not None]


def list_items(conn: Connection, coll: Collection, *, scope: Scope, limit: int, offset: int,
               bbox: tuple[float, float, float, float] | None = None, filters: Mapping[str, Any] | None = None,
               extra: list[Filter] | None = None, geometry: bool = True,
               fields: tuple[str, ...] | None = None) -> tuple[list[dict[str, Any]], int]:
    """One page of ``coll``'s items ``scope`` may see (ordered by key) and the number matched.

    ``filters`` gives values of the entry's filters by name (None: not used);
    ``extra`` adds conditions of the caller; rows carry a ``geometry`` GeoJSON
    value when the collection has one and ``geometry`` is true.
    """
    where = (bbox_filter(coll.alias, bbox, coll.geometry) if coll.geometry else []) \
        + _filters(coll, filters or {}) + list(extra or [])
    return select_rows(conn, scope=scope, kind=coll.scope, table=coll.table, alias=coll.alias,
                       columns=coll.columns(fields), order=coll.key_sql, filters=where, limit=limit,
                       offset=offset, geometry=coll.geometry if geometry else None)


def get_item(conn: Connection, coll: Collection, *, scope: Scope, key: Any, geometry: bool = True,
             fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The item of ``coll`` with this key if ``scope`` may see it; NotFound otherwise (also out of scope)."""
    return select_one(conn, scope=scope, kind=coll.scope, table=coll.table, alias=coll.alias,
                      columns=coll.columns(fields), key=coll.key_sql, value=key, label=coll.label,
                      geometry=coll.geometry if geometry else None)
