"""Customer assignment end to end through PostGIS: read, locate, write back, statistics.

Ours: ``geodata.assign.assign_customers`` (COPY out, vectorised locate, COPY
into a fresh partition and swap it in). Baseline for the write-back: pandas
``DataFrame.to_sql`` of the same placement rows into a plain table (method
'multi', 10k rows per statement) on a subsample, compared as rows per second.

    python bench/bench_assign_store.py --n 2000000 --kind h3 --res 9
"""

from __future__ import annotations

import argparse
import io
import time

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import text

from bench.common import DATA, emit, peak_rss_mb, throwaway_database


def load(engine, n: int, county: str, seed: int) -> None:
    counties = gpd.read_file(DATA / "ningxia_counties_gcj02.geojson")
    geom = counties.loc[counties["adcode"] == county, "geometry"].iloc[0]
    villages = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str, "county_code": str})
    v = villages[villages["county_code"] == county]
    rng = np.random.default_rng(seed)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO county (adcode, name, geom) VALUES (:c, 'bench', ST_Multi(ST_GeomFromText(:w, 4326)))"),
                     {"c": county, "w": geom.wkt})
        for r in v.itertuples():
            conn.execute(text("INSERT INTO village (code, name, township_code, county_code, coord_level, geom) VALUES "
                              "(:c, :n, :t, :k, :l, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                         {"c": r.code, "n": r.name, "t": r.code[:9], "k": county, "l": r.coord_level,
                          "x": r.lon_gcj02, "y": r.lat_gcj02})
        # customers clustered around the village points, 2 km spread, lognormal deposits
        pick = rng.integers(0, len(v), n)
        lon = v["lon_gcj02"].to_numpy()[pick] + rng.normal(0, 0.02, n)
        lat = v["lat_gcj02"].to_numpy()[pick] + rng.normal(0, 0.018, n)
        df = pd.DataFrame({
            "customer_id": np.char.add("C", np.arange(n).astype(str)), "county_code": county,
            "village_code": v["code"].to_numpy()[pick], "deposit_balance": np.round(rng.lognormal(9, 1.5, n), 2),
            "geom": [f"SRID=4326;POINT({x:.6f} {y:.6f})" for x, y in zip(lon, lat, strict=True)],
        })
        buf = io.StringIO()
        df.to_csv(buf, sep="\t", header=False, index=False)
        buf.seek(0)
        with conn.connection.dbapi_connection.cursor() as cur:
            cur.copy_expert("COPY customer (customer_id, county_code, village_code, deposit_balance, geom) FROM STDIN", buf)
        conn.execute(text("ANALYZE customer"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--kind", choices=["h3", "village"], default="h3")
    ap.add_argument("--res", type=int, default=9)
    ap.add_argument("--county", default="640121")
    ap.add_argument("--baseline-n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from geodata import assign, grids

    with throwaway_database() as (engine, _info):
        t = time.perf_counter()
        load(engine, args.n, args.county, args.seed)
        print(f"loaded {args.n:,} customers in {time.perf_counter() - t:.1f} s")
        with engine.begin() as conn:
            g = grids.build_grid(conn, county_code=args.county, kind=args.kind, resolution=args.res if args.kind == "h3" else None)
        print(f"grid {g['id']}: {g['cell_count']:,} {args.kind} cells")
        t = time.perf_counter()
        with engine.begin() as conn:
            rep = assign.assign_customers(conn, grid_id=g["id"], workers=2)
        total = time.perf_counter() - t
        sec = rep["seconds"]
        write_rate = args.n / sec["write"]
        print(f"ours: {total:.2f} s total; read {sec['read']} s, locate {sec['locate']} s, "
              f"write {sec['write']} s ({write_rate:,.0f} rows/s), stats {sec['stats']} s")

        # baseline write-back of the same placement rows with pandas.to_sql
        with engine.connect() as conn:
            placed = pd.read_sql(text(f"SELECT customer_id, cell_id, how FROM customer_cell WHERE grid_id = {int(g['id'])} "
                                      f"LIMIT {int(args.baseline_n)}"), conn)
        t = time.perf_counter()
        placed.to_sql("baseline_customer_cell", engine, index=False, method="multi", chunksize=10_000)
        base = time.perf_counter() - t
        base_rate = len(placed) / base
        print(f"baseline to_sql: {len(placed):,} rows in {base:.2f} s ({base_rate:,.0f} rows/s)")
    emit({
        "bench": "assign_store", "n": args.n, "kind": args.kind, "res": args.res, "cells": g["cell_count"],
        "total_s": round(total, 3), **{f"{k}_s": v for k, v in sec.items()},
        "end_to_end_points_per_s": round(args.n / total), "write_rows_per_s": round(write_rate),
        "baseline_to_sql_rows_per_s": round(base_rate), "write_ratio": round(write_rate / base_rate, 1),
        "peak_rss_mb": round(peak_rss_mb()), "by_point": rep["by_point"], "outside": rep["outside_county"],
    })


if __name__ == "__main__":
    main()
