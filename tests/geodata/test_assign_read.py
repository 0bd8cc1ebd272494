"""Reading a county's customers over several connections at once (geodata.assign.fetch_customers, readers)."""

import pandas as pd
import pytest
import shapely
from sqlalchemy import text

from geodata import assign, customer_read

COUNTY = shapely.box(106.0, 38.0, 106.2, 38.2)


@pytest.fixture(scope="module")
def bank(engine):
    """900 customers over a dozen pages: most of 640121, some of another county or another legal entity,
    some without a point or a village code."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LE1', '一'), ('LE2', '二')"))
        conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES "
                          "('640121', '永宁县', 1, ST_Multi(ST_GeomFromText(:w, 4326)))"), {"w": COUNTY.wkt})
        conn.execute(text(
            "INSERT INTO customer (customer_id, county_code, legal_entity_id, village_code, deposit_balance,"
            " loan_balance, geom)"
            " SELECT 'C' || i, CASE WHEN i % 10 = 3 THEN '640122' ELSE '640121' END,"
            " CASE WHEN i % 17 = 5 THEN 2 WHEN i % 2 = 0 THEN 1 END,"
            " CASE WHEN i % 7 <> 0 THEN '6401211000' || lpad((i % 30)::text, 2, '0') END,"
            " i * 1.01, (i % 5) * 100.5,"
            " CASE WHEN i % 11 <> 0 THEN ST_SetSRID(ST_MakePoint(106 + (i % 97) / 400.0, 38 + (i % 89) / 400.0),"
            " 4326) END FROM generate_series(1, 900) i"))
        # Balances whose binary numeric has few, many or no digits, or is negative.
        for cid, dep, loan in (("C10", "-12345.67", "9999999999999999.99"), ("C12", "0", "0.01"),
                               ("C14", "100000000", "-0.5"), ("C16", "10000.1", "123456789012.34")):
            conn.execute(text("UPDATE customer SET deposit_balance = :d, loan_balance = :l WHERE customer_id = :c"),
                         {"c": cid, "d": dep, "l": loan})
    return engine


def test_read_gives_exact_cents_points_and_nulls(bank):
    with bank.connect() as conn:
        got = _sorted(assign.fetch_customers(conn, county_code="640121")).set_index("customer_id")
        sql = pd.DataFrame(conn.execute(text(
            "SELECT customer_id, village_code, ST_X(geom) AS lon, ST_Y(geom) AS lat,"
            " CAST(deposit_balance * 100 AS int8) AS deposit_cents, CAST(loan_balance * 100 AS int8) AS loan_cents"
            " FROM customer WHERE county_code = '640121' AND coalesce(legal_entity_id, 1) = 1")).mappings().all())
    sql = sql.set_index("customer_id").loc[got.index]
    assert (got["deposit_cents"] == sql["deposit_cents"]).all() and (got["loan_cents"] == sql["loan_cents"]).all()
    assert got.loc["C10", "deposit_cents"] == -1234567 and got.loc["C10", "loan_cents"] == 999999999999999999
    assert got.loc["C14", "deposit_cents"] == 10_000_000_000 and got.loc["C14", "loan_cents"] == -50
    # A missing village code reads as missing.
    codes = got["village_code"].astype(object)
    assert (codes.isna() == sql["village_code"].isna()).all() and codes.isna().any()
    assert (codes.dropna() == sql["village_code"].dropna()).all()
    assert got["lon"].isna().any() and (got["lon"].isna() == sql["lon"].isna()).all()
    assert (got["lon"].dropna() == sql["lon"].dropna()).all() and (got["lat"].dropna() == sql["lat"].dropna()).all()


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.astype({"customer_id": object, "village_code": object})
    return out.sort_values("customer_id").reset_index(drop=True)


def test_readers_read_the_same_rows_as_one_read(bank, monkeypatch):
    with bank.connect() as conn:
        assert conn.execute(text("SELECT pg_relation_size('customer') / 8192")).scalar() >= 4
        one = assign.fetch_customers(conn, county_code="640121")
    sliced = []
    real = customer_read.read_slices

    def spy(*a, **k):
        pieces = real(*a, **k)
        sliced.append([len(p["customer_id"]) for p in pieces])
        return pieces

    monkeypatch.setattr(customer_read, "read_slices", spy)
    for readers in (2, 3):
        with bank.connect() as conn:
            many = assign.fetch_customers(conn, county_code="640121", readers=readers)
        # Really read in slices, each of them holding rows.
        assert len(sliced[-1]) == readers and all(n > 0 for n in sliced[-1])
        pd.testing.assert_frame_equal(_sorted(many), _sorted(one))
    # Several ranges per reader (each one COPY of one aggregated row), and on this connection alone.
    with bank.begin() as conn:
        conn.execute(text("ANALYZE customer"))
    monkeypatch.setattr(customer_read, "ROWS_PER_RANGE", 200)
    with bank.connect() as conn:
        many = assign.fetch_customers(conn, county_code="640121", readers=2)
        alone = assign.fetch_customers(conn, county_code="640121")
    assert len(sliced[-1]) >= 4 and sum(n > 0 for n in sliced[-1]) >= 3
    pd.testing.assert_frame_equal(_sorted(many), _sorted(one))
    pd.testing.assert_frame_equal(_sorted(alone), _sorted(one))
    # Another county's and another legal entity's customers are left out.
    assert len(one) == 900 - 90 - len([i for i in range(1, 901) if i % 17 == 5 and i % 10 != 3])


def test_rows_this_transaction_wrote_are_read_too(bank):
    """Other sessions never see this transaction's own uncommitted rows: it reads in one piece then."""
    with bank.begin() as conn:
        conn.execute(text("UPDATE customer SET deposit_balance = 7 WHERE customer_id = 'C1'"))
        conn.execute(text("INSERT INTO customer (customer_id, county_code) VALUES ('NEW', '640121')"))
        got = _sorted(assign.fetch_customers(conn, county_code="640121", readers=2)).set_index("customer_id")
        conn.rollback()
    with bank.connect() as conn:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        conn.execute(text("SELECT 1"))  # this transaction's snapshot is taken: readers would see newer rows
        with bank.begin() as other:
            other.execute(text("UPDATE customer SET loan_balance = 3 WHERE customer_id = 'C4'"))
        old = _sorted(assign.fetch_customers(conn, county_code="640121", readers=2)).set_index("customer_id")
    assert old.loc["C4", "loan_cents"] == 40200
    assert got.loc["C1", "deposit_cents"] == 700 and "NEW" in got.index


def test_a_row_changed_meanwhile_is_read_once_as_it_was(bank, monkeypatch):
    """Every reader shares the snapshot the first one exported: a customer changed in between (its new
    version on another page) is read once, as it was (not twice, not never)."""
    real_raw = bank.raw_connection
    calls = []

    def raw_connection():
        calls.append(1)
        if len(calls) == 2:  # the second reader's connection: another session changes C2 first
            with bank.begin() as other:
                # Deleted and inserted again: the new row goes to the table's last page, the other reader's.
                other.execute(text("DELETE FROM customer WHERE customer_id = 'C2'"))
                other.execute(text("INSERT INTO customer (customer_id, county_code, deposit_balance)"
                                   " VALUES ('C2', '640121', 9)"))
        return real_raw()

    with bank.connect() as conn:
        monkeypatch.setattr(conn.engine, "raw_connection", raw_connection)
        got = assign.fetch_customers(conn, county_code="640121", readers=2)
    assert len(calls) >= 2 and (got["customer_id"].astype(object) == "C2").sum() == 1
    assert got.set_index(got["customer_id"].astype(object)).loc["C2", "deposit_cents"] == 202
