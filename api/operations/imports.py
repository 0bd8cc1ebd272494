"""Imports: run the importer, then its follow-up (re-assign and rescore the grids whose customers or
reference data changed), and write one audit row ``import <kind> <run id>``.

Both faces call :func:`run`: the API from its background job, the command line directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from geodata import audit, refresh


def _default_importer():
    from geodata.importers import run_import

    return run_import


def run(engine: Engine, *, actor: str, kind: str, path: Path, file_name: str | None = None,
        importer: Callable[..., dict] | None = None, **options: Any) -> dict[str, Any]:
    """Import ``path`` as ``kind`` (``options`` go to the importer: crs, encoding, mapping, dry_run, ...).

    ``file_name`` is the name the user gave the file (an upload is stored under its own name)."""
    fn = importer or _default_importer()
    summary = fn(engine, kind=kind, path=path, user=actor, **options)
    dry_run = bool(options.get("dry_run"))
    if not dry_run and summary.get("status") == "ok" and "run_id" in summary:
        summary["refreshed"] = refresh.after_import(engine, kind=kind, run_id=summary["run_id"])
    with engine.begin() as conn:
        audit.record(conn, username=actor, action="import", object_type=kind,
                     object_id=None if summary.get("run_id") is None else str(summary["run_id"]),
                     detail={"file": file_name or Path(path).name, "dry_run": dry_run,
                             "status": summary.get("status"),
                             "legal_entity_id": options.get("legal_entity_id")})
    return summary
