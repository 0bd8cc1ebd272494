"""Load test of the HTTP API on loopback: many concurrent clients against cell or customer listings.

A throwaway database gets one county (640104), an H3 grid of a few thousand
cells over it, its villages, an outlet, an RM owning a tenth of the cells, a
planner and that RM as users, ``--customers`` customers at random points of the
county placed in the grid (``geodata.assign``) and the grid's gap scores (as
after ``gridmkt demo``). The API runs under uvicorn in a subprocess on
127.0.0.1; ``--clients`` async httpx clients ask for ``--seconds``:

- ``--route cells`` (default): ``GET /api/v1/grids/{id}/cells?bbox=...&limit=...``
  with random boxes, planner and RM tokens alternating;
- ``--route customers``: the RM's ``GET /api/v1/customers?limit=...&offset=...``
  (the customers of the cells the RM owns), random pages.

Reported: p50/p95/p99 latency, requests per second, errors. Baseline: one
client asking the same kind of requests sequentially.

    python bench/bench_api_load.py --seconds 30 --clients 50
    python bench/bench_api_load.py --seconds 30 --clients 50 --route customers
    python bench/bench_api_load.py --seconds 3 --clients 5 --res 8 --customers 2000   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import subprocess
import sys
import time

import h3
import httpx
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text

from bench.common import DATA, ROOT, emit, percentiles_ms, start_api, stop_api, throwaway_database

COUNTY = "640104"
SECRET = "bench-secret-key-of-at-least-32-bytes!"


def _customers(engine, county, le: int, n: int, rng: np.random.Generator) -> None:
    """``n`` customers at random points of the county (COPY: seconds for 100,000)."""
    x0, y0, x1, y1 = county.bounds
    xs, ys = np.empty(0), np.empty(0)
    while len(xs) < n:
        x, y = rng.uniform(x0, x1, 2 * n), rng.uniform(y0, y1, 2 * n)
        keep = shapely.contains_xy(county, x, y)
        xs, ys = np.concatenate([xs, x[keep]]), np.concatenate([ys, y[keep]])
    lines = [f"C{i:08d}\t{le}\t{COUNTY}\t{rng.integers(0, 500_000)}\tSRID=4326;POINT({x:.6f} {y:.6f})\n"
             for i, (x, y) in enumerate(zip(xs[:n], ys[:n], strict=True))]
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.copy_expert("COPY customer (customer_id, legal_entity_id, county_code, deposit_balance, geom)"
                            " FROM STDIN", io.StringIO("".join(lines)))
        raw.commit()
    finally:
        raw.close()


def seed(engine, res: int, customers: int = 0) -> dict:
    """County, villages, outlet, RM, H3 grid with cells, territory, users, customers placed in the grid and
    gap scores; returns what requests need."""
    sys.path.insert(0, str(ROOT))
    from geodata import assign, gaps, users

    counties = json.loads((DATA / "ningxia_counties_gcj02.geojson").read_text())
    feature = next(f for f in counties["features"] if f["properties"]["adcode"] == COUNTY)
    county = shapely.geometry.shape(feature["geometry"])
    cells = sorted(h3.geo_to_cells(feature["geometry"], res))
    polys = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]).wkt for c in cells]
    villages = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str, "county_code": str})
    villages = villages[villages["county_code"] == COUNTY]
    with engine.begin() as c:
        le = c.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LEA', 'bench') RETURNING id")).scalar_one()
        c.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom)"
                       " VALUES (:a, 'bench', :le, ST_Multi(ST_GeomFromText(:w, 4326)))"),
                  {"a": COUNTY, "le": le, "w": county.wkt})
        c.execute(text("INSERT INTO village (code, name, township_code, county_code, coord_level, geom)"
                       " VALUES (:c, :n, :t, :k, :l, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                  [{"c": r.code, "n": r.name, "t": r.code[:9], "k": COUNTY, "l": r.coord_level,
                    "x": r.lon_wgs84, "y": r.lat_wgs84} for r in villages.itertuples()])
        c.execute(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom)"
                       " VALUES ('O1', 'o', :le, :k, ST_PointOnSurface(ST_GeomFromText(:w, 4326)))"),
                  {"le": le, "k": COUNTY, "w": county.wkt})
        c.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) VALUES ('R1', 'r', :le, 'O1')"),
                  {"le": le})
        grid = c.execute(text("INSERT INTO grid (county_code, kind, resolution, cell_count)"
                              " VALUES (:k, 'h3', :r, :n) RETURNING id"),
                         {"k": COUNTY, "r": res, "n": len(cells)}).scalar_one()
        c.execute(text("INSERT INTO cell (grid_id, cell_id, area_km2, geom)"
                       " VALUES (:g, :c, :a, ST_Multi(ST_GeomFromText(:w, 4326)))"),
                  [{"g": grid, "c": cell, "a": h3.cell_area(cell, "km^2"), "w": w}
                   for cell, w in zip(cells, polys, strict=True)])
        c.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by)"
                       " VALUES (:g, :c, 'R1', 'bench', 'bench')"),
                  [{"g": grid, "c": cell} for cell in cells[::10]])
        users.create_user(c, username="planner", password_hash="-", role="planner", legal_entity_id=le)
        users.create_user(c, username="rm", password_hash="-", role="rm", legal_entity_id=le, rm_code="R1")
    if customers:
        _customers(engine, county, le, customers, np.random.default_rng(7))
    with engine.begin() as c:
        assign.assign_customers(c, grid_id=grid)
        gaps.score_grid(c, grid_id=grid, trigger="bench")
        rm_customers = c.execute(text(
            "SELECT count(*) FROM customer_cell cc JOIN territory t ON t.grid_id = cc.grid_id"
            " AND t.cell_id = cc.cell_id AND t.valid_to IS NULL AND t.role = 'owner' WHERE t.rm_code = 'R1'")).scalar()
        c.execute(text("ANALYZE"))
    return {"grid_id": grid, "cells": len(cells), "bounds": county.bounds, "customers": customers,
            "rm_customers": rm_customers}


def start_server(db_url: str, port: int, workers: int) -> subprocess.Popen:
    """uvicorn in a subprocess on loopback (bench.common.start_api); returns once /health answers."""
    return start_api(db_url, port, factory='api.app:create_app', secret=SECRET, workers=workers, timeout=180)


def make_request(rng: random.Random, path: str, bounds, pages: int | None = None) -> tuple[str, dict]:
    """A listing with a random box of 1.5 to 8 km inside the county and a random page size; with
    ``pages``, a random page of the first ``pages`` hundred rows instead of a box."""
    if pages is not None:
        limit = rng.choice((50, 100, 200))
        return path, {"limit": limit, "offset": rng.randrange(0, max(1, pages * 100 - limit + 1))}
    x0, y0, x1, y1 = bounds
    w, h = rng.uniform(0.015, 0.08), rng.uniform(0.015, 0.07)
    x, y = rng.uniform(x0, x1 - w), rng.uniform(y0, y1 - h)
    return path, {"bbox": f"{x:.5f},{y:.5f},{x + w:.5f},{y + h:.5f}", "limit": rng.choice((50, 100, 200))}


async def run_clients(base: str, path: str, bounds, tokens: list[str], clients: int, seconds: float,
                      seed: int, max_requests: int, pages: int | None = None) -> tuple[list[float], int, int, float]:
    """``clients`` concurrent loops until the deadline; latencies (s), errors, requests, elapsed."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        start = time.perf_counter()
        deadline = start + seconds

        async def one(k: int) -> None:
            nonlocal errors
            rng = random.Random(seed * 1000 + k)
            headers = {"Authorization": f"Bearer {tokens[k % len(tokens)]}"}
            while time.perf_counter() < deadline and len(latencies) + errors < max_requests:
                url, params = make_request(rng, path, bounds, pages)
                t = time.perf_counter()
                try:
                    r = await http.get(url, params=params, headers=headers)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

        await asyncio.gather(*(one(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    return latencies, errors, len(latencies) + errors, elapsed


def summary(latencies: list[float], errors: int, requests: int, elapsed: float) -> dict:
    """Percentiles in milliseconds, throughput and error count."""
    return {"requests": requests, "errors": errors, "rps": round(requests / elapsed, 1),
            **percentiles_ms(np.asarray(latencies) * 1000), "seconds": round(elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the concurrent run")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients")
    ap.add_argument("--baseline-seconds", type=float, default=None,
                    help="length of the single-client run (default: a third of --seconds, at most 10)")
    ap.add_argument("--res", type=int, default=9, help="H3 resolution of the seeded grid (9: ~8k cells)")
    ap.add_argument("--route", choices=("cells", "customers"), default="cells",
                    help="cells: the cell listing (planner and RM); customers: the RM's customer listing")
    ap.add_argument("--customers", type=int, default=100_000, help="customers seeded (the demo has 100,000)")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--max-requests", type=int, default=200_000, help="hard cap on requests per run")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not (0 < args.seconds <= 600 and 0 < args.clients <= 200 and 0 <= args.customers <= 2_000_000):
        ap.error("keep it bounded: --seconds in (0, 600], --clients in (0, 200], --customers in [0, 2000000]")
    baseline_s = args.baseline_seconds or min(10.0, max(1.0, args.seconds / 3))

    sys.path.insert(0, str(ROOT))
    from api.auth import create_token
    from api.settings import AuthSettings

    with throwaway_database() as (engine, _info):
        t = time.perf_counter()
        seeded = seed(engine, args.res, args.customers)
        seed_s = time.perf_counter() - t
        auth = AuthSettings(secret_key=SECRET)
        tokens = [create_token(auth, username=u, role=r) for u, r in (("planner", "planner"), ("rm", "rm"))]
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = start_server(engine.url.render_as_string(hide_password=False), port, args.workers)
        try:
            base = f"http://127.0.0.1:{port}"
            paths = httpx.get(f"{base}/openapi.json", timeout=120).json()["paths"]
            pages = None
            if args.route == "customers":
                path, tokens = "/api/v1/customers", tokens[1:]  # the RM's
                pages = max(1, seeded["rm_customers"] // 100)
            else:
                route = "/api/v1/grids/{grid_id}/cells"
                path = (route.replace("{grid_id}", str(seeded["grid_id"])) if route in paths
                        else "/api/v1/villages")
            # Warm up connections and plans before measuring.
            asyncio.run(run_clients(base, path, seeded["bounds"], tokens, 2, 1.0, args.seed + 7, 50, pages))
            seq = summary(*asyncio.run(run_clients(base, path, seeded["bounds"], tokens, 1, baseline_s,
                                                   args.seed + 1, args.max_requests, pages)))
            conc = summary(*asyncio.run(run_clients(base, path, seeded["bounds"], tokens, args.clients,
                                                    args.seconds, args.seed, args.max_requests, pages)))
        finally:
            stop_api(proc)

    print(f"route {path}: {seeded['cells']} cells (H3 res {args.res}), {seeded['customers']} customers"
          f" ({seeded['rm_customers']} the RM's), seeded in {seed_s:.1f} s, "
          f"{args.workers} uvicorn worker(s), {os.cpu_count()} CPUs")
    print(f"baseline, 1 client sequential: p50 {seq['p50_ms']} ms, p95 {seq['p95_ms']} ms, "
          f"{seq['rps']} req/s, {seq['errors']} errors")
    print(f"ours, {args.clients} concurrent clients: p50 {conc['p50_ms']} ms, p95 {conc['p95_ms']} ms, "
          f"p99 {conc['p99_ms']} ms, {conc['rps']} req/s, {conc['errors']} errors")
    ratio = conc["rps"] / seq["rps"] if seq["rps"] else float("nan")
    print(f"throughput ratio concurrent/sequential: {ratio:.2f}")
    emit({"bench": "api_load", "route": path, "cells": seeded["cells"], "customers": seeded["customers"],
          "rm_customers": seeded["rm_customers"], "clients": args.clients,
          "workers": args.workers, "concurrent": conc, "sequential": seq,
          "throughput_ratio": round(ratio, 2)})


if __name__ == "__main__":
    main()
