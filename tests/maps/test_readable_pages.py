"""Pages that still read well at a real bank's size (issue 15 §2), in a real Chromium at desktop and phone sizes.

- Scenario compare with 68 RMs: territory labels are shown only where they fit, never on top of each other.
- On a 390×844 phone the compare table and the province's county table fit the screen (no sideways scroll),
  every figure still there.
- The dashboard draws no-potential cells faintly, outlines the blank ones, and explains both in its legend.

Pages are built by maps/ from literal data and opened from files with the network refused.
"""

from __future__ import annotations

import re

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from maps.base import PageOptions
from maps.classify import class_breaks
from maps.compare import compare_page
from maps.dashboard import dashboard_page
from maps.province import province_page
from tests.maps.conftest import CHROMIUM, SHOTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (/usr/bin/chromium); ./run test installs it"),
]
VIEWPORTS = {"desktop": (1366, 900), "phone": (390, 844)}
SIZE = 0.004  # degrees per square cell


def _county(cols: int = 34, rows: int = 32) -> gpd.GeoDataFrame:
    """cols × rows square cells west to east, south to north."""
    cells = [(f"c{i:02d}{j:02d}", shapely.box(106 + i * SIZE, 38 + j * SIZE, 106 + (i + 1) * SIZE, 38 + (j + 1) * SIZE),
              i, j) for i in range(cols) for j in range(rows)]
    return gpd.GeoDataFrame({"cell_id": [c[0] for c in cells], "i": [c[2] for c in cells], "j": [c[3] for c in cells],
                             "customers": [30 + (c[2] * 7 + c[3]) % 50 for c in cells],
                             "households": [60.0 + c[3] for c in cells]},
                            geometry=[c[1] for c in cells], crs=4326)


def _sixty_eight_rms(cells: gpd.GeoDataFrame) -> dict[str, str]:
    """68 territories of 2 × 8 cells (17 across, 4 up), as a county of 68 RMs has."""
    return {c: f"R{(i // 2) * 4 + j // 8:03d}" for c, i, j in zip(cells["cell_id"], cells["i"], cells["j"], strict=True)}


@pytest.fixture(scope="module")
def compare_file(tmp_path_factory):
    cells = _county()
    b = _sixty_eight_rms(cells)
    a = {c: ("R001" if c.startswith("c02") else rm) for c, rm in b.items()}  # R001 held a strip that moves
    rms = pd.DataFrame({"rm_id": sorted(set(b.values())), "name": "欧阳娜娜"})
    html = compare_page(cells, a, b, options=PageOptions(), rms=rms, labels=("current", "plan"))
    path = tmp_path_factory.mktemp("readable") / "compare68.html"
    path.write_text(html, encoding="utf-8")
    return path


def _open(browser, path, viewport):
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort())
    page = ctx.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector(".gm-panel")
    page.wait_for_timeout(800)
    return ctx, page


LABEL_BOXES = """() => [...document.querySelectorAll('.gm-label')]
  .filter(e => getComputedStyle(e).visibility !== 'hidden')
  .map(e => { const r = e.firstChild.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, e.innerText]; })
  .filter(b => b[2] > 0 && b[0] < innerWidth && b[3] > 0 && b[1] < innerHeight)"""


def _overlapping(boxes) -> list:
    return [(a[4], b[4]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_compare_labels_of_68_rms_never_overlap(browser, compare_file, viewport):
    ctx, page = _open(browser, compare_file, VIEWPORTS[viewport])
    try:
        assert page.locator(".gm-label").count() == 68
        shown = page.evaluate(LABEL_BOXES)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"compare68_labels_{viewport}.png"))
        assert 0 < len(shown) < 68 and _overlapping(shown) == []  # before: all 68 drawn, piled up
        # Zoomed in, labels that now fit come back, still apart.
        page.evaluate("() => { const m = window[document.querySelector('.folium-map').id];"
                      " m.setZoom(m.getZoom() + 2, {animate: false}); }")
        page.wait_for_timeout(500)
        closer = page.evaluate(LABEL_BOXES)
        page.screenshot(path=str(SHOTS / f"compare68_labels_zoomed_{viewport}.png"))
        assert closer and _overlapping(closer) == []
    finally:
        ctx.close()


def _expand(page) -> None:
    for _ in range(6):
        t = page.locator(".gm-collapsed > .gm-toggle")
        if not t.count():
            return
        t.first.click()


def _fits(page, selector: str) -> dict:
    return page.evaluate(
        "(sel) => { const p = document.querySelector(sel), d = document.documentElement;"
        " return {panel: [p.scrollWidth, p.clientWidth], page: [d.scrollWidth, d.clientWidth],"
        " height: p.getBoundingClientRect().height, text: p.innerText}; }", selector)


def test_compare_table_fits_a_phone(browser, compare_file):
    w, h = VIEWPORTS["phone"]
    ctx, page = _open(browser, compare_file, (w, h))
    try:
        _expand(page)
        page.wait_for_timeout(300)
        got = _fits(page, ".gm-compare-panel")
        page.screenshot(path=str(SHOTS / "compare68_table_390x844.png"))
        assert got["panel"][0] <= got["panel"][1] + 1, got["panel"]  # before: 600 px of table in a 242 px panel
        assert got["page"][0] <= w and got["height"] <= h / 5 + 1
        # every figure is still there, each after its header (shown from data-label)
        assert "R001" in got["text"] and "1,088" in got["text"]
        for header in ("网格 cells", "客户 customers", "户数 households", "占目标 % of target"):
            assert page.locator(f'.gm-workload td[data-label="{header}"]').count() == 68, header
    finally:
        ctx.close()


def test_province_table_fits_a_phone_without_losing_figures(browser, tmp_path):
    rows = []
    for k in range(22):
        box = (105 + 0.3 * (k % 6), 36 + 0.3 * (k // 6), 105.3 + 0.3 * (k % 6), 36.3 + 0.3 * (k // 6))
        rows.append({"county_code": f"6401{k:02d}", "county_name": f"县{k:02d}号", "outline": shapely.box(*box),
                     "grid_id": k + 1, "resolution": 8, "cells": 1000 + k, "customers": 123456 + k,
                     "scope_customers": 130000, "coverage": 0.95, "blank_cells": 300 + k, "rms": 40 + k,
                     "bounds": box})
    html = province_page(rows, options=PageOptions(), score_classes=class_breaks([0, 10, 50, 90]),
                         tile_url="/t/{layer}/{z}/{x}/{y}.pbf?g={grid_id}", dashboard_url="/d?g={grid_id}")
    path = tmp_path / "province.html"
    path.write_text(html, encoding="utf-8")
    for viewport, (w, h) in VIEWPORTS.items():
        ctx, page = _open(browser, path, (w, h))
        try:
            _expand(page)
            page.wait_for_timeout(300)
            got = _fits(page, ".gm-province-panel")
            page.screenshot(path=str(SHOTS / f"province22_table_{viewport}.png"))
            assert got["panel"][0] <= got["panel"][1] + 1, (viewport, got["panel"])
            assert got["page"][0] <= w
            text = got["text"].replace("\n", " ")
            for r in rows:  # no figure lost: customers, cells, blank cells and RMs of every county
                for v in (r["customers"], r["cells"], r["blank_cells"]):
                    assert f"{v:,}" in text, (viewport, r["county_name"], v)
                assert r["county_name"] in text
        finally:
            ctx.close()


def test_dashboard_draws_no_potential_faintly_and_outlines_blank(browser, tmp_path):
    cells = _county(8, 6)
    n = len(cells)
    cells["gap_class"] = ["no-potential" if i < 3 else ("blank" if i == 3 else "covered") for i in cells["i"]]
    cells["score"] = [0.0 if g == "no-potential" else 20.0 + k for k, g in enumerate(cells["gap_class"])]
    cells["owner_rm"] = "R001"
    html = dashboard_page(cells, options=PageOptions(), rms=pd.DataFrame({"rm_id": ["R001"], "name": ["张三"]}),
                          gap_run={"computed_at": "2026-01-01T00:00:00Z",
                                   "config": {"min_households": 15, "recent_visit_days": 90}})
    assert "无潜力 no potential: 少于15户且无客户" in html and "potential, but no RM owns it or no visit in 90 days" in html
    path = tmp_path / "dashboard.html"
    path.write_text(html, encoding="utf-8")
    ctx, page = _open(browser, path, VIEWPORTS["desktop"])
    try:
        styles = page.evaluate(
            "() => { const m = window[document.querySelector('.folium-map').id], out = {};"
            " m.eachLayer(l => { if (l.feature && l.feature.properties.gc) out[l.feature.properties.gc] ="
            " [l.options.fillOpacity, l.options.color, l.options.fillColor]; }); return out; }")
        page.screenshot(path=str(SHOTS / "dashboard_no_potential.png"))
        assert styles["no-potential"][0] < 0.5 and styles["no-potential"][2] == "#ececec"
        assert styles["blank"][1] == "#54278f" and styles["covered"][0] > 0.5
        # the score colours spread over the cells with potential: the lowest class starts at their lowest (38)
        legend = page.locator(".gm-legend-panel").inner_text()
        assert re.search(r"(^|\n)0 – ", legend) is None and "\n38 – " in legend and "无潜力 no potential" in legend
        assert n == 48
    finally:
        ctx.close()
