"""Batch assignment from GeoParquet over all 22 Ningxia counties: one process against a LocalCluster of
worker processes, same code, same run.

Synthetic customers clustered around the real villages of every county, with their county code and
lognormal balances, are written once as GeoParquet under ``bench/.cache/`` (git-ignored), a million rows
at a time from one seeded generator (memory stays bounded whatever the size), and reused.

Two kinds of run per size and way:

- ``place`` (``--sizes``): read the GeoParquet partitions, locate every customer with the shipped lookups
  and sum the per-cell totals across partitions (``geodata.batch.tasks.place`` without staging): the
  part that scales with workers.
- ``full`` (``--full-sizes``): ``gridmkt batch assign --parquet`` itself (``api.operations.batch.run``):
  the above, each partition's rows COPYed to staging, then every county's write-back (partition built in
  cell order, indexes, statistics) in its own transaction.

For each: wall seconds, points/s, CPU seconds of each worker (wall time stretches with the load of a
shared machine, CPU time much less) and of the database server, and each worker's peak resident memory
(reset before each run), which must not grow with the size. The last line is one JSON object, with an
estimate of the workers that 600M customers need within one hour.

    python bench/bench_batch.py --sizes 10000000,50000000 --full-sizes 10000000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from bench.common import DATA, cluster_cpu_s, emit, throwaway_database

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
    """This process's peak resident memory since :func:`_reset_peak` (VmHWM; unlike ru_maxrss, resettable)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> None:
    """Start this process's peak resident memory afresh (Linux: 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def place_only(engine, client, path: Path, rows: int) -> dict:
    """Read, locate and sum over the GeoParquet partitions on ``client``'s workers; nothing written."""
    from distributed import as_completed

    from geodata.batch import sources, store, tasks

    t0 = time.perf_counter()
    with engine.begin() as conn:
        bundles = {int(g["id"]): store.bundle(conn, g) for g in store.target_grids(conn)}
    parts = sources.parquet_parts([path], rows_per_part=rows)
    shipped = client.scatter(bundles, broadcast=True, hash=False)
    t1 = time.perf_counter()
    url = engine.url.render_as_string(hide_password=False)
    futures = [client.submit(tasks.place, p, {g: shipped[g] for g in bundles}, url, None, stage=False, pure=False)
               for p in parts]
    sums: dict = {}
    n = 0
    for fut in as_completed(futures):
        res = fut.result()
        fut.release()
        n += res["rows"]
        for gid, part in res["grids"].items():
            sums[gid] = tasks.add(sums.get(gid), part)
    placed = int(sum(int(h.sum()) for _, h in sums.values()))
    return {"customers": n, "placed": placed, "partitions": len(parts),
            "seconds": {"ship": round(t1 - t0, 3), "place": round(time.perf_counter() - t1, 3)}}


def run_once(engine, info, path: Path, *, workers: int, rows: int, kind: str) -> dict:
    from distributed import Client, LocalCluster

    from api.operations import batch as batch_ops

    # One process: the scheduler and a single worker thread inside this process, no pickling.
    cluster = (LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
               if workers == 0 else
               LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            memory_limit=0))
    client = Client(cluster)
    try:
        client.run(_reset_peak) if workers else _reset_peak()
        cpu0 = client.run(_cpu_s) if workers else {"self": _cpu_s()}
        s0, load0 = cluster_cpu_s(info), os.getloadavg()[0]
        t0 = time.perf_counter()
        marks: dict = {}

        def placed(fraction, message=""):  # the moment the last partition is placed: CPU so far
            if fraction >= 0.8 and not marks:
                marks.update(cpu=client.run(_cpu_s) if workers else {"self": _cpu_s()}, server=cluster_cpu_s(info))

        if kind == "place":
            out = place_only(engine, client, path, rows)
        else:
            out = batch_ops.run(engine, actor="bench", client=client, parquet=[path], rows_per_part=rows,
                                progress=placed)
        wall = time.perf_counter() - t0
        cpu1 = client.run(_cpu_s) if workers else {"self": _cpu_s()}
        server = cluster_cpu_s(info) - s0
        peaks = list(client.run(_peak_mb).values()) if workers else [_peak_mb()]
    finally:
        client.close()
        cluster.close()
    n, s = out["customers"], out["seconds"]
    cpu = [round(cpu1[k] - cpu0[k], 1) for k in cpu0]
    r = {"kind": kind, "workers": workers or 1, "in_process": workers == 0, "customers": n, "wall_s": round(wall, 1),
         "place_s": s["place"], "place_points_per_s": round(n / s["place"]),
         "worker_cpu_s": cpu, "points_per_worker_cpu_s": round(n / max(sum(cpu), 1e-9)),
         "server_cpu_s": round(server, 1), "peak_rss_mb_per_worker": [round(p) for p in peaks],
         "load_avg": [round(load0, 1), round(os.getloadavg()[0], 1)]}
    if kind == "full":  # CPU seconds of the write-back alone (after the last partition was placed)
        r.update({"write_back_s": s["write_back"], "write_back_rows_per_s": round(n / s["write_back"]),
                  "write_back_worker_cpu_s": [round(cpu1[k] - marks["cpu"][k], 1) for k in cpu0],
                  "write_back_server_cpu_s": round(server + s0 - marks["server"], 1)})
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50000000", help="comma-separated customer counts: locate+aggregate runs")
    ap.add_argument("--full-sizes", default="50000000",
                    help="comma-separated customer counts: full runs with the write-back ('' for none)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--res", type=int, default=8)
    ap.add_argument("--partition-rows", type=int, default=1_000_000)
    ap.add_argument("--skip-single", action="store_true", help="only the LocalCluster runs")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    full = [int(x) for x in args.full_sizes.split(",") if x]
    t = time.perf_counter()
    files = {n: synth(n) for n in sorted(set(sizes + full))}
    print(f"GeoParquet ready in {time.perf_counter() - t:.0f} s: "
          + ", ".join(f"{n:,} rows {files[n].stat().st_size / 1e6:.0f} MB" for n in files), flush=True)
    runs = []
    with throwaway_database() as (engine, info):
        t = time.perf_counter()
        grids = setup(engine, args.res)
        print(f"setup: {grids} counties with an H3 grid (res {args.res}) in {time.perf_counter() - t:.0f} s", flush=True)
        for kind, todo in (("place", sizes), ("full", full)):
            for n in todo:
                for w in ([] if args.skip_single else [0]) + [args.workers]:
                    r = run_once(engine, info, files[n], workers=w, rows=args.partition_rows, kind=kind)
                    print(r, flush=True)
                    runs.append(r)
    emit(summary(runs))


def summary(runs: list[dict]) -> dict:
    """The figures, the ratio of the two ways, and the workers 600M customers need within an hour."""
    out: dict = {"bench": "batch", "runs": runs, "target": TARGET}
    for kind in ("place", "full"):
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            continue
        big = max(r["customers"] for r in mine)
        dist = next((r for r in mine if r["customers"] == big and not r["in_process"]), None)
        single = next((r for r in mine if r["customers"] == big and r["in_process"]), None)
        if dist is None:
            continue
        k = dist["workers"]
        fig = {"customers": big, "per_worker_points_per_s": round(dist["place_points_per_s"] / k),
               "points_per_worker_cpu_s": dist["points_per_worker_cpu_s"],
               "peak_rss_mb_per_worker": dist["peak_rss_mb_per_worker"]}
        if single is not None:
            fig["speedup_place"] = round(dist["place_points_per_s"] / single["place_points_per_s"], 2)
            fig["speedup_wall"] = round(single["wall_s"] / dist["wall_s"], 2)
        if kind == "full":
            fig["write_back_rows_per_s"] = dist["write_back_rows_per_s"]
            fig["server_cpu_s_per_million"] = round(dist["server_cpu_s"] / big * 1e6, 1)
        out[kind] = fig
    # Placement scales with the workers: from a worker's measured rate (wall, on this loaded machine, and per
    # CPU second, i.e. a worker with a core of its own), the workers that place 600M within an hour.
    place = out.get("place") or out.get("full")
    if place:
        per_s = TARGET / 3600.0
        out["workers_for_600M_in_1h"] = {
            "from_wall_rate": int(np.ceil(per_s / place["per_worker_points_per_s"])),
            "from_cpu_rate": int(np.ceil(per_s / place["points_per_worker_cpu_s"])),
        }
    if "full" in out:  # the write-back is PostgreSQL's work: the server CPU it takes per customer
        out["db_cores_for_600M_in_1h"] = int(np.ceil(out["full"]["server_cpu_s_per_million"] * TARGET / 1e6 / 3600))
    return out


if __name__ == "__main__":
    main()
