"""Benchmark of automatic territory balancing (grid/territories.py) against the nearest-outlet rule.

(a) one real Ningxia county at H3 res 8, 20 RMs at 5 outlets: max deviation and
    contiguity of the optimiser vs the nearest-outlet baseline on the same cells.
(b) the whole province at res 8 (~84,000 cells) with 1,500 RMs: time to plan and balance,
    in one pass over the province and by county (cells carry the county of their
    centroid, RMs their outlet's county; each county's workload is split over its
    own RMs, two worker processes), each against the nearest-outlet baseline
    (within the county for the by-county plan).

Workload is synthetic (clearly so): every village point of the county
(ningxia_villages.csv, WGS84) gets a lognormal weight spread over the cells
around it by a Gaussian kernel, plus a small floor, giving skewed, clustered
customers, households and deposits. County outlines are GCJ-02 (~500 m off
WGS84), which does not matter for a benchmark. Outlets are seeded random
village points. Last printed line: one JSON object with the figures.

    python bench/bench_territories.py            # full run
    python bench/bench_territories.py --quick    # smoke run (small county, few RMs)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grid.projection import metric_crs, project_points  # noqa: E402
from grid.territories import TerritoryPlan, cell_adjacency, nearest_outlet_baseline  # noqa: E402

DATA = Path("/work/shared/data")
WAYS = (("single_pass", None), ("by_county", "county_code"))


def load_cells(adcodes: list[str] | None, res: int) -> gpd.GeoDataFrame:
    """H3 cells of the given counties (all when None), unioned; ``county_code`` of each cell's centroid."""
    counties = gpd.read_file(DATA / "ningxia_counties_gcj02.geojson")
    if adcodes is not None:
        counties = counties[counties["adcode"].astype(str).isin(adcodes)]
    shape = shapely.union_all(counties.geometry.values)
    try:
        from grid.h3cells import build_h3_cells

        cells = build_h3_cells(shape, res)[["cell_id", "geometry"]]
    except ImportError:
        import h3

        ids = sorted(h3.h3shape_to_cells(h3.geo_to_h3shape(shape.__geo_interface__), res))
        polys = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in ids]
        cells = gpd.GeoDataFrame({"cell_id": ids}, geometry=polys, crs=4326)
    # A cell belongs to the county holding its centroid (the nearest one for slivers outside all).
    crs = metric_crs(cells)
    pts = gpd.GeoDataFrame(geometry=cells.geometry.to_crs(crs).centroid, crs=crs)
    shapes = counties[["adcode", "geometry"]].to_crs(crs)
    hit = gpd.sjoin_nearest(pts, shapes, how="left")
    cells["county_code"] = hit.groupby(level=0)["adcode"].first().astype(str).to_numpy()
    return cells


def synthetic_workload(cells: gpd.GeoDataFrame, adcodes: list[str] | None, rng) -> gpd.GeoDataFrame:
    """Skewed, clustered customers/households/deposit per cell from village points."""
    v = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"county_code": str})
    if adcodes is not None:
        v = v[v["county_code"].isin(adcodes)]
    crs = metric_crs(cells)
    xy = shapely.get_coordinates(shapely.centroid(cells.geometry.to_crs(crs).values))
    vx, vy = project_points(v["lon_wgs84"], v["lat_wgs84"], crs)
    # Villages sharing a township point are jittered so they do not stack on one cell.
    vxy = np.column_stack([vx, vy]) + rng.normal(0, 1500, size=(len(v), 2))
    weight = rng.lognormal(0.0, 1.0, size=len(v))
    tree = cKDTree(xy)
    cust = np.zeros(len(cells))
    for p, w in zip(vxy, weight, strict=True):
        idx = tree.query_ball_point(p, 4000)
        if idx:
            d2 = ((xy[idx] - p) ** 2).sum(axis=1)
            k = np.exp(-d2 / (2 * 1200.0**2))
            cust[idx] += 400 * w * k / k.sum()
    cust += 0.2 * cust.mean() * rng.random(len(cells))
    out = cells.copy()
    out["customers"] = np.round(cust, 1)
    out["households"] = np.round(cust * rng.uniform(0.6, 0.9, len(cells)), 1)
    out["deposit"] = np.round(cust * rng.lognormal(0, 0.5, len(cells)) * 5.0, 1)
    return out


def synthetic_rms(cells: gpd.GeoDataFrame, adcodes, n_outlets: int, n_rms: int, rng) -> pd.DataFrame:
    """RMs at outlets in township seats (as rural banks have), more RMs where the work is (seeded).

    Outlets: township seats of ningxia_townships.csv inside the area (the busiest
    first when there are more seats than outlets), topped up with busy cells.
    Each outlet gets at least one RM; the rest go by the workload nearest it.
    About 10% of RMs are part-time (capacity 0.5).
    """
    crs = metric_crs(cells)
    xy = shapely.get_coordinates(shapely.centroid(cells.geometry.to_crs(crs).values))
    work = cells["customers"].to_numpy()
    t = pd.read_csv(DATA / "ningxia_townships.csv", dtype={"county_code": str}).dropna(
        subset=["lon_wgs84"]
    )
    if adcodes is not None:
        t = t[t["county_code"].isin(adcodes)]
    tx, ty = project_points(t["lon_wgs84"], t["lat_wgs84"], crs)
    _, near = cKDTree(xy).query(np.column_stack([tx, ty]))
    near = np.unique(near)
    near = near[np.argsort(-work[near], kind="stable")][:n_outlets]
    if len(near) < n_outlets:
        p = work**2
        p[near] = 0
        extra = rng.choice(len(cells), size=n_outlets - len(near), replace=False, p=p / p.sum())
        near = np.concatenate([near, extra])
    _, owner = cKDTree(xy[near]).query(xy)
    load = np.bincount(owner, weights=work, minlength=len(near))
    per = np.ones(len(near), dtype=int)
    share = load / load.sum() * (n_rms - len(near))
    per += np.floor(share).astype(int)
    rest = n_rms - per.sum()
    per[np.argsort(-(share - np.floor(share)), kind="stable")[:rest]] += 1
    lon, lat = project_points_inverse(xy[near], crs)
    rows = []
    for o, m in enumerate(per):
        for j in range(m):
            cap = 0.5 if rng.random() < 0.1 else 1.0
            rows.append({"rm_id": f"O{o:03d}-{j}", "lon": lon[o], "lat": lat[o], "capacity": cap,
                         "county_code": cells["county_code"].iloc[near[o]]})
    return pd.DataFrame(rows)


def project_points_inverse(xy: np.ndarray, crs) -> tuple[np.ndarray, np.ndarray]:
    """Metric points back to WGS84 lon/lat."""
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, 4326, always_xy=True)
    return tr.transform(xy[:, 0], xy[:, 1])


def key_figures(report) -> dict:
    """The figures printed for each plan."""
    s = report.summary()
    keys = ("max_abs_deviation", "cv", "contiguity", "compactness_mean", "mean_km", "max_km", "empty_rms",
            "deviation_bound", "indivisible_share", "adjusted_max_deviation")
    return {k: s[k] for k in keys}


def run_county(adcode: str, n_outlets: int, n_rms: int, seed: int) -> dict:
    """Part (a): one county, optimiser vs baseline."""
    rng = np.random.default_rng(seed)
    cells = synthetic_workload(load_cells([adcode], 8), [adcode], rng)
    rms = synthetic_rms(cells, [adcode], n_outlets, n_rms, rng)
    weights = {"customers": 1.0, "households": 0.5, "deposit": 0.5, "travel": 0.3}
    t0 = time.perf_counter()
    plan = TerritoryPlan.from_geodataframe(cells, rms, weights=weights, seed=seed).solve()
    t_plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = nearest_outlet_baseline(plan)
    t_base = time.perf_counter() - t0
    ours, theirs = key_figures(plan.report), key_figures(base.report)
    print(f"(a) county {adcode}: {len(cells)} cells, {n_rms} RMs at {n_outlets} outlets")
    print(f"    optimiser {t_plan:.2f} s: {ours}")
    print(f"    baseline  {t_base:.2f} s: {theirs}")
    ratio = theirs["max_abs_deviation"] / max(ours["max_abs_deviation"], 1e-9)
    print(f"    baseline max deviation / ours = {ratio:.1f}x")
    return {
        "county": adcode,
        "cells": len(cells),
        "rms": n_rms,
        "plan_s": round(t_plan, 2),
        "ours": ours,
        "baseline": theirs,
        "deviation_ratio": round(ratio, 1),
    }


def run_province(
    adcodes: list[str] | None, n_outlets: int, n_rms: int, seed: int, budget_s: float = 57.0, workers: int = 2
) -> dict:
    """Part (b): many cells and RMs, planned in one pass and by county; time of adjacency + plan, and the figures."""
    rng = np.random.default_rng(seed)
    cells = synthetic_workload(load_cells(adcodes, 8), adcodes, rng)
    rms = synthetic_rms(cells, adcodes, n_outlets, n_rms, rng)
    weights = {"customers": 1.0, "households": 0.5, "deposit": 0.5, "travel": 0.3}
    print(f"(b) {len(cells)} cells in {cells['county_code'].nunique()} counties, {n_rms} RMs at {n_outlets} outlets")
    out: dict = {"cells": len(cells), "rms": n_rms, "counties": int(cells["county_code"].nunique()), "budget_s": budget_s}
    for way, region in WAYS:
        t0 = time.perf_counter()
        adj = cell_adjacency(cells, return_virtual=True)
        t_adj = time.perf_counter() - t0
        plan = TerritoryPlan.from_geodataframe(
            cells, rms, weights=weights, seed=seed, adjacency=adj, region_column=region
        )
        t1 = time.perf_counter()
        # The budget is 60 s for the whole plan: refinement gets what is left of it.
        plan.solve(time_limit_s=max(5.0, budget_s - (t1 - t0)), report=False, workers=workers)
        t_total = time.perf_counter() - t0
        t_solve = time.perf_counter() - t1
        t2 = time.perf_counter()
        plan.report = plan.evaluate(plan.assignment)
        t_report = time.perf_counter() - t2
        base = nearest_outlet_baseline(plan)
        ours, theirs = key_figures(plan.report), key_figures(base.report)
        print(f"    {way}: adjacency {t_adj:.1f} s, solve {t_solve:.1f} s, total {t_total:.1f} s; report {t_report:.1f} s")
        print(f"      optimiser: {ours}")
        print(f"      baseline:  {theirs}")
        if plan.report.per_region is not None:
            pr = plan.report.per_region
            worst = pr.sort_values("adjusted_max_deviation").tail(3)
            print("      worst counties:\n" + worst.round(3).to_string(index=False))
            ours["regions_over_5pct"] = int((pr["max_abs_deviation"] > 0.05).sum())
            ours["regions_over_bound_5pct"] = int((pr["max_abs_deviation"] > pr["deviation_bound"] + 0.05).sum())
        out[way] = {
            "adjacency_s": round(t_adj, 2),
            "solve_s": round(t_solve, 2),
            "total_s": round(t_total, 2),
            "report_s": round(t_report, 2),
            "ours": ours,
            "baseline": theirs,
        }
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run both parts."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--county", default="640121", help="adcode for part (a)")
    ap.add_argument("--rms", type=int, default=1500, help="RMs for part (b)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if args.quick:
        county = run_county("640424", 3, 6, args.seed)
        province = run_province(["640424", "640423"], 20, min(args.rms, 60), args.seed)
    else:
        county = run_county(args.county, 5, 20, args.seed)
        province = run_province(None, 385, args.rms, args.seed)
    print(json.dumps({"bench": "territories", "quick": args.quick, "county": county, "province": province}))


if __name__ == "__main__":
    main()
