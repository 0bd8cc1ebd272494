"""Derived figures follow the data: imports and publishing refresh statistics and scores."""

import datetime as dt

from sqlalchemy import text

from geodata import gaps, refresh, scenarios
from geodata.importers import run_import


def _stat(engine, grid_id, cell_id, col):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT {col} FROM cell_stat WHERE grid_id = :g AND cell_id = :c"),
                            {"g": grid_id, "c": cell_id}).scalar()


def test_visit_import_refreshes_stats_and_scores(engine, square_grid, tmp_path):
    with engine.begin() as conn:
        gaps.score_grid(conn, grid_id=square_grid, trigger="test")
    assert _stat(engine, square_grid, "640121100001", "visits_90d") == 0
    day = (dt.date.today() - dt.timedelta(days=10)).isoformat()
    f = tmp_path / "visits.csv"
    f.write_text("客户号,客户经理工号,走访时间\n" + "".join(f"C001{k},R1,{day} 0{k}:00:00\n" for k in range(3)),
                 encoding="utf-8")
    summary = run_import(engine, kind="visits", path=f, user="t", rejects_dir=tmp_path)
    assert summary["counts"]["inserted"] == 3, summary
    done = refresh.after_import(engine, kind="visits", run_id=summary["run_id"])
    assert [d["grid_id"] for d in done] == [square_grid]
    assert done[0]["rescored"] is not None
    assert _stat(engine, square_grid, "640121100001", "visits_90d") == 3
    with engine.connect() as conn:
        run = gaps.latest_run(conn, grid_id=square_grid)
        comp = gaps.latest_scores(conn, grid_id=square_grid, cell_ids=["640121100001"]).iloc[0]["components"]
    assert run["trigger"] == f"import visits #{summary['run_id']}"
    assert comp["comp_no_recent_visit"] < 1.0  # visited 10 days ago


def test_publish_rescores_and_unscored_grids_are_left_alone(engine, square_grid):
    with engine.begin() as conn:
        before = gaps.latest_run(conn, grid_id=square_grid)
        res = scenarios.plan_scenario(conn, grid_id=square_grid, name="r1", user="t")
        scenarios.publish(conn, scenario_id=res["id"], user="t")
        out = refresh.after_publish(conn, grid_id=square_grid, scenario="r1")
        after = gaps.latest_run(conn, grid_id=square_grid)
        assert refresh.after_publish(conn, grid_id=424242, scenario="x") is None
    assert out is not None and after["id"] > before["id"] and after["trigger"] == "published r1"
