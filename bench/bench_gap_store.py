"""Gap scores of a whole grid, stored: ``geodata.gaps.score_grid`` against the old row-by-row store.

Ours: measures in a few statements, ``grid.gaps.score_cells``, the stored
components/measures JSON and COPY lines built column by column, one COPY.
Baseline (reproduced below, as score_grid stored rows before): the same
measures and scores, then per cell a components dict and a measures dict
(``DataFrame.at`` per value), ``json.dumps`` each, one COPY line at a time.
Both run on the same grid in the same database, alternately, best of
``--repeat``; the stored rows of the two runs are compared as text.

    python bench/bench_gap_store.py --county 640121 --res 9 --n 30000
"""

from __future__ import annotations

import argparse
import io
import json
import time

import pandas as pd
from sqlalchemy import text

from bench.bench_assign_store import load
from bench.common import emit, peak_rss_mb, throwaway_database

AS_OF = "2026-01-01"


def baseline_score_grid(conn, *, grid_id: int) -> int:
    """score_grid as it stored rows before: one dict pair and one json.dumps pair per cell."""
    from geodata.gaps import _config_dict, _num, cell_measures
    from grid.gaps import GapConfig, score_cells

    config = GapConfig.default()
    measures = cell_measures(conn, grid_id=grid_id, as_of=AS_OF)
    scores = score_cells(pd.DataFrame(measures.drop(columns=["geometry", "label"])), config)
    run_id = conn.execute(
        text("INSERT INTO gap_run (grid_id, config, trigger) VALUES (:g, CAST(:c AS jsonb), :t) RETURNING id"),
        {"g": grid_id, "c": json.dumps(_config_dict(config), default=float), "t": "bench baseline"},
    ).scalar_one()
    comp_cols = [c for c in scores.columns if c.startswith(("comp_", "contrib_"))]
    measure_cols = [c for c in measures.columns if c not in ("geometry", "cell_id", "label")]
    m = pd.DataFrame(measures.drop(columns=["geometry"])).set_index("cell_id")
    buf = io.StringIO()
    for row in scores.itertuples(index=False):
        r = row._asdict()
        comps = {c: _num(r[c]) for c in comp_cols}
        meas = {c: _num(m.at[r["cell_id"], c]) for c in measure_cols}
        meas["penetration"] = _num(r.get("penetration"))
        meas["balance_per_household"] = _num(r.get("balance_per_household"))
        fields = [str(run_id), r["cell_id"], repr(float(r["score"])), r["gap_class"], json.dumps(comps),
                  json.dumps(meas, ensure_ascii=False), r["reason_zh"] or "", r["reason_en"] or ""]
        buf.write("\t".join(f.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ") for f in fields) + "\n")
    buf.seek(0)
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.copy_expert("COPY gap_score (gap_run_id, cell_id, score, gap_class, components, measures, reason_zh, "
                        "reason_en) FROM STDIN", buf)
    return run_id


def differing_rows(conn, a: int, b: int) -> int:
    """Cells whose stored row differs between two runs (components and measures compared as jsonb text)."""
    return conn.execute(text(
        "SELECT count(*) FROM gap_score x FULL JOIN (SELECT * FROM gap_score WHERE gap_run_id = :b) y "
        "ON y.cell_id = x.cell_id WHERE (x.gap_run_id = :a OR x.gap_run_id IS NULL) AND (x.cell_id IS NULL "
        "OR y.cell_id IS NULL OR x.score <> y.score OR x.gap_class <> y.gap_class "
        "OR x.components::text <> y.components::text OR x.measures::text <> y.measures::text "
        "OR x.reason_zh IS DISTINCT FROM y.reason_zh OR x.reason_en IS DISTINCT FROM y.reason_en)"),
        {"a": a, "b": b}).scalar_one()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--county", default="640121")
    ap.add_argument("--res", type=int, default=9, help="H3 resolution of the grid (9: ~10,500 cells in 640121)")
    ap.add_argument("--n", type=int, default=30_000, help="synthetic customers around the villages")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from geodata import assign, gaps, grids

    with throwaway_database() as (engine, _info):
        load(engine, args.n, args.county, args.seed)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO outlet (code, name, county_code, geom) VALUES "
                "('O1', '支行1', :c, ST_SetSRID(ST_MakePoint(106.2, 38.3), 4326)), "
                "('O2', '支行2', :c, ST_SetSRID(ST_MakePoint(105.9, 38.0), 4326))"), {"c": args.county})
            g = grids.build_grid(conn, county_code=args.county, kind="h3", resolution=args.res)
            assign.assign_customers(conn, grid_id=g["id"], workers=1)
        print(f"grid {g['id']}: {g['cell_count']:,} H3 res-{args.res} cells, {args.n:,} customers")
        ours, base = [], []
        for i in range(args.repeat):
            with engine.begin() as conn:
                t = time.perf_counter()
                run = gaps.score_grid(conn, grid_id=g["id"], trigger="bench", as_of=AS_OF)
                ours.append(time.perf_counter() - t)
            with engine.begin() as conn:
                t = time.perf_counter()
                base_run = baseline_score_grid(conn, grid_id=g["id"])
                base.append(time.perf_counter() - t)
            print(f"round {i + 1}: score_grid {ours[-1]:.2f} s, baseline row by row {base[-1]:.2f} s")
        with engine.connect() as conn:
            differ = differing_rows(conn, run["gap_run_id"], base_run)
        print(f"rows differing between the two stores: {differ} of {run['cells']:,}")
    best, best_base = min(ours), min(base)
    print(f"score_grid {best:.2f} s vs baseline {best_base:.2f} s: {best_base / best:.1f}x")
    emit({
        "bench": "gap_store", "county": args.county, "res": args.res, "cells": run["cells"], "customers": args.n,
        "score_grid_s": round(best, 3), "baseline_s": round(best_base, 3), "ratio": round(best_base / best, 1),
        "cells_per_s": round(run["cells"] / best), "baseline_cells_per_s": round(run["cells"] / best_base),
        "rows_differing": differ, "peak_rss_mb": round(peak_rss_mb()),
    })


if __name__ == "__main__":
    main()
