"""The served province page: every visible county's latest grid drawn from vector tiles, scoped per user.

Three counties: 永宁县 (the square test county of LE1: the scored village grid
of tests/maps/conftest.py and an H3 grid whose west half R1 and east half R3
own), 贺兰县 east of it (LE1: two H3 grids, the latest owned by R4 of outlet
O3) and 平罗县 further east (another legal entity, one H3 grid).
"""

from __future__ import annotations

import json
import math
import re

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.auth import hash_password
from api.settings import AuthSettings, DatabaseSettings, Settings
from geodata import assign, gaps, grids, province, territories, users
from geodata.scope import Scope
from tests.maps.conftest import R3_CELLS, SHOTS, needs_chromium, signed_in_client, signed_in_page

PASSWORD = "province 2026"
EAST = shapely.box(106.4, 38.0, 106.8, 38.4)   # 贺兰县 (LE1)
OTHER = shapely.box(107.0, 38.0, 107.4, 38.4)  # 平罗县 (LE2)


def _county(conn, code: str, name: str, le: int, geom) -> None:
    conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES "
                      "(:c, :n, :le, ST_Multi(ST_GeomFromText(:w, 4326)))"), {"c": code, "n": name, "le": le, "w": geom.wkt})


def _customers(conn, county: str, le: int, lon: float, n: int) -> None:
    for k in range(n):
        conn.execute(text("INSERT INTO customer (customer_id, county_code, legal_entity_id, deposit_balance, geom) "
                          "VALUES (:id, :c, :le, 500, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                     {"id": f"P{county}{k:03d}", "c": county, "le": le, "x": lon + 0.03 * (k % 10),
                      "y": 38.05 + 0.03 * (k // 10)})


def _unplaced(conn, county: str, n: int, lon: float | None) -> None:
    """``n`` customers of ``county`` no grid places: no village code and a point outside it (or none)."""
    for k in range(n):
        conn.execute(text("INSERT INTO customer (customer_id, county_code, deposit_balance, geom) VALUES "
                          "(:id, :c, 100, CASE WHEN CAST(:x AS float8) IS NULL THEN NULL "
                          "ELSE ST_SetSRID(ST_MakePoint(:x, 38.2), 4326) END)"),
                     {"id": f"U{county}{k:02d}", "c": county, "x": lon})


@pytest.fixture(scope="module")
def world(engine, map_grid):
    """Grid ids: village (永宁县, map_grid), h3_west (永宁县), h3_east_old, h3_east, h3_other.

    Not every customer is placed: 永宁县 has 48 in cells and 2 outside the county (added after its
    village grid was assigned), 贺兰县 40 in cells and 5 without any location.
    """
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LE2', '别的农商行')"))
        _county(conn, "640122", "贺兰县", 1, EAST)
        _county(conn, "640221", "平罗县", 2, OTHER)
        conn.execute(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) VALUES "
                          "('O3', '贺兰支行', 1, '640122', ST_SetSRID(ST_MakePoint(106.6, 38.2), 4326))"))
        conn.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code, capacity) "
                          "VALUES ('R4', '赵六', 1, 'O3', 1.0)"))
        _customers(conn, "640122", 1, 106.45, 40)
        _customers(conn, "640221", 2, 107.05, 20)
        _unplaced(conn, "640121", 2, 105.5)
        _unplaced(conn, "640122", 5, None)
        # Every customer belongs to its county's legal entity (as imports and the demo give them): figures
        # are counted within the reader's scope, and a customer of no legal entity is in no planner's.
        conn.execute(text("UPDATE customer c SET legal_entity_id = k.legal_entity_id FROM county k "
                          "WHERE k.adcode = c.county_code AND c.legal_entity_id IS NULL"))
        out = {"village": map_grid}
        west = grids.build_grid(conn, county_code="640121", kind="h3", resolution=7)["id"]
        assign.assign_customers(conn, grid_id=west)
        cells = grids.load_cells(conn, grid_id=west, with_stats=False)
        lon = cells.geometry.bounds.minx
        territories.assign_cells(conn, grid_id=west, cell_ids=list(cells.cell_id[lon < 106.2]), rm_code="R1", user="t")
        territories.assign_cells(conn, grid_id=west, cell_ids=list(cells.cell_id[lon >= 106.2]), rm_code="R3", user="t")
        gaps.score_grid(conn, grid_id=west, as_of="2026-01-01")
        out["h3_west"] = west
        out["h3_east_old"] = grids.build_grid(conn, county_code="640122", kind="h3", resolution=7)["id"]
        east = grids.build_grid(conn, county_code="640122", kind="h3", resolution=7)["id"]
        assign.assign_customers(conn, grid_id=east)
        east_cells = list(grids.load_cells(conn, grid_id=east, with_stats=False).cell_id)
        territories.assign_cells(conn, grid_id=east, cell_ids=east_cells, rm_code="R4", user="t")
        gaps.score_grid(conn, grid_id=east, as_of="2026-01-01")
        out["h3_east"] = east
        out["h3_other"] = grids.build_grid(conn, county_code="640221", kind="h3", resolution=7)["id"]
        pw = hash_password(PASSWORD)
        for name, role, le, rm, outlets in (("rm1", "rm", 1, "R1", []), ("bm1", "branch_manager", 1, None, ["O2"]),
                                            ("planner", "planner", 1, None, []), ("analyst", "analyst", 1, None, []),
                                            ("other", "planner", 2, None, []), ("root", "admin", None, None, [])):
            users.create_user(conn, username=name, password_hash=pw, role=role, legal_entity_id=le, rm_code=rm,
                              outlet_codes=outlets)
    return out


@pytest.fixture(scope="module")
def app(db_url, world, tmp_path_factory):
    home = tmp_path_factory.mktemp("province")
    return create_app(Settings(db=DatabaseSettings(url=db_url, home=home), auth=AuthSettings(secret_key="p" * 32)))


def _client(app, username):
    return signed_in_client(app, username, PASSWORD)


def _tile_grids(html: str) -> dict[str, set[int]]:
    """Grid ids of the tile layers in a page, per layer."""
    found: dict[str, set[int]] = {}
    for layer, gid in re.findall(r"/tiles/(\w+)/\{z\}/\{x\}/\{y\}\.pbf\?grid_id=(\d+)", html):
        found.setdefault(layer, set()).add(int(gid))
    return found


def test_province_grids_one_scoped_statement(engine, world):
    """The repository answer: latest grid per county, figures of the cells the scope reaches."""
    with engine.connect() as conn:
        rows = {r["county_code"]: r for r in province.province_grids(conn, scope=Scope("planner", 1), kind="h3")}
        bm = {r["county_code"]: r for r in province.province_grids(
            conn, scope=Scope("branch_manager", 1, outlet_codes=("O2",)), kind="village")}
        quantiles = province.score_quantiles(conn, scope=Scope("planner", 1),
                                             grid_ids=[world["h3_west"], world["h3_east"]])
    assert set(rows) == {"640121", "640122"}  # never the other legal entity's county
    west, east = rows["640121"], rows["640122"]
    assert west["grid_id"] == world["h3_west"] and east["grid_id"] == world["h3_east"]  # the latest, not h3_east_old
    assert west["customers"] == 48 and east["customers"] == 40 and west["rms"] == 2 and east["rms"] == 1
    # 入格率: placed over every customer of the county (a planner's scope is the whole legal entity).
    assert (west["scope_customers"], east["scope_customers"]) == (50, 45) and west["unplaced"] == 2
    assert west["coverage"] == 48 / 50 and east["coverage"] == 40 / 45
    for row, gid in ((west, world["h3_west"]), (east, world["h3_east"])):
        with engine.connect() as conn:
            scores = gaps.latest_scores(conn, grid_id=gid)
        assert row["blank_cells"] == int((scores["gap_class"] == "blank").sum()) and row["cells"] == len(scores)
    assert east["bounds"][0] >= 106.39 and east["bounds"][2] <= 106.81
    # Branch manager of O2 (R3 only): R3's four village cells, their twelve customers, their box.
    r3 = bm["640121"]
    assert (r3["grid_id"], r3["cells"], r3["customers"], r3["rms"]) == (world["village"], 4, 12, 1)
    # Issue 15: within the manager's scope, numerator and denominator alike (it was 12 / 50: their placed
    # customers over the whole county's).
    assert (r3["scope_customers"], r3["unplaced"], r3["coverage"]) == (12, 0, 1.0)
    assert r3["bounds"][0] == pytest.approx(106.3) and r3["bounds"][2] == pytest.approx(106.4)
    assert bm["640122"]["grid_id"] is None  # 贺兰县 has no village grid
    assert len(quantiles) == 201 and quantiles == sorted(quantiles)


def test_roles_and_scoping(app, world):
    with TestClient(app) as c:
        r = c.get("/maps/province", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/maps/login?next=%2Fmaps%2Fprovince"
    with _client(app, "rm1") as c:
        assert c.get("/maps/province").status_code == 403
        assert "/maps/province" not in c.get("/maps/").text
    with _client(app, "planner") as c:
        page = c.get("/maps/province")
        assert page.status_code == 200 and page.headers["cache-control"] == "private, no-store"
        want = {world["h3_west"], world["h3_east"]}
        assert _tile_grids(page.text) == {"cells": want, "territories": want, "customers": want}
        assert page.text.count("gridmkt.tileGroup(") == 3
        assert "平罗县" not in page.text and "/maps/static/" in page.text
        assert f"/maps/dashboard?grid_id={world['h3_east']}" in page.text
        village = c.get("/maps/province?kind=village")
        assert _tile_grids(village.text)["cells"] == {world["village"]}
        assert "no village grid: 贺兰县" in village.text
        assert c.get("/maps/province?kind=h3&res=9").status_code == 404
        assert c.get("/maps/province?kind=square").status_code == 422
        assert 'href="/maps/province"' in c.get("/maps/").text
    with _client(app, "analyst") as c:
        assert _tile_grids(c.get("/maps/province").text)["cells"] == {world["h3_west"], world["h3_east"]}
    with _client(app, "bm1") as c:  # outlet O2: R3 only, the east half of 永宁县's H3 grid
        page = c.get("/maps/province")
        assert page.status_code == 200
        assert _tile_grids(page.text)["cells"] == {world["h3_west"]} and "贺兰县" not in page.text
        # The box of R3's cells only, not the county's: tiles of R1's half are never asked for.
        west_edge = float(re.search(r'"bounds":\[\[[\d.]+,([\d.]+)\]', page.text).group(1))
        assert west_edge > 106.15
        assert _tile_grids(c.get("/maps/province?kind=village").text)["cells"] == {world["village"]}
    with _client(app, "other") as c:
        page = c.get("/maps/province")
        assert _tile_grids(page.text)["cells"] == {world["h3_other"]}
        assert "永宁县" not in page.text and "贺兰县" not in page.text
        assert c.get("/maps/province?kind=village").status_code == 404
    with _client(app, "root") as c:  # a system-wide admin: every legal entity
        assert _tile_grids(c.get("/maps/province").text)["cells"] == {
            world["h3_west"], world["h3_east"], world["h3_other"]}


def _summary_panel(page: str) -> str:
    """The HTML of the page's summary panel (embedded in its script as a JSON string)."""
    return json.loads(re.search(r'gridmkt\.panel\(\w+, ("(?:[^"\\]|\\.)*"), "topright"', page).group(1))


def _coverage_cells(page: str) -> dict[str, str]:
    """The 入格率 cell of each county row of the summary (by grid id), and of the total row ("total")."""
    html = _summary_panel(page)
    found = dict(re.findall(r'<tr data-grid="(\d+)">.*?<td class="gm-coverage"[^>]*>([^<]*)</td>', html))
    total = re.search(r'<tr class="gm-total">.*?<td class="gm-coverage"[^>]*>([^<]*)</td>', html)
    return found | {"total": total.group(1)}


def _placed_over_county(conn, grid_id: int, cells: list[str] | None = None) -> tuple[int, int]:
    """(customers the grid's assignment placed, in ``cells`` if given; customers of the grid's county)."""
    placed = conn.execute(text(
        "SELECT count(*) FROM customer_cell WHERE grid_id = :g AND cell_id IS NOT NULL "
        "AND (CAST(:cells AS text[]) IS NULL OR cell_id = ANY(:cells))"), {"g": grid_id, "cells": cells}).scalar()
    county = conn.execute(text("SELECT count(*) FROM customer cu JOIN grid g ON g.county_code = cu.county_code "
                               "WHERE g.id = :g"), {"g": grid_id}).scalar()
    return placed, county


def test_summary_coverage_per_county(app, engine, world):
    """入格率 in the page's summary: each county's placed customers over all its customers, and overall."""
    with engine.connect() as conn:  # from the assignment rows and the customers, not the cell statistics
        west = _placed_over_county(conn, world["h3_west"])
        east = _placed_over_county(conn, world["h3_east"])
        r3 = _placed_over_county(conn, world["village"], R3_CELLS)
    assert (west, east, r3) == ((48, 50), (40, 45), (12, 50))
    with _client(app, "planner") as c:
        page = c.get("/maps/province").text
    assert "<th>入格率 coverage</th>" in _summary_panel(page)
    assert _coverage_cells(page) == {
        str(world["h3_west"]): f"{west[0] / west[1]:.1%}", str(world["h3_east"]): f"{east[0] / east[1]:.1%}",
        "total": f"{(west[0] + east[0]) / (west[1] + east[1]):.1%}"}
    assert _coverage_cells(page)["total"] == "92.6%"
    with _client(app, "bm1") as c:  # R3's cells of the village grid only
        shown = _coverage_cells(c.get("/maps/province?kind=village").text)
    # Issue 15: within the manager's scope, numerator and denominator alike: R3's 12 placed customers are
    # all the customers they may see (it read 24.0%, 12 of the whole county's 50).
    assert shown == {str(world["village"]): "100.0%", "total": "100.0%"}


def _tile_box(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a Web Mercator tile in degrees."""
    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / 2**z))))
    return x / 2**z * 360 - 180, lat(y + 1), (x + 1) / 2**z * 360 - 180, lat(y)


@pytest.mark.browser
@needs_chromium
def test_province_page_draws_every_county_from_tiles_in_chromium(server, world):
    errors, tiles = [], []

    def watch(page):
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: tiles.append((r.url, r.status)) if "/tiles/" in r.url else None)

    with signed_in_page(server, "/maps/province", "planner", PASSWORD, watch=watch) as seen:
        page = seen.page
        page.hover(".leaflet-control-layers")
        for name in ("责任区 territories", "客户 customers"):
            page.locator(".leaflet-control-layers").get_by_text(name, exact=True).click()
        # Every grid's cells drawn: features kept per tile by Leaflet.VectorGrid (getFeatureId).
        count_js = """() => { const m = window[document.querySelector('.folium-map').id], out = {};
            m.eachLayer(l => { if (l.gmGrid && l._vectorTiles) { let n = 0;
              for (const k in l._vectorTiles) n += Object.keys(l._vectorTiles[k]._features || {}).length;
              out[l.gmGrid.grid] = (out[l.gmGrid.grid] || 0) + n; } });
            return out; }"""
        page.wait_for_function(f"() => Object.values(({count_js})()).filter(n => n > 100).length == 2")
        drawn = page.evaluate(count_js)
        coverage = page.locator(".gm-counties td.gm-coverage").all_inner_texts()  # two counties: shown unfolded
        page.wait_for_load_state("networkidle")
        page.mouse.move(10, 790)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "served_province.png"))
        # Hovering a cell outlines it and names it; its popup carries its tile properties and a dashboard link.
        page.mouse.move(640, 400)
        page.wait_for_selector(".leaflet-tooltip")
        page.wait_for_timeout(200)
        page.screenshot(path=str(SHOTS / "served_province_hover.png"))
        page.mouse.click(640, 400)
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for()
        assert "缺口评分 gap score" in popup.inner_text() and "/maps/dashboard?grid_id=" in popup.inner_html()
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / "served_province_popup.png"))
        canvases = page.locator(".leaflet-tile-container canvas").count()
    assert seen.failed == [] and seen.outside == [] and errors == []
    assert {int(g) for g in drawn} == {world["h3_west"], world["h3_east"]} and canvases >= 6
    assert coverage == [f"{48 / 50:.1%}", f"{40 / 45:.1%}", f"{88 / 95:.1%}"]  # 永宁县, 贺兰县, total
    bounds = {world["h3_west"]: (106.0, 38.0, 106.4, 38.4), world["h3_east"]: (106.4, 38.0, 106.8, 38.4)}
    seen = set()
    for url, status in tiles:
        m = re.search(r"/tiles/(\w+)/(\d+)/(\d+)/(\d+)\.pbf\?grid_id=(\d+)", url)
        layer, z, x, y, gid = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))
        seen.add((layer, gid))
        assert status in (200, 204) and gid in bounds
        w, s, e, n = _tile_box(z, x, y)  # only tiles that reach into that grid's own cells
        bw, bs, be, bn = bounds[gid]
        assert w < be + 0.01 and e > bw - 0.01 and s < bn + 0.01 and n > bs - 0.01, url
    assert seen == {(layer, g) for layer in ("cells", "territories", "customers") for g in bounds}


def test_province_page_from_literal_rows():
    """maps/ alone: one tile layer per drawn grid and layer, URL templates filled, counties without a grid named."""
    from maps.base import PageOptions
    from maps.classify import class_breaks
    from maps.province import province_page

    rows = [
        {"county_code": "640121", "county_name": "永宁县", "outline": shapely.box(106.0, 38.0, 106.4, 38.4),
         "grid_id": 7, "resolution": 8, "cells": 10, "customers": 30, "scope_customers": 40, "coverage": 0.75,
         "blank_cells": 2, "rms": 3, "bounds": (106.0, 38.0, 106.4, 38.4)},
        {"county_code": "640122", "county_name": "贺兰县", "outline": EAST, "grid_id": None, "resolution": None,
         "cells": 0, "customers": 0, "blank_cells": None, "rms": 0, "bounds": None},
    ]
    html = province_page(rows, options=PageOptions(inline=False), score_classes=class_breaks([0, 10, 50, 90]),
                         tile_url="/t/{layer}/{z}/{x}/{y}.pbf?g={grid_id}", dashboard_url="/d?g={grid_id}")
    for layer in ("cells", "territories", "customers"):
        assert html.count(f'"url":"/t/{layer}/{{z}}/{{x}}/{{y}}.pbf?g=7"') == 1
    assert '"bounds":[[38.0,106.0],[38.4,106.4]]' in html and "/d?g=7" in html
    assert "no h3 grid: 贺兰县" in html and "{grid_id}" not in html and "{layer}" not in html
    assert _coverage_cells(html) == {"7": "75.0%", "total": "75.0%"}
    # A GCJ-02 basemap: the tiles cannot follow it, so the outlines stay with the tiles and the legend says so.
    gcj = province_page(rows, options=PageOptions(inline=False, tile_url="/b/{z}/{x}/{y}.png", tile_crs="gcj02"),
                        score_classes=class_breaks([1.0]), tile_url="/t/{layer}/{z}/{x}/{y}.pbf?g={grid_id}",
                        dashboard_url="/d?g={grid_id}")
    assert "GCJ-02" in gcj and "[106.0,38.0]" in gcj  # the outline's corner, not shifted
    with pytest.raises(ValueError):
        province_page(rows[1:], options=PageOptions(inline=False), score_classes=class_breaks([]),
                      tile_url="/t/{layer}/{z}/{x}/{y}.pbf?g={grid_id}", dashboard_url="/d?g={grid_id}")
