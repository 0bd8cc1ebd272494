"""API fixtures: an app on this module's database, two legal entities with data, users of every role.

Legal entity LEA (counties 640104, 640105): outlets OA1, OA2; RMs RA1 (OA1), RA2 (OA2);
customers CA1 (cell a1 owned by RA1), CA2 (cell a2 owned by RA2), CA3 (no cell).
Legal entity LEB (county 640122): outlet OB1, RM RB1, customer CB1 (cell b1 owned by RB1).
Grids, cell statistics, a lock, scenarios and gap runs: see ``seed_grid_objects``.
Users (password PASSWORD): admin (system-wide), planner_a, analyst_a, bm_a (outlet OA1),
rm_a1 (RA1), rm_a2 (RA2), planner_b, rm_b (RB1).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text

import api.auth as api_auth
from api.app import create_app
from api.auth import create_token, hash_password
from api.settings import AuthSettings, DatabaseSettings, Settings, UploadSettings
from geodata import DEMO_DATA, jobs, users

COUNTIES = DEMO_DATA / "ningxia_counties_gcj02.geojson"
PASSWORD = "correct horse battery"
SECRET = "test"
USERS = {
    "admin": dict(role="admin", le=None),
    "planner_a": dict(role="planner", le="LEA"),
    "analyst_a": dict(role="analyst", le="LEA"),
    "bm_a": dict(role="branch_manager", le="LEA", outlets=["OA1"]),
    "rm_a1": dict(role="rm", le="LEA", rm="RA1"),
    "rm_a2": dict(role="rm", le="LEA", rm="RA2"),
    "planner_b": dict(role="planner", le="LEB"),
    "rm_b": dict(role="rm", le="LEB", rm="RB1"),
}


@pytest.fixture(scope="session", autouse=True)
def cheap_argon2():
    """Real argon2id, but at a low cost: the default cost takes seconds per login on a busy 2-core box."""
    original = api_auth._HASHER
    api_auth._HASHER = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1),))
    yield
    api_auth._HASHER = original


@pytest.fixture(scope="session")
def password() -> str:
    """The password of every fixture user."""
    return PASSWORD


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One real argon2 hash shared by all fixture users (hashing is deliberately slow)."""
    return hash_password(PASSWORD)


def _county_geoms() -> dict[str, str]:
    data = json.loads(COUNTIES.read_text())
    return {f["properties"]["adcode"]: json.dumps(f["geometry"]) for f in data["features"]}


def seed(engine, password_hash: str, rejects_dir: Path) -> dict:
    """Insert the two legal entities, their data, users, import runs and a job."""
    geoms = _county_geoms()
    ids: dict = {}
    with engine.begin() as c:
        x = c.execute
        for code, name in (("LEA", "甲农商行"), ("LEB", "乙农商行")):
            ids[code] = x(text("INSERT INTO legal_entity (code, name) VALUES (:c, :n) RETURNING id"),
                          {"c": code, "n": name}).scalar_one()
        for adcode, name, le in (("640104", "兴庆区", "LEA"), ("640105", "西夏区", "LEA"), ("640122", "贺兰县", "LEB")):
            x(text("INSERT INTO county (adcode, name, city_code, legal_entity_id, geom) VALUES"
                   " (:a, :n, '6401', :le, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326)))"),
              {"a": adcode, "n": name, "le": ids[le], "g": geoms[adcode]})
        for code, county, lon, lat in (("640104001002", "640104", 106.28, 38.47),
                                       ("640122100201", "640122", 106.35, 38.55)):
            x(text("INSERT INTO village (code, name, township_code, county_code, coord_level, geom) VALUES"
                   " (:c, :c, left(:c, 9), :k, 'village', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
              {"c": code, "k": county, "x": lon, "y": lat})
        for code, le, county in (("OA1", "LEA", "640104"), ("OA2", "LEA", "640105"), ("OB1", "LEB", "640122")):
            x(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) VALUES"
                   " (:c, :c, :le, :k, ST_SetSRID(ST_MakePoint(106.3, 38.5), 4326))"),
              {"c": code, "le": ids[le], "k": county})
            x(text("INSERT INTO service_point (code, name, legal_entity_id, outlet_code, county_code, geom)"
                   " VALUES (:c, :c, :le, :o, :k, ST_SetSRID(ST_MakePoint(106.3, 38.5), 4326))"),
              {"c": "SP" + code[1:], "le": ids[le], "o": code, "k": county})
        for code, le, outlet, phone in (("RA1", "LEA", "OA1", "13900000001"), ("RA2", "LEA", "OA2", "13900000002"),
                                        ("RB1", "LEB", "OB1", "13900000003")):
            x(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code, phone) VALUES (:c, :c, :le, :o, :p)"),
              {"c": code, "le": ids[le], "o": outlet, "p": phone})
        customers = (("CA1", "张三", "13812341234", "110101199001011234", "LEA", "640104", 106.28, 38.47),
                     ("CA2", "李四", "13812345678", "110101199001015678", "LEA", "640105", 106.1, 38.5),
                     ("CA3", "王五", "13800000000", "110101199001010000", "LEA", "640104", None, None),
                     ("CB1", "欧阳娜娜", "13987654321", "640122199001019999", "LEB", "640122", 106.35, 38.55))
        for cid, name, phone, idn, le, county, lon, lat in customers:
            x(text("INSERT INTO customer (customer_id, name, phone, id_number, legal_entity_id, county_code,"
                   " segment, geom) VALUES (:i, :n, :p, :d, :le, :k, 'retail',"
                   " CASE WHEN CAST(:x AS float8) IS NULL THEN NULL"
                   " ELSE ST_SetSRID(ST_MakePoint(:x, :y), 4326) END)"),
              {"i": cid, "n": name, "p": phone, "d": idn, "le": ids[le], "k": county, "x": lon, "y": lat})
        for county, cells in (("640104", [("a1", "RA1", "CA1"), ("a2", "RA2", "CA2")]),
                              ("640122", [("b1", "RB1", "CB1")])):
            gid = x(text("INSERT INTO grid (county_code, kind, resolution) VALUES (:k, 'h3', 8) RETURNING id"),
                    {"k": county}).scalar_one()
            ids.setdefault("grids", []).append(gid)
            x(text(f"CREATE TABLE customer_cell_{gid} PARTITION OF customer_cell FOR VALUES IN ({gid})"))
            for cell, rm, cid in cells:
                x(text("INSERT INTO cell (grid_id, cell_id, area_km2, geom) VALUES"
                       " (:g, :c, 1, ST_Multi(ST_Expand(ST_SetSRID(ST_MakePoint(106.3, 38.5), 4326), 0.001)))"),
                  {"g": gid, "c": cell})
                x(text("INSERT INTO customer_cell VALUES (:g, :i, :c, 'point')"), {"g": gid, "i": cid, "c": cell})
                x(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by)"
                       " VALUES (:g, :c, :r, 'test', 'test')"), {"g": gid, "c": cell, "r": rm})
        seed_grid_objects(c, ids)
        seed_visit_objects(c, ids)
        for name, spec in USERS.items():
            users.create_user(c, username=name, password_hash=password_hash, role=spec["role"],
                              legal_entity_id=ids[spec["le"]] if spec["le"] else None,
                              rm_code=spec.get("rm"), outlet_codes=spec.get("outlets", []))
        rejects_dir.mkdir(parents=True, exist_ok=True)
        for who in ("planner_a", "planner_b"):
            path = rejects_dir / f"{who}.csv"
            path.write_text("row,reason\n3,bad code\n")
            ids[f"run_{who}"] = x(text(
                "INSERT INTO import_run (kind, file_name, sha256, user_name, status, rejects_path, counts)"
                " VALUES ('customers', 'c.csv', repeat('0', 64), :u, 'ok', :p, '{\"read\": 4}') RETURNING id"),
                {"u": who, "p": str(path)}).scalar_one()
        ids["job_planner_b"] = jobs.create_job(c, kind="import:customers", username="planner_b",
                                               legal_entity_id=ids["LEB"])
    return ids


def seed_grid_objects(c, ids: dict) -> None:
    """Cell statistics, a lock, a co-owner, a draft scenario and a gap run in each legal entity's grid.

    Grid ``grid_a`` (LEA, county 640104): a1 (RA1, 1 customer), a2 (RA2, 1 customer, locked);
    scenario ``plan_a`` moves a2 to RA1; gap run scores a2 blank. Grid ``grid_b`` (LEB): b1 (RB1),
    scenario ``plan_b``, gap run.
    """
    x = c.execute
    ids["grid_a"], ids["grid_b"] = ids["grids"]
    for gid, cells in ((ids["grid_a"], ("a1", "a2")), (ids["grid_b"], ("b1",))):
        x(text("UPDATE grid SET cell_count = :n, assigned_at = now() WHERE id = :g"), {"g": gid, "n": len(cells)})
        for cell in cells:
            x(text("INSERT INTO cell_stat (grid_id, cell_id, customers, households, population, deposit, loan)"
                   " VALUES (:g, :c, 1, 10, 30, 1000, 500)"), {"g": gid, "c": cell})
    x(text("INSERT INTO cell_lock (grid_id, cell_id, locked_by) VALUES (:g, 'a2', 'planner_a')"),
      {"g": ids["grid_a"]})
    for key, gid, who, plan in (("scenario_a", ids["grid_a"], "planner_a", (("a1", "RA1"), ("a2", "RA1"))),
                                ("scenario_b", ids["grid_b"], "planner_b", (("b1", "RB1"),))):
        ids[key] = x(text("INSERT INTO scenario (grid_id, name, base_version, created_by) VALUES"
                          " (:g, :n, 0, :u) RETURNING id"), {"g": gid, "n": "plan_" + key[-1], "u": who}).scalar_one()
        for cell, rm in plan:
            x(text("INSERT INTO scenario_cell (scenario_id, cell_id, rm_code) VALUES (:s, :c, :r)"),
              {"s": ids[key], "c": cell, "r": rm})
    for key, gid, cells in (("gap_run_a", ids["grid_a"], ("a1", "a2")), ("gap_run_b", ids["grid_b"], ("b1",))):
        ids[key] = x(text("INSERT INTO gap_run (grid_id, config, trigger) VALUES (:g, '{}', 'test') RETURNING id"),
                     {"g": gid}).scalar_one()
        for i, cell in enumerate(cells):
            blank = cell == "a2"
            x(text("INSERT INTO gap_score (gap_run_id, cell_id, score, gap_class, components, measures,"
                   " reason_zh, reason_en) VALUES (:r, :c, :s, :k, CAST(:comp AS jsonb), CAST(:m AS jsonb), :zh, :en)"),
              {"r": ids[key], "c": cell, "s": 80.0 if blank else 10.0 + i, "k": "blank" if blank else "covered",
               "comp": json.dumps({"contrib_no_recent_visit": 40.0 if blank else 0.0}),
               "m": json.dumps({"customers": 1, "owner_rm": None}),
               "zh": "90天内无走访" if blank else "", "en": "no visit in 90 days" if blank else ""})


def seed_visit_objects(c, ids: dict) -> None:
    """A day plan and a checked-in visit of RA2 (customer CA2) and of RB1 (customer CB1), a task for RA2.

    ``plan_ra2``, ``plan_rb1``, ``visit_ra2``, ``visit_rb1``, ``task_ra2``: objects rm_a1 and bm_a must
    not reach (RA2 is of outlet OA2), nor anyone of LEA (RB1's). Received a day ago, before the gap runs.
    """
    x = c.execute
    for rm, cid, lon, lat in (("RA2", "CA2", 106.1, 38.5), ("RB1", "CB1", 106.35, 38.55)):
        key = rm[1:].lower()
        ids[f"plan_{key}"] = x(text(
            "INSERT INTO visit_plan (rm_code, plan_date, start_source, start_geom, weights, solver, created_by,"
            " length_m) VALUES (:rm, current_date, 'outlet', ST_SetSRID(ST_MakePoint(106.3, 38.5), 4326), '{}',"
            " 'pyvrp', 'test', 1000) RETURNING plan_id"), {"rm": rm}).scalar_one()
        x(text("INSERT INTO plan_stop (plan_id, customer_id, rank, kind, reasons, reason_zh, reason_en, place_source,"
               " geom, service_min, route_seq) VALUES (:p, :c, 1, 'proposed', '{overdue_visit}', '从未拜访',"
               " 'never visited', 'customer', ST_SetSRID(ST_MakePoint(:x, :y), 4326), 20, 1)"),
          {"p": ids[f"plan_{key}"], "c": cid, "x": lon, "y": lat})
        ids[f"visit_{key}"] = x(text(
            "INSERT INTO visit (customer_id, rm_code, visited_at, source, kind, checkin_at, received_at, checkin_geom,"
            " accuracy_m, distance_m, place_source, idempotency_key) VALUES (:c, :rm, now() - interval '1 day',"
            " 'checkin', '面访', now() - interval '1 day', now() - interval '1 day',"
            " ST_SetSRID(ST_MakePoint(:x, :y), 4326), 10, 0, 'customer', gen_random_uuid()) RETURNING visit_id"),
            {"c": cid, "rm": rm, "x": lon, "y": lat}).scalar_one()
    ids["task_ra2"] = x(text("INSERT INTO visit_task (customer_id, rm_code, assigned_by, due_date)"
                             " VALUES ('CA2', 'RA2', 'admin', current_date) RETURNING task_id")).scalar_one()


@pytest.fixture(scope="module")
def settings(db_url, tmp_path_factory) -> Settings:
    """Settings of the test app: this module's database, a fixed key, a small upload limit."""
    tmp = tmp_path_factory.mktemp("uploads")
    return Settings(db=DatabaseSettings(url=db_url), auth=AuthSettings(secret_key=SECRET),
                    uploads=UploadSettings(max_bytes=200_000, dir=tmp))


@pytest.fixture(scope="module")
def data(engine, password_hash, settings) -> dict:
    """Ids of the seeded rows."""
    return seed(engine, password_hash, Path(settings.uploads.dir) / "rejects")


@pytest.fixture(scope="module")
def app(settings, data):
    """The app built by create_app."""
    return create_app(settings)


@pytest.fixture(scope="module")
def client(app):
    """A TestClient running the app's lifespan."""
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def run_cli(db_url, settings, monkeypatch):
    """``run(args)``: ``gridmkt ARGS --json`` on this module's database; its JSON (the command must succeed)."""
    from click.testing import CliRunner

    from api.cli import _register, cli

    monkeypatch.setenv("GRIDMKT_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDMKT_SECRET_KEY", settings.auth.secret_key)
    _register()

    def run(args):
        r = CliRunner().invoke(cli, [*args, "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    return run


@pytest.fixture(scope="module")
def tokens(settings) -> dict[str, str]:
    """A valid bearer token per fixture user (signed as the login route signs them)."""
    return {u: create_token(settings.auth, username=u, role=s["role"]) for u, s in USERS.items()}


@pytest.fixture(scope="module")
def auth(tokens):
    """``auth('rm_a1')`` -> headers carrying that user's token."""
    return lambda user: {"Authorization": f"Bearer {tokens[user]}"}


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port (proxy headers off, as ``gridmkt serve``
    runs it); yields the base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, proxy_headers=False,
                                        log_level="warning", limit_concurrency=None))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < end, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)
