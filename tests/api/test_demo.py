"""The demo pipeline end to end on a small customer count: real data in, everything built on it."""

import copy
from dataclasses import replace

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from api import demo
from api.demo import DemoContext, run_demo
from api.settings import AuthSettings, DatabaseSettings, Settings
from geodata import province
from geodata.scope import Scope
from tests.conftest import DEMO_CUSTOMERS, DEMO_SEED


@pytest.fixture(scope="module")
def db_url(demo_db_url):
    """This module's database holds the demo run once per test run (tests/conftest.py: demo_template)."""
    return demo_db_url


@pytest.fixture(scope="module")
def demo_ctx(engine, db_url, demo_template, tmp_path_factory):
    """The context the demo ran with (its seed, customers and reference time), on this module's database."""
    home = tmp_path_factory.mktemp("demo-home")
    s = Settings(db=DatabaseSettings(url=db_url, home=home), auth=AuthSettings(secret_key="t"))
    return DemoContext(engine=engine, settings=s, customers=DEMO_CUSTOMERS, seed=DEMO_SEED, workdir=home / "demo",
                       as_of=demo_template["as_of"])


@pytest.fixture(scope="module")
def results(demo_template):
    """What run_demo returned, and the steps it ran in order (``_steps``)."""
    return copy.deepcopy(demo_template["results"]) | {"_steps": list(demo_template["steps"])}


def test_real_reference_data_went_through_the_importers(engine, results):
    ref = results["reference"]
    assert ref["counties"]["counts"]["inserted"] == 22
    assert ref["villages"]["counts"]["inserted"] == 2912 and ref["villages"]["counts"]["rejected"] == 0
    with engine.connect() as conn:
        levels = dict(conn.execute(text("SELECT coord_level, count(*) FROM village GROUP BY 1")).all())
        linked = conn.execute(text("SELECT count(*) FROM county WHERE legal_entity_id IS NOT NULL")).scalar()
        runs = conn.execute(text("SELECT count(*) FROM import_run WHERE status = 'ok'")).scalar()
        synthetic = conn.execute(text("SELECT bool_and(synthetic) FROM customer")).scalar()
    # the real list's honesty about its points survives the import
    assert levels == {"village": 108, "township": 2429, "county": 375}
    assert linked == 22 and runs >= 11 and synthetic is True


def test_grids_assignment_territories_gaps_users(engine, results):
    grids = results["grids"]
    for kind in ("h3", "village"):
        g = grids[kind]
        assert g["customers"] == 3000
        assert g["by_point"] + g["by_village_code"] + g["outside_county"] + g["no_location"] == 3000
    assert grids["village"]["report"]["merged_villages"] > 0  # most villages share a township point
    terr = results["territories"]["h3"]
    assert terr["plan"]["contiguity"] == 1.0 and terr["published_cells"] == grids["h3"]["cells"]
    assert terr["plan"]["cv"] < terr["baseline"]["cv"]  # better balanced than nearest-outlet
    classes = results["gaps"]["h3"]["classes"]
    assert sum(classes.values()) == grids["h3"]["cells"] and classes["blank"] > 0
    sites = results["gaps"]["sites"]
    assert sites["households_covered_after"] >= sites["households_covered_before"]
    roles = {u["role"] for u in results["users"]["users"]}
    assert roles == {"admin", "planner", "branch_manager", "rm", "analyst"}
    with engine.connect() as conn:
        owners = conn.execute(text("SELECT count(*) FROM territory WHERE valid_to IS NULL AND grid_id = :g"),
                              {"g": grids["h3"]["grid_id"]}).scalar()
    assert owners == grids["h3"]["cells"]


def test_todays_plans_for_the_county_s_rms(engine, results):
    """The visits step plans today for every RM with a territory; the demo RM's day is /maps/rm/{rm}/day."""
    v = results["visits"]
    rm = next(u["rm_code"] for u in results["users"]["users"] if u["role"] == "rm")
    assert v["rm_code"] == rm and v["day_path"] == f"/maps/rm/{rm}/day"
    with engine.connect() as conn:
        rms = conn.execute(text("SELECT count(DISTINCT rm_code) FROM territory WHERE valid_to IS NULL")).scalar()
        plans = conn.execute(text("SELECT count(DISTINCT rm_code), count(*) FROM visit_plan")).one()
        routed = conn.execute(text("SELECT count(*) FROM plan_stop WHERE route_seq IS NOT NULL")).scalar()
    assert v["plans"] == plans[0] == plans[1] == rms > 0
    assert routed == v["stops"] > 0


def test_rescoring_later_gives_the_demo_s_classes(engine, demo_ctx, results):
    """Issue 15: rescoring the demo from the command line (as of now) turned 1,570 of 1,600 cells blank, with
    'no visit in 90 days' on cells with visits_90d 41: the synthetic visits were dated 2025-06-30 and the
    demo scored as of then. Activity is now dated up to the day the demo runs and the demo scores as of
    then, recorded on the run; a later rescoring gives every cell the class the demo gave it."""
    from geodata import gaps

    for kind in ("h3", "village"):
        gid = results["grids"][kind]["grid_id"]
        with engine.connect() as conn:
            demo_run = gaps.latest_run(conn, grid_id=gid)
            before = gaps.latest_scores(conn, grid_id=gid).set_index("cell_id")["gap_class"]
        assert demo_run["id"] == results["gaps"][kind]["gap_run_id"] and demo_run["trigger"] == "demo"
        assert pd.Timestamp(demo_run["as_of"]) == pd.Timestamp(demo_ctx.as_of)
        with engine.begin() as conn:
            again = gaps.score_grid(conn, grid_id=gid, trigger="cli")  # what gridmkt gaps score does
        with engine.connect() as conn:
            after = gaps.latest_scores(conn, grid_id=gid)
        assert pd.Timestamp(again["as_of"]) >= pd.Timestamp(demo_ctx.as_of) and again["classes"] == results["gaps"][kind]["classes"]
        assert after.set_index("cell_id")["gap_class"].reindex(before.index).eq(before).all()
        for m, reason in zip(after["measures"], after["reason_en"], strict=True):
            if m["visits_90d"] > 0:
                assert m["days_since_visit"] <= 90 and "no visit in 90 days" not in reason



def test_customer_and_rm_dates_follow_the_day_the_demo_runs(engine, demo_ctx, results):
    """Issue 15: customers' opened_on and RMs' hire dates were fixed around 2025-06-30 whatever the day; they are
    now seeded offsets before the day the demo runs, like its visits."""
    day = pd.Timestamp(demo_ctx.activity_day)
    with engine.connect() as conn:
        opened = conn.execute(text("SELECT min(opened_on), max(opened_on) FROM customer")).one()
        hired = conn.execute(text("SELECT max(hired_on) FROM rm")).scalar()
    assert day - pd.Timedelta(days=120) <= pd.Timestamp(opened[1]) <= day
    assert pd.Timestamp(opened[0]) >= day - pd.Timedelta(days=9312)  # 25.5 years
    assert day - pd.Timedelta(days=400) < pd.Timestamp(hired) < day - pd.Timedelta(days=29)


def test_second_scenario_is_plausible_and_says_what_it_changes(engine, results):
    """Issue 15: the demo's second scenario (travel-weighted) moved 1,234 of 1,600 cells and 55,779 customers.
    Now one RM fewer (the least loaded leaves, the others keep their cells unless balance needs a move);
    the demo reports who leaves and how many cells and customers change RM."""
    from geodata import scenarios

    terr, cells = results["territories"]["h3"], results["grids"]["h3"]["cells"]
    c = terr["compare"]
    assert c["scenario"] == "demo-one-fewer" and c["rm_leaving"] and c["cells"] == cells
    with engine.connect() as conn:
        owned = conn.execute(text("SELECT count(*) FROM territory WHERE grid_id = :g AND valid_to IS NULL "
                                  "AND rm_code = :r"), {"g": terr["grid_id"], "r": c["rm_leaving"]}).scalar()
        cmp = scenarios.compare(conn, grid_id=terr["grid_id"], a="current", b="demo-one-fewer")
    assert 0 < owned <= c["cells_moved"] <= 0.25 * cells  # the leaver's cells, and a few around them
    assert c["cells_moved"] == cmp["cells_moved"] and c["customers_moved"] == cmp["customers_moved"]
    assert 0 < c["customers_moved"] <= 0.25 * results["grids"]["h3"]["customers"]
    # Issue 15: the compare workload is customers, households and % of the RM's target, not 0.01 / 0.02.
    rows = {r["rm_id"]: r for r in cmp["per_rm"]}
    gone = rows[c["rm_leaving"]]
    assert gone["customers_a"] > 0 and gone["customers_b"] == 0 and gone["cells_b"] == 0
    assert gone["target_pct_a"] > 0 and gone["target_pct_b"] is None  # no target in a plan without them
    assert sum(r["customers_a"] for r in rows.values()) == sum(r["customers_b"] for r in rows.values())
    stay = [r["target_pct_b"] for r in rows.values() if r["rm_id"] != c["rm_leaving"]]
    assert 90 < sum(stay) / len(stay) < 110 and all(r["households_a"] >= 0 for r in rows.values())


# Two small counties (金凤区 513 H3 cells, 隆德县 1,803): the whole province takes minutes. The demo county
# in the list is skipped: it has its grids already.
PROVINCE = ("640106", "640423", "640121")


def _counties_with(conn, table: str) -> list[str]:
    return conn.execute(text(f"SELECT array_agg(DISTINCT county_code ORDER BY county_code) FROM {table}")).scalar()


def test_province_step_grids_every_other_county(engine, demo_ctx, results, monkeypatch):
    # The default demo: one county, and no province step.
    assert results["_steps"] == ["reference", "synthetic", "grids", "territories", "gaps", "users", "visits", "maps"]
    with engine.connect() as conn:
        assert _counties_with(conn, "grid") == _counties_with(conn, "customer") == ["640121"]
    ctx = replace(demo_ctx, province=True, province_customers=600, province_counties=PROVINCE, results={})
    ran = []
    monkeypatch.setattr(demo, "STEPS", [("province", demo.step_province)])  # this step alone, through run_demo
    out = run_demo(ctx, on_step=lambda name, r, sec: ran.append(name))["province"]
    assert ran == ["province"] and out["seconds"] >= 0
    assert out["counties"] == 2 and set(out["grids"]) == {"640106", "640423"} and out["customers"] == 600
    assert out["import customers"]["counts"]["inserted"] == 600
    with engine.connect() as conn:
        for code, g in out["grids"].items():
            grid = conn.execute(text("SELECT county_code, kind, resolution, cell_count FROM grid WHERE id = :g"),
                                {"g": g["grid_id"]}).one()
            assert tuple(grid) == (code, "h3", 8, g["cells"]) and g["cells"] > 500
            # Every customer of the county has its assignment row; the placed ones are in this grid's cells.
            n, placed, rows = conn.execute(text(
                "SELECT (SELECT count(*) FROM customer WHERE county_code = :c), "
                "count(*) FILTER (WHERE cc.cell_id IS NOT NULL), count(*) FROM customer_cell cc WHERE cc.grid_id = :g"),
                {"c": code, "g": g["grid_id"]}).one()
            assert n == rows == g["customers"] > 0 and placed == g["placed"] and placed >= 0.85 * n
            blank = conn.execute(text("SELECT count(*) FROM gap_score s JOIN gap_run r ON r.id = s.gap_run_id "
                                      "WHERE r.grid_id = :g AND s.gap_class = 'blank'"), {"g": g["grid_id"]}).scalar()
            assert blank == g["blank_cells"]
        assert _counties_with(conn, "grid") == _counties_with(conn, "customer") == ["640106", "640121", "640423"]
        ids = conn.execute(text("SELECT min(customer_id), max(customer_id), count(*) FROM customer "
                                "WHERE county_code <> '640121'")).one()
        demo_county = conn.execute(text("SELECT count(*) FROM customer WHERE county_code = '640121'")).scalar()
        shown = province.province_grids(conn, scope=Scope("admin", None), kind="h3")
    # Numbered apart from the demo county's customers, which are untouched.
    assert tuple(ids) == ("C1000000001", "C1000000600", 600) and demo_county == 3000
    assert sum(g["customers"] for g in out["grids"].values()) == 600
    # The province overview now has the demo county's grid and the two new ones.
    with_grid = {r["county_code"]: r["grid_id"] for r in shown if r["grid_id"] is not None}
    assert with_grid == {"640121": results["grids"]["h3"]["grid_id"],
                         **{c: g["grid_id"] for c, g in out["grids"].items()}}


def test_cli_help_names_the_province_flag():
    from api.cli import _register, cli

    _register()
    r = CliRunner().invoke(cli, ["demo", "--help"])
    assert r.exit_code == 0 and "--province " in r.output and "--province-customers" in r.output
