"""Gap scores stored per grid version, blank areas, and site suggestions over the square county."""

import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from geodata import gaps, scenarios
from geodata.errors import NotFound


def test_unscored_grid_says_so(engine, square_grid):
    with engine.connect() as conn, pytest.raises(NotFound, match="no gap scores yet"):
        gaps.latest_scores(conn, grid_id=square_grid)


def test_measures_distances_and_owner(engine, square_grid):
    with engine.connect() as conn:
        m = gaps.cell_measures(conn, grid_id=square_grid).set_index("cell_id")
    assert len(m) == 16 and m["customers"].sum() == 48
    near = m.loc["640121100001"]  # the village at the outlet O1
    assert near["households"] == 110 and near["customers"] == 3
    assert near["owner_rm"] is None or near["owner_rm"] != near["owner_rm"]  # nobody owns it yet
    assert near["dist_outlet_km"] < 3.0  # representative point of its cell, a few km from O1
    far = m.loc["640121100004"]  # (106.05, 38.35): ~26 km from O1, ~26 km from O2
    assert 20 < far["dist_outlet_km"] < 32
    assert m["dist_service_point_km"].isna().all()  # no service points imported


def test_score_store_and_explain(engine, square_grid):
    with engine.begin() as conn:
        first = gaps.score_grid(conn, grid_id=square_grid, trigger="test")
    assert first["cells"] == 16 and sum(first["classes"].values()) == 16
    assert first["classes"]["blank"] == 16  # potential everywhere, nobody owns any cell
    with engine.connect() as conn:
        df = gaps.latest_scores(conn, grid_id=square_grid)
    row = df.iloc[0]
    contribs = {k: v for k, v in row["components"].items() if k.startswith("contrib_")}
    assert abs(sum(contribs.values()) - row["score"]) < 1e-3  # the components explain the score
    assert "无客户经理" in row["reason_zh"] or "no RM" in row["reason_en"]

    with engine.begin() as conn:  # publish an owner for every cell: no cell is blank for lack of owner
        res = scenarios.plan_scenario(conn, grid_id=square_grid, name="gaps-plan", user="t")
        scenarios.publish(conn, scenario_id=res["id"], user="t")
        second = gaps.score_grid(conn, grid_id=square_grid, trigger="publish")
        runs = conn.execute(text("SELECT count(*) FROM gap_run WHERE grid_id = :g"), {"g": square_grid}).scalar()
    assert runs == 2 and second["gap_run_id"] > first["gap_run_id"]
    with engine.connect() as conn:
        after = gaps.latest_scores(conn, grid_id=square_grid)
    assert after["components"].map(lambda c: c.get("comp_no_owner", 0)).max() == 0
    assert after["score"].mean() < df["score"].mean()


def test_sites_cover_more_households(engine, square_grid):
    with engine.connect() as conn:
        res = gaps.suggest_sites(conn, grid_id=square_grid, count=2, radius_km=8)
    assert res["households_covered_after"] > res["households_covered_before"]
    assert len(res["suggestions"]) == 2
    gained = sum(s["households_newly_covered"] for s in res["suggestions"])
    assert abs(res["households_covered_before"] + gained - res["households_covered_after"]) < 0.5


def test_cli_exports_cells_with_scores_and_a_workbook(engine, db_url, square_grid, tmp_path, monkeypatch):
    import openpyxl
    import pyogrio
    from click.testing import CliRunner

    from api.cli import _register, cli

    monkeypatch.setenv("GRIDMKT_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDMKT_HOME", str(tmp_path))
    _register()
    with engine.begin() as conn:
        # RMs own cells (also when this test runs alone, without test_score_store_and_explain's plan).
        owned = conn.execute(text("SELECT count(*) FROM territory WHERE grid_id = :g AND valid_to IS NULL"),
                             {"g": square_grid}).scalar()
        if not owned:
            plan = scenarios.plan_scenario(conn, grid_id=square_grid, name="export-plan", user="t")
            scenarios.publish(conn, scenario_id=plan["id"], user="t")
        gaps.score_grid(conn, grid_id=square_grid, trigger="export test")
    out = tmp_path / "cells.gpkg"
    res = CliRunner().invoke(cli, ["export", "cells", "--grid", str(square_grid), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    cells = pyogrio.read_dataframe(out)
    assert len(cells) == 16 and cells["score"].notna().all()
    contrib = [c for c in cells.columns if c.startswith("contrib_")]
    assert contrib and (cells[contrib].sum(axis=1) - cells["score"]).abs().max() < 1e-3
    book = tmp_path / "rms.xlsx"
    res = CliRunner().invoke(cli, ["export", "workbook", "--grid", str(square_grid), "-o", str(book), "--json"])
    assert res.exit_code == 0, res.output
    assert openpyxl.load_workbook(book).sheetnames == ["汇总 Summary", "客户 Customers", "网格 Cells", "说明 About"]
    res = CliRunner().invoke(cli, ["export", "cells", "-o", str(out), "--json"])
    assert res.exit_code == 2 and "needs --grid" in res.output


def _stored_value(v):
    """What a stored JSON value must read back as: numbers to 6 decimals, missing or non-finite as null."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return round(float(v), 6)
    return v


def test_stored_rows_are_the_computed_scores(engine, square_grid):
    from grid.gaps import score_cells

    odd_rm = 'R"\\\t9 张'  # quote, backslash, tab and Chinese: JSON and COPY escaping both matter
    with engine.connect() as conn:  # rolled back at the end: the module's other tests see none of this
        conn.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) VALUES (:c, '赵六', 1, 'O1')"),
                     {"c": odd_rm})
        conn.execute(text("UPDATE territory SET valid_to = now() WHERE grid_id = :g AND cell_id = '640121100002'"),
                     {"g": square_grid})
        conn.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by) "
                          "VALUES (:g, '640121100002', :c, 'test', 't')"), {"g": square_grid, "c": odd_rm})
        res = gaps.score_grid(conn, grid_id=square_grid, trigger="identity", as_of="2026-01-01")
        measures = gaps.cell_measures(conn, grid_id=square_grid, as_of="2026-01-01")
        stored = pd.DataFrame(conn.execute(
            text("SELECT cell_id, score, gap_class, components, measures, reason_zh, reason_en FROM gap_score "
                 "WHERE gap_run_id = :r ORDER BY cell_id"), {"r": res["gap_run_id"]}).mappings().all())
        conn.rollback()
    scores = score_cells(pd.DataFrame(measures.drop(columns=["geometry", "label"])))
    m = measures.set_index("cell_id")
    assert len(stored) == len(scores) == 16
    assert m.loc["640121100002", "owner_rm"] == odd_rm
    comp_cols = [c for c in scores.columns if c.startswith(("comp_", "contrib_"))]
    measure_cols = [c for c in measures.columns if c not in ("geometry", "cell_id", "label")]
    assert len(comp_cols) == 16 and len(measure_cols) == 13
    for got, want in zip(stored.sort_values("cell_id").to_dict("records"), scores.to_dict("records"), strict=True):
        assert got["cell_id"] == want["cell_id"]
        assert got["score"] == want["score"]  # the exact float, not rounded
        assert got["gap_class"] == want["gap_class"]
        assert got["reason_zh"] == want["reason_zh"] and got["reason_en"] == want["reason_en"]
        assert got["components"] == {c: _stored_value(want[c]) for c in comp_cols}
        meas = {c: _stored_value(m.at[want["cell_id"], c]) for c in measure_cols}
        meas["penetration"] = _stored_value(want["penetration"])
        meas["balance_per_household"] = _stored_value(want["balance_per_household"])
        assert got["measures"] == meas
    odd = stored.set_index("cell_id").at["640121100002", "measures"]
    assert odd["owner_rm"] == odd_rm and odd["days_since_visit"] is None and odd["apportioned"] is False


def test_scores_say_when_territories_or_assignment_changed_since(engine, square_grid):
    """A manual move and a new assignment do not rescore: the latest run says it is stale, and why."""
    from geodata import assign, territories

    with engine.begin() as conn:
        gaps.score_grid(conn, grid_id=square_grid, trigger="test")
        run = gaps.latest_scores(conn, grid_id=square_grid).attrs["gap_run"]
        owners = territories.current_owners(conn, grid_id=square_grid)
    assert run["stale"] is False and run["stale_reasons"] == [] and run["cells_owner_changed"] == 0
    cell, rm = sorted(owners.items())[0]
    other = sorted(set(owners.values()) - {rm})[0]
    with engine.begin() as conn:
        territories.assign_cells(conn, grid_id=square_grid, cell_ids=[cell], rm_code=other, user="t")
    with engine.connect() as conn:
        run = gaps.latest_scores(conn, grid_id=square_grid).attrs["gap_run"]
    assert run["stale"] is True and run["cells_owner_changed"] == 1
    assert run["stale_reasons"] == ["1 cell(s) have another owner than when scored"]
    with engine.begin() as conn:
        gaps.score_grid(conn, grid_id=square_grid, trigger="test")
    with engine.begin() as conn:
        assign.assign_customers(conn, grid_id=square_grid)
    with engine.connect() as conn:
        run = gaps.latest_scores(conn, grid_id=square_grid).attrs["gap_run"]
    assert run["stale"] is True and run["stale_reasons"] == ["customers were assigned to cells again after scoring"]


def test_measures_and_score_use_one_reference_date(engine, square_grid):
    """Issue 15: customers assigned (and visits counted) as of one date, scored as of another (now), read
    'no visit in 90 days' on a cell whose visits_90d was 41. A run now counts the visit measures as of its
    own date, records it (gap_run.as_of, cell_stat.as_of) and never contradicts itself."""
    from geodata import assign

    with engine.begin() as conn:
        # Every customer of the first village visited in June 2025 (the demo's old synthetic date).
        conn.execute(text(
            "INSERT INTO visit (customer_id, rm_code, visited_at) SELECT c.customer_id, 'R1', "
            "TIMESTAMPTZ '2025-06-01 09:00+00' + d * interval '1 day' FROM customer c, generate_series(0, 20) d "
            "WHERE c.village_code = '640121100001'"))
        assign.assign_customers(conn, grid_id=square_grid, as_of="2025-06-30")
        then = gaps.score_grid(conn, grid_id=square_grid, trigger="test", as_of="2025-06-30")
        stat_then = conn.execute(text("SELECT visits_90d, as_of FROM cell_stat WHERE grid_id = :g AND "
                                      "cell_id = '640121100001'"), {"g": square_grid}).one()
        now = gaps.score_grid(conn, grid_id=square_grid, trigger="cli")  # gridmkt gaps score: as of now
        stat_now = conn.execute(text("SELECT visits_90d, customers_visited_90d, as_of FROM cell_stat "
                                     "WHERE grid_id = :g AND cell_id = '640121100001'"), {"g": square_grid}).one()
        runs = dict(conn.execute(text("SELECT id, as_of FROM gap_run WHERE id = ANY(:r)"),
                                 {"r": [then["gap_run_id"], now["gap_run_id"]]}).all())
        df = gaps.latest_scores(conn, grid_id=square_grid)
    assert stat_then.visits_90d == 63 and str(stat_then.as_of.date()) == "2025-06-30"
    assert then["as_of"] == "2025-06-30T00:00:00+00:00" and str(runs[then["gap_run_id"]].date()) == "2025-06-30"
    # As of now, June 2025 is more than 90 days ago: the measures say so as well as the reasons.
    age = pd.Timestamp.now(tz="UTC") - runs[now["gap_run_id"]]
    assert abs(age.total_seconds()) < 600 and pd.Timestamp(now["as_of"]) == runs[now["gap_run_id"]]
    assert stat_now.visits_90d == 0 and stat_now.customers_visited_90d == 0 and stat_now.as_of == runs[now["gap_run_id"]]
    assert df.attrs["gap_run"]["as_of"] == runs[now["gap_run_id"]]
    for m, reason in zip(df["measures"], df["reason_en"], strict=True):
        days = m["days_since_visit"]
        if m["visits_90d"] > 0:
            assert days is not None and days <= 90 and "no visit in 90 days" not in reason
        if days is not None and days > 90:
            assert m["visits_90d"] == 0
    cell = df.set_index("cell_id").loc["640121100001"]
    assert cell["measures"]["visits_90d"] == 0 and cell["measures"]["days_since_visit"] > 500
