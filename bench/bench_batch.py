"""Batch assignment from GeoParquet over all 22 Ningxia counties: one process against a LocalCluster of
worker processes, same code (``api.operations.batch.run``), same run.

Synthetic customers clustered around the real villages of every county, with their county code and
lognormal balances, are written once as GeoParquet under ``bench/.cache/`` (not in git) and reused. For
each size: wall time and points/s of the placement and of the write-back (staging COPY + each county's
partition swap and statistics), and each worker's peak memory, which must not grow with the size.

    python bench/bench_batch.py --sizes 50000000 --workers 2      # the issue's size
    python bench/bench_batch.py --sizes 1000000,2000000           # two sizes on a busy 2-core machine
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from bench.common import DATA, emit, throwaway_database

CACHE = Path(__file__).resolve().parent / ".cache"
TARGET = 600_000_000


def synth(n: int, seed: int = 19) -> Path:
    """GeoParquet of ``n`` customers over every county's villages (cached by size and seed)."""
    path = CACHE / f"batch_customers_{n}_{seed}.parquet"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    v = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str, "county_code": str})
    rng = np.random.default_rng(seed)
    schema = pa.schema([("customer_id", pa.string()), ("county_code", pa.string()), ("village_code", pa.string()),
                        ("deposit_balance", pa.float64()), ("loan_balance", pa.float64()), ("geometry", pa.binary())],
                       metadata={b"geo": b'{"version": "1.0.0", "primary_column": "geometry", "columns":'
                                         b' {"geometry": {"encoding": "WKB", "geometry_types": ["Point"]}}}'})
    tmp = path.with_suffix(".part")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for start in range(0, n, 1_000_000):
            k = min(1_000_000, n - start)
            pick = rng.integers(0, len(v), k)
            lon = v["lon_wgs84"].to_numpy()[pick] + rng.normal(0, 0.02, k)
            lat = v["lat_wgs84"].to_numpy()[pick] + rng.normal(0, 0.018, k)
            w.write_table(pa.table({
                "customer_id": pa.array(np.char.add("B", np.arange(start, start + k).astype(str))),
                "county_code": pa.array(v["county_code"].to_numpy()[pick]),
                "village_code": pa.array(v["code"].to_numpy()[pick]),
                "deposit_balance": np.round(rng.lognormal(9, 1.5, k), 2),
                "loan_balance": np.round(rng.lognormal(7, 2.0, k), 2),
                "geometry": pa.array(shapely.to_wkb(shapely.points(lon, lat)), type=pa.binary()),
            }, schema=schema), row_group_size=250_000)
    tmp.replace(path)
    return path


def setup(engine, res: int) -> int:
    """The 22 counties, their villages, and an H3 grid per county; returns how many grids."""
    from geodata import grids
    from geodata.importers import run_import

    tmp = CACHE / "rejects"
    run_import(engine, kind="counties", path=DATA / "ningxia_counties_gcj02.geojson", user="bench",
               crs="gcj02", rejects_dir=tmp)
    run_import(engine, kind="villages", path=DATA / "ningxia_villages.csv", user="bench", crs="gcj02",
               rejects_dir=tmp, mapping={"street_code": "township_code", "street_name": "township_name",
                                         "lon_gcj02": "lon", "lat_gcj02": "lat"})
    with engine.begin() as conn:
        codes = [r[0] for r in conn.exec_driver_sql("SELECT adcode FROM county ORDER BY 1")]
    for c in codes:
        with engine.begin() as conn:
            grids.build_grid(conn, county_code=c, kind="h3", resolution=res)
    return len(codes)


def _peak_mb() -> float:
    """This process's own peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_once(engine, path: Path, *, workers: int, rows: int) -> dict:
    from distributed import Client, LocalCluster

    from api.operations import batch as batch_ops

    # One process: the scheduler and a single worker thread inside this process, no pickling.
    cluster = (LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
               if workers == 0 else
               LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            memory_limit=0))
    client = Client(cluster)
    try:
        t0 = time.perf_counter()
        out = batch_ops.run(engine, actor="bench", client=client, parquet=[path], rows_per_part=rows)
        wall = time.perf_counter() - t0
        peaks = list(client.run(_peak_mb).values()) if workers else [_peak_mb()]
    finally:
        client.close()
        cluster.close()
    n, s = out["customers"], out["seconds"]
    return {"workers": workers or 1, "in_process": workers == 0, "customers": n, "wall_s": round(wall, 2),
            "place_s": s["place"], "place_points_per_s": round(n / s["place"]),
            "write_back_s": s["write_back"], "write_back_rows_per_s": round(n / s["write_back"]),
            "peak_rss_mb_per_worker": [round(p) for p in peaks]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="50000000", help="comma-separated customer counts")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--res", type=int, default=8)
    ap.add_argument("--partition-rows", type=int, default=500_000)
    ap.add_argument("--skip-single", action="store_true", help="only the LocalCluster runs")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    files = {n: synth(n) for n in sizes}
    runs = []
    with throwaway_database() as (engine, _):
        t = time.perf_counter()
        grids = setup(engine, args.res)
        print(f"setup: {grids} counties with an H3 grid (res {args.res}) in {time.perf_counter() - t:.0f} s")
        for n in sizes:
            for w in ([] if args.skip_single else [0]) + [args.workers]:
                r = run_once(engine, files[n], workers=w, rows=args.partition_rows)
                print(r, flush=True)
                runs.append(r)
    emit(summary(runs, args.workers))


def summary(runs: list[dict], workers: int) -> dict:
    """The figures, the ratio of the two ways on the biggest size, and the workers 600M customers need in an hour."""
    big = max(r["customers"] for r in runs)
    dist = next(r for r in runs if r["customers"] == big and not r["in_process"])
    single = next((r for r in runs if r["customers"] == big and r["in_process"]), None)
    per_worker_place = dist["place_points_per_s"] / dist["workers"]
    # Placement scales with workers; the write-back is PostgreSQL's work (COPY, index, statistics), so the
    # estimate counts it at the measured rate per worker as well: the server must grow with the workers.
    per_worker = 1.0 / (1.0 / per_worker_place + dist["workers"] / dist["write_back_rows_per_s"])
    need = int(np.ceil(TARGET / 3600.0 / per_worker))
    return {"bench": "batch", "runs": runs, "biggest": big,
            "speedup_place": None if single is None else round(dist["place_points_per_s"] / single["place_points_per_s"], 2),
            "speedup_wall": None if single is None else round(single["wall_s"] / dist["wall_s"], 2),
            "per_worker_place_points_per_s": round(per_worker_place),
            "per_worker_end_to_end_rows_per_s": round(per_worker),
            "workers_for_600M_in_1h": need}


if __name__ == "__main__":
    main()
