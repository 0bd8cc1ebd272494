"""A grid's cells for a user: paged collections with selectable properties, roll-ups, one cell in detail.

Cell geometry is visible to every user of the grid's legal entity; the
figures tied to customers and to the owning RM (:data:`PERSON_TIED`) are only
filled in for cells the user's scope reaches (``geodata.scope`` kind ``cell``).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata import gaps, grids
from geodata.catalog import CUSTOMERS
from geodata.errors import NotFound
from geodata.reads.access import LE_WIDE, visible_cells
from geodata.reads.collections import list_items
from geodata.reads.values import feature_collection, geojson_geometries, jsonable, records
from geodata.scope import Scope, where

ALLOWED = ("label", "is_border", "village_codes", "township_code", "area_km2", "customers", "households",
           "population", "apportioned", "deposit", "loan", "visits_90d", "customers_visited_90d",
           "last_visit_at", "owner_rm", "locked", "score", "gap_class")
# Figures that reveal customers or who serves them: hidden outside the user's territory scope.
PERSON_TIED = frozenset({"customers", "deposit", "loan", "visits_90d", "customers_visited_90d",
                         "last_visit_at", "owner_rm"})


def _current(conn: Connection, grid_id: int, ids: list[str]) -> tuple[dict[str, str], set[str]]:
    owners = dict(conn.execute(text(
        "SELECT cell_id, rm_code FROM territory WHERE grid_id = :g AND cell_id = ANY(:ids)"
        " AND role = 'owner' AND valid_to IS NULL"), {"g": grid_id, "ids": ids}).all())
    locked = {r[0] for r in conn.execute(text(
        "SELECT cell_id FROM cell_lock WHERE grid_id = :g AND cell_id = ANY(:ids)"), {"g": grid_id, "ids": ids})}
    return owners, locked


def _scores(conn: Connection, grid_id: int, ids: list[str]) -> dict[str, dict]:
    try:
        df = gaps.latest_scores(conn, grid_id=grid_id, cell_ids=ids)
    except NotFound:
        return {}
    return {r["cell_id"]: r for r in records(df)} if len(df) else {}


def _features(rows: list[dict], geoms, names, visible: set[str] | None) -> list[dict]:
    out = []
    for row, geom in zip(rows, geojson_geometries(geoms), strict=True):
        mine = visible is None or row["cell_id"] in visible
        props = {"cell_id": row["cell_id"]}
        for n in names:
            if n in row:
                props[n] = row[n] if (mine or n not in PERSON_TIED) else None
        out.append({"type": "Feature", "id": row["cell_id"], "geometry": geom, "properties": props})
    return out


def cell_collection(conn: Connection, *, scope: Scope, grid: dict, bbox, limit: int, offset: int,
                    properties: tuple[str, ...] | None, res: int | None) -> dict[str, Any]:
    """One page of a grid's cells (or of its H3 roll-up at ``res``) as a FeatureCollection."""
    names = properties or ALLOWED
    gid = grid["id"]
    if res is not None and res != grid["resolution"]:
        return _rollup(conn, scope, gid, res=res, bbox=bbox, limit=limit, offset=offset, names=names)
    x0, y0, x1, y1 = bbox or (None,) * 4
    cond = ("c.grid_id = :g AND (CAST(:x0 AS float8) IS NULL OR "
            "ST_Intersects(c.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))")
    params = {"g": gid, "x0": x0, "y0": y0, "x1": x1, "y1": y1}
    total = conn.execute(text(f"SELECT count(*) FROM cell c WHERE {cond}"), params).scalar_one()
    ids = [r[0] for r in conn.execute(text(
        f"SELECT c.cell_id FROM cell c WHERE {cond} ORDER BY c.cell_id LIMIT :lim OFFSET :off"),
        {**params, "lim": limit, "off": offset})]
    if not ids:
        return feature_collection([], total, offset=offset)
    cells = grids.load_cells(conn, grid_id=gid, cell_ids=ids, with_stats=True)
    owners, locked = _current(conn, gid, ids)
    scores = _scores(conn, gid, ids) if {"score", "gap_class"} & set(names) else {}
    rows = records(cells)
    for r in rows:
        cid = r["cell_id"]
        r["owner_rm"] = owners.get(cid)
        r["locked"] = cid in locked
        r["score"] = scores.get(cid, {}).get("score")
        r["gap_class"] = scores.get(cid, {}).get("gap_class")
    feats = _features(rows, cells.geometry, names, visible_cells(conn, scope=scope, grid_id=gid))
    return feature_collection(feats, total, offset=offset)


def _rollup(conn: Connection, scope: Scope, grid_id: int, *, res: int, bbox, limit: int, offset: int,
            names: tuple[str, ...]) -> dict[str, Any]:
    cells: gpd.GeoDataFrame = grids.rollup_cells(conn, grid_id=grid_id, res=res)
    if bbox is not None:
        cells = cells[shapely.intersects(cells.geometry.to_numpy(), shapely.box(*bbox))]
    cells = cells.sort_values("cell_id")
    part = cells.iloc[offset:offset + limit]
    # A coarse cell sums several RMs' cells: only roles that see every territory get its figures.
    visible = None if scope.role in LE_WIDE else set()
    feats = _features(records(part), part.geometry, names, visible)
    for f in feats:
        f["properties"]["resolution"] = res
    return feature_collection(feats, len(cells), offset=offset)


def cell_detail(conn: Connection, *, scope: Scope, grid: dict, cell_id: str, id_cap: int) -> dict[str, Any]:
    """One cell as a GeoJSON Feature: statistics, owners, lock, latest score with components.

    ``properties.customers_visible`` counts the cell's customers ``scope`` may
    see; ``customer_ids`` holds the first ``id_cap`` of them (for deep links)
    and is the caller's to replace.
    """
    gid = grid["id"]
    cells = grids.load_cells(conn, grid_id=gid, cell_ids=[cell_id], with_stats=True)
    props = records(cells)[0]
    current = conn.execute(text(
        "SELECT rm_code, role, valid_from, reason FROM territory WHERE grid_id = :g AND cell_id = :c"
        " AND valid_to IS NULL ORDER BY role DESC, rm_code"), {"g": gid, "c": cell_id}).mappings().all()
    props["owner_rm"] = next((r["rm_code"] for r in current if r["role"] == "owner"), None)
    props["owner_since"] = next((r["valid_from"] for r in current if r["role"] == "owner"), None)
    props["co_owners"] = [r["rm_code"] for r in current if r["role"] == "co_owner"]
    props["locked"] = bool(conn.execute(text("SELECT 1 FROM cell_lock WHERE grid_id = :g AND cell_id = :c"),
                                        {"g": gid, "c": cell_id}).first())
    props["gap"] = _scores(conn, gid, [cell_id]).get(cell_id)
    cond = where(scope, "customer", "c")
    in_cell = ("FROM customer c JOIN customer_cell cc ON cc.customer_id = c.customer_id"
               f" AND cc.grid_id = :g AND cc.cell_id = :cell WHERE {cond.sql}")
    params = {**cond.params, "g": gid, "cell": cell_id}
    props["customers_visible"] = conn.execute(text(f"SELECT count(*) {in_cell}"), params).scalar_one()
    props["customer_ids"] = [r[0] for r in conn.execute(
        text(f"SELECT c.customer_id {in_cell} ORDER BY c.customer_id LIMIT :lim"), {**params, "lim": id_cap})]
    return {"type": "Feature", "id": cell_id, "geometry": geojson_geometries(cells.geometry)[0],
            "properties": jsonable(props)}


def unplaced_count(conn: Connection, *, grid_id: int) -> int:
    """How many customers of the grid's county got no cell."""
    return conn.execute(text("SELECT count(*) FROM customer_cell WHERE grid_id = :g AND cell_id IS NULL"),
                        {"g": grid_id}).scalar_one()


#: What the list of a cell's customers shows of each (fields of ``geodata.catalog.CUSTOMERS``).
CELL_CUSTOMER_FIELDS = ("customer_id", "name", "id_number", "phone", "village_code", "segment",
                        "deposit_balance", "loan_balance", "lon", "lat")
_IN_CELL = ("EXISTS (SELECT 1 FROM customer_cell cc_ WHERE cc_.customer_id = c.customer_id"
            " AND cc_.grid_id = :in_grid AND cc_.cell_id = :in_cell)")


def customers_in_cell(conn: Connection, *, scope: Scope, grid_id: int, cell_id: str, limit: int, offset: int
                      ) -> tuple[list[dict[str, Any]], int]:
    """One page of the customers placed in the cell that ``scope`` may see (unmasked), and how many."""
    return list_items(conn, CUSTOMERS, scope=scope, limit=limit, offset=offset, geometry=False,
                      fields=CELL_CUSTOMER_FIELDS, extra=[(_IN_CELL, {"in_grid": grid_id, "in_cell": cell_id})])
