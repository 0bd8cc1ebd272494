"""Territory and scenario routes: scoped reads, manual changes with hand-over lists, audit,
the scenario sandbox (create, edit, compare, publish with stale refusal, discard) and a plan job.

Seeded (conftest): grid_a with a1 (RA1, customer CA1) and a2 (RA2, customer CA2, locked);
draft scenario plan_a (a1, a2 → RA1) based on territory version 0.
"""

from __future__ import annotations

from sqlalchemy import text


def _audit_count(engine, object_type: str, action: str | None = None) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM audit_log WHERE object_type = :t"
                                 " AND (CAST(:a AS text) IS NULL OR action = :a)"),
                            {"t": object_type, "a": action}).scalar()


def test_territories_per_rm_follow_scope(client, auth, data):
    """A planner sees RA1 and RA2; rm_a1 and bm_a (outlet OA1) only RA1."""
    url = f"/api/v1/grids/{data['grid_a']}/territories"
    planner = {t["rm_code"]: t for t in client.get(url, headers=auth("planner_a")).json()["items"]}
    assert planner["RA1"]["cells"] == ["a1"] and planner["RA2"]["cells"] == ["a2"]
    assert planner["RA2"]["locked_cells"] == 1 and planner["RA2"]["customers"] == 1
    for who in ("rm_a1", "bm_a"):
        r = client.get(url, headers=auth(who))
        assert [t["rm_code"] for t in r.json()["items"]] == ["RA1"], who
        assert "RA2" not in r.text
    assert client.get(f"{url}/RA2", headers=auth("rm_a1")).status_code == 404
    own = client.get(f"{url}/RA1", headers=auth("rm_a1")).json()
    assert [c["cell_id"] for c in own["items"]] == ["a1"] and own["total"] == 1
    assert client.get(f"/api/v1/grids/{data['grid_b']}/territories", headers=auth("planner_a")).status_code == 404


def test_territory_changes_are_for_planners(client, auth, data):
    """RMs, branch managers and analysts get 403 on every change."""
    base = f"/api/v1/grids/{data['grid_a']}/territories"
    for who in ("rm_a1", "bm_a", "analyst_a"):
        r = client.post(f"{base}/assign", json={"cell_ids": ["a2"], "rm_code": "RA1"}, headers=auth(who))
        assert r.status_code == 403, who


def test_assign_and_move_answer_the_handover_list(client, auth, data, engine):
    """a1 to RA2 hands CA1 from RA1 to RA2; moving it back hands it back; both audited."""
    base = f"/api/v1/grids/{data['grid_a']}/territories"
    before = _audit_count(engine, "territory")
    r = client.post(f"{base}/assign", json={"cell_ids": ["a1"], "rm_code": "RA2", "reason": "test"},
                    headers=auth("planner_a"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["cells_changed"] == 1 and out["customers_changing_rm"] == 1
    assert out["handover"] == [{"customer_id": "CA1", "cell_id": "a1", "from_rm": "RA1", "to_rm": "RA2"}]
    # rm_a1 lost the cell at once.
    assert client.get(f"/api/v1/grids/{data['grid_a']}/cells/a1", headers=auth("rm_a1")).status_code == 404
    r = client.post(f"{base}/move", json={"from_rm": "RA2", "to_rm": "RA1", "cell_ids": ["a1"]},
                    headers=auth("planner_a"))
    assert r.json()["handover"] == [{"customer_id": "CA1", "cell_id": "a1", "from_rm": "RA2", "to_rm": "RA1"}]
    assert _audit_count(engine, "territory") == before + 2
    hist = client.get(f"{base}/history", params={"cell_id": "a1"}, headers=auth("planner_a")).json()["items"]
    assert [h["rm_code"] for h in hist[:3]] == ["RA1", "RA2", "RA1"]
    mine = client.get(f"{base}/history", headers=auth("rm_a1")).json()["items"]
    assert mine and {h["rm_code"] for h in mine} == {"RA1"}


def test_locked_cells_and_foreign_rms_are_refused(client, auth, data):
    """a2 is locked: 409 without force; an RM of the other legal entity is 404; unknown cell 404."""
    base = f"/api/v1/grids/{data['grid_a']}/territories"
    r = client.post(f"{base}/assign", json={"cell_ids": ["a2"], "rm_code": "RA1"}, headers=auth("planner_a"))
    assert r.status_code == 409 and "locked" in r.json()["detail"]
    r = client.post(f"{base}/assign", json={"cell_ids": ["a1"], "rm_code": "RB1"}, headers=auth("planner_a"))
    assert r.status_code == 404
    r = client.post(f"{base}/assign", json={"cell_ids": ["zz"], "rm_code": "RA1"}, headers=auth("planner_a"))
    assert r.status_code == 404
    r = client.post(f"{base}/assign", json={"cell_ids": [], "rm_code": "RA1"}, headers=auth("planner_a"))
    assert r.status_code == 422


def test_lock_unlock_and_co_owner(client, auth, data):
    """Locking a1 shows in the territory list; a co-owner is added and removed; hand-over lists are empty."""
    base = f"/api/v1/grids/{data['grid_a']}/territories"
    r = client.post(f"{base}/locks", json={"cell_ids": ["a1"], "locked": True}, headers=auth("planner_a")).json()
    assert r["locked_cells"] == 2 and r["handover"] == []
    client.post(f"{base}/locks", json={"cell_ids": ["a1"], "locked": False}, headers=auth("planner_a"))
    r = client.post(f"{base}/co-owners", json={"cell_ids": ["a1"], "rm_code": "RA2"}, headers=auth("planner_a"))
    assert r.status_code == 200 and r.json()["co_owner"] is True
    cell = client.get(f"/api/v1/grids/{data['grid_a']}/cells/a1", headers=auth("planner_a")).json()
    assert cell["properties"]["co_owners"] == ["RA2"] and cell["properties"]["locked"] is False
    client.post(f"{base}/co-owners", json={"cell_ids": ["a1"], "rm_code": "RA2", "add": False},
                headers=auth("planner_a"))
    cell = client.get(f"/api/v1/grids/{data['grid_a']}/cells/a1", headers=auth("planner_a")).json()
    assert cell["properties"]["co_owners"] == []


def test_scenarios_are_read_by_entity_wide_roles_only(client, auth, data):
    """Planner and analyst list plan_a (not plan_b); RMs and branch managers get 403/404."""
    names = [s["name"] for s in client.get("/api/v1/scenarios", headers=auth("analyst_a")).json()["items"]]
    assert "plan_a" in names and "plan_b" not in names
    assert client.get("/api/v1/scenarios", headers=auth("rm_a1")).status_code == 403
    assert client.get(f"/api/v1/scenarios/{data['scenario_a']}", headers=auth("bm_a")).status_code == 404
    assert client.get(f"/api/v1/scenarios/{data['scenario_b']}", headers=auth("planner_a")).status_code == 404
    sc = client.get(f"/api/v1/scenarios/{data['scenario_a']}", headers=auth("planner_a")).json()
    assert sc["name"] == "plan_a" and sc["per_rm"] == [{"rm_code": "RA1", "cells": 2, "locked": 0}]


def test_sandbox_create_edit_compare_publish_discard(client, auth, data, engine):
    """A draft from current, edited (a2 → RA1), compared with current, published; the older draft
    plan_a is then stale (409) and is discarded; every step audited."""
    g = data["grid_a"]
    before = _audit_count(engine, "scenario")
    r = client.post("/api/v1/scenarios", json={"grid_id": g, "name": "s2"}, headers=auth("planner_a"))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert client.post("/api/v1/scenarios", json={"grid_id": g, "name": "s2"},
                       headers=auth("planner_a")).status_code == 409
    r = client.patch(f"/api/v1/scenarios/{sid}/cells", json={"cell_ids": ["a2"], "rm_code": "RA1"},
                     headers=auth("planner_a"))
    assert r.status_code == 200, r.text
    assert {p["rm_code"]: p["cells"] for p in r.json()["per_rm"]} == {"RA1": 2}
    cmp_ = client.get("/api/v1/scenarios/compare", params={"grid_id": g, "a": "current", "b": "s2"},
                      headers=auth("analyst_a"))
    assert cmp_.status_code == 200, cmp_.text
    c = cmp_.json()
    assert c["cells_moved"] == 1 and c["moved"] == [{"cell_id": "a2", "from_rm": "RA2", "to_rm": "RA1"}]
    assert c["customers_changing_rm"] == 1
    # Unchanged current: a2 still RA2's until publishing.
    assert client.get(f"/api/v1/grids/{g}/cells/a2", headers=auth("rm_a2")).status_code == 200
    r = client.post(f"/api/v1/scenarios/{sid}/publish", headers=auth("planner_a"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "published" and r.json()["handover"][0]["customer_id"] == "CA2"
    assert client.get(f"/api/v1/grids/{g}/cells/a2", headers=auth("rm_a2")).status_code == 404
    assert client.get(f"/api/v1/grids/{g}/cells/a2", headers=auth("rm_a1")).status_code == 200
    stale = client.post(f"/api/v1/scenarios/{data['scenario_a']}/publish", headers=auth("planner_a"))
    assert stale.status_code == 409 and stale.json()["error"] == "Conflict"
    assert "changed since" in stale.json()["detail"]
    r = client.post(f"/api/v1/scenarios/{data['scenario_a']}/discard", headers=auth("planner_a"))
    assert r.json()["status"] == "discarded"
    assert client.post(f"/api/v1/scenarios/{sid}/discard", headers=auth("planner_a")).status_code == 409
    assert _audit_count(engine, "scenario") == before + 4
    assert _audit_count(engine, "scenario", "publish") == 1


def test_scenario_writes_and_bad_refs(client, auth, data):
    """Analysts cannot create; a scenario of another grid or legal entity is 404 in compare."""
    g = data["grid_a"]
    r = client.post("/api/v1/scenarios", json={"grid_id": g, "name": "x"}, headers=auth("analyst_a"))
    assert r.status_code == 403
    r = client.post("/api/v1/scenarios", json={"grid_id": data["grid_b"], "name": "x"}, headers=auth("planner_a"))
    assert r.status_code == 404
    r = client.get("/api/v1/scenarios/compare", params={"grid_id": g, "b": str(data["scenario_b"])},
                   headers=auth("planner_a"))
    assert r.status_code == 404
    r = client.get("/api/v1/scenarios/compare", params={"grid_id": "x"}, headers=auth("planner_a"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "grid_id"


def test_plan_job_publish_and_handover_on_a_real_grid(client, app, auth, engine):
    """Plan 兴庆区 at H3 res 7 over RA1 and RA2 as a job: every cell owned, contiguous; publishing
    makes it current; handing RA1 over to RA2 leaves RA2 owning every cell, CA1 in the hand-over list."""
    from geodata import assign, grids

    with engine.begin() as conn:
        g = grids.build_grid(conn, county_code="640104", kind="h3", resolution=7)
        assign.assign_customers(conn, grid_id=g["id"])
    gid = g["id"]
    r = client.post("/api/v1/scenarios/plan", json={"grid_id": gid, "name": "auto", "outlets": ["OA1", "OA2"],
                                                     "seed": 1}, headers=auth("planner_a"))
    assert r.status_code == 202, r.text
    app.state.jobs.wait(r.json()["job_id"], timeout=120)
    job = client.get(r.json()["poll"], headers=auth("planner_a")).json()
    assert job["status"] == "done", job
    result = job["result"]
    assert result["status"] == "draft" and {p["rm_code"] for p in result["per_rm"]} == {"RA1", "RA2"}
    assert sum(p["cells"] for p in result["per_rm"]) == g["cell_count"]
    assert result["report"]["plan"]["contiguity"] == 1.0
    assert "baseline_nearest_outlet" in result["report"]
    assert client.get(r.json()["poll"], headers=auth("planner_b")).status_code == 404
    published = client.post(f"/api/v1/scenarios/{result['id']}/publish", headers=auth("planner_a")).json()
    assert published["cells_changed"] == g["cell_count"]
    assert [h["customer_id"] for h in published["handover"]] == ["CA1"]
    terr = client.get(f"/api/v1/grids/{gid}/territories", headers=auth("planner_a")).json()["items"]
    assert sum(t["cell_count"] for t in terr) == g["cell_count"]
    out = client.post(f"/api/v1/grids/{gid}/territories/handover", json={"rm_code": "RA1", "to_rm": "RA2"},
                      headers=auth("planner_a"))
    assert out.status_code == 200, out.text
    moved = out.json()
    assert moved["cells_changed"] == next(t["cell_count"] for t in terr if t["rm_code"] == "RA1") > 0
    assert {h["to_rm"] for h in moved["handover"]} <= {"RA2"}
    terr = client.get(f"/api/v1/grids/{gid}/territories", headers=auth("planner_a")).json()["items"]
    assert [(t["rm_code"], t["cell_count"]) for t in terr] == [("RA2", g["cell_count"])]
