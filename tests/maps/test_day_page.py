"""The RM's day on the phone (/maps/rm/{rm_code}/day): who may open it, its service worker, and in Chromium at
390x844 against the real visits API: the route draws with numbered stops, a check-in near a stop is accepted
and one far away flagged, and a check-in made without network is queued and recorded exactly once when the
network returns (also when the first answer is lost on the way back).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.auth import hash_password
from api.settings import AuthSettings, DatabaseSettings, Settings
from geodata import users
from maps.day import sw_assets
from tests.maps.conftest import CHROMIUM_ARGS, SHOTS, needs_chromium, signed_in_client

PASSWORD = "day page 2026"
CDN = ("cdn.", "unpkg", "jsdelivr", "cdnjs", "googleapis", "bootstrapcdn")


@pytest.fixture(scope="module")
def app(engine, db_url, map_grid, tmp_path_factory):
    pw = hash_password(PASSWORD)
    with engine.begin() as conn:
        # The square county's customers are legal entity 1's (an RM's scope needs it; the fixture leaves it empty).
        conn.execute(text("UPDATE customer SET legal_entity_id = 1 WHERE legal_entity_id IS NULL"))
        for name, role, rm, outlets in (("rm1", "rm", "R1", []), ("rm3", "rm", "R3", []),
                                        ("bm1", "branch_manager", None, ["O1"]), ("planner", "planner", None, [])):
            users.create_user(conn, username=name, password_hash=pw, role=role, legal_entity_id=1, rm_code=rm,
                              outlet_codes=outlets)
    home = tmp_path_factory.mktemp("day")
    return create_app(Settings(db=DatabaseSettings(url=db_url, home=home), auth=AuthSettings(secret_key="k" * 32)))


def test_no_session_goes_to_sign_in(app):
    with TestClient(app) as c:
        r = c.get("/maps/rm/R1/day", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/maps/login?next=%2Fmaps%2Frm%2FR1%2Fday"


def test_an_rm_opens_only_their_own_day(app):
    with signed_in_client(app, "rm1", PASSWORD) as c:
        page = c.get("/maps/rm/R1/day")
        assert page.status_code == 200 and page.headers["cache-control"] == "private, no-store"
        assert '"rmCode":"R1"' in page.text and "/maps/static/gridmkt-day.js" in page.text
        assert not any(s in page.text for s in CDN)
        assert c.get("/maps/rm/R3/day").status_code == 404
        assert c.get("/maps/rm/NOPE/day").status_code == 404
        assert "/maps/rm/R1/day" in c.get("/maps/").text  # the index links the RM to their day
    for who in ("bm1", "planner"):  # check-ins are the RM's own; managers read the visits report
        with signed_in_client(app, who, PASSWORD) as c:
            assert c.get("/maps/rm/R1/day").status_code == 403


def test_service_worker_caches_only_files_the_server_has(app):
    with TestClient(app) as c:
        sw = c.get("/maps/rm/sw.js")
        assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
        assert sw.headers["cache-control"] == "no-cache"
        assets = re.search(r'"assets":(\[[^\]]*\])', sw.text).group(1)
        for url in sw_assets("/maps/static"):
            assert f'"{url}"' in assets
            assert c.get(url).status_code == 200, url  # install (cache.addAll) fails on any one missing
        assert '"plan":"^/maps/rm/' in sw.text


# ---------- in Chromium, against the real visits API ----------

class Phone:
    """A signed-in 390x844 Chromium context with geolocation allowed, kept to the test server."""

    def __init__(self, browser, server: str, username: str, position: tuple[float, float], tz: str = "Asia/Shanghai"):
        self.server = server
        # The phone is where the bank is (GRIDMKT_TIMEZONE, Asia/Shanghai) unless a test says otherwise.
        self.ctx = browser.new_context(viewport={"width": 390, "height": 844}, permissions=["geolocation"],
                                       timezone_id=tz, locale="zh-CN",
                                       geolocation={"longitude": position[0], "latitude": position[1], "accuracy": 15})
        self.outside, self.errors, self.checkins = [], [], []
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{server}/maps/rm/R1/day")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/maps/rm/R1/day")
        self.lose_next_answer = False

    def _route(self, route):
        url = route.request.url
        if not url.startswith(self.server):
            self.outside.append(url)
            route.abort()
        elif url.endswith("/day/checkins") and route.request.method == "POST":
            self.checkins.append(route.request.post_data_json["idempotency_key"])
            if self.lose_next_answer:
                # The server gets the check-in and stores it; its answer never reaches the phone.
                self.lose_next_answer = False
                route.fetch()
                route.abort("connectionreset")
            else:
                route.continue_()
        else:
            route.continue_()

    def move_to(self, lon: float, lat: float, accuracy: float = 15):
        self.ctx.set_geolocation({"longitude": lon, "latitude": lat, "accuracy": accuracy})

    def open_plan(self):
        """Wait for today's plan on the page, making it first when there is none (the module's first test
        makes R1's plan, unless a later test runs alone)."""
        make = self.page.get_by_text("生成今日计划 make today's plan")
        self.page.locator("body.gd-ready .gd-stop").or_(make).first.wait_for(timeout=60_000)
        if make.count():
            make.click()
        self.page.wait_for_selector("body.gd-ready .gd-stop", timeout=60_000)

    def plan(self) -> dict:
        return self.page.evaluate("window.gridmktDayApp.state.plan")

    def visit(self, customer_id: str) -> dict:
        return self.page.evaluate("(c) => window.gridmktDayApp.state.visits[c]", customer_id)

    def row(self, seq: int):
        return self.page.locator(f"#gd-stop-{seq}")

    def shot(self, name: str):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(400)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))


def _visits(engine, key: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT customer_id, flag_far, flag_short, distance_m, checkout_at, note, outcome FROM visit "
            "WHERE idempotency_key = :k"), {"k": key}).mappings()]


@pytest.mark.browser
@needs_chromium
def test_rm_day_on_the_phone_checkins_and_offline_queue(server, engine):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            phone = Phone(browser, server, "rm1", (106.05, 38.05))
            page = phone.page
            # No plan yet: the RM makes today's from the page.
            page.get_by_text("生成今日计划 make today's plan").click()
            page.wait_for_selector("body.gd-ready .gd-stop", timeout=60_000)
            plan = phone.plan()
            stops = [s for s in plan["stops"] if s["lat"] is not None]
            assert plan["rm_code"] == "R1" and len(stops) >= 3
            # The route, the start and one numbered pin per stop, in route order.
            assert page.locator("path.gd-route").count() == 1
            assert page.locator(".gd-pin.gd-start").count() == 1
            pins = page.locator(".gd-pin:not(.gd-start)").all_inner_texts()
            assert sorted(int(t) for t in pins) == [s["seq"] for s in stops]
            phone.shot("day_plan_390x844")

            # Tapping a row opens that customer's popup with the tag and lead links.
            first, second, third = stops[:3]
            phone.row(first["seq"]).locator(".gd-head").click()
            popup = page.locator(".leaflet-popup-content")
            popup.wait_for()
            assert first["customer_id"] in popup.inner_text()
            hrefs = [a.get_attribute("href") for a in popup.locator("a.gm-btn").all()]
            assert hrefs == [first["tag_url"], first["lead_url"]]
            nav = phone.row(first["seq"]).locator("a.gd-nav").get_attribute("href")
            assert nav == first["geo_uri"] and nav.startswith("geo:")
            assert phone.row(first["seq"]).locator("a.gd-amap").get_attribute("href") == first["amap_uri"]
            phone.shot("day_popup_390x844")

            # At the stop: accepted, not flagged.
            phone.move_to(first["lon"], first["lat"], 12)
            phone.row(first["seq"]).locator(".gd-checkin").click()
            phone.row(first["seq"]).locator(".gd-dist").wait_for()
            assert phone.row(first["seq"]).locator(".gd-flag").count() == 0
            near = _visits(engine, phone.visit(first["customer_id"])["key"])
            assert len(near) == 1 and near[0]["flag_far"] is False and near[0]["distance_m"] < 50

            # About 5.5 km off the next stop: recorded and flagged far, on the page as on the server.
            phone.move_to(second["lon"], second["lat"] + 0.05, 20)
            phone.row(second["seq"]).locator("label", has_text="电访").click()
            phone.row(second["seq"]).locator(".gd-checkin").click()
            phone.row(second["seq"]).locator(".gd-flag").wait_for()
            assert "偏远 far" in phone.row(second["seq"]).inner_text()
            far = _visits(engine, phone.visit(second["customer_id"])["key"])
            assert len(far) == 1 and far[0]["flag_far"] is True and far[0]["distance_m"] > 5000

            # Check-out at once: the server calls the visit short, and the page says so.
            phone.row(first["seq"]).locator("textarea").fill("介绍了定期存款 talked about deposits")
            phone.row(first["seq"]).locator("select").select_option("interested")
            phone.row(first["seq"]).locator(".gd-checkout-btn").click()
            phone.row(first["seq"]).locator(".gd-flag", has_text="过短").wait_for()
            done = _visits(engine, phone.visit(first["customer_id"])["key"])
            assert done[0]["flag_short"] is True and done[0]["outcome"] == "interested"
            assert done[0]["note"] == "介绍了定期存款 talked about deposits" and done[0]["checkout_at"] is not None
            phone.row(first["seq"]).scroll_into_view_if_needed()
            phone.shot("day_checked_in_390x844")

            # No network: the page and today's plan still come (service worker), a check-in waits in the outbox.
            page.wait_for_function("navigator.serviceWorker.controller !== null")
            page.wait_for_function("caches.match(location.pathname).then(r => !!r)")  # the page saved itself
            phone.ctx.set_offline(True)
            page.reload()
            page.wait_for_selector("body.gd-ready .gd-stop")
            assert "离线" in page.locator("#gd-notice").inner_text()
            assert page.locator("path.gd-route").count() == 1
            phone.move_to(third["lon"], third["lat"], 10)
            phone.row(third["seq"]).locator(".gd-checkin").click()
            page.wait_for_selector("#gd-outbox[data-count='1']")
            assert "待发送 queued" in phone.row(third["seq"]).inner_text()
            key = phone.visit(third["customer_id"])["key"]
            assert _visits(engine, key) == [] and key not in phone.checkins  # nothing left the phone
            phone.row(third["seq"]).scroll_into_view_if_needed()
            phone.shot("day_offline_queued_390x844")

            # Signal returns; the first answer is lost on its way back, the outbox sends again (after its
            # back-off), the server replays the stored row: one visit for the key, and the outbox empties.
            phone.lose_next_answer = True
            phone.ctx.set_offline(False)
            page.wait_for_selector("#gd-outbox[data-count='0']", timeout=30_000)
            assert phone.checkins.count(key) == 2
            rows = _visits(engine, key)
            assert len(rows) == 1 and rows[0]["customer_id"] == third["customer_id"] and rows[0]["flag_far"] is False
            assert phone.row(third["seq"]).locator(".gd-dist").count() == 1
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM visit WHERE customer_id = :c AND source = 'checkin'"),
                                    {"c": third["customer_id"]}).scalar_one() == 1
            phone.shot("day_synced_390x844")
            page.set_viewport_size({"width": 1366, "height": 900})  # a desktop: the list beside the map
            page.wait_for_timeout(300)
            phone.shot("day_synced_1366x900")
            assert phone.outside == [] and phone.errors == []
        finally:
            browser.close()


def test_the_pages_door_takes_writes_of_its_rm_from_this_site_only(app):
    """Cookie-driven writes (the page cannot send a bearer token): another site's page is refused (403), another
    RM's door is 404, and a check-in through the door is idempotent like /api/v1/visits/checkins."""
    body = {"idempotency_key": str(uuid.uuid4()), "customer_id": "C0010", "kind": "面访",
            "at": dt.datetime.now(dt.UTC).isoformat(), "lon": 106.05, "lat": 38.05, "accuracy_m": 10}
    with signed_in_client(app, "rm1", PASSWORD) as c:
        assert c.post("/maps/rm/R1/day/checkins", json=body, headers={"Origin": "https://evil.example"}).status_code == 403
        assert c.post("/maps/rm/R1/day/checkins", json=body, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert c.post("/maps/rm/R3/day/checkins", json=body).status_code == 404
        first = c.post("/maps/rm/R1/day/checkins", json=body, headers={"Origin": str(c.base_url)})
        again = c.post("/maps/rm/R1/day/checkins", json=body)
        assert (first.status_code, again.status_code) == (201, 200) and first.json() == again.json()
    with signed_in_client(app, "rm3", PASSWORD) as c:
        vid = first.json()["visit_id"]
        out = {"idempotency_key": str(uuid.uuid4()), "at": dt.datetime.now(dt.UTC).isoformat()}
        assert c.post(f"/maps/rm/R3/day/visits/{vid}/checkout", json=out).status_code == 404  # R1's visit


@pytest.mark.browser
@needs_chromium
def test_times_and_today_are_the_banks_whatever_zone_the_phone_is_set_to(server):
    """A phone set to another zone (here Honolulu, 18 h behind) reads the plan's times and "today" as the server
    counts them (Asia/Shanghai): seen in a UTC browser, the demo RM's day read 00:37 for an 08:37 stop, under
    "this is not today's plan" above today's plan."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            phone = Phone(browser, server, "rm1", (106.05, 38.05), tz="Pacific/Honolulu")
            page = phone.page
            phone.open_plan()
            stop = next(s for s in phone.plan()["stops"] if s["arrive_at"])
            at = dt.datetime.fromisoformat(stop["arrive_at"]).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M")
            expect(phone.row(stop["seq"])).to_contain_text(at)
            assert phone.plan()["plan_date"] == page.evaluate("window.gridmktDayApp.localDate()")
            assert "不是今天" not in (page.locator("#gd-notice").text_content() or "")
            assert phone.errors == [] and phone.outside == []
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_the_day_draws_the_context_layer_and_the_cells_of_the_plans_grid(server, engine, map_grid):
    """Seen in the demo: the day drew its stops on a blank map (no county outline, no township names, with no tile
    server), and its cells from the RM's newest grid, in which the RM owned one village cell, so that 3 of 12
    stops lay outside the cells drawn. Now: the RM's county's outline, townships and villages come in the page
    (kept offline with it), and the cells are the RM's on the grid that places the plan's stops in them.
    (Last in the module: it gives R1 a cell on a newer grid.)"""
    from playwright.sync_api import sync_playwright

    from geodata import assign, grids, territories
    from tests.maps.conftest import R1_CELLS

    with engine.begin() as conn:
        # Two townships, seat and boundary each (the square county of the fixture has none).
        conn.execute(text(
            "INSERT INTO township (code, name, county_code, geom, boundary) VALUES"
            " ('640121100', '望远镇', '640121', ST_SetSRID(ST_MakePoint(106.1, 38.2), 4326),"
            "  ST_Multi(ST_MakeEnvelope(106.0, 38.0, 106.2, 38.4, 4326))),"
            " ('640121101', '东镇', '640121', ST_SetSRID(ST_MakePoint(106.3, 38.2), 4326),"
            "  ST_Multi(ST_MakeEnvelope(106.2, 38.0, 106.4, 38.4, 4326))) ON CONFLICT DO NOTHING"))
        newer = grids.build_grid(conn, county_code="640121", kind="village")["id"]
        assign.assign_customers(conn, grid_id=newer)
        territories.assign_cells(conn, grid_id=newer, cell_ids=[R1_CELLS[-1]], rm_code="R1", user="test")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            phone = Phone(browser, server, "rm1", (106.05, 38.05))
            page = phone.page
            phone.open_plan()
            # A new plan, made now that R1 owns a cell on the newer grid too.
            page.once("dialog", lambda d: d.accept())
            page.click("#gd-replan")
            page.wait_for_function("(id) => document.body.dataset.planId && document.body.dataset.planId !== id",
                                   arg=page.evaluate("document.body.dataset.planId"), timeout=60_000)
            page.wait_for_selector("body.gd-ready .gd-stop", timeout=60_000)
            plan = phone.plan()
            ids = [s["customer_id"] for s in plan["stops"]]
            with engine.connect() as conn:
                placed = dict(conn.execute(text(
                    "SELECT cc.customer_id, cc.cell_id FROM customer_cell cc WHERE cc.grid_id = :g"
                    " AND cc.customer_id = ANY(:c)"), {"g": map_grid, "c": ids}).all())
                owned = set(conn.execute(text(
                    "SELECT cc.customer_id FROM customer_cell cc JOIN territory t ON t.grid_id = cc.grid_id"
                    " AND t.cell_id = cc.cell_id AND t.rm_code = 'R1' AND t.role = 'owner' AND t.valid_to IS NULL"
                    " WHERE cc.grid_id = :g AND cc.customer_id = ANY(:c)"),
                    {"g": plan["territory"]["grid_id"], "c": ids}).scalars())
            # The newest grid (R1's one cell there) would leave stops outside the cells drawn.
            assert any(placed[c] != R1_CELLS[-1] for c in ids), placed
            assert owned == set(ids), f"stops outside R1's cells of grid {plan['territory']['grid_id']}"
            assert plan["territory"]["grid_id"] == map_grid
            page.wait_for_function("!!window.gridmktDayApp.state.cells && window.gridmktDayApp.state.tiles.loaded > 0",
                                   timeout=30_000)
            assert f"grid_id={map_grid}" in page.evaluate("window.gridmktDayApp.state.cells._url")

            # The context layer: the county outline, township seats named, village points; offline too.
            def context() -> dict:
                page.wait_for_function("document.querySelectorAll('.gm-town').length > 0", timeout=30_000)
                return page.evaluate("""() => {
                    const kinds = {};
                    window.gridmktDayApp.state.context.eachLayer(l => { kinds[l.gmKind] = l.getLayers().length; });
                    return {kinds, towns: Array.from(document.querySelectorAll('.gm-town')).map(e => e.textContent)};
                }""")
            online = context()
            assert online["kinds"].get("county") == 1 and online["kinds"].get("township_area") == 2, online
            assert sorted(online["towns"]) == ["东镇", "望远镇"], online
            assert online["kinds"].get("village") == 16, online
            phone.shot("day_context_390x844")
            page.wait_for_function("navigator.serviceWorker.controller !== null")
            page.wait_for_function("caches.match(location.pathname).then(r => !!r)")
            phone.ctx.set_offline(True)
            page.reload()
            page.wait_for_selector("body.gd-ready .gd-stop")
            assert context() == online
            assert phone.errors == [] and phone.outside == []
        finally:
            browser.close()
