"""The RM's day over HTTP (issue 16): plans, check-in/out idempotency and flags, coverage, tasks, report, scope.

Seeded (tests/api/conftest.py): RA1 (outlet OA1, bm_a's) owns cell a1 with CA1 at (106.28, 38.47);
RA2 (OA2) owns a2 with CA2; RB1 of the other legal entity. Tests run in file order on one database.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import text

from geodata import gaps
from geodata.visits import checkins

NOW = dt.datetime.now(dt.UTC)


def _ci(customer="CA1", lon=106.28, lat=38.47, at=None, key=None, **kw):
    return {"idempotency_key": key or str(uuid.uuid4()), "customer_id": customer, "kind": "面访",
            "at": (at or NOW - dt.timedelta(minutes=20)).isoformat(), "lon": lon, "lat": lat, "accuracy_m": 15, **kw}


def test_rm_plans_their_day(client, auth):
    r = client.post("/api/v1/visits/plans", json={}, headers=auth("rm_a1"))
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["rm_code"] == "RA1" and p["start"]["source"] == "outlet"
    assert [s["customer_id"] for s in p["stops"]] == ["CA1"]
    s = p["stops"][0]
    assert s["seq"] == 1 and s["name"] == "张三" and s["place_source"] == "customer"
    assert s["geo_uri"].startswith("geo:38.470000,106.280000") and "uri.amap.com" in s["amap_uri"]
    # Amap gets GCJ-02: shifted from the WGS84 point by a few hundred metres.
    glon = float(s["amap_uri"].split("to=")[1].split(",")[0])
    assert 0.001 < abs(glon - 106.28) < 0.02
    assert s["tag_url"].endswith("CA1") and s["reason_en"]
    assert p["route"]["type"] == "LineString" and len(p["route"]["coordinates"]) == 3 and p["length_m"] > 0
    today = client.get("/api/v1/visits/plans/today", headers=auth("rm_a1")).json()
    assert today["plan_id"] == p["plan_id"]


def test_plans_follow_scope_and_mask_names(client, auth):
    assert client.post("/api/v1/visits/plans", json={"rm_code": "RA2"}, headers=auth("rm_a1")).status_code == 404
    assert client.post("/api/v1/visits/plans", json={"rm_code": "RA2"}, headers=auth("bm_a")).status_code == 404
    assert client.post("/api/v1/visits/plans", json={"rm_code": "RB1"}, headers=auth("planner_a")).status_code == 404
    assert client.post("/api/v1/visits/plans", json={"rm_code": "RA1"}, headers=auth("analyst_a")).status_code == 403
    r = client.post("/api/v1/visits/plans", json={"rm_code": "RA1", "start_lon": 106.27, "start_lat": 38.46},
                    headers=auth("bm_a"))
    assert r.status_code == 201 and r.json()["start"]["source"] == "phone"
    masked = client.get("/api/v1/visits/plans/today?rm_code=RA1", headers=auth("analyst_a")).json()
    assert masked["stops"][0]["name"] == "张*"
    assert client.get("/api/v1/visits/plans/today?rm_code=RA2", headers=auth("rm_a1")).status_code == 404


def test_rm_removes_and_adds_a_stop(client, auth):
    pid = client.get("/api/v1/visits/plans/today", headers=auth("rm_a1")).json()["plan_id"]
    r = client.delete(f"/api/v1/visits/plans/{pid}/stops/CA1", headers=auth("rm_a1"))
    assert r.status_code == 200 and r.json()["stops"] == []
    r = client.post(f"/api/v1/visits/plans/{pid}/stops", json={"customer_id": "CA1"}, headers=auth("rm_a1"))
    assert r.status_code == 200 and [s["customer_id"] for s in r.json()["stops"]] == ["CA1"]
    # Another RM's customer, and a manager changing the RM's stops: refused.
    assert client.post(f"/api/v1/visits/plans/{pid}/stops", json={"customer_id": "CA2"},
                       headers=auth("rm_a1")).status_code == 404
    assert client.delete(f"/api/v1/visits/plans/{pid}/stops/CA1", headers=auth("bm_a")).status_code == 403


def test_checkin_replay_answers_the_same_body_once(client, auth, engine):
    body = _ci()
    first = client.post("/api/v1/visits/checkins", json=body, headers=auth("rm_a1"))
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/visits/checkins", json=body, headers=auth("rm_a1"))
    assert again.status_code == 200 and again.json() == first.json()
    v = first.json()
    assert v["distance_m"] < 1 and v["flag_far"] is False and v["place_source"] == "customer"
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM visit WHERE idempotency_key = :k"),
                         {"k": body["idempotency_key"]}).scalar()
    assert n == 1


def test_far_checkin_is_flagged_after_allowing_for_accuracy(client, auth):
    # ~860 m east of CA1: far with 15 m accuracy, not far when the phone says it may be 500 m off.
    far = client.post("/api/v1/visits/checkins", json=_ci(lon=106.29, at=NOW - dt.timedelta(hours=3)),
                      headers=auth("rm_a1")).json()
    assert 800 < far["distance_m"] < 900 and far["flag_far"] is True
    vague = client.post("/api/v1/visits/checkins", json=_ci(lon=106.29, accuracy_m=500, at=NOW - dt.timedelta(hours=5)),
                        headers=auth("rm_a1")).json()
    assert vague["flag_far"] is False


def test_checkout_short_flag_and_idempotency(client, auth):
    at = NOW - dt.timedelta(hours=7)
    v = client.post("/api/v1/visits/checkins", json=_ci(at=at), headers=auth("rm_a1")).json()
    out = {"idempotency_key": str(uuid.uuid4()), "at": (at + dt.timedelta(minutes=2)).isoformat(),
           "note": "谈了存款", "outcome": "意向"}
    r = client.post(f"/api/v1/visits/{v['visit_id']}/checkout", json=out, headers=auth("rm_a1"))
    assert r.status_code == 200 and r.json()["flag_short"] is True and r.json()["duration_min"] == 2.0
    assert client.post(f"/api/v1/visits/{v['visit_id']}/checkout", json=out, headers=auth("rm_a1")).json() == r.json()
    other = {**out, "idempotency_key": str(uuid.uuid4())}
    assert client.post(f"/api/v1/visits/{v['visit_id']}/checkout", json=other, headers=auth("rm_a1")).status_code == 409
    v2 = client.post("/api/v1/visits/checkins", json=_ci(at=at - dt.timedelta(hours=2)), headers=auth("rm_a1")).json()
    long = {**out, "idempotency_key": str(uuid.uuid4()), "at": (at - dt.timedelta(hours=1)).isoformat()}
    assert client.post(f"/api/v1/visits/{v2['visit_id']}/checkout", json=long,
                       headers=auth("rm_a1")).json()["flag_short"] is False


def test_only_the_rm_checks_in_for_their_own_customers(client, auth):
    assert client.post("/api/v1/visits/checkins", json=_ci(), headers=auth("rm_a2")).status_code == 404
    assert client.post("/api/v1/visits/checkins", json=_ci(), headers=auth("bm_a")).status_code == 403
    assert client.post("/api/v1/visits/checkins", json=_ci(at=NOW + dt.timedelta(hours=1)),
                       headers=auth("rm_a1")).status_code == 422
    naive = {**_ci(), "at": "2026-12-07T09:00:00"}
    assert client.post("/api/v1/visits/checkins", json=naive, headers=auth("rm_a1")).status_code == 422


def test_checkin_updates_the_cell_at_once_and_marks_scores_stale(client, auth, engine, data):
    with engine.connect() as conn:
        before = conn.execute(text("SELECT visits_90d, customers_visited_90d FROM cell_stat WHERE grid_id = :g"
                                   " AND cell_id = 'a1'"), {"g": data["grid_a"]}).one()
    client.post("/api/v1/visits/checkins", json=_ci(at=NOW - dt.timedelta(hours=11)), headers=auth("rm_a1"))
    with engine.connect() as conn:
        after = conn.execute(text("SELECT visits_90d, customers_visited_90d, last_visit_at FROM cell_stat"
                                  " WHERE grid_id = :g AND cell_id = 'a1'"), {"g": data["grid_a"]}).one()
        n = conn.execute(text("SELECT count(*) FROM visit WHERE customer_id = 'CA1'")).scalar()
        run = gaps.latest_run(conn, grid_id=data["grid_a"])
        stale = gaps.staleness(conn, grid_id=data["grid_a"], run=run)
    assert after.visits_90d == n and after.visits_90d == before.visits_90d + 1 and after.customers_visited_90d == 1
    assert stale["stale"] and any("checked in since scoring" in r for r in stale["stale_reasons"])


def test_imported_visits_and_checkins_are_one_visit(client, auth, engine):
    at = NOW - dt.timedelta(days=2)
    with engine.begin() as conn:  # an imported visit 20 minutes before the check-in ...
        conn.execute(text("INSERT INTO visit (customer_id, rm_code, visited_at, channel) VALUES ('CA1', 'RA1', :t,"
                          " '上门')"), {"t": at - dt.timedelta(minutes=20)})
    v = client.post("/api/v1/visits/checkins", json=_ci(at=at), headers=auth("rm_a1")).json()
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT source, channel FROM visit WHERE customer_id = 'CA1' AND visited_at"
                                 " BETWEEN :a AND :b"), {"a": at - dt.timedelta(hours=1), "b": at + dt.timedelta(hours=1)}).all()
        assert rows == [("checkin", "上门")] and v["kind"] == "面访"
        # ... and a visit imported after a check-in folds into it.
        conn.execute(text("INSERT INTO visit (customer_id, rm_code, visited_at, outcome) VALUES ('CA1', 'RA1', :t,"
                          " '办卡')"), {"t": at + dt.timedelta(minutes=30)})
        assert checkins.merge_imported(conn) == 1
        rows = conn.execute(text("SELECT source, outcome FROM visit WHERE customer_id = 'CA1' AND visited_at"
                                 " BETWEEN :a AND :b"), {"a": at - dt.timedelta(hours=1), "b": at + dt.timedelta(hours=1)}).all()
    assert rows == [("checkin", "办卡")]


def test_tasks_come_first_and_follow_scope(client, auth):
    due = (NOW + dt.timedelta(days=1)).date().isoformat()
    r = client.post("/api/v1/visits/tasks", json={"rm_code": "RA1", "customer_id": "CA1", "due_date": due,
                                                  "window_start": "10:00", "window_end": "11:30"}, headers=auth("bm_a"))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "open" and r.json()["assigned_by"] == "bm_a"
    assert client.post("/api/v1/visits/tasks", json={"rm_code": "RA2", "customer_id": "CA2", "due_date": due},
                       headers=auth("bm_a")).status_code == 404
    assert client.post("/api/v1/visits/tasks", json={"rm_code": "RA1", "customer_id": "CA1", "due_date": due},
                       headers=auth("rm_a1")).status_code == 403
    mine = client.get("/api/v1/visits/tasks", headers=auth("rm_a1")).json()
    assert [t["customer_id"] for t in mine["items"]] == ["CA1"]
    assert client.get("/api/v1/visits/tasks", headers=auth("rm_a2")).json()["items"][0]["rm_code"] == "RA2"
    seen = {t["customer_id"]: t["name"] for t in client.get("/api/v1/visits/tasks", headers=auth("analyst_a")).json()["items"]}
    assert seen == {"CA1": "张*", "CA2": "李*"}  # the legal entity's tasks, names masked
    plan = client.post("/api/v1/visits/plans", json={}, headers=auth("rm_a1")).json()
    first = plan["stops"][0]
    assert first["kind"] == "task" and first["window_start"] == "10:00"
    assert client.delete(f"/api/v1/visits/plans/{plan['plan_id']}/stops/CA1", headers=auth("rm_a1")).status_code == 409


def _week(t: dt.datetime) -> str:
    y, w, _ = t.astimezone(ZoneInfo("Asia/Shanghai")).isocalendar()
    return f"{y}-W{w:02d}"


def test_week_report_for_the_branch_manager(client, auth):
    r = client.get("/api/v1/visits/report", headers=auth("bm_a"))
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["week"] == _week(dt.datetime.now(dt.UTC)) and rep["from"] < rep["to"]
    assert [i["rm_code"] for i in rep["items"]] == ["RA1"]
    row = rep["items"][0]
    # RA1's seven check-ins above, from 20 minutes to 2 days old, may span two ISO weeks (China time).
    ages = [dt.timedelta(minutes=20)] + [dt.timedelta(hours=h) for h in (3, 5, 7, 9, 11)] + [dt.timedelta(days=2)]
    weeks = sorted({_week(NOW - a) for a in ages})
    rows = [client.get(f"/api/v1/visits/report?week={w}", headers=auth("bm_a")).json()["items"][0] for w in weeks]
    assert sum(x["visits"] for x in rows) == 7 and sum(x["checkins"] for x in rows) == 7
    assert sum(x["flag_far"] for x in rows) == 1 and sum(x["flag_short"] for x in rows) == 1
    assert row["planned"] >= 1
    assert row["territory_customers"] == 1 and row["customers_visited"] == 1 and row["coverage_share"] == 1.0
    assert 0 < row["process_score"] <= 100 and set(rep["weights"]) == {"completion", "coverage", "gap_cells", "clean"}
    assert client.get("/api/v1/visits/report?week=2026-W99", headers=auth("bm_a")).status_code == 422
    analyst = client.get("/api/v1/visits/report", headers=auth("analyst_a")).json()
    assert {i["rm_code"] for i in analyst["items"]} == {"RA1", "RA2"}


def test_the_plan_says_where_each_stop_stands_today(client, auth):
    """A check-in marks the stop checked in (time, distance, far flag), a check-out marks it done (outcome, short
    flag); the /api/v1 plan answers with that state, and the route still ahead leaves visited stops out."""
    plan = client.post("/api/v1/visits/plans", json={}, headers=auth("rm_a1")).json()
    before = next(s for s in plan["stops"] if s["customer_id"] == "CA1")
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)  # the latest visit of CA1 today
    v = client.post("/api/v1/visits/checkins", json=_ci(at=at, lon=106.29, plan_id=plan["plan_id"]),
                    headers=auth("rm_a1")).json()
    p = client.get("/api/v1/visits/plans/today", headers=auth("rm_a1")).json()
    s = next(s for s in p["stops"] if s["customer_id"] == "CA1")
    assert s["state"] == "checked_in" and s["visit_id"] == v["visit_id"] and s["flag_far"] is True
    assert dt.datetime.fromisoformat(s["checkin_at"]) == at and s["checkout_at"] is None and 800 < s["distance_m"]
    assert p["visited"] == 1 and p["done"] == 0 and p["remaining_route"] is None  # CA1 is RA1's only stop
    assert p["territory"]["grid_id"] and len(p["territory"]["bbox"]) == 4
    out = {"idempotency_key": str(uuid.uuid4()), "at": dt.datetime.now(dt.UTC).isoformat(), "outcome": "interested"}
    assert client.post(f"/api/v1/visits/{v['visit_id']}/checkout", json=out, headers=auth("rm_a1")).status_code == 200
    s = client.get(f"/api/v1/visits/plans/{plan['plan_id']}", headers=auth("rm_a1")).json()["stops"][0]
    assert (s["state"], s["outcome"], s["flag_short"], s["flag_far"]) == ("done", "interested", True, True)
    assert before["seq"] == s["seq"]
    # The branch manager reads the same state; another RM's plan stays out of reach.
    bm = client.get("/api/v1/visits/plans/today?rm_code=RA1", headers=auth("bm_a")).json()
    assert bm["stops"][0]["state"] == "done"
    assert client.get(f"/api/v1/visits/plans/{plan['plan_id']}", headers=auth("rm_a2")).status_code == 404


def test_remaining_route_starts_at_the_last_check_in():
    from geodata.reads.visits import remaining_route

    t = dt.datetime(2026, 12, 7, 9, tzinfo=dt.UTC)
    start = {"lon": 0.0, "lat": 0.0}
    stops = [{"lon": 1.0, "lat": 0.0, "state": "done", "visited_at": t},
             {"lon": 2.0, "lat": 0.0, "state": "planned", "visited_at": None},
             {"lon": 3.0, "lat": 0.0, "state": "checked_in", "visited_at": t + dt.timedelta(hours=1)},
             {"lon": None, "lat": None, "state": "planned", "visited_at": None},
             {"lon": 4.0, "lat": 0.0, "state": "planned", "visited_at": None}]
    assert remaining_route(start, stops)["coordinates"] == [[3.0, 0.0], [2.0, 0.0], [4.0, 0.0], [0.0, 0.0]]
    assert remaining_route(start, [dict(s, state="planned") for s in stops])["coordinates"][0] == [0.0, 0.0]
    assert remaining_route(start, [dict(s, state="done") for s in stops]) is None
