"""The command line and the API refuse the same input with the same error (issue 14, "Done when").

Checks that live in the operations layer or in geodata (one place) answer both faces with the same
exception type and message; messages name no command-line flag (API users read them too). Where
the API refuses in its request schema first (422: bounds shown in the OpenAPI document), the
command line refuses the same value through the operation's check: both refuse, with the same limits.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from api.cli import _register, cli
from geodata import territories
from tests.api.test_operations_audit import _fill

T = "/api/v1/grids/{g}/territories"
# name: (actor, CLI arguments, (method, path, JSON body), same message on both faces)
CASES = {
    "grid build: resolution out of range": (
        "planner_a", ["grid", "build", "--county", "640104", "--res", "11"],
        ("post", "/api/v1/grids", {"county_code": "640104", "kind": "h3", "resolution": 11}), False),
    "grid build: unknown county": (
        "admin", ["grid", "build", "--county", "649999", "--res", "6"],
        ("post", "/api/v1/grids", {"county_code": "649999", "kind": "h3", "resolution": 6}), True),
    "territories move: locked cell without force": (
        "planner_a", ["territories", "move", "--grid", "{g}", "--from", "RA2", "--to", "RA1", "--cell", "a2"],
        ("post", T + "/move", {"from_rm": "RA2", "to_rm": "RA1", "cell_ids": ["a2"]}), True),
    "territories assign: locked cell without force": (
        "planner_a", ["territories", "assign", "--grid", "{g}", "--rm", "RA1", "--cell", "a2"],
        ("post", T + "/assign", {"cell_ids": ["a2"], "rm_code": "RA1"}), True),
    "gaps score: bad configuration": (
        "planner_a", ["gaps", "score", "--grid", "{g}", "--weights", "{weights}"],
        ("post", "/api/v1/grids/{g}/gaps/score", {"config_toml": "[weights]\nno_recent_visit = -1\n"}), True),
    "sites suggest: too many": (
        "planner_a", ["sites", "suggest", "--grid", "{g}", "--count", "101", "--radius-km", "2"],
        ("post", "/api/v1/grids/{g}/gaps/sites", {"count": 101, "radius_km": 2}), False),
    "sites suggest: radius 0": (
        "planner_a", ["sites", "suggest", "--grid", "{g}", "--count", "1", "--radius-km", "0"],
        ("post", "/api/v1/grids/{g}/gaps/sites", {"count": 1, "radius_km": 0}), False),
    "users add: short password": (
        "admin", ["users", "add", "shorty", "--role", "analyst", "--legal-entity", "LEA", "--password", "short"],
        ("post", "/api/v1/users", {"username": "shorty", "password": "short", "role": "analyst",
                                   "legal_entity_code": "LEA"}), False),
    "users add: rm without RM code": (
        "admin", ["users", "add", "rmless", "--role", "rm", "--legal-entity", "LEA", "--password", "pw-123456"],
        ("post", "/api/v1/users", {"username": "rmless", "password": "pw-123456", "role": "rm",
                                   "legal_entity_code": "LEA"}), True),
    "users add: unknown legal entity": (
        "admin", ["users", "add", "lost", "--role", "analyst", "--legal-entity", "NOPE", "--password", "pw-123456"],
        ("post", "/api/v1/users", {"username": "lost", "password": "pw-123456", "role": "analyst",
                                   "legal_entity_code": "NOPE"}), True),
}


@pytest.fixture()
def run_cli(db_url, settings, monkeypatch):
    monkeypatch.setenv("GRIDMKT_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDMKT_SECRET_KEY", settings.auth.secret_key)
    _register()

    def run(args):
        r = CliRunner().invoke(cli, [*args, "--json"])
        return r.exit_code, json.loads(r.output.strip().splitlines()[-1])

    return run


@pytest.mark.parametrize("case", list(CASES))
def test_both_faces_refuse_the_same_input(case, client, auth, data, engine, run_cli, tmp_path):
    actor, args, (method, path, body), same_message = CASES[case]
    weights = tmp_path / "weights.toml"
    weights.write_text("[weights]\nno_recent_visit = -1\n", encoding="utf-8")
    subs = {"g": data["grid_a"], "weights": weights}
    with engine.begin() as conn:  # a2 locked, owned by RA2 (as seeded)
        territories.assign_cells(conn, grid_id=data["grid_a"], cell_ids=["a2"], rm_code="RA2", user="setup",
                                 reason="setup", force=True)
        territories.set_locks(conn, grid_id=data["grid_a"], cell_ids=["a2"], locked=True, user="setup")
    code, cli_out = run_cli([*_fill(args, subs), "--user", actor])
    r = client.request(method, _fill(path, subs), json=_fill(body, subs), headers=auth(actor))
    assert code == 2 and cli_out["ok"] is False, cli_out
    assert 400 <= r.status_code < 500, r.text
    if same_message:
        assert (cli_out["type"], cli_out["error"]) == (r.json()["error"], r.json()["detail"])
        assert " --" not in cli_out["error"]  # no command-line flag in a message API users read


def test_force_moves_a_locked_cell_on_both_faces(client, auth, data, engine, run_cli):
    """``force`` exists on both faces (the CLI had none before issue 14) and does the same."""
    g = data["grid_a"]
    for face in ("cli", "api"):
        with engine.begin() as conn:
            territories.assign_cells(conn, grid_id=g, cell_ids=["a2"], rm_code="RA2", user="setup",
                                     reason="setup", force=True)
            territories.set_locks(conn, grid_id=g, cell_ids=["a2"], locked=True, user="setup")
        if face == "cli":
            code, out = run_cli(["territories", "move", "--grid", str(g), "--from", "RA2", "--to", "RA1",
                                 "--cell", "a2", "--force", "--user", "planner_a"])
            assert code == 0, out
        else:
            r = client.post(f"/api/v1/grids/{g}/territories/move", headers=auth("planner_a"),
                            json={"from_rm": "RA2", "to_rm": "RA1", "cell_ids": ["a2"], "force": True})
            assert r.status_code == 200, r.text
        with engine.connect() as conn:
            assert territories.current_owners(conn, grid_id=g)["a2"] == "RA1"
