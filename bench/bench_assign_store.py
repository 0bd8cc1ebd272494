"""Customer assignment end to end through PostGIS: read, locate, write back, per-cell statistics.

Ours: ``geodata.assign.assign_customers`` for every customer of one county, as
``gridmkt assign customers`` runs it (COPY out, vectorised locate, COPY into a
fresh partition swapped in, statistics counted from the placement). Baseline, in
the same run on a sample of ``--baseline-n`` customers: the idiomatic geopandas
path (``read_postgis`` of the customers and the cells, ``sjoin`` within,
``to_postgis`` of the placement, per-cell statistics by ``groupby`` written with
``to_sql``); compared as customers per second, and the two placements compared
customer by customer on the sample.

Customers are synthetic, generated once and cached under ``bench/.cache``
(``bench/customers_cache.py``). Besides wall seconds per phase it reports the
CPU seconds of this process and of the database server: on a shared machine
wall time stretches with the load, CPU time much less.

    python bench/bench_assign_store.py --n 10000000 --kind h3 --res 9
"""

from __future__ import annotations

import argparse
import os
import time

import geopandas as gpd
from sqlalchemy import text

from bench.common import cluster_cpu_s, emit, peak_rss_mb, throwaway_database
from bench.customers_cache import load

__all__ = ["load"]  # bench_gap_store loads its customers through here


def baseline(engine, grid_id: int, county: str, n: int) -> dict:
    """geopandas: read_postgis, sjoin, to_postgis, groupby statistics; seconds per phase."""
    t0 = time.perf_counter()
    pts = gpd.read_postgis(text(
        "SELECT customer_id, deposit_balance, loan_balance, geom FROM customer WHERE county_code = :c "
        "AND geom IS NOT NULL ORDER BY customer_id LIMIT :n"), engine, params={"c": county, "n": n}, geom_col="geom")
    cells = gpd.read_postgis(text("SELECT cell_id, geom FROM cell WHERE grid_id = :g"), engine,
                             params={"g": grid_id}, geom_col="geom")
    t1 = time.perf_counter()
    joined = gpd.sjoin(pts, cells, how="left", predicate="within").drop_duplicates("customer_id")
    t2 = time.perf_counter()
    out = joined[["customer_id", "cell_id", "geom"]].set_geometry("geom")
    out.to_postgis("baseline_customer_cell", engine, if_exists="replace", index=False, chunksize=10_000)
    t3 = time.perf_counter()
    stats = joined.dropna(subset=["cell_id"]).groupby("cell_id").agg(
        customers=("customer_id", "size"), deposit=("deposit_balance", "sum"), loan=("loan_balance", "sum"))
    stats.to_sql("baseline_cell_stat", engine, if_exists="replace")
    t4 = time.perf_counter()
    return {"n": len(pts), "read": t1 - t0, "locate": t2 - t1, "write": t3 - t2, "stats": t4 - t3,
            "total": t4 - t0, "placed": dict(zip(joined["customer_id"], joined["cell_id"], strict=True))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--kind", choices=["h3", "village"], default="h3")
    ap.add_argument("--res", type=int, default=9)
    ap.add_argument("--county", default="640121")
    ap.add_argument("--baseline-n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from geodata import assign, grids

    with throwaway_database() as (engine, info):
        load(engine, args.n, args.county, args.seed)
        with engine.begin() as conn:
            g = grids.build_grid(conn, county_code=args.county, kind=args.kind,
                                 resolution=args.res if args.kind == "h3" else None)
            # The stored point lookup is built with the grid version, as `gridmkt grid build` leaves it.
            cells = grids.load_cells(conn, grid_id=g["id"], with_stats=False)
            grids.grid_locator(conn, grid_id=g["id"], kind=args.kind, cells=cells)
        print(f"grid {g['id']}: {g['cell_count']:,} {args.kind} cells")
        s0, c0, t = cluster_cpu_s(info), time.process_time(), time.perf_counter()
        with engine.begin() as conn:
            rep = assign.assign_customers(conn, grid_id=g["id"], workers=2)
        total = time.perf_counter() - t
        client_cpu, server_cpu = time.process_time() - c0, cluster_cpu_s(info) - s0
        sec = rep["seconds"]
        print(f"ours: {rep['customers']:,} customers in {total:.2f} s ({rep['customers'] / total:,.0f}/s): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in sec.items())
              + f"; CPU s: this process {client_cpu:.1f}, database {server_cpu:.1f}")

        base = baseline(engine, g["id"], args.county, args.baseline_n)
        with engine.connect() as conn:
            ours = dict(conn.execute(text(f"SELECT customer_id, cell_id FROM customer_cell_g{int(g['id'])} "
                                          "WHERE customer_id = ANY(:ids)"), {"ids": list(base["placed"])}).all())
        # Where sjoin finds a cell ours must agree (ours also places points outside the county by village code).
        differ = sum(1 for k, v in base["placed"].items() if isinstance(v, str) and ours.get(k) != v)
        base_rate = base["n"] / base["total"]
        print(f"baseline (geopandas) on {base['n']:,} customers: {base['total']:.2f} s ({base_rate:,.0f}/s): "
              + ", ".join(f"{k} {base[k]:.2f} s" for k in ("read", "locate", "write", "stats"))
              + f"; customers sjoin placed in another cell than ours: {differ}")
        rate = rep["customers"] / total
        print(f"ratio: {rate / base_rate:.1f}x customers/s; peak RSS {peak_rss_mb():.0f} MB; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    emit({
        "bench": "assign_store", "n": rep["customers"], "kind": args.kind, "res": args.res, "cells": g["cell_count"],
        "total_s": round(total, 2), **{f"{k}_s": v for k, v in sec.items()},
        "client_cpu_s": round(client_cpu, 1), "server_cpu_s": round(server_cpu, 1),
        "customers_per_s": round(rate), "baseline_n": base["n"], "baseline_total_s": round(base["total"], 2),
        **{f"baseline_{k}_s": round(base[k], 2) for k in ("read", "locate", "write", "stats")},
        "baseline_customers_per_s": round(base_rate), "ratio": round(rate / base_rate, 1),
        "baseline_differing": differ, "by_point": rep["by_point"], "by_village_code": rep["by_village_code"],
        "outside": rep["outside_county"], "peak_rss_mb": round(peak_rss_mb()),
        "load_avg": round(os.getloadavg()[0], 1),
    })


if __name__ == "__main__":
    main()
