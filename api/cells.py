"""Cells as GeoJSON for the API: parse the property list, page the collection, add deep links to one cell.

The reads themselves (scope, person-tied figures, roll-ups) are
``geodata.reads.cells``; this module adapts them to the routes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import Connection

from api.deps import Page
from api.services import cell_links
from api.settings import LinkSettings
from geodata.reads import cells as reads
from geodata.reads.cells import ALLOWED, PERSON_TIED
from geodata.reads.values import geojson_geometries
from geodata.scope import Scope

__all__ = ["ALLOWED", "PERSON_TIED", "cell_collection", "cell_detail", "geojson_geometries", "parse_properties"]

# Deep links carry customer ids in the URL: cap them so URLs stay usable.
LINK_IDS_CAP = 200


def parse_properties(value: str | None) -> tuple[str, ...] | None:
    """A comma list of names from :data:`ALLOWED` (ValueError naming the unknown ones)."""
    if value is None:
        return None
    names = tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    unknown = [n for n in names if n not in ALLOWED]
    if unknown or not names:
        raise ValueError(f"unknown properties {', '.join(unknown) or '(none given)'}; choose from {', '.join(ALLOWED)}")
    return names


def cell_collection(conn: Connection, scope: Scope, grid: dict, *, bbox, page: Page,
                    properties: tuple[str, ...] | None, res: int | None) -> dict[str, Any]:
    """One page of a grid's cells (or of its H3 roll-up at ``res``) as a FeatureCollection."""
    return reads.cell_collection(conn, scope=scope, grid=grid, bbox=bbox, limit=page.limit, offset=page.offset,
                                 properties=properties, res=res)


def cell_detail(conn: Connection, scope: Scope, grid: dict, cell_id: str, link: LinkSettings) -> dict[str, Any]:
    """One cell in scope: statistics, owners, lock, latest score with components, deep links."""
    feature = reads.cell_detail(conn, scope=scope, grid=grid, cell_id=cell_id, id_cap=LINK_IDS_CAP)
    props = feature["properties"]
    ids = props.pop("customer_ids")
    props["links"] = {
        "customers": f"/api/v1/grids/{grid['id']}/cells/{quote(cell_id)}/customers",
        # Each id encoded on its own (a comma inside an id must not read as two ids).
        **cell_links(link, ids),
        "customer_ids_in_links": len(ids), "capped": props["customers_visible"] > len(ids),
    }
    return feature
