"""The demo pipeline end to end on a small customer count: real data in, everything built on it."""

import pytest
from sqlalchemy import text

from api.demo import DemoContext, run_demo
from api.settings import AuthSettings, DatabaseSettings, Settings


@pytest.fixture(scope="module")
def results(engine, db_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("demo-home")
    s = Settings(db=DatabaseSettings(url=db_url, home=home), auth=AuthSettings(secret_key="t"))
    ctx = DemoContext(engine=engine, settings=s, customers=3000, seed=7, workdir=home / "demo")
    steps = []
    out = run_demo(ctx, on_step=lambda name, r, sec: steps.append(name))
    out["_steps"] = steps
    return out


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
