"""Load test over loopback: a province's RMs open their phone map in the morning, with and without a replica.

A throwaway primary (wal_level=replica, ``geodata.standby``) gets one county (640104) with an H3 grid,
``--customers`` customers placed in it (as ``bench/bench_api_load.py`` seeds it) and ``--rms`` RMs, each
owning a run of neighbouring cells, each an ``rm`` user. A hot standby is cloned from it with
``pg_basebackup -R``. The API runs under uvicorn with ``--workers`` processes on 127.0.0.1, twice on
the same data: reads on the primary only, then with ``GRIDMKT_READ_DATABASE_URLS`` naming the standby.

One RM's morning: ``GET /maps/rm`` (the phone map page: the RM's cells and customers in the page; its audit
row goes to the primary), ``GET /api/v1/auth/me``, then the ``cells`` and ``customers`` vector tiles at
zoom 14 over the RM's cells (at most ``--tiles`` each). ``--clients`` concurrent clients take the RMs
in turn until every RM is served or ``--seconds`` have passed (the run is bounded in time; RMs not reached
are reported). Reported per run: p50/p95/p99 per kind of request and overall, requests/s, requests/s per
worker process, errors, RMs served, and transactions committed on the primary and on the standby
(``pg_stat_database``, the proof of where reads went).

The machine the figures come from has 2 cores shared by everything (clients, workers, both servers): read
the shape (latency under N clients, per-process rate, share of reads taken by the standby), not capacity.

    python bench/bench_replicas.py                                  # 1,500 RMs, 50 clients, 2 workers
    python bench/bench_replicas.py --rms 100 --clients 10 --seconds 10 --customers 5000   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, text

from bench.bench_api_load import seed as seed_county
from bench.common import ROOT, emit, percentiles_ms, start_api, stop_api, tile_of

SECRET = "bench-secret-key-of-at-least-32-bytes!"
ZOOM = 14


def seed_rms(engine, grid_id: int, n: int) -> list[dict]:
    """``n`` RMs and their users; the grid's cells dealt out in runs of neighbours (H3 order), one run each.
    Returns each RM's code and the zoom-14 tiles over its cells."""
    from geodata import users

    with engine.begin() as c:
        le = c.execute(text("SELECT id FROM legal_entity WHERE code = 'LEA'")).scalar_one()
        cells = c.execute(text("SELECT cell_id, ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM cell"
                               " WHERE grid_id = :g ORDER BY cell_id"), {"g": grid_id}).all()
        c.execute(text("DELETE FROM territory WHERE grid_id = :g"), {"g": grid_id})
        codes = [f"RM{i:04d}" for i in range(n)]
        c.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) VALUES (:c, :c, :le, 'O1')"),
                  [{"c": code, "le": le} for code in codes])
        per = max(1, len(cells) // n)
        owned: dict[str, list] = {code: [] for code in codes}
        for i, cell in enumerate(cells[:per * n]):
            owned[codes[i // per]].append(cell)
        c.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by)"
                       " VALUES (:g, :c, :r, 'bench', 'bench')"),
                  [{"g": grid_id, "c": cell[0], "r": code} for code, cs in owned.items() for cell in cs])
        for code in codes:
            users.create_user(c, username=code.lower(), password_hash="-", role="rm", legal_entity_id=le,
                              rm_code=code)
        c.execute(text("ANALYZE"))
    return [{"code": code, "tiles": sorted({tile_of(x, y, ZOOM) for _, x, y in cs})} for code, cs in owned.items()]


def commits(url: str) -> int:
    """Transactions committed so far in the database of ``url`` (``pg_stat_database``)."""
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return int(c.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                                      )).scalar_one())
    finally:
        eng.dispose()


async def morning(base: str, grid_id: int, rms: list[dict], tokens: dict[str, str], clients: int,
                  seconds: float, tiles: int) -> dict:
    """``clients`` concurrent clients serve the RMs in turn until all are served or the time is up."""
    lat: dict[str, list[float]] = {"page": [], "me": [], "tile": []}
    errors: dict[str, int] = {"page": 0, "me": 0, "tile": 0}
    queue = list(rms)
    served = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        start = time.perf_counter()
        deadline = start + seconds

        async def get(kind: str, url: str, headers: dict, params: dict | None = None) -> None:
            t = time.perf_counter()
            try:
                r = await http.get(url, headers=headers, params=params)
                ok = r.status_code in (200, 204)
            except httpx.HTTPError:
                ok = False
            if ok:
                lat[kind].append(time.perf_counter() - t)
            else:
                errors[kind] += 1

        async def one() -> None:
            nonlocal served
            while queue and time.perf_counter() < deadline:
                rm = queue.pop()
                headers = {"Authorization": f"Bearer {tokens[rm['code']]}"}
                await get("page", "/maps/rm", headers, {"grid_id": grid_id, "rm_code": rm["code"]})
                await get("me", "/api/v1/auth/me", headers)
                for x, y in rm["tiles"][:tiles]:
                    for layer in ("cells", "customers"):
                        if time.perf_counter() < deadline:
                            await get("tile", f"/tiles/{layer}/{ZOOM}/{x}/{y}.pbf", headers, {"grid_id": grid_id})
                served += 1

        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return {"lat": lat, "errors": errors, "served": served, "elapsed": elapsed}


def _pct(values: list[float]) -> dict:
    return {"n": len(values), **percentiles_ms(np.asarray(values) * 1000)}


def summary(run: dict, workers: int) -> dict:
    every = [v for vs in run["lat"].values() for v in vs]
    requests = len(every) + sum(run["errors"].values())
    rps = requests / run["elapsed"]
    return {"rms_served": run["served"], "seconds": round(run["elapsed"], 1), "requests": requests,
            "errors": sum(run["errors"].values()), "rps": round(rps, 1), "rps_per_worker": round(rps / workers, 1),
            "all": _pct(every), **{kind: _pct(v) for kind, v in run["lat"].items()}}


def serve_and_run(args, primary_url: str, replica_url: str | None, grid_id: int, rms, tokens, urls) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"GRIDMKT_READ_DATABASE_URLS": replica_url} if replica_url else {}
    proc = start_api(primary_url, port, secret=SECRET, workers=args.workers, timeout=600, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        ready = httpx.get(f"{base}/ready", timeout=60).json()
        warm = random.Random(3).sample(rms, min(10, len(rms)))
        asyncio.run(morning(base, grid_id, warm, tokens, 2, 20, 1))  # connections, plans, imports
        before = {k: commits(u) for k, u in urls.items()}
        run = asyncio.run(morning(base, grid_id, random.Random(args.seed).sample(rms, len(rms)), tokens,
                                  args.clients, args.seconds, args.tiles))
        after = {k: commits(u) for k, u in urls.items()}
    finally:
        stop_api(proc)
    out = summary(run, args.workers)
    out["commits"] = {k: after[k] - before[k] for k in urls}
    out["ready_replicas"] = [r["state"] for r in ready.get("replicas", [])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rms", type=int, default=1500, help="RMs of the province, each opening their map once")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients (phones loading at once)")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--seconds", type=float, default=45.0, help="time bound of each run")
    ap.add_argument("--tiles", type=int, default=2, help="tiles per layer an RM's map asks for (at most)")
    ap.add_argument("--customers", type=int, default=50_000, help="customers seeded in the county")
    ap.add_argument("--res", type=int, default=9, help="H3 resolution of the grid (9: ~8k cells)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not (0 < args.seconds <= 300 and 0 < args.clients <= 200 and 0 < args.rms <= 5000
            and 1 <= args.workers <= 8 and args.customers <= 1_000_000):
        ap.error("keep it bounded: --seconds in (0, 300], --clients in (0, 200], --rms in (0, 5000], "
                 "--workers in [1, 8], --customers at most 1,000,000")

    sys.path.insert(0, str(ROOT))
    from api.auth import create_token
    from api.settings import AuthSettings
    from geodata import cluster, migrate, standby

    homes = [Path(tempfile.mkdtemp(prefix=f"gridmkt-bench-{k}-")) for k in ("primary", "standby")]
    for h in homes:
        h.chmod(0o755)
    try:
        t = time.perf_counter()
        primary = standby.init_primary(homes[0])
        engine = create_engine(primary.url())
        migrate.upgrade(engine)
        seeded = seed_county(engine, args.res, args.customers)
        rms = seed_rms(engine, seeded["grid_id"], args.rms)
        engine.dispose()
        replica = standby.clone_standby(primary, homes[1])
        setup_s = time.perf_counter() - t
        auth = AuthSettings(secret_key=SECRET)
        tokens = {rm["code"]: create_token(auth, username=rm["code"].lower(), role="rm") for rm in rms}
        urls = {"primary": primary.url(), "standby": replica.url()}
        runs = {}
        for name, read_url in (("primary_only", None), ("with_replica", replica.url())):
            runs[name] = serve_and_run(args, primary.url(), read_url, seeded["grid_id"], rms, tokens, urls)
    finally:
        for h in reversed(homes):
            cluster.destroy(h)

    print(f"{args.rms} RMs ({seeded['cells']} cells, {args.customers} customers), {args.clients} clients, "
          f"{args.workers} uvicorn workers, {os.cpu_count()} CPUs, set up in {setup_s:.0f} s, each run at most "
          f"{args.seconds:.0f} s")
    for name, r in runs.items():
        print(f"{name}: {r['rms_served']} RMs served in {r['seconds']} s, {r['requests']} requests, "
              f"{r['errors']} errors, {r['rps']} req/s ({r['rps_per_worker']} per worker); all p50/p95/p99 "
              f"{r['all']['p50_ms']}/{r['all']['p95_ms']}/{r['all']['p99_ms']} ms; page p50/p95 "
              f"{r['page']['p50_ms']}/{r['page']['p95_ms']} ms; tile p50/p95 {r['tile']['p50_ms']}/"
              f"{r['tile']['p95_ms']} ms; commits primary {r['commits']['primary']}, standby "
              f"{r['commits']['standby']}")
    base, rep = runs["primary_only"], runs["with_replica"]
    ratio = rep["rps"] / base["rps"] if base["rps"] else float("nan")
    print(f"throughput ratio with replica / primary only: {ratio:.2f}")
    emit({"bench": "replicas", "rms": args.rms, "clients": args.clients, "workers": args.workers,
          "cells": seeded["cells"], "customers": args.customers, "cpus": os.cpu_count(), **runs,
          "throughput_ratio": round(ratio, 2)})


if __name__ == "__main__":
    main()
