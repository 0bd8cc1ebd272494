"""POST /api/v1/scenarios/plan with ``without_rms``: the demo's "one RM fewer" alternative through the API, as
``gridmkt territories plan --without`` makes it; RMs named must be the planner's legal entity's."""

from __future__ import annotations

import pytest
from sqlalchemy import text


@pytest.fixture(scope="module")
def h3_grid(engine, data):
    from geodata import assign, grids

    with engine.begin() as conn:
        g = grids.build_grid(conn, county_code="640104", kind="h3", resolution=7)
        assign.assign_customers(conn, grid_id=g["id"])
    return g


def _plan(client, app, auth, body, who="planner_a"):
    r = client.post("/api/v1/scenarios/plan", json=body, headers=auth(who))
    if r.status_code != 202:
        return r, None
    app.state.jobs.wait(r.json()["job_id"], timeout=180)
    return r, client.get(r.json()["poll"], headers=auth(who)).json()


def test_a_plan_with_one_rm_fewer(client, app, auth, engine, h3_grid):
    gid = h3_grid["id"]
    base = {"grid_id": gid, "outlets": ["OA1", "OA2"], "seed": 1}
    _, both = _plan(client, app, auth, {**base, "name": "both"})
    assert both["status"] == "done", both
    assert {p["rm_code"] for p in both["result"]["per_rm"] if p["cells"]} == {"RA1", "RA2"}
    r, job = _plan(client, app, auth, {**base, "name": "one-fewer", "without_rms": ["RA2"], "keep_current": True})
    assert job["status"] == "done", job
    result = job["result"]
    assert result["params"]["without_rms"] == ["RA2"]
    owners = {p["rm_code"]: p["cells"] for p in result["per_rm"] if p["cells"]}
    assert owners == {"RA1": h3_grid["cell_count"]}  # RA2 left: every cell to the one RM left
    compared = client.get("/api/v1/scenarios/compare", params={"grid_id": gid, "a": "both", "b": "one-fewer"},
                          headers=auth("planner_a")).json()
    assert compared["cells_moved"] == next(p["cells"] for p in both["result"]["per_rm"] if p["rm_code"] == "RA2")
    with engine.connect() as conn:
        detail = conn.execute(text("SELECT detail FROM audit_log WHERE object_type = 'scenario' AND object_id = :s"
                                   " AND action = 'create'"), {"s": str(result["id"])}).scalar()
    assert detail["without_rms"] == ["RA2"]


@pytest.mark.parametrize("code", ["RB1", "RZZ9"])
def test_another_entitys_rm_is_not_found_and_nothing_is_planned(client, app, auth, engine, h3_grid, code):
    """planner_a naming LEB's RB1 is answered as for an RM that does not exist: 404 at once, no job, no draft."""
    r, _ = _plan(client, app, auth, {"grid_id": h3_grid["id"], "name": f"x-{code}", "without_rms": [code]})
    assert r.status_code == 404 and r.json() == {"error": "NotFound", "detail": f"RM {code!r} does not exist"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scenario WHERE name = :n"), {"n": f"x-{code}"}).scalar() == 0


def test_bad_lists_are_422_and_the_field_is_documented(client, auth, h3_grid):
    for bad in ([], ["not a code!"], "RA2"):
        r = client.post("/api/v1/scenarios/plan", json={"grid_id": h3_grid["id"], "name": "bad", "without_rms": bad},
                        headers=auth("planner_a"))
        assert r.status_code == 422 and r.json()["error"] == "RequestValidationError", (bad, r.text)
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ScenarioPlan"]["properties"]["without_rms"]
    assert "one RM fewer" in schema["description"] and "404" in schema["description"]
