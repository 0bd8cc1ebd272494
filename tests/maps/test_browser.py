"""The exported pages in a real Chromium with no network: they load, draw, and their popups carry the links.

Pages are exported from the scored square county (tests/maps/conftest.py),
opened from file:// URLs; every request that is not file:, data: or localhost
is aborted and recorded, and must never happen. Screenshots go to
artifacts/screenshots/.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from api.map_pages import compare_html, dashboard_html, page_options, preview_html, rm_html
from api.settings import LinkSettings, Settings
from tests.maps.conftest import CHROMIUM, MOVED, R1_CELLS, SHOTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (/usr/bin/chromium); ./run test installs it"),
]
SETTINGS = Settings(links=LinkSettings(
    tag_url="https://tags.bank.test/customers/{customer_id}", lead_url="https://leads.bank.test/leads?customer={customer_id}",
    tag_cell_url="https://tags.bank.test/customers?ids={customer_ids}",
    lead_cell_url="https://leads.bank.test/leads?customers={customer_ids}"))


@pytest.fixture(scope="module")
def pages(engine, map_grid, preview_run, tmp_path_factory) -> dict[str, Path]:
    """The four pages, exported (assets inline) to files."""
    out = tmp_path_factory.mktemp("pages")
    opts = page_options(SETTINGS)
    with engine.connect() as conn:
        html = {
            "dashboard": dashboard_html(conn, grid_id=map_grid, options=opts),
            "rm": rm_html(conn, grid_id=map_grid, rm_code="R1", options=opts),
            "preview": preview_html(conn, grid_id=preview_run[0], options=opts),
            "compare": compare_html(conn, grid_id=map_grid, a="current", b="plan-b", options=opts),
        }
    paths = {}
    for name, text in html.items():
        paths[name] = out / f"{name}.html"
        paths[name].write_text(text, encoding="utf-8")
    return paths


class Visit:
    """One page in a fresh context: network refused and recorded, console errors and failed requests kept."""

    def __init__(self, browser, path: Path, viewport=(1280, 800)):
        self.ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.blocked, self.failed, self.errors = [], [], []
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0")
        self.page.wait_for_timeout(600)  # fitBounds animation

    def _route(self, route):
        url = route.request.url
        if url.startswith(("file:", "data:", "http://localhost", "http://127.0.0.1")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def assert_clean(self):
        assert self.blocked == [], self.blocked
        assert self.failed == [], self.failed
        assert self.errors == [], self.errors

    def map_eval(self, body: str):
        """Evaluate ``body`` (a function of the Leaflet map) in the page."""
        return self.page.evaluate(
            "(body) => { const id = document.querySelector('.folium-map').id;"
            " return new Function('map', body)(window[id]); }", body)

    def click_cell(self, cell_id: str, dx: int = 14, dy: int = 14):
        """Click inside a cell, off its centre (where the village point sits)."""
        xy = self.map_eval(
            "let p = null; map.eachLayer(l => { if (!p && l.feature && l.feature.properties.id === "
            f"'{cell_id}' && l.getBounds) {{ p = map.latLngToContainerPoint(l.getBounds().getCenter()); }} }});"
            " const r = map.getContainer().getBoundingClientRect(); return [p.x + r.left, p.y + r.top];")
        self.page.mouse.click(xy[0] + dx, xy[1] + dy)
        self.page.wait_for_selector(".leaflet-popup-content")
        return self.page.locator(".leaflet-popup-content")

    def shot(self, name: str):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(400)  # let popups finish fading in
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def close(self):
        self.ctx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _hrefs(popup) -> list[str]:
    return [unquote(a.get_attribute("href")) for a in popup.locator("a.gm-btn").all()]


def test_dashboard_offline_popup_links(browser, pages):
    with Visit(browser, pages["dashboard"]) as v:
        assert v.page.locator("path.leaflet-interactive").count() >= 16
        assert v.page.locator(".gm-summary-panel").inner_text().count("100.0%") == 1
        assert v.page.locator(".gm-legend-panel i").count() >= 3
        popup = v.click_cell("640121100001")
        assert "村1" in popup.inner_text() and "R1" in popup.inner_text()
        assert _hrefs(popup) == ["https://tags.bank.test/customers?ids=C0010,C0011,C0012",
                                 "https://leads.bank.test/leads?customers=C0010,C0011,C0012"]
        v.shot("dashboard")
        v.assert_clean()


def test_rm_phone_page_shows_only_that_rms_data(browser, pages):
    with Visit(browser, pages["rm"], viewport=(390, 844)) as v:
        cells = v.map_eval("const s = new Set(); map.eachLayer(l => { if (l.feature && l.feature.properties.o)"
                           " s.add(l.feature.properties.id); }); return [...s].sort();")
        assert cells == sorted(R1_CELLS)
        customers = v.map_eval("let ids = []; map.eachLayer(l => { if (l.getAllChildMarkers) ids = ids.concat("
                               "l.getAllChildMarkers().map(m => m.options.title)); }); return ids;")
        assert customers and all(name in ("张*", "欧***") for name in customers)
        assert v.page.locator(".marker-cluster, .gm-cust-icon").count() > 0
        # Touch targets: zoom and locate buttons at least 44 px.
        for sel in (".leaflet-control-zoom-in", ".leaflet-control-locate a"):
            box = v.page.locator(sel).first.bounding_box()
            assert box["width"] >= 44 and box["height"] >= 44, sel
        v.shot("rm_390x844")
        # Zoom all the way in on a customer with leads: badge, popup with tag and lead links.
        v.map_eval("map.setView([38.05, 106.05], 18, {animate: false});")
        v.page.wait_for_selector(".gm-badge")
        assert v.page.locator(".gm-badge").first.inner_text() == "2"
        v.page.locator(".gm-has-lead").first.click()
        popup = v.page.locator(".leaflet-popup-content")
        assert "张*" in popup.inner_text()
        assert _hrefs(popup) == ["https://tags.bank.test/customers/C0010",
                                 "https://leads.bank.test/leads?customer=C0010"]
        v.shot("rm_customer_popup")
        v.assert_clean()


def test_preview_offline(browser, pages):
    with Visit(browser, pages["preview"]) as v:
        assert v.page.locator("path.leaflet-interactive").count() >= 17
        assert "村18" in v.page.locator(".gm-unplaced-panel").inner_text()
        popup = v.click_cell("G640121100016")  # merged group id
        assert "村16" in popup.inner_text() and "村17" in popup.inner_text()
        v.shot("preview")
        v.assert_clean()


def test_compare_offline_moved_cell(browser, pages):
    with Visit(browser, pages["compare"]) as v:
        assert v.page.locator("path.leaflet-interactive").count() >= 16
        assert "R1" in v.page.locator(".gm-compare-panel").inner_text()
        popup = v.click_cell(MOVED)
        text = popup.inner_text()
        assert "调整 moved" in text and "R2" in text and "R1" in text
        v.shot("compare")
        v.assert_clean()
