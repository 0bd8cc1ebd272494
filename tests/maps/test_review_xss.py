"""Data that looks like HTML (a scenario name, a customer id) stays text on the pages, checked in Chromium."""

from __future__ import annotations

from dataclasses import replace

import pytest

from maps.compare import compare_page
from maps.dashboard import dashboard_page
from tests.maps import samples
from tests.maps.conftest import CHROMIUM

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (/usr/bin/chromium)")
EVIL = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'


def _open(browser, html: str, tmp_path):
    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    ctx = browser.new_context()
    ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
              else route.abort())
    page = ctx.new_page()
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0")
    return ctx, page


def test_scenario_name_in_compare_layer_control_is_text(browser, tmp_path):
    # A planner may name a scenario anything; another planner opens the comparison.
    html = compare_page(samples.cells(), {"A": "R1", "C": "R2"}, {"A": "R2", "C": "R2"},
                        options=samples.OPTIONS, labels=("current", EVIL))
    ctx, page = _open(browser, html, tmp_path)
    try:
        page.wait_for_timeout(300)
        assert page.evaluate("window.__xss") is None
        assert page.locator(".leaflet-control-layers-overlays img").count() == 0
        assert EVIL in page.locator(".leaflet-control-layers-overlays").inner_text()
    finally:
        ctx.close()


def test_customer_id_in_dashboard_tile_popup_is_text(browser, tmp_path):
    # Customer ids are free text from the bank's file; a zoomed-in tile point shows its id in a popup.
    opts = replace(samples.OPTIONS, customer_tiles_url="/tiles/customers/{z}/{x}/{y}.pbf?grid_id=1")
    html = dashboard_page(samples.cells(), options=opts, rms=samples.RMS, cell_customers=samples.CELL_CUSTOMERS)
    ctx, page = _open(browser, html, tmp_path)
    try:
        page.evaluate(
            "(id) => { const map = window[document.querySelector('.folium-map').id];"
            " const vg = Object.keys(window).filter(k => k.startsWith('vector_tile_layer_')).map(k => window[k])[0];"
            " vg.fire('click', {latlng: map.getCenter(), layer: {properties: {customer_id: id, count: 1}}}); }", EVIL)
        page.wait_for_selector(".leaflet-popup-content")
        page.wait_for_timeout(300)
        assert page.evaluate("window.__xss") is None
        assert page.locator(".leaflet-popup-content").inner_text() == EVIL
    finally:
        ctx.close()
