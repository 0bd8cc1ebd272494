"""Robustness: Schemathesis fuzzes every operation of the OpenAPI schema; SQL injection is harmless.

The fuzz run is bounded (a few examples per operation and user) so the file
stays well under a minute and a half. Checks: no 5xx answer, and answers
conform to the response schema wherever the route declares one.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import text

from geodata.tables import metadata

EXAMPLES_PER_OPERATION = 5
INJECTIONS = (
    "' OR 1=1 --",
    "'; DROP TABLE customer; --",
    "1; DROP TABLE lead",
    "\" OR \"\"=\"",
    "') OR ('a'='a",
    "1' UNION SELECT username, password_hash FROM app_user --",
    "%27%20OR%201%3D1",
    "$$; DELETE FROM app_user; $$",
    "\\'; SELECT pg_sleep(0); --",
    "640104' AND 1=(SELECT 1 FROM pg_sleep(0))--",
    "a\x00'; DROP TABLE customer; --",  # PostgreSQL refuses NUL in text: must be a 4xx, not a 500
)


@pytest.fixture(scope="module")
def schema(app, client):
    """The app's own OpenAPI schema, loaded by Schemathesis (after the client has started the app)."""
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def _fuzz(operation, headers: dict[str, str], mode: GenerationMode = GenerationMode.POSITIVE,
          examples: int = EXAMPLES_PER_OPERATION) -> None:
    # Invalid input is only held to "no 5xx": its 4xx bodies need not match the success schema.
    checks = [not_a_server_error] + ([response_schema_conformance] if mode == GenerationMode.POSITIVE else [])

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        case.call_and_validate(headers=headers, checks=checks)

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body has no invalid input to make.
        assert mode == GenerationMode.NEGATIVE and not operation.path_parameters and not operation.query


@pytest.mark.parametrize("who", ["planner_a", "rm_a1"])
def test_fuzzed_requests_never_fail_on_the_server(schema, auth, who):
    """Every operation, with schema-valid random input and a valid token: no 500, schemas honoured."""
    checked = []
    for operation in _operations(schema):
        if operation.path == "/api/v1/auth/token":
            continue  # logins are fuzzed with no token below; argon2 makes them slow
        _fuzz(operation, auth(who))
        checked.append(operation.label)
    assert len(checked) >= 20, checked


def test_invalid_requests_never_fail_on_the_server(schema, auth):
    """Schema-violating input (wrong types, out-of-range values, missing parameters): 4xx, never 5xx."""
    checked = 0
    for operation in _operations(schema):
        if operation.path == "/api/v1/auth/token":
            continue
        _fuzz(operation, auth("planner_a"), GenerationMode.NEGATIVE, examples=2)
        checked += 1
    assert checked >= 20


def test_fuzzed_logins_never_fail_on_the_server(schema):
    for operation in _operations(schema):
        if operation.path == "/api/v1/auth/token":
            _fuzz(operation, {})
            return
    pytest.fail("no login route in the schema")


def _string_parameters(app):
    """(method, path, location, name, other required query params) of every string parameter."""
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = op.get("parameters", [])
            required = {p["name"]: p for p in params if p.get("required") and p["in"] == "query"}
            for p in params:
                schema = p.get("schema", {})
                types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if "string" in types:
                    yield method, path, p["in"], p["name"], required


def _table_counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in sorted(metadata.tables) if "." not in t}


@pytest.mark.parametrize("who", ["planner_a", "admin"])
def test_sql_injection_in_every_string_parameter_is_harmless(app, client, auth, data, engine, who):
    """Each string query/path parameter of each route gets classic injection strings: never a 500,
    no table dropped or emptied, no password hash in an answer."""
    before = _table_counts(engine)
    valid = {"grid_id": data["grids"][0], "legal_entity_id": data["LEA"], "import_id": data["run_planner_a"],
             "job_id": data["job_planner_b"]}
    sent = 0
    for method, path, where, name, required in _string_parameters(app):
        for payload in INJECTIONS:
            url = path.replace("{" + name + "}", quote(payload, safe="")) if where == "path" else path
            # Other path parameters get harmless valid values; strings get a plain word.
            url = re.sub(r"{(\w+)}", lambda m: str(valid.get(m.group(1), "x")), url)
            params = {k: "x" for k in required if k != name}
            if where == "query":
                params[name] = payload
            elif where != "path":
                continue
            r = client.request(method.upper(), url, params=params, headers=auth(who))
            sent += 1
            assert r.status_code < 500, f"{method.upper()} {url} {params}: {r.status_code} {r.text[:300]}"
            assert "$argon2" not in r.text
    assert sent >= 10 * len(INJECTIONS) // 2
    after = _table_counts(engine)
    assert set(after) == set(before)
    # Reads and refused writes change nothing but the audit log and import/job records.
    changed = {t for t in before if before[t] != after[t]} - {"audit_log", "import_run", "job"}
    assert not changed, {t: (before[t], after[t]) for t in changed}
