"""Review of grids and assignment against the database: stale rows, other legal entities."""

import pytest
import shapely
from sqlalchemy import text

from geodata import assign, grids
from geodata.importers import run_import

WEST = shapely.box(106.0, 38.0, 106.2, 38.2)
EAST = shapely.box(106.2, 38.0, 106.4, 38.2)
HEADER = "customer_id,county_code,lon,lat,deposit_balance\n"


@pytest.fixture(scope="module")
def two_counties(engine, tmp_path_factory):
    """Two neighbouring counties of legal entity LE1, a third one of LE2; customers imported into the first two."""
    d = tmp_path_factory.mktemp("rg")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LE1', '甲农商行'), ('LE2', '乙农商行')"))
        for code, geom in (("640121", WEST), ("640122", EAST)):
            conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES "
                              "(:c, :c, 1, ST_Multi(ST_GeomFromText(:w, 4326)))"), {"c": code, "w": geom.wkt})
    f = d / "customers.csv"
    f.write_text(HEADER + "W1,640121,106.05,38.05,100\nW2,640121,106.15,38.15,200\n"
                 "E1,640122,106.25,38.05,400\n", encoding="utf-8")
    s = run_import(engine, kind="customers", path=f, user="u", rejects_dir=d)
    assert s["counts"]["inserted"] == 3, s
    return engine, d


def _partition(engine, grid_id):
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT customer_id, cell_id FROM customer_cell WHERE grid_id = :g"),
                                 {"g": grid_id}).all())


def _customers_counted(engine, grid_id):
    with engine.connect() as conn:
        return conn.execute(text("SELECT sum(customers), sum(deposit) FROM cell_stat WHERE grid_id = :g"),
                            {"g": grid_id}).one()


def test_customers_of_another_legal_entity_are_not_placed_in_the_grid(two_counties):
    """A customer row of LE2 carrying LE1's county code stays out of LE1's grid and its figures."""
    engine, _ = two_counties
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customer (customer_id, legal_entity_id, county_code, deposit_balance, geom) "
                          "VALUES ('X1', 2, '640121', 9999, ST_SetSRID(ST_MakePoint(106.06, 38.06), 4326))"))
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8)["id"]
        rep = assign.assign_customers(conn, grid_id=g)
        conn.execute(text("DELETE FROM customer WHERE customer_id = 'X1'"))
    assert "X1" not in _partition(engine, g)
    assert rep["customers"] == len(_partition(engine, g))
    assert float(_customers_counted(engine, g)[1]) < 9999


def test_rollup_of_a_grid_never_assigned_has_every_figure_as_zero(two_counties):
    """Before any assignment a roll-up still carries the figure columns (zeros), as the cells API reads them."""
    engine, _ = two_counties
    with engine.begin() as conn:
        g = grids.build_grid(conn, county_code="640122", kind="h3", resolution=8)["id"]
        coarse = grids.rollup_cells(conn, grid_id=g, res=6)
    for col in grids.STAT_COLUMNS:
        assert col in coarse.columns and float(coarse[col].sum()) == 0.0, col


def test_village_names_with_a_backslash_keep_it_in_the_cell_label(two_counties):
    r"""Cell labels travel to COPY in text format, where a backslash starts an escape (``\b`` is a backspace)."""
    engine, _ = two_counties
    names = {"640122100001": "东\\b村", "640122100002": "西村\r"}
    with engine.begin() as conn:
        for (code, name), lon in zip(names.items(), (106.25, 106.35), strict=True):
            conn.execute(text("INSERT INTO village (code, name, township_code, county_code, coord_level, geom) "
                              "VALUES (:c, :n, '640122100', '640122', 'village', "
                              "ST_SetSRID(ST_MakePoint(:x, 38.1), 4326))"), {"c": code, "n": name, "x": lon})
        g = grids.build_grid(conn, county_code="640122", kind="village")["id"]
        labels = dict(conn.execute(text("SELECT cell_id, label FROM cell WHERE grid_id = :g"), {"g": g}).all())
    assert labels == {"640122100001": "东\\b村", "640122100002": "西村 "}


def test_two_assignments_of_one_grid_at_once_both_succeed(two_counties):
    """Two assignments of one grid started together: the second waits for the first. Without that
    they deadlocked (each waiting for the other's partition table), and one of them failed."""
    import threading

    engine, _ = two_counties
    with engine.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8)["id"]
    errors: list[Exception] = []
    reports: list[dict] = []
    for _ in range(3):
        together = threading.Barrier(2)

        def run(together: threading.Barrier) -> None:
            try:
                with engine.begin() as conn:
                    together.wait(10)
                    reports.append(assign.assign_customers(conn, grid_id=g))
            except Exception as exc:  # asserted below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(together,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(reports) == 6 and {r["customers"] for r in reports} == {2}
    assert set(_partition(engine, g)) == {"W1", "W2"}


def test_assignments_of_two_grids_at_once_do_not_deadlock(two_counties):
    """Two grids re-assigned together: each swap detaches the old partition, which needs customer_cell
    exclusively. Each used to hold a share lock on customer_cell (its new table is made LIKE it) while
    waiting for that, and PostgreSQL killed one of the two as a deadlock."""
    import threading

    engine, _ = two_counties
    with engine.begin() as conn:
        ids = [grids.build_grid(conn, county_code="640121", kind="h3", resolution=r)["id"] for r in (7, 8)]
        for g in ids:
            assign.assign_customers(conn, grid_id=g)
    errors: list[Exception] = []
    reports: list[dict] = []
    for _ in range(5):
        together = threading.Barrier(2)

        def run(gid: int, together: threading.Barrier) -> None:
            try:
                with engine.begin() as conn:
                    together.wait(10)
                    reports.append(assign.assign_customers(conn, grid_id=gid))
            except Exception as exc:  # asserted below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(g, together)) for g in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(reports) == 10 and {r["customers"] for r in reports} == {2}
    for g in ids:
        assert set(_partition(engine, g)) == {"W1", "W2"}
