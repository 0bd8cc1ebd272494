"""Benchmark: village-grid assignment, VillageLocator against geopandas.sjoin.

Synthetic, seeded data over the real Ningxia counties: village points spread
over the province (each county gets a share proportional to its area), Voronoi
village cells built county by county with ``grid.villages.build_village_cells``,
and customers clustered around the villages (normal offsets of a third of the
distance to the nearest other village, plus 5 % scattered over the province's
bounding box, some of them outside every county).

A village grid's lookup is built once, with the grid version, and stored
(``grid_lookup``); assigning customers then loads it. Both are timed: the
build plus a lookup, and the stored path (load the lookup, check it against
the cells, locate), each in a fresh process.

Ours and the baseline each run in a fresh subprocess on the same points, so
each one's peak memory (ru_maxrss) is its own. The baseline may use a
subsample (``--baseline-n``); rates are compared, and ours is checked for zero
mismatches against the baseline's exact ``within`` join on those points.

Usage: python bench/bench_assign_village.py --n 10000000 --villages 2900
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/ningxia_counties_gcj02.geojson")
sys.path.insert(0, str(ROOT))


def peak_mb() -> float:
    """Peak resident memory of this process in MB.

    VmHWM starts afresh at exec; ru_maxrss would also count the parent's pages
    at fork time, which here hold the generated data.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_data(n: int, n_villages: int, seed: int, out: Path) -> dict:
    """Build the village cells and customer points; save them under ``out``."""
    import geopandas as gpd
    import pandas as pd
    import shapely
    from pyproj import Transformer
    from scipy.spatial import cKDTree

    from grid.projection import areas_m2, metric_crs, project_points
    from grid.villages import build_village_cells

    rng = np.random.default_rng(seed)
    counties = gpd.read_file(DATA).sort_values("adcode").reset_index(drop=True)
    share = areas_m2(counties)
    counts = np.floor(share / share.sum() * n_villages).astype(int)
    counts[np.argsort(-share)[: n_villages - counts.sum()]] += 1
    frames, sites, n_place = [], [], 0
    t0 = time.perf_counter()
    for (adcode, county), k in zip(
        zip(counties["adcode"], counties.geometry, strict=True), counts, strict=True
    ):
        minx, miny, maxx, maxy = county.bounds
        pts = np.empty((0, 2))
        while len(pts) < k:  # rejection sampling inside the county outline
            cand = rng.uniform((minx, miny), (maxx, maxy), size=(4 * k, 2))
            pts = np.vstack([pts, cand[shapely.intersects_xy(county, cand[:, 0], cand[:, 1])]])
        pts = pts[:k]
        sites.append(pts)
        codes = [f"{adcode}{100 + i // 30:03d}{200 + i % 30:03d}" for i in range(k)]
        villages = pd.DataFrame(
            {
                "code": codes,
                "name": codes,
                "lon": pts[:, 0],
                "lat": pts[:, 1],
                "coord_level": "village",
            }
        )
        cells, report = build_village_cells(county, villages)
        n_place += report["placed"]
        frames.append(cells)
    build_cells_s = time.perf_counter() - t0
    cells = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=4326)

    # Customers: clustered in metres around the village points.
    sites = np.vstack(sites)
    crs = metric_crs(cells)
    vx, vy = project_points(sites[:, 0], sites[:, 1], crs)
    dist, _ = cKDTree(np.column_stack([vx, vy])).query(np.column_stack([vx, vy]), k=2)
    sigma = dist[:, 1] / 3.0
    n_bg = n // 20
    pick = rng.integers(0, len(vx), n - n_bg)
    px = vx[pick] + rng.normal(0, 1, len(pick)) * sigma[pick]
    py = vy[pick] + rng.normal(0, 1, len(pick)) * sigma[pick]
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(px, py)
    minx, miny, maxx, maxy = cells.total_bounds
    lon = np.concatenate([lon, rng.uniform(minx, maxx, n_bg)])
    lat = np.concatenate([lat, rng.uniform(miny, maxy, n_bg)])
    perm = rng.permutation(n)
    np.save(out / "lon.npy", np.ascontiguousarray(lon[perm]))
    np.save(out / "lat.npy", np.ascontiguousarray(lat[perm]))
    np.save(out / "cells.npy", shapely.to_wkb(cells.geometry.values))
    return {
        "cells": len(cells),
        "villages_placed": n_place,
        "build_cells_s": round(build_cells_s, 2),
    }


def run_ours(out: Path) -> dict:
    """Time VillageLocator: build, then locate every point."""
    import shapely

    from grid.locate import VillageLocator

    geoms = shapely.from_wkb(np.load(out / "cells.npy", allow_pickle=True))
    lon, lat = np.load(out / "lon.npy"), np.load(out / "lat.npy")
    t0, c0 = time.perf_counter(), time.process_time()
    loc = VillageLocator(geoms)
    t1, c1 = time.perf_counter(), time.process_time()
    res = loc.locate(lon, lat, workers=2)
    t2, c2 = time.perf_counter(), time.process_time()
    np.save(out / "ours.npy", res)
    t3 = time.perf_counter()
    (out / "lookup.bin").write_bytes(loc.to_bytes())
    return {
        "to_bytes_s": time.perf_counter() - t3,
        "build_s": t1 - t0,
        "locate_s": t2 - t1,
        "build_cpu_s": c1 - c0,
        "locate_cpu_s": c2 - c1,
        "step_deg": loc.step,
        "table": [loc.ncx, loc.ncy],
        "blocks": int(loc.fine.size // 64),
        "mixed_squares": int(loc.n_mixed),
        "inside": int((res >= 0).sum()),
        "peak_mb": peak_mb(),
    }


def run_stored(out: Path) -> dict:
    """Time what assignment does for a village grid: load the stored lookup, then locate."""
    import shapely

    from grid.locate import VillageLocator

    geoms = shapely.from_wkb(np.load(out / "cells.npy", allow_pickle=True))
    lon, lat = np.load(out / "lon.npy"), np.load(out / "lat.npy")
    data = (out / "lookup.bin").read_bytes()
    t0 = time.perf_counter()
    loc = VillageLocator.from_bytes(data, geoms)
    t1 = time.perf_counter()
    res = loc.locate(lon, lat, workers=2)
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "locate_s": t2 - t1, "lookup_mb": len(data) / 1e6,
            "same": bool(np.array_equal(res, np.load(out / "ours.npy"))), "peak_mb": peak_mb()}


def run_baseline(out: Path, n_base: int) -> dict:
    """Time geopandas.sjoin(points, cells, predicate='within') end to end."""
    import geopandas as gpd
    import shapely

    geoms = shapely.from_wkb(np.load(out / "cells.npy", allow_pickle=True))
    cells = gpd.GeoDataFrame(geometry=geoms, crs=4326)
    lon, lat = np.load(out / "lon.npy")[:n_base], np.load(out / "lat.npy")[:n_base]
    t0, c0 = time.perf_counter(), time.process_time()
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    joined = gpd.sjoin(pts, cells, predicate="within", how="left")
    t1, c1 = time.perf_counter(), time.process_time()
    # A point within two cells cannot happen for a tiling, but keep the lowest, as ours does.
    right = joined["index_right"].fillna(-1).astype(np.int64)
    res = right.groupby(level=0).min().reindex(range(n_base)).to_numpy()
    np.save(out / "base.npy", res)
    return {"sjoin_s": t1 - t0, "sjoin_cpu_s": c1 - c0, "peak_mb": peak_mb()}


def child(role: str, out: Path, n_base: int) -> dict:
    """Run one role in a fresh interpreter and read back its JSON line."""
    cmd = [sys.executable, __file__, "--role", role, "--out", str(out), "--baseline-n", str(n_base)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{role} run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="customer points")
    ap.add_argument("--villages", type=int, default=2900, help="synthetic village points")
    ap.add_argument(
        "--baseline-n", type=int, default=1_000_000, help="points given to sjoin (<= n)"
    )
    ap.add_argument("--seed", type=int, default=20240603)
    ap.add_argument("--role", choices=["ours", "stored", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "ours":
        print(json.dumps(run_ours(args.out)))
        return
    if args.role == "baseline":
        print(json.dumps(run_baseline(args.out, args.baseline_n)))
        return
    if args.role == "stored":
        print(json.dumps(run_stored(args.out)))
        return

    n_base = min(args.baseline_n, args.n)
    load = os.getloadavg()[0]  # other work on this machine slows wall-clock figures
    with tempfile.TemporaryDirectory(prefix="bench_village_") as tmp:
        out = Path(tmp)
        info = make_data(args.n, args.villages, args.seed, out)
        print(
            f"data: {args.n:,} points, {info['cells']:,} cells ({info['villages_placed']:,} villages), "
            f"cells built in {info['build_cells_s']} s"
        )
        ours = child("ours", out, n_base)
        stored = child("stored", out, n_base)
        base = child("baseline", out, n_base)
        mism = int((np.load(out / "ours.npy")[:n_base] != np.load(out / "base.npy")).sum())
    total = ours["build_s"] + ours["locate_s"]
    rate = args.n / total
    rate_locate = args.n / ours["locate_s"]
    rate_base = n_base / base["sjoin_s"]
    print(
        f"ours:     build {ours['build_s']:.3f} s + locate {ours['locate_s']:.3f} s for {args.n:,} points "
        f"= {rate / 1e6:.2f} M pts/s end to end ({rate_locate / 1e6:.2f} M pts/s locate only), "
        f"fine step {ours['step_deg']:.6f} deg, coarse table {ours['table'][0]}x{ours['table'][1]}, "
        f"{ours['blocks']:,} fine blocks, "
        f"{ours['mixed_squares']:,} fine border squares, peak {ours['peak_mb']:.0f} MB"
    )
    print(
        f"cpu time: ours build {ours['build_cpu_s']:.2f} s + locate {ours['locate_cpu_s']:.2f} s "
        f"(2 threads); sjoin {base['sjoin_cpu_s']:.2f} s; 1-min load average {load:.1f} on "
        f"{os.cpu_count()} cores"
    )
    print(
        f"baseline: geopandas.sjoin within on {n_base:,} points in {base['sjoin_s']:.2f} s "
        f"= {rate_base / 1e6:.3f} M pts/s, peak {base['peak_mb']:.0f} MB"
    )
    rate_stored = args.n / (stored["load_s"] + stored["locate_s"])
    print(
        f"assignment with the lookup stored with the grid (what `gridmkt assign` does for a village grid): "
        f"load {stored['load_s']:.3f} s ({stored['lookup_mb']:.1f} MB) + locate {stored['locate_s']:.3f} s "
        f"= {rate_stored / 1e6:.2f} M pts/s, {rate_stored / rate_base:.1f}x sjoin, same answers: {stored['same']}"
    )
    print(
        f"speed-up {rate / rate_base:.1f}x end to end ({rate_locate / rate_base:.1f}x locate only); "
        f"mismatches vs exact join on the baseline's {n_base:,} points: {mism}"
    )
    print(
        json.dumps(
            {
                "bench": "assign_village",
                "n": args.n,
                "villages": args.villages,
                "cells": info["cells"],
                "load_avg_1min": round(load, 2),
                "ours_build_s": round(ours["build_s"], 3),
                "ours_build_cpu_s": round(ours["build_cpu_s"], 3),
                "ours_locate_cpu_s": round(ours["locate_cpu_s"], 3),
                "ours_locate_s": round(ours["locate_s"], 3),
                "ours_mpts_per_s": round(rate / 1e6, 2),
                "ours_locate_mpts_per_s": round(rate_locate / 1e6, 2),
                "ours_peak_mb": round(ours["peak_mb"]),
                "baseline_n": n_base,
                "baseline_s": round(base["sjoin_s"], 3),
                "baseline_cpu_s": round(base["sjoin_cpu_s"], 3),
                "baseline_mpts_per_s": round(rate_base / 1e6, 3),
                "baseline_peak_mb": round(base["peak_mb"]),
                "speedup": round(rate / rate_base, 1),
                "speedup_locate_only": round(rate_locate / rate_base, 1),
                "stored_lookup_load_s": round(stored["load_s"], 3),
                "stored_lookup_locate_s": round(stored["locate_s"], 3),
                "stored_lookup_mb": round(stored["lookup_mb"], 2),
                "stored_mpts_per_s": round(rate_stored / 1e6, 2),
                "speedup_stored": round(rate_stored / rate_base, 1),
                "stored_same_answers": stored["same"],
                "to_bytes_s": round(ours["to_bytes_s"], 3),
                "ours_cpu_mpts_per_s": round(
                    args.n / (ours["build_cpu_s"] + ours["locate_cpu_s"]) / 1e6, 2
                ),
                "baseline_cpu_mpts_per_s": round(n_base / base["sjoin_cpu_s"] / 1e6, 3),
                "speedup_cpu": round(
                    (args.n / (ours["build_cpu_s"] + ours["locate_cpu_s"]))
                    / (n_base / base["sjoin_cpu_s"]),
                    1,
                ),
                "mismatches": mism,
                "inside_share": round(ours["inside"] / args.n, 4),
                "border_squares": ours["mixed_squares"],
                "step_deg": ours["step_deg"],
            }
        )
    )


if __name__ == "__main__":
    main()
