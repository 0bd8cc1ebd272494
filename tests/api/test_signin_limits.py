"""Sign-in limits: failures per username and per client address lock sign-in out (429, Retry-After),
whatever the password and whether or not the username exists; the count lives in the database, so
another app instance (worker) sees it; forwarded headers count only from a trusted proxy, which
also makes the session cookie Secure when the client used https.

This module's app sits behind a "proxy" at 10.9.0.1 (trusted), so each test picks its client
address with ``X-Forwarded-For``.
"""

from __future__ import annotations

import anyio
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.requests import Request

from api.app import create_app
from api.proxies import client_address, client_scheme
from api.settings import (
    AuthSettings,
    DatabaseSettings,
    ProxySettings,
    Settings,
    SignInSettings,
    UploadSettings,
)
from api.signin import LOCKED, SignInGate

PASSWORD = "correct horse battery"  # conftest.PASSWORD (tests/ is not a package)
PROXY = "10.9.0.1"
LIMITS = SignInSettings(max_failures=3, max_failures_per_address=8, window_s=600, lockout_s=600)


@pytest.fixture(scope="module")
def settings(db_url, tmp_path_factory) -> Settings:
    tmp = tmp_path_factory.mktemp("uploads")
    return Settings(db=DatabaseSettings(url=db_url), auth=AuthSettings(secret_key="test"),
                    uploads=UploadSettings(max_bytes=200_000, dir=tmp), signin=LIMITS,
                    proxies=ProxySettings(trusted=("10.9.0.0/24",)))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, client=(PROXY, 40000)) as c:
        yield c


def _token(client, username, password=PASSWORD, address="203.0.113.1", **headers):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password},
                       headers={"X-Forwarded-For": address, **headers})


def _audit(engine, action, object_id=None):
    with engine.connect() as c:
        return c.execute(text("SELECT object_type, object_id, detail FROM audit_log WHERE action = :a"
                              " AND (CAST(:o AS text) IS NULL OR object_id = :o) ORDER BY id"),
                         {"a": action, "o": object_id}).mappings().all()


def test_failures_lock_the_username_even_for_the_right_password(client, engine):
    for _ in range(3):
        assert _token(client, "rm_a1", "wrong guess").status_code == 401
    r = _token(client, "rm_a1")
    assert r.status_code == 429, r.text
    assert r.json() == {"error": "TooManyRequests", "detail": LOCKED}
    assert 590 <= int(r.headers["Retry-After"]) <= 600
    # The lock is on the username, from any address.
    assert _token(client, "rm_a1", address="203.0.113.99").status_code == 429
    assert len(_audit(engine, "login_failed", "rm_a1")) == 3
    [lock] = _audit(engine, "lockout", "rm_a1")
    assert lock["object_type"] == "login_user" and lock["detail"]["failures"] == 3
    assert lock["detail"]["address"] == "203.0.113.1"
    # Another user from the same address is not affected.
    assert _token(client, "rm_a2").status_code == 200


def test_a_lockout_does_not_tell_whether_the_username_exists(client):
    answers = []
    for name in ("planner_a", "no_such_user"):
        for _ in range(3):
            assert _token(client, name, "wrong guess", address="203.0.113.2").status_code == 401
        r = _token(client, name, "wrong guess", address="203.0.113.3")
        answers.append((r.status_code, r.json(), r.headers["Retry-After"] in ("599", "600")))
    assert answers[0] == answers[1] == (429, {"error": "TooManyRequests", "detail": LOCKED}, True)


def test_the_lockout_holds_in_another_worker_and_ends(client, settings, engine):
    # A second app on the same database stands for another worker process.
    with TestClient(create_app(settings), client=(PROXY, 40001)) as other:
        assert _token(other, "rm_a1", address="203.0.113.4").status_code == 429
    with engine.begin() as c:  # the lockout and its window are over
        c.execute(text("UPDATE login_failure SET locked_until = now() - interval '1 second',"
                       " window_start = now() - interval '1 hour' WHERE key = 'rm_a1'"))
    assert _token(client, "rm_a1", address="203.0.113.4").status_code == 200
    with engine.connect() as c:  # success forgets the username's failures
        assert c.execute(text("SELECT count(*) FROM login_failure WHERE key = 'rm_a1'")).scalar() == 0


def test_failures_from_one_address_lock_that_address(client, engine):
    for i in range(8):
        assert _token(client, f"guess{i}", "wrong guess", address="198.51.100.7").status_code == 401
    r = _token(client, "planner_b", address="198.51.100.7")
    assert r.status_code == 429 and r.json() == {"error": "TooManyRequests", "detail": LOCKED}
    assert _token(client, "planner_b", address="198.51.100.8").status_code == 200
    [lock] = _audit(engine, "lockout", "198.51.100.7")
    assert lock["object_type"] == "login_address" and lock["detail"]["failures"] == 8


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(settings):
    with TestClient(create_app(settings), client=("192.0.2.5", 40002)) as c:
        for i in range(8):  # a new claimed address every time: all counted against 192.0.2.5
            assert _token(c, f"spray{i}", "wrong guess", address=f"203.0.113.{100 + i}").status_code == 401
        assert _token(c, "analyst_a", address="203.0.113.200").status_code == 429
        r = c.post("/api/v1/auth/session", data={"username": "bm_a", "password": PASSWORD},
                   headers={"X-Forwarded-For": "203.0.113.201", "X-Forwarded-Proto": "https"})
        assert r.status_code == 429


def test_session_cookie_is_secure_when_a_trusted_proxy_says_https(client):
    form = {"username": "rm_b", "password": PASSWORD}
    r = client.post("/api/v1/auth/session", data=form,
                    headers={"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"})
    assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()
    r = client.post("/api/v1/auth/session", data=form, headers={"X-Forwarded-For": "203.0.113.5"})
    assert r.status_code == 200 and "secure" not in r.headers["set-cookie"].lower()
    r = client.post("/api/v1/auth/logout", headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 204 and "secure" in r.headers["set-cookie"].lower()


def test_the_login_form_says_when_signing_in_is_locked(client):
    for _ in range(3):
        _token(client, "bm_a", "wrong guess", address="203.0.113.6")
    r = client.post("/api/v1/auth/session", follow_redirects=False, headers={"X-Forwarded-For": "203.0.113.6"},
                    data={"username": "bm_a", "password": PASSWORD, "next": "/maps/"})
    assert r.status_code == 303 and r.headers["location"] == "/maps/login?retry=1&next=/maps/"
    page = client.get(r.headers["location"])
    assert "Too many sign-in attempts" in page.text and "Wrong username" not in page.text


def _request(peer: str, headers: dict[str, str], scheme: str = "http") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "client": (peer, 1),
                    "scheme": scheme, "server": ("gridmkt", 80), "query_string": b""})


def test_client_address_and_scheme_follow_only_trusted_proxies():
    proxies = ProxySettings(trusted=("10.0.0.0/8", "fd00::1"))
    chain = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.0.0.7", "X-Forwarded-Proto": "https"}
    assert client_address(_request("10.0.0.2", chain), proxies) == "203.0.113.9"
    assert client_scheme(_request("10.0.0.2", chain), proxies) == "https"
    assert client_address(_request("fd00::1", {"X-Forwarded-For": "2001:db8::5"}), proxies) == "2001:db8::5"
    assert client_address(_request("10.0.0.2", {"X-Forwarded-For": "junk, 10.0.0.9"}), proxies) == "10.0.0.9"
    assert client_address(_request("10.0.0.2", {}), proxies) == "10.0.0.2"
    for untrusted in (ProxySettings(), ProxySettings(trusted=("192.168.0.0/16",))):
        assert client_address(_request("10.0.0.2", chain), untrusted) == "10.0.0.2"
        assert client_scheme(_request("10.0.0.2", chain), untrusted) == "http"
    with pytest.raises(ValueError):
        ProxySettings(trusted=("10.0.0.300",))


def test_settings_from_the_environment():
    s = Settings.from_env({"GRIDMKT_SECRET_KEY": "k", "GRIDMKT_TRUSTED_PROXIES": "10.0.0.1, 172.16.0.0/12",
                           "GRIDMKT_LOGIN_MAX_FAILURES": "7", "GRIDMKT_LOGIN_MAX_FAILURES_PER_ADDRESS": "70",
                           "GRIDMKT_LOGIN_WINDOW_S": "60", "GRIDMKT_LOGIN_LOCKOUT_S": "120",
                           "GRIDMKT_LOGIN_CONCURRENCY": "3", "GRIDMKT_LOGIN_WAIT_S": "0.5"})
    assert s.proxies.trusted == ("10.0.0.1", "172.16.0.0/12")
    assert s.signin == SignInSettings(max_failures=7, max_failures_per_address=70, window_s=60, lockout_s=120,
                                      concurrency=3, wait_s=0.5)
    d = Settings.from_env({"GRIDMKT_SECRET_KEY": "k"})
    assert d.proxies.trusted == () and d.signin.max_failures == 5 and d.signin.concurrency >= 1


def test_the_gate_answers_503_when_no_turn_frees_up_in_time():
    async def main():
        gate = SignInGate(SignInSettings(concurrency=1, wait_s=0.2))
        async with gate.turn():
            with pytest.raises(HTTPException) as busy:
                async with gate.turn():
                    pass
        assert busy.value.status_code == 503 and busy.value.headers["Retry-After"] == "1"
        async with gate.turn():  # the slot was given back
            pass

    anyio.run(main)
