"""Exports of one grid version that planners send around: cells, territories and gaps as layers
(GeoPackage, GeoJSON, CSV, GeoParquet; every geometry a MultiPolygon). The RM workbook is ``geodata.workbook``.

Which cells, RMs and customers go in is decided by the caller: ``cell_ids`` (None = every cell) and
a :class:`geodata.scope.Scope` for RMs and customers. Masking personal data is the caller's job too
(``api.masking``); this module only queries and writes files.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.csvsafe import safe_frame
from geodata.errors import BadInput, NotFound
from geodata.gaps import latest_scores
from geodata.grids import as_multipolygons, load_cells
from geodata.scope import Scope, where

FORMATS = ("gpkg", "geojson", "csv", "parquet", "xlsx")
LAYERS = ("cells", "territories", "gaps")
CHINA_TZ = "Asia/Shanghai"


def _owners(conn: Connection, grid_id: int) -> dict[str, str]:
    return dict(conn.execute(text("SELECT cell_id, rm_code FROM territory WHERE grid_id = :g AND role = 'owner'"
                                  " AND valid_to IS NULL"), {"g": grid_id}).all())


def _scores(conn: Connection, grid_id: int) -> pd.DataFrame:
    try:
        df = latest_scores(conn, grid_id=grid_id)
    except NotFound:
        return pd.DataFrame(columns=["cell_id", "score", "gap_class", "components", "measures", "reason_zh", "reason_en"])
    return df


def cells_layer(conn: Connection, *, grid_id: int, cell_ids: Iterable[str] | None = None) -> gpd.GeoDataFrame:
    """Cells with statistics, owner, lock, and the latest score, class, reasons and component contributions."""
    cells = load_cells(conn, grid_id=grid_id, with_stats=True)
    if cell_ids is not None:
        cells = cells[cells["cell_id"].isin(set(cell_ids))]
    locks = {r[0] for r in conn.execute(text("SELECT cell_id FROM cell_lock WHERE grid_id = :g"), {"g": grid_id})}
    cells = cells.assign(owner_rm=cells["cell_id"].map(_owners(conn, grid_id)), locked=cells["cell_id"].isin(locks))
    all_scores = _scores(conn, grid_id)
    scores = all_scores[["cell_id", "score", "gap_class", "reason_zh", "reason_en"]]
    if len(all_scores):  # each component's contribution, so the score can be read in a spreadsheet
        comps = pd.DataFrame(list(all_scores["components"]), index=all_scores.index)
        scores = pd.concat([scores, comps[[c for c in comps.columns if c.startswith("contrib_")]]], axis=1)
    return cells.merge(scores, on="cell_id", how="left").reset_index(drop=True)


def gaps_layer(conn: Connection, *, grid_id: int, cell_ids: Iterable[str] | None = None) -> gpd.GeoDataFrame:
    """Latest scores with every component contribution as a column (``contrib_*``, ``comp_*``)."""
    scores = latest_scores(conn, grid_id=grid_id)
    if cell_ids is not None and len(scores):
        scores = scores[scores["cell_id"].isin(set(cell_ids))]
    if not len(scores):
        return gpd.GeoDataFrame({"cell_id": [], "label": [], "score": [], "gap_class": []},
                                geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    comps = pd.DataFrame(list(scores["components"]), index=scores.index) if len(scores) else pd.DataFrame()
    flat = pd.concat([scores.drop(columns=["components", "measures"]), comps], axis=1)
    geo = load_cells(conn, grid_id=grid_id, cell_ids=list(flat["cell_id"]), with_stats=False)[["cell_id", "label", "geometry"]]
    return geo.merge(flat, on="cell_id").sort_values(["score", "cell_id"], ascending=[False, True]).reset_index(drop=True)


def territories_layer(conn: Connection, *, grid_id: int, scope: Scope) -> gpd.GeoDataFrame:
    """One feature per RM ``scope`` may see: the union of the cells they own and their totals."""
    cond = where(scope, "rm", "r")
    rows = conn.execute(text(
        "SELECT t.rm_code, r.name AS rm_name, r.outlet_code, t.cell_id FROM territory t JOIN rm r ON r.code = t.rm_code"
        f" WHERE t.grid_id = :g AND t.role = 'owner' AND t.valid_to IS NULL AND {cond.sql} ORDER BY t.rm_code"),
        {**cond.params, "g": grid_id}).mappings().all()
    owned = pd.DataFrame([dict(r) for r in rows], columns=["rm_code", "rm_name", "outlet_code", "cell_id"])
    cells = load_cells(conn, grid_id=grid_id, cell_ids=list(owned["cell_id"]), with_stats=True) if len(owned) else None
    out = []
    for (rm, name, outlet), part in owned.groupby(["rm_code", "rm_name", "outlet_code"], sort=True):
        mine = cells[cells["cell_id"].isin(part["cell_id"])]
        out.append({"rm_code": rm, "rm_name": name, "outlet_code": outlet, "cells": len(mine),
                    **{c: float(pd.to_numeric(mine[c], errors="coerce").fillna(0).sum())
                       for c in ("customers", "households", "deposit", "loan")},
                    "area_km2": float(mine["area_km2"].sum()),
                    "geometry": shapely.union_all(mine.geometry.to_numpy())})
    cols = ["rm_code", "rm_name", "outlet_code", "cells", "customers", "households", "deposit", "loan", "area_km2"]
    return gpd.GeoDataFrame(pd.DataFrame(out, columns=[*cols, "geometry"]), geometry="geometry", crs=4326)


def _plain(df: pd.DataFrame, *, times_as_text: bool = True) -> pd.DataFrame:
    """Lists and dicts as JSON text, timestamps as China-time text, or (``times_as_text=False``, for
    GeoPackage) as UTC datetimes, so that a GIS reads a date field; geometries as MultiPolygons."""
    out = df.copy()
    for c in out.columns:
        if c == "geometry":
            continue
        col = out[c]
        if col.dtype == object and col.map(lambda v: isinstance(v, dt.datetime)).any():
            col = pd.to_datetime(col, utc=True)
        if isinstance(col.dtype, pd.DatetimeTZDtype) and times_as_text:
            col = col.dt.tz_convert(CHINA_TZ)
            out[c] = col.astype(str).where(col.notna(), None)
        elif isinstance(col.dtype, pd.DatetimeTZDtype):
            out[c] = col.dt.tz_convert("UTC")  # GeoPackage stores datetimes in UTC (…Z), as its spec asks
        elif col.dtype == object:
            out[c] = [json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (list, dict, tuple)) else v
                      for v in col]
    if "geometry" in out.columns and isinstance(out, gpd.GeoDataFrame):
        out = out.set_geometry(as_multipolygons(out.geometry.to_numpy()), crs=out.crs)
    return out


def write_layer(gdf: gpd.GeoDataFrame, path: Path, *, fmt: str, layer: str) -> Path:
    """Write one layer as GeoPackage, GeoJSON, CSV (geometry as WKT plus a lon/lat inside it) or GeoParquet."""
    if fmt not in ("gpkg", "geojson", "csv", "parquet"):
        raise BadInput(f"unknown layer format {fmt!r}")
    flat = _plain(gdf, times_as_text=fmt not in ("gpkg", "parquet"))
    if fmt == "csv":
        geoms = flat.geometry.to_numpy()
        inner = shapely.point_on_surface(geoms)
        table = pd.DataFrame(flat.drop(columns="geometry")).assign(
            lon=shapely.get_x(inner), lat=shapely.get_y(inner), wkt=shapely.to_wkt(geoms, rounding_precision=7))
        # utf-8-sig: Excel, which planners open CSVs with, needs the BOM to read Chinese; text cells that
        # Excel would run as formulas get a leading quote (numeric columns stay numbers).
        safe_frame(table).to_csv(path, index=False, encoding="utf-8-sig")
    elif fmt == "parquet":
        # GeoParquet 1.0 (WKB, the CRS in the 'geo' metadata), as data platforms read it.
        flat.to_parquet(path, index=False, compression="zstd", schema_version="1.0.0")
    elif fmt == "gpkg":
        # Typed even when empty: QGIS and GDAL see a MultiPolygon layer, not "Unknown (any)".
        flat.to_file(path, driver="GPKG", layer=layer, engine="pyogrio", geometry_type="MultiPolygon")
    else:
        path.write_text(flat.to_json(ensure_ascii=False, drop_id=True), encoding="utf-8")
    return path
