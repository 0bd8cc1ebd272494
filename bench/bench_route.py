"""Benchmark of the day-route solver (grid/visits/route.py, PyVRP) against nearest-neighbour and against
itself given 10x the time.

Synthetic but realistic days (clearly so): an RM leaves an outlet (a township seat of the county,
seeded) at 08:30 and must be back by 17:30; the day's candidate stops are customers scattered around
the villages within ``--radius-km`` of the outlet (ningxia_villages.csv, WGS84) the way the demo's
synthetic customers are (median 0.5-2 km from a village's own point, 3-5 km from a township seat),
15-30 service minutes each, 30% of them with a 1-3 hour time window. Distances are straight-line
times the detour factor, travel at ``--speed-kmh``. 50 or 150 candidates do not fit in one day
(about 20 do), so the solver both chooses and orders: the figures are stops kept (first) and
kilometres driven (second), for

- ours: ``DayRoute.solve()`` with its defaults (``--time-limit`` cap, stop after no improvement);
- long: the same solver with 10x the time cap and 10x the no-improvement budget;
- nearest: always drive to the nearest stop that can still be served in time.

Target: under 2 s for 50 stops and within 3% of the long run (stops kept no fewer, kilometres within
3%). Last printed line: one JSON object with the figures.

    python bench/bench_route.py              # 50 and 150 stops, 3 seeded days each
    python bench/bench_route.py --quick      # one day of 50 stops, short long run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, emit  # noqa: E402
from grid.visits import DayRoute, points_to_distance_matrix  # noqa: E402
from grid.visits.route import DEFAULT_NO_IMPROVEMENT  # noqa: E402

OWN_SPREAD_KM = (0.5, 2.0)
SEAT_SPREAD_KM = (3.0, 5.0)


def synthetic_day(n: int, seed: int, county: str, radius_km: float) -> tuple[tuple[float, float], pd.DataFrame]:
    """An outlet and ``n`` candidate stops around the villages near it."""
    rng = np.random.default_rng(seed)
    v = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"county_code": str})
    v = v[v["county_code"] == county].reset_index(drop=True)
    if v.empty:
        raise SystemExit(f"county {county} has no villages")
    seats = v[v["coord_level"] != "county"].drop_duplicates(["lon_wgs84", "lat_wgs84"])
    seats = seats if len(seats) else v
    outlet = seats.iloc[int(rng.integers(len(seats)))]
    start = (float(outlet["lon_wgs84"]), float(outlet["lat_wgs84"]))
    d = points_to_distance_matrix(np.r_[start[0], v["lon_wgs84"]], np.r_[start[1], v["lat_wgs84"]],
                                  detour_factor=1.0)[0, 1:]
    near = v[d <= radius_km * 1000]
    if len(near) < 5:
        near = v.iloc[np.argsort(d)[:20]]
    vi = rng.integers(len(near), size=n)
    own = near["coord_level"].to_numpy()[vi] == "village"
    median = np.where(own, rng.uniform(*OWN_SPREAD_KM, n), rng.uniform(*SEAT_SPREAD_KM, n))
    sigma = median / np.sqrt(2 * np.log(2))
    lat = near["lat_wgs84"].to_numpy()[vi] + rng.normal(0, 1, n) * sigma / 111.32
    lon = near["lon_wgs84"].to_numpy()[vi] + rng.normal(0, 1, n) * sigma / (111.32 * np.cos(np.radians(lat)))
    has = rng.random(n) < 0.3
    ws = rng.integers(8 * 60 + 30, 16 * 60 + 30, n)
    we = np.minimum(ws + rng.integers(60, 181, n), 17 * 60 + 30)
    stops = pd.DataFrame({
        "stop_id": [f"S{i:03d}" for i in range(n)], "lon": lon, "lat": lat,
        "service_min": rng.integers(15, 31, n).astype(float),
        "window_start": np.where(has, ws, np.nan), "window_end": np.where(has, we, np.nan),
    })
    return start, stops


def one_day(n: int, seed: int, args) -> dict:
    start, stops = synthetic_day(n, seed, args.county, args.radius_km)

    def build() -> DayRoute:
        return DayRoute.from_records(stops, start=start, detour_factor=args.detour, speed_kmh=args.speed_kmh,
                                     day=("08:30", "17:30"))

    out = {}
    runs = (
        ("ours", dict(time_limit_s=args.time_limit)),
        ("long", dict(time_limit_s=args.time_limit * args.factor,
                      no_improvement=DEFAULT_NO_IMPROVEMENT * args.factor)),
        ("nearest", dict(solver="nearest")),
    )
    for name, kw in runs:
        model = build()
        t0 = time.perf_counter()
        model.solve(seed=seed, **kw)
        out[name] = {"seconds": time.perf_counter() - t0, "kept": len(model.route),
                     "km": model.length_m / 1000, "dropped": len(model.dropped)}
        assert len(model.route) + len(model.dropped) == n
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="50,150", help="stops per day, comma-separated")
    p.add_argument("--seeds", type=int, default=3, help="days per size")
    p.add_argument("--county", default="640121", help="county code (default 永宁县, the demo county)")
    p.add_argument("--radius-km", type=float, default=15.0, help="villages this close to the outlet")
    p.add_argument("--time-limit", type=float, default=1.5, help="our time cap (s)")
    p.add_argument("--factor", type=int, default=10, help="the long run gets this many times the budget")
    p.add_argument("--detour", type=float, default=1.4)
    p.add_argument("--speed-kmh", type=float, default=30.0)
    p.add_argument("--quick", action="store_true", help="one 50-stop day, factor 2")
    args = p.parse_args(argv)
    import pyvrp  # noqa: F401  (imported once here, so no timing below includes the import)
    if args.quick:
        args.sizes, args.seeds, args.factor = "50", 1, 2
    figures: dict = {"bench": "route", "county": args.county, "time_limit_s": args.time_limit,
                     "factor": args.factor, "seeds": args.seeds}
    for n in (int(s) for s in args.sizes.split(",")):
        days = [one_day(n, seed, args) for seed in range(args.seeds)]
        agg = {k: {m: float(np.mean([d[k][m] for d in days])) for m in ("seconds", "kept", "km")}
               for k in ("ours", "long", "nearest")}
        kept_ratio = agg["ours"]["kept"] / agg["long"]["kept"]
        km_ratio = agg["ours"]["km"] / agg["long"]["km"]
        worst_short = max(d["long"]["kept"] - d["ours"]["kept"] for d in days)
        f = {
            "ours_s": agg["ours"]["seconds"], "long_s": agg["long"]["seconds"],
            "nearest_s": agg["nearest"]["seconds"],
            "ours_kept": agg["ours"]["kept"], "long_kept": agg["long"]["kept"],
            "nearest_kept": agg["nearest"]["kept"],
            "ours_km": agg["ours"]["km"], "long_km": agg["long"]["km"], "nearest_km": agg["nearest"]["km"],
            "kept_ours_over_long": kept_ratio, "km_ours_over_long": km_ratio,
            "kept_ours_over_nearest": agg["ours"]["kept"] / max(agg["nearest"]["kept"], 1e-9),
            "km_ours_over_nearest": agg["ours"]["km"] / max(agg["nearest"]["km"], 1e-9),
            "most_stops_short_of_long": worst_short,
            "per_day": days,
        }
        figures[f"n{n}"] = f
        print(f"{n} stops, {args.seeds} days (means): ours {f['ours_kept']:.1f} stops {f['ours_km']:.1f} km "
              f"in {f['ours_s']:.2f} s | long {f['long_kept']:.1f} stops {f['long_km']:.1f} km in "
              f"{f['long_s']:.2f} s | nearest {f['nearest_kept']:.1f} stops {f['nearest_km']:.1f} km")
        print(f"  ratios ours/long: stops {kept_ratio:.3f}, km {km_ratio:.3f} "
              f"(worst day {worst_short} stop(s) short); ours/nearest: stops "
              f"{f['kept_ours_over_nearest']:.3f}, km {f['km_ours_over_nearest']:.3f}")
        for i, d in enumerate(days):
            print(f"  day {i}: " + " | ".join(f"{k} {d[k]['kept']} stops {d[k]['km']:.1f} km {d[k]['seconds']:.2f} s"
                                              for k in ("ours", "long", "nearest")))
    emit(figures)
    return figures


if __name__ == "__main__":
    main()
