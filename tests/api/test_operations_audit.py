"""One set of operations under both faces: every state-changing territory and scenario command of the
``gridmkt`` CLI writes the same audit row as its route (issue 14), with the same defaults.

Each case runs once through the CLI (``--user planner_a``) and once through the route (signed in as
planner_a), each after the same set-up, and compares the newest audit row of each run.
"""

from __future__ import annotations

import getpass

import pytest
from sqlalchemy import text

from geodata import scenarios, territories


def _owners(conn, g, **cells):
    """Set the owners of cells (no audit row: the store, not an operation)."""
    for cell, rm in cells.items():
        territories.assign_cells(conn, grid_id=g, cell_ids=[cell], rm_code=rm, user="setup", reason="setup",
                                 force=True)


def _draft(conn, g, name):
    """A fresh draft ``name`` of grid g (an older draft of that name is discarded first)."""
    for row in scenarios.list_scenarios(conn, grid_id=g):
        if row["name"] == name and row["status"] == "draft":
            scenarios.discard(conn, scenario_id=row["id"])
    return scenarios.create_scenario(conn, grid_id=g, name=name, user="setup")["id"]


def _no_draft(conn, g, name):
    for row in scenarios.list_scenarios(conn, grid_id=g):
        if row["name"] == name and row["status"] == "draft":
            scenarios.discard(conn, scenario_id=row["id"])
    return None


# name: (set-up(conn, grid) -> scenario id or None, CLI arguments, route (method, path, JSON body))
T = "/api/v1/grids/{g}/territories"
CASES = {
    "territories assign": (lambda c, g: _owners(c, g, a1="RA1"),
                           ["territories", "assign", "--grid", "{g}", "--rm", "RA2", "--cell", "a1", "--reason", "r"],
                           ("post", T + "/assign", {"cell_ids": ["a1"], "rm_code": "RA2", "reason": "r"})),
    "territories assign (defaults)": (lambda c, g: _owners(c, g, a1="RA1"),
                                      ["territories", "assign", "--grid", "{g}", "--rm", "RA2", "--cell", "a1"],
                                      ("post", T + "/assign", {"cell_ids": ["a1"], "rm_code": "RA2"})),
    "territories move --force": (lambda c, g: _owners(c, g, a1="RA1", a2="RA1"),
                                 ["territories", "move", "--grid", "{g}", "--from", "RA1", "--to", "RA2", "--cell", "a2",
                                  "--force"],
                                 ("post", T + "/move", {"from_rm": "RA1", "to_rm": "RA2", "cell_ids": ["a2"],
                                                        "force": True})),
    "territories lock": (lambda c, g: None,
                         ["territories", "lock", "--grid", "{g}", "--cell", "a1", "--reason", "hold"],
                         ("post", T + "/locks", {"cell_ids": ["a1"], "reason": "hold"})),
    "territories lock --unlock": (lambda c, g: None,
                                  ["territories", "lock", "--grid", "{g}", "--cell", "a1", "--unlock"],
                                  ("post", T + "/locks", {"cell_ids": ["a1"], "locked": False})),
    "territories co-owner": (lambda c, g: None,
                             ["territories", "co-owner", "--grid", "{g}", "--rm", "RA2", "--cell", "a1"],
                             ("post", T + "/co-owners", {"cell_ids": ["a1"], "rm_code": "RA2"})),
    "territories handover": (lambda c, g: _owners(c, g, a1="RA2", a2="RA2"),
                             ["territories", "handover", "--grid", "{g}", "--rm", "RA2", "--to", "RA1"],
                             ("post", T + "/handover", {"rm_code": "RA2", "to_rm": "RA1"})),
    "scenarios create": (lambda c, g: _no_draft(c, g, "both"),
                         ["scenarios", "create", "both", "--grid", "{g}"],
                         ("post", "/api/v1/scenarios", {"grid_id": "{g}", "name": "both"})),
    "scenarios edit": (lambda c, g: _draft(c, g, "ed"),
                       ["scenarios", "edit", "ed", "--grid", "{g}", "--cell", "a1", "--rm", "RA2", "--lock"],
                       ("patch", "/api/v1/scenarios/{s}/cells", {"cell_ids": ["a1"], "rm_code": "RA2", "locked": True})),
    "scenarios publish": (lambda c, g: _draft(c, g, "pub"),
                          ["scenarios", "publish", "pub", "--grid", "{g}"],
                          ("post", "/api/v1/scenarios/{s}/publish", None)),
    "scenarios discard": (lambda c, g: _draft(c, g, "gone"),
                          ["scenarios", "discard", "gone", "--grid", "{g}"],
                          ("post", "/api/v1/scenarios/{s}/discard", None)),
}


def _fill(value, subs):
    if isinstance(value, str):
        return value.format(**subs)
    if isinstance(value, list):
        return [_fill(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: (subs["g"] if v == "{g}" else _fill(v, subs)) for k, v in value.items()}
    return value


def _last_audit(engine):
    with engine.connect() as conn:
        row = conn.execute(text("SELECT username, action, object_type, object_id, detail FROM audit_log"
                                " ORDER BY id DESC LIMIT 1")).mappings().one()
    return dict(row)


@pytest.mark.parametrize("case", list(CASES))
def test_cli_and_route_write_the_same_audit_row(case, client, auth, data, engine, run_cli):
    setup, args, (method, path, body) = CASES[case]
    g = data["grid_a"]
    rows = {}
    for face in ("cli", "api"):
        with engine.begin() as conn:
            sid = setup(conn, g)
        subs = {"g": g, "s": sid}
        if face == "cli":
            run_cli([*_fill(args, subs), "--user", "planner_a"])
        else:
            r = client.request(method, _fill(path, subs), json=_fill(body, subs), headers=auth("planner_a"))
            assert r.status_code < 300, r.text
        row = _last_audit(engine)
        if sid is not None:  # a fresh scenario per face: its id is the one thing that differs
            assert row["object_id"] == str(sid)
            row["object_id"] = "<scenario>"
        if case == "scenarios create":
            row["object_id"] = "<new>"
        rows[face] = row
    assert rows["cli"] == rows["api"]
    assert rows["cli"]["username"] == "planner_a"


def test_the_cli_actor_is_the_os_user_without_user(data, engine, run_cli):
    run_cli(["territories", "lock", "--grid", str(data["grid_a"]), "--cell", "a1", "--unlock"])
    row = _last_audit(engine)
    assert (row["username"], row["action"], row["object_type"]) == (getpass.getuser(), "update", "territory")


def test_cli_and_route_give_the_same_default_reason(client, auth, data, engine, run_cli):
    """Without a reason both faces record 'manual assignment' in the history."""
    g = data["grid_a"]
    with engine.begin() as conn:
        _owners(conn, g, a1="RA1")
    run_cli(["territories", "assign", "--grid", str(g), "--rm", "RA2", "--cell", "a1", "--user", "planner_a"])
    with engine.begin() as conn:
        _owners(conn, g, a1="RA1")
    client.post(f"/api/v1/grids/{g}/territories/assign", json={"cell_ids": ["a1"], "rm_code": "RA2"},
                headers=auth("planner_a"))
    with engine.connect() as conn:
        reasons = conn.execute(text("SELECT reason FROM territory WHERE grid_id = :g AND cell_id = 'a1'"
                                    " AND rm_code = 'RA2' AND role = 'owner' ORDER BY id DESC LIMIT 2"),
                               {"g": g}).scalars().all()
    assert reasons == ["manual assignment", "manual assignment"]
