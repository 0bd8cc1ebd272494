"""Derived figures follow the data: imports and publishing refresh statistics and scores."""

import datetime as dt

import pytest
from sqlalchemy import text

from geodata import assign, gaps, refresh, scenarios
from geodata.importers import run_import
from tests.conftest import seed_two_counties

CUSTOMERS = "customer_id,county_code,lon,lat,deposit_balance\n"


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


def test_rescoring_keeps_the_grids_own_weights(engine, square_grid):
    """A grid scored with its own weights is scored again with them, not with the packaged defaults."""
    with engine.begin() as conn:
        gaps.score_grid(conn, grid_id=square_grid, trigger="test",
                        config_text="[weights]\nno_owner = 7\n[thresholds]\nunder_served_score = 20\n")
        out = refresh.after_publish(conn, grid_id=square_grid, scenario="w")
        run = gaps.latest_run(conn, grid_id=square_grid)
    assert out is not None and run["trigger"] == "published w"
    assert run["config"]["weights"]["no_owner"] == 7 and run["config"]["under_served_score"] == 20


@pytest.fixture(scope="module")
def two_counties(engine, tmp_path_factory):
    """Two neighbouring counties of one legal entity, each with an assigned H3 grid; three customers imported."""
    d = tmp_path_factory.mktemp("two")
    west, east = seed_two_counties(engine, d, le_code="LE9")
    return west, east, d


def _placed(engine, grid_id):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT customer_id FROM customer_cell WHERE grid_id = :g"), {"g": grid_id})
        counted = conn.execute(text("SELECT sum(customers), sum(deposit) FROM cell_stat WHERE grid_id = :g"),
                               {"g": grid_id}).one()
        return sorted(r[0] for r in rows), tuple(float(x) for x in counted)


def test_customer_moved_to_another_county_leaves_the_old_countys_grid(engine, two_counties):
    """A re-import that moves a customer to the next county refreshes both counties' grids."""
    west, east, d = two_counties
    assert _placed(engine, west)[0] == ["W1", "W2"] and _placed(engine, east)[0] == ["E1"]
    f = d / "customers_moved.csv"
    f.write_text(CUSTOMERS + "W1,640105,106.05,38.05,100\nW2,640106,106.35,38.15,200\n"
                 "E1,640106,106.25,38.05,400\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="u", rejects_dir=d)
    assert s["counts"]["updated"] == 1, s
    done = refresh.after_import(engine, kind="customers", run_id=s["run_id"])
    assert {x["grid_id"] for x in done} == {west, east}
    # The old county's grid no longer holds (nor counts) the customer who moved away.
    assert _placed(engine, west) == (["W1"], (1.0, 100.0))
    assert _placed(engine, east) == (["E1", "W2"], (2.0, 600.0))


def test_village_import_re_places_customers_known_by_village_code_on_h3_grids(engine, two_counties):
    """On an H3 grid a customer without a point sits in the cell of its village's point: a villages import that
    gives the village its point places the customer there (a village grid's cells name their villages instead)."""
    west, _, d = two_counties
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customer (customer_id, county_code, village_code, deposit_balance) "
                          "VALUES ('V1', '640105', '640105100001', 50)"))
        assign.assign_customers(conn, grid_id=west)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT how FROM customer_cell WHERE grid_id = :g AND customer_id = 'V1'"),
                              {"g": west}).scalar()
    assert before == "no_location"
    f = d / "villages.csv"
    f.write_text("code,name,lon,lat\n640105100001,甲村,106.12,38.12\n", encoding="utf-8")
    s = run_import(engine, kind="villages", path=f, user="u", rejects_dir=d)
    assert s["counts"]["inserted"] == 1, s
    refresh.after_import(engine, kind="villages", run_id=s["run_id"])
    with engine.connect() as conn:
        row = conn.execute(text("SELECT cell_id, how FROM customer_cell WHERE grid_id = :g AND customer_id = 'V1'"),
                           {"g": west}).one()
        holding = conn.execute(text("SELECT cell_id FROM cell WHERE grid_id = :g AND "
                                    "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(106.12, 38.12), 4326))"),
                               {"g": west}).scalar()
    assert tuple(row) == (holding, "village")


def test_a_grid_that_fails_to_refresh_is_reported_and_the_others_still_refresh(engine, two_counties, monkeypatch):
    """The import is stored already: one grid's refresh error must not hide the others' (nor fail the import)."""
    west, east, d = two_counties
    f = d / "c-fail.csv"
    f.write_text(CUSTOMERS + "F1,640105,106.05,38.05,10\nF2,640106,106.25,38.05,20\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="u", rejects_dir=d)
    assert s["counts"]["inserted"] == 2, s
    real = assign.assign_customers

    def broken_for_west(conn, *, grid_id, **kw):
        if grid_id == west:
            raise RuntimeError("lookup table damaged")
        return real(conn, grid_id=grid_id, **kw)

    monkeypatch.setattr(assign, "assign_customers", broken_for_west)
    done = {step["grid_id"]: step for step in refresh.after_import(engine, kind="customers", run_id=s["run_id"])}
    assert done[west] == {"grid_id": west, "error": "RuntimeError: lookup table damaged"}
    assert done[east]["reassigned"] >= 2
    assert "F2" in _placed(engine, east)[0] and "F1" not in _placed(engine, west)[0]
