"""Grid, cell, gap and site routes: scoping inside a legal entity, GeoJSON shape, jobs, 422s.

Uses the seeded data of ``conftest.py`` (grid_a: a1 owned by RA1, a2 by RA2 and locked;
grid_b in the other legal entity), plus one real H3 grid built through the API.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text


def _wait(client, app, auth, who, started):
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["poll"] == f"/api/v1/jobs/{body['job_id']}"
    app.state.jobs.wait(body["job_id"], timeout=120)
    job = client.get(body["poll"], headers=auth(who)).json()
    assert job["status"] == "done", job
    return job["result"]


def test_grid_list_is_per_legal_entity(client, auth, data):
    """A planner lists their legal entity's grids only; an admin sees both."""
    ids = [g["id"] for g in client.get("/api/v1/grids", headers=auth("planner_a")).json()["items"]]
    assert data["grid_a"] in ids and data["grid_b"] not in ids
    ids = [g["id"] for g in client.get("/api/v1/grids", headers=auth("admin")).json()["items"]]
    assert {data["grid_a"], data["grid_b"]} <= set(ids)
    r = client.get(f"/api/v1/grids/{data['grid_b']}", headers=auth("planner_a"))
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    assert client.get(f"/api/v1/grids/{data['grid_a']}", headers=auth("rm_a1")).json()["county_code"] == "640104"


def test_cells_geometry_for_all_figures_only_in_scope(client, auth, data):
    """rm_a1 gets both cells' geometry but a2's customers and owner are null; a planner gets them."""
    url = f"/api/v1/grids/{data['grid_a']}/cells"
    fc = client.get(url, headers=auth("rm_a1")).json()
    assert fc["type"] == "FeatureCollection" and fc["numberMatched"] == 2
    props = {f["id"]: f["properties"] for f in fc["features"]}
    assert props["a1"]["customers"] == 1 and props["a1"]["owner_rm"] == "RA1"
    assert props["a2"]["customers"] is None and props["a2"]["owner_rm"] is None
    assert props["a2"]["households"] == 10 and props["a2"]["locked"] is True
    assert fc["features"][0]["geometry"]["type"] == "MultiPolygon"
    fc = client.get(url, headers=auth("planner_a")).json()
    props = {f["id"]: f["properties"] for f in fc["features"]}
    assert props["a2"]["owner_rm"] == "RA2" and props["a2"]["gap_class"] == "blank"
    assert props["a2"]["score"] == 80.0


def test_cells_paging_bbox_and_properties(client, auth, data):
    """limit/offset page in cell-id order; bbox filters; properties= keeps only the chosen ones."""
    url = f"/api/v1/grids/{data['grid_a']}/cells"
    first = client.get(url, params={"limit": 1}, headers=auth("planner_a")).json()
    assert [f["id"] for f in first["features"]] == ["a1"] and first["next_offset"] == 1
    second = client.get(url, params={"limit": 1, "offset": 1}, headers=auth("planner_a")).json()
    assert [f["id"] for f in second["features"]] == ["a2"] and second["next_offset"] is None
    away = client.get(url, params={"bbox": "100,30,101,31"}, headers=auth("planner_a")).json()
    assert away["numberMatched"] == 0 and away["features"] == []
    near = client.get(url, params={"bbox": "106.2,38.4,106.4,38.6", "properties": "label, customers"},
                      headers=auth("planner_a")).json()
    assert near["numberMatched"] == 2
    assert set(near["features"][0]["properties"]) == {"cell_id", "label", "customers"}


@pytest.mark.parametrize("params, name", [
    ({"properties": "customers,password"}, "properties"),
    ({"properties": " , "}, "properties"),
    ({"bbox": "1,2,3"}, "bbox"),
    ({"res": 99}, "res"),
    ({"limit": 0}, "limit"),
])
def test_bad_cell_query_parameters_name_the_parameter(client, auth, data, params, name):
    """Bad query parameters answer 422 with the parameter in `loc`."""
    r = client.get(f"/api/v1/grids/{data['grid_a']}/cells", params=params, headers=auth("planner_a"))
    assert r.status_code == 422
    assert any(e["loc"][-1] == name for e in r.json()["detail"]), r.json()


def test_one_cell_with_owner_score_and_links(client, auth, data):
    """A cell in scope: stats, owner, lock, score with components, links with its customer ids."""
    r = client.get(f"/api/v1/grids/{data['grid_a']}/cells/a2", headers=auth("planner_a"))
    assert r.status_code == 200, r.text
    p = r.json()["properties"]
    assert p["owner_rm"] == "RA2" and p["locked"] is True and p["customers"] == 1
    assert p["gap"]["gap_class"] == "blank" and p["gap"]["components"] == {"contrib_no_recent_visit": 40.0}
    assert p["gap"]["reason_en"] == "no visit in 90 days"
    assert p["links"]["tags"] == "https://tags.example/customers?ids=CA2"
    assert p["links"]["leads"] == "https://leads.example/leads?customers=CA2"
    assert p["links"]["customers"] == f"/api/v1/grids/{data['grid_a']}/cells/a2/customers"


def test_rm_and_branch_manager_reach_only_their_cells(client, auth, data):
    """rm_a1 and bm_a (outlet OA1) get 404 for a2 (RA2's cell), its customers and its explanation."""
    g = data["grid_a"]
    for who in ("rm_a1", "bm_a"):
        for url in (f"/api/v1/grids/{g}/cells/a2", f"/api/v1/grids/{g}/cells/a2/customers"):
            r = client.get(url, headers=auth(who))
            assert r.status_code == 404, (who, url, r.text)
            assert "CA2" not in r.text
        assert client.get(f"/api/v1/grids/{g}/cells/a1", headers=auth(who)).status_code == 200
    assert client.get(f"/api/v1/grids/{g}/cells/a1", headers=auth("rm_a2")).status_code == 404


def test_cell_customers_masked_by_role_and_audited(client, auth, data, engine):
    """Planner: masked name/phone; the owning RM: unmasked; both with deep links; views audited."""
    url = f"/api/v1/grids/{data['grid_a']}/cells/a1/customers"
    planner = client.get(url, headers=auth("planner_a")).json()
    assert planner["total"] == 1
    c = planner["items"][0]
    assert c["customer_id"] == "CA1" and c["name"] == "张*" and c["phone"] == "138****1234"
    assert c["links"]["tags"] == "https://tags.example/customers/CA1"
    own = client.get(url, headers=auth("rm_a1")).json()["items"][0]
    assert own["name"] == "张三"
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM audit_log WHERE object_type = 'cell_customers'"
                              " AND object_id = :o"), {"o": f"{data['grid_a']}/a1"}).scalar()
    assert n >= 2


def test_unplaced_is_for_planners(client, auth, data):
    """Unplaced customers: 403 for an RM, a list for a planner."""
    url = f"/api/v1/grids/{data['grid_a']}/unplaced"
    assert client.get(url, headers=auth("rm_a1")).status_code == 403
    r = client.get(url, headers=auth("planner_a"))
    assert r.status_code == 200 and r.json()["items"] == []


def test_writes_are_for_planners(client, auth, data):
    """RMs, branch managers and analysts may not build grids or assign customers."""
    for who in ("rm_a1", "bm_a", "analyst_a"):
        r = client.post("/api/v1/grids", json={"county_code": "640104", "kind": "h3", "resolution": 7},
                        headers=auth(who))
        assert r.status_code == 403, who
        assert client.post(f"/api/v1/grids/{data['grid_a']}/assignment", headers=auth(who)).status_code == 403


def test_build_for_another_legal_entity_county_is_404(client, app, auth):
    """A planner cannot build a grid for a county of another legal entity. Without a resolution an H3 grid
    is built at 8, as ``gridmkt grid build`` builds it (issue 14: one default for both faces; it was 422)."""
    r = client.post("/api/v1/grids", json={"county_code": "640122", "kind": "h3", "resolution": 7},
                    headers=auth("planner_a"))
    assert r.status_code == 404
    r = client.post("/api/v1/grids", json={"county_code": "640104", "kind": "h3"}, headers=auth("planner_a"))
    assert _wait(client, app, auth, "planner_a", r)["resolution"] == 8


@pytest.fixture(scope="module")
def built(client, app, auth):
    """A real H3 res-7 grid of 兴庆区 built and assigned through the API jobs."""
    result = _wait(client, app, auth, "planner_a", client.post(
        "/api/v1/grids", json={"county_code": "640104", "kind": "h3", "resolution": 7}, headers=auth("planner_a")))
    gid = result["id"]
    assigned = _wait(client, app, auth, "planner_a", client.post(
        f"/api/v1/grids/{gid}/assignment", headers=auth("planner_a")))
    return gid, result, assigned


def test_build_and_assign_jobs(client, auth, built):
    """The build job stores a grid (cell count in its summary); assignment places CA1 and lists CA3 unplaced."""
    gid, result, assigned = built
    assert result["kind"] == "h3" and result["resolution"] == 7 and result["cell_count"] > 50
    assert assigned["customers"] == 2 and assigned["by_point"] == 1 and assigned["no_location"] == 1
    g = client.get(f"/api/v1/grids/{gid}", headers=auth("planner_a")).json()
    assert g["cell_count"] == result["cell_count"] and g["assigned_at"] is not None
    unplaced = client.get(f"/api/v1/grids/{gid}/unplaced", headers=auth("planner_a")).json()
    assert unplaced["items"] == [{"customer_id": "CA3", "how": "no_location"}] and unplaced["total"] == 1


def test_rollup_sums_children(client, auth, built):
    """res=5 rolls the res-7 grid up: fewer cells, same customer total, polygons."""
    gid, result, _ = built
    fine = client.get(f"/api/v1/grids/{gid}/cells", params={"limit": 1000, "properties": "customers"},
                      headers=auth("planner_a")).json()
    assert fine["numberMatched"] == result["cell_count"]
    coarse = client.get(f"/api/v1/grids/{gid}/cells", params={"res": 5, "limit": 1000, "properties": "customers"},
                        headers=auth("planner_a")).json()
    assert 0 < coarse["numberMatched"] < fine["numberMatched"]
    total = sum(f["properties"]["customers"] or 0 for f in coarse["features"])
    assert total == sum(f["properties"]["customers"] or 0 for f in fine["features"]) == 1
    assert coarse["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert coarse["features"][0]["properties"]["resolution"] == 5
    # Roll-up figures sum several territories: an RM gets geometry only.
    rm = client.get(f"/api/v1/grids/{gid}/cells", params={"res": 5}, headers=auth("rm_a1")).json()
    assert all(f["properties"]["customers"] is None for f in rm["features"])
    r = client.get(f"/api/v1/grids/{gid}/cells", params={"res": 8}, headers=auth("planner_a"))
    assert r.status_code == 422


def test_gap_scores_follow_territory_scope(client, auth, data):
    """Seeded run: a planner sees a2 (blank) first; rm_a1 sees only a1 (a2 is RA2's), also in /blank."""
    url = f"/api/v1/grids/{data['grid_a']}/gaps"
    fc = client.get(url, headers=auth("planner_a")).json()
    assert [f["id"] for f in fc["features"]] == ["a2", "a1"] and fc["gap_run"]["id"] == data["gap_run_a"]
    assert fc["features"][0]["properties"]["reason_zh"] == "90天内无走访"
    assert fc["features"][0]["geometry"]["type"] == "MultiPolygon"
    rm = client.get(url, headers=auth("rm_a1")).json()
    assert [f["id"] for f in rm["features"]] == ["a1"]
    blank = client.get(f"{url}/blank", headers=auth("planner_a")).json()["items"]
    assert [(b["rank"], b["cell_id"]) for b in blank] == [(1, "a2")]
    assert client.get(f"{url}/blank", headers=auth("rm_a1")).json()["items"] == []
    why = client.get(f"{url}/cells/a2", headers=auth("analyst_a")).json()
    assert why["contributions"] == [{"component": "no_recent_visit", "contribution": 40.0, "value": None}]
    assert client.get(f"{url}/cells/a2", headers=auth("bm_a")).status_code == 404
    assert client.get(url, params={"gap_class": "nope"}, headers=auth("planner_a")).status_code == 422


def test_score_and_sites_jobs_on_a_real_grid(client, app, auth, built):
    """Scoring the built grid stores a run covering every cell; every cell is unowned, so an RM sees
    them all; site suggestion reports households before/after."""
    gid, result, _ = built
    summary = _wait(client, app, auth, "planner_a", client.post(
        f"/api/v1/grids/{gid}/gaps/score", headers=auth("planner_a")))
    assert summary["cells"] == result["cell_count"]
    assert sum(summary["classes"].values()) == result["cell_count"]
    fc = client.get(f"/api/v1/grids/{gid}/gaps", params={"limit": 5}, headers=auth("rm_a1")).json()
    assert fc["numberMatched"] == result["cell_count"] and fc["gap_run"]["id"] == summary["gap_run_id"]
    scores = [f["properties"]["score"] for f in fc["features"]]
    assert scores == sorted(scores, reverse=True)
    assert {"components", "measures", "reason_en", "gap_class"} <= set(fc["features"][0]["properties"])
    assert client.post(f"/api/v1/grids/{gid}/gaps/score", headers=auth("analyst_a")).status_code == 403
    assert client.post(f"/api/v1/grids/{gid}/gaps/sites", json={"count": 2, "radius_km": 3},
                       headers=auth("rm_a1")).status_code == 403
    r = client.post(f"/api/v1/grids/{gid}/gaps/sites", json={"count": 0, "radius_km": 3}, headers=auth("planner_a"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "count"
    sites = _wait(client, app, auth, "analyst_a", client.post(
        f"/api/v1/grids/{gid}/gaps/sites", json={"count": 2, "radius_km": 3}, headers=auth("analyst_a")))
    assert sites["households_covered_after"] >= sites["households_covered_before"]
    assert len(sites["suggestions"]) <= 2


def test_refined_grid_through_the_api_works_like_any_grid(client, app, auth, built, tmp_path):
    """POST /grids with refine (issue 17): cells holding customers split to res 9; assignment, roll-up to the
    base resolution, gap scores, GeoPackage export and vector tiles work on the mixed-resolution grid."""
    gid7, plain, _ = built
    refined = _wait(client, app, auth, "planner_a", client.post(
        "/api/v1/grids", json={"county_code": "640104", "kind": "h3", "resolution": 7,
                               "refine": {"share": 0.01, "rms": 10, "max_res": 9}}, headers=auth("planner_a")))
    gid = refined["id"]
    assert refined["report"]["refined"]["cells_split"] >= 1 and refined["cell_count"] > plain["cell_count"]
    assigned = _wait(client, app, auth, "planner_a", client.post(f"/api/v1/grids/{gid}/assignment",
                                                                 headers=auth("planner_a")))
    assert (assigned["customers"], assigned["by_point"]) == (2, 1)
    fine = client.get(f"/api/v1/grids/{gid}/cells", params={"limit": 1000, "properties": "customers"},
                      headers=auth("planner_a")).json()
    placed = [f["id"] for f in fine["features"] if f["properties"]["customers"]]
    assert len(placed) == 1 and placed[0][1] == "9"  # the customer's cell is a res-9 piece
    coarse = client.get(f"/api/v1/grids/{gid}/cells", params={"res": 7, "limit": 1000, "properties": "customers"},
                        headers=auth("planner_a")).json()
    assert coarse["numberMatched"] == plain["cell_count"]
    assert sum(f["properties"]["customers"] or 0 for f in coarse["features"]) == 1
    _wait(client, app, auth, "planner_a", client.post(f"/api/v1/grids/{gid}/gaps/score", headers=auth("planner_a")))
    assert client.get(f"/api/v1/grids/{gid}/gaps", params={"limit": 5}, headers=auth("planner_a")).status_code == 200
    r = client.get(f"/api/v1/grids/{gid}/export", params={"format": "gpkg", "layer": "cells"},
                   headers=auth("planner_a"))
    assert r.status_code == 200, r.text
    import pyogrio

    (tmp_path / "r.gpkg").write_bytes(r.content)
    assert len(pyogrio.read_dataframe(tmp_path / "r.gpkg", layer="cells")) == refined["cell_count"]
    tile = client.get("/tiles/cells/10/815/397.pbf", params={"grid_id": gid}, headers=auth("planner_a"))
    assert tile.status_code in (200, 204), tile.text
