"""Benchmark of territory balancing on the 22 real Ningxia counties, before and after adaptive cells (issue 17).

Data: the demo's synthetic bank (grid/synth, seeded as api/demo.py seeds it):
villages with households estimated from the 2020 census, 17 outlets per county,
their active RMs (about 1,500), and synthetic customers around the villages
(``--customers`` over the province, spread as the demo spreads them). County
outlines are converted from GCJ-02 to WGS84 as the importer does.

For every county: an H3 res-8 grid (``before``) and the same grid refined
where a cell's customers hold more than ``--share`` of an RM's target
(``after``, grid/refine.py, down to res 11). Each gets customers, deposit and
loan from the points and households apportioned from the villages
(grid/apportion.py), and is planned with the planner's default weights
(customers 0.4, households 0.3, deposit 0.15, loan 0.15). Plans stop on their
deterministic work budget (grid/territories/budget.py, the default of their
size) or at the 1% tolerance; the wall clock is only a safety net
(``--county-budget``, ``--province-budget``) and ``timed_out`` says when it cut
a plan short (only then does the machine's load change a plan). Printed per
county: cells, cells invalid as stored (EPSG:4326) and in EPSG:3857 (the tiles'
copy), raw and adjusted max deviation, contiguity, compactness (mean
Polsby-Popper), travel (mean and max km from the RM's outlet), empty RMs, work
units, wall and CPU seconds, and why 5% cannot be reached where it cannot. Then
the province: every county's refined cells and RMs in one plan by county (two
workers), timed from adjacency to the end of balancing (wall and CPU seconds,
the workers' included). Last printed line: one JSON object.

    python bench/bench_territories.py                 # all 22 counties and the province
    python bench/bench_territories.py --quick         # two small counties, no province
    python bench/bench_territories.py --province-only # the province plan alone (its 60 s target)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geodata import DEMO_DATA  # noqa: E402
from geodata.grids import as_multipolygons  # noqa: E402
from geodata.importers.spatial import to_multipolygons  # noqa: E402
from geodata.refine_grid import household_workload  # noqa: E402
from grid import synth  # noqa: E402
from grid.apportion import apportion_to_cells  # noqa: E402
from grid.h3cells import build_h3_cells  # noqa: E402
from grid.locate import VillageLocator  # noqa: E402
from grid.refine import refine_h3_cells, refine_limit  # noqa: E402
from grid.territories import TerritoryPlan, cell_adjacency  # noqa: E402

SEED = 20261122
WEIGHTS = {"customers": 0.4, "households": 0.3, "deposit": 0.15, "loan": 0.15}
KEYS = ("max_abs_deviation", "adjusted_max_deviation", "contiguity", "compactness_mean", "mean_km", "max_km",
        "empty_rms", "unreachable_5pct")


def bank(n_customers: int) -> dict:
    """Counties (WGS84), villages, active RMs with their outlet's point and county, customers: seeded as the demo."""
    counties = gpd.read_file(DEMO_DATA / "ningxia_counties_gcj02.geojson")
    counties["geometry"] = to_multipolygons(counties.geometry.to_numpy(), "gcj02")
    pop = pd.read_csv(DEMO_DATA / "ningxia_county_population_2020.csv", dtype={"code": str})
    county = pop[pop["level"] == "county"]
    v = pd.read_csv(DEMO_DATA / "ningxia_villages.csv", dtype={"code": str, "street_code": str, "county_code": str})
    v = v.rename(columns={"street_code": "township_code", "street_name": "township_name",
                          "lon_wgs84": "lon", "lat_wgs84": "lat"})
    villages = synth.village_households(v, dict(zip(county["code"], county["pop_2020_census"], strict=True)),
                                       np.random.default_rng([SEED, 1]))
    rng = np.random.default_rng([SEED, 2])
    outs = synth.outlets(villages, gpd.read_file(DEMO_DATA / "ningxia_counties_gcj02.geojson"), 17, rng)
    staff = synth.rms(outs, rng=rng)
    staff = staff[staff["active"].astype(bool)].merge(
        outs[["code", "county_code", "lon", "lat"]].rename(columns={"code": "outlet_code"}), on="outlet_code")
    rms = pd.DataFrame({"rm_id": staff["code"], "lon": staff["lon"], "lat": staff["lat"],
                        "capacity": staff["capacity"].astype(float), "county_code": staff["county_code"]})
    within = dict(zip(counties["adcode"], counties.geometry, strict=True))
    custs = pd.concat(list(synth.customers(villages, n_customers, np.random.default_rng([SEED, 3]), within=within)),
                      ignore_index=True)
    custs = custs[["county_code", "lon", "lat", "deposit_balance", "loan_balance"]].dropna(subset=["lon", "lat"])
    return {"counties": counties, "villages": villages, "rms": rms, "customers": custs}


def refine_inputs(c: pd.DataFrame, villages: pd.DataFrame, shape):
    """Weighted points (customers, own-point villages' households) and household areas, as geodata/refine_grid.py."""
    w = np.zeros(len(c))
    for name, x in (("customers", np.ones(len(c))), ("deposit", c["deposit_balance"].to_numpy(float)),
                    ("loan", c["loan_balance"].to_numpy(float))):
        if x.sum() > 0:
            w += WEIGHTS[name] * x / x.sum()
    hx, hy, hw, areas = household_workload(villages, shape)
    lon = np.r_[c["lon"].to_numpy(float), hx]
    lat = np.r_[c["lat"].to_numpy(float), hy]
    weight = np.r_[w, hw]
    return lon, lat, weight, areas, float(weight.sum() + areas["weight"].sum())


def with_measures(cells: gpd.GeoDataFrame, c: pd.DataFrame, villages: pd.DataFrame, shape) -> gpd.GeoDataFrame:
    """Customers, deposit, loan (from points) and households (apportioned) per cell."""
    row = VillageLocator(cells).locate(c["lon"].to_numpy(float), c["lat"].to_numpy(float))
    ok = row >= 0
    out = cells[["cell_id", "geometry"]].copy()
    n = len(cells)
    out["customers"] = np.bincount(row[ok], minlength=n).astype(float)
    out["deposit"] = np.bincount(row[ok], weights=c["deposit_balance"].to_numpy(float)[ok], minlength=n)
    out["loan"] = np.bincount(row[ok], weights=c["loan_balance"].to_numpy(float)[ok], minlength=n)
    hh, _ = apportion_to_cells(out, villages, shape)
    out["households"] = out["cell_id"].map(hh.set_index("cell_id")["households"]).fillna(0.0).to_numpy()
    return out


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (the province's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def invalid_cells(cells: gpd.GeoDataFrame) -> tuple[int, int]:
    """Cells invalid as the grid writer stores them (MultiPolygons, EPSG:4326) and once in EPSG:3857 (tiles)."""
    g = as_multipolygons(cells.geometry.to_numpy())
    g3857 = gpd.GeoSeries(g, crs=4326).to_crs(3857).to_numpy()
    return int((~shapely.is_valid(g)).sum()), int((~shapely.is_valid(g3857)).sum())


def plan(cells: gpd.GeoDataFrame, rms: pd.DataFrame, budget_s: float, work: float | None = None) -> tuple[dict, float]:
    """Plan one county; its key figures and the time from adjacency to the end of balancing."""
    t0, c0 = time.perf_counter(), cpu_s()
    p = TerritoryPlan.from_geodataframe(cells, rms, weights=WEIGHTS, seed=7).solve(time_limit_s=budget_s, work=work)
    elapsed = time.perf_counter() - t0
    s = p.report.summary()
    return {k: s[k] for k in KEYS} | {"cells": len(cells), "work": round(p.work_used), "timed_out": p.timed_out,
                                      "cpu_s": round(cpu_s() - c0, 2)}, elapsed


def run_county(code: str, b: dict, share: float, budget_s: float, before_work: float | None = None) -> dict:
    """Before (res 8) and after (refined) for one county."""
    shape = b["counties"].set_index("adcode").geometry.loc[code]
    c = b["customers"][b["customers"]["county_code"] == code]
    rms = b["rms"][b["rms"]["county_code"] == code].reset_index(drop=True)
    villages = b["villages"][b["villages"]["county_code"] == code]
    base = build_h3_cells(shape, 8)
    t0 = time.perf_counter()
    lon, lat, w, areas, total = refine_inputs(c, villages, shape)
    limit = refine_limit(total, float(rms["capacity"].sum()), share)
    fine = refine_h3_cells(base, lon, lat, w, limit=limit, max_res=11, areas=areas)
    t_refine = time.perf_counter() - t0
    out = {"county": code, "rms": len(rms), "customers": len(c), "refine_s": round(t_refine, 2)}
    for label, cells in (("before", base), ("after", fine)):
        figures, t = plan(with_measures(cells, c, villages, shape), rms, budget_s,
                          before_work if label == "before" else None)
        bad4326, bad3857 = invalid_cells(cells)
        out[label] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()} | {
            "plan_s": round(t, 2), "invalid_4326": bad4326, "invalid_3857": bad3857}
    return out


def run_province(b: dict, codes: list[str], share: float, budget_s: float) -> dict:
    """All counties' refined cells and RMs, planned by county in one call (two workers), timed."""
    parts = []
    for code in codes:
        shape = b["counties"].set_index("adcode").geometry.loc[code]
        c = b["customers"][b["customers"]["county_code"] == code]
        rms = b["rms"][b["rms"]["county_code"] == code]
        villages = b["villages"][b["villages"]["county_code"] == code]
        lon, lat, w, areas, total = refine_inputs(c, villages, shape)
        fine = refine_h3_cells(build_h3_cells(shape, 8), lon, lat, w, areas=areas,
                               limit=refine_limit(total, float(rms["capacity"].sum()), share), max_res=11)
        parts.append(with_measures(fine, c, villages, shape).assign(county_code=code,
                                                                     cell_id=lambda d, k=code: k + ":" + d["cell_id"]))
    cells = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326)
    rms = b["rms"][b["rms"]["county_code"].isin(codes)].reset_index(drop=True)
    t0, c0 = time.perf_counter(), cpu_s()
    adj = cell_adjacency(cells, return_virtual=True)
    t_adj = time.perf_counter() - t0
    p = TerritoryPlan.from_geodataframe(cells, rms, weights=WEIGHTS, seed=7, adjacency=adj,
                                        region_column="county_code")
    p.solve(time_limit_s=max(5.0, budget_s - t_adj), report=False, workers=2)
    total, cpu = time.perf_counter() - t0, cpu_s() - c0
    rep = p.evaluate(p.assignment)
    pr = rep.per_region
    return {"cells": len(cells), "rms": len(rms), "adjacency_s": round(t_adj, 2), "total_s": round(total, 2),
            "cpu_s": round(cpu, 2), "work": round(p.work_used), "timed_out": p.timed_out, "max_abs_deviation": round(rep.max_abs_deviation, 4), "contiguity": round(rep.contiguity, 4),
            "empty_rms": rep.empty_rms, "counties_over_5pct": int((pr["max_abs_deviation"] > 0.05).sum())}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every county before/after, then the province."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small counties, no province")
    ap.add_argument("--customers", type=int, default=600_000, help="synthetic customers over the province")
    ap.add_argument("--share", type=float, default=0.2, help="refine cells above this share of an RM's target")
    ap.add_argument("--county-budget", type=float, default=900.0,
                    help="wall-clock safety net per county plan, s (the work budget decides where plans stop)")
    ap.add_argument("--before-work", type=float, default=100_000,
                    help="work units for the unrefined plans (they cannot reach the tolerance; 0: their default budget)")
    ap.add_argument("--province-budget", type=float, default=57.0, help="wall-clock safety net for the province plan, s")
    ap.add_argument("--counties", default=None, help="comma-separated adcodes (default: all 22)")
    ap.add_argument("--province-only", action="store_true",
                    help="skip the per-county plans: only the province plan (refined cells, two workers), timed")
    args = ap.parse_args(argv)
    with open("/proc/loadavg") as fh:
        print("load average at the start:", " ".join(fh.read().split()[:3]), flush=True)
    b = bank(60_000 if args.quick else args.customers)
    codes = sorted(b["counties"]["adcode"].astype(str))
    if args.counties:
        codes = args.counties.split(",")
    elif args.quick:
        codes = ["640424", "640423"]
    rows = []
    for code in ([] if args.province_only else codes):
        r = run_county(code, b, args.share, args.county_budget, args.before_work or None)
        rows.append(r)
        be, af = r["before"], r["after"]
        print(f"{code}: {r['rms']} RMs, {r['customers']} customers, refine {r['refine_s']} s")
        for label, f in (("before", be), ("after ", af)):
            print(f"  {label} {f['cells']:6d} cells (invalid {f['invalid_4326']}/{f['invalid_3857']})  raw "
                  f"{f['max_abs_deviation']:.1%}  adjusted {f['adjusted_max_deviation']:.1%}  contiguity "
                  f"{f['contiguity']:.0%}  compactness {f['compactness_mean']}  km {f['mean_km']}/{f['max_km']}  "
                  f"empty {f['empty_rms']}  work {f['work']}{' TIMED OUT' if f['timed_out'] else ''}  "
                  f"{f['plan_s']} s (CPU {f['cpu_s']} s)")
        if af["unreachable_5pct"]:
            print("    5% unreachable after refining: " + "; ".join(af["unreachable_5pct"]))
        sys.stdout.flush()
    after = [r["after"] for r in rows]
    summary = {
        "counties": len(rows),
        "within_5pct_before": sum(r["before"]["max_abs_deviation"] <= 0.05 for r in rows),
        "within_5pct_after": sum(f["max_abs_deviation"] <= 0.05 for f in after),
        "worst_after": max((f["max_abs_deviation"] for f in after), default=None),
        "all_contiguous_after": all(f["contiguity"] == 1.0 for f in after),
        "empty_rms_after": sum(f["empty_rms"] for f in after),
        "timed_out": sum(f["timed_out"] for r in rows for f in (r["before"], r["after"])),
        "invalid_cells_4326": sum(f["invalid_4326"] for r in rows for f in (r["before"], r["after"])),
        "invalid_cells_3857": sum(f["invalid_3857"] for r in rows for f in (r["before"], r["after"])),
    }
    print("summary:", summary)
    province = None
    if not args.quick:
        province = run_province(b, codes, args.share, args.province_budget)
        print("province:", province)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    print("load average at the end:", " ".join(load))
    print(json.dumps({"bench": "territories", "quick": args.quick, "loadavg_end": load, "share": args.share, "summary": summary,
                      "counties": rows, "province": province}))


if __name__ == "__main__":
    main()
