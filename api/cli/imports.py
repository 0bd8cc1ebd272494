"""``gridmkt import KIND FILE`` and ``gridmkt export KIND -o FILE``: thin faces over geodata."""

from __future__ import annotations

from pathlib import Path

import click

from api.cli import actor, cli, settings, user_option
from api.cli.output import command
from api.db import open_engine
from api.operations import exports as export_ops
from api.operations import imports as import_ops
from geodata import users
from geodata.errors import BadInput
from geodata.export import EXPORT_TABLES
from geodata.importers import KINDS


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
@click.option("--user", default=None, help="Recorded as who imported, in the import run and the audit log (default: the OS user).")
@click.option("--legal-entity", "legal_entity", default=None, metavar="CODE",
              help="Import on behalf of this legal entity, as its planners do through the API: only its own rows"
                   " (another entity's id: 'id not available'); shared kinds are refused.")
def import_(ctx, kind, file, crs, encoding, maps, sheet, rejects, dry_run, user, legal_entity):
    """Import a planner's FILE of KIND (CSV/XLSX or GeoParquet; counties: GeoJSON/Shapefile/GeoPackage).

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
            summary = import_ops.run(
                engine, actor=actor(user), kind=kind, path=file, crs=crs,
                encoding=encoding, mapping=_mapping(maps), sheet=sheet,
                rejects_dir=s.db.home / "rejects", rejects_path=rejects, dry_run=dry_run,
                progress=progress, legal_entity_id=le_id,
            )
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
              help="File to write: .geojson, .gpkg, .csv (UTF-8 with BOM) or .parquet (GeoParquet); .xlsx for a workbook.")
@click.option("--grid", "grid_id", type=int, default=None,
              help="Grid id, for cells (statistics, owner, latest gap score, class and components), "
                   "territories (one shape per RM), gaps, and workbook (summary, customers, cells, glossary).")
@user_option
def export_(ctx, kind, output, grid_id, user):
    """Write what is stored for KIND (WGS84, with each row's source coordinate system), or a grid's layers."""
    if grid_id is not None and kind not in GRID_LAYERS:
        raise BadInput(f"--grid is for {', '.join(GRID_LAYERS)}; export {kind} writes every stored row")
    engine = open_engine(settings().db)
    try:
        if kind in GRID_LAYERS:
            return {"ok": True, **_export_grid(engine, actor=actor(user), kind=kind, grid_id=grid_id, output=output)}
        result = export_ops.stored_rows(engine, actor=actor(user), kind=kind, path=output)
    finally:
        engine.dispose()
    return {"ok": True, **result}


def _export_grid(engine, *, actor: str, kind: str, grid_id: int | None, output: Path) -> dict:
    """Same work as the export route (``api.operations.exports.grid_file``), as a local administrator."""
    if grid_id is None:
        raise BadInput(f"export {kind} needs --grid GRID_ID (see gridmkt grid list)")
    if kind == "workbook":
        if output.suffix.lower() != ".xlsx":
            raise BadInput("a workbook is written as .xlsx")
        fmt = "xlsx"
    else:
        fmt = output.suffix.lower().lstrip(".")
        if fmt not in ("gpkg", "geojson", "csv", "parquet"):
            raise BadInput(f"write {kind} as .gpkg, .geojson, .csv or .parquet, not {output.suffix or 'no extension'}")
    with engine.begin() as conn:
        out = export_ops.grid_file(conn, actor=actor, grid_id=grid_id, fmt=fmt, layer=kind, path=output)
    out.pop("layer", None)
    if "features" in out:
        out["rows"] = out.pop("features")
    return {"kind": kind, "path": str(output), **out}
