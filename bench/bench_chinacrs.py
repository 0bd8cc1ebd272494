"""Benchmark: vectorised iterated GCJ-02 -> WGS84 against a per-point Python loop, same points.

The baseline is what many importers do: call a scalar conversion function per
row (here the same iterated algorithm, written with ``math``, so the accuracy
is equal and only the speed differs).  Points are random WGS84 locations over
Ningxia, shifted to GCJ-02 first.  Prints the figures, and as the last line
one JSON object.

    python bench/bench_chinacrs.py            # 1,000,000 points
    python bench/bench_chinacrs.py --n 100000 # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from grid.chinacrs import gcj02_to_wgs84, wgs84_to_gcj02
from grid.projection import haversine_km

_A, _EE = 6378245.0, 0.00669342162296594323


def _scalar_forward(lon: float, lat: float) -> tuple[float, float]:
    x, y, pi = lon - 105.0, lat - 35.0, math.pi
    common = (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
    dlat += (20.0 * math.sin(y * pi) + 40.0 * math.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * pi) + 320.0 * math.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
    dlon += (20.0 * math.sin(x * pi) + 40.0 * math.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * pi) + 300.0 * math.sin(x / 30.0 * pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * pi
    magic = 1.0 - _EE * math.sin(radlat) ** 2
    sq = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sq) * pi)
    dlon = (dlon * 180.0) / (_A / sq * math.cos(radlat) * pi)
    return lon + dlon, lat + dlat


def _scalar_inverse(lon: float, lat: float, tol_m: float = 0.01) -> tuple[float, float]:
    x, y = lon, lat
    for _ in range(10):
        fx, fy = _scalar_forward(x, y)
        ex, ey = fx - lon, fy - lat
        x, y = x - ex, y - ey
        if math.hypot(ex * math.cos(math.radians(lat)), ey) * 111_320.0 < tol_m:
            break
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="number of points")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    lon = rng.uniform(104.2, 107.7, args.n)
    lat = rng.uniform(35.2, 39.4, args.n)
    glon, glat = wgs84_to_gcj02(lon, lat)

    # CPU time too: on a shared machine the wall clock also measures the neighbours.
    t0, c0 = time.perf_counter(), time.process_time()
    ours_lon, ours_lat = gcj02_to_wgs84(glon, glat)
    ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    base = [_scalar_inverse(a, b) for a, b in zip(glon.tolist(), glat.tolist(), strict=True)]
    base_s, base_cpu = time.perf_counter() - t0, time.process_time() - c0
    base_lon, base_lat = np.array(base).T

    one_lon, one_lat = gcj02_to_wgs84(glon, glat, max_iter=1)
    err_ours = haversine_km(lon, lat, ours_lon, ours_lat) * 1000
    err_base = haversine_km(lon, lat, base_lon, base_lat) * 1000
    err_one = haversine_km(lon, lat, one_lon, one_lat) * 1000

    result = {
        "bench": "gcj02_to_wgs84",
        "n": args.n,
        "ours_s": round(ours_s, 4),
        "baseline_s": round(base_s, 4),
        "ours_points_per_s": round(args.n / ours_s),
        "baseline_points_per_s": round(args.n / base_s),
        "speedup": round(base_s / ours_s, 1),
        "ours_cpu_s": round(ours_cpu, 4),
        "baseline_cpu_s": round(base_cpu, 4),
        "speedup_cpu": round(base_cpu / max(ours_cpu, 1e-9), 1),
        "max_err_m_ours": float(f"{err_ours.max():.2e}"),
        "max_err_m_baseline": float(f"{err_base.max():.2e}"),
        "max_err_m_one_step_inverse": round(float(err_one.max()), 3),
    }
    print(f"ours (vectorised, iterated): {ours_s:.3f} s for {args.n:,} points")
    print(f"baseline (per-point loop):   {base_s:.3f} s")
    print(
        f"speed-up: {result['speedup']}x; max error ours {err_ours.max():.2e} m, "
        f"one-step inverse {err_one.max():.2f} m"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
