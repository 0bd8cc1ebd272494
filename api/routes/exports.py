"""Downloads planners send around: a grid's cells, territories or gaps as GeoPackage, GeoJSON or CSV,
and the RM workbook (Excel: summary, customers, cells and a glossary; ``geodata.workbook``).

What goes in follows ``geodata.scope``: an RM exports their own cells, territory and customers, a
branch manager their outlets' RMs'; gap layers add the cells nobody owns (as the gap routes do).
Customer names, phones and ID numbers are masked as ``api.masking`` masks them. Every export is audited.
The work (scope, masking, audit row) is ``api.operations.exports.grid_file``, which ``gridmkt export`` calls too.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.deps import ConnDep, WriteConnDep, permitted
from api.grid_access import GridDep
from api.operations import exports as ops

router = APIRouter(prefix="/api/v1/grids/{grid_id}", tags=["exports"])
ExporterDep = permitted("export")

MEDIA = {
    "gpkg": "application/geopackage+sqlite3",
    "geojson": "application/geo+json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get("/export", response_class=FileResponse, responses={200: {
    "content": {m: {} for m in MEDIA.values()}, "description": "The file, as a download."}})
def export(
    grid: GridDep, conn: ConnDep, audit_conn: WriteConnDep, user: ExporterDep,
    fmt: Annotated[Literal["gpkg", "geojson", "csv", "parquet", "xlsx"], Query(
        alias="format", description="File format: `gpkg` (GeoPackage), `geojson`, `csv` (WKT plus lon/lat, "
        "UTF-8 with BOM), `parquet` (GeoParquet 1.0) or `xlsx` (the RM workbook; `layer` is then ignored).")] = "geojson",
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
    name = f"grid{gid}_rms.xlsx" if fmt == "xlsx" else f"grid{gid}_{layer}.{fmt}"
    try:
        ops.grid_file(conn, actor=user.username, grid_id=gid, fmt=fmt, layer=layer, path=tmp / name,
                      scope=user.scope, audit_conn=audit_conn)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(tmp / name, media_type=MEDIA[fmt], filename=name,
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))
