"""Batch assignment of many counties on dask.distributed (``gridmkt batch assign``).

The grids' lookups are shipped once to every worker (``client.scatter(..., broadcast=True)``); each
partition of customers (a county of the store, or row groups of GeoParquet files) is placed on a
worker, its rows COPYed to the grid's staging table, and its per-cell totals sent back and added up
here; then every county is written back on a worker in its own transaction. Each county is a job row
(``batch-assign``) with progress, held by this process (``geodata.liveness``): if it dies, the next
process to open the database marks them failed, so nothing stays marked running.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from geodata import audit, jobs, liveness
from geodata.assign import HOW
from geodata.batch import sources, store, tasks

ProgressFn = Callable[[float, str], None]


def open_client(*, scheduler: str | None, workers: int, memory_limit: str | None = None):
    """A client on ``scheduler`` (``tcp://host:8786``), else on a new LocalCluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit=memory_limit or 0)
    return Client(cluster), cluster


def run(engine: Engine, *, actor: str, grid_ids: list[int] | None = None, kind: str | None = None,
        parquet: list[Path] | None = None, scheduler: str | None = None, workers: int = 2,
        rows_per_part: int = 1_000_000, as_of: str | None = None, progress: ProgressFn | None = None,
        client=None) -> dict[str, Any]:
    """Assign the customers of many grids (default: the newest grid of every county that has one)."""
    progress = progress or (lambda f, m="": None)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        grids = store.target_grids(conn, grid_ids=grid_ids, kind=kind)
        bundles = {int(g["id"]): store.bundle(conn, g) for g in grids}
        if parquet:
            parts = sources.parquet_parts(list(parquet), rows_per_part=rows_per_part)
        else:
            parts = sources.store_parts(conn, counties=[b.county_code for b in bundles.values()],
                                        rows_per_part=rows_per_part)
    if not bundles:
        return {"grids": [], "customers": 0, "partitions": 0, "message": "no county has a grid"}
    token = uuid.uuid4().hex[:16]
    job_ids = {gid: str(uuid.uuid4()) for gid in bundles}
    for key in [*job_ids.values(), store.owner_key(token)]:
        liveness.hold_job(engine, key)
    try:
        with engine.begin() as conn:
            store.drop_stale_staging(conn)  # left by a batch whose process was killed
            for gid, jid in job_ids.items():
                jobs.create_job(conn, kind="batch-assign", username=actor, job_id=jid)
                jobs.update_job(conn, jid, message=f"grid {gid} ({bundles[gid].county_code})")
            store.create_staging(conn, token=token, grid_ids=list(bundles))
        out = _run_on_cluster(engine, client=client, scheduler=scheduler, workers=workers, bundles=bundles,
                              parts=parts, token=token, job_ids=job_ids, as_of=as_of, progress=progress)
    except BaseException as exc:
        with engine.begin() as conn:
            for jid in job_ids.values():
                if jobs.get_job(conn, jid)["status"] in ("queued", "running"):
                    jobs.update_job(conn, jid, status="failed", message=str(exc)[:2000] or type(exc).__name__)
        raise
    finally:
        store.drop_staging(engine, token=token, grid_ids=list(bundles))
        for key in [*job_ids.values(), store.owner_key(token)]:
            liveness.release_job(engine, key)
    with engine.begin() as conn:
        for r in out["grids"]:
            audit.record(conn, username=actor, action="create", object_type="grid_assignment",
                         object_id=str(r["grid_id"]), detail={"customers": r["customers"], "by_point": r["point"],
                                                              "by_village_code": r["village"], "batch": True})
    out["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    return out


def _run_on_cluster(engine, *, client, scheduler, workers, bundles, parts, token, job_ids, as_of, progress):
    from distributed import as_completed

    own, cluster = (None, None) if client is not None else open_client(scheduler=scheduler, workers=workers)
    client = client or own
    db_url = engine.url.render_as_string(hide_password=False)
    try:
        t0 = time.perf_counter()
        shipped = client.scatter(bundles, broadcast=True, hash=False)  # one copy per worker, not per task
        shipped = {gid: shipped[gid] for gid in bundles}
        with engine.begin() as conn:
            for jid in job_ids.values():
                jobs.update_job(conn, jid, status="running", progress=0.0)
        futures = [client.submit(tasks.place, p, shipped, db_url, token, pure=False) for p in parts]
        sums: dict[int, tuple | None] = {gid: None for gid in bundles}
        rows = done = 0
        for fut in as_completed(futures):
            res = fut.result()
            fut.release()
            done += 1
            rows += res["rows"]
            for gid, part in res["grids"].items():
                sums[gid] = tasks.add(sums[gid], part)
            progress(0.8 * done / len(parts), f"{done}/{len(parts)} partitions, {rows:,} customers placed")
            with engine.begin() as conn:  # each county's job shows how far the placement is
                for jid in job_ids.values():
                    jobs.update_job(conn, jid, progress=0.8 * done / len(parts),
                                    message=f"placing: {done}/{len(parts)} partitions")
        t1 = time.perf_counter()
        with engine.begin() as conn:
            for jid in job_ids.values():
                jobs.update_job(conn, jid, progress=0.8, message="writing back")
        writes = {}
        for gid, b in bundles.items():
            totals, how = sums[gid] if sums[gid] is not None else (np.zeros((3, len(b.cells)), dtype=np.int64),
                                                                   np.zeros(len(HOW), dtype=np.int64))
            # The shipped bundle (a future already on every worker) serves the county's cells: none read again.
            writes[client.submit(tasks.write_back, db_url, token, shipped[gid], totals, how, as_of,
                                 pure=False)] = gid
        results = []
        for fut in as_completed(list(writes)):
            gid = writes[fut]
            try:
                r = fut.result()
            except Exception as exc:
                with engine.begin() as conn:
                    jobs.update_job(conn, job_ids[gid], status="failed", message=str(exc)[:2000])
                raise
            with engine.begin() as conn:
                jobs.update_job(conn, job_ids[gid], status="done", progress=1.0, result=r,
                                message=f"{r['customers']:,} customers assigned")
            results.append(r)
            progress(0.8 + 0.2 * len(results) / len(writes), f"{len(results)}/{len(writes)} counties written")
        t2 = time.perf_counter()
        nworkers = len(client.scheduler_info().get("workers", {}))
    finally:
        if own is not None:
            own.close()
        if cluster is not None:
            cluster.close()
    results.sort(key=lambda r: r["grid_id"])
    return {"grids": results, "customers": sum(r["customers"] for r in results), "partitions": len(parts),
            "workers": nworkers, "jobs": job_ids,
            "seconds": {"place": round(t1 - t0, 3), "write_back": round(t2 - t1, 3)}}
