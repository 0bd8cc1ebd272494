"""Customers in partitions for the batch mode: from the store (one county, or a hash slice of a big
one, read with COPY) or from GeoParquet files (runs of row groups). Every partition reads as the same
frame: customer_id, lon, lat, village_code, county_code, deposit and loan in cents (exact sums); a Parquet
partition also gives each row's legal entity code (``legal_entity``), when the file has one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from geodata.assign import fetch_customers
from geodata.errors import BadInput


@dataclass(frozen=True)
class StorePart:
    """Customers of one county from the store; with ``of`` > 1 only hash slice ``slice`` of ``of``."""

    county_code: str
    slice: int = 0
    of: int = 1


@dataclass(frozen=True)
class ParquetPart:
    """Row groups ``row_groups`` of one (Geo)Parquet file."""

    path: str
    row_groups: tuple[int, ...]
    rows: int


def store_parts(conn: Connection, *, counties: list[str], rows_per_part: int) -> list[StorePart]:
    """Partitions of the stored customers of ``counties``: a county, or slices of about ``rows_per_part``."""
    counts = dict(conn.execute(text("SELECT county_code, count(*) FROM customer WHERE county_code = ANY(:c)"
                                    " GROUP BY county_code"), {"c": list(counties)}).all())
    out = []
    for c in counties:
        k = max(1, math.ceil(counts.get(c, 0) / max(1, rows_per_part)))
        out += [StorePart(c, i, k) for i in range(k)]
    return out


def read_store(engine: Engine, part: StorePart) -> pd.DataFrame:
    """One store partition: ``geodata.assign.fetch_customers``'s read (COPY; rows of another legal entity than
    the county's left out) of its county or hash slice, with the county's code on every row."""
    with engine.connect() as conn:
        frame = fetch_customers(conn, county_code=part.county_code, part=part.slice, parts=part.of)
    frame.insert(4, "county_code", _text(pa.repeat(pa.scalar(part.county_code, pa.large_string()), len(frame))))
    return frame


def parquet_parts(paths: list[Path], *, rows_per_part: int) -> list[ParquetPart]:
    """Runs of whole row groups of about ``rows_per_part`` rows, file by file."""
    out = []
    for path in paths:
        try:
            meta = pq.read_metadata(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise BadInput(f"{Path(path).name}: cannot be read as a Parquet file ({exc})") from None
        run, rows = [], 0
        for i in range(meta.num_row_groups):
            run.append(i)
            rows += meta.row_group(i).num_rows
            if rows >= rows_per_part:
                out.append(ParquetPart(str(path), tuple(run), rows))
                run, rows = [], 0
        if run:
            out.append(ParquetPart(str(path), tuple(run), rows))
    return out


def read_parquet(part: ParquetPart) -> pd.DataFrame:
    """One Parquet partition: points from the GeoParquet geometry (or lon/lat columns), amounts in cents."""
    pf = pq.ParquetFile(part.path)
    names = set(pf.schema_arrow.names)
    geo = pf.schema_arrow.metadata.get(b"geo") if pf.schema_arrow.metadata else None
    import json

    geom = json.loads(geo)["primary_column"] if geo else None
    for need in ("customer_id", "county_code"):
        if need not in names:
            raise BadInput(f"{Path(part.path).name}: no {need} column (batch input needs customer_id and"
                           " county_code, as gridmkt export customers writes them)")
    cols = [c for c in ("customer_id", "village_code", "county_code", "deposit_balance", "loan_balance",
                        "lon", "lat", "legal_entity") if c in names] + ([geom] if geom else [])
    t = pf.read_row_groups(list(part.row_groups), columns=cols)
    if geom:
        lon, lat = points_of(t.column(geom).combine_chunks())
    else:
        lon = _floats(t, "lon")
        lat = _floats(t, "lat")
    n = t.num_rows

    def text_col(name):
        if name not in t.column_names:
            return pa.nulls(n, pa.large_string())
        return pc.cast(t.column(name).combine_chunks(), pa.large_string())

    def cents(name):
        if name not in t.column_names:
            return pa.array(np.zeros(n, dtype=np.int64))
        v = pc.cast(t.column(name).combine_chunks(), pa.float64()).to_numpy(zero_copy_only=False)
        return pa.array(np.rint(np.nan_to_num(v) * 100).astype(np.int64))

    frame = _frame(pa.table({"customer_id": text_col("customer_id"), "lon": pa.array(lon), "lat": pa.array(lat),
                             "village_code": text_col("village_code"), "county_code": text_col("county_code"),
                             "deposit_cents": cents("deposit_balance"), "loan_cents": cents("loan_balance")}))
    frame["legal_entity"] = _text(text_col("legal_entity"))
    return frame


def points_of(wkb: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """lon, lat of WKB points (NaN where missing or not a point): straight from the bytes when every value
    is a little-endian 2D point (21 bytes), as writers of point columns make them; else through shapely."""
    wkb = pc.cast(wkb, pa.binary())
    n = len(wkb)
    offsets = np.frombuffer(wkb.buffers()[1], dtype=np.int32, count=n + 1, offset=wkb.offset * 4)
    data = np.frombuffer(wkb.buffers()[2], dtype=np.uint8) if wkb.buffers()[2] is not None else np.empty(0, np.uint8)
    if n and wkb.null_count == 0 and offsets[-1] - offsets[0] == 21 * n:
        rows = data[offsets[0]:offsets[-1]].reshape(n, 21)
        if (rows[:, 0] == 1).all() and (rows[:, 1:5].view("<u4")[:, 0] == 1).all():
            xy = np.ascontiguousarray(rows[:, 5:]).view("<f8")
            return xy[:, 0].copy(), xy[:, 1].copy()
    g = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False), on_invalid="ignore")
    point = shapely.get_type_id(g) == 0
    return np.where(point, shapely.get_x(g), np.nan), np.where(point, shapely.get_y(g), np.nan)


def _floats(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, np.nan)
    return pc.cast(t.column(name), pa.float64()).to_numpy(zero_copy_only=False).astype(float)


def _text(a) -> pd.Series:
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    return pd.Series(pd.arrays.ArrowExtensionArray(a), dtype=pd.ArrowDtype(pa.large_string()))


def _frame(t: pa.Table) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": _text(t["customer_id"]), "lon": t["lon"].to_numpy().astype(float),
        "lat": t["lat"].to_numpy().astype(float), "village_code": _text(t["village_code"]),
        "county_code": _text(t["county_code"]),
        "deposit_cents": t["deposit_cents"].to_numpy().astype(np.int64),
        "loan_cents": t["loan_cents"].to_numpy().astype(np.int64),
    })
