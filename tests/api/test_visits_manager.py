"""The branch manager's side of the RM's day (issue 16 §4): flagged visits, the visits layer's counts and the
/maps/visits page, per role, with numerator and denominator counted within the reader's scope.

Seeded (tests/api/conftest.py): grid_a has a1 (RA1 of OA1, bm_a's; customer CA1) and a2 (RA2 of OA2; CA2,
visited by RA2 a day ago); RB1 of the other legal entity. Here RA1 checks in far from CA1 and checks out
two minutes later: one visit, flagged far and short.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

NOW = dt.datetime.now(dt.UTC)


def _week(t: dt.datetime) -> str:
    y, w, _ = t.astimezone(ZoneInfo("Asia/Shanghai")).isocalendar()
    return f"{y}-W{w:02d}"


WEEK = _week(NOW - dt.timedelta(minutes=3))


@pytest.fixture(scope="module")
def flagged_visit(client, auth) -> int:
    at = NOW - dt.timedelta(minutes=3)
    r = client.post("/api/v1/visits/checkins", headers=auth("rm_a1"), json={
        "idempotency_key": str(uuid.uuid4()), "customer_id": "CA1", "kind": "面访", "at": at.isoformat(),
        "lon": 106.38, "lat": 38.47, "accuracy_m": 20})
    assert r.status_code == 201 and r.json()["flag_far"] is True, r.text
    vid = r.json()["visit_id"]
    out = client.post(f"/api/v1/visits/{vid}/checkout", headers=auth("rm_a1"), json={
        "idempotency_key": str(uuid.uuid4()), "at": (at + dt.timedelta(minutes=2)).isoformat()})
    assert out.status_code == 200 and out.json()["flag_short"] is True, out.text
    return vid


def test_flagged_visits_per_role(client, auth, flagged_visit):
    bm = client.get(f"/api/v1/visits/flagged?week={WEEK}", headers=auth("bm_a"))
    assert bm.status_code == 200, bm.text
    [row] = bm.json()["items"]
    assert row["visit_id"] == flagged_visit and row["rm_code"] == "RA1" and row["customer_id"] == "CA1"
    assert row["customer_name"] == "张三" and row["flag_far"] and row["flag_short"]
    assert 8000 < row["distance_m"] < 9500 and row["duration_min"] == 2.0
    # The analyst sees the same visit, the customer's name masked; RA2's clean visit is never listed.
    [masked] = client.get(f"/api/v1/visits/flagged?week={WEEK}", headers=auth("analyst_a")).json()["items"]
    assert masked["customer_name"] == "张*" and masked["visit_id"] == flagged_visit
    assert client.get(f"/api/v1/visits/flagged?week={WEEK}", headers=auth("rm_a2")).json()["items"] == []
    assert client.get(f"/api/v1/visits/flagged?week={WEEK}", headers=auth("rm_b")).json()["items"] == []
    # The week's flag counts are exactly the listed visits (flags are never dropped between the two).
    rep = client.get(f"/api/v1/visits/report?week={WEEK}", headers=auth("bm_a")).json()["items"][0]
    assert rep["flag_far"] == 1 and rep["flag_short"] == 1


@pytest.mark.parametrize("who, cells, customers, visited, visits", [
    ("bm_a", ["a1"], 1, 1, 1),          # bm_a's outlet OA1: RA1's cell only
    ("rm_a1", ["a1"], 1, 1, 1),
    ("rm_a2", ["a2"], 1, 1, 1),         # RA2's seeded visit a day ago
    ("analyst_a", ["a1", "a2"], 2, 2, 2),
    ("planner_a", ["a1", "a2"], 2, 2, 2),
])
def test_cover_counts_within_scope(client, auth, data, flagged_visit, who, cells, customers, visited, visits):
    r = client.get(f"/api/v1/visits/coverage?grid_id={data['grid_a']}&week={WEEK}", headers=auth(who))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["cell_id"] for c in body["items"]] == cells
    assert (body["customers"], body["customers_visited"], body["visits"]) == (customers, visited, visits)
    assert body["window_days"] == 90 and all(c["visits_per_customer"] == 1.0 for c in body["items"])


@pytest.mark.parametrize("who", ["bm_a", "rm_a1", "analyst_a"])
def test_report_on_the_map_grid_adds_up_to_the_map(client, auth, data, flagged_visit, who):
    """On one grid, the RMs' territory customers (and those visited) add up to the layer's denominator (and
    numerator): the page's table and map never disagree."""
    q = f"grid_id={data['grid_a']}&week={WEEK}"
    rows = client.get(f"/api/v1/visits/report?{q}", headers=auth(who)).json()["items"]
    cover = client.get(f"/api/v1/visits/coverage?{q}", headers=auth(who)).json()
    assert sum(r["territory_customers"] for r in rows) == cover["customers"] > 0
    assert sum(r["customers_visited"] for r in rows) == cover["customers_visited"]
    assert client.get(f"/api/v1/visits/report?grid_id={data['grid_b']}", headers=auth(who)).status_code == 404


def test_cover_of_an_old_week_and_of_others_grid(client, auth, data, flagged_visit):
    old = client.get(f"/api/v1/visits/coverage?grid_id={data['grid_a']}&week=2020-W01", headers=auth("bm_a")).json()
    assert old["customers"] == 1 and old["customers_visited"] == 0 and old["visits"] == 0
    assert old["items"][0]["visits_per_customer"] == 0.0 and old["until"].startswith("2020-01-06")
    for who in ("bm_a", "rm_a1", "analyst_a"):
        assert client.get(f"/api/v1/visits/coverage?grid_id={data['grid_b']}",
                          headers=auth(who)).status_code == 404


def test_visits_page_per_role(client, auth, data, flagged_visit):
    bm = client.get(f"/maps/visits?week={WEEK}", headers=auth("bm_a"))
    assert bm.status_code == 200, bm.text
    html = bm.text
    assert "RA1" in html and "RA2" not in html and "李四" not in html
    assert "距离远 far 1" in html and "时长短 short 1" in html and "张三" in html
    assert f"/maps/rm?grid_id={data['grid_a']}&amp;rm_code=RA1" in html
    assert "过程积分怎么算" in html and "走访覆盖地图" in html and "gm-cover-legend" in html
    # RA1: 1 of 1 territory customers visited in 90 days; the page says so with both numbers.
    assert "1 / 1 · 100%" in html
    rm = client.get(f"/maps/visits?week={WEEK}", headers=auth("rm_a1")).text
    assert "RA1" in rm and "RA2" not in rm
    analyst = client.get(f"/maps/visits?week={WEEK}", headers=auth("analyst_a")).text
    assert "RA1" in analyst and "RA2" in analyst and "张*" in analyst and "张三" not in analyst
    assert client.get(f"/maps/visits?grid_id={data['grid_b']}", headers=auth("bm_a")).status_code == 404
    assert client.get("/maps/visits?week=2026-W99", headers=auth("bm_a")).status_code == 422
    index = client.get("/maps/", headers=auth("bm_a")).text
    assert 'href="/maps/visits"' in index


def test_dashboard_has_the_visits_layer_off(client, auth, data, flagged_visit):
    html = client.get(f"/maps/dashboard?grid_id={data['grid_a']}", headers=auth("bm_a")).text
    assert '"cover"' in html and "gm-cover-panel gm-off" in html and "visits per customer" in html


def test_page_defaults_to_the_grid_the_rms_hold(client, auth, data, engine):
    """A newer grid of the county that no RM holds yet (just built, not planned) does not become the default."""
    from sqlalchemy import text

    with engine.begin() as c:
        gid = c.execute(text("INSERT INTO grid (county_code, kind, resolution) VALUES ('640104', 'h3', 9)"
                             " RETURNING id")).scalar_one()
        c.execute(text("INSERT INTO cell (grid_id, cell_id, area_km2, geom) VALUES (:g, 'n1', 1,"
                       " ST_Multi(ST_Expand(ST_SetSRID(ST_MakePoint(106.3, 38.5), 4326), 0.001)))"), {"g": gid})
    assert gid > data["grid_a"]
    html = client.get(f"/maps/visits?week={WEEK}", headers=auth("analyst_a")).text
    assert f'<option value="{data["grid_a"]}" selected>' in html and f'<option value="{gid}">' in html


@pytest.fixture()
def run_cli(db_url, settings, monkeypatch):
    import json

    from click.testing import CliRunner

    from api.cli import _register, cli

    monkeypatch.setenv("GRIDMKT_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDMKT_SECRET_KEY", settings.auth.secret_key)
    _register()

    def run(args, as_json=True):
        r = CliRunner().invoke(cli, ["visits", *args, *(["--json"] if as_json else [])])
        assert r.exit_code == 0, r.output
        return json.loads(r.output) if as_json else r.output

    return run


def _audit_rows(engine) -> int:
    from sqlalchemy import text

    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM audit_log")).scalar_one()


@pytest.mark.parametrize("who", ["bm_a", "rm_a1", "rm_a2", "analyst_a"])
def test_cli_answers_as_the_routes(client, auth, data, engine, flagged_visit, run_cli, who):
    """``gridmkt visits flagged|coverage --as USER`` prints what the routes answer that user, field for field
    (scope in SQL, names masked for the role), and writes no audit row (read-only)."""
    before = _audit_rows(engine)
    flagged = client.get(f"/api/v1/visits/flagged?week={WEEK}", headers=auth(who)).json()
    assert run_cli(["flagged", "--week", WEEK, "--as", who]) == flagged
    q = f"grid_id={data['grid_a']}&week={WEEK}"
    cover = client.get(f"/api/v1/visits/coverage?{q}", headers=auth(who)).json()
    assert run_cli(["coverage", "--grid", str(data["grid_a"]), "--week", WEEK, "--as", who]) == cover
    assert [i["visit_id"] for i in flagged["items"]] == ([flagged_visit] if who in ("bm_a", "rm_a1", "analyst_a") else [])
    assert cover["customers"] == (2 if who == "analyst_a" else 1)
    assert _audit_rows(engine) == before  # routes' GETs and the commands alike write nothing


def test_cli_text_is_plain_and_scoped(data, flagged_visit, run_cli):
    out = run_cli(["flagged", "--week", WEEK, "--as", "bm_a"], as_json=False)
    assert "\x1b[" not in out
    [line] = [ln for ln in out.splitlines() if "RA1" in ln]  # one row, never wrapped
    assert "张三" in line and "far 8," in line and "short 2 min" in line
    out = run_cli(["coverage", "--grid", str(data["grid_a"]), "--week", "2020-W01", "--as", "rm_a1"], as_json=False)
    assert "\x1b[" not in out and "2019-10-08 – 2020-01-05 (90 days)" in out and "a2" not in out
    # Without --as the command line has no role: every cell of the grid.
    assert run_cli(["coverage", "--grid", str(data["grid_a"]), "--week", WEEK])["customers"] == 2


def test_cli_refuses_unknown_reader(data, run_cli):
    from click.testing import CliRunner

    from api.cli import cli

    r = CliRunner().invoke(cli, ["visits", "flagged", "--as", "nobody", "--json"])
    assert r.exit_code == 2 and "nobody" in r.output


def test_the_visits_layer_names_the_dates_it_counts(client, auth, data, flagged_visit):
    """One window wherever the layer is drawn (90 days to the week's end), and every legend says its dates:
    the dashboard (this week) and /maps/visits of the same week show the same dates; an old week its own."""
    old = client.get(f"/api/v1/visits/coverage?grid_id={data['grid_a']}&week=2020-W01", headers=auth("bm_a")).json()
    assert (old["first_day"], old["last_day"]) == ("2019-10-08", "2020-01-05")
    page = client.get(f"/maps/visits?week=2020-W01&grid_id={data['grid_a']}", headers=auth("bm_a")).text
    assert "2019-10-08 – 2020-01-05 (90天 days)" in page
    now = client.get(f"/api/v1/visits/coverage?grid_id={data['grid_a']}", headers=auth("bm_a")).json()
    label = f"{now['first_day']} – {now['last_day']} (90天 days)"
    assert now["last_day"] == dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat() or \
        now["last_day"] == (dt.datetime.now(ZoneInfo("Asia/Shanghai")) - dt.timedelta(seconds=5)).date().isoformat()
    visits_page = client.get(f"/maps/visits?grid_id={data['grid_a']}", headers=auth("bm_a")).text
    dashboard = client.get(f"/maps/dashboard?grid_id={data['grid_a']}", headers=auth("bm_a")).text
    assert visits_page.count(label) >= 2  # the legend and the line above the map
    assert dashboard.count(label) == 1 and "gm-cover-window" in dashboard


def test_page_defaults_to_the_grid_with_more_of_the_rms_cells(client, auth, engine):
    """An RM holding cells on several grids: the page opens on the grid where they hold the most cells, not
    the newest (seen on the demo: an RM's week opened on a village grid of one giant cell, beside 372 hexagons)."""
    from sqlalchemy import text

    from geodata import territories

    made = {}
    with engine.begin() as c:
        for name, n in (("many", 3), ("one", 1)):  # "one" is the newer grid
            gid = c.execute(text("INSERT INTO grid (county_code, kind, resolution) VALUES ('640104', 'h3', 9)"
                                 " RETURNING id")).scalar_one()
            ids = [f"{name}{i}" for i in range(n)]
            for i, cid in enumerate(ids):
                c.execute(text("INSERT INTO cell (grid_id, cell_id, area_km2, geom) VALUES (:g, :c, 1,"
                               " ST_Multi(ST_Expand(ST_SetSRID(ST_MakePoint(106.3 + :i * 0.01, 38.5), 4326), 0.001)))"),
                          {"g": gid, "c": cid, "i": i})
            territories.assign_cells(c, grid_id=gid, cell_ids=ids, rm_code="RA1", user="t", reason="t", force=True)
            made[name] = gid
    assert made["one"] > made["many"]
    html = client.get(f"/maps/visits?week={WEEK}", headers=auth("rm_a1")).text
    assert f'<option value="{made["many"]}" selected>' in html
