"""Vector tiles through HTTP, login and scoping included, against GeoJSON on the same data.

A throwaway database gets the six counties of Yinchuan (6401xx), their villages,
one H3 res-8 grid per county (``geodata.grids.build_grid``), ``--n`` customers
scattered around real village points (``ningxia_villages.csv`` lon_wgs84/lat_wgs84;
wider around township/county seat points, which stand for many villages), placed
by ``geodata.assign.assign_customers``, RMs owning blocks of 50 cells, and a gap
run. The API runs under uvicorn in a subprocess on 127.0.0.1. A planner signs in
with ``POST /api/v1/auth/session`` (the cookie a browser gets) and fetches
``/tiles/{layer}/{z}/{x}/{y}.pbf`` for random tiles holding customers, z10-z14,
every layer. Baseline, same tiles, same user (bearer token): the cells as
GeoJSON from ``GET /api/v1/grids/{id}/cells?bbox=`` (every page), and the
customers as a plain GeoJSON of the tile's box from a route this script adds to
its own app only (``/bench/customers.geojson``). Targets: p95 <= 50 ms, no tile
over 500 KB.

    python bench/bench_tiles.py --n 1000000
    python bench/bench_tiles.py --n 100000 --tiles 10 --baseline-tiles 3    # smoke run
"""

from __future__ import annotations

import argparse
import io
import math
import socket
import subprocess
import sys
import time
from typing import Annotated

import httpx
import numpy as np
import pandas as pd
from fastapi import APIRouter, Query
from sqlalchemy import text

from api.deps import ConnDep, UserDep, parse_bbox
from bench.common import DATA, ROOT, emit, start_api, throwaway_database
from geodata.scope import where

COUNTIES = ("640104", "640105", "640106", "640121", "640122", "640181")
SECRET = "bench-secret-key-of-at-least-32-bytes!"
PASSWORD = "bench password"
ZOOMS = (10, 11, 12, 13, 14)
LAYERS = ("cells", "territories", "customers")
CELLS_PER_RM = 50


def bench_app():
    """uvicorn factory: the product app plus the baseline customers GeoJSON route (bench only)."""
    from api.app import create_app

    router = APIRouter()

    @router.get("/bench/customers.geojson")
    def customers_geojson(conn: ConnDep, user: UserDep, grid_id: Annotated[int, Query()],
                          bbox: Annotated[str, Query()]) -> dict:
        x0, y0, x1, y1 = parse_bbox(bbox)
        cond = where(user.scope, "customer", "c")
        rows = conn.execute(text(
            "SELECT c.customer_id, ST_X(c.geom), ST_Y(c.geom) FROM customer c JOIN grid g ON g.id = :g"
            f" WHERE c.county_code = g.county_code AND c.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
            f" AND {cond.sql}"), {**cond.params, "g": grid_id, "x0": x0, "y0": y0, "x1": x1, "y1": y1})
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
             "properties": {"customer_id": cid}} for cid, x, y in rows]}

    app = create_app()
    app.include_router(router)
    return app


def make_customers(n: int, villages: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` customers around village points: sigma ~300 m at village points, ~1.5 km at seat points."""
    pick = rng.integers(0, len(villages), n)
    v = villages.iloc[pick]
    sigma = np.where(v["coord_level"].to_numpy() == "village", 0.003, 0.015)
    order = np.argsort(pick, kind="stable")  # stored village by village, as a bank's export would be
    lon = (v["lon_wgs84"].to_numpy() + rng.normal(0, 1, n) * sigma)[order]
    lat = (v["lat_wgs84"].to_numpy() + rng.normal(0, 1, n) * sigma * 0.8)[order]
    return pd.DataFrame({"customer_id": [f"C{i:08d}" for i in range(n)],
                         "county_code": v["county_code"].to_numpy()[order],
                         "village_code": v["code"].to_numpy()[order], "lon": lon, "lat": lat})


def seed(engine, n: int, seed_: int) -> dict:
    """Counties, villages, grids, RMs and territories, customers (COPY), assignment, a gap run, a planner."""
    sys.path.insert(0, str(ROOT))
    import json

    import shapely

    from api.auth import hash_password
    from geodata import assign, grids, users

    rng = np.random.default_rng(seed_)
    counties = json.loads((DATA / "ningxia_counties_gcj02.geojson").read_text())
    feats = {f["properties"]["adcode"]: f for f in counties["features"] if f["properties"]["adcode"] in COUNTIES}
    villages = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str, "county_code": str})
    villages = villages[villages["county_code"].isin(COUNTIES) & villages["lon_wgs84"].notna()]
    customers = make_customers(n, villages, rng)
    timings = {}
    t = time.perf_counter()
    with engine.begin() as c:
        le = c.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LE', 'bench') RETURNING id")).scalar_one()
        for code, f in feats.items():
            c.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom)"
                           " VALUES (:a, :n, :le, ST_Multi(ST_GeomFromText(:w, 4326)))"),
                      {"a": code, "n": f["properties"].get("name", code), "le": le,
                       "w": shapely.geometry.shape(f["geometry"]).wkt})
            c.execute(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom)"
                           " VALUES (:o, :o, :le, :k, ST_PointOnSurface((SELECT geom FROM county WHERE adcode = :k)))"),
                      {"o": f"O{code}", "le": le, "k": code})
        c.execute(text("INSERT INTO village (code, name, township_code, county_code, coord_level, geom)"
                       " VALUES (:c, :n, :t, :k, :l, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                  [{"c": r.code, "n": r.name, "t": r.code[:9], "k": r.county_code, "l": r.coord_level,
                    "x": r.lon_wgs84, "y": r.lat_wgs84} for r in villages.itertuples()])
        grid_ids = [grids.build_grid(c, county_code=k, kind="h3", resolution=8)["id"] for k in feats]
        rms = 0
        for gid, k in zip(grid_ids, feats, strict=True):
            cells = [r[0] for r in c.execute(text("SELECT cell_id FROM cell WHERE grid_id = :g ORDER BY cell_id"),
                                             {"g": gid})]
            for i in range(0, len(cells), CELLS_PER_RM):
                code = f"R{k}_{i // CELLS_PER_RM}"
                c.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) VALUES (:c, :c, :le, :o)"),
                          {"c": code, "le": le, "o": f"O{k}"})
                c.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by)"
                               " VALUES (:g, :c, :r, 'bench', 'bench')"),
                          [{"g": gid, "c": cell, "r": code} for cell in cells[i:i + CELLS_PER_RM]])
                rms += 1
            run = c.execute(text("INSERT INTO gap_run (grid_id, config, trigger) VALUES (:g, '{}', 'bench')"
                                 " RETURNING id"), {"g": gid}).scalar_one()
            c.execute(text("INSERT INTO gap_score (gap_run_id, cell_id, score, gap_class, components, measures)"
                           " SELECT :r, cell_id, random() * 100, (ARRAY['covered','thin','blank'])[1 + (random() * 2)::int],"
                           " '{}', '{}' FROM cell WHERE grid_id = :g"), {"r": run, "g": gid})
        users.create_user(c, username="planner", password_hash=hash_password(PASSWORD), role="planner",
                          legal_entity_id=le)
        buf = io.StringIO()
        customers.assign(le=le, geom=[f"SRID=4326;POINT({x:.6f} {y:.6f})" for x, y in
                                      zip(customers["lon"], customers["lat"], strict=True)])[
            ["customer_id", "le", "county_code", "village_code", "geom"]].to_csv(buf, sep="\t", header=False,
                                                                                 index=False)
        buf.seek(0)
        with c.connection.dbapi_connection.cursor() as cur:
            cur.copy_expert("COPY customer (customer_id, legal_entity_id, county_code, village_code, geom)"
                            " FROM STDIN", buf)
    timings["load_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    with engine.begin() as c:
        placed = [assign.assign_customers(c, grid_id=g) for g in grid_ids]
    timings["assign_s"] = round(time.perf_counter() - t, 1)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))
    return {"grid_ids": grid_ids, "counties": list(feats), "rms": rms, "customers": customers,
            "placed": sum(p["customers"] - p["outside_county"] - p["no_location"] for p in placed),
            **timings}


def start_server(db_url: str, port: int) -> subprocess.Popen:
    """uvicorn in a subprocess on loopback (bench.common.start_api); returns once /health answers."""
    return start_api(db_url, port, factory='bench.bench_tiles:bench_app', secret=SECRET)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The z/x/y tile holding a WGS84 point."""
    n = 2**z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def tile_bbox(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """minlon, minlat, maxlon, maxlat of a tile."""
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def sample_tiles(customers: pd.DataFrame, grid_of: dict[str, int], z: int, k: int,
                 rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Up to ``k`` distinct tiles (grid_id, z, x, y) at zoom z under randomly drawn customers."""
    out: dict[tuple[int, int], int] = {}
    rows = customers.iloc[rng.integers(0, len(customers), 20 * k)]
    for lon, lat, county in zip(rows["lon"], rows["lat"], rows["county_code"], strict=True):
        out.setdefault(tile_of(lon, lat, z), grid_of[county])
        if len(out) >= k:
            break
    return [(g, z, x, y) for (x, y), g in out.items()]


def stats(ms: list[float], sizes: list[int]) -> dict:
    """Median and p95 time (ms), median and largest size (KB)."""
    a = np.asarray(ms) if ms else np.asarray([np.nan])
    s = np.asarray(sizes) if sizes else np.asarray([0])
    return {"n": len(ms), "median_ms": round(float(np.median(a)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "median_kb": round(float(np.median(s)) / 1024, 1), "max_kb": round(float(s.max()) / 1024, 1)}


def timed(http: httpx.Client, url: str, **kw) -> tuple[float, httpx.Response]:
    t = time.perf_counter()
    r = http.get(url, **kw)
    return (time.perf_counter() - t) * 1000, r


def baseline_cells(http: httpx.Client, grid_id: int, bbox) -> tuple[float, int]:
    """Every page of the cells GeoJSON in the tile's box: total time (ms) and bytes."""
    total_ms, size, offset = 0.0, 0, 0
    while offset is not None and offset < 200_000:
        ms, r = timed(http, f"/api/v1/grids/{grid_id}/cells",
                      params={"bbox": ",".join(f"{v:.6f}" for v in bbox), "limit": 1000, "offset": offset})
        r.raise_for_status()
        total_ms += ms
        size += len(r.content)
        offset = r.json()["next_offset"]
    return total_ms, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="customers (1M; 10M for the big run)")
    ap.add_argument("--tiles", type=int, default=40, help="random tiles per zoom and layer")
    ap.add_argument("--baseline-tiles", type=int, default=8, help="of those, how many also through GeoJSON")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not (1000 <= args.n <= 20_000_000 and 1 <= args.tiles <= 500 and 0 <= args.baseline_tiles <= args.tiles):
        ap.error("keep it bounded: --n in [1000, 2e7], --tiles in [1, 500], --baseline-tiles <= --tiles")
    rng = np.random.default_rng(args.seed + 1)

    with throwaway_database() as (engine, _info):
        seeded = seed(engine, args.n, args.seed)
        customers = seeded.pop("customers")
        grid_of = dict(zip(seeded["counties"], seeded["grid_ids"], strict=True))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = start_server(engine.url.render_as_string(hide_password=False), port)
        results: dict = {}
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=120) as http, httpx.Client(base_url=base, timeout=120) as api:
                login_ms, r = timed(http, "/maps/login")
                t = time.perf_counter()
                r = http.post("/api/v1/auth/session", data={"username": "planner", "password": PASSWORD})
                r.raise_for_status()
                login_ms = (time.perf_counter() - t) * 1000
                tok = api.post("/api/v1/auth/token", data={"username": "planner", "password": PASSWORD})
                api.headers["Authorization"] = f"Bearer {tok.json()['access_token']}"
                for z in ZOOMS:
                    todo = sample_tiles(customers, grid_of, z, args.tiles, rng)
                    for g, zz, x, y in todo[:3]:  # warm plans and connections
                        http.get(f"/tiles/cells/{zz}/{x}/{y}.pbf", params={"grid_id": g})
                    for layer in LAYERS:
                        ms, sizes, empty = [], [], 0
                        for g, zz, x, y in todo:
                            took, r = timed(http, f"/tiles/{layer}/{zz}/{x}/{y}.pbf", params={"grid_id": g})
                            if r.status_code not in (200, 204):
                                raise RuntimeError(f"{layer} {zz}/{x}/{y}: {r.status_code} {r.text[:200]}")
                            empty += r.status_code == 204
                            ms.append(took)
                            sizes.append(len(r.content))
                        base_ms, base_sizes = [], []
                        for g, zz, x, y in todo[:args.baseline_tiles]:
                            bbox = tile_bbox(zz, x, y)
                            if layer == "customers":
                                took, r = timed(api, "/bench/customers.geojson", params={
                                    "grid_id": g, "bbox": ",".join(f"{v:.6f}" for v in bbox)})
                                r.raise_for_status()
                                took, size = took, len(r.content)
                            else:
                                took, size = baseline_cells(api, g, bbox)
                            base_ms.append(took)
                            base_sizes.append(size)
                        res = {"tile": {**stats(ms, sizes), "empty": empty}, "geojson": stats(base_ms, base_sizes)}
                        tm, bm = res["tile"]["median_ms"], res["geojson"]["median_ms"]
                        res["speedup_median"] = round(bm / tm, 1) if base_ms and tm > 0 else None
                        results[f"{layer}_z{z}"] = res
                        print(f"z{z} {layer:12s} tile median {tm:7.1f} ms p95 {res['tile']['p95_ms']:7.1f} ms"
                              f" median {res['tile']['median_kb']:7.1f} KB max {res['tile']['max_kb']:7.1f} KB"
                              f" | geojson median {bm:8.1f} ms {res['geojson']['median_kb']:9.1f} KB"
                              f" | x{res['speedup_median']}", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    tile_p95 = max(v["tile"]["p95_ms"] for v in results.values())
    tile_max_kb = max(v["tile"]["max_kb"] for v in results.values())
    per_layer = {layer: {"p95_ms": max(v["tile"]["p95_ms"] for k, v in results.items() if k.startswith(layer)),
                         "max_kb": max(v["tile"]["max_kb"] for k, v in results.items() if k.startswith(layer))}
                 for layer in LAYERS}
    print(f"{args.n:,} customers ({seeded['placed']:,} placed) in {len(seeded['grid_ids'])} H3 res-8 grids, "
          f"{seeded['rms']} RMs; load {seeded['load_s']} s, assign {seeded['assign_s']} s; login {login_ms:.0f} ms")
    print(f"worst p95 over layers and zooms {tile_p95} ms (target 50), largest tile {tile_max_kb} KB (target 500)")
    emit({"bench": "tiles", "customers": args.n, "placed": seeded["placed"], "grids": len(seeded["grid_ids"]),
          "tiles_per_zoom_layer": args.tiles, "baseline_tiles": args.baseline_tiles, "login_ms": round(login_ms, 1),
          "worst_p95_ms": tile_p95, "largest_kb": tile_max_kb, "per_layer": per_layer,
          "p95_target_met": tile_p95 <= 50, "size_target_met": tile_max_kb <= 500, "results": results})


if __name__ == "__main__":
    main()
