"""Getting validated rows into PostGIS: COPY into a staging table, then one set-based upsert.

Streaming kinds (customers) COPY in PostgreSQL's binary format, built with
numpy and Arrow: numbers, dates and EWKB points arrive ready-made, so the
server parses no text. The other kinds COPY CSV. Table and column names come
only from the schema (``geodata.tables``), never from a file; values travel
through COPY or bound parameters.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from geodata.errors import BadInput
from geodata.importers.base import Kind
from geodata.pgcopy import (  # noqa: F401  (ewkb, encode_binary: as load.* for the tests and bench)
    copy_type,
    encode_binary,
    ewkb,
    ewkb_hex,
)
from geodata.readers import LINE

STAGING = "import_staging"
POINT = ("optional", "required")

def target_columns(kind: Kind) -> list[str]:
    """Columns of the target filled by an import, in staging order (without geom, with lon/lat)."""
    cols = list(kind.columns)
    for extra in ("outside_county", "source_crs", "synthetic"):
        if extra in kind.table.c and extra not in cols:
            cols.append(extra)
    if kind.point == "geometry":
        cols.append("geom")
    return cols


def create_staging(cur, kind: Kind, *, lines: bool = False) -> None:
    """A temporary staging table shaped like the target (never WAL-logged, dropped at commit).

    With ``lines`` it also keeps each row's line in the file (``_line``), for rejects found in SQL.
    """
    cols = target_columns(kind)
    cur.execute(f"DROP TABLE IF EXISTS {STAGING}")
    cur.execute(
        f"CREATE TEMP TABLE {STAGING} ON COMMIT DROP AS"
        f" SELECT {', '.join(cols)} FROM {kind.table.name} WITH NO DATA"
    )
    if kind.point in POINT:
        cur.execute(f"ALTER TABLE {STAGING} ADD COLUMN lon float8, ADD COLUMN lat float8")
    if lines:
        cur.execute(f"ALTER TABLE {STAGING} ADD COLUMN {LINE} int8")


def _csv_bytes(frame: pd.DataFrame) -> io.BytesIO:
    """The frame as headerless CSV: NULL unquoted-empty, text always quoted (COPY's CSV rules)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, write_options=pacsv.WriteOptions(include_header=False))
    buf.seek(0)
    return buf


def _binary_types(kind: Kind, columns) -> list[str] | None:
    """Binary COPY types of ``columns`` of the target (lon/lat are float8), or None to use CSV.

    Only the streaming kinds go binary: their columns are plain scalars, and
    the server then parses no text at all (numbers, dates, geometry).
    """
    if not kind.streaming or kind.point == "geometry":
        return None
    types = [("float8" if c in ("lon", "lat") and c not in kind.table.c
              else "int8" if c == LINE else copy_type(kind.table.c[c]))
             for c in columns]
    return None if None in types else types


def copy_binary(cur, table: str, frame: pd.DataFrame, types: list[str], freeze: bool = False,
                ewkb: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """COPY ``frame`` into ``table`` in PostgreSQL's binary format."""
    _send(cur, table, _encoded(frame, types, ewkb), freeze=freeze)


@dataclass
class Encoded:
    """Good rows of one chunk ready to COPY: the stream, its columns, binary or CSV, and where they go."""

    data: object
    columns: list[str]
    binary: bool
    rows: int
    staged: bool = False  # for the staging table (else for the target, see :func:`encode_direct`)


def _encoded(out: pd.DataFrame, types: list[str] | None, ewkb=None, *, staged: bool = False) -> Encoded:
    """``out`` (columns named as in the table) as one COPY stream: binary with ``types``, else CSV."""
    if not len(out):
        return Encoded(None, list(out.columns), types is not None, 0, staged)
    if types is not None:
        data, cols = encode_binary(out, types, ewkb)
        return Encoded(data, cols, True, len(out), staged)
    return Encoded(_csv_bytes(out), list(out.columns), False, len(out), staged)


def _send(cur, table: str, enc: Encoded, *, freeze: bool) -> None:
    if not enc.rows:
        return
    opts = ("FORMAT binary" if enc.binary else "FORMAT csv") + (", FREEZE" if freeze else "")
    cur.copy_expert(f"COPY {table} ({', '.join(enc.columns)}) FROM STDIN WITH ({opts})", enc.data,
                    size=8 << 20 if enc.binary else 1 << 20)


def encode_stage(kind: Kind, frame: pd.DataFrame, lines: bool = False) -> Encoded:
    """Good rows of one chunk encoded for the staging table (no database needed: runs ahead)."""
    cols = target_columns(kind) + (["lon", "lat"] if kind.point in POINT else []) + ([LINE] if lines else [])
    return _encoded(frame.reindex(columns=cols), _binary_types(kind, cols), staged=True)


def stage(cur, kind: Kind, frame: pd.DataFrame, encoded: Encoded | None = None, lines: bool = False) -> None:
    """COPY good rows of one chunk into the staging table (``encoded`` by :func:`encode_stage` if given)."""
    _send(cur, STAGING, encoded if encoded is not None and encoded.staged else encode_stage(kind, frame, lines),
          freeze=False)


def encode_direct(kind: Kind, frame: pd.DataFrame, run_id: int) -> Encoded:
    """Good rows of one chunk encoded for a COPY straight into the target (no database needed: runs ahead)."""
    cols = target_columns(kind)
    out = frame.reindex(columns=cols)
    out["import_run_id"] = run_id
    types = _binary_types(kind, list(out.columns) + (["geom"] if kind.point in POINT else []))
    points = None
    if kind.point in POINT:
        lon, lat = frame["lon"].to_numpy(dtype=float), frame["lat"].to_numpy(dtype=float)
        if types is not None:
            out["geom"] = None
            points = (ewkb(lon, lat), np.isnan(lon))
        else:
            out["geom"] = ewkb_hex(lon, lat)
    return _encoded(out, types, points)


def send_direct(cur, table: str, enc: Encoded) -> None:
    """COPY ... FREEZE one encoded chunk into ``table`` (created or truncated in this transaction)."""
    _send(cur, table, enc, freeze=True)


def direct(cur, kind: Kind, frame: pd.DataFrame, run_id: int, table: str | None = None) -> None:
    """COPY good rows straight into an empty target, or ``table`` shaped like it (the big initial load)."""
    send_direct(cur, table or kind.table.name, encode_direct(kind, frame, run_id))


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
    # Emptiness was seen before this transaction held any lock: rows another import committed since
    # must not be truncated away.
    cur.execute(f"LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE")
    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {t})")
    if cur.fetchone()[0]:
        raise BadInput(f"{t}: rows were stored by another import meanwhile; nothing of this file was stored."
                       " Run the import again: it then updates by key.")
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


def _point_sql(alias: str | None = None) -> str:
    """The stored point of a staged row (staging has lon/lat, not geom); NULL without one."""
    p = f"{alias}." if alias else ""
    return f"CASE WHEN {p}lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint({p}lon, {p}lat), 4326) END"


def upsert(cur, kind: Kind, run_id: int, *, into_empty: bool = False, table: str | None = None,
           only: str | None = None, own: int | None = None) -> tuple[int, int]:
    """Insert new keys, update changed rows (IS DISTINCT FROM), leave equal rows alone.

    Returns (inserted, updated); ``xmax = 0`` marks a freshly inserted tuple.
    ``into_empty`` is a plain INSERT (the target, or ``table`` shaped like it,
    is empty and may lack its key). ``only`` (SQL with ``%(own)s``, see
    ``scoped.owned``) limits updates to stored rows it holds for.
    """
    t = table or kind.table.name
    cols = target_columns(kind)
    select = list(cols)
    insert_cols = list(cols)
    if kind.point in POINT:
        insert_cols.append("geom")
        select.append(_point_sql())
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
        if only is not None:
            conflict += f" AND {only}"
    else:
        conflict = "DO NOTHING"
    source = STAGING
    on_conflict = ""
    if not into_empty:
        on_conflict = f" ON CONFLICT ({key}) {conflict}"
        if compare:
            # Only new keys and changed rows go to ON CONFLICT, which locks (and so writes) every row it
            # meets, even one its WHERE leaves alone: on a re-import that is most of the table. One hash
            # join finds them; a row it drops is exactly one the upsert's WHERE would have skipped.
            on = " AND ".join(f"t.{k} = s.{k}" for k in kind.key)
            staged = ", ".join(_point_sql("s") if c == "geom" and kind.point in POINT else f"s.{c}"
                               for c in compare)
            stored = ", ".join(f"t.{c}" for c in compare)
            cur.execute(f"ANALYZE {STAGING}")  # a temporary table has no statistics: the join needs them
            cur.execute("SET LOCAL work_mem = '256MB'")
            source = (f"(SELECT s.* FROM {STAGING} s LEFT JOIN {t} t ON {on}"
                      f" WHERE t.{kind.key[0]} IS NULL OR ({stored}) IS DISTINCT FROM ({staged})) s")
    cur.execute(
        f"WITH up AS (INSERT INTO {t} ({', '.join(insert_cols)})"
        f" SELECT {', '.join(select)} FROM {source}"
        f"{on_conflict} RETURNING (xmax = 0) AS fresh)"
        " SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM up",
        {"run": run_id, "own": own},
    )
    inserted, updated = cur.fetchone()
    return int(inserted), int(updated)
