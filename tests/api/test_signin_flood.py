"""A flood of wrong sign-ins does not take the API down (issue 13, item 2).

A real uvicorn server on 127.0.0.1 (in a thread, proxy headers off as ``gridmkt serve`` runs it)
gets 128 concurrent wrong sign-ins while a planner makes ordinary authenticated requests: each of
those answers within 1 s, and no sign-in answers 500. The sign-in limits are raised out of reach
here, so that every attempt reaches the password check: what is tested is that checking holds no
pooled connection and that at most ``concurrency`` checks run at once (the rest wait briefly, then
503 with Retry-After). Before, 64 such sign-ins gave 40 x 500 (QueuePool timeout) and at 128 an
ordinary request timed out after 90 s.

Hashing cost is realistic: pwdlib's default argon2id (m=64 MiB, t=3, p=4, as ``api.auth`` uses in
production), not the cheap hasher of tests/api/conftest.py, for the attacked user's stored hash and
for the dummy hash that unknown usernames are checked against.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text

import api.auth as api_auth
from api.settings import AuthSettings, DatabaseSettings, Settings, SignInSettings, UploadSettings
from tests.api.conftest import serve_app

pytestmark = pytest.mark.slow

FLOOD = 128
VICTIM_PASSWORD = "the victim's real password"


@pytest.fixture(scope="module")
def settings(db_url, tmp_path_factory) -> Settings:
    tmp = tmp_path_factory.mktemp("uploads")
    unlimited = SignInSettings(max_failures=10**6, max_failures_per_address=10**6)  # default concurrency, wait
    return Settings(db=DatabaseSettings(url=db_url), auth=AuthSettings(secret_key="test"),
                    uploads=UploadSettings(max_bytes=200_000, dir=tmp), signin=unlimited)


@pytest.fixture(scope="module")
def realistic_argon2():
    """Production's argon2id cost for the duration of this module (conftest installs a cheap one)."""
    cheap = api_auth._HASHER
    api_auth._HASHER = PasswordHash((Argon2Hasher(),))
    api_auth._dummy_hash.cache_clear()
    yield api_auth._HASHER
    api_auth._HASHER = cheap
    api_auth._dummy_hash.cache_clear()


@pytest.fixture(scope="module")
def server(app, engine, data, realistic_argon2):
    """Base URL of the app served by uvicorn on a free loopback port."""
    with engine.begin() as c:
        c.execute(text("INSERT INTO app_user (username, password_hash, role) VALUES ('victim', :h, 'analyst')"
                       " ON CONFLICT DO NOTHING"), {"h": realistic_argon2.hash(VICTIM_PASSWORD)})
        c.execute(text("UPDATE app_user SET legal_entity_id = :le WHERE username = 'victim'"), {"le": data["LEA"]})
    with serve_app(app) as url:
        yield url


# The flood comes from a process of its own: 128 client threads in the test's process would compete
# for its interpreter lock with the server's event loop and the probes, and the test would measure that.
FLOOD_SCRIPT = r"""
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
import httpx
server, n = sys.argv[1], int(sys.argv[2])
start = threading.Barrier(n + 1)
def wrong_sign_in(i):
    name = "victim" if i % 2 else f"nobody{i}"  # half against a real user, half against unknown names
    with httpx.Client(base_url=server, timeout=120) as c:
        start.wait()
        r = c.post("/api/v1/auth/token", data={"username": name, "password": f"guess {i}"})
        return r.status_code, r.headers.get("retry-after")
with ThreadPoolExecutor(n) as pool:
    flood = [pool.submit(wrong_sign_in, i) for i in range(n)]
    start.wait()
    print("go", flush=True)
    answers = [f.result() for f in flood]
print(json.dumps(answers), flush=True)
"""


def test_a_sign_in_flood_leaves_ordinary_requests_answering_within_a_second(server, auth):
    probes: list[tuple[int, float]] = []
    with httpx.Client(base_url=server, timeout=60) as planner:
        quiet = []
        for _ in range(5):  # the same request without a flood, for comparison in the message below
            t0 = time.monotonic()
            assert planner.get("/api/v1/customers", headers=auth("planner_a")).status_code == 200
            quiet.append(round(time.monotonic() - t0, 3))
        flood = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, server, str(FLOOD)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert flood.stdout.readline().strip() == "go"
            time.sleep(0.3)  # the flood is in: every request has arrived or is arriving
            while flood.poll() is None and len(probes) < 20:
                t0 = time.monotonic()
                r = planner.get("/api/v1/customers", headers=auth("planner_a"))
                probes.append((r.status_code, time.monotonic() - t0))
                time.sleep(0.1)
            out, _ = flood.communicate(timeout=300)
        finally:
            flood.kill()
    assert flood.returncode == 0
    answers = [tuple(a) for a in json.loads(out.strip().splitlines()[-1])]
    assert len(answers) == FLOOD
    statuses = sorted({s for s, _ in answers})
    assert len(probes) >= 3, (probes, statuses)  # the flood lasted long enough to be measured
    assert all(code == 200 for code, _ in probes), probes
    times = sorted(t for _, t in probes)
    worst, median = times[-1], times[len(times) // 2]
    # Within a second; on a shared, busy machine (the quiet requests themselves slow) one straggler may
    # take up to three times the slowest quiet request. The code before the fix timed out after 60 s.
    assert median < 1.0 and worst < max(1.0, 3 * max(quiet)), \
        f"an ordinary request took {worst:.2f} s during the flood: {probes} (quiet: {quiet})"
    print(f"quiet {quiet}; during the flood {[round(t, 3) for _, t in probes]};"
          f" sign-ins {[(code, sum(1 for s, _ in answers if s == code)) for code in statuses]}")
    assert set(statuses) <= {401, 503}, statuses
    assert all(ra and ra.isdigit() for s, ra in answers if s == 503)
    # Right after, the real password still works: the checks were bounded, not wedged.
    with httpx.Client(base_url=server, timeout=60) as c:
        r = c.post("/api/v1/auth/token", data={"username": "victim", "password": VICTIM_PASSWORD})
        assert r.status_code == 200, r.text
