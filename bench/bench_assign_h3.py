"""Benchmark: assign synthetic customers to a clipped H3 grid (res 9, with res 8 and 7 derived).

Ours: grid.locate.H3Locator.locate_multi. Baseline: geopandas.sjoin(points, cells,
predicate="within") on the same points, in a subprocess so the two memory peaks
are separate. If the baseline size is smaller than --n it runs on the first
--baseline-n points and only its rate is compared (said so in the output).

Customers are synthetic: clustered around the real village points of one
Ningxia county (WGS84) with a gaussian spread of 1-3 km per village; the county
boundary is Amap's (GCJ-02, ~500 m off: irrelevant for timing). Seeded.

    python bench/bench_assign_h3.py --n 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit, peak_rss_mb  # noqa: E402
from grid.h3cells import build_h3_cells, h3_parents  # noqa: E402
from grid.locate import H3Locator  # noqa: E402

DATA = Path("/work/shared/data")


def customers(county: str, n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Seeded synthetic customer points clustered around the county's village points."""
    v = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"county_code": str})
    v = v[(v["county_code"] == county) & v["lon_wgs84"].notna()]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(v), n)
    sigma_km = rng.uniform(1.0, 3.0, len(v))[pick]
    lat0 = v["lat_wgs84"].to_numpy()[pick]
    lon0 = v["lon_wgs84"].to_numpy()[pick]
    lat = lat0 + rng.standard_normal(n) * sigma_km / 111.32
    lon = lon0 + rng.standard_normal(n) * sigma_km / (111.32 * np.cos(np.radians(lat0)))
    return lon, lat


def county_cells(county: str, res: int) -> gpd.GeoDataFrame:
    """The H3 grid of one real county."""
    counties = gpd.read_file(DATA / "ningxia_counties_gcj02.geojson")
    geom = counties.loc[counties["adcode"].astype(str) == county, "geometry"].iloc[0]
    return build_h3_cells(geom, res)


def baseline(args) -> None:
    """Subprocess: geopandas.sjoin on the first --baseline-n points; writes rows to --out."""
    cells = county_cells(args.county, args.res)
    lon, lat = customers(args.county, args.n)
    lon, lat = lon[: args.baseline_n], lat[: args.baseline_n]
    t = time.perf_counter()
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    joined = gpd.sjoin(pts, cells[["h3", "geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    rows = joined["index_right"].fillna(-1).to_numpy(dtype=np.int64)
    fine = np.where(rows >= 0, cells["h3"].to_numpy()[np.maximum(rows, 0)], np.uint64(0))
    for r in (8, 7):
        h3_parents(fine, r)
    seconds = time.perf_counter() - t
    np.save(args.out, rows)
    print(json.dumps({"seconds": seconds, "n": len(lon), "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--baseline-n", type=int, default=2_000_000, help="points for sjoin (<= n)")
    ap.add_argument("--county", default="640522", help="adcode; default 海原县 (4,997 km²)")
    ap.add_argument("--res", type=int, default=9)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.baseline_n = min(args.baseline_n, args.n)
    if args.baseline:
        baseline(args)
        return

    t = time.perf_counter()
    cells = county_cells(args.county, args.res)
    grid_s = time.perf_counter() - t
    t = time.perf_counter()
    loc = H3Locator(cells, workers=args.workers)
    locator_s = time.perf_counter() - t
    # What assignment does: the lookup is stored with the grid version and loaded (fingerprint checked).
    stored = loc.to_bytes()
    t = time.perf_counter()
    loc = H3Locator.from_bytes(stored, cells, workers=args.workers)
    load_s = time.perf_counter() - t
    lon, lat = customers(args.county, args.n)

    t = time.perf_counter()
    rows, h3s = loc.locate_multi(lon, lat, coarser=(8, 7))
    ours_s = time.perf_counter() - t
    ours_peak = peak_rss_mb()
    worker_peak = peak_rss_mb(children=True)
    print(
        f"grid res {args.res}: {len(cells)} cells ({int(cells.is_border.sum())} border), built in {grid_s:.1f} s; locator {locator_s:.1f} s"
    )
    print(
        f"ours: {args.n:,} points in {ours_s:.2f} s = {args.n / ours_s / 1e6:.2f} M points/s; inside {np.mean(rows >= 0):.1%}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.npy"
        cmd = [
            sys.executable,
            __file__,
            "--baseline",
            "--out",
            str(out),
            "--n",
            str(args.n),
            "--baseline-n",
            str(args.baseline_n),
            "--county",
            args.county,
            "--res",
            str(args.res),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        base = json.loads(res.stdout.strip().splitlines()[-1])
        base_rows = np.load(out)
    m = len(base_rows)
    mismatches = int(np.sum(rows[:m] != base_rows))
    base_rate = base["n"] / base["seconds"]
    ours_rate = args.n / ours_s
    note = (
        ""
        if m == args.n
        else f" (sjoin on the first {m:,} points; rate compared, not extrapolated time)"
    )
    print(
        f"sjoin: {m:,} points in {base['seconds']:.2f} s = {base_rate / 1e6:.3f} M points/s{note}"
    )
    with_build = args.n / (ours_s + locator_s)
    with_load = args.n / (ours_s + load_s)
    print(
        f"with the locator build counted: {with_build / 1e6:.2f} M points/s = {with_build / base_rate:.1f}x sjoin; "
        f"with loading the stored lookup ({load_s:.2f} s, {len(stored) / 1e6:.2f} MB) as assignment does: "
        f"{with_load / 1e6:.2f} M points/s = {with_load / base_rate:.1f}x sjoin"
    )
    print(
        f"ratio {ours_rate / base_rate:.1f}x; mismatches {mismatches}; peak MB ours {ours_peak:.0f}, sjoin {base['peak_rss_mb']:.0f}"
    )
    emit(
        {
            "bench": "assign_h3",
            "n": args.n,
            "county": args.county,
            "res": args.res,
            "derived": [8, 7],
            "cells": len(cells),
            "border_cells": int(cells.is_border.sum()),
            "workers": args.workers,
            "grid_build_s": round(grid_s, 2),
            "locator_build_s": round(locator_s, 2),
            "ours_s": round(ours_s, 3),
            "ours_points_per_s": round(ours_rate),
            "sjoin_n": m,
            "sjoin_s": round(base["seconds"], 3),
            "sjoin_points_per_s": round(base_rate),
            "ratio": round(ours_rate / base_rate, 1),
            "with_locator_build_points_per_s": round(with_build),
            "with_locator_build_ratio": round(with_build / base_rate, 1),
            "stored_lookup_load_s": round(load_s, 3),
            "with_stored_lookup_points_per_s": round(with_load),
            "with_stored_lookup_ratio": round(with_load / base_rate, 1),
            "mismatches": mismatches,
            "peak_rss_mb_ours": round(ours_peak),
            "peak_rss_mb_workers": round(worker_peak),
            "peak_rss_mb_sjoin": round(base["peak_rss_mb"]),
            "inside_share": round(float(np.mean(rows >= 0)), 4),
            "lattice_fast_path": loc._lattice is not None,
        }
    )


if __name__ == "__main__":
    main()
