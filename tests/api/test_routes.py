"""Reference and customer routes: GeoJSON, bbox, paging, masking by role, links, audit, errors."""

from __future__ import annotations

from sqlalchemy import text

from api.errors import status_for
from geodata.errors import BadInput, Conflict, DatabaseUnavailable, NotFound


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok", "database": True}
    assert client.get("/ready").json()["ready"] is True


def test_counties_are_a_feature_collection_with_bbox_and_paging(client, auth):
    h = auth("planner_a")
    fc = client.get("/api/v1/counties", headers=h).json()
    assert fc["type"] == "FeatureCollection" and fc["numberMatched"] == 2
    assert {f["id"] for f in fc["features"]} == {"640104", "640105"}
    assert fc["features"][0]["geometry"]["type"] == "MultiPolygon"
    # 兴庆区 lies east of 106.2; 西夏区 west of it: a small box around 兴庆区's centre keeps one.
    fc = client.get("/api/v1/counties", params={"bbox": "106.3,38.45,106.35,38.5", "geometry": False},
                    headers=h).json()
    assert [f["id"] for f in fc["features"]] == ["640104"] and fc["features"][0]["geometry"] is None
    page = client.get("/api/v1/counties", params={"limit": 1, "offset": 1, "geometry": False}, headers=h).json()
    assert page["numberReturned"] == 1 and page["numberMatched"] == 2 and page["next_offset"] is None
    assert client.get("/api/v1/counties", params={"limit": 1}, headers=h).json()["next_offset"] == 1
    assert client.get("/api/v1/counties", headers=auth("admin")).json()["numberMatched"] == 3


def test_bad_query_parameters_get_422_naming_them(client, auth):
    h = auth("planner_a")
    for params, name in (({"bbox": "1,2,3"}, "bbox"), ({"bbox": "10,0,5,1"}, "bbox"),
                         ({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"geometry": "maybe"}, "geometry")):
        r = client.get("/api/v1/counties", params=params, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", name], params
    r = client.get("/api/v1/customers", params={"county_code": "64'; DROP TABLE customer;--"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "county_code"]


def test_injection_in_string_parameters_is_harmless(client, auth, engine):
    h = auth("planner_a")
    for value in ("' OR '1'='1", "x'); DELETE FROM customer; --"):
        r = client.get("/api/v1/customers", params={"segment": value}, headers=h)
        assert r.status_code == 200 and r.json()["total"] == 0
        assert client.get(f"/api/v1/customers/{value}", headers=h).status_code == 404
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM customer")).scalar() == 4


def test_customer_masked_by_role_with_links_and_audited(client, auth, engine):
    shown = {who: client.get("/api/v1/customers/CA1", headers=auth(who)).json()
             for who in ("admin", "rm_a1", "bm_a", "planner_a", "analyst_a")}
    for who in ("admin", "rm_a1", "bm_a"):
        assert shown[who]["name"] == "张三" and shown[who]["phone"] == "13812341234", who
    for who in ("planner_a", "analyst_a"):
        c = shown[who]
        assert (c["name"], c["phone"], c["id_number"]) == ("张*", "138****1234", "110101********1234"), who
    assert shown["rm_a1"]["links"] == {"tags": "https://tags.example/customers/CA1",
                                       "leads": "https://leads.example/leads?customer=CA1"}
    with engine.connect() as c:
        who = c.execute(text("SELECT username FROM audit_log WHERE object_type = 'customer'"
                             " AND object_id = 'CA1' ORDER BY id")).scalars().all()
    assert who == ["admin", "rm_a1", "bm_a", "planner_a", "analyst_a"]


def test_customer_lists_follow_territories(client, auth, engine):
    ids = lambda who, **p: [c["customer_id"] for c in  # noqa: E731
                            client.get("/api/v1/customers", params=p, headers=auth(who)).json()["items"]]
    assert ids("rm_a1") == ["CA1"] and ids("rm_a2") == ["CA2"] and ids("bm_a") == ["CA1"]
    assert ids("planner_a") == ["CA1", "CA2", "CA3"] and ids("rm_b") == ["CB1"]
    assert ids("planner_a", rm_code="RA2") == ["CA2"]
    # Handing cell a2 over to RA1 moves CA2 into rm_a1's view at once.
    with engine.begin() as c:
        c.execute(text("UPDATE territory SET valid_to = now() WHERE cell_id = 'a2' AND valid_to IS NULL"))
        c.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by)"
                       " SELECT grid_id, 'a2', 'RA1', 'test', 'test' FROM cell WHERE cell_id = 'a2'"))
    try:
        assert ids("rm_a1") == ["CA1", "CA2"] and ids("rm_a2") == [] and ids("bm_a") == ["CA1", "CA2"]
    finally:
        with engine.begin() as c:
            c.execute(text("DELETE FROM territory WHERE cell_id = 'a2' AND valid_to IS NULL"))
            c.execute(text("UPDATE territory SET valid_to = NULL WHERE cell_id = 'a2'"))


def test_rms_scoped_and_phones_masked(client, auth):
    codes = lambda who: [r["code"] for r in client.get("/api/v1/rms", headers=auth(who)).json()["items"]]  # noqa: E731
    assert codes("rm_a1") == ["RA1"] and codes("bm_a") == ["RA1"] and codes("analyst_a") == ["RA1", "RA2"]
    assert client.get("/api/v1/rms/RA1", headers=auth("analyst_a")).json()["phone"] == "139****0001"
    assert client.get("/api/v1/rms/RA1", headers=auth("bm_a")).json()["phone"] == "13900000001"


def test_domain_errors_map_to_status_and_json_body(client, auth):
    assert [status_for(e("x")) for e in (NotFound, Conflict, BadInput, DatabaseUnavailable)] == [404, 409, 422, 503]
    assert status_for(RuntimeError("x")) == 500
    r = client.get("/api/v1/outlets/NOPE", headers=auth("planner_a"))
    assert r.status_code == 404 and r.json() == {"error": "NotFound", "detail": "outlet 'NOPE' does not exist"}


def test_grid_errors_are_mapped_in_the_one_table():
    from grid.errors import (
        GapConfigError,
        GapInputError,
        GridError,
        InvalidInput,
        SiteInputError,
        SiteSolverError,
    )

    assert status_for(InvalidInput("x")) == 422 and status_for(GridError("x")) == 400
    # once outside GridError (500 as plain ValueErrors); input errors are 422 like every other
    assert [status_for(e("x")) for e in (GapConfigError, GapInputError, SiteInputError)] == [422, 422, 422]
    assert status_for(SiteSolverError("x")) == 500


def test_openapi_describes_every_operation_and_parameter(app):
    spec = app.openapi()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("description") or op.get("summary"), (method, path)
            for p in op.get("parameters", []):
                assert p.get("description"), (method, path, p["name"])
    # the versioned API, health checks, vector tiles, the map pages (HTML behind the same sign-in) and OGC API
    # Features/Tiles (/ogc, for QGIS and GDAL)
    assert all(p.startswith(("/api/v1/", "/health", "/ready", "/tiles/", "/maps/", "/ogc")) for p in spec["paths"])
