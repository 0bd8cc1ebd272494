"""Vector tiles (/tiles/...) and the browser session (cookie sign-in, logout, login page).

Besides the shared fixture data (conftest), this module adds grid T in county
640104 (LEA): seven H3 res-9 cells around 106.40E 38.40N, three owned by RA1
(outlet OA1), three by RA2, one by nobody; three customers per cell near its
centre (names 顾客..., so a leaked name would show).
"""

from __future__ import annotations

import math

import h3
import mapbox_vector_tile
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from geodata import tiles
from geodata.scope import Scope

CENTER = (38.40, 106.40)
PER_CELL = 3


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The z/x/y tile (x, y) holding a WGS84 point."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def decode(content: bytes) -> dict:
    """Layers of an MVT as ``{name: [feature properties...]}``."""
    return {name: [f["properties"] for f in layer["features"]]
            for name, layer in mapbox_vector_tile.decode(content).items()}


@pytest.fixture(scope="module")
def grid_t(engine, data) -> dict:
    """Grid T: cells, owners, customers, placement, statistics and a gap run (see module docstring)."""
    center = h3.latlng_to_cell(*CENTER, 9)
    cells = [center] + sorted(set(h3.grid_disk(center, 1)) - {center})
    owners = {cells[0]: "RA1", cells[1]: "RA1", cells[2]: "RA1", cells[3]: "RA2", cells[4]: "RA2",
              cells[5]: "RA2", cells[6]: None}
    customers: dict[str, list[tuple[str, float, float]]] = {}
    with engine.begin() as c:
        x = c.execute
        gid = x(text("INSERT INTO grid (county_code, kind, resolution) VALUES ('640104', 'h3', 9) RETURNING id")
                ).scalar_one()
        x(text(f"CREATE TABLE customer_cell_{gid} PARTITION OF customer_cell FOR VALUES IN ({gid})"))
        run = x(text("INSERT INTO gap_run (grid_id, config, trigger) VALUES (:g, '{}', 'test') RETURNING id"),
                {"g": gid}).scalar_one()
        for i, cell in enumerate(cells):
            ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
            wkt = "POLYGON((" + ", ".join(f"{a} {b}" for a, b in ring + ring[:1]) + "))"
            x(text("INSERT INTO cell (grid_id, cell_id, area_km2, geom) VALUES (:g, :c, 0.1,"
                   " ST_Multi(ST_GeomFromText(:w, 4326)))"), {"g": gid, "c": cell, "w": wkt})
            x(text("INSERT INTO cell_stat (grid_id, cell_id, customers, households) VALUES (:g, :c, :n, 7)"),
              {"g": gid, "c": cell, "n": PER_CELL})
            x(text("INSERT INTO gap_score (gap_run_id, cell_id, score, gap_class, components, measures)"
                   " VALUES (:r, :c, :s, :k, '{}', '{}')"),
              {"r": run, "c": cell, "s": 10.0 * i, "k": "blank" if owners[cell] is None else "covered"})
            if owners[cell]:
                x(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by)"
                       " VALUES (:g, :c, :r, 'test', 'test')"), {"g": gid, "c": cell, "r": owners[cell]})
            lat0, lng0 = h3.cell_to_latlng(cell)
            for k in range(PER_CELL):
                cid = f"T{i}K{k}"
                lon, lat = lng0 + 0.0004 * (k - 1), lat0 + 0.0003 * (k - 1)
                customers.setdefault(cell, []).append((cid, lon, lat))
                x(text("INSERT INTO customer (customer_id, name, legal_entity_id, county_code, geom)"
                       " VALUES (:i, :n, :le, '640104', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                  {"i": cid, "n": f"顾客{i}{k}", "le": data["LEA"], "x": lon, "y": lat})
                x(text("INSERT INTO customer_cell VALUES (:g, :i, :c, 'point')"), {"g": gid, "i": cid, "c": cell})
    return {"id": gid, "cells": cells, "owners": owners, "customers": customers}


def _tiles_over(grid_t: dict, z: int) -> list[tuple[int, int]]:
    """Every tile at zoom z that holds a customer of grid T."""
    return sorted({tile_of(lon, lat, z) for pts in grid_t["customers"].values() for _, lon, lat in pts})


def _get(client, layer, z, x, y, grid_id, headers=None, cookies=None):
    if cookies:
        client.cookies.update(cookies)
    try:
        return client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf", params={"grid_id": grid_id}, headers=headers or {})
    finally:
        client.cookies.clear()


def _layer(client, auth, who, layer, z, grid_t) -> list[dict]:
    """Feature properties of ``layer`` over every tile at zoom z that holds grid T's customers."""
    out: list[dict] = []
    for x, y in _tiles_over(grid_t, z):
        r = _get(client, layer, z, x, y, grid_t["id"], auth(who))
        assert r.status_code in (200, 204), r.text
        if r.status_code == 200:
            assert r.headers["content-type"] == tiles_media()
            out += decode(r.content).get(layer, [])
    return out


def tiles_media() -> str:
    return "application/vnd.mapbox-vector-tile"


def test_all_customers_in_one_tile_at_z12(grid_t):
    """The fixture is laid out so z12 has one tile (the sum tests below rely on it)."""
    assert len(_tiles_over(grid_t, 12)) == 1


def test_cells_planner_sees_all_rm_sees_own(client, auth, grid_t):
    planner = _layer(client, auth, "planner_a", "cells", 12, grid_t)
    assert {p["cell_id"] for p in planner} == set(grid_t["cells"])
    by_id = {p["cell_id"]: p for p in planner}
    assert by_id[grid_t["cells"][3]]["rm"] == "RA2"
    assert by_id[grid_t["cells"][0]]["customers"] == PER_CELL
    assert by_id[grid_t["cells"][6]]["gap_class"] == "blank"
    assert "rm" not in by_id[grid_t["cells"][6]]  # nobody owns it: null values are left out of MVT
    own = _layer(client, auth, "rm_a1", "cells", 12, grid_t)
    assert {p["cell_id"] for p in own} == set(grid_t["cells"][:3])
    assert {p["rm"] for p in own} == {"RA1"}


def test_territories_dissolved_per_rm_in_scope(client, auth, grid_t):
    planner = _layer(client, auth, "planner_a", "territories", 12, grid_t)
    assert sorted((p["rm"], p["cells"]) for p in planner) == [("RA1", 3), ("RA2", 3)]
    assert [(p["rm"], p["cells"]) for p in _layer(client, auth, "bm_a", "territories", 12, grid_t)] == [("RA1", 3)]
    assert [p["rm"] for p in _layer(client, auth, "rm_a2", "territories", 12, grid_t)] == ["RA2"]


def test_dissolved_territory_is_one_polygon(client, auth, grid_t):
    """RA1's three neighbouring hexagons become one polygon, not three."""
    (x, y), = _tiles_over(grid_t, 12)
    r = _get(client, "territories", 12, x, y, grid_t["id"], auth("rm_a1"))
    (feature,) = mapbox_vector_tile.decode(r.content)["territories"]["features"]
    assert feature["geometry"]["type"] == "Polygon"


def test_low_zoom_counts_sum_to_customers(client, auth, grid_t):
    """z<=12: one point per cell with customers; counts add up to the customers in the tile."""
    for z in (10, 12):
        counts = _layer(client, auth, "planner_a", "customers", z, grid_t)
        assert len(counts) == 7 and sum(p["count"] for p in counts) == 7 * PER_CELL
    own = _layer(client, auth, "rm_a1", "customers", 12, grid_t)
    assert sorted(p["cell_id"] for p in own) == sorted(grid_t["cells"][:3])
    assert sum(p["count"] for p in own) == 3 * PER_CELL


@pytest.mark.parametrize("z", [13, 14])
def test_cell_counts_up_to_z14_sum_to_customers(client, auth, grid_t, z):
    """By default z13-14 still serve the precomputed counts per cell (fast on dense towns)."""
    planner = _layer(client, auth, "planner_a", "customers", z, grid_t)
    assert sum(p["count"] for p in planner) == 7 * PER_CELL
    assert all(set(p) == {"cell_id", "count"} for p in planner)
    assert sum(p["count"] for p in _layer(client, auth, "rm_a1", "customers", z, grid_t)) == 3 * PER_CELL


@pytest.mark.parametrize("z", [13, 14])
def test_pixel_clusters_sum_to_customers(engine, data, grid_t, z):
    """With cell counts only up to z12, z13-14 are pixel clusters with counts and no ids."""
    opts = tiles.TileOptions(cell_max_zoom=12)
    for who, scope, expected in (("planner", Scope(role="planner", legal_entity_id=data["LEA"]), 7 * PER_CELL),
                                 ("rm", Scope(role="rm", legal_entity_id=data["LEA"], rm_code="RA1"), 3 * PER_CELL)):
        pts = []
        with engine.connect() as conn:
            for x, y in _tiles_over(grid_t, z):
                body = tiles.tile(conn, layer="customers", z=z, x=x, y=y, grid_id=grid_t["id"], scope=scope,
                                  options=opts)
                pts += decode(body).get("customers", []) if body else []
        assert sum(p["count"] for p in pts) == expected, who
        assert all(set(p) == {"count"} for p in pts)
        if who == "planner":
            assert len(pts) < expected  # three customers 40 m apart share a cluster


@pytest.mark.parametrize("z", [15, 17])
def test_single_customers_when_zoomed_in(client, auth, grid_t, z):
    """z>=15: single customers with customer_id (and count 1) only; an RM gets only their own cells' customers."""
    mine = {cid for cell in grid_t["cells"][:3] for cid, _, _ in grid_t["customers"][cell]}
    own = _layer(client, auth, "rm_a1", "customers", z, grid_t)
    assert sorted(p["customer_id"] for p in own) == sorted(mine)
    assert all(set(p) == {"customer_id", "count"} and p["count"] == 1 for p in own)
    planner = _layer(client, auth, "planner_a", "customers", z, grid_t)
    assert len(planner) == 7 * PER_CELL
    bm = {p["customer_id"] for p in _layer(client, auth, "bm_a", "customers", z, grid_t)}
    assert bm == mine


def test_rm_tiles_hold_nothing_of_another_rm(client, auth, grid_t):
    """RA1 never gets RA2's code, RA2's cells, customer ids or names, in any layer at any zoom."""
    theirs = [c for c in grid_t["cells"][3:]] + [cid for c in grid_t["cells"][3:] for cid, _, _ in
                                                grid_t["customers"][c]]
    markers = [m.encode() for m in ["RA2", "顾客3", "顾客4", "顾客5", "CA2", "李四", *theirs]]
    for layer in tiles.LAYERS:
        for z in (10, 12, 13, 14, 15, 16):
            for x, y in _tiles_over(grid_t, z):
                r = _get(client, layer, z, x, y, grid_t["id"], auth("rm_a1"))
                assert r.status_code in (200, 204)
                leaked = [m for m in markers if m in r.content]
                assert not leaked, (layer, z, leaked)


def test_empty_tile_is_204(client, auth, grid_t):
    r = _get(client, "cells", 12, 0, 0, grid_t["id"], auth("planner_a"))
    assert r.status_code == 204 and r.content == b""
    # RA1 in a tile holding only cells of others
    far = h3.cell_to_latlng(grid_t["cells"][6])
    assert _get(client, "customers", 20, *tile_of(far[1], far[0], 20), grid_t["id"], auth("rm_a1")).status_code == 204


def test_headers_and_errors(client, auth, grid_t, data):
    (x, y), = _tiles_over(grid_t, 12)
    r = _get(client, "cells", 12, x, y, grid_t["id"], auth("planner_a"))
    assert r.status_code == 200 and r.headers["cache-control"].startswith("private")
    for bad in ("23/0/0", "3/8/0", "3/0/8", "3/-1/0", "2/1/x"):
        assert client.get(f"/tiles/cells/{bad}.pbf", params={"grid_id": grid_t["id"]},
                          headers=auth("planner_a")).status_code == 422, bad
    assert _get(client, "roads", 12, x, y, grid_t["id"], auth("planner_a")).status_code == 404
    assert _get(client, "cells", 12, x, y, data["grid_b"], auth("planner_a")).status_code == 404
    assert _get(client, "cells", 12, x, y, 999999, auth("admin")).status_code == 404
    assert _get(client, "cells", 12, x, y, grid_t["id"]).status_code == 401


def test_cookie_session(client, grid_t, password):
    (x, y), = _tiles_over(grid_t, 12)
    r = client.post("/api/v1/auth/session", data={"username": "rm_a1", "password": password})
    assert r.status_code == 200 and r.json()["username"] == "rm_a1" and "access_token" not in r.json()
    cookie = r.headers["set-cookie"]
    assert "gridmkt_token=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http here
    token = r.cookies["gridmkt_token"]
    client.cookies.clear()
    ok = _get(client, "cells", 12, x, y, grid_t["id"], cookies={"gridmkt_token": token})
    assert ok.status_code == 200
    assert {p["rm"] for p in decode(ok.content)["cells"]} == {"RA1"}
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert _get(client, "cells", 12, x, y, grid_t["id"], cookies={"gridmkt_token": forged}).status_code == 401
    # the cookie is for tiles and pages only; /api/v1 stays bearer-only
    client.cookies.update({"gridmkt_token": token})
    try:
        assert client.get("/api/v1/auth/me").status_code == 401
    finally:
        client.cookies.clear()
    bad = client.post("/api/v1/auth/session", data={"username": "rm_a1", "password": "wrong"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers


def test_cookie_secure_over_https(app, password):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="https://testserver") as c:
        r = c.post("/api/v1/auth/session", data={"username": "planner_a", "password": password})
        assert r.status_code == 200 and "Secure" in r.headers["set-cookie"]


def test_form_login_redirects_and_logout(client, password):
    r = client.post("/api/v1/auth/session", follow_redirects=False,
                    data={"username": "bm_a", "password": password, "next": "/maps/rm?rm=RA1"})
    assert r.status_code == 303 and r.headers["location"] == "/maps/rm?rm=RA1"
    assert "gridmkt_token=" in r.headers["set-cookie"]
    r = client.post("/api/v1/auth/session", follow_redirects=False,
                    data={"username": "bm_a", "password": "nope", "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/maps/login?failed=1&next=/maps/"
    assert "set-cookie" not in r.headers
    out = client.post("/api/v1/auth/logout")
    assert out.status_code == 204
    assert 'gridmkt_token=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    client.cookies.clear()


def test_login_page(client):
    r = client.get("/maps/login", params={"next": '/maps/x"><script>alert(1)</script>'})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'action="/api/v1/auth/session"' in r.text and "<script" not in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "http://" not in r.text and "https://" not in r.text  # nothing loaded from elsewhere
    r = client.get("/maps/login", params={"next": "//evil.example/x", "failed": "1"})
    assert 'value="/maps/"' in r.text and "错误" in r.text


@pytest.mark.parametrize(("value", "expected"), [
    ("/maps/rm", "/maps/rm"), (None, "/maps/"), ("//evil", "/maps/"), ("https://evil", "/maps/"),
    ("/\\evil", "/maps/"), ("/a\nb", "/maps/"),
])
def test_safe_next(value, expected):
    from api.routes.session import safe_next

    assert safe_next(value) == expected


def test_check_tile_literal():
    tiles.check_tile(0, 0, 0)
    tiles.check_tile(22, 2**22 - 1, 0)
    for z, x, y in ((23, 0, 0), (1, 2, 0), (1, 0, 2), (-1, 0, 0)):
        with pytest.raises(tiles.BadInput):
            tiles.check_tile(z, x, y)


def _edge_lon(x: int, z: int) -> float:
    return x / 2**z * 360 - 180


_LON = st.one_of(st.floats(106.400, 106.406), st.sampled_from([_edge_lon(x, 16) for x in (52138, 52139)]))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pts=st.lists(st.tuples(_LON, st.floats(38.400, 38.405)), min_size=1, max_size=30),
       z=st.integers(13, 16))
def test_every_point_in_exactly_one_tile(engine, data, grid_t, pts, z):
    """Whatever the points (some on tile edges), the counts (z13-14) or single points (z>=15) of
    the tiles around them add up to their number: no point lost or counted twice at an edge."""
    scope = Scope(role="admin", legal_entity_id=None)
    (x0, y1), (x1, y0) = tile_of(106.400, 38.400, z), tile_of(106.406, 38.405, z)
    with engine.connect() as conn:
        conn.execute(text("UPDATE customer SET county_code = '640105' WHERE county_code = '640104'"))
        conn.execute(text("INSERT INTO customer (customer_id, legal_entity_id, county_code, geom)"
                          " VALUES (:i, :le, '640104', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                     [{"i": f"P{i}", "le": data["LEA"], "x": x, "y": y} for i, (x, y) in enumerate(pts)])
        total = 0
        for tx in range(x0 - 1, x1 + 2):
            for ty in range(y0 - 1, y1 + 2):
                body = tiles.tile(conn, layer="customers", z=z, x=tx, y=ty, grid_id=grid_t["id"], scope=scope,
                                  options=tiles.TileOptions(cell_max_zoom=12))
                total += sum(p.get("count", 1) for p in (decode(body).get("customers", []) if body else []))
        conn.rollback()
    assert total == len(pts)


def test_customers_sharing_a_pixel_are_counted_not_dropped(client, auth, grid_t, engine):
    """Several customers in one building (one pixel at z15) come as one point with their count."""
    cell = grid_t["cells"][0]
    cid, lon, lat = grid_t["customers"][cell][0]
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) WHERE customer_id = ANY(:ids)"),
                     {"x": lon, "y": lat, "ids": [c for c, _, _ in grid_t["customers"][cell]]})
    try:
        pts = _layer(client, auth, "planner_a", "customers", 15, grid_t)
        assert sum(p["count"] for p in pts) == 7 * PER_CELL
        shared = [p for p in pts if p["count"] > 1]
        assert len(shared) == 1 and shared[0]["count"] == PER_CELL and "customer_id" not in shared[0]
    finally:
        with engine.begin() as conn:
            for c, x, y in grid_t["customers"][cell]:
                conn.execute(text("UPDATE customer SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) WHERE customer_id = :c"),
                             {"x": x, "y": y, "c": c})
