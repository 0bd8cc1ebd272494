"""Map pages served by the API: behind the sign-in, scoped per user, assets from /maps/static, in Chromium."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.auth import hash_password
from api.settings import AuthSettings, DatabaseSettings, Settings
from geodata import users
from tests.maps.conftest import (
    R1_CELLS,
    R3_CELLS,
    SHOTS,
    needs_chromium,
    signed_in_client,
    signed_in_page,
)

PASSWORD = "map pages 2026"
CDN = ("cdn.", "unpkg", "jsdelivr", "cdnjs", "googleapis", "bootstrapcdn")


@pytest.fixture(scope="module")
def app(engine, db_url, map_grid, tmp_path_factory):
    pw = hash_password(PASSWORD)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LE2', '别的农商行')"))
        for name, role, le, rm, outlets in (("rm1", "rm", 1, "R1", []), ("bm1", "branch_manager", 1, None, ["O2"]),
                                            ("planner", "planner", 1, None, []), ("other", "planner", 2, None, [])):
            users.create_user(conn, username=name, password_hash=pw, role=role, legal_entity_id=le, rm_code=rm,
                              outlet_codes=outlets)
    home = tmp_path_factory.mktemp("served")
    return create_app(Settings(db=DatabaseSettings(url=db_url, home=home), auth=AuthSettings(secret_key="k" * 32)))


def _client(app, username):
    return signed_in_client(app, username, PASSWORD)


def test_no_session_goes_to_sign_in(app, map_grid):
    with TestClient(app) as c:
        r = c.get(f"/maps/rm?grid_id={map_grid}&rm_code=R1", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/maps/login?next=%2Fmaps%2Frm")
        assert c.get("/maps/login").status_code == 200


def test_rm_sees_only_own_map(app, map_grid):
    with _client(app, "rm1") as c:
        page = c.get(f"/maps/rm?grid_id={map_grid}")
        assert page.status_code == 200
        assert all(cell in page.text for cell in R1_CELLS) and not any(cell in page.text for cell in R3_CELLS)
        assert "/maps/static/" in page.text and not any(s in page.text for s in CDN)
        assert c.get(f"/maps/rm?grid_id={map_grid}&rm_code=R3").status_code == 404
        assert c.get(f"/maps/dashboard?grid_id={map_grid}").status_code == 403
        assert c.get(f"/maps/compare?grid_id={map_grid}&b=plan-b").status_code == 403


def test_branch_manager_dashboard_is_their_outlets_only(app, map_grid):
    with _client(app, "bm1") as c:  # outlet O2 has RM R3 only
        page = c.get(f"/maps/dashboard?grid_id={map_grid}&measure=customers")
        assert page.status_code == 200
        assert all(cell in page.text for cell in R3_CELLS) and not any(cell in page.text for cell in R1_CELLS)
        assert "评分于 scored" in page.text  # when the grid's gap scores were computed (and if out of date)
        assert c.get(f"/maps/rm?grid_id={map_grid}&rm_code=R1").status_code == 404
        r3 = c.get(f"/maps/rm?grid_id={map_grid}&rm_code=R3")
        assert r3.status_code == 200 and "欧阳娜娜" in r3.text  # the branch manager sees names


def test_planner_pages_mask_names_and_other_entities_see_nothing(app, map_grid):
    with _client(app, "planner") as c:
        for path in ("dashboard", "compare"):
            assert c.get(f"/maps/{path}?grid_id={map_grid}&b=plan-b").status_code == 200
        rm = c.get(f"/maps/rm?grid_id={map_grid}&rm_code=R1")
        # customers' names masked for a planner (R1 himself is 张三: RM names are not personal data here)
        assert rm.status_code == 200 and "欧阳娜娜" not in rm.text and "欧***" in rm.text
        assert c.get("/maps/static/node_modules/leaflet/dist/leaflet.js").status_code == 200
        assert c.get("/maps/static/../../pyproject.toml").status_code == 404
    with _client(app, "other") as c:
        for path in ("dashboard", "rm", "compare"):
            assert c.get(f"/maps/{path}?grid_id={map_grid}&rm_code=R1").status_code in (403, 404)


@pytest.mark.browser
@needs_chromium
def test_rm_signs_in_and_uses_the_phone_map_in_chromium(server, map_grid):
    with signed_in_page(server, f"/maps/rm?grid_id={map_grid}", "rm1", PASSWORD, viewport=(390, 844)) as seen:
        page = seen.page
        page.wait_for_selector("path.leaflet-interactive")
        assert page.locator("path.leaflet-interactive").count() >= len(R1_CELLS)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "served_rm_390x844.png"))
        other = page.goto(f"{server}/maps/rm?grid_id={map_grid}&rm_code=R3")
        assert other.status == 404
    assert seen.failed == [] and seen.outside == []


@pytest.mark.browser
@needs_chromium
def test_dashboard_draws_customers_from_vector_tiles(server, map_grid):
    tiles = []

    def watch(page):
        page.on("response", lambda r: tiles.append(r.status) if "/tiles/customers/" in r.url else None)

    with signed_in_page(server, f"/maps/dashboard?grid_id={map_grid}", "planner", PASSWORD, watch=watch) as seen:
        page = seen.page
        page.wait_for_selector("path.leaflet-interactive")
        page.hover(".leaflet-control-layers")
        page.get_by_text("客户 customers (tiles)").click()
        page.wait_for_timeout(1500)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "served_dashboard_tiles.png"))
    assert seen.failed == [] and seen.outside == []
    assert 200 in tiles and all(s in (200, 204) for s in tiles)  # tiles come, scoped to the signed-in planner


HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_meets_a_bilingual_error_page_the_api_keeps_json(app, map_grid):
    with _client(app, "rm1") as c:
        forbidden = c.get(f"/maps/dashboard?grid_id={map_grid}", headers=HTML)
        assert forbidden.status_code == 403 and forbidden.headers["content-type"].startswith("text/html")
        assert "无权查看此页" in forbidden.text and "You may not open this page" in forbidden.text
        assert 'href="/maps/"' in forbidden.text or "href='/maps/'" in forbidden.text  # a way back
        missing = c.get(f"/maps/rm?grid_id={map_grid}&rm_code=R3", headers=HTML)
        assert missing.status_code == 404 and "未找到" in missing.text and "Not found" in missing.text
        bad = c.get("/maps/dashboard?grid_id=abc", headers=HTML)
        assert bad.status_code == 422 and "网址参数有误" in bad.text and "grid_id" in bad.text
        nogrid = c.get("/maps/rm?grid_id=999999", headers=HTML)  # a domain NotFound, not an HTTPException
        assert nogrid.status_code == 404 and "未找到" in nogrid.text
        # Not a browser page: JSON, always with the documented `error` key.
        token = c.post("/api/v1/auth/token", data={"username": "rm1", "password": PASSWORD}).json()["access_token"]
        c.headers["Authorization"] = f"Bearer {token}"
        for path, status, error in ((f"/maps/dashboard?grid_id={map_grid}", 403, "Forbidden"),
                                    (f"/maps/rm?grid_id={map_grid}&rm_code=R3", 404, "NotFound"),
                                    ("/maps/dashboard?grid_id=abc", 422, "RequestValidationError"),
                                    ("/api/v1/grids/999999", 404, "NotFound"),
                                    ("/api/v1/grids?limit=abc", 422, "RequestValidationError")):
            r = c.get(path)
            assert r.status_code == status and r.json()["error"] == error and r.json()["detail"], (path, r.text)
        assert c.get("/api/v1/grids?limit=abc").json()["detail"][0]["loc"] == ["query", "limit"]
        assert c.get("/maps/static/nope.js", headers=HTML).json()["error"] == "NotFound"  # assets stay JSON
    with TestClient(app) as anon:
        r = anon.get("/api/v1/auth/me")
        assert r.status_code == 401 and r.json()["error"] == "Unauthorized" and "www-authenticate" in r.headers
        r = anon.get("/api/v1/no-such-route")
        assert r.status_code == 404 and r.json()["error"] == "NotFound"
        page = anon.get("/maps/no-such-page", headers=HTML)
        assert page.status_code == 404 and "未找到" in page.text and "/maps/" in page.text
    from api.errors import _status_name

    assert [_status_name(s) for s in (405, 429, 503)] == ["MethodNotAllowed", "TooManyRequests", "ServiceBusy"]



def test_error_page_details_are_chinese_then_english(app, map_grid):
    """A browser (Accept: text/html) reads each error's detail in Chinese first; the API's JSON keeps English."""
    def order(page: str, zh: str, en: str) -> None:
        import html

        text = html.unescape(page)
        assert zh in text and en in text and text.index(zh) < text.index(en), (zh, en, page)

    with _client(app, "rm1") as c:
        forbidden = c.get(f"/maps/dashboard?grid_id={map_grid}", headers=HTML)
        order(forbidden.text, "此页面供支行行长和规划人员使用", "this page is for managers and planners")
        order(c.get(f"/maps/rm?grid_id={map_grid}&rm_code=R3", headers=HTML).text, "未找到客户经理 R3", "RM 'R3' not found")
        order(c.get("/maps/rm?grid_id=999999", headers=HTML).text, "未找到网格版本 999999", "grid 999999 does not exist")
        bad = c.get("/maps/dashboard?grid_id=abc", headers=HTML)
        assert bad.status_code == 422
        order(bad.text, "参数 grid_id 应为整数", "grid_id: Input should be a valid integer")
        order(c.get("/maps/rm/R3/day", headers=HTML).text, "未找到客户经理 R3", "RM 'R3' not found")
        # The API: the same errors, English detail, the documented `error` key.
        assert c.get(f"/maps/dashboard?grid_id={map_grid}").json() == {
            "error": "Forbidden", "detail": "this page is for managers and planners; RMs open /maps/rm"}
        assert c.get("/maps/rm?grid_id=999999").json() == {"error": "NotFound", "detail": "grid 999999 does not exist"}
    with TestClient(app) as anon:
        unsigned = anon.get("/maps/rm/R1/day/plan", headers=HTML)  # not signed in, not sent to sign in: a fetch
        assert unsigned.status_code == 401
        order(unsigned.text, "尚未登录：请先登录", "not signed in")
        assert anon.get("/maps/rm/R1/day/plan").json() == {"error": "Unauthorized", "detail": "not signed in"}
        order(anon.get("/maps/no-such-page", headers=HTML).text, "没有这个页面", "Not Found")


def _links(html: str) -> list[str]:
    import html as h
    import re

    return [h.unescape(x) for x in re.findall(r'href="([^"]+)"', html)]


def test_index_shows_each_role_the_pages_it_may_open(app, map_grid, preview_run):
    village_grid = preview_run[0]
    with _client(app, "rm1") as c:
        links = _links(c.get("/maps/", headers=HTML).text)
        assert f"/maps/rm?grid_id={map_grid}&rm_code=R1" in links
        assert not any("/maps/dashboard" in x or "/maps/compare" in x or "/maps/province" in x for x in links)
    with _client(app, "bm1") as c:
        page = c.get("/maps/", headers=HTML).text
        links = _links(page)
        assert f"/maps/dashboard?grid_id={map_grid}" in links and "/maps/province?kind=village" in links
        assert f"/maps/rm?grid_id={map_grid}&rm_code=R3" in links  # their outlet's RM
        assert not any("rm_code=R1" in x or "/maps/compare" in x or "/maps/preview" in x for x in links)
        assert "网点负责人 branch manager" in page
    with _client(app, "planner") as c:
        links = _links(c.get("/maps/", headers=HTML).text)
        assert f"/maps/compare?grid_id={map_grid}&b=plan-b" in links
        assert f"/maps/preview?grid_id={village_grid}" in links
        assert f"/maps/rm?grid_id={map_grid}&rm_code=R1" in links
        for link in (x for x in links if x.startswith("/maps/") and "logout" not in x):
            assert c.get(link).status_code == 200, link  # every link opens
    with _client(app, "other") as c:  # another legal entity: nothing of ours
        links = _links(c.get("/maps/", headers=HTML).text)
        assert not any(f"grid_id={map_grid}" in x for x in links)


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("who", ["rm1", "bm1", "planner"])
def test_index_and_error_page_screenshots(server, map_grid, who):
    for name, size in (("desktop", (1366, 900)), ("phone", (390, 844))):
        with signed_in_page(server, "/maps/", who, PASSWORD, viewport=size) as seen:
            page = seen.page
            assert page.locator("section").count() >= 1
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"index_{who}_{name}.png"), full_page=True)
            if who == "rm1":
                r = page.goto(f"{server}/maps/dashboard?grid_id={map_grid}")
                assert r.status == 403 and page.locator("text=无权查看此页").count() == 1
                page.screenshot(path=str(SHOTS / f"error_403_{name}.png"))
                page.click("text=地图首页 maps home")
                page.wait_for_url("**/maps/")
        assert seen.failed == [] and seen.outside == []
