"""OGC API latency on loopback against today's /api/v1 equivalents, same data, same run.

A throwaway database gets the seeding of ``bench_api_load`` (county 640104, an
H3 grid of a few thousand cells at ``--res``, an RM owning a tenth of them, a
planner and that RM). The API runs under uvicorn in a subprocess on 127.0.0.1.
One client, sequential requests, ``--rounds`` each, as the planner:

- an items page of the grid's cells, ``limit=1000`` at successive offsets:
  ``/ogc/collections/cells-{id}/items`` (ours) against
  ``/api/v1/grids/{id}/cells?limit=1000`` (the baseline; it pages at most 1000);
- one vector tile over the county, z10..z13:
  ``/ogc/collections/cells-{id}/tiles/WebMercatorQuad/{z}/{row}/{col}`` against
  ``/tiles/cells/{z}/{x}/{y}.pbf?grid_id=`` (the same tile).

Prints p50/p95 of each and the ratio ours/baseline; the last line is one JSON object.

    python bench/bench_ogc.py --rounds 30
    python bench/bench_ogc.py --rounds 3        # smoke run
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

import httpx

from bench.bench_api_load import SECRET, seed
from bench.common import (
    ROOT,
    emit,
    percentiles_ms,
    start_api,
    stop_api,
    throwaway_database,
    tile_of,
)


def _time(http: httpx.Client, urls: list[str], headers: dict) -> dict:
    ms = []
    for url in urls:
        t = time.perf_counter()
        r = http.get(url, headers=headers)
        ms.append((time.perf_counter() - t) * 1000)
        assert r.status_code in (200, 204), (url, r.status_code, r.text[:200])
    return {"n": len(ms), **percentiles_ms(ms, (50, 95))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30, help="requests per measured kind")
    ap.add_argument("--res", type=int, default=9, help="H3 resolution of the seeded grid (9: ~8k cells)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from api.auth import create_token
    from api.settings import AuthSettings

    with throwaway_database() as (engine, _info):
        seeded = seed(engine, args.res)
        gid, (x0, y0, x1, y1) = seeded["grid_id"], seeded["bounds"]
        token = create_token(AuthSettings(secret_key=SECRET), username="planner", role="planner")
        headers = {"Authorization": f"Bearer {token}"}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = start_api(engine.url.render_as_string(hide_password=False), port, secret=SECRET, timeout=300)
        try:
            base = f"http://127.0.0.1:{port}"
            pages = max(1, seeded["cells"] // 1000)
            offsets = [(i % pages) * 1000 for i in range(args.rounds)]
            ogc_items = [f"{base}/ogc/collections/cells-{gid}/items?limit=1000&offset={o}" for o in offsets]
            api_items = [f"{base}/api/v1/grids/{gid}/cells?limit=1000&offset={o}" for o in offsets]
            tiles = []
            for i in range(args.rounds):
                z = 10 + i % 4
                x, y = tile_of(x0 + (x1 - x0) * ((i * 0.37) % 1), y0 + (y1 - y0) * ((i * 0.61) % 1), z)
                tiles.append((z, x, y))
            ogc_tiles = [f"{base}/ogc/collections/cells-{gid}/tiles/WebMercatorQuad/{z}/{y}/{x}" for z, x, y in tiles]
            api_tiles = [f"{base}/tiles/cells/{z}/{x}/{y}.pbf?grid_id={gid}" for z, x, y in tiles]
            with httpx.Client(timeout=60) as http:
                for url in (ogc_items[0], api_items[0], ogc_tiles[0], api_tiles[0]):  # warm up
                    http.get(url, headers=headers)
                figures = {}
                # Interleave ours and the baseline so load changes hit both alike.
                for name, ours, theirs in (("items", ogc_items, api_items), ("tiles", ogc_tiles, api_tiles)):
                    a, b = _time(http, ours, headers), _time(http, theirs, headers)
                    a2, b2 = _time(http, ours, headers), _time(http, theirs, headers)
                    ours_p50 = min(a["p50_ms"], a2["p50_ms"])
                    base_p50 = min(b["p50_ms"], b2["p50_ms"])
                    figures[name] = {"ogc": a2, "api_v1": b2, "ratio_p50": round(ours_p50 / base_p50, 2)}
        finally:
            stop_api(proc)

    load = os.getloadavg()[0]
    print(f"{seeded['cells']} cells (H3 res {args.res}), {args.rounds} requests each, load {load:.1f}")
    for name, f in figures.items():
        print(f"{name}: /ogc p50 {f['ogc']['p50_ms']} ms p95 {f['ogc']['p95_ms']} ms; "
              f"/api/v1 p50 {f['api_v1']['p50_ms']} ms p95 {f['api_v1']['p95_ms']} ms; ratio {f['ratio_p50']}")
    emit({"bench": "ogc", "cells": seeded["cells"], "rounds": args.rounds, "load": round(load, 1), **figures})


if __name__ == "__main__":
    main()
