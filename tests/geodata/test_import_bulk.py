"""The first big customer load: a new table indexed in two sessions and swapped in, or nothing at all."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

import geodata.importers as imp
from geodata.errors import BadInput, Forbidden
from geodata.importers import bulk, rows, run_import


def _q(engine, sql, **kw):
    with engine.connect() as c:
        return c.execute(text(sql), kw).all()


def _schema(engine) -> dict:
    """What must survive a swap: columns, indexes, constraints (by name and definition)."""
    return {
        "columns": _q(engine, "SELECT attname, format_type(atttypid, atttypmod), attnotnull,"
                              " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d"
                              " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                              " WHERE attrelid = 'customer'::regclass AND attnum > 0 AND NOT attisdropped"
                              " ORDER BY attnum"),
        "indexes": _q(engine, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customer'"
                              " ORDER BY 1"),
        "constraints": _q(engine, "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint"
                                  " WHERE conrelid = 'customer'::regclass ORDER BY 1"),
        "options": _q(engine, "SELECT reloptions FROM pg_class WHERE oid = 'customer'::regclass"),
    }


def _leftovers(engine) -> list:
    return [r[0] for r in _q(engine, "SELECT relname FROM pg_class WHERE relname LIKE '\\_bulk\\_%'")]


def _file(tmp_path, n: int, start: int = 0, phone=None):
    i = pd.RangeIndex(start, start + n)
    df = pd.DataFrame({
        "客户号": [f"B{k:07d}" for k in i],
        "村代码": "640121100001",
        "经度": [f"{106.2 + (k % 90) * 0.001:.6f}" for k in i],
        "纬度": [f"{38.3 + (k % 40) * 0.001:.6f}" for k in i],
        "存款余额": [f"{k}.50" for k in i],
        "手机号": phone if phone is not None else [f"139{k:08d}" for k in i],
    })
    path = tmp_path / f"bulk-{start}-{n}.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture()
def empty(engine, monkeypatch):
    """An empty customer table, and every import of more than 10 rows takes the bulk path."""
    with engine.begin() as c:
        c.execute(text("TRUNCATE customer"))
    monkeypatch.setattr(imp, "DIRECT_LOAD_MIN_ROWS", 10)
    yield
    with engine.begin() as c:
        c.execute(text("TRUNCATE customer"))


def test_bulk_load_swaps_in_the_same_table(engine, empty, tmp_path):
    before = _schema(engine)
    oid = _q(engine, "SELECT 'customer'::regclass::oid")[0][0]
    s = run_import(engine, kind="customers", path=_file(tmp_path, 300), user="u", rejects_dir=tmp_path,
                   chunk_size=64)
    assert s["counts"] == {"rows": 300, "inserted": 300, "updated": 0, "unchanged": 0, "rejected": 0}
    # A new table under the old name, with the same columns, indexes and keys, and nothing left over.
    assert _q(engine, "SELECT 'customer'::regclass::oid")[0][0] != oid
    assert _schema(engine) == before
    assert _leftovers(engine) == []
    assert _q(engine, "SELECT count(*), count(geom), sum(deposit_balance)::text FROM customer")[0] == (
        300, 300, f"{sum(k + 0.5 for k in range(300)):.2f}")
    # The keys work: the same ids again update by key, a duplicate id is refused by the primary key.
    s2 = run_import(engine, kind="customers", path=_file(tmp_path, 20, start=290), user="u", rejects_dir=tmp_path)
    assert s2["counts"] | {"rows": 0} == {"rows": 0, "inserted": 10, "updated": 0, "unchanged": 10, "rejected": 0}
    with pytest.raises(Exception, match="pk_customer"), engine.begin() as c:
        c.execute(text("INSERT INTO customer (customer_id) VALUES ('B0000001')"))


def test_an_error_while_encoding_ahead_reaches_the_caller_and_stores_nothing(engine, empty, tmp_path,
                                                                             monkeypatch):
    # The COPY encoding of the big load runs in its own thread ahead of the sends; its failure
    # must end the import like any other: raised, rolled back, no table left over.
    real = imp.load.encode_direct
    calls = []

    def fail_on_the_third(kind, frame, run_id):
        calls.append(len(frame))
        if len(calls) == 3:
            raise ValueError("out of memory encoding chunk 3")
        return real(kind, frame, run_id)

    monkeypatch.setattr(imp.load, "encode_direct", fail_on_the_third)
    with pytest.raises(ValueError, match="out of memory encoding chunk 3"):
        run_import(engine, kind="customers", path=_file(tmp_path, 300), user="u", rejects_dir=tmp_path,
                   chunk_size=64)
    assert calls == [64, 64, 64]
    assert _q(engine, "SELECT count(*) FROM customer")[0][0] == 0
    assert _leftovers(engine) == []
    # And the next import of the file loads it whole.
    monkeypatch.setattr(imp.load, "encode_direct", real)
    s = run_import(engine, kind="customers", path=_file(tmp_path, 300), user="u", rejects_dir=tmp_path,
                   chunk_size=64)
    assert s["counts"]["inserted"] == 300 and _q(engine, "SELECT count(*) FROM customer")[0][0] == 300


def test_failed_index_build_leaves_the_target_empty(engine, empty, tmp_path):
    """A unique index the rows violate fails in the index sessions: nothing is stored, nothing left over."""
    with engine.begin() as c:
        c.execute(text("CREATE UNIQUE INDEX ux_customer_phone ON customer (phone)"))
    try:
        before = _schema(engine)
        with pytest.raises(Exception, match="ux_customer_phone|could not create unique index"):
            run_import(engine, kind="customers", path=_file(tmp_path, 50, phone="13900000000"), user="u",
                       rejects_dir=tmp_path)
        assert _q(engine, "SELECT count(*) FROM customer")[0][0] == 0
        assert _schema(engine) == before
        assert _leftovers(engine) == []
        assert _q(engine, "SELECT status FROM import_run ORDER BY id DESC LIMIT 1")[0][0] == "failed"
    finally:
        with engine.begin() as c:
            c.execute(text("DROP INDEX IF EXISTS ux_customer_phone"))


def test_rows_stored_meanwhile_stop_the_swap(engine, empty, tmp_path, monkeypatch):
    """Another import filling the target while this one indexes: refused with a clear error, theirs kept."""
    real = bulk.build_indexes

    def and_someone_else(connect, plan, sessions=2):
        real(connect, plan, sessions)
        with engine.begin() as c:
            c.execute(text("INSERT INTO customer (customer_id) VALUES ('OTHER1')"))

    monkeypatch.setattr(bulk, "build_indexes", and_someone_else)
    with pytest.raises(BadInput, match="stored by another import"):
        run_import(engine, kind="customers", path=_file(tmp_path, 40), user="u", rejects_dir=tmp_path)
    assert [r[0] for r in _q(engine, "SELECT customer_id FROM customer")] == ["OTHER1"]
    assert _leftovers(engine) == []


def test_a_killed_loads_table_is_dropped_next_time(engine, empty, tmp_path):
    """A load's table is dropped once nobody holds its lock (a killed process), not while its load runs."""
    with engine.begin() as c:
        c.execute(text("CREATE TABLE _bulk_customer_999999 (x int)"))  # its process is gone
        c.execute(text("CREATE TABLE _bulk_customer_999998 (x int)"))  # its process still loads
    with engine.connect() as alive:
        alive.execute(text("SELECT pg_advisory_lock(:c, 999998)"), {"c": bulk.LOCK_CLASS})
        run_import(engine, kind="customers", path=_file(tmp_path, 30), user="u", rejects_dir=tmp_path)
        assert _leftovers(engine) == ["_bulk_customer_999998"]
        alive.execute(text("SELECT pg_advisory_unlock(:c, 999998)"), {"c": bulk.LOCK_CLASS})
    with engine.begin() as c:
        c.execute(text("TRUNCATE customer"))  # the next bulk load (into an empty table) cleans up
    run_import(engine, kind="customers", path=_file(tmp_path, 30, start=7000), user="u", rejects_dir=tmp_path)
    assert _leftovers(engine) == []
    # Our own loads left no lock behind.
    assert _q(engine, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :c",
              c=bulk.LOCK_CLASS)[0][0] == 0


def test_a_view_on_the_target_means_loading_in_place(engine, empty, tmp_path):
    """A view would not follow a swapped table: then the rows go straight into the target."""
    with engine.begin() as c:
        c.execute(text("CREATE VIEW customer_names AS SELECT customer_id, name FROM customer"))
    try:
        oid = _q(engine, "SELECT 'customer'::regclass::oid")[0][0]
        s = run_import(engine, kind="customers", path=_file(tmp_path, 30, start=5000), user="u",
                       rejects_dir=tmp_path)
        assert s["counts"]["inserted"] == 30
        assert _q(engine, "SELECT 'customer'::regclass::oid")[0][0] == oid
        assert _q(engine, "SELECT count(*) FROM customer_names")[0][0] == 30
    finally:
        with engine.begin() as c:
            c.execute(text("DROP VIEW IF EXISTS customer_names"))


def test_indexes_are_dealt_by_cost():
    ix = [bulk.Index(name=n, create="", temp=n, constraint=None, cost=c)
          for n, c in (("gist", 4), ("a", 1), ("b", 1), ("c", 1), ("d", 1))]
    parts = bulk.split(ix)
    assert [[i.name for i in p] for p in parts] == [["gist"], ["a", "b", "c", "d"]]
    assert bulk.split(ix[:1]) == [[ix[0]]]


@pytest.mark.parametrize("threshold", [10, 10_000], ids=["bulk", "staging"])
def test_a_duplicated_id_is_a_reject_on_every_path_and_across_chunks(engine, empty, tmp_path, monkeypatch,
                                                                     threshold):
    """A repeated customer id is rejected as 'duplicate of line N', whether its first occurrence is in the
    same chunk or an earlier one, and whatever else a chunk holds: a key longer than 64 bytes used to change
    how every key of its chunk was hashed, so the repeat went unnoticed and the first load failed with
    'could not create unique index' (UniqueViolation)."""
    monkeypatch.setattr(imp, "DIRECT_LOAD_MIN_ROWS", threshold)
    ids = [f"D{k:05d}" for k in range(100)] + ["X" * 70, "D00003", "D00099", "D00099"]
    f = tmp_path / "dups.csv"
    # A different file per path (the same bytes twice would be 'unchanged').
    pd.DataFrame({"customer_id": ids, "deposit_balance": str(threshold)}).to_csv(f, index=False)
    s = run_import(engine, kind="customers", path=f, user="u", rejects_dir=tmp_path, chunk_size=64)
    assert s["status"] == "ok"
    assert s["counts"] == {"rows": 104, "inserted": 100, "updated": 0, "unchanged": 0, "rejected": 4}
    rejects = pd.read_csv(s["rejects_path"], encoding="utf-8-sig", dtype=str)
    # Lines: header is line 1, D00000 line 2, the long id line 102.
    assert sorted(zip(rejects["line"].astype(int), rejects["reason"], strict=True)) == [
        (102, "longer than 32 characters"), (103, "duplicate of line 5"),
        (104, "duplicate of line 101"), (105, "duplicate of line 101")]
    assert _q(engine, "SELECT count(*), count(DISTINCT customer_id) FROM customer")[0] == (100, 100)
    assert _leftovers(engine) == []


def _two_entities(engine) -> tuple[int, int]:
    """Legal entities LEA (county 640121) and LEB (county 640122), created once per module."""
    with engine.begin() as c:
        for code, adcode in (("LEA", "640121"), ("LEB", "640122")):
            c.execute(text("INSERT INTO legal_entity (code, name) VALUES (:c, :c) ON CONFLICT DO NOTHING"),
                      {"c": code})
            c.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) SELECT :a, :a, id,"
                           " ST_Multi(ST_MakeEnvelope(106, 38, 107, 39, 4326)) FROM legal_entity WHERE code = :c"
                           " ON CONFLICT DO NOTHING"), {"a": adcode, "c": code})
        ids = dict(c.execute(text("SELECT code, id FROM legal_entity")).all())
    return ids["LEA"], ids["LEB"]


def test_a_scoped_first_load_takes_the_bulk_path_and_stores_only_the_users_rows(engine, empty, tmp_path):
    _, b = _two_entities(engine)
    oid = _q(engine, "SELECT 'customer'::regclass::oid")[0][0]
    f = tmp_path / "scoped.csv"
    pd.DataFrame({"customer_id": [f"S{k:05d}" for k in range(300)],
                  "legal_entity": ["LEA" if k % 10 == 3 else "LEB" for k in range(300)],
                  "county_code": ["640121" if k % 10 == 5 else "640122" for k in range(300)]}).to_csv(f, index=False)
    s = run_import(engine, kind="customers", path=f, user="planner_b", rejects_dir=tmp_path, chunk_size=64,
                   legal_entity_id=b)
    assert _q(engine, "SELECT 'customer'::regclass::oid")[0][0] != oid  # the bulk path: a new table swapped in
    assert s["counts"] == {"rows": 300, "inserted": 240, "updated": 0, "unchanged": 0, "rejected": 60}
    assert s["rejected_reasons"] == {"not the importing user's legal entity (法人机构)": 30,
                                     "county not in the importing user's legal entity (法人机构)": 30}
    assert _q(engine, "SELECT legal_entity_id, county_code, count(*) FROM customer GROUP BY 1, 2") == [
        (b, "640122", 240)]


def test_the_bulk_path_checks_the_stored_rows_in_sql(engine, empty, tmp_path, monkeypatch):
    """Were the file checks to let another entity's rows through, the load fails before anything is stored."""
    _two_entities(engine)
    b = _q(engine, "SELECT id FROM legal_entity WHERE code = 'LEB'")[0][0]
    monkeypatch.setattr(rows, "restrict_legal_entity", lambda *a, **k: None)
    f = tmp_path / "sneaky.csv"
    # No legal entity column: each row takes its county's, which for 640121 is LEA's.
    pd.DataFrame({"customer_id": [f"T{k:05d}" for k in range(300)],
                  "county_code": ["640121" if k == 150 else "640122" for k in range(300)]}).to_csv(f, index=False)
    with pytest.raises(Forbidden, match="1 rows of this customers import are not of the importing user's"):
        run_import(engine, kind="customers", path=f, user="planner_b", rejects_dir=tmp_path, chunk_size=64,
                   legal_entity_id=b)
    assert _q(engine, "SELECT count(*) FROM customer")[0][0] == 0 and _leftovers(engine) == []
