"""Getting validated rows into PostGIS: COPY into a staging table, then one set-based upsert.

Table and column names come only from the schema (``geodata.tables``), never
from a file; values travel through COPY or bound parameters.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from geodata.importers.base import Kind

STAGING = "import_staging"
POINT = ("optional", "required")
_HEX = np.array([f"{i:02X}" for i in range(256)], dtype="S2")
# EWKB point header: little endian, type 1 with the SRID flag, SRID 4326.
_EWKB_HEAD = np.frombuffer(b"\x01\x01\x00\x00\x20\xe6\x10\x00\x00", dtype=np.uint8)


def ewkb_hex(lon: np.ndarray, lat: np.ndarray) -> pa.Array:
    """Hex EWKB of SRID-4326 points (what COPY accepts for a geometry column); null where NaN."""
    n = len(lon)
    buf = np.empty((n, 25), dtype=np.uint8)
    buf[:, :9] = _EWKB_HEAD
    buf[:, 9:17] = np.ascontiguousarray(lon, dtype="<f8").view(np.uint8).reshape(n, 8)
    buf[:, 17:25] = np.ascontiguousarray(lat, dtype="<f8").view(np.uint8).reshape(n, 8)
    # One vectorised lookup turns the 25 bytes of each row into its 50 hex characters.
    arr = pa.array(_HEX[buf].view("S50").ravel(), type=pa.binary(50)).cast(pa.string())
    missing = np.isnan(lon)
    return arr if not missing.any() else pc.if_else(pa.array(~missing), arr, None)


def target_columns(kind: Kind) -> list[str]:
    """Columns of the target filled by an import, in staging order (without geom, with lon/lat)."""
    cols = list(kind.columns)
    for extra in ("outside_county", "source_crs", "synthetic"):
        if extra in kind.table.c and extra not in cols:
            cols.append(extra)
    if kind.point == "geometry":
        cols.append("geom")
    return cols


def create_staging(cur, kind: Kind) -> None:
    """A temporary staging table shaped like the target (never WAL-logged, dropped at commit)."""
    cols = target_columns(kind)
    cur.execute(f"DROP TABLE IF EXISTS {STAGING}")
    cur.execute(
        f"CREATE TEMP TABLE {STAGING} ON COMMIT DROP AS"
        f" SELECT {', '.join(cols)} FROM {kind.table.name} WITH NO DATA"
    )
    if kind.point in POINT:
        cur.execute(f"ALTER TABLE {STAGING} ADD COLUMN lon float8, ADD COLUMN lat float8")


def _csv_bytes(frame: pd.DataFrame) -> io.BytesIO:
    """The frame as headerless CSV: NULL unquoted-empty, text always quoted (COPY's CSV rules)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, write_options=pacsv.WriteOptions(include_header=False))
    buf.seek(0)
    return buf


def copy_frame(cur, table: str, frame: pd.DataFrame, freeze: bool = False) -> None:
    """COPY ``frame`` (its columns named as in ``table``) into ``table``."""
    if not len(frame):
        return
    cols = ", ".join(frame.columns)
    opts = "FORMAT csv, FREEZE" if freeze else "FORMAT csv"
    cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN WITH ({opts})", _csv_bytes(frame), size=1 << 20)


def stage(cur, kind: Kind, frame: pd.DataFrame) -> None:
    """COPY good rows of one chunk into the staging table."""
    cols = target_columns(kind) + (["lon", "lat"] if kind.point in POINT else [])
    copy_frame(cur, STAGING, frame.reindex(columns=cols))


def direct(cur, kind: Kind, frame: pd.DataFrame, run_id: int) -> None:
    """COPY good rows straight into an empty target (the big initial load)."""
    cols = target_columns(kind)
    out = frame.reindex(columns=cols)
    if kind.point in POINT:
        out["geom"] = ewkb_hex(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    out["import_run_id"] = run_id
    copy_frame(cur, kind.table.name, out, freeze=True)


def can_load_direct(cur, kind: Kind) -> bool:
    """True when the target is empty and no foreign key points at it (so it may be truncated)."""
    t = kind.table.name
    cur.execute(
        f"SELECT NOT EXISTS (SELECT 1 FROM {t}) AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint WHERE confrelid = %s::regclass AND contype = 'f')",
        (f"public.{t}",),
    )
    return bool(cur.fetchone()[0])


def prepare_direct(cur, kind: Kind) -> list[str]:
    """Make an empty target ready for a bulk COPY; returns the index definitions to recreate.

    Non-unique indexes are dropped (built once at the end instead of row by
    row), and the table is truncated in this transaction: with
    ``wal_level = minimal`` PostgreSQL then skips WAL for the load, and
    ``COPY ... FREEZE`` is allowed. Only used on tables no foreign key points to.
    """
    t = kind.table.name
    # Index builds at the end sort in memory rather than in temporary files.
    cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
    cur.execute("SET LOCAL max_parallel_maintenance_workers = 2")
    # The primary key and foreign keys go too: one sort and one anti-join at the
    # end cost far less than a btree insert and a trigger per row. Duplicates
    # cannot reach COPY (rejected in the file), and re-adding checks anyway.
    cur.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('p', 'f') ORDER BY contype DESC",
        (f"public.{t}",),
    )
    constraints = cur.fetchall()
    for name, _, _ in constraints:
        cur.execute(f'ALTER TABLE {t} DROP CONSTRAINT "{name}"')
    defs = drop_secondary_indexes(cur, kind)
    cur.execute(f"TRUNCATE {t}")
    return [f'ALTER TABLE {t} ADD CONSTRAINT "{name}" {d}' for name, _, d in constraints] + defs


def drop_secondary_indexes(cur, kind: Kind) -> list[str]:
    """Drop the target's non-unique indexes; returns their definitions to recreate them."""
    cur.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relname = %s AND t.relnamespace = 'public'::regnamespace AND NOT x.indisunique"
        " AND NOT x.indisprimary",
        (kind.table.name,),
    )
    found = cur.fetchall()
    for name, _ in found:
        cur.execute(f'DROP INDEX public."{name}"')
    return [d for _, d in found]


def recreate_indexes(cur, definitions: list[str]) -> None:
    for d in definitions:
        cur.execute(d)


def upsert(cur, kind: Kind, run_id: int, *, into_empty: bool = False) -> tuple[int, int]:
    """Insert new keys, update changed rows (IS DISTINCT FROM), leave equal rows alone.

    Returns (inserted, updated); ``xmax = 0`` marks a freshly inserted tuple.
    ``into_empty`` is a plain INSERT (the target is empty and may lack its key).
    """
    t = kind.table.name
    cols = target_columns(kind)
    select = list(cols)
    insert_cols = list(cols)
    if kind.point in POINT:
        insert_cols.append("geom")
        select.append(
            "CASE WHEN lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END"
        )
    insert_cols.append("import_run_id")
    select.append("%(run)s")
    key = ", ".join(kind.key)
    compare = [c for c in insert_cols if c not in kind.key and c != "import_run_id"]
    if compare:
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in compare + ["import_run_id"])
        old = ", ".join(f"{t}.{c}" for c in compare)
        new = ", ".join(f"EXCLUDED.{c}" for c in compare)
        conflict = f"DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new})"
        if len(compare) == 1:
            conflict = f"DO UPDATE SET {sets} WHERE {old} IS DISTINCT FROM {new}"
    else:
        conflict = "DO NOTHING"
    on_conflict = "" if into_empty else f" ON CONFLICT ({key}) {conflict}"
    cur.execute(
        f"WITH up AS (INSERT INTO {t} ({', '.join(insert_cols)})"
        f" SELECT {', '.join(select)} FROM {STAGING}"
        f"{on_conflict} RETURNING (xmax = 0) AS fresh)"
        " SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM up",
        {"run": run_id},
    )
    inserted, updated = cur.fetchone()
    return int(inserted), int(updated)
