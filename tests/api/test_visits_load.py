"""200 RMs check in at once over a real loopback server: every visit is recorded exactly once (slow).

Each RM's phone sends its check-in twice at the same time with the same idempotency key (a retry
racing the original), and retries on 503 or a dropped connection as the phone's queue does. Exactly
one of each pair answers 201, the other 200 with the same body; the database holds 200 check-ins, and
each RM's cell counts its one visit. The latencies' p95 is printed (run with -s to see it).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from api.app import create_app
from api.auth import create_token, hash_password
from api.settings import AuthSettings, DatabaseSettings, Settings
from geodata import DEMO_DATA, users

RMS = 200
SECRET = "load-test"


def _seed(engine) -> None:
    geom = next(f["geometry"] for f in json.loads((DEMO_DATA / "ningxia_counties_gcj02.geojson").read_text())["features"]
                if f["properties"]["adcode"] == "640104")
    pw = hash_password("not used")
    with engine.begin() as c:
        le = c.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LEL', 'load') RETURNING id")).scalar_one()
        c.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES ('640104', 'x', :le,"
                       " ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326)))"), {"le": le, "g": json.dumps(geom)})
        c.execute(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) VALUES ('OL', 'OL', :le,"
                       " '640104', ST_SetSRID(ST_MakePoint(106.28, 38.47), 4326))"), {"le": le})
        gid = c.execute(text("INSERT INTO grid (county_code, kind, resolution, assigned_at) VALUES ('640104', 'h3',"
                             " 8, now()) RETURNING id")).scalar_one()
        c.execute(text(f"CREATE TABLE customer_cell_{gid} PARTITION OF customer_cell FOR VALUES IN ({gid})"))
        for i in range(RMS):
            rm, cid, cell = f"R{i:03d}", f"K{i:03d}", f"c{i:03d}"
            lon, lat = 106.2 + (i % 20) * 0.01, 38.4 + (i // 20) * 0.01
            c.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) VALUES (:r, :r, :le, 'OL')"),
                      {"r": rm, "le": le})
            c.execute(text("INSERT INTO customer (customer_id, name, legal_entity_id, county_code, geom) VALUES"
                           " (:c, :c, :le, '640104', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                      {"c": cid, "le": le, "x": lon, "y": lat})
            c.execute(text("INSERT INTO cell (grid_id, cell_id, area_km2, geom) VALUES (:g, :c, 1,"
                           " ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(:x, :y), 4326), 0.004)))"),
                      {"g": gid, "c": cell, "x": lon, "y": lat})
            c.execute(text("INSERT INTO cell_stat (grid_id, cell_id, customers) VALUES (:g, :c, 1)"),
                      {"g": gid, "c": cell})
            c.execute(text("INSERT INTO customer_cell VALUES (:g, :i, :c, 'point')"), {"g": gid, "i": cid, "c": cell})
            c.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by) VALUES"
                           " (:g, :c, :r, 'test', 'test')"), {"g": gid, "c": cell, "r": rm})
            users.create_user(c, username=f"u{rm}", password_hash=pw, role="rm", legal_entity_id=le, rm_code=rm)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_200_rms_check_in_at_once_exactly_once(db_url, engine):
    _seed(engine)
    settings = Settings(db=DatabaseSettings(url=db_url), auth=AuthSettings(secret_key=SECRET))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    jobs = []
    for i in range(RMS):
        token = create_token(settings.auth, username=f"uR{i:03d}", role="rm")
        body = {"idempotency_key": str(uuid.uuid4()), "customer_id": f"K{i:03d}", "kind": "面访", "at": at,
                "lon": 106.2 + (i % 20) * 0.01, "lat": 38.4 + (i // 20) * 0.01, "accuracy_m": 12}
        jobs += [(token, body)] * 2  # the original and a retry racing it, same key
    url = f"http://127.0.0.1:{port}/api/v1/visits/checkins"
    barrier = threading.Barrier(len(jobs), timeout=60)

    def send(job):
        token, body = job
        barrier.wait()  # all at once
        t0 = time.perf_counter()
        for _ in range(20):  # as the phone's queue: retry a 503 or a dropped connection with the same key
            try:
                r = client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if r.status_code != 503:
                return body["idempotency_key"], r.status_code, r.json(), time.perf_counter() - t0
            time.sleep(float(r.headers.get("Retry-After", "1")) / 5)
        raise AssertionError(f"no answer for {body['idempotency_key']}")

    try:
        with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=len(jobs))) as client, \
                ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            t_all = time.perf_counter()
            results = list(pool.map(send, jobs))
            wall = time.perf_counter() - t_all
            # For scale: the same check-in one at a time (RM R000, later times: new visits).
            alone = []
            for k in range(20):
                body = {**jobs[0][1], "idempotency_key": str(uuid.uuid4()),
                        "at": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1 + k)).isoformat()}
                t0 = time.perf_counter()
                r = client.post(url, json=body, headers={"Authorization": f"Bearer {jobs[0][0]}"})
                alone.append(1000 * (time.perf_counter() - t0))
                assert r.status_code == 201, r.text
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    by_key: dict[str, list] = {}
    for key, status, answer, _ in results:
        by_key.setdefault(key, []).append((status, answer))
    assert len(by_key) == RMS
    for key, answers in by_key.items():
        assert sorted(s for s, _ in answers) == [200, 201], (key, answers)
        assert answers[0][1] == answers[1][1], key  # the replay answers the same body
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*), count(DISTINCT idempotency_key), count(DISTINCT customer_id)"
                                   " FROM visit WHERE source = 'checkin' AND visited_at = :at"), {"at": at}).one()
        cells = conn.execute(text("SELECT sum(visits_90d), min(visits_90d), max(visits_90d) FROM cell_stat"
                                  " WHERE cell_id <> 'c000'")).one()
        far = conn.execute(text("SELECT count(*) FROM visit WHERE flag_far")).scalar()
    assert tuple(stored) == (RMS, RMS, RMS)
    assert tuple(cells) == (RMS - 1, 1, 1) and far == 0
    lat_ms = sorted(1000 * r[3] for r in results)
    p50, p95 = lat_ms[len(lat_ms) // 2], lat_ms[int(0.95 * len(lat_ms)) - 1]
    alone.sort()
    print(json.dumps({"requests": len(jobs), "rms": RMS, "wall_s": round(wall, 2), "p50_ms": round(p50),
                      "p95_ms": round(p95), "max_ms": round(lat_ms[-1]), "alone_p50_ms": round(alone[10]),
                      "alone_p95_ms": round(alone[18])}))
