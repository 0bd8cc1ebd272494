"""The assignment partition written in chunks (encoded in a thread while the COPY runs)."""

import pytest
from sqlalchemy import text

from geodata import assign, grids, partition_write, pgcopy
from tests.geodata.conftest import fail_indexing_piece
from tests.geodata.test_grids_assign import loaded  # noqa: F401  (the fixture: 8 customers, 6 villages)


def _partition(conn, gid):
    return conn.execute(text(f"SELECT customer_id, cell_id, how FROM customer_cell_g{int(gid)} ORDER BY ctid")).all()


def test_chunks_write_the_same_rows_as_one_piece(loaded, monkeypatch):  # noqa: F811
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="village")
        assign.assign_customers(conn, grid_id=g["id"])
        whole = _partition(conn, g["id"])
        # Chunks of 3: the last one holds only unplaced customers (every cell_id NULL).
        monkeypatch.setattr(partition_write, "WRITE_CHUNK", 3)
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

    monkeypatch.setattr(partition_write, "WRITE_CHUNK", 3)
    monkeypatch.setattr(pgcopy, "_encode_rows", second_fails)
    with pytest.raises(MemoryError, match="chunk 2"), loaded.begin() as conn:
        conn.execute(text("UPDATE customer SET deposit_balance = 1 WHERE customer_id = 'C1'"))
        assign.assign_customers(conn, grid_id=g["id"])
    with loaded.connect() as conn:
        assert _partition(conn, g["id"]) == before and len(before) == 8
        assert conn.execute(text("SELECT cell_id, customers, computed_at FROM cell_stat WHERE grid_id = :g "
                                 "ORDER BY cell_id"), {"g": g["id"]}).all() == stats
        assert conn.execute(text("SELECT deposit_balance FROM customer WHERE customer_id = 'C1'")).scalar() == 1000


def _by_customer(conn, gid):
    return conn.execute(text("SELECT customer_id, cell_id, how FROM customer_cell WHERE grid_id = :g"
                             " ORDER BY customer_id"), {"g": gid}).all()


def _tables(conn, gid):
    """The grid's partition's own tables (its halves when split) and any left-over new ones."""
    return conn.execute(text("SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'p')"
                             " AND c.relname LIKE :p ORDER BY 1"), {"p": f"customer\\_cell\\_g{int(gid)}%"}).scalars().all()


def test_a_big_partition_is_written_in_two_halves(loaded, monkeypatch):  # noqa: F811
    """From SPLIT_ROWS customers on, two connections each write and index half (a range of customer id);
    the halves are attached in the assignment's transaction. Same rows as the one-table write, each half
    in cell id order, and a re-assignment (split or not) replaces them without leaving tables behind."""
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8)
        assign.assign_customers(conn, grid_id=g["id"])
        whole = _by_customer(conn, g["id"])
    gid = int(g["id"])
    with loaded.connect() as conn:
        assert _tables(conn, gid) == [f"customer_cell_g{gid}"]
    monkeypatch.setattr(partition_write, "SPLIT_ROWS", 4)
    for _ in range(2):  # the second time over a split partition
        with loaded.begin() as conn:
            rep = assign.assign_customers(conn, grid_id=gid)
        with loaded.connect() as conn:
            assert rep["customers"] == 8 and _by_customer(conn, gid) == whole
            assert _tables(conn, gid) == [f"customer_cell_g{gid}", f"customer_cell_g{gid}_0", f"customer_cell_g{gid}_1"]
            halves = [conn.execute(text(f"SELECT customer_id, cell_id FROM customer_cell_g{gid}_{i} ORDER BY ctid"))
                      .all() for i in range(2)]
            assert all(halves) and max(r.customer_id for r in halves[0]) < min(r.customer_id for r in halves[1])
            for half in halves:  # cell id order, unplaced last
                cells = [r.cell_id for r in half]
                placed = [c for c in cells if c is not None]
                assert placed == sorted(placed) and cells == placed + [None] * (len(cells) - len(placed))
            # A lookup by customer id uses the index of the one half that holds it (a seq scan would win on
            # 8 rows): the halves are ranges of the column itself in a database of byte-order collation.
            conn.execute(text("SET enable_seqscan = off"))
            for i, half in enumerate(halves):
                plan = "\n".join(conn.execute(text("EXPLAIN SELECT cell_id FROM customer_cell WHERE grid_id = :g"
                                                   " AND customer_id = :c"), {"g": gid, "c": half[0].customer_id}).scalars())
                assert f"customer_cell_g{gid}_{i}_customer" in plan and f"customer_cell_g{gid}_{1 - i}" not in plan
    monkeypatch.setattr(partition_write, "SPLIT_ROWS", 10**9)
    with loaded.begin() as conn:  # what a killed pieced write left: the one-table write drops it too
        for i in (1, 4):  # whatever the number of pieces it had
            conn.execute(text(f"CREATE TABLE customer_cell_g{gid}_new_{i} (LIKE customer_cell)"))
    with loaded.begin() as conn:
        assign.assign_customers(conn, grid_id=gid)
        assert _by_customer(conn, gid) == whole and _tables(conn, gid) == [f"customer_cell_g{gid}"]


def test_a_half_that_fails_leaves_the_previous_assignment(loaded, monkeypatch):  # noqa: F811
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8)
        assign.assign_customers(conn, grid_id=g["id"])
    gid = int(g["id"])
    with loaded.connect() as conn:
        before = _by_customer(conn, gid)
        # What a process killed after its halves committed leaves behind: dropped by the next write.
        conn.execute(text(f"CREATE TABLE customer_cell_g{gid}_new_0 (LIKE customer_cell)"))
        conn.commit()
    monkeypatch.setattr(partition_write, "SPLIT_ROWS", 4)
    fail_indexing_piece(monkeypatch, "_new_1", "half 2")
    with pytest.raises(MemoryError, match="half 2"), loaded.begin() as conn:
        assign.assign_customers(conn, grid_id=gid)
    with loaded.connect() as conn:
        assert _by_customer(conn, gid) == before and _tables(conn, gid) == [f"customer_cell_g{gid}"]


@pytest.mark.timeout(90)  # before the fix this hung (the writers' lock wait had no end)
def test_halves_after_a_swap_in_the_same_transaction(loaded, monkeypatch):  # noqa: F811
    """A caller may assign several grids in one transaction (a script, a notebook); the first swap (DETACH)
    holds customer_cell exclusively to commit, so the halves' writers must not need it (with LIKE
    customer_cell they waited for the transaction that waited for them)."""
    with loaded.begin() as conn:
        a = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8)
        b = grids.build_grid(conn, county_code="640121", kind="village")
        assign.assign_customers(conn, grid_id=a["id"])
        whole = {g: _by_customer(conn, g) for g in (a["id"],)}
    monkeypatch.setattr(partition_write, "SPLIT_ROWS", 4)
    with loaded.begin() as conn:
        assign.assign_customers(conn, grid_id=a["id"])  # detaches and drops the old partition
        assign.assign_customers(conn, grid_id=b["id"])
    with loaded.connect() as conn:
        assert _by_customer(conn, a["id"]) == whole[a["id"]] and len(_by_customer(conn, b["id"])) == 8
        assert len(_tables(conn, b["id"])) == 3
