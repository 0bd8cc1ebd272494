"""Ownership, scenarios (draft → compare → publish), locks, stale-publish refusal and hand-over."""

import pytest

from geodata import scenarios, territories
from geodata.errors import Conflict


@pytest.fixture(scope="module")
def grid_id(square_grid):
    return square_grid


def test_plan_is_a_draft_until_published(engine, grid_id):
    with engine.begin() as conn:
        res = scenarios.plan_scenario(conn, grid_id=grid_id, name="p1", user="planner", seed=1)
    assert res["status"] == "draft"
    plan = res["report"]["plan"]
    assert plan["contiguity"] == 1.0 and plan["cells"] == 16 and plan["empty_rms"] == 0
    assert plan["max_abs_deviation"] <= 0.35  # 16 cells over 3 RMs cannot balance much finer
    with engine.connect() as conn:
        assert territories.current_owners(conn, grid_id=grid_id) == {}
        draft = scenarios.scenario_assignment(conn, scenario_id=res["id"])
    assert len(draft) == 16 and set(draft.values()) == {"R1", "R2", "R3"}

    with engine.begin() as conn:
        pub = scenarios.publish(conn, scenario_id=res["id"], user="planner")
    assert pub["cells_changed"] == 16 and pub["customers_changing_rm"] == 48
    with engine.connect() as conn:
        assert territories.current_owners(conn, grid_id=grid_id) == draft
        hist = territories.history(conn, grid_id=grid_id)
        cmp = scenarios.compare(conn, grid_id=grid_id, a="p1", b="current")
    assert len(hist) == 16 and all(h["reason"] == "published scenario p1" for h in hist)
    assert cmp["cells_moved"] == 0 and cmp["customers_changing_rm"] == 0


def test_edit_compare_and_stale_publish_is_refused(engine, grid_id):
    with engine.begin() as conn:
        owners = territories.current_owners(conn, grid_id=grid_id)
        cell = sorted(c for c, r in owners.items() if r == "R1")[0]
        s2 = scenarios.create_scenario(conn, grid_id=grid_id, name="s2", user="planner")
        scenarios.edit_scenario(conn, scenario_id=s2["id"], cell_ids=[cell], rm_code="R3")
        cmp = scenarios.compare(conn, grid_id=grid_id, a="current", b="s2")
    assert cmp["cells_moved"] == 1 and cmp["moved"][0] == {"cell_id": cell, "from_rm": "R1", "to_rm": "R3"}
    assert cmp["customers_changing_rm"] == 3
    by_rm = {r["rm_id"]: r for r in cmp["per_rm"]}
    assert by_rm["R3"]["cells_b"] == by_rm["R3"]["cells_a"] + 1

    other = sorted(c for c, r in owners.items() if r == "R2")[0]
    with engine.begin() as conn:  # current changes behind the draft's back
        territories.assign_cells(conn, grid_id=grid_id, cell_ids=[other], rm_code="R1", user="manager")
    with engine.begin() as conn, pytest.raises(Conflict, match="changed since this scenario was created"):
        scenarios.publish(conn, scenario_id=s2["id"], user="planner")
    with engine.connect() as conn:
        assert territories.current_owners(conn, grid_id=grid_id)[cell] == "R1"  # nothing half-written


def test_locked_cells_stay_and_refuse_manual_moves(engine, grid_id):
    with engine.begin() as conn:
        owners = territories.current_owners(conn, grid_id=grid_id)
        cell = sorted(c for c, r in owners.items() if r == "R3")[0]
        territories.set_locks(conn, grid_id=grid_id, cell_ids=[cell], locked=True, user="planner")
    with engine.begin() as conn, pytest.raises(Conflict, match="locked"):
        territories.assign_cells(conn, grid_id=grid_id, cell_ids=[cell], rm_code="R1", user="manager")
    with engine.begin() as conn:
        res = scenarios.plan_scenario(conn, grid_id=grid_id, name="p3", user="planner", seed=7)
        draft = scenarios.scenario_assignment(conn, scenario_id=res["id"])
    assert draft[cell] == "R3"


def test_handover_to_one_rm_and_spread(engine, grid_id):
    with engine.begin() as conn:
        owned = [c for c, r in territories.current_owners(conn, grid_id=grid_id).items() if r == "R2"]
        res = territories.handover_rm(conn, grid_id=grid_id, rm_code="R2", to_rm="R1", user="manager")
        assert res["cells_changed"] == len(owned) and res["customers_changing_rm"] == 3 * len(owned)
        assert "R2" not in territories.current_owners(conn, grid_id=grid_id).values()
        owned1 = [c for c, r in territories.current_owners(conn, grid_id=grid_id).items() if r == "R1"]
        spread = territories.handover_rm(conn, grid_id=grid_id, rm_code="R1", user="manager")
        after = territories.current_owners(conn, grid_id=grid_id)
    assert "R1" not in after.values() and all(after[c] in {"R3"} for c in owned1)
    assert spread["cells_changed"] == len(owned1)
