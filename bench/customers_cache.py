"""Synthetic customers of one county for the assignment benchmarks, generated once and cached.

The rows are a binary COPY file of the ``customer`` table under ``bench/.cache`` (not in git):
reruns only load it, which takes seconds instead of the minutes that making the points did.
Customers cluster around the real village points (about 2 km spread, so some fall outside the
county), 1% have no point (placed by their village code), deposits are lognormal and a third
hold a loan.
"""

from __future__ import annotations

import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import text

from bench.common import DATA
from geodata.pgcopy import encode_binary, ewkb

CACHE = Path(__file__).resolve().parent / ".cache"
TYPES = ["text", "text", "text", "numeric:2", "numeric:2", "geometry"]
_HEAD, _TAIL = 19, 2  # binary COPY signature + flags + extension length; trailer
CHUNK = 1_000_000


def _villages(county: str) -> pd.DataFrame:
    villages = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str, "county_code": str})
    return villages[villages["county_code"] == county].reset_index(drop=True)


def cache_file(n: int, county: str, seed: int) -> tuple[Path, list[str]]:
    """The binary COPY file of ``n`` customers of ``county`` (made on first use) and its column order."""
    path = CACHE / f"customers_{county}_{n}_s{seed}.pgcopy"
    names = path.with_suffix(".columns")
    if path.exists() and names.exists():
        return path, names.read_text().split()
    CACHE.mkdir(exist_ok=True)
    v = _villages(county)
    rng = np.random.default_rng(seed)
    tmp, columns = path.with_suffix(".part"), None
    with open(tmp, "wb") as out:
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            pick = rng.integers(0, len(v), m)
            lon = v["lon_gcj02"].to_numpy()[pick] + rng.normal(0, 0.02, m)
            lat = v["lat_gcj02"].to_numpy()[pick] + rng.normal(0, 0.018, m)
            no_point = rng.random(m) < 0.01
            lon[no_point] = np.nan
            lat[no_point] = np.nan
            loan = np.where(rng.random(m) < 0.33, np.round(rng.lognormal(10, 1.2, m), 2), 0.0)
            frame = pd.DataFrame({
                "customer_id": np.char.add("C", np.arange(start, start + m).astype(str)), "county_code": county,
                "village_code": v["code"].to_numpy()[pick], "deposit_balance": np.round(rng.lognormal(9, 1.5, m), 2),
                "loan_balance": loan, "geom": None,
            })
            stream, cols = encode_binary(frame, TYPES, ewkb=(ewkb(lon, lat), no_point))
            columns = columns or cols
            assert cols == columns, cols  # the same NULL pattern in every chunk: the same field order
            body = stream.read()
            out.write(body[:_HEAD] if start == 0 else b"")
            out.write(body[_HEAD:-_TAIL])
        out.write(b"\xff\xff")
    names.write_text(" ".join(columns))
    tmp.rename(path)
    return path, columns


def load(engine, n: int, county: str, seed: int) -> None:
    """The county, its villages and ``n`` cached synthetic customers into a fresh bench database."""
    counties = gpd.read_file(DATA / "ningxia_counties_gcj02.geojson")
    geom = counties.loc[counties["adcode"] == county, "geometry"].iloc[0]
    v = _villages(county)
    t = time.perf_counter()
    path, columns = cache_file(n, county, seed)
    made = time.perf_counter() - t
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO county (adcode, name, geom) VALUES (:c, 'bench', ST_Multi(ST_GeomFromText(:w, 4326)))"),
                     {"c": county, "w": geom.wkt})
        conn.execute(text("INSERT INTO village (code, name, township_code, county_code, coord_level, geom) VALUES "
                          "(:c, :n, :t, :k, :l, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                     [{"c": r.code, "n": r.name, "t": r.code[:9], "k": county, "l": r.coord_level,
                       "x": r.lon_gcj02, "y": r.lat_gcj02} for r in v.itertuples()])
        # Indexes are built once after the load, not row by row during it.
        idx = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customer'"
                                " AND indexname NOT IN (SELECT conname FROM pg_constraint)")).all()
        for name, _ in idx:
            conn.execute(text(f'DROP INDEX "{name}"'))
        conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        with open(path, "rb") as f, conn.connection.dbapi_connection.cursor() as cur:
            cur.copy_expert(f"COPY customer ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)", f, size=8 << 20)
        for _, ddl in idx:
            conn.execute(text(ddl))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE customer"))
    print(f"customers: {n:,} loaded in {time.perf_counter() - t:.1f} s ({'made' if made > 1 else 'cached'}: {made:.1f} s)")
