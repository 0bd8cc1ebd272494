"""A scored, owned village grid of the square test county, and the map pages exported from it."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text

from geodata import gaps, grids, scenarios, territories
from tests.geodata.conftest import square_grid  # noqa: F401  (fixture re-used here)

# Village n (1..16) sits at (106.05 + 0.1 i, 38.05 + 0.1 j) with n = 4 i + j + 1; its cell id is its code.
R1_CELLS = [f"640121100{n:03d}" for n in range(1, 9)]  # the west half
R2_CELLS = [f"640121100{n:03d}" for n in range(9, 13)]
R3_CELLS = [f"640121100{n:03d}" for n in range(13, 17)]
MOVED = "640121100009"  # R2 → R1 in scenario plan-b

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium; ./run test installs it")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for a module's offline pages (skip with ``needs_chromium`` where it is missing)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextmanager
def signed_in_client(app, username: str, password: str):
    """A started TestClient of ``app`` holding ``username``'s session cookie (``with``: the app's lifespan runs
    first, so a test signing in before any other client started it works on its own)."""
    with TestClient(app) as c:
        r = c.post("/api/v1/auth/session", data={"username": username, "password": password})
        assert r.status_code == 200 and "gridmkt_token" in r.cookies
        yield c


@dataclass
class Browsing:
    """A Chromium page and what it tried that it must not: requests off the test server, failed requests."""

    page: object
    outside: list = field(default_factory=list)
    failed: list = field(default_factory=list)


@contextmanager
def signed_in_page(server: str, path: str, username: str, password: str, viewport=(1280, 800), watch=None):
    """Headless Chromium that reaches only ``server``: ``path`` sends it to the sign-in, and back once signed in.

    ``watch(page)`` runs first, to attach listeners that must see every request.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}).new_page()
            seen = Browsing(page)
            page.route("**/*", lambda route: (seen.outside.append(route.request.url), route.abort())
                       if not route.request.url.startswith(server) else route.continue_())
            page.on("requestfailed", lambda req: seen.failed.append(req.url))
            if watch is not None:
                watch(page)
            page.goto(f"{server}{path}")
            assert "/maps/login" in page.url, page.url  # no session yet
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(f"**{path}")
            yield seen
        finally:
            browser.close()


@pytest.fixture(scope="module")
def map_grid(engine, square_grid):  # noqa: F811
    """Grid id: R1/R2/R3 own cells, customers have names, C0010 has two open leads, gaps scored, plan-b drafted."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer SET name = CASE WHEN customer_id LIKE '%0' THEN '张三' ELSE '欧阳娜娜' END"))
        conn.execute(text("INSERT INTO lead (lead_id, customer_id, lead_type, status) VALUES "
                          "('L1', 'C0010', 'maturity', 'open'), ('L2', 'C0010', 'care', 'open'), "
                          "('L3', 'C0011', 'care', 'closed')"))
        for rm, cells in (("R1", R1_CELLS), ("R2", R2_CELLS), ("R3", R3_CELLS)):
            territories.assign_cells(conn, grid_id=square_grid, cell_ids=cells, rm_code=rm, user="test")
        gaps.score_grid(conn, grid_id=square_grid, as_of="2026-01-01")
        sc = scenarios.create_scenario(conn, grid_id=square_grid, name="plan-b", user="test")
        scenarios.edit_scenario(conn, scenario_id=sc["id"], cell_ids=[MOVED], rm_code="R1")
    return square_grid


@pytest.fixture(scope="module")
def preview_run(engine, map_grid):
    """(village grid id, import run id): two villages share 村16's point, one has none; the run rejected 2 rows."""
    with engine.begin() as conn:
        run = conn.execute(text(
            "INSERT INTO import_run (kind, file_name, sha256, user_name, status, counts) VALUES "
            "('villages', '村表.csv', 'x', 'test', 'ok', '{\"rows\": 20, \"inserted\": 18, \"rejected\": 2}') "
            "RETURNING id")).scalar_one()
        conn.execute(text(
            "INSERT INTO village (code, name, township_code, county_code, households, coord_level, geom) "
            "SELECT '640121100017', '村17', township_code, county_code, 50, 'township', geom FROM village "
            "WHERE code = '640121100016' UNION ALL "
            "SELECT '640121100018', '村18', '640121100', '640121', 40, 'none', NULL"))
        conn.execute(text("UPDATE village SET import_run_id = :r"), {"r": run})
        g = grids.build_grid(conn, county_code="640121", kind="village")
    return g["id"], run


@pytest.fixture(scope="module")
def server(app):
    """Base URL of the module's ``app`` fixture served by uvicorn on a free loopback port (for the browser)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)
