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
from geodata.reads.access import LE_WIDE
from geodata.reads.collections import list_items
from geodata.reads.values import feature_collection, geojson_geometries, jsonable, records
from geodata.scope import Scope, where

ALLOWED = ("label", "is_border", "village_codes", "township_code", "area_km2", "customers", "households",
           "population", "apportioned", "deposit", "loan", "visits_90d", "customers_visited_90d",
           "last_visit_at", "owner_rm", "locked", "score", "gap_class")
# Figures that reveal customers or who serves them: hidden outside the user's territory scope.
PERSON_TIED = frozenset({"customers", "deposit", "loan", "visits_90d", "customers_visited_90d",
                         "last_visit_at", "owner_rm"})


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
    # A refined grid (issue 17) holds finer cells than its resolution: rolling up to it gives the unrefined cells.
    refined = bool((grid.get("report") or {}).get("refined", {}).get("cells_split"))
    if res is not None and (res != grid["resolution"] or refined):
        return _rollup(conn, scope, gid, res=res, bbox=bbox, limit=limit, offset=offset, names=names)
    x0, y0, x1, y1 = bbox or (None,) * 4
    cond = ("c.grid_id = :g AND (CAST(:x0 AS float8) IS NULL OR "
            "ST_Intersects(c.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))")
    params = {"g": gid, "x0": x0, "y0": y0, "x1": x1, "y1": y1}
    total = conn.execute(text(f"SELECT count(*) FROM cell c WHERE {cond}"), params).scalar_one()
    # One statement for the page: cells, statistics, current owner, lock, the latest gap run's score and
    # whether the person-tied figures are the user's to see. (It was a dozen statements, two GeoDataFrames
    # and the whole gap answer with its staleness checks and JSON components, for two numbers per cell.)
    mine = "TRUE" if scope.role in LE_WIDE else where(scope, "cell", "c").sql
    rows = conn.execute(text(
        f"SELECT {_PAGE_COLUMNS}, ({mine}) AS mine_ FROM cell c {_PAGE_JOINS}"
        f" WHERE {cond} ORDER BY c.cell_id LIMIT :lim OFFSET :off"),
        {**params, **scope.params(), "lim": limit, "off": offset}).mappings().all()
    rows = [dict(r) for r in rows]
    geoms = shapely.from_wkb([bytes(r.pop("wkb_")) for r in rows]) if rows else []
    visible = {r["cell_id"] for r in rows if r.pop("mine_")}
    feats = _features([jsonable(r) for r in rows], geoms, names, visible)
    return feature_collection(feats, total, offset=offset)


_PAGE_COLUMNS = (
    "c.cell_id, c.label, c.is_border, c.village_codes, c.township_code, c.area_km2, s.customers, s.households,"
    " s.population, s.apportioned, s.deposit::float8 AS deposit, s.loan::float8 AS loan, s.visits_90d,"
    " s.customers_visited_90d, s.last_visit_at, t.rm_code AS owner_rm, (l.cell_id IS NOT NULL) AS locked,"
    " gs.score, gs.gap_class, ST_AsBinary(c.geom) AS wkb_")
_PAGE_JOINS = (
    "LEFT JOIN cell_stat s ON s.grid_id = c.grid_id AND s.cell_id = c.cell_id"
    " LEFT JOIN territory t ON t.grid_id = c.grid_id AND t.cell_id = c.cell_id AND t.role = 'owner'"
    " AND t.valid_to IS NULL"
    " LEFT JOIN cell_lock l ON l.grid_id = c.grid_id AND l.cell_id = c.cell_id"
    " LEFT JOIN gap_score gs ON gs.cell_id = c.cell_id"
    " AND gs.gap_run_id = (SELECT max(r.id) FROM gap_run r WHERE r.grid_id = :g)")


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
