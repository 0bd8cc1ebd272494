"""Batch assignment on a LocalCluster of 2 worker processes gives exactly what ``gridmkt assign customers``
gives, county by county: the same cell (and reason) for every customer and the same cell statistics."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import text

from api.operations import batch as batch_ops
from geodata import DEMO_DATA as DATA
from geodata import assign, grids
from geodata.export import export
from geodata.importers import run_import

pytestmark = pytest.mark.slow
AS_OF = "2026-06-30"
COUNTIES = {"640121": "h3", "640122": "village", "640181": "h3"}  # 永宁县 (legal entity NX01), 贺兰县, 灵武市


@pytest.fixture(scope="module")
def county_grids(engine, counties, tmp_path_factory):
    d = tmp_path_factory.mktemp("b")
    v = run_import(engine, kind="villages", path=DATA / "ningxia_villages.csv", user="u", crs="gcj02",
                   rejects_dir=d, mapping={"street_code": "township_code", "street_name": "township_name",
                                           "lon_gcj02": "lon", "lat_gcj02": "lat"})
    assert v["counts"]["rejected"] == 0
    with engine.begin() as conn:  # 永宁县 is NX01's: another legal entity's customers stay out of its cells
        conn.execute(text("UPDATE county SET legal_entity_id = (SELECT id FROM legal_entity WHERE code = 'NX01')"
                          " WHERE adcode = '640121'"))
    rng = np.random.default_rng(19)
    rows = []
    with engine.connect() as conn:
        shapes = {c: shapely.from_wkb(bytes(conn.execute(text("SELECT ST_AsBinary(geom) FROM county WHERE adcode = :c"),
                                                         {"c": c}).scalar())) for c in COUNTIES}
        villages = {c: conn.execute(text("SELECT code FROM village WHERE county_code = :c"), {"c": c}).scalars().all()
                    for c in COUNTIES}
    for c, shape in shapes.items():
        x0, y0, x1, y1 = shape.bounds
        n = 1500
        lon, lat = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)  # some fall outside the county
        for i in range(n):
            kind = i % 10
            vcode = villages[c][i % len(villages[c])] if kind in (1, 2, 3) else ""
            point = kind not in (2, 4)  # no point: by village code (2) or nowhere (4)
            rows.append({"customer_id": f"B{c}{i:05d}", "county_code": c, "village_code": vcode,
                         "lon": f"{lon[i]:.6f}" if point else "", "lat": f"{lat[i]:.6f}" if point else "",
                         "deposit_balance": f"{rng.integers(0, 10**8) / 100:.2f}",
                         "loan_balance": f"{rng.integers(0, 10**7) / 100:.2f}"})
    path = d / "customers.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    s = run_import(engine, kind="customers", path=path, user="u", rejects_dir=d)
    assert s["counts"]["inserted"] == len(rows), s
    out = {}
    with engine.begin() as conn:
        for c, kind in COUNTIES.items():
            out[c] = grids.build_grid(conn, county_code=c, kind=kind, resolution=7 if kind == "h3" else None)["id"]
    return out


def _snapshot(engine, gids):
    with engine.connect() as conn:
        placed = conn.execute(text("SELECT grid_id, customer_id, cell_id, how FROM customer_cell"
                                   " WHERE grid_id = ANY(:g) ORDER BY 1, 2"), {"g": gids}).all()
        stats = conn.execute(text(
            "SELECT grid_id, cell_id, customers, households, population, apportioned, deposit, loan, visits_90d,"
            " customers_visited_90d, last_visit_at, as_of FROM cell_stat WHERE grid_id = ANY(:g) ORDER BY 1, 2"),
            {"g": gids}).all()
    return placed, stats


@pytest.fixture(scope="module")
def single(engine, county_grids):
    gids = list(county_grids.values())
    for g in gids:
        with engine.begin() as conn:
            assign.assign_customers(conn, grid_id=g, as_of=AS_OF)
    placed, stats = _snapshot(engine, gids)
    assert len(placed) == 4500 and {r.how for r in placed} == {"point", "village", "outside", "no_location"}
    with engine.begin() as conn:  # the batch must write everything again itself
        for g in gids:
            conn.execute(text(f"DROP TABLE customer_cell_g{int(g)}"))
        conn.execute(text("DELETE FROM cell_stat WHERE grid_id = ANY(:g)"), {"g": gids})
    return placed, stats


@pytest.fixture(scope="module")
def client():
    c, cluster = batch_ops.open_client(scheduler=None, workers=2)
    yield c
    c.close()
    cluster.close()


def test_batch_on_two_workers_matches_single_process(engine, county_grids, single, client):
    gids = list(county_grids.values())
    out = batch_ops.run(engine, actor="t", client=client, rows_per_part=600, as_of=AS_OF)
    assert out["workers"] == 2 and out["partitions"] >= 9  # 1,500 customers per county, slices of 600
    assert sorted(r["grid_id"] for r in out["grids"]) == sorted(gids) and out["customers"] == 4500
    assert _snapshot(engine, gids) == single
    with engine.connect() as conn:
        jobs = conn.execute(text("SELECT status, progress, message FROM job WHERE kind = 'batch-assign'")).all()
        staging = conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'batch\\_%'")).scalar()
        assigned = conn.execute(text("SELECT count(*) FROM grid WHERE id = ANY(:g) AND assigned_at IS NOT NULL"),
                                {"g": gids}).scalar()
    assert len(jobs) == 3 and all(s == "done" and p == 1.0 and m == "1,500 customers assigned" for s, p, m in jobs)
    assert staging == 0 and assigned == 3
    with engine.connect() as conn:  # one audit row per county, as gridmkt assign customers writes
        audited = conn.execute(text("SELECT object_id, detail->>'customers', detail->>'batch' FROM audit_log"
                                    " WHERE username = 't' AND action = 'create' AND object_type = 'grid_assignment'"
                                    " ORDER BY object_id")).all()
    assert audited == sorted((str(g), "1500", "true") for g in gids)


def test_batch_from_geoparquet_matches_too(engine, county_grids, single, client, tmp_path):
    gids = list(county_grids.values())
    pq_path = tmp_path / "customers.parquet"
    export(engine, kind="customers", path=pq_path, chunk_size=1000)
    # A customer of another legal entity in 永宁县 (NX01's county) stays out, as the store read leaves it out.
    gdf = gpd.read_parquet(pq_path)
    other = gdf[gdf["county_code"] == "640121"].head(1).assign(customer_id="OTHER1", legal_entity="NX99")
    pd.concat([gdf, other], ignore_index=True).to_parquet(pq_path, index=False)
    with engine.begin() as conn:
        for g in gids:
            conn.execute(text(f"DROP TABLE IF EXISTS customer_cell_g{int(g)}"))
        conn.execute(text("DELETE FROM cell_stat WHERE grid_id = ANY(:g)"), {"g": gids})
    out = batch_ops.run(engine, actor="t", client=client, parquet=[pq_path], rows_per_part=1000, as_of=AS_OF)
    assert out["customers"] == 4500
    assert _snapshot(engine, gids) == single


def test_a_failed_county_leaves_no_job_running(engine, county_grids, client, monkeypatch):
    """A worker error fails the run: every job of it ends failed (none left running) and staging is dropped."""
    from geodata.batch import tasks

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tasks, "write_back", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        batch_ops.run(engine, actor="t", client=client, grid_ids=[county_grids["640122"]], as_of=AS_OF)
    with engine.connect() as conn:
        running = conn.execute(text("SELECT count(*) FROM job WHERE status IN ('queued', 'running')")).scalar()
        failed = conn.execute(text("SELECT message FROM job WHERE kind = 'batch-assign' AND status = 'failed'")).all()
        staging = conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'batch\\_%'")).scalar()
    assert running == 0 and failed and "disk full" in failed[0][0] and staging == 0


CRASHING = """
import sys, time
from distributed import Client, LocalCluster
from sqlalchemy import create_engine
from api.operations import batch
from geodata.batch import tasks

def stuck(*a, **k):  # a placement that never ends: the client is killed meanwhile
    time.sleep(600)

tasks.place = stuck
client = Client(LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None))
batch.run(create_engine(sys.argv[1]), actor="crash", client=client)
"""


def test_a_killed_client_leaves_no_job_running(engine, db_url, county_grids, client, tmp_path):
    """kill -9 of the batch's process mid-run: while it lives, recovery leaves its running jobs alone; once it
    is gone, the next process to open the database marks every one of them failed."""
    import os
    import subprocess
    import sys
    import time

    from geodata import liveness

    script = tmp_path / "crash.py"
    script.write_text(CRASHING)
    proc = subprocess.Popen([sys.executable, str(script), db_url], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.monotonic() + 240
        running = 0
        while time.monotonic() < deadline and running < 3:
            time.sleep(0.5)
            assert proc.poll() is None, "the batch process ended by itself"
            with engine.connect() as conn:
                running = conn.execute(text("SELECT count(*) FROM job WHERE username = 'crash'"
                                            " AND status = 'running'")).scalar()
        assert running == 3
        with engine.begin() as conn:
            assert liveness.recover_interrupted(conn)["jobs"] == []  # held by a live process
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.begin() as conn:
            liveness.recover_interrupted(conn)
            left = conn.execute(text("SELECT status, count(*) FROM job WHERE username = 'crash' GROUP BY 1")).all()
        if left == [("failed", 3)]:
            break
        time.sleep(0.5)
    assert left == [("failed", 3)]
    # Its staging tables stay until the next batch, which drops them (not those of a live batch).
    with engine.connect() as conn:
        stale = conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'batch\\_%'")).scalar()
    assert stale == 3
    batch_ops.run(engine, actor="t", grid_ids=[county_grids["640122"]], as_of=AS_OF, client=client)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'batch\\_%'")).scalar() == 0


def test_stale_staging_is_dropped_and_a_live_batchs_kept(engine):
    """Staging tables of a batch whose process is gone are dropped; a live batch's (its lock held) stay."""
    from geodata import liveness
    from geodata.batch import store

    with engine.begin() as conn:
        for token in ("0123abcd", "4567cdef"):
            conn.execute(text(f"CREATE UNLOGGED TABLE {store.staging_name(token, 7)} (x int)"))
        conn.execute(text("CREATE TABLE batch_notahex_g7 (x int)"))  # not a staging name: never touched
    with engine.connect() as live:
        live.execute(text("SELECT pg_advisory_lock(:c, hashtext(:k))"),
                     {"c": liveness.JOB_LOCK_CLASS, "k": store.owner_key("4567cdef")})
        with engine.begin() as conn:
            assert store.drop_stale_staging(conn) == ["batch_0123abcd_g7"]
        live.execute(text("SELECT pg_advisory_unlock_all()"))
    with engine.begin() as conn:
        left = conn.execute(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'batch\\_%' ORDER BY 1")).scalars()
        assert list(left) == ["batch_4567cdef_g7", "batch_notahex_g7"]
        conn.execute(text("DROP TABLE batch_4567cdef_g7, batch_notahex_g7"))
