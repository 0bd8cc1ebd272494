"""Customers import: our streaming COPY importer against GeoDataFrame.to_postgis on the same rows.

    python bench/bench_import_customers.py --n 1000000

Both load the same GCJ-02 CSV into the ``customer`` table of a throwaway
database holding the 22 real counties (emptied in between). Ours: parse,
validate (including the check of each point against its county), convert
GCJ-02 → WGS84, binary COPY, then the table's keys and indexes built once. Baseline:
pandas.read_csv, the same conversion, points, to_postgis. Ours is also split
into its two phases (reading/validating/COPY, then keys and indexes), in wall
and CPU seconds. The last line is one JSON object with the figures.
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
from bench.common import DATA, cluster_cpu_s, emit, own_cpu_s, peak_rss_mb, throwaway_database  # noqa: E402

SURNAMES = "王李张刘陈杨马田何吴赵周金丁"
GIVEN = "明华国兵军伟芳秀英玉兰海建平忠福贵强丽霞娟"


def make_file(path: Path, n: int, seed: int = 7) -> None:
    """n customers around real village points (GCJ-02), written in chunks, 5% without a point."""
    rng = np.random.default_rng(seed)
    v = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str})
    first = True
    for start in range(0, n, 500_000):
        m = min(500_000, n - start)
        i = rng.integers(0, len(v), m)
        lon = v.lon_gcj02.to_numpy()[i] + rng.normal(0, 0.01, m)
        lat = v.lat_gcj02.to_numpy()[i] + rng.normal(0, 0.01, m)
        nopoint = rng.random(m) < 0.05
        ids = np.arange(start, start + m)
        df = pd.DataFrame({
            "customer_id": np.char.add("C", np.char.zfill(ids.astype(str), 10)),
            # Surname and one or two given characters: names of varying length, as in a real file.
            "name": np.char.add(np.char.add(rng.choice(list(SURNAMES), m), rng.choice(list(GIVEN), m)),
                                np.where(rng.random(m) < 0.7, rng.choice(list(GIVEN), m), "")),
            "village_code": v.code.to_numpy()[i],
            "lon": np.where(nopoint, "", np.char.mod("%.6f", lon)),
            "lat": np.where(nopoint, "", np.char.mod("%.6f", lat)),
            "deposit_balance": np.char.mod("%.2f", rng.lognormal(9, 1.5, m)),
            "loan_balance": np.char.mod("%.2f", np.where(rng.random(m) < 0.2, rng.lognormal(10, 1, m), 0)),
            "segment": rng.choice(["普通", "贵宾", "小微"], m),
            "opened_on": "2019-05-01",
        })
        df.to_csv(path, mode="w" if first else "a", header=first, index=False)
        first = False


def ours(engine, path: Path, rejects: Path, on_index=None) -> dict:
    from geodata.importers import run_import

    def progress(fraction: float, message: str = "") -> None:
        # run_import says 'indexing' (or 'merging') when the COPY phase is over.
        if on_index is not None and message in ("indexing", "merging"):
            on_index()

    return run_import(engine, kind="customers", path=path, user="bench", crs="gcj02", rejects_dir=rejects,
                      progress=progress)


def baseline_frame(path: Path, nrows: int | None = None):
    """The file as a baseline user builds it: read_csv, GCJ-02 → WGS84, typed columns, points.

    As the table keeps them, a row without a point has no geom (not a NaN point) and no source CRS.
    """
    import geopandas as gpd

    from grid.chinacrs import to_wgs84

    df = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=nrows)
    lon = pd.to_numeric(df.pop("lon"), errors="coerce").to_numpy()
    lat = pd.to_numeric(df.pop("lat"), errors="coerce").to_numpy()
    x, y = to_wgs84(lon, lat, "gcj02")
    df["county_code"] = df.village_code.str[:6]
    for c in ("deposit_balance", "loan_balance"):
        df[c] = pd.to_numeric(df[c])
    df["opened_on"] = pd.to_datetime(df.opened_on).dt.date
    nopoint = np.isnan(x) | np.isnan(y)
    df["source_crs"] = np.where(nopoint, None, "gcj02")
    points = gpd.points_from_xy(x, y)
    points[nopoint] = None
    return gpd.GeoDataFrame(df, geometry=points, crs=4326).rename_geometry("geom")


def baseline(engine, path: Path, nrows: int | None = None) -> int:
    gdf = baseline_frame(path, nrows)
    gdf.to_postgis("customer", engine, if_exists="append", index=False, chunksize=100_000)
    return len(gdf)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="customer rows (default 1M)")
    ap.add_argument("--baseline-rows", type=int, default=None,
                    help="run the baseline on the file's first N rows only and compare rates"
                         " (to_postgis holds everything in memory: 10M rows need ~10 GB and 7 min)")
    args = ap.parse_args()
    from sqlalchemy import text

    with tempfile.TemporaryDirectory() as tmp, throwaway_database() as (engine, info):
        path = Path(tmp) / "customers.csv"
        # Generated in a child process so this process's peak memory is the import's.
        maker = multiprocessing.get_context("fork").Process(target=make_file, args=(path, args.n))
        maker.start()
        maker.join()
        mb = path.stat().st_size / 1e6
        # Modules are loaded before the clocks start: both sides are timed on the work, not on imports.
        import geopandas  # noqa: F401

        import geodata.importers  # noqa: F401
        import grid.chinacrs  # noqa: F401
        from geodata.importers import run_import

        # The real counties, as in use: ours then flags points outside their stated county.
        run_import(engine, kind="counties", path=DATA / "ningxia_counties_gcj02.geojson", user="bench",
                   crs="gcj02", rejects_dir=Path(tmp))
        c0, s0, t0 = own_cpu_s(), cluster_cpu_s(info), time.perf_counter()
        split: list[tuple[float, float, float]] = []
        summary = ours(engine, path, Path(tmp),
                       on_index=lambda: split.append((time.perf_counter(), own_cpu_s(), cluster_cpu_s(info))))
        t_ours = time.perf_counter() - t0
        cpu_ours, db_ours = own_cpu_s() - c0, cluster_cpu_s(info) - s0
        t_split, c_split, s_split = split[0] if split else (t0 + t_ours, c0 + cpu_ours, s0 + db_ours)
        phases = {
            "copy": (t_split - t0, c_split - c0, s_split - s0),
            "index": (t0 + t_ours - t_split, c0 + cpu_ours - c_split, s0 + db_ours - s_split),
        }
        rss_ours = peak_rss_mb()
        assert summary["counts"]["inserted"] == args.n, summary["counts"]
        with engine.begin() as c:
            c.execute(text("TRUNCATE customer"))
        c0, s0, t0 = own_cpu_s(), cluster_cpu_s(info), time.perf_counter()
        n_base = baseline(engine, path, args.baseline_rows)
        t_base = time.perf_counter() - t0
        cpu_base, db_base = own_cpu_s() - c0, cluster_cpu_s(info) - s0
        with engine.connect() as c:
            stored = c.execute(text("SELECT count(*) FROM customer")).scalar()
        assert stored == n_base == min(args.n, args.baseline_rows or args.n)
    ours_rate, base_rate = args.n / t_ours, n_base / t_base
    print(f"file: {args.n:,} rows, {mb:.0f} MB")
    print(f"ours (parse, validate, GCJ-02→WGS84, COPY, index): {t_ours:.2f} s = {ours_rate:,.0f} rows/s")
    print(f"baseline (read_csv + to_postgis):                {t_base:.2f} s = {base_rate:,.0f} rows/s"
          f" ({n_base:,} rows)")
    for name, label in (("copy", "read, validate, convert, COPY"), ("index", "keys and indexes")):
        w, c, d = phases[name]
        print(f"  ours, {label}: {w:.2f} s wall, CPU {c:.1f} s python + {d:.1f} s postgres")
    print(f"ratio: {ours_rate / base_rate:.1f}x; peak RSS after ours {rss_ours:.0f} MB, overall {peak_rss_mb():.0f} MB")
    # On a shared machine wall time depends on the neighbours; CPU seconds much less so.
    print(f"CPU s (python + postgres): ours {cpu_ours:.1f} + {db_ours:.1f}, baseline {cpu_base:.1f} + {db_base:.1f};"
          f" load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    emit({
        "bench": "import_customers", "n": args.n, "file_mb": round(mb, 1),
        "ours_s": round(t_ours, 3), "ours_rows_per_s": round(ours_rate),
        "baseline_n": n_base, "baseline_s": round(t_base, 3), "baseline_rows_per_s": round(base_rate),
        "ratio": round(ours_rate / base_rate, 2), "peak_rss_mb_ours": round(rss_ours),
        "cpu_s_ours": round(cpu_ours, 1), "db_cpu_s_ours": round(db_ours, 1),
        "ours_copy_phase_s": round(phases["copy"][0], 2), "ours_index_phase_s": round(phases["index"][0], 2),
        "db_cpu_s_ours_copy_phase": round(phases["copy"][2], 1),
        "db_cpu_s_ours_index_phase": round(phases["index"][2], 1),
        "cpu_s_baseline": round(cpu_base, 1), "db_cpu_s_baseline": round(db_base, 1),
        # CPU seconds per row, baseline over ours.
        "cpu_ratio": round((cpu_base + db_base) / n_base / max((cpu_ours + db_ours) / args.n, 1e-12), 2),
        "load_avg": round(os.getloadavg()[0], 1),
        "peak_rss_mb_overall": round(peak_rss_mb()),
    })


if __name__ == "__main__":
    main()
