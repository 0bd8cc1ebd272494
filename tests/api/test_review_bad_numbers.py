"""NaN, Infinity, 1e400 and absurdly nested TOML in request bodies are 422 with an ``error`` body, never 500.

They used to answer 500: the 422 that FastAPI built echoed the rejected float back and the JSON
encoder refused NaN/Infinity; tomllib raised RecursionError on deep nesting.
"""

from __future__ import annotations

import json

import pytest

NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e400")


def _post(client, url: str, raw: str, headers: dict) -> object:
    return client.post(url, content=raw, headers={**headers, "Content-Type": "application/json"})


def _assert_422(r, field: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "RequestValidationError"
    assert body["detail"][0]["loc"][-1] == field, body


@pytest.mark.parametrize("number", NON_FINITE)
def test_sites_radius_must_be_a_finite_number(client, auth, data, number):
    r = _post(client, f"/api/v1/grids/{data['grid_a']}/gaps/sites", f'{{"count": 2, "radius_km": {number}}}',
              auth("planner_a"))
    _assert_422(r, "radius_km")


@pytest.mark.parametrize("number", NON_FINITE)
def test_plan_weights_and_distance_must_be_finite_numbers(client, auth, data, number):
    base = f'"grid_id": {data["grid_a"]}, "name": "finite"'
    r = _post(client, "/api/v1/scenarios/plan", f'{{{base}, "max_distance_km": {number}}}', auth("planner_a"))
    _assert_422(r, "max_distance_km")
    r = _post(client, "/api/v1/scenarios/plan", f'{{{base}, "weights": {{"customers": {number}}}}}',
              auth("planner_a"))
    _assert_422(r, "customers")


def test_the_rejected_value_is_echoed_as_text(client, auth, data):
    r = _post(client, f"/api/v1/grids/{data['grid_a']}/gaps/sites", '{"count": 2, "radius_km": NaN}',
              auth("planner_a"))
    assert r.status_code == 422 and r.json()["detail"][0]["input"] == "nan"
    json.loads(r.text)  # strict JSON: no bare NaN in the answer


def test_deeply_nested_gap_config_is_bad_input(client, auth, data):
    deep = "x = " + "[" * 5000 + "]" * 5000
    r = client.post(f"/api/v1/grids/{data['grid_a']}/gaps/score", json={"config_toml": deep},
                    headers=auth("planner_a"))
    assert r.status_code == 422, r.text
    assert r.json() == {"error": "BadInput", "detail": "config_toml: not valid TOML: nested too deeply"}


def test_pool_timeout_is_503_with_retry_after(app, client, auth, monkeypatch):
    """Every pooled connection busy (sqlalchemy.exc.TimeoutError) is 503 with Retry-After, not 500."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from api.errors import status_for

    def busy(*args, **kwargs):
        raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached, connection timed out, timeout 30.00")

    assert status_for(PoolTimeout("x")) == 503
    engine = app.state.engine
    monkeypatch.setattr(engine, "connect", busy)
    r = client.get("/api/v1/customers", headers=auth("planner_a"))
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"].isdigit()
    assert r.json() == {"error": "ServiceBusy", "detail": "the service is busy; try again shortly"}
