"""Exports: a grid's cells, territories or gaps (GeoPackage, GeoJSON, CSV) or the RM workbook (xlsx), and
the stored rows of a kind; contents follow the scope, personal data masked by role, one audit row
``export grid_<layer> <grid id>`` (or ``export <kind>``).

The command line exports as a local administrator (``scope`` None: everything, unmasked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from api.masking import mask_id_number, mask_name, mask_phone
from geodata import audit, exports_grid, workbook
from geodata.errors import BadInput
from geodata.export import export as export_rows
from geodata.reads import access
from geodata.reads.workbook import workbook_data
from geodata.scope import Scope, sees_pii

LAYERS = ("cells", "territories", "gaps")
FORMATS = ("gpkg", "geojson", "csv", "parquet", "xlsx")
_MASKS = {"name": mask_name, "phone": mask_phone, "id_number": mask_id_number}
EVERYTHING = Scope(role="admin", legal_entity_id=None)  # the command line is a local administrator's tool


def mask_frame(df: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """A copy with personal columns masked unless ``scope`` may see them (as ``mask_record`` does)."""
    if sees_pii(scope):
        return df
    out = df.copy()
    for col, fn in _MASKS.items():
        if col in out:
            out[col] = out[col].map(fn)
    return out


def grid_file(conn: Connection, *, actor: str, grid_id: int, fmt: str, layer: str, path: Path,
              scope: Scope | None = None, audit_conn: Connection | None = None) -> dict[str, Any]:
    """Write a grid layer (or, for ``fmt`` xlsx, the RM workbook) to ``path``; answers what was written.

    Read on ``conn``; the audit row goes on ``audit_conn`` when given (the primary, when ``conn`` is a
    read replica's), else on ``conn``."""
    if fmt not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt != "xlsx" and layer not in LAYERS:
        raise BadInput(f"layer must be one of {', '.join(LAYERS)}, not {layer!r}")
    scope = scope or EVERYTHING
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "xlsx":
        data = workbook_data(conn, grid_id=grid_id, scope=scope)
        data.customers = mask_frame(data.customers, scope)
        workbook.write_workbook(path, data)
        layer, count = "workbook", {"rms": len(data.summary), "customers": len(data.customers)}
    else:
        mine = access.visible_cells(conn, scope=scope, grid_id=grid_id)
        if layer == "cells":
            gdf = exports_grid.cells_layer(conn, grid_id=grid_id, cell_ids=mine)
        elif layer == "gaps":
            keep = None if mine is None else mine | access.unowned_cells(conn, grid_id=grid_id)
            gdf = exports_grid.gaps_layer(conn, grid_id=grid_id, cell_ids=keep)
        else:
            gdf = exports_grid.territories_layer(conn, grid_id=grid_id, scope=scope)
        exports_grid.write_layer(gdf, path, fmt=fmt, layer=layer)
        count = {"features": len(gdf)}
    audit.record(audit_conn or conn, username=actor, action="export", object_type=f"grid_{layer}", object_id=str(grid_id),
                 detail={"format": fmt, "layer": layer, **count})
    return {"grid_id": grid_id, "format": fmt, "layer": layer, **count}


def stored_rows(engine: Engine, *, actor: str, kind: str, path: Path) -> dict[str, Any]:
    """Write every stored row of ``kind`` (command line only: a local administrator's dump)."""
    out = export_rows(engine, kind=kind, path=path)
    with engine.begin() as conn:
        audit.record(conn, username=actor, action="export", object_type=kind, object_id=None,
                     detail={"path": str(path), "rows": out.get("rows")})
    return out
