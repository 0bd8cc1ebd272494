"""Gap scores stored per grid version, blank areas, and site suggestions over the square county."""

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
    assert len(openpyxl.load_workbook(book).sheetnames) >= 2  # summary + one sheet per owning RM
    res = CliRunner().invoke(cli, ["export", "cells", "-o", str(out), "--json"])
    assert res.exit_code == 2 and "needs --grid" in res.output
