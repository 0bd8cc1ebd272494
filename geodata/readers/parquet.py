"""GeoParquet (and plain Parquet) tables read as planners' tables: the same chunks of strings under the
file's own column names plus ``_line`` (here the row number, 1 = the first row), so the importers check
them exactly as they check a CSV.

Points come from the file's primary geometry column (GeoParquet ``geo`` metadata, WKB or GeoArrow
``point`` encoding, in WGS84) as ``lon``/``lat`` text; a file without geometry gives its lon/lat columns
as they are. A geometry that is not a point is rejected with its row and the field ``geometry``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from geodata.errors import BadInput
from geodata.readers.headers import LINE, _map_columns, aliases

PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")


def _is_wgs84(crs: object) -> bool:
    """True for OGC:CRS84 or EPSG:4326 (lon/lat on WGS84), given as PROJJSON or text."""
    import pyproj

    try:
        c = pyproj.CRS.from_user_input(json.dumps(crs) if isinstance(crs, dict) else crs)
    except pyproj.exceptions.CRSError:
        return False
    return c.equals("OGC:CRS84", ignore_axis_order=True)


def _text_types(t: pa.DataType) -> bool:
    """Column types read as text cells (nested and binary columns are not a planner's field)."""
    return not (pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
                or pa.types.is_fixed_size_binary(t))


@dataclass
class ParquetSource:
    """An opened Parquet file with the face of :class:`geodata.readers.TableSource`."""

    path: Path
    columns: list[str]  # as the rejects file and the mapping name them (derived lon/lat included)
    mapping: dict[str, str]  # field -> column
    ignored: list[str]
    geometry: str | None  # the primary geometry column, if any
    geometry_encoding: str | None
    lonlat: tuple[str, str] | None  # names of the columns derived from the geometry
    rows: int
    format: str = "parquet"
    encoding: str | None = None
    header_line: int = 0  # no header line: ``_line`` is the row number
    sheet: str | None = None
    invalid_rows: list = field(default_factory=list)  # (row, text, reason, field)
    mixed_lines: list = field(default_factory=list)
    _done: int = 0

    def fraction_read(self) -> float:
        """Fraction of the rows read so far (for progress bars)."""
        return min(1.0, self._done / self.rows) if self.rows else 0.0

    def chunks(self, chunk_size: int = 200_000) -> Iterator[pd.DataFrame]:
        """DataFrames of strings (``''`` for empty cells) under the column names, plus ``_line``."""
        wanted = [c for c in self.columns if c not in (self.lonlat or ())]
        read = wanted + ([self.geometry] if self.geometry else [])
        pf = pq.ParquetFile(self.path)
        start = 0
        for batch in pf.iter_batches(batch_size=chunk_size, columns=read):
            n = batch.num_rows
            frame = pd.DataFrame({c: _as_text(batch.column(c)) for c in wanted}, dtype="str")
            frame[LINE] = np.arange(start + 1, start + n + 1, dtype=np.int64)
            if self.geometry:
                frame = self._points(frame, batch.column(self.geometry))
            start += n
            self._done = start
            yield frame

    def _points(self, frame: pd.DataFrame, col: pa.Array) -> pd.DataFrame:
        """``lon``/``lat`` text from the geometry; rows whose geometry is no point become rejects."""
        if self.geometry_encoding == "point":  # GeoArrow: struct<x, y>
            x = pc.struct_field(col, "x").to_numpy(zero_copy_only=False).astype(float)
            y = pc.struct_field(col, "y").to_numpy(zero_copy_only=False).astype(float)
            missing = np.asarray(col.is_null(), dtype=bool)
            x[missing] = np.nan
            y[missing] = np.nan
            bad = np.zeros(len(frame), dtype=bool)
            geoms = None
        else:
            geoms = shapely.from_wkb(col.to_numpy(zero_copy_only=False), on_invalid="ignore")
            kind = shapely.get_type_id(geoms)
            bad = (kind != 0) & (kind != -1)  # -1: a missing geometry (no coordinates, as an empty lon/lat)
            x, y = shapely.get_x(geoms), shapely.get_y(geoms)
        lon, lat = self.lonlat
        frame[lon] = _float_text(x)
        frame[lat] = _float_text(y)
        if bad.any():
            names = shapely.get_type_id(geoms[bad])
            for line, wkt, tid in zip(frame[LINE].to_numpy()[bad], shapely.to_wkt(geoms[bad], trim=True,
                                                                                  rounding_precision=7), names,
                                      strict=True):
                what = _TYPES.get(int(tid), "not a point")
                self.invalid_rows.append((int(line), (wkt or "")[:200],
                                          f"the geometry is a {what}, not a point: give each customer's point",
                                          self.geometry))
            frame = frame[~bad].reset_index(drop=True)
        return frame


_TYPES = {1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
          6: "MultiPolygon", 7: "GeometryCollection"}


def _float_text(v: np.ndarray) -> pd.Series:
    """Shortest round-trip text of each float ('' for NaN), as a CSV export holds it."""
    arr = pa.array(v, from_pandas=True)
    return pd.Series(pc.fill_null(pc.cast(arr, pa.string()), ""), dtype="str")


def _as_text(col: pa.Array) -> pd.Series:
    """A column as text cells: numbers, dates and flags as a CSV holds them, nulls as ''."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = pc.cast(col, pa.string())
    return pd.Series(pc.fill_null(col, ""), dtype="str")


def _geo_column(schema: pa.Schema, name: str) -> tuple[str | None, str | None]:
    """The primary geometry column and its encoding, from the GeoParquet ``geo`` metadata; checks its CRS."""
    meta = (schema.metadata or {}).get(b"geo")
    if not meta:
        return None, None
    try:
        geo = json.loads(meta)
        primary = geo["primary_column"]
        spec = geo["columns"][primary]
    except (ValueError, KeyError, TypeError):
        raise BadInput(f"{name}: its GeoParquet metadata ('geo') cannot be read") from None
    encoding = str(spec.get("encoding", "WKB")).lower()
    if encoding not in ("wkb", "point"):
        raise BadInput(f"{name}: geometry column {primary!r} is encoded as {spec.get('encoding')!r};"
                       " points are read as WKB or GeoArrow 'point'")
    # No 'crs' key means OGC:CRS84 (GeoParquet 1.0); anything else must be lon/lat on WGS84.
    if "crs" in spec and (spec["crs"] is None or not _is_wgs84(spec["crs"])):
        crs = spec["crs"]
        label = "undefined" if crs is None else (crs.get("name") if isinstance(crs, dict) else str(crs))
        raise BadInput(f"{name}: geometry column {primary!r} is in {label} coordinates; write it in WGS84"
                       " (EPSG:4326 / OGC:CRS84), e.g. gdf.to_crs(4326).to_parquet(...)")
    return primary, encoding


def open_parquet(path: Path, *, kind: str, fields: tuple[str, ...],
                 mapping: Mapping[str, str] | None = None) -> ParquetSource:
    """Open a (Geo)Parquet file and map its columns to ``fields`` as :func:`open_table` does."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"{path.name}: cannot be read as a Parquet file ({exc})") from None
    schema = pf.schema_arrow
    geom, encoding = _geo_column(schema, path.name)
    plain = [f.name for f in schema if f.name != geom and _text_types(f.type)]
    if not plain and geom is None:
        raise BadInput(f"{path.name}: the file has no columns to import")
    col_to_field = _map_columns(plain, aliases(kind, tuple(fields)), fields, dict(mapping or {}), path.name)
    lonlat = None
    if geom is not None and "lon" in fields:
        # The geometry gives the point; lon/lat columns of the same file are left aside.
        col_to_field = {c: f for c, f in col_to_field.items() if f not in ("lon", "lat")}
        lonlat = tuple(n if n not in plain else f"{geom}_{n}" for n in ("lon", "lat"))
        col_to_field.update({lonlat[0]: "lon", lonlat[1]: "lat"})
    columns = plain + list(lonlat or ())
    ignored = [c for c in schema.names if c not in col_to_field and c not in (lonlat or ())]
    return ParquetSource(
        path=path, columns=columns, mapping={f: c for c, f in col_to_field.items()}, ignored=ignored,
        geometry=geom if lonlat else None, geometry_encoding=encoding, lonlat=lonlat,
        rows=pf.metadata.num_rows,
    )
