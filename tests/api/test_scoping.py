"""Every route of the OpenAPI schema, called with tokens of scoped users, never leaks others' data.

Routes are enumerated from ``app.openapi()``, so new routes are covered
automatically. A route with a path parameter is called with objects that
belong to ANOTHER legal entity, or to another RM/outlet, and must answer 403
or 404; every route must never answer 500, and no 2xx answer may contain a
marker of the other's data. Later routes extend ``FOREIGN`` with example
values for their new path parameters (the test fails on an unknown one).
"""

from __future__ import annotations

import re

import pytest

# Example path-parameter values per parameter name, as functions of the seeded ids:
# objects the user under test must NOT reach. Every user under test belongs to LEA, so legal entity
# LEB's outlet, service point, county, village, grid and planner_b's job are out of reach for all of them
# (OTHER_ENTITY, with "kind", which names no one's object: see NEUTRAL); the rest differ per user.
OTHER_ENTITY = {
    "adcode": lambda d: ["640122"],
    "village_code": lambda d: ["640122100201"],
    "outlet_code": lambda d: ["OB1"],
    "service_point_code": lambda d: ["SPB1"],
    "legal_entity_id": lambda d: [d["LEB"]],
    "job_id": lambda d: [d["job_planner_b"]],
    "kind": lambda d: ["customers"],
    "grid_id": lambda d: [d["grid_b"]],
    "plan_id": lambda d: [d["plan_b1"]],
    "visit_id": lambda d: [d["visit_b1"]],
    # /ogc: a grid layer of LEB's grid (reference collections have no owner: see tests/api/test_ogc.py).
    "collection_id": lambda d: [f"cells-{d['grid_b']}", f"territories-{d['grid_b']}"],
    "feature_id": lambda d: ["CB1", "b1", "RB1"],
}
FOREIGN = {
    "rm_a1": {
        "plan_id": lambda d: [d["plan_a2"], d["plan_b1"]],
        "visit_id": lambda d: [d["visit_a2"], d["visit_b1"]],
        "customer_id": lambda d: ["CA2", "CB1", "CA3"],
        "rm_code": lambda d: ["RA2", "RB1"],
        "import_id": lambda d: [d["run_planner_b"], d["run_planner_a"]],
        "username": lambda d: ["planner_b", "rm_a2"],
        "cell_id": lambda d: ["a2", "b1"],
        "scenario_id": lambda d: [d["scenario_a"], d["scenario_b"]],
    },
    "bm_a": {
        "plan_id": lambda d: [d["plan_a2"], d["plan_b1"]],
        "visit_id": lambda d: [d["visit_a2"], d["visit_b1"]],
        "customer_id": lambda d: ["CA2", "CB1"],
        "rm_code": lambda d: ["RA2", "RB1"],
        "import_id": lambda d: [d["run_planner_b"]],
        "username": lambda d: ["planner_b"],
        "cell_id": lambda d: ["a2", "b1"],
        "scenario_id": lambda d: [d["scenario_a"], d["scenario_b"]],
    },
    "analyst_a": {
        "customer_id": lambda d: ["CB1"],
        "rm_code": lambda d: ["RB1"],
        "import_id": lambda d: [d["run_planner_b"]],
        "username": lambda d: ["planner_b"],
        "cell_id": lambda d: ["b1"],
        "scenario_id": lambda d: [d["scenario_b"]],
    },
}
# Tiles (/tiles/{layer}/{z}/{x}/{y}.pbf?grid_id=): the z10 tile over the seeded data, every layer;
# the object is the grid, filled in from "grid_id" above as a query parameter (see _query).
TILE = {"layer": lambda d: ["cells", "territories", "customers"], "z": lambda d: [10],
        "x": lambda d: [814], "y": lambda d: [393], "tileMatrixSetId": lambda d: ["WebMercatorQuad"],
        "tileMatrix": lambda d: [10], "tileRow": lambda d: [393], "tileCol": lambda d: [814]}
for _who, _own in FOREIGN.items():
    FOREIGN[_who] = {**OTHER_ENTITY, **_own, **TILE}  # a user's own entry wins over OTHER_ENTITY
FOREIGN["planner_a"] = FOREIGN["analyst_a"]

# Strings of the other's data that must never appear in a successful answer.
MARKERS = {
    "rm_a1": ["CA2", "CB1", "CA3", "李四", "欧阳", "乙农商行", "贺兰县", "OB1", "SPB1", "RB1", "RA2",
              "13900000002", "13987654321"],
    "bm_a": ["CA2", "CB1", "李四", "欧阳", "乙农商行", "贺兰县", "OB1", "SPB1", "RB1", "RA2",
             "13900000002", "planner_b"],
    "analyst_a": ["CB1", "欧阳", "乙农商行", "贺兰县", "OB1", "SPB1", "RB1", "13987654321", "planner_b"],
}
MARKERS["planner_a"] = MARKERS["analyst_a"]

# Path parameters that name a kind of thing, not an object of someone (no 403/404 expected).
NEUTRAL = {"kind", "layer", "z", "x", "y", "tileMatrixSetId", "tileMatrix", "tileRow", "tileCol"}
# Routes that need no login and touch no business data (sign-in, sign-out, the login page).
PUBLIC = {"/health", "/ready", "/api/v1/auth/session", "/api/v1/auth/logout", "/maps/login"}
# Required query parameters that name someone's object, filled in like path parameters (tiles).
OBJECT_QUERY = {"grid_id"}
# Routes whose grid_id query parameter (required or not) names someone's grid: filled like a path parameter
# (the branch manager's visits page, its report on one grid and its layer's counts).
GRID_QUERY = {"/api/v1/visits/coverage", "/api/v1/visits/report", "/maps/visits"}


def _operations(app):
    for path, item in app.openapi()["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method


def _query(app, path: str, method: str, any_route: bool = False) -> list[str]:
    """Required query parameters of an operation that name an object (OBJECT_QUERY), and GRID_QUERY's grid_id."""
    if path in GRID_QUERY:
        return ["grid_id"]
    if not (any_route or path.startswith("/tiles/")):
        return []  # other routes take further, route-specific query parameters (e.g. /maps/rm rm_code)
    params = app.openapi()["paths"][path][method].get("parameters", [])
    required = [p["name"] for p in params if p["in"] == "query" and p.get("required")]
    # Only when every required query parameter can be filled (otherwise the answer is a plain 422).
    return required if required and set(required) <= OBJECT_QUERY else []


def _fill(path: str, examples: dict, data: dict, query: list[str] = ()) -> list[str]:
    names = re.findall(r"{(\w+)}", path)
    for n in names:
        assert n in examples, f"add an example value for path parameter {n!r} (route {path}) to FOREIGN"
    urls = [path]
    for n in names:
        urls = [u.replace("{" + n + "}", str(v)) for u in urls for v in examples[n](data)]
    for i, n in enumerate(query):
        urls = [f"{u}{'&' if i else '?'}{n}={v}" for u in urls for v in examples[n](data)]
    return urls


def _leaked(r, markers: list[str]) -> list[str]:
    """Markers in a successful answer: in the raw bytes for binary answers (vector tiles keep
    their string values as plain UTF-8), in the text otherwise."""
    if r.headers.get("content-type", "").startswith("application/vnd.mapbox-vector-tile"):
        return [m for m in markers if m.encode() in r.content]
    return [m for m in markers if m in r.text]


def test_every_route_is_enumerated(app):
    """The sweep sees the routes this issue adds (guards against an empty enumeration)."""
    paths = {p for p, _ in _operations(app)}
    assert {"/api/v1/customers/{customer_id}", "/api/v1/counties", "/api/v1/imports/{kind}",
            "/api/v1/jobs/{job_id}", "/api/v1/users/{username}", "/maps/visits", "/api/v1/visits/coverage",
            "/api/v1/visits/flagged"} <= paths


@pytest.mark.parametrize("who", sorted(FOREIGN))
def test_no_route_leaks_others_data(app, client, auth, data, who):
    """Each route, with path parameters of others' objects: 403/404, never 500, never their data."""
    checked = 0
    for path, method in _operations(app):
        query = _query(app, path, method)
        for url in _fill(path, FOREIGN[who], data, query):
            r = client.request(method.upper(), url, headers=auth(who))
            checked += 1
            assert r.status_code < 500, f"{who} {method.upper()} {url}: {r.status_code} {r.text[:200]}"
            if set(re.findall(r"{(\w+)}", path)) - NEUTRAL or query:
                assert r.status_code in (403, 404), f"{who} {method.upper()} {url}: {r.status_code} {r.text[:200]}"
            if 200 <= r.status_code < 300:
                leaked = _leaked(r, MARKERS[who])
                assert not leaked, f"{who} {method.upper()} {url} leaked {leaked}"
    assert checked >= 25


def test_routes_refuse_missing_and_bad_tokens(app, client, data):
    """Every non-public route answers 401 without a token and with a forged one."""
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.bad"}
    for path, method in _operations(app):
        if path in PUBLIC or path == "/api/v1/auth/token":
            continue
        url = _fill(path, FOREIGN["rm_a1"], data, _query(app, path, method, any_route=True))[0]
        for headers in ({}, forged):
            r = client.request(method.upper(), url, headers=headers, follow_redirects=False)
            # Browser pages send the signed-out user to the login page instead.
            to_login = r.status_code in (303, 307) and r.headers["location"].startswith("/maps/login")
            assert r.status_code == 401 or to_login, f"{method.upper()} {url}: {r.status_code}"


def test_own_objects_are_reachable(client, auth):
    """The same routes do answer for one's own objects (the sweep is not passing by refusing all)."""
    assert client.get("/api/v1/customers/CA1", headers=auth("rm_a1")).status_code == 200
    assert client.get("/api/v1/rms/RA1", headers=auth("rm_a1")).status_code == 200
    assert client.get("/api/v1/customers/CA1", headers=auth("bm_a")).status_code == 200
    assert client.get("/api/v1/counties/640104", headers=auth("rm_a1")).status_code == 200
    assert client.get("/api/v1/customers/CB1", headers=auth("admin")).status_code == 200
    assert client.get("/api/v1/customers/CB1", headers=auth("rm_b")).status_code == 200


# Inside their own legal entity's grid: another RM's cell, that RM, and scenarios (which RMs and
# branch managers never see). Geometry of every cell of the grid is visible to the whole legal entity,
# so routes whose only object is the grid must answer without the other's data, not refuse.
IN_GRID = {
    who: {**FOREIGN[who], "grid_id": lambda d: [d["grid_a"]], "cell_id": lambda d: ["a2"],
          "rm_code": lambda d: ["RA2"], "scenario_id": lambda d: [d["scenario_a"]]}
    for who in ("rm_a1", "bm_a")
}
IN_GRID_MARKERS = ["CA2", "李四", "RA2", "13812345678", "CA3", "王五"]


@pytest.mark.parametrize("who", sorted(IN_GRID))
def test_grid_routes_inside_own_legal_entity(app, client, auth, data, who):
    """Every grid/scenario route with rm_a1's or bm_a's own grid: RA2's cell, RA2 and scenarios are
    403/404; the rest answer without RA2, RA2's customers or unplaced customers."""
    checked = 0
    for path, method in _operations(app):
        query = _query(app, path, method)
        if "{grid_id}" not in path and "{scenario_id}" not in path and not query:
            continue
        for url in _fill(path, IN_GRID[who], data, query):
            r = client.request(method.upper(), url, headers=auth(who))
            checked += 1
            assert r.status_code < 500, f"{who} {method.upper()} {url}: {r.status_code} {r.text[:200]}"
            if set(re.findall(r"{(\w+)}", path)) - NEUTRAL - {"grid_id"}:
                assert r.status_code in (403, 404), f"{who} {method.upper()} {url}: {r.status_code} {r.text[:200]}"
            if 200 <= r.status_code < 300:
                leaked = _leaked(r, IN_GRID_MARKERS)
                assert not leaked, f"{who} {method.upper()} {url} leaked {leaked}"
    assert checked >= 20
