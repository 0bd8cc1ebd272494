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
        assert "调入 moved in" in text and "R2" in text and "R1" in text
        v.shot("compare")
        v.assert_clean()


# --- Readable pages (issue 15 §2): popups on top, panels that collapse, nothing over the compare table. ---
VIEWPORTS = {"desktop": (1366, 900), "phone": (390, 844)}
PANELS = ".gm-panel:not(.gm-off)"  # a hidden panel (a layer's legend while the layer is off) is not on screen


def _expand_panels(v: Visit) -> None:
    # Not a hidden panel's (a layer's legend while the layer is off: nothing to click).
    toggles = v.page.locator(".gm-panel:not(.gm-off) .gm-collapsed > .gm-toggle")
    for _ in range(10):
        if not toggles.count():
            return
        toggles.first.click()


def _open_popup_under_panels(v: Visit) -> dict:
    """Open a cell's popup anchored just below the first panel, so that it reaches up under it; its box."""
    return v.map_eval(
        "const panel = document.querySelector('.gm-panel').getBoundingClientRect();"
        " const c = map.getContainer().getBoundingClientRect();"
        " const x = Math.min(Math.max(panel.left + 30, 140), c.width - 140), y = Math.min(panel.bottom + 30, c.height - 10);"
        " const at = map.containerPointToLatLng([x, y]); let done = false;"
        " map.eachLayer(l => { if (!done && l.feature && l.getPopup && l.getPopup() && l.getBounds) {"
        "   l.openPopup(at); done = true; } });"
        " return done;")


def _popup_is_topmost(v: Visit) -> None:
    """The popup's centre is the popup (elementFromPoint), and so is every part of it a panel overlaps."""
    v.page.wait_for_selector(".leaflet-popup-content")
    v.page.wait_for_timeout(400)
    res = v.page.evaluate(
        "() => { const r = document.querySelector('.leaflet-popup-content-wrapper').getBoundingClientRect();"
        " const mine = (x, y) => { const e = document.elementFromPoint(x, y); return !!(e && e.closest('.leaflet-popup')); };"
        " const centre = mine(r.left + r.width / 2, r.top + r.height / 2); const shared = [];"
        " document.querySelectorAll('.gm-panel, .leaflet-control').forEach(q => { const b = q.getBoundingClientRect();"
        "   const l = Math.max(b.left, r.left), rt = Math.min(b.right, r.right), t = Math.max(b.top, r.top),"
        "         bt = Math.min(b.bottom, r.bottom);"
        "   if (b.width > 0 && l < rt && t < bt) shared.push({panel: q.className, popupOnTop: mine((l + rt) / 2, (t + bt) / 2)}); });"
        " return {centre, shared}; }")
    assert res["centre"], res
    assert all(s["popupOnTop"] for s in res["shared"]), res
    return res


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("name", ["dashboard", "rm", "compare", "preview"])
def test_opened_popup_is_on_top_of_the_panels(browser, pages, name, viewport):
    with Visit(browser, pages[name], viewport=VIEWPORTS[viewport]) as v:
        _expand_panels(v)
        assert _open_popup_under_panels(v)
        res = _popup_is_topmost(v)
        assert any("gm-panel" in s["panel"] for s in res["shared"]), res  # it did open where a panel is
        v.shot(f"popup_{name}_{viewport}")
        v.assert_clean()


def test_phone_summary_starts_collapsed_and_takes_at_most_a_fifth(browser, pages):
    w, h = VIEWPORTS["phone"]
    for name in ("dashboard", "rm", "compare", "preview"):
        with Visit(browser, pages[name], viewport=(w, h)) as v:
            wraps = v.page.locator(".gm-panel .gm-wrap")
            assert wraps.count() >= 1
            assert all("gm-collapsed" in (wr.get_attribute("class") or "") for wr in wraps.all()), name
            _expand_panels(v)
            for panel in v.page.locator(PANELS).all():
                box = panel.bounding_box()
                assert box["height"] <= h / 5 + 1, (name, box)
            if name == "rm":
                v.shot("rm_summary_expanded_390x844")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_nothing_covers_the_compare_table(browser, pages, viewport):
    with Visit(browser, pages["compare"], viewport=VIEWPORTS[viewport]) as v:
        _expand_panels(v)
        covered = v.page.evaluate(
            "() => { const panel = document.querySelector('.gm-compare-panel'); const pb = panel.getBoundingClientRect();"
            " const bad = []; panel.querySelectorAll('td, th').forEach(td => { const r = td.getBoundingClientRect();"
            "   const x = r.left + r.width / 2, y = r.top + r.height / 2;"
            "   if (y < pb.top || y > pb.bottom || x < pb.left || x > pb.right) return;  /* scrolled out of the panel */"
            "   const e = document.elementFromPoint(x, y); if (!e || !panel.contains(e)) bad.push(td.textContent); });"
            " return bad; }")
        assert covered == []
        v.shot(f"compare_table_{viewport}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_compare_territories_outlined_labelled_and_neighbours_differ(browser, pages, viewport):
    from shapely.geometry import shape

    with Visit(browser, pages["compare"], viewport=VIEWPORTS[viewport]) as v:
        drawn = v.map_eval(
            "const out = []; map.eachLayer(l => { if (l.feature && l.feature.properties.rm && l.options.color)"
            " out.push({rm: l.feature.properties.rm, color: l.options.color, geom: l.feature.geometry}); }); return out;")
        assert sorted(t["rm"] for t in drawn) == ["R1", "R2", "R3"]  # plan-b's territories, outlined
        shapes = [(t["rm"], t["color"], shape(t["geom"])) for t in drawn]
        shared = 0
        for i, (ra, ca, ga) in enumerate(shapes):
            for rb, cb, gb in shapes[i + 1:]:
                if ga.intersection(gb).length > 0:  # a shared edge
                    shared += 1
                    assert ca != cb, (ra, rb, ca)
        assert shared >= 2
        labels = v.page.locator(".gm-label").all_inner_texts()
        assert any(t.startswith("R1") for t in labels) and len(labels) == 3
        v.shot(f"compare_territories_{viewport}")
        v.assert_clean()
