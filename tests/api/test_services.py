"""Per-cell lead and tag routes: local CSV fallback, the real contract server, degradation, scoping.

On top of the shared fixtures (see conftest), cell a1 of legal entity LEA's grid
gets 1,100 more customers CX0001..CX1100, so calls to the services are batched.
Leads and tags are imported from CSV through the real importer, and the
contract server serves the very same rows.
"""

from __future__ import annotations

import csv
import time
from dataclasses import replace

import pytest
from contract_server import ContractServer, closed_port_url
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.services import reset_clients
from api.settings import LinkSettings
from geodata.importers import run_import

EXTRA = [f"CX{i:04d}" for i in range(1, 1101)]
LEADS = ([("L-CA1-1", "CA1", "客户关怀", "open"), ("L-CA1-2", "CA1", "客户关怀", "open"),
          ("L-CA1-3", "CA1", "产品到期", "closed"), ("L-CA2-1", "CA2", "逾期提醒", "open"),
          ("L-CB1-1", "CB1", "客户关怀", "open")]
         + [(f"L-{c}", c, "大额变动", "open") for i, c in enumerate(EXTRA, 1) if i % 2 == 0])
TAGS = ([("CA1", "高净值"), ("CA1", "养殖户"), ("CA2", "养殖户"), ("CB1", "高净值")]
        + [(c, "高净值") for i, c in enumerate(EXTRA, 1) if i % 3 == 0])
# What the grid of LEA holds, worked out by hand from the rows above.
LEADS_A = {"a1": {"客户关怀": 2, "大额变动": 550}, "a2": {"逾期提醒": 1}}
TAGGED_A = {"a1": 1 + 366, "a2": 0}
TOKEN = "service-token"


@pytest.fixture(scope="module")
def imported(engine, data, tmp_path_factory) -> dict:
    """The extra customers placed in a1, and leads and tags imported from CSV files."""
    tmp = tmp_path_factory.mktemp("services")
    grid_a = data["grids"][0]
    with engine.begin() as c:
        c.execute(text("INSERT INTO customer (customer_id, legal_entity_id, county_code)"
                       " SELECT unnest(CAST(:ids AS text[])), :le, '640104'"), {"ids": EXTRA, "le": data["LEA"]})
        c.execute(text("INSERT INTO customer_cell (grid_id, customer_id, cell_id, how)"
                       " SELECT :g, unnest(CAST(:ids AS text[])), 'a1', 'point'"), {"g": grid_a, "ids": EXTRA})
    leads_csv, tags_csv = tmp / "leads.csv", tmp / "tags.csv"
    with leads_csv.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("lead_id", "customer_id", "lead_type", "status"), *LEADS])
    with tags_csv.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("customer_id", "tag"), *TAGS])
    runs = [run_import(engine, kind=k, path=p, user="planner_a", rejects_dir=tmp)
            for k, p in (("leads", leads_csv), ("tags", tags_csv))]
    return {"grid_a": grid_a, "grid_b": data["grids"][1], "runs": runs}


@pytest.fixture(scope="module")
def server():
    leads = [dict(lead_id=a, customer_id=b, lead_type=c, status=d) for a, b, c, d in LEADS]
    tags: dict[str, list[str]] = {}
    for cid, tag in TAGS:
        tags.setdefault(cid, []).append(tag)
    with ContractServer(leads=leads, tags=tags, token=TOKEN, page_size=200, slow_s=1.5) as s:
        yield s


def _links(url: str) -> LinkSettings:
    return LinkSettings(lead_api=url, tag_api=url, lead_api_token=TOKEN, tag_api_token=TOKEN, timeout_s=0.5,
                        attempts=3, breaker_failures=3, breaker_cooldown_s=0.5)


@pytest.fixture(scope="module")
def remote(settings, imported, server):
    """A client of the app configured with the contract server as both services."""
    with TestClient(create_app(replace(settings, links=_links(server.url)))) as c:
        yield c


@pytest.fixture(scope="module")
def down(settings, imported):
    """A client of the app whose services are configured but not listening."""
    with TestClient(create_app(replace(settings, links=_links(closed_port_url())))) as c:
        yield c


@pytest.fixture(autouse=True)
def fresh(server):
    reset_clients()
    server.reset()
    yield
    reset_clients()


def leads(client, auth, who, grid, **params):
    return client.get(f"/api/v1/grids/{grid}/cells/leads", params=params, headers=auth(who))


def tags(client, auth, who, grid, **params):
    return client.get(f"/api/v1/grids/{grid}/cells/tags", params=params, headers=auth(who))


def test_imports_loaded_every_row(imported):
    leads_run, tags_run = imported["runs"]
    assert leads_run["status"] == "ok" and leads_run["counts"]["rows"] == len(LEADS) == 555
    assert tags_run["status"] == "ok" and tags_run["counts"]["rows"] == len(TAGS) == 370


def test_local_counts_match_the_imported_csv(client, auth, imported):
    r = leads(client, auth, "planner_a", imported["grid_a"])
    assert r.status_code == 200, r.text
    assert r.json() == {"grid_id": imported["grid_a"], "available": True, "source": "local", "reason": None,
                        "cells": LEADS_A, "total": {"客户关怀": 2, "大额变动": 550, "逾期提醒": 1}}
    r = tags(client, auth, "planner_a", imported["grid_a"], tag="高净值")
    assert r.json() == {"grid_id": imported["grid_a"], "tag": "高净值", "available": True, "source": "local",
                        "reason": None, "cells": TAGGED_A, "total": 367}
    r = tags(client, auth, "planner_a", imported["grid_a"], tag="养殖户", cell_ids="a2")
    assert r.json()["cells"] == {"a2": 1}
    assert tags(client, auth, "planner_a", imported["grid_a"], tag="无此标签").json()["total"] == 0


def test_views_are_audited(client, auth, imported, engine):
    leads(client, auth, "rm_a1", imported["grid_a"], cell_ids="a1")
    with engine.connect() as c:
        row = c.execute(text("SELECT object_id, detail FROM audit_log WHERE username = 'rm_a1'"
                             " AND object_type = 'cell_leads' ORDER BY id DESC LIMIT 1")).one()
    assert row.object_id == str(imported["grid_a"]) and row.detail == {"cells": 1, "available": True}


def test_service_counts_equal_the_local_ones_in_batches(client, remote, auth, imported, server):
    local = leads(client, auth, "planner_a", imported["grid_a"]).json()
    r = leads(remote, auth, "planner_a", imported["grid_a"])
    assert r.status_code == 200, r.text
    assert r.json() == {**local, "source": "service"}
    # 1,102 customers: batches of 500, 500, 102; leads pages of 200 -> 2 + 2 + 1 calls.
    assert server.hits == 5 and server.max_ids_seen == 500
    assert server.ids_seen == {"CA1", "CA2", *EXTRA}
    server.reset()
    r = tags(remote, auth, "planner_a", imported["grid_a"], tag="高净值")
    assert r.json()["cells"] == TAGGED_A and r.json()["source"] == "service"
    assert server.hits == 3


def test_rm_gets_counts_for_owned_cells_only(client, remote, auth, imported, server):
    g = imported["grid_a"]
    for c in (client, remote):
        assert leads(c, auth, "rm_a1", g, cell_ids="a1,a2").json()["cells"] == {"a1": LEADS_A["a1"]}
        assert leads(c, auth, "rm_a2", g).json()["cells"] == {"a2": {"逾期提醒": 1}}
        assert leads(c, auth, "bm_a", g).json()["cells"] == {"a1": LEADS_A["a1"]}
        assert tags(c, auth, "rm_a2", g, tag="高净值", cell_ids="a1").json()["cells"] == {}
    server.reset()
    leads(remote, auth, "rm_a1", g, cell_ids="a1,a2")
    assert "CA2" not in server.ids_seen and "CA1" in server.ids_seen


@pytest.mark.parametrize("who,grid", [("rm_a1", "grid_b"), ("planner_b", "grid_a"), ("planner_a", "grid_b")])
def test_grids_of_other_legal_entities_are_not_found(client, auth, imported, who, grid):
    for route in (leads, tags):
        r = route(client, auth, who, imported[grid], tag="高净值")
        assert r.status_code == 404, r.text
        assert "CB1" not in r.text and "客户关怀" not in r.text
    assert leads(client, auth, "admin", 2_000_000_000).status_code == 404


def test_bad_parameters_get_422_naming_them(client, auth, imported):
    g = imported["grid_a"]
    r = tags(client, auth, "planner_a", g)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "tag"]
    r = leads(client, auth, "planner_a", g, cell_ids=",".join(f"c{i}" for i in range(2001)))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cell_ids"]
    r = leads(client, auth, "planner_a", g, cell_ids=" , ,")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cell_ids"]
    for name, value in (("tag", "高\x00净值"), ("cell_ids", "a1,a\x002")):
        r = tags(client, auth, "planner_a", g, **{"tag": "x", name: value})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", name]
    assert client.get("/api/v1/grids/abc/cells/leads", headers=auth("planner_a")).status_code == 422
    assert client.get(f"/api/v1/grids/{g}/cells/leads").status_code == 401


def test_flaky_service_is_retried_by_the_route(remote, auth, imported, server):
    server.set_mode("flaky")
    r = leads(remote, auth, "rm_a2", imported["grid_a"])
    assert r.json()["available"] is True and r.json()["cells"] == {"a2": {"逾期提醒": 1}}
    assert server.hits == 3


def test_slow_service_degrades_with_200_and_the_rest_still_works(remote, auth, imported, server):
    server.set_mode("slow")
    r = tags(remote, auth, "planner_a", imported["grid_a"], tag="高净值")
    assert r.status_code == 200
    assert r.json() == {"grid_id": imported["grid_a"], "tag": "高净值", "available": False, "source": "service",
                        "reason": "tags service unavailable: no answer within 0.5 s", "cells": None, "total": None}
    assert server.hits == 1  # the first batch timed out; the others were not tried
    assert remote.get("/api/v1/customers/CA1", headers=auth("rm_a1")).status_code == 200


def test_circuit_opens_on_the_route_then_closes_after_cooldown(remote, auth, imported, server):
    g = imported["grid_a"]
    server.set_mode("failing")
    for _ in range(3):
        body = leads(remote, auth, "rm_a2", g).json()
        assert body["available"] is False and "status 500 after 3 attempts" in body["reason"]
    assert server.hits == 9
    body = leads(remote, auth, "rm_a2", g).json()
    assert body["available"] is False and "circuit open" in body["reason"]
    assert server.hits == 9
    # The tag service has its own breaker: still closed.
    server.set_mode("normal")
    assert tags(remote, auth, "rm_a2", g, tag="养殖户").json()["cells"] == {"a2": 1}
    time.sleep(0.6)  # the cool-down of this app's settings
    body = leads(remote, auth, "rm_a2", g).json()
    assert body["available"] is True and body["cells"] == {"a2": {"逾期提醒": 1}}


def test_down_services_degrade_and_nothing_else_breaks(down, auth, imported):
    g = imported["grid_a"]
    for r in (leads(down, auth, "planner_a", g), tags(down, auth, "planner_a", g, tag="高净值")):
        assert r.status_code == 200
        body = r.json()
        assert body["available"] is False and body["cells"] is None
        assert "cannot connect (ConnectError) after 3 attempts" in body["reason"]
    customer = down.get("/api/v1/customers/CA1", headers=auth("rm_a1"))
    assert customer.status_code == 200
    assert customer.json()["links"]["leads"] == "https://leads.example/leads?customer=CA1"


def test_empty_selection_does_not_call_the_service(remote, auth, imported, server):
    r = leads(remote, auth, "rm_a1", imported["grid_a"], cell_ids="a2,zz")
    assert r.json()["cells"] == {} and r.json()["available"] is True
    assert server.hits == 0
