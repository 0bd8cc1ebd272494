"""The OpenAPI document's 422 shape holds what 422 answers are: a list of field errors or one sentence."""

from __future__ import annotations

import jsonschema


def test_a_bad_input_422_conforms_to_the_documented_shape(app, client, auth):
    doc = client.get("/openapi.json").json()
    shape = doc["components"]["schemas"]["HTTPValidationError"]
    shape_of_422 = jsonschema.Draft202012Validator(
        {**{"components": doc["components"]}, **shape,
         "$schema": "https://json-schema.org/draft/2020-12/schema"})
    # A domain error (BadInput): one sentence. A planner asking for a plan without naming the RM.
    r = client.post("/api/v1/visits/plans", json={}, headers=auth("planner_a"))
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)
    shape_of_422.validate(r.json())
    # FastAPI's field errors: a list.
    r = client.get("/api/v1/customers?limit=0", headers=auth("planner_a"))
    assert r.status_code == 422 and isinstance(r.json()["detail"], list)
    shape_of_422.validate(r.json())
