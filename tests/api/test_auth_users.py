"""Sign-in with real argon2 hashes and signed tokens; user management over HTTP and the CLI."""

from __future__ import annotations

import datetime as dt
import json

import jwt
from click.testing import CliRunner
from sqlalchemy import text

from api.auth import create_token
from api.cli import _register, cli

PASSWORD = "correct horse battery"  # conftest.PASSWORD (tests/ is not a package)


def _login(client, username, password=PASSWORD):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_login_gives_a_signed_expiring_token(client, settings, password):
    assert password == PASSWORD
    r = _login(client, "rm_a1")
    assert r.status_code == 200
    body = r.json()
    claims = jwt.decode(body["access_token"], settings.auth.secret_key, algorithms=["HS256"])
    assert claims["sub"] == "rm_a1" and claims["role"] == "rm"
    assert claims["exp"] - claims["iat"] == settings.auth.token_minutes * 60 == body["expires_in"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {"username": "rm_a1", "role": "rm", "legal_entity_id": me.json()["legal_entity_id"],
                         "rm_code": "RA1", "outlet_codes": [], "permissions": ["export"]}


def test_wrong_password_and_unknown_user_are_refused_alike(client):
    for user, pw in (("rm_a1", "wrong password"), ("nobody", PASSWORD)):
        r = _login(client, user, pw)
        assert r.status_code == 401 and r.json() == {"error": "Unauthorized", "detail": "wrong username or password"}


def test_expired_forged_and_unknown_tokens_are_refused(client, settings):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    expired = create_token(settings.auth, username="admin", role="admin", now=past, minutes=60)
    forged = jwt.encode({"sub": "admin", "exp": 2_000_000_000}, "another key", algorithm="HS256")
    ghost = create_token(settings.auth, username="ghost", role="admin")
    for token, why in ((expired, "token expired"), (forged, "invalid token"), (ghost, "unknown user")):
        r = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["detail"] == why


def test_admin_creates_and_disables_a_user_and_it_is_audited(client, auth, engine):
    body = {"username": "analyst_x", "password": "long enough pw", "role": "analyst",
            "legal_entity_code": "LEA"}
    r = client.post("/api/v1/users", json=body, headers=auth("admin"))
    assert r.status_code == 201 and r.json()["legal_entity_code"] == "LEA"
    assert "password_hash" not in r.text
    assert client.post("/api/v1/users", json=body, headers=auth("admin")).status_code == 409
    token = _login(client, "analyst_x", "long enough pw").json()["access_token"]
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.post("/api/v1/users/analyst_x/disable", headers=auth("admin")).json()["disabled"] is True
    # The token issued before disabling stops working at once; new logins are refused.
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _login(client, "analyst_x", "long enough pw").status_code == 401
    with engine.connect() as c:
        actions = c.execute(text("SELECT action FROM audit_log WHERE object_type = 'user'"
                                 " AND object_id = 'analyst_x' ORDER BY id")).scalars().all()
    assert actions == ["create", "login", "disable", "login_failed"]  # the refused sign-in is audited too


def test_user_rules_give_clear_errors(client, auth):
    bad = {"username": "rm_x", "password": "long enough pw", "role": "rm", "legal_entity_code": "LEA"}
    r = client.post("/api/v1/users", json=bad, headers=auth("admin"))
    assert r.status_code == 422 and r.json()["error"] == "BadInput" and "RM code" in r.json()["detail"]
    cross = {**bad, "rm_code": "RB1"}
    assert client.post("/api/v1/users", json=cross, headers=auth("admin")).status_code == 422
    missing = {**bad, "legal_entity_code": "NOPE", "rm_code": "RA1"}
    r = client.post("/api/v1/users", json=missing, headers=auth("admin"))
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    for who in ("planner_a", "rm_a1", "analyst_a", "bm_a"):
        assert client.get("/api/v1/users", headers=auth(who)).status_code == 403


def test_cli_users_add_list_disable(client, db_url, settings, monkeypatch):
    monkeypatch.setenv("GRIDMKT_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDMKT_SECRET_KEY", settings.auth.secret_key)
    _register()
    run = CliRunner().invoke
    r = run(cli, ["users", "add", "bm_cli", "--role", "branch_manager", "--legal-entity", "LEA",
                  "--outlet", "OA2", "--password-stdin", "--json"], input="cli password 1\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["outlet_codes"] == ["OA2"]
    token = _login(client, "bm_cli", "cli password 1").json()["access_token"]
    r = client.get("/api/v1/customers", headers={"Authorization": f"Bearer {token}"})
    assert [c["customer_id"] for c in r.json()["items"]] == ["CA2"]
    listed = json.loads(run(cli, ["users", "list", "--json"]).output)["users"]
    assert {"bm_cli", "admin", "rm_b"} <= {u["username"] for u in listed}
    r = run(cli, ["users", "add", "x", "--role", "rm", "--legal-entity", "LEA", "--password", "short", "--json"])
    assert r.exit_code == 2 and "8 characters" in json.loads(r.output)["error"]
    r = run(cli, ["users", "disable", "bm_cli", "--json"])
    assert json.loads(r.output)["disabled"] is True
    assert _login(client, "bm_cli", "cli password 1").status_code == 401
