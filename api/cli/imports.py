"""``gridmkt import KIND FILE`` and ``gridmkt export KIND -o FILE``: thin faces over geodata."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from api.cli import cli, settings
from api.cli.output import command
from api.db import open_engine
from geodata import refresh, users
from geodata.errors import BadInput
from geodata.export import EXPORT_TABLES, export
from geodata.importers import KINDS, run_import


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        src, sep, fld = pair.rpartition("=")
        if not sep or not src.strip() or not fld.strip():
            raise BadInput(f"--map {pair!r}: write it as 源列=field, e.g. --map 村名=name")
        out[src.strip()] = fld.strip()
    return out


@command(cli, "import")
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--crs", type=click.Choice(["wgs84", "gcj02", "bd09"]), default="wgs84", show_default=True,
              help="Coordinate system of the file's lon/lat (converted to WGS84 once).")
@click.option("--encoding", default=None, help="Text encoding of a CSV (default: detect UTF-8/BOM/GBK).")
@click.option("--map", "maps", multiple=True, metavar="COL=FIELD",
              help="Read column COL as canonical FIELD (repeatable); wins over the alias table.")
@click.option("--sheet", default=None, help="XLSX sheet name (default: the first sheet).")
@click.option("--rejects", "rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the rejects CSV (default: $GRIDMKT_HOME/rejects/).")
@click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")
@click.option("--user", default=None, help="Recorded as who imported (default: login name).")
@click.option("--legal-entity", "legal_entity", default=None, metavar="CODE",
              help="Import on behalf of this legal entity, as its planners do through the API: only its own rows"
                   " (another entity's id: 'id not available'); shared kinds are refused.")
def import_(ctx, kind, file, crs, encoding, maps, sheet, rejects, dry_run, user, legal_entity):
    """Import a planner's FILE of KIND (CSV/XLSX; counties: GeoJSON/Shapefile/GeoPackage).

    Bad rows go to a rejects CSV with line, field and reason; good rows load in
    one transaction. The same file again changes nothing. A file whose every row
    was rejected imports nothing: status 'rejected', a message saying why and
    what to do, exit status 3 (2: the file could not be imported at all).
    """
    s = settings()
    engine = open_engine(s.db)
    try:
        le_id = None
        if legal_entity is not None:
            with engine.connect() as conn:
                le_id = users.legal_entity_id(conn, code=legal_entity)
        with ctx.progress(f"import {kind}") as progress:
            summary = run_import(
                engine, kind=kind, path=file, user=user or getpass.getuser(), crs=crs,
                encoding=encoding, mapping=_mapping(maps), sheet=sheet,
                rejects_dir=s.db.home / "rejects", rejects_path=rejects, dry_run=dry_run,
                progress=progress, legal_entity_id=le_id,
            )
        if not dry_run and summary.get("status") == "ok":
            summary["refreshed"] = refresh.after_import(engine, kind=kind, run_id=summary["run_id"])
    finally:
        engine.dispose()
    summary["ok"] = summary.get("status") != "rejected"
    if not summary["ok"]:
        ctx.exit_code = 3
    if not ctx.as_json:
        # Long lists stay in --json and the rejects file; the table shows the essentials.
        summary.pop("warning_rows", None)
    return summary


GRID_LAYERS = ("cells", "territories", "gaps", "workbook")


@command(cli, "export")
@click.argument("kind", type=click.Choice([*EXPORT_TABLES, *GRID_LAYERS]))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write: .geojson, .gpkg or .csv (UTF-8 with BOM); .xlsx for a workbook.")
@click.option("--grid", "grid_id", type=int, default=None,
              help="Grid id, for cells (statistics, owner, latest gap score, class and components), "
                   "territories (one shape per RM), gaps, and workbook (summary, customers, cells, glossary).")
def export_(ctx, kind, output, grid_id):
    """Write what is stored for KIND (WGS84, with each row's source coordinate system), or a grid's layers."""
    if grid_id is not None and kind not in GRID_LAYERS:
        raise BadInput(f"--grid is for {', '.join(GRID_LAYERS)}; export {kind} writes every stored row")
    engine = open_engine(settings().db)
    try:
        if kind in GRID_LAYERS:
            return {"ok": True, **_export_grid(engine, kind=kind, grid_id=grid_id, output=output)}
        result = export(engine, kind=kind, path=output)
    finally:
        engine.dispose()
    return {"ok": True, **result}


def _export_grid(engine, *, kind: str, grid_id: int | None, output: Path) -> dict:
    from geodata import exports_grid, workbook
    from geodata.scope import Scope

    if grid_id is None:
        raise BadInput(f"export {kind} needs --grid GRID_ID (see gridmkt grid list)")
    everything = Scope(role="admin", legal_entity_id=None)  # the command line is a local administrator's tool
    with engine.connect() as conn:
        if kind == "workbook":
            if output.suffix.lower() != ".xlsx":
                raise BadInput("a workbook is written as .xlsx")
            output.parent.mkdir(parents=True, exist_ok=True)  # as geodata.export does for stored kinds
            data = workbook.workbook_data(conn, grid_id=grid_id, scope=everything)
            workbook.write_workbook(output, data)
            return {"kind": kind, "grid_id": grid_id, "path": str(output), "rms": len(data.summary),
                    "customers": len(data.customers)}
        fmt = output.suffix.lower().lstrip(".")
        if fmt not in ("gpkg", "geojson", "csv"):
            raise BadInput(f"write {kind} as .gpkg, .geojson or .csv, not {output.suffix or 'no extension'}")
        if kind == "cells":
            layer = exports_grid.cells_layer(conn, grid_id=grid_id)
        elif kind == "territories":
            layer = exports_grid.territories_layer(conn, grid_id=grid_id, scope=everything)
        else:
            layer = exports_grid.gaps_layer(conn, grid_id=grid_id)
    output.parent.mkdir(parents=True, exist_ok=True)
    exports_grid.write_layer(layer, output, fmt=fmt, layer=kind)
    return {"kind": kind, "grid_id": grid_id, "path": str(output), "format": fmt, "rows": len(layer)}
