"""GeoParquet 1.0 out: stored rows written in chunks with typed columns and a WKB geometry, plus the
``geo`` metadata (CRS left out: OGC:CRS84, lon/lat on WGS84, as every geometry here is stored)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Boolean, Date, DateTime, Float, Integer, Numeric, Table, text
from sqlalchemy.engine import Engine

GEOMETRY = "geometry"


def _arrow_type(col) -> pa.DataType:
    """The Arrow type a stored column is written as."""
    t = col.type
    if isinstance(t, Boolean):
        return pa.bool_()
    if isinstance(t, Integer):
        return pa.int64()
    if isinstance(t, Numeric) and not isinstance(t, Float) and t.precision and t.scale is not None:
        return pa.decimal128(t.precision, t.scale)  # money stays exact
    if isinstance(t, Numeric):
        return pa.float64()
    if isinstance(t, DateTime):
        return pa.timestamp("us", tz="UTC") if t.timezone else pa.timestamp("us")
    if isinstance(t, Date):
        return pa.date32()
    return pa.string()


def schema_of(table: Table, names: list[str]) -> pa.Schema:
    """Arrow schema for the exported ``names`` (the stored columns' types; anything else as text)."""
    fields = []
    for n in names:
        if n == "geom":
            fields.append(pa.field(GEOMETRY, pa.binary()))
        elif n in table.c:
            fields.append(pa.field(n, _arrow_type(table.c[n])))
        else:
            fields.append(pa.field(n, pa.string()))
    return pa.schema(fields)


def geo_metadata(types: set[str], bbox: list[float] | None) -> bytes:
    """The GeoParquet 1.0 ``geo`` metadata for one WKB column in OGC:CRS84."""
    col = {"encoding": "WKB", "geometry_types": sorted(types)}
    if bbox is not None:
        col["bbox"] = bbox
    return json.dumps({"version": "1.0.0", "primary_column": GEOMETRY, "columns": {GEOMETRY: col}}).encode()


def _cells(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """One chunk as an Arrow table of ``schema`` (JSON values as text)."""
    arrays = []
    for f in schema:
        src = "geom" if f.name == GEOMETRY else f.name
        values = frame[src]
        if values.dtype == object and pa.types.is_string(f.type):
            values = values.map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        elif values.dtype == object and f.type == pa.binary():
            values = values.map(lambda b: None if b is None else bytes(b))
        arrays.append(pa.array(values, type=f.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def _types_of(table: Table) -> list[str]:
    """GeoParquet geometry type names of the table's ``geom`` column ([]: any)."""
    gtype = str(getattr(table.c.geom.type, "geometry_type", "GEOMETRY") or "GEOMETRY").upper()
    return [] if gtype == "GEOMETRY" else [_NAMES.get(gtype, gtype.title())]


_NAMES = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon", "MULTIPOINT": "MultiPoint",
          "MULTILINESTRING": "MultiLineString", "MULTIPOLYGON": "MultiPolygon",
          "GEOMETRYCOLLECTION": "GeometryCollection"}


def write_parquet(engine: Engine, sql: str, path: Path, *, table: Table, chunk_size: int = 200_000) -> int:
    """Rows of ``sql`` (its geometry as WKB in ``geom``) to a GeoParquet file; returns how many.

    Written to a ``.part`` file beside ``path`` and renamed when complete: a failed export leaves no
    half file under the name asked for.
    """
    rows = 0
    tmp = path.with_name(path.name + ".part")
    writer = None
    try:
        with engine.connect().execution_options(stream_results=True) as conn:
            result = conn.execute(text(sql))
            schema = schema_of(table, list(result.keys()))
            if GEOMETRY in schema.names:
                schema = schema.with_metadata({b"geo": geo_metadata(set(_types_of(table)), None)})
            writer = pq.ParquetWriter(tmp, schema, compression="zstd")
            while batch := result.fetchmany(chunk_size):
                frame = pd.DataFrame(batch, columns=list(result.keys()))
                writer.write_table(_cells(frame, schema))
                rows += len(frame)
        writer.close()
        writer = None
        tmp.replace(path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows
