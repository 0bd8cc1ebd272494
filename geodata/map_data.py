"""Read-only lookups the map pages need beyond grids, territories and gaps (all bound parameters)."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import NotFound


def _frame(conn: Connection, sql: str, params: dict, cols: list[str]) -> pd.DataFrame:
    rows = conn.execute(text(sql), params).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=cols)


def township_points(conn: Connection, *, county_code: str) -> pd.DataFrame:
    """Township seats of a county: name, lon, lat."""
    return _frame(conn, "SELECT name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM township "
                        "WHERE county_code = :c AND geom IS NOT NULL ORDER BY code", {"c": county_code},
                  ["name", "lon", "lat"])


def facilities(conn: Connection, *, county_code: str, outlets: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Outlets and service points of a county (only the given outlets and their points, if any)."""
    params = {"c": county_code, "o": outlets}
    cols = ["code", "name", "lon", "lat"]
    out = _frame(conn, "SELECT code, name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM outlet WHERE county_code = :c "
                       "AND (CAST(:o AS text[]) IS NULL OR code = ANY(:o)) ORDER BY code", params, cols)
    sp = _frame(conn, "SELECT code, name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM service_point "
                      "WHERE county_code = :c AND (CAST(:o AS text[]) IS NULL OR outlet_code = ANY(:o)) ORDER BY code",
                params, cols)
    return out, sp


def rms_at_outlets(conn: Connection, *, outlets: list[str]) -> list[str]:
    """Codes of every RM (active or not) of the given outlets."""
    return list(conn.execute(text("SELECT code FROM rm WHERE outlet_code = ANY(:o) ORDER BY code"),
                             {"o": outlets}).scalars())


def cell_customer_ids(conn: Connection, *, grid_id: int, limit: int) -> dict[str, list[str]]:
    """The first ``limit`` customer ids per cell (for the tag/lead links)."""
    rows = conn.execute(text(
        "SELECT cell_id, (array_agg(customer_id ORDER BY customer_id))[1:CAST(:n AS integer)] FROM customer_cell "
        "WHERE grid_id = :g AND cell_id IS NOT NULL GROUP BY cell_id"), {"g": grid_id, "n": limit}).all()
    return {c: list(ids) for c, ids in rows}


def customers_in_cells(conn: Connection, *, grid_id: int, cell_ids: list[str]) -> pd.DataFrame:
    """Customers in the given cells with their point (NaN when unknown) and open lead count."""
    return _frame(conn, (
        "SELECT c.customer_id, c.name, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, cc.cell_id, "
        "COALESCE(l.n, 0) AS open_leads FROM customer_cell cc JOIN customer c ON c.customer_id = cc.customer_id "
        "LEFT JOIN (SELECT customer_id, count(*) AS n FROM lead WHERE status = 'open' GROUP BY customer_id) l "
        "ON l.customer_id = c.customer_id WHERE cc.grid_id = :g AND cc.cell_id = ANY(:cells) ORDER BY c.customer_id"),
        {"g": grid_id, "cells": cell_ids}, ["customer_id", "name", "lon", "lat", "cell_id", "open_leads"],
    ).astype({"lon": float, "lat": float})


def rm_row(conn: Connection, *, rm_code: str) -> dict | None:
    """An RM's name and outlet (None when unknown)."""
    row = conn.execute(text("SELECT code, name, outlet_code FROM rm WHERE code = :r"), {"r": rm_code}).mappings().first()
    return dict(row) if row else None


def import_run_villages(conn: Connection, *, run_id: int) -> tuple[dict, str, set[str]]:
    """An import run, the county most of its villages belong to, and the village codes it loaded."""
    row = conn.execute(text("SELECT id, kind, file_name, status, counts, started_at FROM import_run WHERE id = :r"),
                       {"r": run_id}).mappings().first()
    if row is None:
        raise NotFound(f"import run {run_id} does not exist")
    county = conn.execute(text("SELECT county_code FROM village WHERE import_run_id = :r GROUP BY county_code "
                               "ORDER BY count(*) DESC LIMIT 1"), {"r": run_id}).scalar()
    if county is None:
        raise NotFound(f"import run {run_id} loaded no villages (kind {row['kind']})")
    codes = {r[0] for r in conn.execute(text("SELECT code FROM village WHERE import_run_id = :r"), {"r": run_id})}
    return dict(row), county, codes


PLACE_MAX_M = 3000  # farther than this from any village of its own point, a cell is named by its township


def cell_places(conn: Connection, *, grid_id: int, cell_ids: list[str] | None = None) -> pd.DataFrame:
    """Where each cell is, for its title: the village whose own point is in it or nearest, and its township.

    Columns cell_id, place (village name, None when none is within ``PLACE_MAX_M``),
    place_inside (its point lies in the cell), township (the cell's own township for a
    village grid, else the village's; else the nearest township seat's). Villages that
    only carry their township's or county's point are not used: that point is not theirs.
    """
    return _frame(conn, """
        SELECT c.cell_id, CASE WHEN v.d <= :maxd THEN v.name END AS place,
               COALESCE(v.d = 0, false) AS place_inside, COALESCE(tc.name, tv.name, ts.name) AS township
          FROM cell c JOIN grid g ON g.id = c.grid_id
          LEFT JOIN LATERAL (
                SELECT v.name, v.township_code, ST_Distance(v.geom::geography, c.geom::geography) AS d
                  FROM village v
                 WHERE v.county_code = g.county_code AND v.geom IS NOT NULL AND v.coord_level = 'village'
                 ORDER BY v.geom <-> ST_PointOnSurface(c.geom), v.code LIMIT 1) v ON TRUE
          LEFT JOIN township tc ON tc.code = c.township_code
          LEFT JOIN township tv ON tv.code = v.township_code AND v.d <= :maxd
          LEFT JOIN LATERAL (
                SELECT t.name FROM township t WHERE t.county_code = g.county_code AND t.geom IS NOT NULL
                 ORDER BY t.geom <-> ST_PointOnSurface(c.geom), t.code LIMIT 1) ts ON TRUE
         WHERE c.grid_id = :g AND (CAST(:ids AS text[]) IS NULL OR c.cell_id = ANY(:ids))
         ORDER BY c.cell_id""", {"g": grid_id, "ids": cell_ids, "maxd": PLACE_MAX_M},
        ["cell_id", "place", "place_inside", "township"])


def _shapes(df: pd.DataFrame) -> gpd.GeoDataFrame:
    geoms = shapely.from_wkb([bytes(b) for b in df.pop("wkb")]) if len(df) else []
    return gpd.GeoDataFrame(df, geometry=list(geoms), crs=4326)


def neighbour_counties(conn: Connection, *, county_code: str) -> gpd.GeoDataFrame:
    """The counties touching a county (code, name, simplified outline), for the pages' context layer."""
    return _shapes(_frame(conn, """
        SELECT n.adcode AS code, n.name, ST_AsBinary(ST_SimplifyPreserveTopology(n.geom, 0.0005)) AS wkb
          FROM county c JOIN county n ON n.adcode <> c.adcode AND ST_Intersects(n.geom, c.geom)
         WHERE c.adcode = :c ORDER BY n.adcode""", {"c": county_code}, ["code", "name", "wkb"]))


def township_areas(conn: Connection, *, county_code: str) -> gpd.GeoDataFrame:
    """Townships of a county that have a boundary (code, name, simplified boundary)."""
    return _shapes(_frame(conn, """
        SELECT code, name, ST_AsBinary(ST_SimplifyPreserveTopology(boundary, 0.0002)) AS wkb FROM township
         WHERE county_code = :c AND boundary IS NOT NULL ORDER BY code""", {"c": county_code}, ["code", "name", "wkb"]))
