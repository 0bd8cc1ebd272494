"""An import on behalf of a user of one legal entity never writes another entity's rows."""

import pytest
from sqlalchemy import text

from geodata.errors import BadInput
from geodata.importers import run_import


@pytest.fixture(scope="module")
def two_entities(engine):
    with engine.begin() as conn:
        a = conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LEA', '甲') RETURNING id")).scalar()
        b = conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LEB', '乙') RETURNING id")).scalar()
        for adcode, le in (("640121", a), ("640122", b)):
            conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES (:c, :c, :le, "
                              "ST_Multi(ST_MakeEnvelope(105, 37, 107, 39, 4326)))"), {"c": adcode, "le": le})
    return a, b


def test_rows_of_another_entity_are_rejected_and_the_rest_take_the_users(engine, two_entities, tmp_path):
    a, b = two_entities
    f = tmp_path / "customers.csv"
    f.write_text("customer_id,legal_entity,village_code,deposit_balance\n"
                 "C1,LEA,640121100001,10\nC2,LEB,640122100001,20\nC3,,640121100002,30\nC4,,640122100002,40\n",
                 encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="planner_a", rejects_dir=tmp_path, legal_entity_id=a)
    assert s["counts"]["inserted"] == 2 and s["counts"]["rejected"] == 2
    rejects = (tmp_path / f"import-{s['run_id']}-customers-rejects.csv").read_text(encoding="utf-8-sig")
    assert "C2" in rejects and "C4" in rejects and "another legal entity" in rejects
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT customer_id, legal_entity_id FROM customer")).all())
    assert rows == {"C1": a, "C3": a}


def test_villages_of_another_entitys_county_and_boundaries_are_refused(engine, two_entities, tmp_path):
    a, _ = two_entities
    f = tmp_path / "villages.csv"
    f.write_text("code,name\n640121100001,甲村\n640122100001,乙村\n", encoding="utf-8")
    s = run_import(engine, kind="villages", path=f, user="planner_a", rejects_dir=tmp_path, legal_entity_id=a)
    assert s["counts"]["inserted"] == 1 and s["counts"]["rejected"] == 1
    with pytest.raises(BadInput, match="only administrators"):
        run_import(engine, kind="counties", path=f, user="planner_a", rejects_dir=tmp_path, legal_entity_id=a)


def test_leads_and_tags_only_for_the_users_own_customers(engine, two_entities, tmp_path):
    a, b = two_entities
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customer (customer_id, legal_entity_id, county_code) VALUES"
                          " ('LA1', :a, '640121'), ('LB1', :b, '640122')"), {"a": a, "b": b})
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id,customer_id,lead_type\nL1,LA1,存款\nL2,LB1,贷款\nL3,NOBODY,贷款\n", encoding="utf-8")
    s = run_import(engine, kind="leads", path=leads, user="planner_a", rejects_dir=tmp_path, legal_entity_id=a)
    assert s["counts"]["inserted"] == 1 and s["counts"]["rejected"] == 2
    rejects = (tmp_path / f"import-{s['run_id']}-leads-rejects.csv").read_text(encoding="utf-8-sig")
    assert "LB1" in rejects and "NOBODY" in rejects and "legal entity" in rejects
    tags = tmp_path / "tags.csv"
    tags.write_text("customer_id,tag\nLA1,高净值\nLB1,高净值\n", encoding="utf-8")
    s = run_import(engine, kind="tags", path=tags, user="planner_a", rejects_dir=tmp_path, legal_entity_id=a)
    assert s["counts"]["inserted"] == 1 and s["counts"]["rejected"] == 1
    # An administrator (no legal entity) may attach them to anyone.
    s = run_import(engine, kind="tags", path=tags, user="admin", rejects_dir=tmp_path)
    assert s["counts"]["rejected"] == 0 and s["counts"]["inserted"] == 1
    with engine.connect() as conn:
        lead_ids = conn.execute(text("SELECT lead_id FROM lead ORDER BY lead_id")).scalars().all()
        tagged = conn.execute(text("SELECT customer_id FROM customer_tag ORDER BY 1")).scalars().all()
    assert lead_ids == ["L1"] and tagged == ["LA1", "LB1"]
