"""Grid versions and their cells: build (with grid/), store, list, read back.

Building again always creates a new grid version; older versions, their cells
and their assignments stay readable.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput, NotFound
from grid.projection import areas_m2

ProgressFn = Callable[[float, str], None]
KINDS = ("h3", "village")


def load_county(conn: Connection, *, code: str) -> dict:
    """County row with its geometry as shapely, or NotFound."""
    row = conn.execute(
        text("SELECT adcode, name, legal_entity_id, ST_AsBinary(geom) AS wkb FROM county WHERE adcode = :c"),
        {"c": code},
    ).mappings().first()
    if row is None:
        raise NotFound(f"county {code!r} is not imported (gridmkt import counties FILE)")
    return {**row, "geometry": shapely.from_wkb(bytes(row["wkb"]))}


def load_villages(conn: Connection, *, county_code: str) -> pd.DataFrame:
    """Villages of a county with lon/lat (NaN when unknown) and their counts."""
    rows = conn.execute(
        text(
            "SELECT code, name, township_code, coord_level, households, population, "
            "ST_X(geom) AS lon, ST_Y(geom) AS lat FROM village WHERE county_code = :c ORDER BY code"
        ),
        {"c": county_code},
    ).mappings().all()
    cols = ["code", "name", "township_code", "coord_level", "households", "population", "lon", "lat"]
    df = pd.DataFrame([dict(r) for r in rows], columns=cols)
    for c in ("lon", "lat", "households", "population"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def _polygons(conn: Connection, table: str, county_code: str) -> gpd.GeoDataFrame | None:
    sql = {
        "village": "SELECT code, ST_AsBinary(boundary) AS wkb FROM village WHERE county_code = :c AND boundary IS NOT NULL",
        "township": "SELECT code, ST_AsBinary(boundary) AS wkb FROM township WHERE county_code = :c AND boundary IS NOT NULL",
    }[table]
    rows = conn.execute(text(sql), {"c": county_code}).all()
    if not rows:
        return None
    return gpd.GeoDataFrame(
        {"code": [r[0] for r in rows]}, geometry=shapely.from_wkb([bytes(r[1]) for r in rows]), crs=4326
    )


def build_cells(conn: Connection, *, county_code: str, kind: str, resolution: int | None) -> tuple[gpd.GeoDataFrame, dict]:
    """Compute (not store) the cells of a new grid from what is stored for the county."""
    county = load_county(conn, code=county_code)
    if kind == "h3":
        from grid.h3cells import build_h3_cells

        if resolution is None:
            raise BadInput("an H3 grid needs a resolution (6..10)")
        cells = build_h3_cells(county["geometry"], resolution)
        cells = cells.assign(label=cells["cell_id"], village_codes=None, township_code=None)
        report = {"method": "h3", "resolution": resolution, "cells": len(cells),
                  "border_cells": int(cells["is_border"].sum())}
    elif kind == "village":
        from grid.villages import build_village_cells

        villages = load_villages(conn, county_code=county_code)
        if villages.empty:
            raise BadInput(f"county {county_code} has no villages (gridmkt import villages FILE)")
        cells, report = build_village_cells(
            county["geometry"], villages,
            village_polygons=_polygons(conn, "village", county_code),
            township_polygons=_polygons(conn, "township", county_code),
        )
        cells = cells.assign(
            label=["、".join(n[:3]) + (f" 等{len(n)}村" if len(n) > 3 else "") for n in cells["names"]],
            is_border=False,
        )
        resolution = None
    else:
        raise BadInput(f"unknown grid kind {kind!r}: use one of {', '.join(KINDS)}")
    return cells, report


def as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Every geometry as a MultiPolygon (the one type cells are stored and exported as); None stays None.

    A Polygon becomes a MultiPolygon of one part; of a collection only its polygons are kept.
    """
    out = np.asarray(geoms, dtype=object).copy()
    for i, g in enumerate(out):
        if g is None or isinstance(g, shapely.MultiPolygon):
            continue
        if isinstance(g, shapely.Polygon):
            out[i] = shapely.MultiPolygon([g])
        else:
            parts = [p for p in shapely.get_parts(g) if isinstance(p, shapely.Polygon | shapely.MultiPolygon)]
            out[i] = shapely.MultiPolygon([q for p in parts for q in shapely.get_parts(p)])
    return out


def save_grid(
    conn: Connection, *, county_code: str, kind: str, resolution: int | None,
    cells: gpd.GeoDataFrame, report: dict,
) -> int:
    """Store a new grid version with its cells (COPY); returns the grid id."""
    grid_id = conn.execute(
        text(
            "INSERT INTO grid (county_code, kind, resolution, cell_count, report) "
            "VALUES (:c, :k, :r, :n, CAST(:rep AS jsonb)) RETURNING id"
        ),
        {"c": county_code, "k": kind, "r": resolution, "n": len(cells), "rep": json.dumps(report, default=str)},
    ).scalar_one()
    area = areas_m2(cells.set_crs(4326, allow_override=True)) / 1e6
    geoms = shapely.set_srid(as_multipolygons(cells.geometry.to_numpy()), 4326)
    wkb = shapely.to_wkb(geoms, hex=True, include_srid=True)

    def arr(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return r"\N"
        return "{" + ",".join(str(x) for x in v) + "}"

    buf = io.StringIO()
    for cid, label, border, vcodes, tcode, a, g in zip(
        cells["cell_id"], cells["label"], cells["is_border"], cells["village_codes"],
        cells["township_code"], area, wkb, strict=True,
    ):
        # COPY text format: a backslash starts an escape, and tab, newline or carriage return end a field or row.
        label = str(label).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ").replace("\r", " ")
        tc = r"\N" if tcode is None or (isinstance(tcode, float) and np.isnan(tcode)) else str(tcode)
        buf.write(f"{grid_id}\t{cid}\t{label}\t{'t' if border else 'f'}\t{arr(vcodes)}\t{tc}\t{float(a)!r}\t{g}\n")
    buf.seek(0)
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.copy_expert(
            "COPY cell (grid_id, cell_id, label, is_border, village_codes, township_code, area_km2, geom) FROM STDIN",
            buf,
        )
    return grid_id


def build_grid(
    conn: Connection, *, county_code: str, kind: str, resolution: int | None = None,
    progress: ProgressFn | None = None, refine=None,
) -> dict:
    """Build and store a new grid version for a county; returns its summary.

    ``refine`` (a :class:`geodata.refine_grid.RefineOptions`) splits the cells where the
    county's customers are too much work for one cell (issue 17); the report says how.
    """
    progress = progress or (lambda f, m="": None)
    progress(0.05, "building cells")
    cells, report = build_cells(conn, county_code=county_code, kind=kind, resolution=resolution)
    if refine is not None:
        from geodata.refine_grid import refine_cells

        progress(0.4, "refining cells where the work is dense")
        cells, report["refined"] = refine_cells(
            conn, county_code=county_code, kind=kind, resolution=resolution, cells=cells, options=refine,
            county=load_county(conn, code=county_code)["geometry"], villages=load_villages(conn, county_code=county_code))
        report["cells"] = len(cells)
    progress(0.7, f"storing {len(cells)} cells")
    grid_id = save_grid(conn, county_code=county_code, kind=kind, resolution=resolution, cells=cells, report=report)
    progress(0.85, "building the point lookup")
    grid_locator(conn, grid_id=grid_id, kind=kind, cells=load_cells(conn, grid_id=grid_id, with_stats=False))
    progress(1.0, "done")
    return {**get_grid(conn, grid_id=grid_id), "report": report}


def _with_h3(cells: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Cells with their uint64 H3 index (``h3``), as H3Locator wants them."""
    from grid.h3cells import h3_of_ids

    return cells if "h3" in cells else cells.assign(h3=h3_of_ids(cells["cell_id"]))


def _mixed(cells: gpd.GeoDataFrame) -> bool:
    """True for a refined H3 grid (cells of several resolutions)."""
    h = cells["h3"].to_numpy(dtype=np.uint64)
    res = (h >> np.uint64(52)) & np.uint64(0xF)
    return len(h) > 0 and bool((res != res[0]).any())


def build_locator(kind: str, cells: gpd.GeoDataFrame, workers: int = 1):
    """A new point lookup for the cells of a grid of ``kind`` (see :func:`grid_locator` for the stored one).

    A refined H3 grid (several resolutions) gets the polygon lookup village grids use.
    """
    if kind == "h3" and not _mixed(_with_h3(cells)):
        from grid.locate import H3Locator

        return H3Locator(_with_h3(cells), workers=workers)
    from grid.locate import VillageLocator

    return VillageLocator(cells)


def grid_locator(conn: Connection, *, grid_id: int, kind: str, cells: gpd.GeoDataFrame, workers: int = 1):
    """The point lookup of a grid version: the stored one if it fits ``cells``, else built and stored.

    ``cells`` as :func:`load_cells` returns them (lookups answer row positions in
    them). An H3 grid gets a ``grid.locate.H3Locator`` (``workers`` > 1 forks:
    only from the CLI, never in the server), a village grid a
    ``grid.locate.VillageLocator`` (so does a refined H3 grid, whose cells are of
    several resolutions). Grid versions never change, so the
    lookup is built once; a stored one of another format or for other cells
    (checked by a fingerprint) is rebuilt.
    """
    from grid.errors import InvalidInput
    from grid.locate import H3Locator, VillageLocator

    if kind == "h3":
        cells = _with_h3(cells)
    h3_lattice = kind == "h3" and not _mixed(cells)
    data = conn.execute(text("SELECT data FROM grid_lookup WHERE grid_id = :g"), {"g": grid_id}).scalar()
    if data is not None:
        try:
            if h3_lattice:
                return H3Locator.from_bytes(bytes(data), cells, workers=workers)
            return VillageLocator.from_bytes(bytes(data), cells)
        except InvalidInput:
            pass  # another format or other cells: rebuilt below
    locator = build_locator(kind, cells, workers)
    conn.execute(text("INSERT INTO grid_lookup (grid_id, data) VALUES (:g, :d) ON CONFLICT (grid_id)"
                      " DO UPDATE SET data = EXCLUDED.data, created_at = now()"),
                 {"g": grid_id, "d": locator.to_bytes()})
    return locator


def locator_from_bytes(kind: str, cells: gpd.GeoDataFrame, data: bytes, workers: int = 1):
    """A lookup made by :func:`grid_locator` (its ``to_bytes``) opened again for the same ``cells``."""
    from grid.locate import H3Locator, VillageLocator

    if kind == "h3":
        cells = _with_h3(cells)
    if kind == "h3" and not _mixed(cells):
        return H3Locator.from_bytes(data, cells, workers=workers)
    return VillageLocator.from_bytes(data, cells)


def get_grid(conn: Connection, *, grid_id: int) -> dict:
    """One grid version's summary, or NotFound."""
    row = conn.execute(
        text(
            "SELECT g.id, g.county_code, c.name AS county_name, c.legal_entity_id, g.kind, g.resolution, "
            "g.cell_count, g.created_at, g.assigned_at, g.territory_version, g.report "
            "FROM grid g JOIN county c ON c.adcode = g.county_code WHERE g.id = :g"
        ),
        {"g": grid_id},
    ).mappings().first()
    if row is None:
        raise NotFound(f"grid {grid_id} does not exist")
    return dict(row)


def list_grids(conn: Connection, *, county_code: str | None = None, legal_entity_id: int | None = None) -> list[dict]:
    """Grid versions, newest first, optionally for one county / one legal entity."""
    rows = conn.execute(
        text(
            "SELECT g.id, g.county_code, c.name AS county_name, g.kind, g.resolution, g.cell_count, "
            "g.created_at, g.assigned_at FROM grid g JOIN county c ON c.adcode = g.county_code "
            "WHERE (CAST(:c AS text) IS NULL OR g.county_code = :c) "
            "AND (CAST(:le AS integer) IS NULL OR c.legal_entity_id = :le) ORDER BY g.id DESC"
        ),
        {"c": county_code, "le": legal_entity_id},
    ).mappings().all()
    return [dict(r) for r in rows]


def load_cells(
    conn: Connection, *, grid_id: int, bbox: tuple[float, float, float, float] | None = None,
    cell_ids: list[str] | None = None, with_stats: bool = True,
) -> gpd.GeoDataFrame:
    """Cells of a grid (optionally inside a bbox or a list of ids) with their statistics."""
    get_grid(conn, grid_id=grid_id)
    stats = (
        ", s.customers, s.households, s.population, s.apportioned, s.deposit, s.loan, "
        "s.visits_90d, s.customers_visited_90d, s.last_visit_at"
        if with_stats else ""
    )
    rows = conn.execute(
        text(
            f"SELECT c.cell_id, c.label, c.is_border, c.village_codes, c.township_code, c.area_km2{stats}, "
            "ST_AsBinary(c.geom) AS wkb FROM cell c "
            + ("LEFT JOIN cell_stat s ON s.grid_id = c.grid_id AND s.cell_id = c.cell_id " if with_stats else "")
            + "WHERE c.grid_id = :g "
            "AND (CAST(:xmin AS float8) IS NULL OR c.geom && ST_MakeEnvelope(:xmin, :ymin, :xmax, :ymax, 4326)) "
            "AND (CAST(:ids AS text[]) IS NULL OR c.cell_id = ANY(:ids)) ORDER BY c.cell_id"
        ),
        {
            "g": grid_id, "ids": cell_ids,
            **dict(zip(("xmin", "ymin", "xmax", "ymax"), bbox or (None,) * 4, strict=True)),
        },
    ).mappings().all()
    records = [dict(r) for r in rows]
    geoms = shapely.from_wkb([bytes(r.pop("wkb")) for r in records]) if records else []
    df = pd.DataFrame(records)
    for col in ("deposit", "loan"):
        if col in df:
            df[col] = df[col].astype(float)
    return gpd.GeoDataFrame(df, geometry=list(geoms), crs=4326)


STAT_COLUMNS = ("customers", "households", "population", "deposit", "loan", "visits_90d", "customers_visited_90d")


def rollup_cells(conn: Connection, *, grid_id: int, res: int) -> gpd.GeoDataFrame:
    """An H3 grid summarised at a coarser resolution (parents), without rebuilding it.

    Geometry is the union of each parent's clipped children, so the coarser
    cells still tile the county; statistics are sums over the children.
    """
    from grid.h3cells import rollup, rollup_geometry

    g = get_grid(conn, grid_id=grid_id)
    if g["kind"] != "h3":
        raise BadInput(f"grid {grid_id} is a {g['kind']} grid; only H3 grids roll up to parents")
    if not 0 <= res <= g["resolution"]:
        raise BadInput(f"roll-up resolution must be between 0 and the grid's resolution {g['resolution']}, got {res}")
    cells = load_cells(conn, grid_id=grid_id, with_stats=True)
    geo = rollup_geometry(cells[["cell_id", "is_border", "geometry"]], res)
    # Cells never assigned have no statistics (all NULL, object columns): still numbers, zero.
    values = pd.DataFrame({"cell_id": cells["cell_id"],
                           **{c: pd.to_numeric(cells[c]).fillna(0) for c in STAT_COLUMNS}})
    sums = rollup(values, res).drop(columns=["h3"])
    return geo.merge(sums, on="cell_id", how="left")
