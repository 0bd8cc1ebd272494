"""An import on behalf of a user of one legal entity never writes another entity's rows."""

import pandas as pd
import pytest
from sqlalchemy import text

from geodata.errors import Forbidden
from geodata.importers import rows, run_import


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
    assert "C2" in rejects and "C4" in rejects
    assert "not the importing user's legal entity (法人机构)" in rejects  # C2 names LEB
    assert "county not in the importing user's legal entity (法人机构)" in rejects  # C4 is in LEB's county
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT customer_id, legal_entity_id FROM customer")).all())
    assert rows == {"C1": a, "C3": a}


@pytest.mark.parametrize("kind", ["legal-entities", "counties", "townships", "villages"])
def test_shared_kinds_only_a_system_wide_admin_imports(engine, two_entities, tmp_path, kind):
    """Villages and townships are every legal entity's map: a planner of one could rename or move them."""
    a, _ = two_entities
    f = tmp_path / "villages.csv"
    f.write_text("code,name\n640121100001,甲村\n", encoding="utf-8")
    with pytest.raises(Forbidden, match="only a system-wide administrator"):
        run_import(engine, kind=kind, path=f, user="planner_a", rejects_dir=tmp_path, legal_entity_id=a)


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


def _rows(engine, table: str, where: str = "TRUE") -> list:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT to_jsonb(t) - 'import_run_id' FROM {table} t WHERE {where}"
                                 " ORDER BY to_jsonb(t)::text")).scalars().all()


@pytest.fixture(scope="module")
def a_rows(engine, two_entities):
    """Entity A's outlet, service point, RM, customer, lead, visit and tag; B's outlet, RM and customer."""
    a, b = two_entities
    with engine.begin() as conn:
        x = conn.execute
        for code, le, county in (("OA", a, "640121"), ("OB", b, "640122")):
            x(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) VALUES"
                   " (:c, :c, :le, :k, ST_SetSRID(ST_MakePoint(106.2, 38.2), 4326))"), {"c": code, "le": le, "k": county})
        x(text("INSERT INTO service_point (code, name, legal_entity_id, outlet_code, county_code, geom) VALUES"
               " ('SPA', '甲点', :a, 'OA', '640121', ST_SetSRID(ST_MakePoint(106.2, 38.2), 4326))"), {"a": a})
        x(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code) VALUES ('RA', '甲经理', :a, 'OA'),"
               " ('RB', '乙经理', :b, 'OB')"), {"a": a, "b": b})
        x(text("INSERT INTO customer (customer_id, name, id_number, legal_entity_id, county_code, deposit_balance)"
               " VALUES ('CA', '张三', '110101199001011234', :a, '640121', 5000),"
               " ('CB', '李四', NULL, :b, '640122', 10)"), {"a": a, "b": b})
        x(text("INSERT INTO lead (lead_id, customer_id, lead_type) VALUES ('LDA', 'CA', '存款')"))
        x(text("INSERT INTO visit (customer_id, rm_code, visited_at) VALUES ('CA', 'RA', '2024-05-01 10:00+08')"))
        x(text("INSERT INTO customer_tag (customer_id, tag) VALUES ('CA', '高净值')"))


# B's one-row file reusing A's key (or naming A's customer or RM), and the reason it must get.
TAKEOVERS = {
    "customers": ("customer_id,name,county_code\nCA,冒名,640122\n", "customer_id", "id not available"),
    "outlets": ("code,name,county_code,lon,lat\nOA,冒名,640122,106.3,38.3\n", "code", "id not available"),
    "service-points": ("code,name,outlet_code,county_code,lon,lat\nSPA,冒名,OB,640122,106.3,38.3\n", "code",
                       "id not available"),
    "rms": ("code,name,outlet_code\nRA,冒名,OB\n", "code", "id not available"),
    "leads": ("lead_id,customer_id,lead_type\nLDA,CB,贷款\n", "lead_id", "id not available"),
    "visits": ("customer_id,rm_code,visited_at\nCA,RB,2024-05-01 10:00\n", "customer_id",
               "no customer with this id in the importing user's legal entity (法人机构)"),
    "tags": ("customer_id,tag\nCA,高净值\n", "customer_id",
             "no customer with this id in the importing user's legal entity (法人机构)"),
}
A_TABLES = ("outlet", "service_point", "rm", "customer", "lead", "visit", "customer_tag")


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real"])
@pytest.mark.parametrize("kind", list(TAKEOVERS))
def test_another_entitys_key_is_not_available(engine, two_entities, a_rows, tmp_path, kind, dry_run):
    """A planner of B importing a row keyed like one of A's 'updated' it into B's (issue 13, critical)."""
    _, b = two_entities
    content, field, reason = TAKEOVERS[kind]
    before = {t: _rows(engine, t) for t in A_TABLES}
    f = tmp_path / f"{kind}.csv"
    f.write_text(content, encoding="utf-8")
    s = run_import(engine, kind=kind, path=f, user="planner_b", rejects_dir=tmp_path, legal_entity_id=b,
                   dry_run=dry_run)
    assert s["status"] == "rejected"
    assert s["counts"] == {"rows": 1, "inserted": 0, "updated": 0, "unchanged": 0, "rejected": 1}
    assert s["rejected_reasons"] == {reason: 1}
    rejects = pd.read_csv(s["rejects_path"], encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert rejects[["line", "field", "reason"]].values.tolist() == [["2", field, reason]]
    assert {t: _rows(engine, t) for t in A_TABLES} == before


def test_naming_another_entitys_rm_or_outlet_reads_as_unknown(engine, two_entities, a_rows, tmp_path):
    _, b = two_entities
    f = tmp_path / "visits-rm.csv"
    f.write_text("customer_id,rm_code,visited_at\nCB,RA,2024-05-02\nCB,NOSUCH,2024-05-03\nCB,RB,2024-05-04\n",
                 encoding="utf-8")
    s = run_import(engine, kind="visits", path=f, user="planner_b", rejects_dir=tmp_path, legal_entity_id=b)
    assert s["counts"]["inserted"] == 1 and s["rejected_reasons"] == {"no such RM (import rms first)": 2}
    f = tmp_path / "rms-outlet.csv"
    f.write_text("code,name,outlet_code\nRB2,乙二,OA\nRB3,乙三,NOSUCH\n", encoding="utf-8")
    s = run_import(engine, kind="rms", path=f, user="planner_b", rejects_dir=tmp_path, legal_entity_id=b)
    assert s["status"] == "rejected" and s["rejected_reasons"] == {"no such outlet (import outlets first)": 2}
    f = tmp_path / "customers-le.csv"
    f.write_text("customer_id,legal_entity\nCB5,LEA\nCB6,NOPE\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="planner_b", rejects_dir=tmp_path, legal_entity_id=b)
    assert s["rejected_reasons"] == {"not the importing user's legal entity (法人机构)": 2}


def test_the_database_check_stands_without_the_file_checks(engine, two_entities, a_rows, tmp_path, monkeypatch):
    """The rows' own checks (restrict_legal_entity, known outlets) are convenience: SQL decides."""
    _, b = two_entities
    monkeypatch.setattr(rows, "restrict_legal_entity", lambda *a, **k: None)
    before = {t: _rows(engine, t) for t in A_TABLES}
    f = tmp_path / "customers-raw.csv"
    # CA is A's; CB7 claims A's county; CB8 is fine.
    f.write_text("customer_id,county_code\nCA,640122\nCB7,640121\nCB8,640122\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="planner_b", rejects_dir=tmp_path, legal_entity_id=b)
    assert s["counts"]["inserted"] == 1 and s["rejected_reasons"] == {
        "id not available": 1, "county not in the importing user's legal entity (法人机构)": 1}
    assert {t: _rows(engine, t) for t in A_TABLES if t != "customer"} == {
        t: v for t, v in before.items() if t != "customer"}
    assert _rows(engine, "customer", "customer_id <> 'CB8'") == before["customer"]


def test_a_scoped_big_first_load_of_visits_still_checks_customers_and_rms(engine, two_entities, a_rows, tmp_path,
                                                                          monkeypatch):
    """Into an empty visit table a big file would COPY straight in; on behalf of a legal entity it goes
    through the staging table, where the customers and RMs it names are checked."""
    _, b = two_entities
    import geodata.importers as imp

    monkeypatch.setattr(imp, "DIRECT_LOAD_MIN_ROWS", 1)
    with engine.begin() as conn:
        kept = conn.execute(text("DELETE FROM visit RETURNING customer_id, rm_code, visited_at")).all()
    try:
        f = tmp_path / "visits-big.csv"
        f.write_text("customer_id,rm_code,visited_at\n"
                     + "".join(f"CB,RB,2024-06-{d:02d}\n" for d in range(1, 21)) + "CA,RB,2024-06-21\n",
                     encoding="utf-8")
        s = run_import(engine, kind="visits", path=f, user="planner_b", rejects_dir=tmp_path,
                       legal_entity_id=b, chunk_size=8)
        assert s["counts"]["inserted"] == 20 and s["rejected_reasons"] == {
            "no customer with this id in the importing user's legal entity (法人机构)": 1}
        assert _rows(engine, "visit", "customer_id = 'CA'") == []
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM visit"))
            for row in kept:
                conn.execute(text("INSERT INTO visit (customer_id, rm_code, visited_at) VALUES (:c, :r, :v)"),
                             {"c": row[0], "r": row[1], "v": row[2]})
