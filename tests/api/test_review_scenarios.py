"""Review of the scenario sandbox: races between two users, RMs a draft may name, plans over another
legal entity's outlets, and a job whose result cannot be stored.

Seeded (conftest): grid_a (LEA) with a1 (RA1) and a2 (RA2, locked); LEB's outlet OB1 with RM RB1.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from api.auth import CurrentUser
from geodata import scenarios, territories, users
from geodata.errors import Conflict, NotFound
from tests.conftest import wait_for_lock_waiter


def _in_thread(fn):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_publish_racing_a_discard_does_not_publish_the_discarded_draft(engine, data):
    """A discard commits while a publish of the same draft runs: the publish is refused (409) and
    the draft stays discarded with ownership unchanged (it used to end 'published' over the discard)."""
    g = data["grid_a"]
    with engine.begin() as conn:
        sid = scenarios.create_scenario(conn, grid_id=g, name="race_discard", user="planner_a")["id"]
        scenarios.edit_scenario(conn, scenario_id=sid, cell_ids=["a1"], rm_code="RA2")
        before = territories.current_owners(conn, grid_id=g)
    with engine.connect() as disc:
        tx = disc.begin()
        scenarios.discard(disc, scenario_id=sid)

        def publish():
            with engine.begin() as conn:
                return scenarios.publish(conn, scenario_id=sid, user="planner_b")

        t, out = _in_thread(publish)
        wait_for_lock_waiter(engine, t)
        tx.commit()
        t.join(30)
    assert isinstance(out.get("error"), Conflict), out
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM scenario WHERE id = :s"), {"s": sid}).scalar() == "discarded"
        assert territories.current_owners(conn, grid_id=g) == before


def test_edit_racing_a_publish_does_not_change_the_published_cells(engine, data):
    """An edit that starts while the draft is being published is refused once the publish commits,
    so the published scenario's cells stay what was published."""
    g = data["grid_a"]
    with engine.begin() as conn:
        sid = scenarios.create_scenario(conn, grid_id=g, name="race_edit", user="planner_a")["id"]
    with engine.connect() as pub:
        tx = pub.begin()
        scenarios.publish(pub, scenario_id=sid, user="planner_a")

        def edit():
            with engine.begin() as conn:
                return scenarios.edit_scenario(conn, scenario_id=sid, cell_ids=["a1"], rm_code="RA2")

        t, out = _in_thread(edit)
        wait_for_lock_waiter(engine, t)  # the edit used to run to its end, into the publishing draft
        tx.commit()
        t.join(30)
    assert isinstance(out.get("error"), Conflict), out
    with engine.connect() as conn:
        assert scenarios.scenario_assignment(conn, scenario_id=sid) == territories.current_owners(conn, grid_id=g)


def test_two_users_creating_the_same_draft_name_get_409_not_500(engine, data):
    """The second of two concurrent creates of one draft name is a Conflict, not an IntegrityError."""
    g = data["grid_a"]
    with engine.connect() as first:
        tx = first.begin()
        scenarios.create_scenario(first, grid_id=g, name="same_name", user="planner_a")

        def create():
            with engine.begin() as conn:
                return scenarios.create_scenario(conn, grid_id=g, name="same_name", user="admin")

        t, out = _in_thread(create)
        wait_for_lock_waiter(engine, t)
        tx.commit()
        t.join(30)
    assert isinstance(out.get("error"), Conflict), out


def test_a_draft_names_only_active_rms_of_the_grids_legal_entity(client, auth, data, engine):
    """Editing a draft to an inactive RM (422) or, as the system-wide admin, to an RM of another
    legal entity (422) is refused: publishing would have made them owners."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code, active)"
                          " VALUES ('RA9', 'left', :le, 'OA1', false)"), {"le": data["LEA"]})
        sid = scenarios.create_scenario(conn, grid_id=data["grid_a"], name="rm_checks", user="planner_a")["id"]
    url = f"/api/v1/scenarios/{sid}/cells"
    r = client.patch(url, json={"cell_ids": ["a1"], "rm_code": "RA9"}, headers=auth("planner_a"))
    assert r.status_code == 422, r.text
    r = client.patch(url, json={"cell_ids": ["a1"], "rm_code": "RB1"}, headers=auth("admin"))
    assert r.status_code == 422, r.text
    with engine.connect() as conn:
        assert scenarios.scenario_assignment(conn, scenario_id=sid)["a1"] == "RA1"
    # An RM who leaves after being named in a draft: publishing is refused, ownership unchanged.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) VALUES ('RA8', 'soon gone', :le, 'OA1')"),
                     {"le": data["LEA"]})
    assert client.patch(url, json={"cell_ids": ["a1"], "rm_code": "RA8"}, headers=auth("planner_a")).status_code == 200
    with engine.begin() as conn:
        conn.execute(text("UPDATE rm SET active = false WHERE code = 'RA8'"))
        before = territories.current_owners(conn, grid_id=data["grid_a"])
    r = client.post(f"/api/v1/scenarios/{sid}/publish", headers=auth("planner_a"))
    assert r.status_code == 422 and "RA8" in r.json()["detail"], r.text
    with engine.connect() as conn:
        assert territories.current_owners(conn, grid_id=data["grid_a"]) == before


def test_plan_over_another_legal_entitys_outlet_is_refused(client, app, auth, data, engine):
    """planner_a planning grid_a over LEB's outlet OB1: the job fails as if OB1 did not exist, no
    draft names RB1 (it used to plan grid_a's cells onto RB1 and report RB1's workload)."""
    with engine.connect() as conn:
        with pytest.raises(NotFound):
            territories.rms_for(conn, grid_id=data["grid_a"], outlets=["OB1"])
    r = client.post("/api/v1/scenarios/plan", json={"grid_id": data["grid_a"], "name": "foreign", "outlets": ["OB1"]},
                    headers=auth("planner_a"))
    assert r.status_code == 202, r.text
    app.state.jobs.wait(r.json()["job_id"], timeout=60)
    job = client.get(r.json()["poll"], headers=auth("planner_a")).json()
    assert job["status"] == "failed" and "OB1" in job["message"] and "RB1" not in str(job)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scenario WHERE name = 'foreign'")).scalar() == 0


def test_a_job_whose_result_cannot_be_stored_ends_failed(client, app, engine):
    """A result PostgreSQL's jsonb refuses (NaN) leaves the job 'failed' with a message, not 'running'."""
    with engine.connect() as conn:
        user = CurrentUser.from_row(users.get_user(conn, username="planner_a"))
    runner = app.state.jobs
    job_id = runner.submit(kind="test:nan", user=user, fn=lambda progress: {"x": float("nan")})
    runner.wait(job_id, timeout=30)
    with engine.connect() as conn:
        status, message = conn.execute(text("SELECT status, message FROM job WHERE id = :i"), {"i": job_id}).one()
    assert status == "failed" and message
