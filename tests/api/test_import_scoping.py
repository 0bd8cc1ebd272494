"""Cross-entity sweep of every import kind over HTTP: a planner of LEB importing rows keyed like LEA's
changes nothing of LEA's and learns nothing a key not in use would not tell (issue 13, item 1).

The all-routes read sweep is ``test_scoping.py``; this is its counterpart for writes through imports.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from geodata.importers import KINDS

NO_CUSTOMER = "no customer with this id in the importing user's legal entity (法人机构)"
# LEA's data as the fixtures hold it: none of it may appear in what LEB's planner gets back.
A_SECRETS = ("LEA", "甲农商行", "640104", "640105", "张三", "13812341234", "110101199001011234", "RA1", "OA1")
DATA_TABLES = ("legal_entity", "county", "township", "village", "outlet", "service_point", "rm", "customer",
               "visit", "lead", "customer_tag")

# kind -> (file with LEA's key or naming LEA's customer, the same file with a key of nobody's or unknown,
#          the reason both must get); None: the kind is shared, and LEB's planner may not import it at all.
CASES = {
    "legal-entities": None, "counties": None, "townships": None, "villages": None,
    "customers": ("customer_id,name,county_code\nCA1,冒名,640122\n",
                  "customer_id,name,county_code\nCX0,冒名,640122\n", "id not available"),
    "outlets": ("code,name,county_code,lon,lat\nOA1,冒名,640122,106.35,38.55\n",
                "code,name,county_code,lon,lat\nOX0,冒名,640122,106.35,38.55\n", "id not available"),
    "service-points": ("code,name,outlet_code,lon,lat\nSPA1,冒名,OB1,106.35,38.55\n",
                       "code,name,outlet_code,lon,lat\nSPX0,冒名,OB1,106.35,38.55\n", "id not available"),
    "rms": ("code,name,outlet_code\nRA1,冒名,OB1\n", "code,name,outlet_code\nRX0,冒名,OB1\n", "id not available"),
    "leads": ("lead_id,customer_id,lead_type\nLDA1,CB1,贷款\n", "lead_id,customer_id,lead_type\nLDX0,CB1,贷款\n",
              "id not available"),
    "visits": ("customer_id,rm_code,visited_at\nCA1,RB1,2024-05-01 10:00\n",
               "customer_id,rm_code,visited_at\nNOBODY9,RB1,2024-05-01 10:00\n", NO_CUSTOMER),
    "tags": ("customer_id,tag\nCA1,高净值\n", "customer_id,tag\nNOBODY9,高净值\n", NO_CUSTOMER),
}


def test_every_import_kind_is_in_the_sweep():
    assert set(CASES) == set(KINDS)


@pytest.fixture(scope="module")
def more_rows(engine, data):
    """LEA's lead, visit and tag; and rows of no legal entity (an administrator's) to compare answers with."""
    with engine.begin() as c:
        x = c.execute
        x(text("INSERT INTO lead (lead_id, customer_id, lead_type) VALUES ('LDA1', 'CA1', '存款')"))
        x(text("INSERT INTO visit (customer_id, rm_code, visited_at) VALUES ('CA1', 'RA1', '2024-05-01 10:00+08')"))
        x(text("INSERT INTO customer_tag (customer_id, tag) VALUES ('CA1', '高净值')"))
        x(text("INSERT INTO customer (customer_id, name) VALUES ('CX0', '无主')"))
        x(text("INSERT INTO outlet (code, name, geom) VALUES ('OX0', '无主', ST_SetSRID(ST_MakePoint(106.3, 38.5), 4326))"))
        x(text("INSERT INTO service_point (code, name, geom) VALUES"
               " ('SPX0', '无主', ST_SetSRID(ST_MakePoint(106.3, 38.5), 4326))"))
        x(text("INSERT INTO rm (code, name, outlet_code) VALUES ('RX0', '无主', 'OX0')"))
        x(text("INSERT INTO lead (lead_id, customer_id, lead_type) VALUES ('LDX0', 'CX0', '存款')"))


def _snapshot(engine) -> dict:
    with engine.connect() as c:
        return {t: c.execute(text(f"SELECT to_jsonb(t)::text FROM {t} t ORDER BY 1")).scalars().all()
                for t in DATA_TABLES}


def _import(client, headers, kind, content, dry_run):
    r = client.post(f"/api/v1/imports/{kind}", params={"dry_run": str(dry_run).lower()}, headers=headers,
                    files={"file": (f"{kind}.csv", content.encode("utf-8"), "text/csv")})
    if r.status_code != 202:
        return r.status_code, r.json(), None
    end = time.monotonic() + 60
    while time.monotonic() < end:
        job = client.get(r.json()["poll"], headers=headers).json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "done", job
    result = job["result"]
    rejects = client.get(f"/api/v1/imports/{result['run_id']}/rejects", headers=headers)
    assert rejects.status_code == 200
    return 202, result, rejects.text


def _shape(result: dict) -> dict:
    """What an answer tells, without what differs from run to run (ids, file hashes, paths)."""
    return {k: v for k, v in result.items() if k not in ("run_id", "sha256", "rejects_path", "message", "file")}


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real"])
@pytest.mark.parametrize("kind", list(CASES))
def test_leb_importing_leas_keys_changes_and_learns_nothing(app, client, auth, engine, more_rows, kind, dry_run):
    app.state.importer = None
    h = auth("planner_b")
    before = _snapshot(engine)
    case = CASES[kind]
    if case is None:
        status, body, _ = _import(client, h, kind, "code,name\nLEA,冒名\n", dry_run)
        assert status == 403 and body["error"] == "Forbidden" and "system-wide administrator" in body["detail"]
        assert _snapshot(engine) == before
        return
    takeover, other, reason = case
    status, result, rejects = _import(client, h, kind, takeover, dry_run)
    assert status == 202
    assert result["status"] == "rejected" and result["dry_run"] is dry_run
    assert result["counts"] == {"rows": 1, "inserted": 0, "updated": 0, "unchanged": 0, "rejected": 1}
    assert result["rejected_reasons"] == {reason: 1}
    assert rejects.splitlines()[1].split(",")[3] == reason
    assert _snapshot(engine) == before  # nothing of LEA's (nor anything else) changed
    told = json.dumps(result, ensure_ascii=False) + rejects
    assert not [s for s in A_SECRETS if s in told and s not in takeover]  # beyond what LEB's planner typed
    # The same answer as for a key of nobody's (or a customer that does not exist).
    status, result_other, rejects_other = _import(client, h, kind, other, dry_run)
    assert status == 202 and _shape(result_other) == _shape(result)
    assert rejects_other.replace(other.splitlines()[1].split(",")[0], "KEY") == \
        rejects.replace(takeover.splitlines()[1].split(",")[0], "KEY")
    assert _snapshot(engine) == before


def test_lea_still_owns_its_rows(client, auth, more_rows):
    """After the sweep LEA's planner reads its customer and RM as before, LEB's does not see them."""
    for path in ("/api/v1/customers/CA1", "/api/v1/rms/RA1"):
        assert client.get(path, headers=auth("planner_a")).status_code == 200
        assert client.get(path, headers=auth("planner_b")).status_code == 404
