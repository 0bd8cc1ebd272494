"""One county's batch write-back (``geodata.batch.store.write_back``) at several sizes: its staged rows read
back and written whole against in pieces of ``PIECE_ROWS`` (ranges of customer id, two at a time), same
database, same run.

A staging table of N rows is filled in SQL for an H3 res-8 grid of a real county (ids ``B<number>`` in
no particular order, as bench_batch's; one row in 40 outside the county, no cell), read once (hint bits),
then each way runs in a fresh process that holds the grid's bundle, as a worker does: wall seconds, CPU
seconds of the process and of the database server, the process's resident memory before the write-back
and its peak during it (VmHWM, reset just before). The whole way's peak grows with the county; the
pieces' must not. The last line is one JSON object.

    python bench/bench_write_back.py --sizes 1000000,2000000,4000000 --piece-rows 0,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import cluster_cpu_s, emit, import_ningxia, throwaway_database  # noqa: E402

COUNTY = "640422"  # 西吉县: the biggest county of bench_batch's customers


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def child(url: str, token: str, gid: int, piece_rows: int, write_chunk: int) -> dict:
    """One write-back in this process (``piece_rows`` 0: whole; ``write_chunk`` 0: the module's)."""
    import gc
    import resource

    import numpy as np
    from sqlalchemy import create_engine, text

    from geodata import partition_write
    from geodata.assign import HOW
    from geodata.batch import store
    from geodata.cell_stats import totals_frame
    from geodata.grids import get_grid

    engine = create_engine(url)
    stage = store.staging_name(token, gid)
    with engine.begin() as conn:
        b = store.bundle(conn, get_grid(conn, grid_id=gid))
        counts = dict(conn.execute(text(f"SELECT cell_id, count(*) FROM {stage} WHERE cell_id IS NOT NULL"
                                        " GROUP BY 1")).all())
        how = dict(conn.execute(text(f"SELECT how, count(*) FROM {stage} GROUP BY 1")).all())
    ids = b.cells["cell_id"].to_numpy()
    totals = np.zeros((3, len(ids)), dtype=np.int64)
    totals[0] = [counts.get(c, 0) for c in ids]
    store.PIECE_ROWS = piece_rows or 10**12
    partition_write.WRITE_CHUNK = write_chunk or partition_write.WRITE_CHUNK
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM from here
    before = _status("VmRSS")
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    rep = store.write_back(engine, token=token, grid=b, totals=totals_frame(ids, totals),
                           how={h: int(how.get(h, 0)) for h in HOW})
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": round(wall, 2), "cpu_s": round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 2),
            "rss_before_mb": round(before), "peak_mb": round(_status("VmHWM")),
            "customers": rep["customers"]}


def fill(engine, token: str, gid: int, n: int) -> None:
    from sqlalchemy import text

    from geodata.batch import store

    stage = store.staging_name(token, gid)
    with engine.begin() as conn:
        store.create_staging(conn, token=token, grid_ids=[gid])
        conn.execute(text(
            f"INSERT INTO {stage} (grid_id, customer_id, cell_id, how)"
            " SELECT :g, 'B' || ((i * 7919) % :n), CASE WHEN i % 40 = 0 THEN NULL ELSE c[1 + (i * 31) % cardinality(c)] END,"
            " CASE WHEN i % 40 = 0 THEN 'outside' ELSE 'point' END"
            " FROM generate_series(0, CAST(:n AS bigint) - 1) i,"
            " (SELECT array_agg(cell_id ORDER BY cell_id) c FROM cell WHERE grid_id = :g) cells"), {"g": gid, "n": n})
    with engine.connect() as conn:
        conn.execute(text(f"SELECT count(*) FROM {stage}")).scalar()  # hint bits set, for every way alike


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,2000000,4000000", help="staged rows of the county, comma-separated")
    ap.add_argument("--piece-rows", default="0,1000000",
                    help="comma-separated PIECE_ROWS to run (0: the whole county at once, as before pieces)")
    ap.add_argument("--write-chunk", type=int, default=0,
                    help="rows encoded per COPY chunk (geodata.partition_write.WRITE_CHUNK; 0: the module's)")
    ap.add_argument("--child", nargs=5, metavar=("URL", "TOKEN", "GRID", "PIECE_ROWS", "CHUNK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        url, token, gid, piece, chunk = args.child
        print(json.dumps(child(url, token, int(gid), int(piece), int(chunk))))
        return
    from sqlalchemy import text

    from geodata import grids
    from geodata.batch import store

    runs = []
    with throwaway_database() as (engine, info):
        import_ningxia(engine, ROOT / "bench" / ".cache" / "rejects")
        with engine.begin() as conn:
            gid = int(grids.build_grid(conn, county_code=COUNTY, kind="h3", resolution=8)["id"])
        url = engine.url.render_as_string(hide_password=False)
        for n in [int(x) for x in args.sizes.split(",") if x]:
            token = uuid.uuid4().hex[:16]
            t = time.perf_counter()
            fill(engine, token, gid, n)
            print(f"{n:,} staged rows in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
            for piece in [int(x) for x in args.piece_rows.split(",") if x]:
                load0, s0 = os.getloadavg()[0], cluster_cpu_s(info)
                out = subprocess.run([sys.executable, __file__, "--child", url, token, str(gid), str(piece),
                                      str(args.write_chunk)],
                                     check=True, capture_output=True, text=True, cwd=ROOT)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                with engine.connect() as conn:
                    stored = conn.execute(text("SELECT count(*) FROM customer_cell WHERE grid_id = :g"), {"g": gid}).scalar()
                    tables = conn.execute(text("SELECT count(*) FROM pg_inherits WHERE inhparent ="
                                               " CAST(:t AS regclass)"), {"t": f"customer_cell_g{gid}"}).scalar()
                assert stored == n == r["customers"], (stored, n, r)
                r.update({"staged": n, "piece_rows": piece or None, "pieces": tables or 1,
                          "write_chunk": args.write_chunk or None,
                          "server_cpu_s": round(cluster_cpu_s(info) - s0, 1),
                          "peak_above_before_mb": r["peak_mb"] - r["rss_before_mb"],
                          "rows_per_s": round(n / r["wall_s"]),
                          "load_avg": [round(load0, 1), round(os.getloadavg()[0], 1)]})
                print(r, flush=True)
                runs.append(r)
            store.drop_staging(engine, token=token, grid_ids=[gid])
    emit({"bench": "write_back", "county": COUNTY, "runs": runs})


if __name__ == "__main__":
    main()
