"""Batch assignment from GeoParquet over all 22 Ningxia counties: one process against a LocalCluster of
worker processes, same code, same run.

Synthetic customers clustered around the real villages of every county, with their county code and
lognormal balances, are written once as GeoParquet under ``bench/.cache/`` (git-ignored), a million rows
at a time from one seeded generator (memory stays bounded whatever the size), and reused.

Two kinds of run per size and way:

- ``place`` (``--sizes``): read the GeoParquet partitions, locate every customer with the shipped lookups
  and sum the per-cell totals across partitions (``geodata.batch.tasks.place`` without staging): the
  part that scales with workers.
- ``full`` (``--full-sizes``): ``gridmkt batch assign --parquet`` itself (``api.operations.batch.run``):
  the above, each partition's rows COPYed to staging, then every county's write-back (partition built in
  cell order, indexes, statistics) in its own transaction.

For each: wall seconds, points/s, CPU seconds of each worker (wall time stretches with the load of a
shared machine, CPU time much less) and of the database server, and each worker's peak resident memory
(reset before each run, and again when the last partition is placed: the full runs report the placement's
and the write-back's peaks apart too), which must not grow with the size. The last line is one JSON object, with an
estimate of the workers that 600M customers need within one hour.

    python bench/bench_batch.py --sizes 10000000,50000000 --full-sizes 10000000 --workers 2

``--verify N`` (issue 19: the batch gives exactly the single-process result on all 22 counties) runs
no timing; it loads the N GeoParquet customers INTO THE STORE (binary COPY; 1% without a point but with
a village code, 0.2% with neither, 1% with a point and no village code, so every ``how`` occurs) and:

1. ``gridmkt batch assign`` from the store (``api.operations.batch.run``) on a LocalCluster of
   ``--workers`` processes; every grid's ``customer_cell`` rows (customer_id, cell_id, how) and
   ``cell_stat`` rows (every figure column, not the timestamps) are copied aside;
2. the assignments and statistics dropped, ``geodata.assign.assign_customers`` (one transaction per grid)
   for every grid, with ``geodata.partition_write.SPLIT_ROWS`` lowered to ``--verify-split-rows`` so the
   bigger counties are written in two halves (which counties were is printed), copied aside too (the
   batch's workers have ``geodata.batch.store.PIECE_ROWS`` lowered to ``--verify-piece-rows``, 20,000, so
   that the bigger counties are written back in pieces: how many each is printed);
3. the two compared in SQL, row by row (FULL JOIN, IS DISTINCT FROM), per county; unless
   ``--verify-skip-parquet``, the store is exported to GeoParquet (``gridmkt export customers``) and the
   batch from that file is compared with the single-process rows as well.

Per county it prints the customers, the rows of ``customer_cell`` and of ``cell_stat`` that differ (and a
few of them, if any); the last line is one JSON object with the totals and ``"identical"``:

    python bench/bench_batch.py --verify 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from bench.common import DATA, cluster_cpu_s, emit, import_ningxia, throwaway_database

CACHE = Path(__file__).resolve().parent / ".cache"
TARGET = 600_000_000
AS_OF = "2026-06-30"


def synth(n: int, seed: int = 19) -> Path:
    """GeoParquet of ``n`` customers over every county's villages (cached by size and seed)."""
    path = CACHE / f"batch_customers_{n}_{seed}.parquet"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    v = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str, "county_code": str})
    rng = np.random.default_rng(seed)
    schema = pa.schema([("customer_id", pa.string()), ("county_code", pa.string()), ("village_code", pa.string()),
                        ("deposit_balance", pa.float64()), ("loan_balance", pa.float64()), ("geometry", pa.binary())],
                       metadata={b"geo": b'{"version": "1.0.0", "primary_column": "geometry", "columns":'
                                         b' {"geometry": {"encoding": "WKB", "geometry_types": ["Point"]}}}'})
    tmp = path.with_suffix(".part")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for start in range(0, n, 1_000_000):
            k = min(1_000_000, n - start)
            pick = rng.integers(0, len(v), k)
            lon = v["lon_wgs84"].to_numpy()[pick] + rng.normal(0, 0.02, k)
            lat = v["lat_wgs84"].to_numpy()[pick] + rng.normal(0, 0.018, k)
            w.write_table(pa.table({
                "customer_id": pa.array(np.char.add("B", np.arange(start, start + k).astype(str))),
                "county_code": pa.array(v["county_code"].to_numpy()[pick]),
                "village_code": pa.array(v["code"].to_numpy()[pick]),
                "deposit_balance": np.round(rng.lognormal(9, 1.5, k), 2),
                "loan_balance": np.round(rng.lognormal(7, 2.0, k), 2),
                "geometry": pa.array(shapely.to_wkb(shapely.points(lon, lat)), type=pa.binary()),
            }, schema=schema), row_group_size=250_000)
    tmp.replace(path)
    return path


def setup(engine, res: int) -> int:
    """The 22 counties, their villages, and an H3 grid per county; returns how many grids."""
    from geodata import grids

    import_ningxia(engine, CACHE / "rejects")
    with engine.begin() as conn:
        codes = [r[0] for r in conn.exec_driver_sql("SELECT adcode FROM county ORDER BY 1")]
    for c in codes:
        with engine.begin() as conn:
            grids.build_grid(conn, county_code=c, kind="h3", resolution=res)
    return len(codes)


def _peak_mb() -> float:
    """This process's peak resident memory since :func:`_reset_peak` (VmHWM; unlike ru_maxrss, resettable)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> None:
    """Start this process's peak resident memory afresh (Linux: 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _progress(t0: float, message: str) -> None:
    """A progress line on stderr (seconds since ``t0``, the load): what a run that is cut short leaves."""
    print(f"  {time.perf_counter() - t0:7.1f} s  load {os.getloadavg()[0]:.1f}  {message}", file=sys.stderr,
          flush=True)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def place_only(engine, client, path: Path, rows: int) -> dict:
    """Read, locate and sum over the GeoParquet partitions on ``client``'s workers; nothing written."""
    from distributed import as_completed

    from geodata.batch import sources, store, tasks

    t0 = time.perf_counter()
    with engine.begin() as conn:
        bundles = {int(g["id"]): store.bundle(conn, g) for g in store.target_grids(conn)}
    parts = sources.parquet_parts([path], rows_per_part=rows)
    shipped = client.scatter(bundles, broadcast=True, hash=False)
    t1 = time.perf_counter()
    url = engine.url.render_as_string(hide_password=False)
    futures = [client.submit(tasks.place, p, {g: shipped[g] for g in bundles}, url, None, stage=False, pure=False)
               for p in parts]
    sums: dict = {}
    n = done = 0
    for fut in as_completed(futures):
        res = fut.result()
        fut.release()
        n += res["rows"]
        done += 1
        _progress(t0, f"{done}/{len(parts)} partitions, {n:,} customers placed")
        for gid, part in res["grids"].items():
            sums[gid] = tasks.add(sums.get(gid), part)
    placed = int(sum(int(h.sum()) for _, h in sums.values()))
    return {"customers": n, "placed": placed, "partitions": len(parts),
            "seconds": {"ship": round(t1 - t0, 3), "place": round(time.perf_counter() - t1, 3)}}


def run_once(engine, info, path: Path, *, workers: int, rows: int, kind: str) -> dict:
    from distributed import Client, LocalCluster

    from api.operations import batch as batch_ops

    # One process: the scheduler and a single worker thread inside this process, no pickling.
    cluster = (LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
               if workers == 0 else
               LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            memory_limit=0))
    client = Client(cluster)
    try:
        client.run(_reset_peak) if workers else _reset_peak()
        cpu0 = client.run(_cpu_s) if workers else {"self": _cpu_s()}
        s0, load0 = cluster_cpu_s(info), os.getloadavg()[0]
        t0 = time.perf_counter()
        marks: dict = {}

        def placed(fraction, message=""):  # the moment the last partition is placed: CPU and memory so far
            _progress(t0, message)
            if fraction >= 0.8 and not marks:
                marks.update(cpu=client.run(_cpu_s) if workers else {"self": _cpu_s()}, server=cluster_cpu_s(info),
                             peak=client.run(_peak_mb) if workers else {"self": _peak_mb()})
                client.run(_reset_peak) if workers else _reset_peak()  # the write-back's peak apart

        if kind == "place":
            out = place_only(engine, client, path, rows)
        else:
            out = batch_ops.run(engine, actor="bench", client=client, parquet=[path], rows_per_part=rows,
                                progress=placed)
        wall = time.perf_counter() - t0
        cpu1 = client.run(_cpu_s) if workers else {"self": _cpu_s()}
        server = cluster_cpu_s(info) - s0
        last = client.run(_peak_mb) if workers else {"self": _peak_mb()}
    finally:
        client.close()
        cluster.close()
    n, s = out["customers"], out["seconds"]
    cpu = [round(cpu1[k] - cpu0[k], 1) for k in cpu0]
    peaks = [max(last[k], marks.get("peak", {}).get(k, 0.0)) for k in cpu0]  # the whole run's
    r = {"kind": kind, "workers": workers or 1, "in_process": workers == 0, "customers": n,
         "placed": out["placed"] if kind == "place" else sum(g["point"] + g["village"] for g in out["grids"]),
         "wall_s": round(wall, 1),
         "place_s": s["place"], "place_points_per_s": round(n / s["place"]),
         "worker_cpu_s": cpu, "points_per_worker_cpu_s": round(n / max(sum(cpu), 1e-9)),
         "server_cpu_s": round(server, 1), "peak_rss_mb_per_worker": [round(p) for p in peaks],
         "load_avg": [round(load0, 1), round(os.getloadavg()[0], 1)]}
    if kind == "full":  # CPU seconds of the write-back alone (after the last partition was placed)
        r.update({"write_back_s": s["write_back"], "write_back_rows_per_s": round(n / s["write_back"]),
                  "write_back_worker_cpu_s": [round(cpu1[k] - marks["cpu"][k], 1) for k in cpu0],
                  "write_back_server_cpu_s": round(server + s0 - marks["server"], 1),
                  "place_peak_rss_mb_per_worker": [round(marks["peak"][k]) for k in cpu0],
                  "write_back_peak_rss_mb_per_worker": [round(last[k]) for k in cpu0]})
    return r


def load_store(engine, path: Path) -> dict:
    """The GeoParquet's customers INTO THE STORE (binary COPY of the ``customer`` table), with some points
    and village codes taken away by row number so that every ``how`` occurs; returns counts of those."""
    from sqlalchemy import text

    from bench.customers_cache import TYPES
    from geodata.batch.sources import points_of
    from geodata.pgcopy import encode_binary, ewkb

    pf = pq.ParquetFile(path)
    n = no_point = no_village = 0
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        for batch in pf.iter_batches(batch_size=1_000_000):
            t = pa.Table.from_batches([batch])
            k = t.num_rows
            i = np.arange(n, n + k)
            lon, lat = points_of(t.column("geometry").combine_chunks())
            gone = (i % 100 == 0) | (i % 500 == 1)  # placed by village code, or (no code either) nowhere
            lon[gone] = np.nan
            lat[gone] = np.nan
            village = t.column("village_code").to_numpy(zero_copy_only=False).astype(object)
            village[(i % 500 == 1) | (i % 100 == 2)] = None  # a point only: outside the county means unplaced
            frame = pd.DataFrame({
                "customer_id": t.column("customer_id").to_numpy(zero_copy_only=False),
                "county_code": t.column("county_code").to_numpy(zero_copy_only=False),
                "village_code": village, "deposit_balance": t.column("deposit_balance").to_numpy(),
                "loan_balance": t.column("loan_balance").to_numpy(), "geom": None})
            stream, cols = encode_binary(frame, TYPES, ewkb=(ewkb(lon, lat), gone))
            with raw.cursor() as cur:
                cur.copy_expert(f"COPY customer ({', '.join(cols)}) FROM STDIN WITH (FORMAT binary)", stream,
                                size=8 << 20)
            n += k
            no_point += int(gone.sum())
            no_village += int(((i % 500 == 1) | (i % 100 == 2)).sum())
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE customer"))
        stored = conn.execute(text("SELECT count(*) FROM customer")).scalar()
    assert stored == n, (stored, n)
    return {"customers": n, "no_point": no_point, "no_village_code": no_village}


_SNAPSHOTS = ("batch", "single", "parquet")  # allow-list of the tags in the snapshot tables' names


def _stat_columns() -> list[str]:
    """cell_stat's figure columns: all but the key and the timestamps."""
    from sqlalchemy import DateTime

    from geodata.tables import cell_stat

    return [c.name for c in cell_stat.columns
            if c.name not in ("grid_id", "cell_id") and not isinstance(c.type, DateTime)]


def _snapshot(engine, tag: str) -> None:
    """Every grid's customer_cell and cell_stat rows copied aside (tables ``verify_cc_<tag>``, ``verify_cs_<tag>``)."""
    from sqlalchemy import text

    assert tag in _SNAPSHOTS
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE verify_cc_{tag} AS SELECT grid_id, customer_id, cell_id, how"
                          " FROM customer_cell"))
        conn.execute(text(f"CREATE TABLE verify_cs_{tag} AS SELECT grid_id, cell_id, {', '.join(_stat_columns())}"
                          " FROM cell_stat"))


def _clear(engine, gids: list[int]) -> None:
    """Every grid's assignment and statistics dropped: the next path must write everything itself."""
    from sqlalchemy import text

    with engine.begin() as conn:
        for g in gids:
            conn.execute(text(f"DROP TABLE IF EXISTS customer_cell_g{int(g)}"))
        conn.execute(text("DELETE FROM cell_stat WHERE grid_id = ANY(:g)"), {"g": gids})
        conn.execute(text("UPDATE grid SET assigned_at = NULL WHERE id = ANY(:g)"), {"g": gids})


def _compare(engine, a: str, b: str) -> list[dict]:
    """Per grid: customers on each side, by how, and the customer_cell and cell_stat rows that differ."""
    from sqlalchemy import text

    assert a in _SNAPSHOTS and b in _SNAPSHOTS
    cols = _stat_columns()
    row = lambda t: "(" + ", ".join(f"{t}.{c}" for c in cols) + ")"  # noqa: E731
    with engine.connect() as conn:
        grids = conn.execute(text("SELECT id, county_code FROM grid ORDER BY county_code")).all()
        cc = {r.g: r for r in conn.execute(text(
            f"SELECT coalesce(a.grid_id, b.grid_id) AS g, count(a.customer_id) AS na, count(b.customer_id) AS nb,"
            " count(*) FILTER (WHERE a.customer_id IS NULL OR b.customer_id IS NULL"
            "   OR (a.cell_id, a.how) IS DISTINCT FROM (b.cell_id, b.how)) AS diff,"
            " count(*) FILTER (WHERE b.how = 'point') AS point, count(*) FILTER (WHERE b.how = 'village') AS village,"
            " count(*) FILTER (WHERE b.how = 'outside') AS outside,"
            " count(*) FILTER (WHERE b.how = 'no_location') AS no_location"
            f" FROM verify_cc_{a} a FULL JOIN verify_cc_{b} b ON a.grid_id = b.grid_id AND a.customer_id = b.customer_id"
            " GROUP BY 1")).all()}
        cs = {r.g: r for r in conn.execute(text(
            f"SELECT coalesce(a.grid_id, b.grid_id) AS g, count(a.cell_id) AS na, count(b.cell_id) AS nb,"
            f" count(*) FILTER (WHERE a.cell_id IS NULL OR b.cell_id IS NULL OR {row('a')} IS DISTINCT FROM {row('b')})"
            f" AS diff, coalesce(sum(b.customers), 0) AS placed"
            f" FROM verify_cs_{a} a FULL JOIN verify_cs_{b} b ON a.grid_id = b.grid_id AND a.cell_id = b.cell_id"
            " GROUP BY 1")).all()}
        out = []
        for g, county in grids:
            c, s = cc.get(g), cs.get(g)
            r = {"county": county, "grid_id": g, "customers": [c.na if c else 0, c.nb if c else 0],
                 "how": {h: getattr(c, h) if c else 0 for h in ("point", "village", "outside", "no_location")},
                 "rows_differing": c.diff if c else 0, "cell_stat_rows": [s.na if s else 0, s.nb if s else 0],
                 "cell_stat_placed": int(s.placed) if s else 0, "cell_stat_differing": s.diff if s else 0}
            if r["rows_differing"]:
                r["sample"] = [tuple(x) for x in conn.execute(text(
                    f"SELECT a.customer_id, b.customer_id, a.cell_id, b.cell_id, a.how, b.how FROM verify_cc_{a} a"
                    f" FULL JOIN verify_cc_{b} b ON a.grid_id = b.grid_id AND a.customer_id = b.customer_id"
                    " WHERE coalesce(a.grid_id, b.grid_id) = :g AND (a.customer_id IS NULL OR b.customer_id IS NULL"
                    " OR (a.cell_id, a.how) IS DISTINCT FROM (b.cell_id, b.how)) LIMIT 5"), {"g": g})]
            if r["cell_stat_differing"]:
                r["cell_stat_sample"] = [tuple(map(str, x)) for x in conn.execute(text(
                    f"SELECT a.cell_id, b.cell_id, {row('a')}::text, {row('b')}::text FROM verify_cs_{a} a"
                    f" FULL JOIN verify_cs_{b} b ON a.grid_id = b.grid_id AND a.cell_id = b.cell_id"
                    f" WHERE coalesce(a.grid_id, b.grid_id) = :g AND (a.cell_id IS NULL OR b.cell_id IS NULL"
                    f" OR {row('a')} IS DISTINCT FROM {row('b')}) LIMIT 5"), {"g": g})]
            out.append(r)
    return out


def _report(name: str, rows: list[dict]) -> dict:
    print(f"{name}: county  grid  customers(batch/single)  point/village/outside/no_location"
          "  rows differing  cell_stat rows  cell_stat differing", flush=True)
    for r in rows:
        h = r["how"]
        print(f"  {r['county']} {r['grid_id']:>3}  {r['customers'][0]:>8,}/{r['customers'][1]:<8,}"
              f"  {h['point']:,}/{h['village']:,}/{h['outside']:,}/{h['no_location']:,}"
              f"  {r['rows_differing']:>6}  {r['cell_stat_rows'][1]:>6,}  {r['cell_stat_differing']:>6}", flush=True)
        for key in ("sample", "cell_stat_sample"):
            if key in r:
                print(f"    {key}: {r[key]}", flush=True)
    n = sum(r["customers"][1] for r in rows)
    return {"counties": len(rows), "customers": [sum(r["customers"][0] for r in rows), n],
            "rows_differing": sum(r["rows_differing"] for r in rows),
            "cell_stat_rows": sum(r["cell_stat_rows"][1] for r in rows),
            "cell_stat_differing": sum(r["cell_stat_differing"] for r in rows),
            "counties_differing": [r["county"] for r in rows if r["rows_differing"] or r["cell_stat_differing"]
                                   or r["customers"][0] != r["customers"][1]]}


def _set_piece_rows(n: int) -> None:
    from geodata.batch import store

    store.PIECE_ROWS = n


def verify(n: int, *, res: int, workers: int, rows: int, split_rows: int, parquet: bool,
           piece_rows: int | None = None) -> dict:
    """Batch (LocalCluster of ``workers`` processes) against single-process assignment of every county, the
    customers in the store; optionally the batch from a GeoParquet export of that store too. ``piece_rows``:
    the workers' ``geodata.batch.store.PIECE_ROWS`` (the bigger counties written back in pieces)."""
    from sqlalchemy import text

    from api.operations import batch as batch_ops
    from geodata import assign, partition_write
    from geodata.export import export

    t = time.perf_counter()
    path = synth(n)
    print(f"GeoParquet of {n:,} customers ready in {time.perf_counter() - t:.0f} s", flush=True)
    out: dict = {"bench": "batch_verify", "n": n, "res": res, "workers": workers, "partition_rows": rows,
                 "split_rows": split_rows, "piece_rows": piece_rows, "as_of": AS_OF, "seconds": {}}
    sec = out["seconds"]
    with throwaway_database() as (engine, info):
        t = time.perf_counter()
        out["counties"] = setup(engine, res)
        sec["setup"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        out["store"] = load_store(engine, path)
        sec["load_store"] = round(time.perf_counter() - t, 1)
        with engine.connect() as conn:
            gids = [int(g) for g in conn.execute(text("SELECT id FROM grid ORDER BY id")).scalars()]
            cells = conn.execute(text("SELECT count(*) FROM cell")).scalar()
        print(f"setup: {out['counties']} counties, {len(gids)} H3 grids (res {res}, {cells:,} cells) in"
              f" {sec['setup']} s; {n:,} customers into the store in {sec['load_store']} s ({out['store']})",
              flush=True)

        client, cluster = batch_ops.open_client(scheduler=None, workers=workers)
        try:
            if piece_rows:
                client.run(_set_piece_rows, piece_rows)
            t = time.perf_counter()
            b = batch_ops.run(engine, actor="bench", client=client, rows_per_part=rows, as_of=AS_OF)
            sec["batch_store"] = round(time.perf_counter() - t, 1)
            assert b["workers"] == workers, b["workers"]
            with engine.connect() as conn:  # how many range pieces each county's partition was written in
                pieced = dict(conn.execute(text(
                    "SELECT g.county_code, count(*) FROM grid g JOIN pg_inherits i"
                    " ON i.inhparent = to_regclass('customer_cell_g' || g.id) GROUP BY 1 ORDER BY 1")).all())
            out["batch_pieces"] = pieced
            print(f"batch from the store: {b['customers']:,} customers, {b['partitions']} partitions,"
                  f" {b['workers']} workers, {sec['batch_store']} s; written back in pieces"
                  f" (PIECE_ROWS {piece_rows or 'default'}): {len(pieced)} counties {pieced}", flush=True)
            _snapshot(engine, "batch")
            _clear(engine, gids)

            before = partition_write.SPLIT_ROWS
            partition_write.SPLIT_ROWS = split_rows  # the single path's two-halves write for the bigger counties
            try:
                t = time.perf_counter()
                for g in gids:
                    with engine.begin() as conn:
                        assign.assign_customers(conn, grid_id=g, as_of=AS_OF)
                sec["single"] = round(time.perf_counter() - t, 1)
            finally:
                partition_write.SPLIT_ROWS = before
            with engine.connect() as conn:  # which partitions were written in two halves (range sub-partitions)
                halves = conn.execute(text(
                    "SELECT g.county_code FROM grid g WHERE to_regclass('customer_cell_g' || g.id || '_0') IS NOT NULL"
                    " ORDER BY 1")).scalars().all()
            out["single_in_two_halves"] = list(halves)
            print(f"single process: {len(gids)} grids in {sec['single']} s; written in two halves"
                  f" (SPLIT_ROWS {split_rows:,}): {len(halves)} counties {list(halves)}", flush=True)
            _snapshot(engine, "single")
            out["store_vs_single"] = _report("batch (store) vs single", _compare(engine, "batch", "single"))
            ok = _identical(out["store_vs_single"], n)

            if parquet:
                t = time.perf_counter()
                file = Path(info.datadir).parent / "verify_customers.parquet"
                export(engine, kind="customers", path=file)
                _clear(engine, gids)
                p = batch_ops.run(engine, actor="bench", client=client, parquet=[file], rows_per_part=rows,
                                  as_of=AS_OF)
                sec["batch_parquet"] = round(time.perf_counter() - t, 1)
                print(f"batch from GeoParquet (export of the store): {p['customers']:,} customers,"
                      f" {p['partitions']} partitions, {sec['batch_parquet']} s with the export", flush=True)
                _snapshot(engine, "parquet")
                out["parquet_vs_single"] = _report("batch (GeoParquet) vs single", _compare(engine, "parquet", "single"))
                ok = ok and _identical(out["parquet_vs_single"], n)
        finally:
            client.close()
            cluster.close()
    out["identical"] = ok
    return out


def _identical(s: dict, n: int) -> bool:
    return (s["customers"] == [n, n] and s["rows_differing"] == 0 and s["cell_stat_differing"] == 0
            and not s["counties_differing"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50000000", help="comma-separated customer counts: locate+aggregate runs")
    ap.add_argument("--full-sizes", default="50000000",
                    help="comma-separated customer counts: full runs with the write-back ('' for none)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--res", type=int, default=8)
    ap.add_argument("--partition-rows", type=int, default=None,
                    help="customers per partition (default 1,000,000; with --verify 25,000, so that the bigger"
                         " counties are read in several hash slices whose totals are added up)")
    ap.add_argument("--skip-single", action="store_true", help="only the LocalCluster runs")
    ap.add_argument("--single-only", action="store_true", help="only the one-process runs")
    ap.add_argument("--verify", type=int, default=None, metavar="N",
                    help="no timing: batch vs single-process assignment of N stored customers over the 22"
                         " counties, compared row by row (e.g. 1000000)")
    ap.add_argument("--verify-split-rows", type=int, default=50_000,
                    help="SPLIT_ROWS of the single-process path in --verify (its two-halves write)")
    ap.add_argument("--verify-piece-rows", type=int, default=20_000,
                    help="PIECE_ROWS of the batch's write-back in --verify (its pieces; 0: the module's)")
    ap.add_argument("--verify-skip-parquet", action="store_true",
                    help="--verify without the batch from a GeoParquet export of the store")
    args = ap.parse_args()
    if args.skip_single and args.single_only:
        ap.error("--skip-single and --single-only exclude each other")
    if args.verify is not None:
        emit(verify(args.verify, res=args.res, workers=args.workers, rows=args.partition_rows or 25_000,
                    split_rows=args.verify_split_rows, parquet=not args.verify_skip_parquet,
                    piece_rows=args.verify_piece_rows or None))
        return
    sizes = [int(x) for x in args.sizes.split(",") if x]
    full = [int(x) for x in args.full_sizes.split(",") if x]
    t = time.perf_counter()
    files = {n: synth(n) for n in sorted(set(sizes + full))}
    print(f"GeoParquet ready in {time.perf_counter() - t:.0f} s: "
          + ", ".join(f"{n:,} rows {files[n].stat().st_size / 1e6:.0f} MB" for n in files), flush=True)
    runs = []
    with throwaway_database() as (engine, info):
        t = time.perf_counter()
        grids = setup(engine, args.res)
        print(f"setup: {grids} counties with an H3 grid (res {args.res}) in {time.perf_counter() - t:.0f} s", flush=True)
        for kind, todo in (("place", sizes), ("full", full)):
            for n in todo:
                for w in ([] if args.skip_single else [0]) + ([] if args.single_only else [args.workers]):
                    r = run_once(engine, info, files[n], workers=w, rows=args.partition_rows or 1_000_000,
                                 kind=kind)
                    print(r, flush=True)
                    runs.append(r)
    emit(summary(runs))


def summary(runs: list[dict]) -> dict:
    """The figures, the ratio of the two ways, and the workers 600M customers need within an hour."""
    out: dict = {"bench": "batch", "runs": runs, "target": TARGET}
    for kind in ("place", "full"):
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            continue
        big = max(r["customers"] for r in mine)
        dist = next((r for r in mine if r["customers"] == big and not r["in_process"]), None)
        single = next((r for r in mine if r["customers"] == big and r["in_process"]), None)
        if dist is None:  # --single-only: the one process is the figure (one worker)
            dist, single = single, None
        if dist is None:
            continue
        k = dist["workers"]
        fig = {"customers": big, "per_worker_points_per_s": round(dist["place_points_per_s"] / k),
               "points_per_worker_cpu_s": dist["points_per_worker_cpu_s"],
               "peak_rss_mb_per_worker": dist["peak_rss_mb_per_worker"]}
        if single is not None:
            fig["speedup_place"] = round(dist["place_points_per_s"] / single["place_points_per_s"], 2)
            fig["speedup_wall"] = round(single["wall_s"] / dist["wall_s"], 2)
        if kind == "full":
            fig["write_back_rows_per_s"] = dist["write_back_rows_per_s"]
            fig["write_back_peak_rss_mb_per_worker"] = dist["write_back_peak_rss_mb_per_worker"]
            fig["server_cpu_s_per_million"] = round(dist["server_cpu_s"] / big * 1e6, 1)
        out[kind] = fig
    # Placement scales with the workers: from a worker's measured rate (wall, on this loaded machine, and per
    # CPU second, i.e. a worker with a core of its own), the workers that place 600M within an hour.
    place = out.get("place") or out.get("full")
    if place:
        per_s = TARGET / 3600.0
        out["workers_for_600M_in_1h"] = {
            "from_wall_rate": int(np.ceil(per_s / place["per_worker_points_per_s"])),
            "from_cpu_rate": int(np.ceil(per_s / place["points_per_worker_cpu_s"])),
        }
    if "full" in out:  # the write-back is PostgreSQL's work: the server CPU it takes per customer
        out["db_cores_for_600M_in_1h"] = int(np.ceil(out["full"]["server_cpu_s_per_million"] * TARGET / 1e6 / 3600))
    return out


if __name__ == "__main__":
    main()
