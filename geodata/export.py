"""Write stored rows back out so a planner can check an import in QGIS or Excel.

Format by extension: ``.geojson``/``.json`` (GeoJSON), ``.gpkg`` (GeoPackage),
``.csv`` (UTF-8 with BOM, points as ``lon``/``lat`` columns, polygons as WKT), ``.parquet`` (GeoParquet
1.0: typed columns, the geometry as WKB, written in chunks so any size fits in memory; what data
platforms hold, and what ``gridmkt import customers FILE.parquet`` reads back).
Always WGS84; the ``source_crs`` column says what the file that loaded a row used. CSV times are
China time (``+08``), as imports read them; a legal entity is named by its code. CSV text cells that
a spreadsheet would run as a formula start with ``'`` (``geodata.csvsafe``); numeric columns are as stored.
"""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import String, Table, text
from sqlalchemy.engine import Engine

from geodata import tables
from geodata.csvsafe import sql_safe_text
from geodata.errors import BadInput
from geodata.geoparquet import write_parquet

EXPORT_TABLES: dict[str, tuple[Table, tuple[str, ...]]] = {
    "legal-entities": (tables.legal_entity, ("code",)),
    "counties": (tables.county, ("adcode",)),
    "townships": (tables.township, ("code",)),
    "villages": (tables.village, ("code",)),
    "outlets": (tables.outlet, ("code",)),
    "service-points": (tables.service_point, ("code",)),
    "rms": (tables.rm, ("code",)),
    "customers": (tables.customer, ("customer_id",)),
    "visits": (tables.visit, ("visited_at", "customer_id", "rm_code")),
    "leads": (tables.lead, ("lead_id",)),
    "tags": (tables.customer_tag, ("customer_id", "tag")),
}
FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".csv": "csv", ".parquet": "parquet"}
_SKIP = {"geom", "boundary"}


def _select(table: Table, key: tuple[str, ...], as_csv: bool) -> str:
    """SELECT of every attribute plus the geometry, from schema names only."""
    # A CSV is opened in a spreadsheet: its text columns are neutralised against formulas (geodata.csvsafe).
    def text_col(expr: str, alias: str) -> str:
        return sql_safe_text(expr, alias) if as_csv else f"{expr} AS {alias}"

    parts = []
    # Generated columns (customer.placement) repeat what the others say: left out.
    for col in (c for c in table.c if c.name not in _SKIP and c.computed is None):
        c = col.name
        if c == "legal_entity_id":
            # The code, under the field name imports read: an internal id would be dropped on re-import.
            parts.append(text_col("(SELECT l.code FROM legal_entity l WHERE l.id = t.legal_entity_id)", "legal_entity"))
        elif isinstance(col.type, String):
            parts.append(text_col(f"t.{c}", c))
        else:
            parts.append(f"t.{c}")
    if table.name == "legal_entity":
        parts.append(text_col("(SELECT string_agg(c.adcode, ';' ORDER BY c.adcode) FROM county c"
                              " WHERE c.legal_entity_id = t.id)", "county_codes"))
    if "geom" in table.c:
        if as_csv and table.name == "county":
            parts.append("ST_AsText(t.geom) AS wkt")
        elif as_csv:
            parts += ["ST_X(t.geom) AS lon", "ST_Y(t.geom) AS lat"]
        else:
            parts.append("ST_AsBinary(t.geom) AS geom")
    return f"SELECT {', '.join(parts)} FROM {table.name} t ORDER BY {', '.join(key)}"


def export(engine: Engine, *, kind: str, path: str | Path, chunk_size: int = 200_000) -> dict:
    """Write every stored row of ``kind`` to ``path``; returns ``{kind, path, format, rows}``."""
    if kind not in EXPORT_TABLES:
        raise BadInput(f"cannot export {kind!r}; kinds: {', '.join(EXPORT_TABLES)}")
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"{path.name}: use .geojson, .gpkg, .csv or .parquet")
    table, key = EXPORT_TABLES[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        rows = _csv(engine, _select(table, key, True), path)
    elif fmt == "parquet":
        rows = write_parquet(engine, _select(table, key, False), path, table=table, chunk_size=chunk_size)
    elif "geom" not in table.c:
        raise BadInput(f"{kind} has no geometry: export it as .csv")
    else:
        rows = _spatial(engine, _select(table, key, False), path, fmt, chunk_size)
    return {"kind": kind, "path": str(path), "format": fmt, "rows": rows}


def _csv(engine: Engine, sql: str, path: Path) -> int:
    """COPY ... TO STDOUT straight into the file (bounded memory at any size), BOM first for Excel."""
    with engine.connect() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        # Timestamps in China time, as imports read a time without offset (not the server's zone).
        cur.execute("SET LOCAL TimeZone = 'Asia/Shanghai'")
        with open(path, "wb") as f:
            f.write(b"\xef\xbb\xbf")
            cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)", f, size=1 << 20)
        rows = cur.rowcount
        conn.rollback()
    return int(rows)


def _spatial(engine: Engine, sql: str, path: Path, driver: str, chunk_size: int) -> int:
    """Chunks of rows to a GeoPackage (appended) or one GeoJSON file."""
    if path.exists():
        path.unlink()
    rows = 0
    with engine.connect().execution_options(stream_results=True) as conn:
        frames = pd.read_sql(text(sql), conn, chunksize=chunk_size)
        collected = []
        for frame in frames:
            geom = shapely.from_wkb(frame.pop("geom").map(lambda b: None if b is None else bytes(b)))
            gdf = gpd.GeoDataFrame(_plain(frame), geometry=geom, crs=4326)
            rows += len(gdf)
            if driver == "GPKG":
                gdf.to_file(path, driver="GPKG", engine="pyogrio", append=path.exists())
            else:
                collected.append(gdf)
    if not rows:
        collected = [gpd.GeoDataFrame(geometry=[], crs=4326)]
    if driver != "GPKG" or not rows:
        out = pd.concat(collected, ignore_index=True)
        gpd.GeoDataFrame(out, geometry="geometry", crs=4326).to_file(path, driver=driver, engine="pyogrio")
    return rows


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Decimals as floats and dates as ISO text: types every OGR driver writes."""
    for c in frame.columns:
        if frame[c].dtype != object:
            continue
        sample = frame[c].dropna()
        if not len(sample):
            continue
        first = sample.iloc[0]
        if isinstance(first, decimal.Decimal):
            frame[c] = frame[c].astype(float)
        elif isinstance(first, dt.date) and not isinstance(first, dt.datetime):
            frame[c] = frame[c].map(lambda d: None if d is None else d.isoformat())
    return frame
