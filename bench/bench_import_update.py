"""Customers re-import (the update path) against read_csv + to_postgis + one ON CONFLICT upsert on the same rows.

    python bench/bench_import_update.py --n 1000000

A throwaway database holds the 22 real counties and the first version of a
GCJ-02 customers file (``make_file``, N rows). The second version (seeded) has
~5% of the rows with another deposit balance, ~1% with a moved point, ~5% new
customers appended, the rest identical. Ours: ``run_import`` of the second
file, which stages the rows (read, check, convert, binary COPY into a
temporary table) and merges them in one set-based upsert by ``customer_id``;
its reported counts are checked. Baseline, after the table is restored to the
first version: pandas.read_csv, the same GCJ-02 → WGS84 conversion,
``to_postgis`` into a staging table, one ``INSERT ... ON CONFLICT DO UPDATE ...
WHERE ... IS DISTINCT FROM`` and the staging table dropped, in one transaction.
Both final tables are compared row by row. The first load runs in a child
process so this process's peak memory is the update's. The last line is one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_import_customers import baseline_frame, make_file  # noqa: E402
from bench.common import DATA, cluster_cpu_s, emit, own_cpu_s, peak_rss_mb, throwaway_database  # noqa: E402

BALANCE_SHARE, MOVED_SHARE, NEW_SHARE = 0.05, 0.01, 0.05
CHUNK = 500_000
# Columns both sides write and compare (the file has no id_number, phone or legal entity).
COLUMNS = ("name", "county_code", "village_code", "deposit_balance", "loan_balance", "segment", "opened_on",
           "source_crs", "geom")


def make_changed(first: Path, second: Path, n: int, seed: int, report) -> None:
    """The second version of ``first``: some balances changed, some points moved, new customers appended.

    Sends {'balance', 'moved', 'changed', 'new'} through ``report`` (a pipe end); 'changed' counts
    rows with either change once.
    """
    rng = np.random.default_rng(seed)
    n_new = round(n * NEW_SHARE)
    balance = moved = changed = 0
    header = True
    for chunk in pd.read_csv(first, dtype=str, keep_default_na=False, chunksize=CHUNK):
        m = len(chunk)
        bal = rng.random(m) < BALANCE_SHARE
        # Only a row with a point can move; +0.01° of longitude is about 1 km.
        mov = (rng.random(m) < MOVED_SHARE) & (chunk.lon != "").to_numpy()
        dep = chunk.deposit_balance.to_numpy(dtype=float)
        chunk.loc[bal, "deposit_balance"] = np.char.mod("%.2f", dep[bal] * 1.1 + 1)
        lon = pd.to_numeric(chunk.lon[mov]).to_numpy()
        chunk.loc[mov, "lon"] = np.char.mod("%.6f", lon + 0.01)
        balance, moved, changed = balance + int(bal.sum()), moved + int(mov.sum()), changed + int((bal | mov).sum())
        chunk.to_csv(second, mode="w" if header else "a", header=header, index=False)
        header = False
    # New customers: make_file's rows (another seed), numbered after the first file's.
    extra = second.with_name("new-customers.csv")
    make_file(extra, n_new, seed=seed + 1)
    for chunk in pd.read_csv(extra, dtype=str, keep_default_na=False, chunksize=CHUNK):
        chunk["customer_id"] = "C" + (chunk.customer_id.str[1:].astype(np.int64) + n).astype(str).str.zfill(10)
        chunk.to_csv(second, mode="a", header=False, index=False)
    extra.unlink()
    report.send({"balance": balance, "moved": moved, "changed": changed, "new": n_new})


def make_files(first: Path, second: Path, n: int, seed: int, report) -> None:
    make_file(first, n)
    make_changed(first, second, n, seed, report)


def first_load(url: str, path: Path, tmp: Path, report) -> None:
    """Counties and the first version of the customers, with a fresh engine (runs in a forked child)."""
    from sqlalchemy import create_engine, text

    from geodata.importers import run_import

    engine = create_engine(url)
    run_import(engine, kind="counties", path=DATA / "ningxia_counties_gcj02.geojson", user="bench",
               crs="gcj02", rejects_dir=tmp)
    t0 = time.perf_counter()
    summary = run_import(engine, kind="customers", path=path, user="bench", crs="gcj02", rejects_dir=tmp)
    seconds = time.perf_counter() - t0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        # Both timed runs start from a vacuumed, analysed table, with no autovacuum running under them.
        c.execute(text("VACUUM ANALYZE customer"))
    engine.dispose()
    report.send({"seconds": seconds, "counts": summary["counts"]})


def in_child(target, *args) -> dict:
    """Run ``target(*args, pipe_end)`` in a forked child; returns what it sent."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(*args, send))
    child.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        result = None
    child.join()
    if child.exitcode != 0 or result is None:
        raise RuntimeError(f"{target.__name__} failed (exit code {child.exitcode})")
    return result


def ours(engine, path: Path, rejects: Path, on_merge=None) -> dict:
    from geodata.importers import run_import

    def progress(fraction: float, message: str = "") -> None:
        # run_import says 'merging' when every row is staged and the upsert starts.
        if on_merge is not None and message in ("merging", "indexing"):
            on_merge(message)

    return run_import(engine, kind="customers", path=path, user="bench", crs="gcj02", rejects_dir=rejects,
                      progress=progress)


def baseline(engine, path: Path, marks: list[float]) -> tuple[int, int, int]:
    """read_csv, convert, to_postgis into a staging table, one upsert; returns (rows, inserted, updated).

    Appends to ``marks`` the clock when the frame is ready and when the staging table is written.
    """
    from sqlalchemy import text

    gdf = baseline_frame(path)
    cols = ", ".join(COLUMNS)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS)
    old = ", ".join(f"customer.{c}" for c in COLUMNS)
    new = ", ".join(f"EXCLUDED.{c}" for c in COLUMNS)
    marks.append(time.perf_counter())
    with engine.begin() as conn:
        gdf.to_postgis("customer_staging", conn, if_exists="replace", index=False, chunksize=100_000)
        marks.append(time.perf_counter())
        inserted, updated = conn.execute(text(
            f"WITH up AS (INSERT INTO customer (customer_id, {cols})"
            " SELECT customer_id, name, county_code, village_code, deposit_balance::numeric(18, 2),"
            " loan_balance::numeric(18, 2), segment, opened_on::date, source_crs, geom FROM customer_staging"
            f" ON CONFLICT (customer_id) DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new})"
            " RETURNING (xmax = 0) AS fresh)"
            " SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM up"
        )).one()
        conn.execute(text("DROP TABLE customer_staging"))
    return len(gdf), int(inserted), int(updated)


def table_figures(conn) -> tuple[int, float, int]:
    from sqlalchemy import text

    rows, total, geoms = conn.execute(text(
        "SELECT count(*), sum(deposit_balance + loan_balance), count(geom) FROM customer")).one()
    return int(rows), float(total), int(geoms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="customer rows of the first version (default 1M)")
    ap.add_argument("--seed", type=int, default=11, help="seed of the changes (default 11)")
    args = ap.parse_args()
    from sqlalchemy import text

    with tempfile.TemporaryDirectory() as tmp, throwaway_database() as (engine, info):
        tmp = Path(tmp)
        first, second = tmp / "customers-v1.csv", tmp / "customers-v2.csv"
        # Files and the first load in forked children: this process's peak memory is the update's.
        changes = in_child(make_files, first, second, args.n, args.seed)
        mb = second.stat().st_size / 1e6
        engine.dispose()  # no pooled connection crosses the fork
        loaded = in_child(first_load, info.url(), first, tmp)
        assert loaded["counts"]["inserted"] == args.n and loaded["counts"]["rejected"] == 0, loaded
        # Modules are loaded before the clocks start: both sides are timed on the work, not on imports.
        import geopandas  # noqa: F401

        import geodata.importers  # noqa: F401
        import grid.chinacrs  # noqa: F401
        from geodata.importers import run_import

        c0, s0, t0 = own_cpu_s(), cluster_cpu_s(info), time.perf_counter()
        split: list[tuple[str, float, float, float]] = []
        summary = ours(engine, second, tmp,
                       on_merge=lambda m: split.append((m, time.perf_counter(), own_cpu_s(), cluster_cpu_s(info))))
        t_ours = time.perf_counter() - t0
        cpu_ours, db_ours = own_cpu_s() - c0, cluster_cpu_s(info) - s0
        rss_ours = peak_rss_mb()
        path_taken, t_split, c_split, s_split = split[0] if split else ("?", t0 + t_ours, c0 + cpu_ours, s0 + db_ours)
        phases = {
            "stage": (t_split - t0, c_split - c0, s_split - s0),
            "merge": (t0 + t_ours - t_split, c0 + cpu_ours - c_split, s0 + db_ours - s_split),
        }
        counts = summary["counts"]
        expected = {"rows": args.n + changes["new"], "inserted": changes["new"], "updated": changes["changed"],
                    "unchanged": args.n - changes["changed"], "rejected": 0}
        assert path_taken == "merging", f"the update took the {path_taken!r} path, not the upsert"
        assert {k: counts.get(k) for k in expected} == expected, f"reported {counts}, expected {expected}"
        with engine.begin() as c:
            figures_ours = table_figures(c)
            # Kept to compare with the baseline's table row by row (not timed).
            c.execute(text(f"CREATE TABLE bench_ours AS SELECT customer_id, {', '.join(COLUMNS)} FROM customer"))
        assert figures_ours[0] == args.n + changes["new"], figures_ours

        # Back to the first version, loaded the same way (the latest run is the second file, so it loads).
        with engine.begin() as c:
            c.execute(text("TRUNCATE customer"))
        restored = run_import(engine, kind="customers", path=first, user="bench", crs="gcj02", rejects_dir=tmp)
        assert restored["counts"]["inserted"] == args.n, restored["counts"]
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE customer"))

        c0, s0, t0 = own_cpu_s(), cluster_cpu_s(info), time.perf_counter()
        marks: list[float] = []
        n_base, ins_base, upd_base = baseline(engine, second, marks)
        t_base = time.perf_counter() - t0
        base_phases = {"read": marks[0] - t0, "to_postgis": marks[1] - marks[0], "upsert": t0 + t_base - marks[1]}
        cpu_base, db_base = own_cpu_s() - c0, cluster_cpu_s(info) - s0
        with engine.connect() as c:
            figures_base = table_figures(c)
            differing = c.execute(text(
                "SELECT count(*) FROM bench_ours o FULL JOIN customer c USING (customer_id)"
                " WHERE o.customer_id IS NULL OR c.customer_id IS NULL"
                f" OR ({', '.join('o.' + x for x in COLUMNS)}) IS DISTINCT FROM ({', '.join('c.' + x for x in COLUMNS)})"
            )).scalar()
        assert figures_base[0] == figures_ours[0] and figures_base[2] == figures_ours[2], (figures_base, figures_ours)
        assert abs(figures_base[1] - figures_ours[1]) < 0.005, (figures_base, figures_ours)
        # The same job: the same rows in the end, and the same rows touched.
        assert differing == 0, f"{differing} rows differ between ours and the baseline"
        assert (ins_base, upd_base) == (counts["inserted"], counts["updated"]), (ins_base, upd_base, counts)
    rows = n_base
    ours_rate, base_rate = rows / t_ours, rows / t_base
    print(f"files: {args.n:,} rows, then {rows:,} rows ({mb:.0f} MB): {changes['balance']:,} balances changed,"
          f" {changes['moved']:,} points moved ({changes['changed']:,} rows changed), {changes['new']:,} new")
    print(f"first load (ours, into an empty table, not compared): {loaded['seconds']:.2f} s")
    print(f"ours (read, check, GCJ-02→WGS84, COPY to staging, upsert): {t_ours:.2f} s = {ours_rate:,.0f} rows/s;"
          f" reported {counts['inserted']:,} inserted, {counts['updated']:,} updated,"
          f" {counts['unchanged']:,} unchanged, {counts['rejected']} rejected (as expected)")
    print(f"baseline (read_csv, to_postgis staging, ON CONFLICT upsert): {t_base:.2f} s = {base_rate:,.0f} rows/s;"
          f" {ins_base:,} inserted, {upd_base:,} updated")
    print("  baseline: read and convert {read:.2f} s, to_postgis {to_postgis:.2f} s,"
          " upsert, drop and commit {upsert:.2f} s".format(**base_phases))
    for name, label in (("stage", "read, check, convert, COPY to staging"), ("merge", "upsert and commit")):
        w, c, d = phases[name]
        print(f"  ours, {label}: {w:.2f} s wall, CPU {c:.1f} s python + {d:.1f} s postgres")
    print(f"same final table: {figures_ours[0]:,} rows, {figures_ours[2]:,} points, balances {figures_ours[1]:,.2f};"
          f" rows differing in compared columns: {differing}")
    print(f"ratio: {ours_rate / base_rate:.1f}x; peak RSS after ours {rss_ours:.0f} MB, overall {peak_rss_mb():.0f} MB")
    print(f"CPU s (python + postgres): ours {cpu_ours:.1f} + {db_ours:.1f}, baseline {cpu_base:.1f} + {db_base:.1f};"
          f" load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    emit({
        "bench": "import_update", "n": args.n, "rows": rows, "file_mb": round(mb, 1),
        "balance_changed": changes["balance"], "moved": changes["moved"], "changed": changes["changed"],
        "new": changes["new"],
        "inserted": counts["inserted"], "updated": counts["updated"], "unchanged": counts["unchanged"],
        "rejected": counts["rejected"], "first_load_s": round(loaded["seconds"], 3),
        "ours_s": round(t_ours, 3), "ours_rows_per_s": round(ours_rate),
        "baseline_s": round(t_base, 3), "baseline_rows_per_s": round(base_rate),
        "baseline_inserted": ins_base, "baseline_updated": upd_base,
        "ratio": round(ours_rate / base_rate, 2), "peak_rss_mb_ours": round(rss_ours),
        "ours_stage_phase_s": round(phases["stage"][0], 2), "ours_merge_phase_s": round(phases["merge"][0], 2),
        "db_cpu_s_ours_stage_phase": round(phases["stage"][2], 1),
        "db_cpu_s_ours_merge_phase": round(phases["merge"][2], 1),
        **{f"baseline_{k}_phase_s": round(v, 2) for k, v in base_phases.items()},
        "cpu_s_ours": round(cpu_ours, 1), "db_cpu_s_ours": round(db_ours, 1),
        "cpu_s_baseline": round(cpu_base, 1), "db_cpu_s_baseline": round(db_base, 1),
        "cpu_ratio": round((cpu_base + db_base) / max(cpu_ours + db_ours, 1e-12), 2),
        "rows_differing": differing, "load_avg": round(os.getloadavg()[0], 1),
        "peak_rss_mb_overall": round(peak_rss_mb()),
    })


if __name__ == "__main__":
    main()
