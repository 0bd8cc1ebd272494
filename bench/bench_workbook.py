"""The RM workbook of the demo county: ``geodata.workbook`` against the one-sheet-per-RM workbook it replaced.

Ours: four sheets (summary with totals, customers, cells, glossary), typed
cells with number formats, written by ``geodata.workbook``. Baseline
(reproduced below, as exports_grid wrote it before): a summary sheet and one
sheet per RM holding that RM's cells table then customers table, every value
in the General format, times as text. Both are built from the same grid in
the same database (the demo's reference data and synthetic bank, an H3 grid,
a published plan, gap scores), whole scope (as ``gridmkt export workbook``).

Figures: seconds to build and write each, file size, and seconds for openpyxl
to open each (``load_workbook``, every cell read: the nearest stand-in for a
spreadsheet program here, which has none). ``--previous REF`` also writes the
same data with ``geodata/workbook.py`` as it was at git commit REF (for
example the commit before a change to the writer), in the same run.

    python bench/bench_workbook.py --customers 100000 [--previous REF]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from bench.common import emit, throwaway_database

_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def baseline_data(conn, *, grid_id: int, scope):
    """rm_workbook_data as it was: per RM (one query each) their cells and their customers."""
    from geodata.exports_grid import cells_layer, territories_layer
    from geodata.scope import where

    cells = cells_layer(conn, grid_id=grid_id)
    terr = territories_layer(conn, grid_id=grid_id, scope=scope)
    cond = where(scope, "customer", "c")
    sheets = {}
    for rm in terr["rm_code"]:
        mine = pd.DataFrame(cells[cells["owner_rm"] == rm].drop(columns="geometry"))
        rows = conn.execute(text(
            "SELECT c.customer_id, c.name, c.phone, c.id_number, cc.cell_id, c.village_code, c.segment,"
            " c.deposit_balance::float8 AS deposit_balance, c.loan_balance::float8 AS loan_balance"
            " FROM customer c JOIN customer_cell cc ON cc.customer_id = c.customer_id AND cc.grid_id = :g"
            " JOIN territory t ON t.grid_id = cc.grid_id AND t.cell_id = cc.cell_id AND t.role = 'owner'"
            f" AND t.valid_to IS NULL WHERE t.rm_code = :rm AND {cond.sql} ORDER BY cc.cell_id, c.customer_id"
            " LIMIT 1000000"), {**cond.params, "g": grid_id, "rm": rm}).mappings().all()
        customers = pd.DataFrame([dict(r) for r in rows], columns=[
            "customer_id", "name", "phone", "id_number", "cell_id", "village_code", "segment",
            "deposit_balance", "loan_balance"])
        sheets[rm] = (mine, customers)
    summary = pd.DataFrame(terr.drop(columns="geometry"))
    summary["customers_listed"] = [len(sheets[r][1]) for r in summary["rm_code"]]
    return summary, sheets


def _sheet_name(rm_code, rm_name, taken):
    base = _SHEET_BAD.sub("_", f"{rm_code} {rm_name}" if rm_name else rm_code)[:31] or "RM"
    name, i = base, 1
    while name.lower() in taken:
        i += 1
        name = f"{base[:27]}~{i}"
    taken.add(name.lower())
    return name


def baseline_write(path: Path, *, summary, sheets) -> Path:
    """write_workbook as it was: General-format cells, times as text, one sheet per RM."""
    import xlsxwriter

    from geodata.exports_grid import _plain

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_urls": False,
                                         "strings_to_formulas": False, "nan_inf_to_errors": True})
    bold = wb.add_format({"bold": True})

    def table(ws, row, df):
        ws.write_row(row, 0, list(df.columns), bold)
        for values in _plain(df).itertuples(index=False, name=None):
            row += 1
            ws.write_row(row, 0, [None if v is None or (isinstance(v, float) and v != v) else v for v in values])
        return row + 2

    ws = wb.add_worksheet("汇总 Summary")
    table(ws, 0, summary)
    taken = {"汇总 summary"}
    names = dict(zip(summary["rm_code"], summary["rm_name"], strict=True)) if len(summary) else {}
    for rm, (cells, customers) in sheets.items():
        ws = wb.add_worksheet(_sheet_name(rm, names.get(rm), taken))
        ws.write_row(0, 0, ["cells / 网格"], bold)
        row = table(ws, 1, cells)
        ws.write_row(row, 0, ["customers / 客户"], bold)
        table(ws, row + 1, customers)
    wb.close()
    return path


def writer_at(ref: str, out: Path):
    """``geodata/workbook.py`` as it was at git commit ``ref``, loaded as a module of its own."""
    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "-C", str(root), "show", f"{ref}:geodata/workbook.py"], check=True,
                         capture_output=True, text=True).stdout
    path = out / "workbook_previous.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("workbook_previous", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_seconds(path: Path) -> tuple[float, int]:
    """openpyxl opening the file whole (every cell parsed, as a spreadsheet program does); sheets."""
    import openpyxl

    t0 = time.perf_counter()
    wb = openpyxl.load_workbook(path)
    seconds = time.perf_counter() - t0
    return seconds, len(wb.sheetnames)


def demo_grid(engine, *, customers: int, county: str, res: int, home: Path) -> int:
    """The demo's reference data and synthetic bank, then an H3 grid, a published plan and gap scores."""
    from api.demo import DemoContext, step_reference, step_synthetic
    from api.settings import AuthSettings, DatabaseSettings, Settings
    from geodata import assign, gaps, grids, scenarios

    settings = Settings(db=DatabaseSettings(url=engine.url.render_as_string(hide_password=False), home=home),
                        auth=AuthSettings(secret_key="bench"))
    ctx = DemoContext(engine=engine, settings=settings, county=county, customers=customers, res=res,
                      workdir=home / "demo")
    step_reference(ctx)
    step_synthetic(ctx)
    with engine.begin() as conn:
        g = grids.build_grid(conn, county_code=county, kind="h3", resolution=res)
        assign.assign_customers(conn, grid_id=g["id"], as_of=ctx.as_of)
        plan = scenarios.plan_scenario(conn, grid_id=g["id"], name="bench-plan", user="bench", seed=ctx.seed)
        scenarios.publish(conn, scenario_id=plan["id"], user="bench")
        gaps.score_grid(conn, grid_id=g["id"], trigger="bench", as_of=ctx.as_of)
    return g["id"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=100_000, help="the demo's default")
    ap.add_argument("--county", default="640121")
    ap.add_argument("--res", type=int, default=8)
    ap.add_argument("--previous", metavar="REF", help="also write with geodata/workbook.py as at this git commit")
    args = ap.parse_args()

    from geodata import workbook
    from geodata.reads.workbook import workbook_data
    from geodata.scope import Scope

    everything = Scope(role="admin", legal_entity_id=None)
    out = Path(tempfile.mkdtemp(prefix="gridmkt-bench-workbook-"))
    previous = writer_at(args.previous, out) if args.previous else None
    with throwaway_database() as (engine, _info):
        t0 = time.perf_counter()
        gid = demo_grid(engine, customers=args.customers, county=args.county, res=args.res, home=out)
        setup = time.perf_counter() - t0
        with engine.connect() as conn:
            t0 = time.perf_counter()
            summary, sheets = baseline_data(conn, grid_id=gid, scope=everything)
            old = baseline_write(out / "baseline.xlsx", summary=summary, sheets=sheets)
            old_write = time.perf_counter() - t0
            t0 = time.perf_counter()
            data = workbook_data(conn, grid_id=gid, scope=everything)
            new = workbook.write_workbook(out / "ours.xlsx", data)
            new_write = time.perf_counter() - t0
            if previous is not None:
                t0 = time.perf_counter()
                data = workbook_data(conn, grid_id=gid, scope=everything)
                prev = previous.write_workbook(out / "previous.xlsx", data)
                prev_write = time.perf_counter() - t0
            cells = conn.execute(text("SELECT count(*) FROM cell WHERE grid_id = :g"), {"g": gid}).scalar()
    old_open, old_sheets = open_seconds(old)
    new_open, new_sheets = open_seconds(new)
    figures = {}
    if previous is not None:
        prev_open, prev_sheets = open_seconds(prev)
        figures["previous"] = {"ref": args.previous, "sheets": prev_sheets, "mb": round(prev.stat().st_size / 1e6, 2),
                               "write_s": round(prev_write, 2), "open_s": round(prev_open, 2)}
    print(f"grid {gid}: {cells} cells, {len(data.summary)} RMs, {len(data.customers)} customers listed "
          f"(setup {setup:.0f} s)")
    print(f"baseline: {old_sheets} sheets, {old.stat().st_size / 1e6:.2f} MB, written in {old_write:.1f} s, "
          f"opened in {old_open:.1f} s")
    print(f"ours:     {new_sheets} sheets, {new.stat().st_size / 1e6:.2f} MB, written in {new_write:.1f} s, "
          f"opened in {new_open:.1f} s")
    if previous is not None:
        p = figures["previous"]
        print(f"previous ({args.previous}): {p['sheets']} sheets, {p['mb']:.2f} MB, written in {p['write_s']:.1f} s, "
              f"opened in {p['open_s']:.1f} s")
    emit({"bench": "workbook", "customers": args.customers, "cells": cells, "rms": len(data.summary),
          "customers_listed": len(data.customers),
          "baseline": {"sheets": old_sheets, "mb": round(old.stat().st_size / 1e6, 2),
                       "write_s": round(old_write, 2), "open_s": round(old_open, 2)},
          "ours": {"sheets": new_sheets, "mb": round(new.stat().st_size / 1e6, 2),
                   "write_s": round(new_write, 2), "open_s": round(new_open, 2)}, **figures})


if __name__ == "__main__":
    main()
