"""A batch county's write-back in pieces (ranges of customer id read from staging one at a time): the same
rows as the write-back in one piece and as ``gridmkt assign customers``, at most two pieces in memory, a
failing piece leaves the previous assignment, a killed write's pieces are dropped however many."""

from __future__ import annotations

import re
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import text

from geodata import DEMO_DATA as DATA
from geodata import assign, grids, partition_write
from geodata.assign import HOW
from geodata.batch import sources, store, tasks
from geodata.cell_stats import totals_frame
from geodata.importers import run_import
from tests.geodata.conftest import fail_indexing_piece

COUNTY = "640181"  # 灵武市
N = 2000
AS_OF = "2026-06-30"


@pytest.fixture(scope="module")
def county_grid(engine, db_url, counties, tmp_path_factory):
    """An H3 res-8 grid of a real county with N customers (some by village code, outside, no location)."""
    d = tmp_path_factory.mktemp("p")
    v = run_import(engine, kind="villages", path=DATA / "ningxia_villages.csv", user="u", crs="gcj02",
                   rejects_dir=d, mapping={"street_code": "township_code", "street_name": "township_name",
                                           "lon_gcj02": "lon", "lat_gcj02": "lat"})
    assert v["counts"]["rejected"] == 0
    with engine.connect() as conn:
        shape = shapely.from_wkb(bytes(conn.execute(text("SELECT ST_AsBinary(geom) FROM county WHERE adcode = :c"),
                                                    {"c": COUNTY}).scalar()))
        villages = conn.execute(text("SELECT code FROM village WHERE county_code = :c"), {"c": COUNTY}).scalars().all()
    rng = np.random.default_rng(23)
    x0, y0, x1, y1 = shape.bounds
    lon, lat = rng.uniform(x0, x1, N), rng.uniform(y0, y1, N)
    rows = []
    for i in rng.permutation(N):  # ids not in the order of the file
        kind = i % 10
        point = kind not in (2, 4)
        rows.append({"customer_id": f"P{i:05d}", "county_code": COUNTY,
                     "village_code": villages[i % len(villages)] if kind in (1, 2, 3) else "",
                     "lon": f"{lon[i]:.6f}" if point else "", "lat": f"{lat[i]:.6f}" if point else "",
                     "deposit_balance": f"{rng.integers(0, 10**8) / 100:.2f}",
                     "loan_balance": f"{rng.integers(0, 10**7) / 100:.2f}"})
    path = d / "customers.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert run_import(engine, kind="customers", path=path, user="u", rejects_dir=d)["counts"]["inserted"] == N
    with engine.begin() as conn:
        grid = grids.build_grid(conn, county_code=COUNTY, kind="h3", resolution=8)
        bundle = store.bundle(conn, grid)
    return {"id": int(grid["id"]), "bundle": bundle, "url": db_url}


def _batch(engine, g, *, parts=3):
    """The batch path without Dask: ``parts`` hash slices placed and staged, then the county written back."""
    token = uuid.uuid4().hex[:16]
    gid, b = g["id"], g["bundle"]
    with engine.begin() as conn:
        store.create_staging(conn, token=token, grid_ids=[gid])
    try:
        total = None
        for i in range(parts):
            res = tasks.place(sources.StorePart(COUNTY, i, parts), {gid: b}, g["url"], token)
            total = tasks.add(total, res["grids"][gid])
        return store.write_back(engine, token=token, grid=b, totals=totals_frame(b.cells["cell_id"].to_numpy(), total[0]),
                                how=dict(zip(HOW, (int(x) for x in total[1]), strict=True)), as_of=AS_OF)
    finally:
        store.drop_staging(engine, token=token, grid_ids=[gid])


def _rows(engine, gid):
    with engine.connect() as conn:
        placed = conn.execute(text("SELECT customer_id, cell_id, how FROM customer_cell WHERE grid_id = :g"
                                   " ORDER BY customer_id"), {"g": gid}).all()
        stats = conn.execute(text("SELECT cell_id, customers, households, population, deposit, loan FROM cell_stat"
                                  " WHERE grid_id = :g ORDER BY cell_id"), {"g": gid}).all()
    return placed, stats


def _tables(engine, gid):
    with engine.connect() as conn:
        return conn.execute(text("SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relname LIKE :p"
                                 " ORDER BY 1"), {"p": f"customer\\_cell\\_g{gid}%"}).scalars().all()


def _pieces(engine, gid):
    """The pieces of the grid's partition, in range order: their rows in stored order (ctid)."""
    names = sorted((t for t in _tables(engine, gid) if re.fullmatch(rf"customer_cell_g{gid}_[0-9]+", t)),
                   key=lambda t: int(t.rsplit("_", 1)[1]))
    with engine.connect() as conn:
        return [conn.execute(text(f"SELECT customer_id, cell_id FROM {t} ORDER BY ctid")).all() for t in names]


@pytest.fixture(scope="module")
def whole(engine, county_grid):
    """The single path's and the unpieced write-back's assignment (they must agree)."""
    gid = county_grid["id"]
    with engine.begin() as conn:
        assign.assign_customers(conn, grid_id=gid, as_of=AS_OF)
    single = _rows(engine, gid)
    assert len(single[0]) == N and {r.how for r in single[0]} == {"point", "village", "outside", "no_location"}
    rep = _batch(engine, county_grid)
    assert rep["customers"] == N and _rows(engine, gid) == single and _tables(engine, gid) == [f"customer_cell_g{gid}"]
    return single


def test_pieced_write_back_equals_the_unpieced_one(engine, county_grid, whole, monkeypatch):
    gid = county_grid["id"]
    monkeypatch.setattr(store, "PIECE_ROWS", 300)  # 2,000 staged rows: 7 pieces
    real_read, real_copy = store.read_staged, partition_write._copy
    read, live, peak, mutex = [], [0], [0], threading.Lock()

    def read_piece(*a, **k):
        out = real_read(*a, **k)
        with mutex:
            read.append(len(out))
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        return out

    def copy(*a, **k):
        try:
            return real_copy(*a, **k)
        finally:
            with mutex:
                live[0] -= 1

    monkeypatch.setattr(store, "read_staged", read_piece)
    monkeypatch.setattr(partition_write, "_copy", copy)
    for _ in range(2):  # the second time over a pieced partition
        rep = _batch(engine, county_grid, parts=4)
        assert rep["customers"] == N and _rows(engine, gid) == whole
        # Each piece read from staging on its own, about N / 7 rows each; at most two in memory at once.
        assert len(read) == 7 and sum(read) == N and max(read) <= 400 and peak[0] <= 2, (read, peak)
        assert _tables(engine, gid) == sorted([f"customer_cell_g{gid}", *(f"customer_cell_g{gid}_{i}" for i in range(7))])
        pieces = _pieces(engine, gid)
        assert all(pieces) and sum(map(len, pieces)) == N
        for a, b in zip(pieces, pieces[1:], strict=False):  # ranges of customer id, in byte order
            assert max(r.customer_id.encode() for r in a) < min(r.customer_id.encode() for r in b)
        for piece in pieces:  # each in cell id order, unplaced last
            cells = [r.cell_id for r in piece]
            placed = [c for c in cells if c is not None]
            assert placed == sorted(placed) and cells == placed + [None] * (len(cells) - len(placed))
        read.clear()
    with engine.connect() as conn:  # a lookup by customer id prunes to the one piece that holds it
        conn.execute(text("SET enable_seqscan = off"))
        for piece, rows in enumerate(pieces):
            plan = "\n".join(conn.execute(text("EXPLAIN SELECT cell_id FROM customer_cell WHERE grid_id = :g"
                                               " AND customer_id = :c"), {"g": gid, "c": rows[0].customer_id}).scalars())
            assert re.findall(rf"customer_cell_g{gid}_([0-9]+)\b", plan) == [str(piece)], plan
    # Back to one piece: the pieces go with the partition they belonged to.
    monkeypatch.setattr(store, "PIECE_ROWS", 10**9)
    _batch(engine, county_grid)
    assert _rows(engine, gid) == whole and _tables(engine, gid) == [f"customer_cell_g{gid}"]


def test_a_failing_piece_leaves_the_previous_assignment(engine, county_grid, whole, monkeypatch):
    gid = county_grid["id"]
    monkeypatch.setattr(store, "PIECE_ROWS", 300)
    _batch(engine, county_grid)
    before, tables = _rows(engine, gid), _tables(engine, gid)
    assert before == whole and len(tables) == 8
    real = partition_write._index
    fail_indexing_piece(monkeypatch, "_new_3", "piece 4")
    with engine.begin() as conn:  # the failed write must not touch the statistics either
        conn.execute(text("UPDATE cell_stat SET customers = customers + 1000 WHERE grid_id = :g"), {"g": gid})
    changed = _rows(engine, gid)[1]
    with pytest.raises(MemoryError, match="piece 4"):
        _batch(engine, county_grid)
    assert _rows(engine, gid) == (before[0], changed) and _tables(engine, gid) == tables  # no piece left over
    monkeypatch.setattr(partition_write, "_index", real)
    _batch(engine, county_grid)
    assert _rows(engine, gid) == whole


def test_a_killed_writes_pieces_are_dropped_however_many(engine, county_grid, whole, monkeypatch):
    """What a process killed after its writers committed leaves: ``customer_cell_g{G}_new_{i}`` for any i,
    dropped by the grid's next write, pieced or not."""
    gid = county_grid["id"]

    def leave(n):
        with engine.begin() as conn:
            for i in range(n):
                conn.execute(text(f"CREATE TABLE customer_cell_g{gid}_new_{i} (LIKE customer_cell)"))

    monkeypatch.setattr(store, "PIECE_ROWS", 300)
    leave(12)  # more than this write's 7 pieces
    _batch(engine, county_grid)
    assert _rows(engine, gid) == whole and len(_tables(engine, gid)) == 8
    assert not [t for t in _tables(engine, gid) if "_new" in t]
    leave(12)
    with engine.begin() as conn:  # the one-table write (gridmkt assign customers, small county) too
        assign.assign_customers(conn, grid_id=gid, as_of=AS_OF)
    assert _rows(engine, gid) == whole and _tables(engine, gid) == [f"customer_cell_g{gid}"]


def test_pieces_by_collate_c_where_the_default_collation_is_not_byte_order(engine, county_grid, whole, monkeypatch):
    """In a database of another default collation the pieces are ranges of ``customer_id COLLATE "C"`` (the
    split points are in byte order): same rows; a lookup then says COLLATE "C" to be pruned."""
    gid = county_grid["id"]
    monkeypatch.setattr(store, "PIECE_ROWS", 500)
    monkeypatch.setattr(partition_write, "range_key", lambda conn: '(customer_id COLLATE "C")')
    _batch(engine, county_grid)
    assert _rows(engine, gid) == whole and len(_tables(engine, gid)) == 5
    with engine.connect() as conn:
        key = conn.execute(text("SELECT pg_get_partkeydef(CAST(:t AS regclass))"), {"t": f"customer_cell_g{gid}"}).scalar()
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(conn.execute(text('EXPLAIN SELECT cell_id FROM customer_cell WHERE grid_id = :g'
                                           ' AND customer_id COLLATE "C" = :c'), {"g": gid, "c": whole[0][0].customer_id}).scalars())
    assert 'COLLATE "C"' in key, key
    assert len(re.findall(rf"customer_cell_g{gid}_([0-9]+)\b", plan)) == 1, plan


@pytest.mark.timeout(120)
def test_pieces_are_written_while_another_grid_swaps(engine, county_grid, whole, monkeypatch):
    """Counties are written back in parallel: while another transaction holds customer_cell's partition lock
    (a swap, to its commit), this county's pieces are still read, written and committed; only the attach
    waits. (They waited for the lock before reading anything.)"""
    gid = county_grid["id"]
    monkeypatch.setattr(store, "PIECE_ROWS", 300)
    other = engine.connect()
    other.execute(text("LOCK TABLE customer_cell IN SHARE UPDATE EXCLUSIVE MODE"))
    errors = []

    def run():
        try:
            _batch(engine, county_grid)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            written = [n for n in _tables(engine, gid) if "_new_" in n]
            if len(written) == 7:
                break
            time.sleep(0.2)
        assert len(written) == 7 and t.is_alive() and not errors, (written, errors)
    finally:
        other.rollback()
        other.close()
    t.join(60)
    assert not errors and not t.is_alive()
    assert _rows(engine, gid) == whole and len(_tables(engine, gid)) == 8
