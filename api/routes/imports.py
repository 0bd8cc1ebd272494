"""Imports by upload: stream the file to disk, check it, run the importer as a background job."""

from __future__ import annotations

import json
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import AfterValidator, BaseModel

from api.deps import ConnDep, ImporterDep, Page, PageDep, WriteConnDep, permitted
from api.operations import imports as import_ops
from api.schemas import ImportRunPublic, ImportRunsPublic
from api.uploads import discard_upload, receive_file, sniff
from geodata import audit
from geodata.errors import NotFound
from geodata.reads.imports import import_runs
from geodata.scope import check_import_allowed

router = APIRouter(prefix="/api/v1/imports", tags=["imports"])

Kind = Literal["legal-entities", "counties", "townships", "villages", "outlets", "service-points",
               "rms", "customers", "visits", "leads", "tags"]
ImportId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Id of the import run.")]
ViewerDep = permitted("view_imports")

def _mapping(value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise ValueError("mapping must be a JSON object {\"file header\": \"canonical field\"}") from None
    if not isinstance(parsed, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()):
        raise ValueError("mapping must map header names to canonical field names (strings)")
    return parsed


class ImportStarted(BaseModel):
    """An accepted upload: poll the job until it is done; its result is the import run."""

    job_id: str
    poll: str
    file_name: str
    format: str


def importer(request: Request):
    """The import function: ``app.state.importer`` if set, else ``geodata.importers.run_import``."""
    fn = getattr(request.app.state, "importer", None)
    if fn is not None:
        return fn
    try:
        from geodata.importers import run_import
    except ImportError:
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, "importers are not installed") from None
    return run_import


@router.post("/{kind}", status_code=status.HTTP_202_ACCEPTED, response_model=ImportStarted,
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["file"],
                 "properties": {"file": {"type": "string", "format": "binary",
                                         "description": "CSV, XLSX, GeoParquet, GeoJSON, GeoPackage or zipped shapefile."}}}}}}})
async def upload(
    kind: Annotated[Kind, Path(description="What the file holds (see docs/fields.md).")],
    request: Request, user: ImporterDep,
    crs: Annotated[Literal["wgs84", "gcj02", "bd09"], Query(description="Coordinate system of lon/lat in the file.")] = "wgs84",
    encoding: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_\-]+$", description="Text encoding of a CSV (detected when omitted).")] = None,
    mapping: Annotated[str | None, Query(max_length=4000, description="JSON object mapping file headers to canonical field names."), AfterValidator(_mapping)] = None,
    dry_run: Annotated[bool, Query(description="Check the file and report, without writing anything.")] = False,
    synthetic: Annotated[bool, Query(description="Mark the rows as synthetic (demo data).")] = False,
) -> ImportStarted:
    """Upload a file (multipart field `file`) and import it in the background.

    The body is streamed to disk (readable by the service's user only) and refused
    with 413 past the configured size limit (`GRIDMKT_UPLOAD_MAX_BYTES`, 512 MiB by
    default); types other than CSV, XLSX, GeoParquet (.parquet), GeoJSON, GeoPackage and zipped shapefiles
    are refused with 415 (by extension and by content). The file is deleted when
    the job ends unless `GRIDMKT_UPLOAD_KEEP` is set. Answers 202 with the job to
    poll; the finished job's result is the import run with its summary (`status`
    'rejected' when every row was rejected: nothing was imported). The finished import is recorded in
    the audit log (as `gridmkt import` records it).

    A user of one legal entity imports only that entity's rows: a row whose id
    is stored for another entity is rejected ('id not available'). Legal
    entities, counties, townships and villages are shared by every legal
    entity: only a system-wide admin imports them (403 for anyone else)."""
    check_import_allowed(kind, user.scope.legal_entity_id)
    run = importer(request)
    settings = request.app.state.settings
    folder = FsPath(settings.uploads.dir)
    path = await receive_file(request, folder=folder, max_bytes=settings.uploads.max_bytes)
    keep = settings.uploads.keep
    engine = request.app.state.engine

    def job(progress) -> dict[str, Any]:
        try:
            return import_ops.run(engine, actor=user.username, kind=kind, path=path, importer=run, crs=crs,
                                  encoding=encoding, mapping=mapping, rejects_dir=folder / "rejects",
                                  dry_run=dry_run, synthetic=synthetic, progress=progress,
                                  # a user bound to a legal entity imports only that entity's rows
                                  legal_entity_id=user.scope.legal_entity_id)
        finally:
            if not keep:  # the upload holds unmasked personal data: gone once imported (or failed)
                discard_upload(path, folder=folder)

    try:
        fmt = await run_in_threadpool(sniff, path, max_bytes=settings.uploads.max_bytes)
        job_id = await run_in_threadpool(request.app.state.jobs.submit, kind=f"import:{kind}", user=user, fn=job)
    except BaseException:
        discard_upload(path, folder=folder)  # refused (415/413) or never started
        raise
    return ImportStarted(job_id=job_id, poll=f"/api/v1/jobs/{job_id}", file_name=path.name, format=fmt)


def _runs(conn, user, page, run_id: int | None = None) -> tuple[list[dict], int]:
    rows, total = import_runs(conn, scope=user.scope, limit=page.limit, offset=page.offset, run_id=run_id)
    out = []
    for r in rows:
        d = {k: v for k, v in r.items() if k != "rejects_path"}
        d["rejects"] = f"/api/v1/imports/{r['id']}/rejects" if r["rejects_path"] is not None else None
        d["_rejects_path"] = r["rejects_path"]
        out.append(d)
    return out, total


@router.get("", response_model=ImportRunsPublic, response_model_exclude_unset=True)
def list_imports(conn: ConnDep, user: ViewerDep, page: PageDep) -> dict:
    """Import runs started by users of your legal entity, newest first, with their summaries."""
    rows, total = _runs(conn, user, page)
    for r in rows:
        r.pop("_rejects_path")
    nxt = page.offset + len(rows)
    return {"items": rows, "total": total, "next_offset": nxt if nxt < total else None}


@router.get("/{import_id}", response_model=ImportRunPublic, response_model_exclude_unset=True)
def get_import(import_id: ImportId, conn: ConnDep, user: ViewerDep) -> dict:
    """One import run: counts, warnings, message and a link to its rejected rows."""
    rows, _ = _runs(conn, user, Page(1, 0), import_id)
    if not rows:
        raise NotFound(f"import run {import_id} does not exist")
    rows[0].pop("_rejects_path")
    return rows[0]


@router.get("/{import_id}/rejects", response_class=FileResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "The rejected rows with reasons."}})
def get_rejects(import_id: ImportId, conn: ConnDep, audit_conn: WriteConnDep, user: ImporterDep) -> FileResponse:
    """The rejected rows of an import run as CSV, each with the reason (planners and admins:
    the rows are unmasked source data). Recorded in the audit log as an export."""
    rows, _ = _runs(conn, user, Page(1, 0), import_id)
    if not rows:
        raise NotFound(f"import run {import_id} does not exist")
    path = rows[0]["_rejects_path"]
    if not path or not FsPath(path).is_file():
        raise NotFound(f"import run {import_id} has no rejects file")
    audit.record(audit_conn, username=user.username, action="export", object_type="import_rejects",
                 object_id=str(import_id))
    return FileResponse(path, media_type="text/csv", filename=f"rejects_{import_id}.csv")
