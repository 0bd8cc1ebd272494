"""The assignment partition written in chunks (encoded in a thread while the COPY runs)."""

import pytest
from sqlalchemy import text

from geodata import assign, grids, pgcopy
from tests.geodata.test_grids_assign import loaded  # noqa: F401  (the fixture: 8 customers, 6 villages)


def _partition(conn, gid):
    return conn.execute(text(f"SELECT customer_id, cell_id, how FROM customer_cell_g{int(gid)} ORDER BY ctid")).all()


def test_chunks_write_the_same_rows_as_one_piece(loaded, monkeypatch):  # noqa: F811
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="village")
        assign.assign_customers(conn, grid_id=g["id"])
        whole = _partition(conn, g["id"])
        # Chunks of 3: the last one holds only unplaced customers (every cell_id NULL).
        monkeypatch.setattr(assign, "WRITE_CHUNK", 3)
        rep = assign.assign_customers(conn, grid_id=g["id"])
        chunked = _partition(conn, g["id"])
    assert rep["customers"] == 8 and chunked == whole
    assert [r.how for r in chunked[-2:]] == ["outside", "no_location"] and chunked[-1].cell_id is None


def test_a_chunk_that_fails_leaves_the_previous_assignment(loaded, monkeypatch):  # noqa: F811
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8)
        assign.assign_customers(conn, grid_id=g["id"])
    with loaded.connect() as conn:
        before = _partition(conn, g["id"])
        stats = conn.execute(text("SELECT cell_id, customers, computed_at FROM cell_stat WHERE grid_id = :g "
                                  "ORDER BY cell_id"), {"g": g["id"]}).all()
    real = pgcopy._encode_rows
    calls = []

    def second_fails(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("chunk 2")
        return real(*a, **k)

    monkeypatch.setattr(assign, "WRITE_CHUNK", 3)
    monkeypatch.setattr(pgcopy, "_encode_rows", second_fails)
    with pytest.raises(MemoryError, match="chunk 2"), loaded.begin() as conn:
        conn.execute(text("UPDATE customer SET deposit_balance = 1 WHERE customer_id = 'C1'"))
        assign.assign_customers(conn, grid_id=g["id"])
    with loaded.connect() as conn:
        assert _partition(conn, g["id"]) == before and len(before) == 8
        assert conn.execute(text("SELECT cell_id, customers, computed_at FROM cell_stat WHERE grid_id = :g "
                                 "ORDER BY cell_id"), {"g": g["id"]}).all() == stats
        assert conn.execute(text("SELECT deposit_balance FROM customer WHERE customer_id = 'C1'")).scalar() == 1000
