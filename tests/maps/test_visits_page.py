"""The branch manager's visits page (/maps/visits) and the visits layer, served, in Chromium at 1366×900 and 390×844.

The square county (tests/maps/conftest.py): R1 (cells 村1–8) and R2 (村9–12) of outlet O1, bm1's; R3 (村13–16)
of O2. This week R1 planned four stops today and visited two of them, plus four more customers (one check-in
far from the customer, one visit two minutes long); R2 visited two customers of 村9, one twice; R3 one.
Screenshots go to artifacts/screenshots/ (visits-*.png).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.app import create_app
from api.auth import hash_password
from api.settings import AuthSettings, DatabaseSettings, Settings
from geodata import users
from tests.maps.conftest import SHOTS, needs_chromium, signed_in_client, signed_in_page

PASSWORD = "visits page 2026"
# (customer, rm, minutes before T, far, short): T is five minutes ago, so every visit is in this week's today.
VISITS = (("C0010", "R1", 0, False, False), ("C0020", "R1", 1, False, False), ("C0030", "R1", 2, True, False),
          ("C0031", "R1", 3, False, False), ("C0050", "R1", 4, False, True), ("C0051", "R1", 5, False, False),
          ("C0090", "R2", 0, False, False), ("C0091", "R2", 1, False, False), ("C0091", "R2", 2, False, False),
          ("C0130", "R3", 0, False, False))
PLANNED = ("C0010", "C0020", "C0040", "C0060")  # R1's route today: the first two visited
MANY = 68  # bm9's RMs
MANY_FLAGS = (("Q047", 0, 2), ("Q013", 3, 0), ("Q066", 1, 0))  # (rm, far visits, short visits)


@pytest.fixture(scope="module")
def app(engine, db_url, map_grid, tmp_path_factory):
    pw = hash_password(PASSWORD)
    with engine.begin() as conn:
        x = conn.execute
        x(text("UPDATE customer SET legal_entity_id = 1 WHERE legal_entity_id IS NULL"))
        for name, role, rm, outlets in (("bm1", "branch_manager", None, ["O1"]), ("rm1", "rm", "R1", []),
                                        ("analyst", "analyst", None, [])):
            users.create_user(conn, username=name, password_hash=pw, role=role, legal_entity_id=1, rm_code=rm,
                              outlet_codes=outlets)
        t = x(text("SELECT now() - interval '5 minutes'")).scalar_one()
        for cid, rm, back, far, short in VISITS:
            x(text("INSERT INTO visit (customer_id, rm_code, visited_at, source, kind, checkin_at, received_at,"
                   " checkin_geom, accuracy_m, distance_m, place_source, flag_far, flag_short, checkout_at,"
                   " idempotency_key) SELECT :c, :rm, :t - make_interval(mins => :b), 'checkin', '面访',"
                   " :t - make_interval(mins => :b), :t, geom, 20, CASE WHEN :far THEN 1250 ELSE 12 END, 'customer',"
                   " :far, :short, :t - make_interval(mins => :b) + make_interval(mins => CASE WHEN :short THEN 2"
                   " ELSE 25 END), gen_random_uuid() FROM customer WHERE customer_id = :c"),
              {"c": cid, "rm": rm, "t": t, "b": back, "far": far, "short": short})
        plan = x(text("INSERT INTO visit_plan (rm_code, plan_date, start_source, start_geom, weights, solver,"
                      " created_by, length_m) VALUES ('R1', (CAST(:t AS timestamptz) AT TIME ZONE 'Asia/Shanghai')::date,"
                      " 'outlet', ST_SetSRID(ST_MakePoint(106.05, 38.05), 4326), '{}', 'pyvrp', 'test', 9000)"
                      " RETURNING plan_id"), {"t": t}).scalar_one()
        for seq, cid in enumerate(PLANNED, 1):
            x(text("INSERT INTO plan_stop (plan_id, customer_id, rank, kind, reasons, place_source, geom, service_min,"
                   " route_seq) SELECT :p, :c, :s, 'proposed', '{overdue_visit}', 'customer', geom, 20, :s"
                   " FROM customer WHERE customer_id = :c"), {"p": plan, "c": cid, "s": seq})
        # Another bank's branch with MANY RMs (Q001–Q068 of O9, bm9's): flagged visits by three of them, clean
        # ones by every fifth; their customers are in no cell, so bank 1's figures above stay as they are.
        le2 = x(text("INSERT INTO legal_entity (code, name) VALUES ('LE2', '另一家银行') RETURNING id")).scalar_one()
        x(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) VALUES ('O9', '大支行', :le,"
               " '640121', ST_SetSRID(ST_MakePoint(106.2, 38.2), 4326))"), {"le": le2})
        x(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) SELECT 'Q' || lpad(n::text, 3, '0'),"
               " '经理' || n, :le, 'O9' FROM generate_series(1, :n) n"), {"le": le2, "n": MANY})
        users.create_user(conn, username="bm9", password_hash=pw, role="branch_manager", legal_entity_id=le2,
                          outlet_codes=["O9"])
        for rm, far, short in [*(r for r in MANY_FLAGS), *((f"Q{n:03d}", 0, 0) for n in range(5, MANY + 1, 5))]:
            for i in range(max(far + short, 1)):
                x(text("INSERT INTO visit (customer_id, rm_code, visited_at, source, kind, flag_far, flag_short,"
                       " idempotency_key) VALUES (:c, :rm, :t, 'checkin', '面访', :far, :short, gen_random_uuid())"),
                  {"c": f"QC{rm}{i}", "rm": rm, "t": t, "far": i < far, "short": far <= i < far + short})
    home = tmp_path_factory.mktemp("visits")
    return create_app(Settings(db=DatabaseSettings(url=db_url, home=home), auth=AuthSettings(secret_key="k" * 32)))


def _api(c, url: str) -> dict:
    """A JSON route with the session's token as a bearer token (the API takes no cookie)."""
    r = c.get(url, headers={"Authorization": f"Bearer {c.cookies['gridmkt_token']}"})
    assert r.status_code == 200, r.text
    return r.json()


def _report(c) -> dict:
    return {r["rm_code"]: r for r in _api(c, "/api/v1/visits/report")["items"]}


def test_report_and_cover_for_the_branch_manager(app, map_grid):
    """bm1 (O1) sees R1 and R2, never R3; the figures are R1's and R2's, each share with both its numbers."""
    with signed_in_client(app, "bm1", PASSWORD) as c:
        rows = _report(c)
        assert set(rows) == {"R1", "R2"}
        r1 = rows["R1"]
        assert (r1["planned"], r1["planned_done"], r1["visits"], r1["flag_far"], r1["flag_short"]) == (4, 2, 6, 1, 1)
        assert (r1["territory_customers"], r1["customers_visited"]) == (24, 6)  # 8 cells × 3 customers
        assert (rows["R2"]["territory_customers"], rows["R2"]["customers_visited"], rows["R2"]["visits"]) == (12, 2, 3)
        cover = _api(c, f"/api/v1/visits/coverage?grid_id={map_grid}")
        assert len(cover["items"]) == 12 and (cover["customers"], cover["customers_visited"], cover["visits"]) == (36, 8, 9)
        by_cell = {i["cell_id"]: i for i in cover["items"]}
        assert by_cell["640121100009"]["visits"] == 3 and by_cell["640121100009"]["customers_visited"] == 2
        assert by_cell["640121100004"]["visits"] == 0 and by_cell["640121100004"]["visits_per_customer"] == 0.0
        page = c.get("/maps/visits").text
        assert "R3" not in page and "王五" not in page
        assert "2 / 4 · 50%" in page and "6 / 24 · 25%" in page and "8 / 36 · 22%" in page
    with signed_in_client(app, "rm1", PASSWORD) as c:
        assert set(_report(c)) == {"R1"}
        assert _api(c, f"/api/v1/visits/coverage?grid_id={map_grid}")["customers"] == 24
    with signed_in_client(app, "analyst", PASSWORD) as c:
        rows = _report(c)
        assert set(rows) == {"R1", "R2", "R3"} and rows["R1"]["rm_name"] == "张*"
        assert _api(c, f"/api/v1/visits/coverage?grid_id={map_grid}")["customers"] == 48


def _layer_toggle(page, name: str) -> None:
    """Open the layer control and click the overlay named ``name``."""
    page.hover(".leaflet-control-layers")
    page.locator(".leaflet-control-layers-overlays label", has_text=name).click()
    page.wait_for_timeout(300)


def _cover_paths(page) -> int:
    # The layer's cells are the filled paths with the class colours (maps/cover.py CLASSES) or the dashed outline.
    return page.evaluate("""() => [...document.querySelectorAll('path.leaflet-interactive')].filter(p =>
        ['#d73027', '#fc8d59', '#fee08b', '#91cf60', '#1a9850'].includes(p.getAttribute('fill'))).length""")


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("size", [(1366, 900), (390, 844)])
def test_visits_page_renders_flags_and_toggles_the_layer(server, size):
    w, h = size
    with signed_in_page(server, "/maps/visits", "bm1", PASSWORD, viewport=size) as seen:
        page = seen.page
        page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0")
        page.wait_for_timeout(500)
        page.wait_for_function("document.querySelector('table[data-rm-table]').getAttribute('data-shown') === 'all'")
        rows = page.locator("table[data-rm-table] tbody tr, table[data-rm-table] tfoot tr")
        assert rows.count() == 3  # R1, R2 and the total (two RMs: no find box, no pages)
        assert page.locator(".gv-find").count() == 0
        flags = page.locator("table.gv-rms:not(.gv-flagged) .gv-flag")
        assert flags.count() >= 2 and all(flags.nth(i).is_visible() for i in range(flags.count()))
        assert page.locator("table.gv-flagged tbody tr").count() == 2
        assert page.locator("text=R3").count() == 0
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"visits-page-{w}.png"), full_page=True)
        legend = page.locator(".gm-cover-legend")
        page.locator(".gv-map").scroll_into_view_if_needed()
        if w < 600:  # a phone's panels start collapsed
            page.locator(".gm-cover-panel .gm-toggle").click()
        assert legend.is_visible()
        before = _cover_paths(page)
        assert before == 12  # 村1–12 of bm1's RMs, each coloured by visits per customer
        page.screenshot(path=str(SHOTS / f"visits-map-{w}.png"))
        _layer_toggle(page, "走访覆盖")
        assert _cover_paths(page) == 0 and not legend.is_visible()
        _layer_toggle(page, "走访覆盖")
        assert _cover_paths(page) == before and legend.is_visible()
        # The RM's name leads to their map.
        href = page.locator("table.gv-rms a", has_text="R1").first.get_attribute("href")
        assert href.startswith("/maps/rm?grid_id=") and href.endswith("rm_code=R1")
        assert seen.outside == [] and seen.failed == []


@pytest.mark.browser
@needs_chromium
def test_dashboard_visits_layer_starts_off_and_toggles_on(server, map_grid):
    with signed_in_page(server, f"/maps/dashboard?grid_id={map_grid}", "bm1", PASSWORD, viewport=(1366, 900)) as seen:
        page = seen.page
        page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0")
        page.wait_for_timeout(500)
        legend = page.locator(".gm-cover-legend")
        assert _cover_paths(page) == 0 and not legend.is_visible()
        _layer_toggle(page, "走访覆盖")
        assert _cover_paths(page) == 12 and legend.is_visible()
        # Switched on, its cells stay under the territory outlines (drawn after them, so on top).
        assert page.evaluate("""() => {
            const ps = [...document.querySelectorAll('.leaflet-overlay-pane path')];
            const cover = ps.map((p, i) => ['#d73027', '#fc8d59', '#fee08b', '#91cf60', '#1a9850']
                .includes(p.getAttribute('fill')) ? i : -1).filter(i => i >= 0);
            const outline = ps.map((p, i) => p.getAttribute('stroke-width') === '3.5' ? i : -1).filter(i => i >= 0);
            return outline.length > 0 && Math.min(...outline) > Math.max(...cover);
        }""")
        page.screenshot(path=str(SHOTS / "visits-dashboard-layer-1366.png"))
        assert seen.outside == [] and seen.failed == []


SHOWN = "document.querySelector('table[data-rm-table]').getAttribute('data-shown') === '{}'"
ROWS = "[...document.querySelectorAll('table[data-rm-table] tbody tr:not([hidden])')].map(r => r.dataset.code)"


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_many_rms_on_a_phone_find_fold_and_page(server):
    """68 RMs on a 390×844 phone: ten folded cards a page, flags first (most first), a search box and pages;
    the RM section stays within two and a half screens (it was one card of seven rows per RM, 68 of them)."""
    from playwright.sync_api import expect

    with signed_in_page(server, "/maps/visits", "bm9", PASSWORD, viewport=(390, 844)) as seen:
        page = seen.page
        page.wait_for_function(SHOWN.format(f"1-10/{MANY}/{MANY}"))
        codes = page.evaluate(ROWS)
        assert len(codes) == 10 and codes[:3] == ["Q013", "Q047", "Q066"]  # 3 flags, 2, 1
        section = page.locator("section", has=page.locator("table[data-rm-table]"))
        assert section.bounding_box()["height"] < 2.5 * 844
        first = page.locator("table[data-rm-table] tbody tr:not([hidden])").first
        expect(first.locator(".gv-flag").first).to_be_visible()
        expect(first.locator("td.gv-detail").first).to_be_hidden()  # folded: RM, flags, coverage, score
        first.locator(".gv-more").click()
        expect(first.locator("td.gv-detail").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "visits-many-rms-390.png"), full_page=True)
        page.locator(".gv-pager .gv-next").click()
        page.wait_for_function(SHOWN.format(f"11-20/{MANY}/{MANY}"))
        assert not set(page.evaluate(ROWS)) & set(codes)
        page.fill(".gv-find", "q06")
        page.wait_for_function(SHOWN.format(f"1-9/9/{MANY}"))  # Q060–Q069 of 68: Q060–Q068
        assert page.evaluate(ROWS)[0] == "Q066" and sorted(page.evaluate(ROWS)) == [f"Q06{i}" for i in range(9)]
        page.select_option(".gv-sort", "code")
        page.wait_for_function(ROWS + "[0] === 'Q060'")
        expect(page.locator(".gv-range").first).to_have_text(f"1–9 / 9 人 RMs (共 of {MANY})")
        assert seen.outside == [] and seen.failed == []
