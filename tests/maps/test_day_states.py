"""The RM's day on the phone (390x844, Chromium, the real visits API), continued: where each stop stands after
a reload and offline, the map tiles of the RM's territory kept offline with their age, and check-ins the server
refuses (shown with its reason, discarded, or retried and recorded exactly once), one the server is too busy
for (sent again after the back-off) and one made after the session expired (kept until signed in again).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from geodata import territories
from maps.day import service_worker, tile_pattern
from tests.maps.conftest import CHROMIUM_ARGS, needs_chromium
from tests.maps.test_day_page import PASSWORD, Phone, _visits, app  # noqa: F401  (app: this module's own database)


def _count(engine, customer_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM visit WHERE customer_id = :c AND source = 'checkin'"),
                            {"c": customer_id}).scalar_one()


def _move(engine, grid_id: int, customer_id: str, rm_code: str) -> None:
    """Hand the customer's cell to another RM (and back): the customer leaves (rejoins) R1's scope."""
    with engine.begin() as conn:
        cell = conn.execute(text("SELECT cell_id FROM customer_cell WHERE grid_id = :g AND customer_id = :c"),
                            {"g": grid_id, "c": customer_id}).scalar_one()
        territories.assign_cells(conn, grid_id=grid_id, cell_ids=[cell], rm_code=rm_code, user="test")


def _today(phone: Phone) -> list[dict]:
    page = phone.page
    page.wait_for_selector("body.gd-ready, .gd-empty", timeout=60_000)
    if page.locator("body.gd-ready").count() == 0:
        page.get_by_text("生成今日计划 make today's plan").click()
    page.wait_for_selector("body.gd-ready .gd-stop", timeout=60_000)
    return [s for s in phone.plan()["stops"] if s["lat"] is not None]


def _route_points(phone: Phone) -> int:
    """How many points the route still ahead has on the map (0: none drawn)."""
    return phone.page.evaluate("""() => { let n = 0;
        window.gridmktDayApp.state.layer.eachLayer(l => { if (l.options.className === 'gd-route') n = l.getLatLngs().length; });
        return n; }""")


def test_service_worker_knows_the_tiles_it_keeps():
    sw = service_worker(tile_url="https://{s}.tiles.example/{z}/{x}/{y}.png")
    assert '"tiles":"^/tiles/cells/' in sw and '"maxTiles":' in sw
    basemap = re.search(r'"basemap":"([^"]+)"', sw).group(1).encode().decode("unicode_escape")
    assert re.match(basemap, "https://b.tiles.example/15/26848/12450.png")
    assert not re.match(basemap, "https://b.tiles.example/15/26848/12450.png.evil/x")
    assert '"basemap":null' in service_worker()
    assert tile_pattern("/base/{z}/{x}/{y}.png") == r"^https?://[^/]+/base/\d+/\d+/\d+\.png$"


@pytest.mark.browser
@needs_chromium
def test_done_stops_stay_done_after_a_reload_and_offline(server, engine):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            phone = Phone(browser, server, "rm1", (106.05, 38.05))
            page = phone.page
            stops = _today(phone)
            first, second = stops[0], stops[1]
            assert _route_points(phone) == len(stops) + 2  # start, every stop, back to the start
            # Stop 1 checked in and out, stop 2 checked in.
            phone.move_to(first["lon"], first["lat"], 12)
            phone.row(first["seq"]).locator(".gd-checkin").click()
            phone.row(first["seq"]).locator(".gd-dist").wait_for()
            phone.row(first["seq"]).locator("select").select_option("deal")
            phone.row(first["seq"]).locator(".gd-checkout-btn").click()
            page.wait_for_selector(f"#gd-stop-{first['seq']}[data-state='done']")
            phone.move_to(second["lon"], second["lat"], 12)
            phone.row(second["seq"]).locator(".gd-checkin").click()
            phone.row(second["seq"]).locator(".gd-dist").wait_for()
            page.wait_for_selector("#gd-outbox[data-count='0']")

            # A reload asks the server again: the plan itself now says where each stop stands.
            page.reload()
            page.wait_for_selector("body.gd-ready .gd-stop")
            server_stops = {s["customer_id"]: s for s in phone.plan()["stops"]}
            assert server_stops[first["customer_id"]]["state"] == "done"
            assert server_stops[first["customer_id"]]["outcome"] == "deal"
            assert server_stops[second["customer_id"]]["state"] == "checked_in"
            assert page.locator("body").get_attribute("data-source") == "network"
            done = phone.row(first["seq"])
            assert done.get_attribute("data-state") == "done"
            assert "已签退 checked out" in done.inner_text() and "已成交 deal" in done.inner_text()
            assert done.locator(".gd-checkin, .gd-checkout, .gd-nav").count() == 0  # nothing left to do there
            assert phone.row(second["seq"]).get_attribute("data-state") == "in"
            assert phone.row(second["seq"]).locator(".gd-checkout").count() == 1
            assert page.locator(".gd-pin.gd-done").all_inner_texts() == ["✓"]
            # The route ahead starts at stop 2 (checked in last) and leaves stops 1 and 2 out.
            assert _route_points(phone) == len(stops) - 2 + 2
            assert page.locator("path.gd-route-all").count() == 1
            assert "完成 done 1" in page.locator("#gd-summary").inner_text()
            phone.shot("day_done_reload_390x844")

            # The service worker kept the territory's tiles; offline, the page shows the saved plan, the
            # stops' state and the cells from the cache, and says how old they are.
            page.wait_for_function("window.gridmktDayApp.state.warmed && window.gridmktDayApp.state.warmed.cached > 0",
                                   timeout=60_000)
            warmed = page.evaluate("window.gridmktDayApp.state.warmed")
            assert warmed["failed"] == 0 and warmed["cached"] <= 1500
            phone.ctx.set_offline(True)
            page.reload()
            page.wait_for_selector("body.gd-ready .gd-stop")
            assert page.locator("body").get_attribute("data-source") == "cache"
            notice = page.locator("#gd-notice").inner_text()
            assert "离线" in notice and "saved plan" in notice and "map tiles" in notice, notice
            assert re.search(r"just now|min ago", notice), notice
            assert phone.row(first["seq"]).get_attribute("data-state") == "done"
            assert phone.row(second["seq"]).get_attribute("data-state") == "in"
            page.wait_for_function("window.gridmktDayApp.state.tiles.loaded > 0", timeout=30_000)
            assert page.evaluate("window.gridmktDayApp.state.tiles.failed") == 0
            phone.shot("day_offline_tiles_390x844")
            phone.ctx.set_offline(False)
            assert phone.outside == [] and phone.errors == []
        finally:
            browser.close()


@pytest.mark.browser
@needs_chromium
def test_a_refused_checkin_is_shown_discarded_or_retried_once(server, engine, map_grid):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            phone = Phone(browser, server, "rm1", (106.05, 38.05))
            page = phone.page
            stops = [s for s in _today(phone) if s["state"] == "planned"]
            gone, back = stops[-1], stops[-2]
            # The customer's cell went to R3 after the plan was made: the server refuses the check-in (404).
            _move(engine, map_grid, gone["customer_id"], "R3")
            phone.move_to(gone["lon"], gone["lat"], 10)
            phone.row(gone["seq"]).locator(".gd-checkin").click()
            page.wait_for_selector("#gd-refused .gd-refused-item")
            why = page.locator("#gd-refused").inner_text()
            assert "does not exist" in why and "HTTP 404" in why and gone["customer_id"] in why, why
            assert page.locator("#gd-outbox").get_attribute("data-refused") == "1"
            assert phone.row(gone["seq"]).get_attribute("data-state") == "refused"
            page.locator("#gd-refused").scroll_into_view_if_needed()
            phone.shot("day_refused_390x844")
            # 放弃 discard: the entry leaves the phone, the stop is planned again, nothing was recorded.
            page.locator("#gd-refused .gd-discard").click()
            page.wait_for_selector("#gd-refused", state="hidden")
            assert phone.row(gone["seq"]).get_attribute("data-state") == "planned"
            assert page.locator("#gd-outbox").get_attribute("data-refused") == "0"
            assert page.evaluate("window.gridmktDayApp.outbox.all()") == []
            assert _count(engine, gone["customer_id"]) == 0

            # Refused, then the cell comes back to R1: 重试 retry sends the same key once more, recorded once.
            _move(engine, map_grid, back["customer_id"], "R3")
            phone.move_to(back["lon"], back["lat"], 10)
            phone.row(back["seq"]).locator(".gd-checkin").click()
            page.wait_for_selector("#gd-refused .gd-refused-item")
            key = phone.visit(back["customer_id"])["key"]
            _move(engine, map_grid, back["customer_id"], "R1")
            page.locator("#gd-refused .gd-retry").click()
            page.wait_for_selector("#gd-refused", state="hidden")
            phone.row(back["seq"]).locator(".gd-dist").wait_for()
            page.wait_for_selector("#gd-outbox[data-count='0']")
            assert phone.checkins.count(key) == 2  # refused once, accepted once: the same key both times
            assert len(_visits(engine, key)) == 1 and _count(engine, back["customer_id"]) == 1
            page.evaluate("window.gridmktDayApp.flush()")  # nothing left to send: nothing sent again
            assert phone.checkins.count(key) == 2
            phone.row(back["seq"]).scroll_into_view_if_needed()
            phone.shot("day_retried_390x844")
            _move(engine, map_grid, gone["customer_id"], "R1")

            # The server is busy (503): the entry stays queued, not refused, and goes again after its back-off.
            busy: list[str] = []

            def once_busy(route):
                if busy:
                    route.fallback()
                    return
                busy.append(route.request.post_data_json["idempotency_key"])
                route.fulfill(status=503, content_type="application/json", body='{"detail": "busy"}')

            page.route("**/day/checkins", once_busy)
            soon = stops[-4]
            phone.move_to(soon["lon"], soon["lat"], 10)
            phone.row(soon["seq"]).locator(".gd-checkin").click()
            page.wait_for_function("window.gridmktDayApp.state.retries > 0")
            assert page.locator("#gd-outbox").get_attribute("data-refused") == "0"
            assert phone.row(soon["seq"]).get_attribute("data-state") == "queued"
            page.wait_for_selector("#gd-outbox[data-count='0']", timeout=30_000)
            assert phone.checkins.count(busy[0]) == 1 and len(_visits(engine, busy[0])) == 1
            page.unroute("**/day/checkins", once_busy)

            # Signed out meanwhile (401): the entry stays on the phone, the page asks to sign in again; once
            # signed in, the same entry goes, once.
            late = stops[-3]
            phone.ctx.clear_cookies()
            phone.move_to(late["lon"], late["lat"], 10)
            phone.row(late["seq"]).locator(".gd-checkin").click()
            page.wait_for_selector("#gd-notice a[href^='/maps/login']")
            assert "登录已过期" in page.locator("#gd-notice").inner_text()
            # The notice is written inside the send; the outbox count only after it (flush, then renderOutbox).
            page.wait_for_selector("#gd-outbox[data-count='1']")
            assert phone.row(late["seq"]).get_attribute("data-state") == "queued"
            key = phone.visit(late["customer_id"])["key"]
            assert _visits(engine, key) == []
            r = page.request.post(f"{server}/api/v1/auth/session", form={"username": "rm1", "password": PASSWORD})
            assert r.ok
            page.evaluate("window.gridmktDayApp.state.retries = 0; window.gridmktDayApp.flush()")
            page.wait_for_selector("#gd-outbox[data-count='0']")
            assert len(_visits(engine, key)) == 1 and phone.row(late["seq"]).get_attribute("data-state") == "in"
            assert phone.outside == [] and phone.errors == []
        finally:
            browser.close()
