"""``run_import``: read a planner's file, validate every row, load the good ones in one transaction.

One module per concern: ``base`` (run record, rejects file), ``validate`` and
``rows`` (column-wise checks), ``load`` (COPY and upsert), and the kinds in
``places``, ``facilities``, ``people``, ``customers``, ``activity``, ``spatial``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

import shapely
from sqlalchemy.engine import Engine

from geodata.errors import BadInput
from geodata.importers import bulk, load, pipeline, scoped
from geodata.importers.activity import LEADS, TAGS, VISITS
from geodata.importers.base import (
    Kind,
    ProgressFn,
    RejectsFile,
    finish_run,
    previous_ok_run,
    rejected_message,
    sha256_of,
    start_run,
)
from geodata.importers.customers import CUSTOMERS
from geodata.importers.facilities import LEGAL_ENTITIES, OUTLETS, SERVICE_POINTS
from geodata.importers.people import RMS
from geodata.importers.places import TOWNSHIPS, VILLAGES
from geodata.importers.rows import Context
from geodata.importers.spatial import COUNTIES, open_layer
from geodata.readers import open_table
from geodata.scope import check_import_allowed
from grid.chinacrs import CRS_NAMES

KINDS: dict[str, Kind] = {
    k.name: k for k in (LEGAL_ENTITIES, COUNTIES, TOWNSHIPS, VILLAGES, OUTLETS, SERVICE_POINTS,
                        RMS, CUSTOMERS, VISITS, LEADS, TAGS)
}
# Big initial loads skip the staging table and index maintenance above this many rows.
DIRECT_LOAD_MIN_ROWS = 50_000

__all__ = ["KINDS", "run_import"]


def _context(cur, kind: Kind, crs: str, synthetic: bool, legal_entity_id: int | None = None) -> Context:
    """Lookups read inside the load transaction (small tables).

    On behalf of a legal entity, only its own legal entity code, outlets and
    RMs are known: another entity's read like unknown ones.
    """
    ctx = Context(kind=kind, crs=crs, synthetic=synthetic, only_legal_entity=legal_entity_id)
    own = "" if legal_entity_id is None else " WHERE legal_entity_id = %(own)s"
    params = {"own": legal_entity_id}
    cur.execute("SELECT code, id FROM legal_entity" + ("" if legal_entity_id is None else " WHERE id = %(own)s"),
                params)
    ctx.legal_entities = dict(cur.fetchall())
    cur.execute("SELECT adcode, legal_entity_id FROM county WHERE legal_entity_id IS NOT NULL")
    ctx.county_legal_entity = dict(cur.fetchall())
    if kind.point in load.POINT and "county_code" in kind.fields:
        cur.execute("SELECT adcode, ST_AsBinary(geom) FROM county")
        for adcode, wkb in cur.fetchall():
            geom = shapely.from_wkb(bytes(wkb))
            shapely.prepare(geom)
            ctx.counties[adcode] = geom
    if kind.name in ("rms", "service-points"):
        cur.execute("SELECT code, legal_entity_id FROM outlet" + own, params)
        rows = cur.fetchall()
        ctx.known["outlet"] = {r[0] for r in rows}
        ctx.extra["outlet_le"] = {r[0]: r[1] for r in rows if r[1] is not None}
    if kind.name == "visits":
        cur.execute("SELECT code FROM rm" + own, params)
        ctx.known["rm"] = {r[0] for r in cur.fetchall()}
    return ctx


def _open(kind: Kind, path: Path, crs: str, encoding, mapping, sheet):
    if kind.point == "geometry":
        return open_layer(path, kind=kind, crs=crs, mapping=mapping, encoding=encoding)
    return open_table(path, kind=kind.name, fields=tuple(kind.fields), encoding=encoding,
                      sheet=sheet, mapping=mapping)


def _require(source, kind: Kind) -> None:
    missing = [f for f in kind.required if f not in source.mapping]
    if missing:
        raise BadInput(
            f"{source.path.name}: no column for required field(s) {', '.join(missing)}"
            f" (header on line {source.header_line}); columns found: {', '.join(source.columns)}."
            " Rename the column, add an alias to geodata/aliases.toml, or map the column to the field (列名=field)"
        )


def run_import(
    engine: Engine, *, kind: str, path: str | Path, user: str, crs: str = "wgs84",
    encoding: str | None = None, mapping: Mapping[str, str] | None = None,
    rejects_dir: str | Path, dry_run: bool = False, synthetic: bool = False,
    progress: ProgressFn | None = None, sheet: str | None = None,
    rejects_path: str | Path | None = None, chunk_size: int = 100_000,
    legal_entity_id: int | None = None,
) -> dict:
    """Import one file of ``kind``; returns the summary (also stored in ``import_run``).

    Good rows load in one transaction; rejected rows go to a rejects CSV and
    never stop the others. The same file again (same SHA-256, last run ok)
    changes nothing and reports ``status='unchanged'``. A file that cannot be
    read raises BadInput after recording a failed run.

    ``legal_entity_id`` imports on behalf of a user of that legal entity (法人机构):
    only that entity's rows are inserted or updated; a row whose key is stored
    for another entity is rejected ('id not available'), as is a row naming a
    legal entity, county, outlet, RM or customer not the user's (see
    ``scoped``); rows naming no legal entity take it. The kinds every entity
    shares (legal entities, counties, townships, villages) raise Forbidden:
    only a system-wide administrator (``legal_entity_id=None``) imports them.

    ``status`` is 'ok', 'unchanged' (the same file again), or 'rejected' when
    every row was rejected (nothing imported; ``message`` says why and what to do).
    """
    if kind not in KINDS:
        raise BadInput(f"unknown import kind {kind!r}; kinds: {', '.join(KINDS)}")
    crs = str(crs).lower()
    if crs not in CRS_NAMES:
        raise BadInput(f"unknown coordinate system {crs!r}; use one of {', '.join(CRS_NAMES)}")
    spec, path = KINDS[kind], Path(path)
    check_import_allowed(kind, legal_entity_id)
    if legal_entity_id is not None:
        scoped.check_kind(spec)
    progress = progress or (lambda fraction, message="": None)
    sha = sha256_of(path) if path.is_file() else "-"
    # On behalf of a legal entity rows may be rejected that an administrator's import keeps:
    # the same file then counts as a different import.
    options = {"crs": crs, "encoding": encoding, "sheet": sheet, "mapping": dict(mapping or {}),
               "synthetic": synthetic, "legal_entity_id": legal_entity_id}
    run_id = start_run(engine, kind=kind, path=path, sha=sha, user=user, crs=crs,
                       dry_run=dry_run, synthetic=synthetic, options=options)
    summary = {"run_id": run_id, "kind": kind, "file": path.name, "sha256": sha, "dry_run": dry_run,
               "source_crs": crs}
    rejects = None
    try:
        if not path.is_file():
            raise BadInput(f"no such file: {path}")
        previous = None if dry_run else previous_ok_run(engine, kind=kind, sha=sha, options=options)
        if previous is not None:
            summary.update(status="unchanged", counts={"inserted": 0, "updated": 0},
                           message=f"same file as import run {previous}: nothing changed")
            finish_run(engine, run_id, status="unchanged", counts=summary["counts"], message=summary["message"])
            return summary
        source = _open(spec, path, crs, encoding, mapping, sheet)
        _require(source, spec)
        rejects = RejectsFile(
            Path(rejects_path) if rejects_path else Path(rejects_dir) / f"import-{run_id}-{kind}-rejects.csv",
            source.columns,
        )
        summary.update(encoding=source.encoding, header_line=source.header_line,
                       columns=dict(source.mapping), ignored_columns=list(source.ignored))
        counts, ctx = _load(engine, spec, source, rejects, run_id, crs, synthetic, dry_run, chunk_size, progress,
                            legal_entity_id)
    except Exception as exc:
        # PostgreSQL cannot store NUL, and a message may quote the file (a UTF-16 header, say).
        message = str(exc).replace("\x00", "\\x00")
        if rejects is not None:
            rejects.discard()  # nothing was stored: a partial rejects file would mislead
        summary.update(status="failed", message=message)
        finish_run(engine, run_id, status="failed", message=message[:2000], encoding=summary.get("encoding"))
        raise
    rpath = rejects.close()
    status, message = "ok", ("dry run: nothing written" if dry_run else None)
    if counts["rejected"] and counts["rejected"] == counts["rows"]:
        # Loudly: a run that imported nothing is no success, and the same file must import once fixed.
        status, message = "rejected", rejected_message(counts, rejects.reasons, rpath, dry_run=dry_run)
    elif not counts["rows"]:
        message = "the file has no data rows: nothing was imported"
    summary.update(
        status=status, counts=counts, rejects_path=rpath,
        warnings=ctx.warnings.counts, warning_rows=ctx.warnings.items, message=message,
    )
    if rejects.reasons:
        summary["rejected_reasons"] = dict(rejects.reasons.most_common())
    if spec.point in load.POINT:
        summary["outside_county"] = ctx.outside_county
    finish_run(engine, run_id, status=status, counts=counts, warnings=ctx.warnings.items,
               rejects_path=rpath, encoding=source.encoding, message=summary["message"])
    progress(1.0, f"{counts['rows']} rows")
    return summary


def _load(engine, spec, source, rejects, run_id, crs, synthetic, dry_run, chunk_size, progress,
          legal_entity_id=None):
    """Validate and load every chunk in one transaction; returns (counts, context).

    A big file into an empty target skips the staging table: rows COPY into
    a new table that is indexed in two sessions and swapped in (``bulk``), or,
    where the target can't be swapped, straight into the target, indexed once
    at the end (``load.prepare_direct``).
    """
    counts = {"rows": 0, "inserted": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    plan: bulk.Plan | None = None
    own = legal_entity_id
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            cur = conn.connection.dbapi_connection.cursor()
            ctx = _context(cur, spec, crs, synthetic, legal_entity_id)
            fast = (spec.streaming and not dry_run and (own is None or scoped.direct_allowed(spec))
                    and load.can_load_direct(cur, spec))
            indexes: list[str] | None = None
            direct, into = False, None  # COPY straight into the target, or into ``into`` (the bulk plan's table)
            lines = own is not None  # staged rows keep their line: rejects are found in SQL too
            load.create_staging(cur, spec, lines=lines)
            staged = 0
            # The COPY encoding runs ahead in its own thread: for the target on a big first load (chunks
            # that end up staged ignore it), else for the staging table.
            if fast:
                prepare = lambda good: load.encode_direct(spec, good, run_id)  # noqa: E731
            else:
                prepare = lambda good: load.encode_stage(spec, good, lines)  # noqa: E731
            # Closed at once on an error, which stops the threads (not when the traceback is dropped).
            with contextlib.closing(pipeline.validated(source, ctx, chunk_size, prepare)) as validated:
                for chunk in validated:
                    good = chunk.good
                    rejects.write(chunk.bad, chunk.field, chunk.value, chunk.reason)
                    counts["rows"] += chunk.rows
                    if fast and not direct and staged + len(good) >= DIRECT_LOAD_MIN_ROWS:
                        # Empty target and a big file: COPY straight in, index once at the end.
                        if spec.after is None and bulk.can_swap(cur, spec.table.name):
                            plan = bulk.start(cur, spec.table.name, run_id)
                            into = plan.table
                        else:
                            indexes = load.prepare_direct(cur, spec)
                        direct = True
                        if own is not None:
                            staged -= _reject_staged(cur, spec, own, rejects)
                        _flush_staging(cur, spec, run_id, into)
                    if direct:
                        load.send_direct(cur, into or spec.table.name,
                                         chunk.prepared or load.encode_direct(spec, good, run_id))
                    else:
                        load.stage(cur, spec, good, chunk.prepared, lines)
                    staged += len(good)
                    progress(min(chunk.fraction, 0.97), f"{counts['rows']:,} rows read")
            for line, text_, reason, *fld in source.invalid_rows:
                rejects.write_raw(line, text_, reason, field=fld[0] if fld else "")
            mixed = [line for line, _, _ in getattr(source, "mixed_lines", ())]
            ctx.warnings.add("mixed_encoding", mixed,
                             f"line in another encoding than the file's {source.encoding}: rejected, not stored"
                             " as garbled text; save the whole file in one encoding")
            # Rows that could not be split into the header's cells are rows of the file too.
            counts["rows"] += len(source.invalid_rows)
            if direct:
                progress(0.98, "indexing")
                if indexes is not None:
                    load.recreate_indexes(cur, indexes)
                inserted, updated = staged, 0
            else:
                progress(0.98, "merging")
                if own is None:
                    inserted, updated = load.upsert(cur, spec, run_id)
                else:
                    staged -= _reject_staged(cur, spec, own, rejects)
                    inserted, updated = load.upsert(cur, spec, run_id, only=scoped.owned(spec, spec.table.name),
                                                    own=own)
            if own is not None:
                scoped.verify(cur, spec, into or spec.table.name, run_id, own)
            if spec.after is not None:
                spec.after(cur, ctx)
            counts["rejected"] = rejects.count
            counts.update(inserted=inserted, updated=updated, unchanged=staged - inserted - updated)
            if dry_run:
                tx.rollback()
            else:
                # With a bulk plan this stores the new table only; the target is swapped below.
                tx.commit()
        except BaseException:
            tx.rollback()
            if plan is not None:  # its table went with the transaction
                bulk.release(cur, plan)
            raise
        if plan is not None:
            _swap_in(engine, conn, plan)
    return counts, ctx


def _swap_in(engine, conn, plan: bulk.Plan) -> None:
    """Index the committed new table in two sessions, then swap it for the empty target in one transaction."""
    def connect():
        return engine.raw_connection()

    cur = conn.connection.dbapi_connection.cursor()
    try:
        bulk.build_indexes(connect, plan)
        with conn.begin():
            bulk.swap(cur, plan)
    except BaseException:
        bulk.discard(connect, plan)
        raise
    finally:
        bulk.release(cur, plan)  # session-level: effective at once, whatever the transaction does
        conn.connection.dbapi_connection.commit()


def _reject_staged(cur, spec: Kind, own: int, rejects: RejectsFile) -> int:
    """Drop staged rows a user of legal entity ``own`` may not write, into the rejects; returns how many."""
    bad = scoped.reject_staged(cur, spec, own)
    rejects.write_rows(bad)
    return len(bad)


def _flush_staging(cur, spec: Kind, run_id: int, table: str | None = None) -> None:
    """Move rows staged before switching to the direct path into the (empty) target or ``table``."""
    load.upsert(cur, spec, run_id, into_empty=True, table=table)
    cur.execute(f"TRUNCATE {load.STAGING}")
