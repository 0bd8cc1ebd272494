"""Downloads planners send around: a grid's cells, territories or gaps as GeoPackage, GeoJSON or CSV,
and the RM workbook (Excel: summary, customers, cells and a glossary; ``geodata.workbook``).

What goes in follows ``geodata.scope``: an RM exports their own cells, territory and customers, a
branch manager their outlets' RMs'; gap layers add the cells nobody owns (as the gap routes do).
Customer names, phones and ID numbers are masked as ``api.masking`` masks them. Every export is audited.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.deps import ConnDep, permitted
from api.grid_access import GridDep, unowned_cells, visible_cells
from api.masking import mask_id_number, mask_name, mask_phone
from geodata import audit, exports_grid, workbook
from geodata.scope import Scope, sees_pii

router = APIRouter(prefix="/api/v1/grids/{grid_id}", tags=["exports"])
ExporterDep = permitted("export")

MEDIA = {
    "gpkg": "application/geopackage+sqlite3",
    "geojson": "application/geo+json",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_MASKS = {"name": mask_name, "phone": mask_phone, "id_number": mask_id_number}


def mask_frame(df: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """A copy with personal columns masked unless ``scope`` may see them (as ``mask_record`` does)."""
    if sees_pii(scope):
        return df
    out = df.copy()
    for col, fn in _MASKS.items():
        if col in out:
            out[col] = out[col].map(fn)
    return out


@router.get("/export", response_class=FileResponse, responses={200: {
    "content": {m: {} for m in MEDIA.values()}, "description": "The file, as a download."}})
def export(
    grid: GridDep, conn: ConnDep, user: ExporterDep,
    fmt: Annotated[Literal["gpkg", "geojson", "csv", "xlsx"], Query(
        alias="format", description="File format: `gpkg` (GeoPackage), `geojson`, `csv` (WKT plus lon/lat, "
        "UTF-8 with BOM) or `xlsx` (the RM workbook; `layer` is then ignored).")] = "geojson",
    layer: Annotated[Literal["cells", "territories", "gaps"], Query(
        description="`cells` with statistics, owner and latest score; `territories` one feature per RM; "
        "`gaps` latest scores with every component.")] = "cells",
) -> FileResponse:
    """Download a grid's cells, territories or gaps, or the RM workbook (Excel: 汇总 Summary with a row per
    RM and totals, 客户 Customers and 网格 Cells with the RM as a column, 说明 About with a glossary;
    Chinese and English headers, number formats, China-time dates). Contents follow your scope;
    personal data is masked for planners and analysts. Recorded in the audit log."""
    gid = grid["id"]
    tmp = FsPath(tempfile.mkdtemp(prefix="gridmkt-export-"))
    try:
        if fmt == "xlsx":
            data = workbook.workbook_data(conn, grid_id=gid, scope=user.scope)
            data.customers = mask_frame(data.customers, user.scope)
            name = f"grid{gid}_rms.xlsx"
            workbook.write_workbook(tmp / name, data)
            count = {"rms": len(data.summary), "customers": len(data.customers)}
        else:
            mine = visible_cells(conn, user.scope, gid)
            if layer == "cells":
                gdf = exports_grid.cells_layer(conn, grid_id=gid, cell_ids=mine)
            elif layer == "gaps":
                keep = None if mine is None else mine | unowned_cells(conn, gid)
                gdf = exports_grid.gaps_layer(conn, grid_id=gid, cell_ids=keep)
            else:
                gdf = exports_grid.territories_layer(conn, grid_id=gid, scope=user.scope)
            name = f"grid{gid}_{layer}.{fmt}"
            exports_grid.write_layer(gdf, tmp / name, fmt=fmt, layer=layer)
            count = {"features": len(gdf)}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    audit.record(conn, username=user.username, action="export", object_type=f"grid_{'workbook' if fmt == 'xlsx' else layer}",
                 object_id=str(gid), detail={"format": fmt, "layer": layer, **count})
    return FileResponse(tmp / name, media_type=MEDIA[fmt], filename=name,
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))
