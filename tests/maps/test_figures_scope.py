"""Summary figures are counted within the reader's scope, numerator and denominator alike (issue 15 §1).

A branch manager saw 入格率 4.8 %: the customers placed in their cells over every customer of the county.
The square county (tests/maps/conftest.py): 48 customers in 16 village cells, R1 owns 8 cells (24
customers), R2 4 (12), R3 4 (12); two more customers have no location and no village (unplaced).
Users of every role: the API summary and the pages they may open show the same figures.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.auth import hash_password
from api.settings import AuthSettings, DatabaseSettings, Settings
from geodata import users
from tests.maps.conftest import signed_in_client

PASSWORD = "figures 2026"
# username -> (role, legal entity, rm, outlets); outlet O2 has R3 only
ROLES = {"admin": ("admin", None, None, []), "planner": ("planner", 1, None, []), "analyst": ("analyst", 1, None, []),
         "bm2": ("branch_manager", 1, None, ["O2"]), "rm1": ("rm", 1, "R1", [])}
COUNTY_WIDE = {"cells": 16, "customers": 48, "unplaced": 2, "scope_customers": 50, "coverage": 0.96, "rms": 3}
EXPECTED = {
    "admin": COUNTY_WIDE, "planner": COUNTY_WIDE, "analyst": COUNTY_WIDE,
    "bm2": {"cells": 4, "customers": 12, "unplaced": 0, "scope_customers": 12, "coverage": 1.0, "rms": 1},
    "rm1": {"cells": 8, "customers": 24, "unplaced": 0, "scope_customers": 24, "coverage": 1.0, "rms": 1},
}


@pytest.fixture(scope="module")
def app(engine, db_url, map_grid, tmp_path_factory):
    pw = hash_password(PASSWORD)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customer (customer_id, county_code, legal_entity_id) VALUES "
                          "('CX1', '640121', 1), ('CX2', '640121', 1)"))
        conn.execute(text("UPDATE customer SET legal_entity_id = 1"))
        for name, (role, le, rm, outlets) in ROLES.items():
            users.create_user(conn, username=name, password_hash=pw, role=role, legal_entity_id=le, rm_code=rm,
                              outlet_codes=outlets)
    home = tmp_path_factory.mktemp("figures")
    app = create_app(Settings(db=DatabaseSettings(url=db_url, home=home), auth=AuthSettings(secret_key="f" * 32)))
    with TestClient(app):  # started: signing in below needs the app's engine
        yield app


def _api(app, username: str, path: str) -> dict:
    """GET an API path with ``username``'s bearer token (the API takes tokens, the pages a session)."""
    c = TestClient(app)
    token = c.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD}).json()["access_token"]
    r = c.get(path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


def _summary_rows(html: str) -> dict[str, str]:
    """The dashboard's summary panel as label -> value (the panel is embedded as escaped HTML)."""
    html = html.replace("<\\/", "</")
    return dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", html))


@pytest.mark.parametrize("username", list(ROLES))
def test_api_summary_is_within_the_reader_s_scope(app, map_grid, username):
    got = _api(app, username, f"/api/v1/grids/{map_grid}/summary")
    assert {k: got[k] for k in EXPECTED[username]} == EXPECTED[username]
    assert got["customers"] <= got["scope_customers"] and got["households"] > 0


@pytest.mark.parametrize("username", ["admin", "planner", "analyst", "bm2"])
def test_dashboard_shows_the_api_s_figures(app, map_grid, username):
    want = EXPECTED[username]
    api = _api(app, username, f"/api/v1/grids/{map_grid}/summary")
    with signed_in_client(app, username, PASSWORD) as c:
        page = c.get(f"/maps/dashboard?grid_id={map_grid}")
    assert page.status_code == 200
    rows = _summary_rows(page.text)
    share = f"{want['coverage']:.1%} ({want['customers']} / {want['scope_customers']})"
    assert rows["入格率 coverage"] == share  # bm2: 100.0% (12 / 12), no longer 24.0% (12 of the county's 50)
    assert rows["网格 cells"] == str(api["cells"]) and rows["入格客户 customers in cells"] == str(api["customers"])
    assert rows["客户经理 RMs"] == str(api["rms"])
    assert rows["户数 households"] == f"{round(api['households']):,}"
    assert ("未入格客户 customers not placed" in rows) == bool(want["unplaced"])


def test_rm_page_and_province_agree_with_the_api(app, map_grid):
    api = _api(app, "rm1", f"/api/v1/grids/{map_grid}/summary")
    with signed_in_client(app, "rm1", PASSWORD) as c:
        page = c.get(f"/maps/rm?grid_id={map_grid}")
        assert c.get(f"/maps/dashboard?grid_id={map_grid}").status_code == 403
    rows = _summary_rows(page.text)
    assert rows["网格 cells"] == str(api["cells"]) == "8" and rows["客户 customers"] == str(api["customers"]) == "24"
    for username in ("planner", "bm2"):
        with signed_in_client(app, username, PASSWORD) as c:
            province = c.get("/maps/province?kind=village").text.replace("<\\/", "</").replace('\\"', '"')
        coverage = re.search(r'<tr data-grid="\d+">.*?<td class="gm-coverage"[^>]*>([^<]+)</td>', province).group(1)
        assert coverage == f"{EXPECTED[username]['coverage']:.1%}"


# --- No-potential cells (issue 15 §2): counted apart from the blank ones, within the reader's scope. ---
NO_POTENTIAL = {"640121100001": "R1", "640121100013": "R3", "640121100014": "R3"}
NO_POTENTIAL_SEEN = {"admin": 3, "planner": 3, "analyst": 3, "bm2": 2, "rm1": 1}


@pytest.fixture()
def no_potential_cells(engine, map_grid):
    """Three cells of the latest gap run classed no-potential (R1's first, two of R3's), restored afterwards."""
    run = "(SELECT max(id) FROM gap_run WHERE grid_id = :g)"
    with engine.begin() as conn:
        before = dict(conn.execute(text(f"SELECT cell_id, gap_class FROM gap_score WHERE gap_run_id = {run} "
                                        "AND cell_id = ANY(:c)"), {"g": map_grid, "c": list(NO_POTENTIAL)}).all())
        conn.execute(text(f"UPDATE gap_score SET gap_class = 'no-potential' WHERE gap_run_id = {run} "
                          "AND cell_id = ANY(:c)"), {"g": map_grid, "c": list(NO_POTENTIAL)})
    yield
    with engine.begin() as conn:
        for cell, cls in before.items():
            conn.execute(text(f"UPDATE gap_score SET gap_class = :k WHERE gap_run_id = {run} AND cell_id = :c"),
                         {"g": map_grid, "c": cell, "k": cls})


@pytest.mark.parametrize("username", list(ROLES))
def test_no_potential_cells_are_counted_within_the_reader_s_scope(app, map_grid, no_potential_cells, username):
    got = _api(app, username, f"/api/v1/grids/{map_grid}/summary")
    assert got["no_potential_cells"] == NO_POTENTIAL_SEEN[username]
    assert got["no_potential_cells"] + got["blank_cells"] <= got["cells"]
    if username == "rm1":
        return  # an RM has no dashboard (their own map instead)
    with signed_in_client(app, username, PASSWORD) as c:
        page = c.get(f"/maps/dashboard?grid_id={map_grid}")
    rows = _summary_rows(page.text)
    assert rows["无潜力网格 no-potential cells"] == str(NO_POTENTIAL_SEEN[username])
    assert rows["空白网格 blank cells"] == str(got["blank_cells"])
    # the legend says what the class is, in both languages
    assert "无潜力 no potential: 少于15户且无客户" in page.text and "fewer than 15 households and no customers" in page.text
