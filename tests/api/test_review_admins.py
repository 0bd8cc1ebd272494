"""The last active system-wide admin cannot be disabled (nobody could manage users any more);
a disabled user can be enabled again, over HTTP and with ``gridmkt users enable``."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import text

from api.cli import _register, cli

PASSWORD = "correct horse battery"  # conftest.PASSWORD (tests/ is not a package)


def _login(client, username, password=PASSWORD):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_the_last_system_wide_admin_cannot_be_disabled(client, auth, engine):
    r = client.post("/api/v1/users/admin/disable", headers=auth("admin"))
    assert r.status_code == 409, r.text
    assert r.json() == {"error": "Conflict", "detail": "user 'admin' is the last active system-wide admin; "
                        "add or enable another system-wide admin first"}
    assert _login(client, "admin").status_code == 200
    # With a second system-wide admin, either may be disabled, but not both.
    body = {"username": "admin2", "password": "second admin pw", "role": "admin"}
    assert client.post("/api/v1/users", json=body, headers=auth("admin")).status_code == 201
    token2 = {"Authorization": f"Bearer {_login(client, 'admin2', 'second admin pw').json()['access_token']}"}
    assert client.post("/api/v1/users/admin/disable", headers=token2).json()["disabled"] is True
    r = client.post("/api/v1/users/admin2/disable", headers=token2)
    assert r.status_code == 409 and "last active system-wide admin" in r.json()["detail"]
    # An admin bound to a legal entity does not count as system-wide.
    body = {"username": "admin_a", "password": "entity admin pw", "role": "admin", "legal_entity_code": "LEA"}
    assert client.post("/api/v1/users", json=body, headers=token2).status_code == 201
    assert client.post("/api/v1/users/admin2/disable", headers=token2).status_code == 409
    assert client.post("/api/v1/users/admin_a/disable", headers=token2).json()["disabled"] is True
    # Enabling brings the first admin back: sign-in works again.
    r = client.post("/api/v1/users/admin/enable", headers=token2)
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert _login(client, "admin").status_code == 200
    assert client.post("/api/v1/users/nobody/enable", headers=token2).status_code == 404
    assert client.post("/api/v1/users/admin/enable", headers=auth("planner_a")).status_code == 403


def test_an_entity_admin_cannot_enable_users_of_another_entity(client, auth):
    body = {"username": "admin_b", "password": "entity admin pw", "role": "admin", "legal_entity_code": "LEB"}
    assert client.post("/api/v1/users", json=body, headers=auth("admin")).status_code == 201
    token = {"Authorization": f"Bearer {_login(client, 'admin_b', 'entity admin pw').json()['access_token']}"}
    assert client.post("/api/v1/users/planner_a/enable", headers=token).status_code == 404
    assert client.post("/api/v1/users/planner_b/disable", headers=token).json()["disabled"] is True
    assert client.post("/api/v1/users/planner_b/enable", headers=token).json()["disabled"] is False


def test_cli_users_enable_and_last_admin(client, db_url, settings, monkeypatch, engine):
    monkeypatch.setenv("GRIDMKT_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDMKT_SECRET_KEY", settings.auth.secret_key)
    _register()
    run = CliRunner().invoke
    assert json.loads(run(cli, ["users", "disable", "rm_a2", "--json"]).output)["disabled"] is True
    assert _login(client, "rm_a2").status_code == 401
    r = run(cli, ["users", "enable", "rm_a2", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["disabled"] is False
    assert _login(client, "rm_a2").status_code == 200
    # Disable every system-wide admin but one; the CLI refuses the last one like the API.
    with engine.begin() as conn:
        active = conn.execute(text("SELECT username FROM app_user WHERE role = 'admin'"
                                   " AND legal_entity_id IS NULL AND NOT disabled ORDER BY id")).scalars().all()
    for name in active[1:]:
        assert run(cli, ["users", "disable", name, "--json"]).exit_code == 0
    r = run(cli, ["users", "disable", active[0], "--json"])
    assert r.exit_code == 2 and "last active system-wide admin" in json.loads(r.output)["error"]
    r = run(cli, ["users", "enable", "ghost", "--json"])
    assert r.exit_code == 2 and json.loads(r.output)["error"] == "user 'ghost' does not exist"
