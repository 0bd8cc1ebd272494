"""Grid versions in PostGIS and the assignment of customers to their cells."""

import pytest
import shapely
from sqlalchemy import text

from geodata import assign, grids
from geodata.errors import NotFound
from grid.locate import VillageLocator

COUNTY = shapely.box(106.0, 38.0, 106.2, 38.2)
VILLAGES = [
    # code, township, lon, lat, level, households, population
    ("640121100001", "640121100", 106.03, 38.03, "village", 100, 260),
    ("640121100002", "640121100", 106.17, 38.03, "village", 200, 520),
    ("640121100003", "640121100", 106.03, 38.17, "village", 300, 800),
    ("640121101001", "640121101", 106.15, 38.15, "township", 40, 100),
    ("640121101002", "640121101", 106.15, 38.15, "township", 60, 150),
    ("640121101003", "640121101", None, None, "none", 10, 20),
]
CUSTOMERS = [
    # id, lon, lat, village, deposit
    ("C1", 106.031, 38.031, "640121100001", 1000),
    ("C2", 106.169, 38.031, "640121100002", 2000),
    ("C3", 106.031, 38.169, None, 3000),
    ("C4", 106.151, 38.151, "640121101001", 4000),
    ("C5", None, None, "640121100002", 5000),      # no point: by village code
    ("C6", 107.5, 39.5, "640121100003", 6000),       # point outside, village code known
    ("C7", 107.5, 39.5, None, 7000),                 # outside, nothing else
    ("C8", None, None, None, 8000),                  # no location at all
]


@pytest.fixture(scope="module")
def loaded(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LE1', '测试农商银行')"))
        conn.execute(
            text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES "
                 "('640121', '永宁县', 1, ST_Multi(ST_GeomFromText(:w, 4326)))"),
            {"w": COUNTY.wkt},
        )
        for code, town, lon, lat, level, hh, pop in VILLAGES:
            conn.execute(
                text("INSERT INTO village (code, name, township_code, county_code, households, population, "
                     "coord_level, geom) VALUES (:c, :n, :t, '640121', :hh, :pop, :lvl, "
                     "CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END)"),
                {"c": code, "n": "村" + code[-3:], "t": town, "hh": hh, "pop": pop, "lvl": level, "lon": lon, "lat": lat},
            )
        for cid, lon, lat, vcode, dep in CUSTOMERS:
            conn.execute(
                text("INSERT INTO customer (customer_id, county_code, village_code, deposit_balance, geom) VALUES "
                     "(:c, '640121', :v, :d, CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL "
                     "ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END)"),
                {"c": cid, "v": vcode, "d": dep, "lon": lon, "lat": lat},
            )
    return engine


def test_village_grid_tiles_county_and_merges_shared_points(loaded):
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="village")
    assert g["kind"] == "village" and g["cell_count"] == 4
    assert g["report"]["merged_groups"] == 1 and g["report"]["merged_villages"] == 2
    assert [u["code"] for u in g["report"]["unplaced"]] == ["640121101003"]
    with loaded.connect() as conn:
        cells = grids.load_cells(conn, grid_id=g["id"], with_stats=False)
        union_area = conn.execute(
            text("SELECT ST_Area(ST_Union(geom)) / ST_Area(ST_GeomFromText(:w, 4326)) FROM cell WHERE grid_id = :g"),
            {"w": COUNTY.wkt, "g": g["id"]},
        ).scalar()
    assert abs(union_area - 1) < 1e-9
    assert "G640121101001" in set(cells["cell_id"])
    merged = cells.set_index("cell_id").loc["G640121101001"]
    assert list(merged["village_codes"]) == ["640121101001", "640121101002"]


def test_assign_customers_each_exactly_once(loaded):
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="village")
        rep = assign.assign_customers(conn, grid_id=g["id"])
    assert rep["customers"] == 8
    assert (rep["by_point"], rep["by_village_code"], rep["outside_county"], rep["no_location"]) == (4, 2, 1, 1)
    with loaded.connect() as conn:
        rows = dict(conn.execute(
            text("SELECT customer_id, cell_id FROM customer_cell WHERE grid_id = :g"), {"g": g["id"]}
        ).all())
        stats = conn.execute(
            text("SELECT cell_id, customers, households, deposit FROM cell_stat WHERE grid_id = :g ORDER BY cell_id"),
            {"g": g["id"]},
        ).all()
    assert len(rows) == 8
    assert rows["C1"] == "640121100001" and rows["C5"] == "640121100002" and rows["C6"] == "640121100003"
    assert rows["C4"] == "G640121101001" and rows["C7"] is None and rows["C8"] is None
    by_cell = {r[0]: r for r in stats}
    assert by_cell["640121100002"][1] == 2 and float(by_cell["640121100002"][3]) == 7000
    assert by_cell["G640121101001"][2] == 100  # 40 + 60 households of the merged group
    assert sum(r[1] for r in stats) == 6


def test_partition_is_stored_in_cell_order_and_found_by_cell(loaded):
    """Rows sit in cell id order (unplaced last), and the cell index answers per-cell queries."""
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=9)
        assign.assign_customers(conn, grid_id=g["id"])
    with loaded.connect() as conn:
        stored = conn.execute(text("SELECT cell_id, customer_id, how FROM customer_cell WHERE grid_id = :g"
                                   " ORDER BY ctid"), {"g": g["id"]}).all()
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.execute(text(
            "EXPLAIN SELECT customer_id FROM customer_cell WHERE grid_id = :g AND cell_id = :c"),
            {"g": g["id"], "c": stored[0][0]}))
        by_cell = conn.execute(text("SELECT customer_id FROM customer_cell WHERE grid_id = :g AND cell_id = :c"),
                               {"g": g["id"], "c": stored[0][0]}).scalars().all()
    cells = [r[0] for r in stored]
    placed = [c for c in cells if c is not None]
    assert len(stored) == 8 and placed == sorted(placed) and cells[len(placed):] == [None, None]
    assert {r[1] for r in stored if r[2] in ("outside", "no_location")} == {"C7", "C8"}
    assert "_cell" in plan and sorted(by_cell) == sorted(r[1] for r in stored if r[0] == stored[0][0])


def test_county_without_customers_gets_an_empty_assignment(loaded):
    with loaded.begin() as conn:
        conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES "
                          "('640122', '贺兰县', 1, ST_Multi(ST_MakeEnvelope(106.3, 38.5, 106.4, 38.6, 4326)))"))
        g = grids.build_grid(conn, county_code="640122", kind="h3", resolution=8)
        rep = assign.assign_customers(conn, grid_id=g["id"])
        stored = conn.execute(text("SELECT count(*) FROM customer_cell WHERE grid_id = :g"), {"g": g["id"]}).scalar()
    assert rep["customers"] == 0 and rep["cells_with_customers"] == 0 and stored == 0


def test_village_grid_stores_its_lookup_and_a_stale_one_is_rebuilt(loaded):
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="village")
        stored = conn.execute(text("SELECT data FROM grid_lookup WHERE grid_id = :g"), {"g": g["id"]}).scalar()
        first = assign.assign_customers(conn, grid_id=g["id"])
        # A lookup that does not fit the cells (built on other cells) is rebuilt, not trusted.
        conn.execute(text("UPDATE grid_lookup SET data = :d WHERE grid_id = :g"),
                     {"g": g["id"], "d": VillageLocator([shapely.box(0, 0, 1, 1)]).to_bytes()})
        second = assign.assign_customers(conn, grid_id=g["id"])
        rebuilt = conn.execute(text("SELECT data FROM grid_lookup WHERE grid_id = :g"), {"g": g["id"]}).scalar()
    assert stored is not None and bytes(rebuilt) != b"" and len(bytes(rebuilt)) > 100
    cells = grids.load_cells(loaded.connect(), grid_id=g["id"], with_stats=False)
    assert VillageLocator.from_bytes(bytes(rebuilt), cells).locate([106.031], [38.031])[0] >= 0
    keys = ("customers", "by_point", "by_village_code", "outside_county", "no_location")
    assert [first[k] for k in keys] == [second[k] for k in keys] == [8, 4, 2, 1, 1]


def test_h3_grid_stores_its_lookup_and_assignment_uses_it(loaded):
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=9)
        stored = conn.execute(text("SELECT data FROM grid_lookup WHERE grid_id = :g"), {"g": g["id"]}).scalar()
        first = assign.assign_customers(conn, grid_id=g["id"])
        conn.execute(text("DELETE FROM grid_lookup WHERE grid_id = :g"), {"g": g["id"]})
        second = assign.assign_customers(conn, grid_id=g["id"])  # builds and stores it again
        again = conn.execute(text("SELECT count(*) FROM grid_lookup WHERE grid_id = :g"), {"g": g["id"]}).scalar()
    assert stored is not None and again == 1
    keys = ("customers", "by_point", "by_village_code", "outside_county", "no_location")
    assert [first[k] for k in keys] == [second[k] for k in keys] and first["by_point"] == 4


def test_reassign_swaps_partition_and_old_versions_stay(loaded):
    with loaded.begin() as conn:
        first = grids.build_grid(conn, county_code="640121", kind="village")
        assign.assign_customers(conn, grid_id=first["id"])
        second = grids.build_grid(conn, county_code="640121", kind="village")
        again = assign.assign_customers(conn, grid_id=first["id"])
    assert second["id"] > first["id"] and again["customers"] == 8
    with loaded.connect() as conn:
        listed = [g["id"] for g in grids.list_grids(conn, county_code="640121")]
        n = conn.execute(text("SELECT count(*) FROM customer_cell WHERE grid_id = :g"), {"g": first["id"]}).scalar()
    assert first["id"] in listed and second["id"] in listed and n == 8
    assert [u["customer_id"] for u in assign.unplaced_customers(loaded.connect(), grid_id=first["id"])] == ["C7", "C8"]


def test_unknown_county_and_grid_are_not_found(loaded):
    with loaded.begin() as conn, pytest.raises(NotFound, match="county '999999'"):
        grids.build_grid(conn, county_code="999999", kind="village")
    with loaded.connect() as conn, pytest.raises(NotFound, match="grid 424242"):
        grids.get_grid(conn, grid_id=424242)


def test_h3_grid_assign_and_rollup_keep_totals(loaded):
    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8)
        rep = assign.assign_customers(conn, grid_id=g["id"])
        coarse = grids.rollup_cells(conn, grid_id=g["id"], res=6)
        fine = grids.load_cells(conn, grid_id=g["id"])
    assert rep["by_point"] == 4 and rep["by_village_code"] == 2 and rep["customers"] == 8
    assert coarse["customers"].sum() == fine["customers"].sum() == 6
    assert abs(coarse["households"].sum() - fine["households"].sum()) < 1e-6
    # 700 of the 710 households have a point (own or shared); the village without one is reported
    assert abs(fine["households"].sum() - 700) < 1e-6
    assert abs(shapely.area(coarse.geometry.values).sum() - COUNTY.area) < 1e-9 * COUNTY.area
    assert len(coarse) < len(fine)


def test_refined_grids_tile_the_county_and_assign_exactly(loaded):
    """Refinement (issue 17): cells holding a customer are split to res 10; the stored lookup of the mixed
    grid is the polygon lookup and answers as an exact join; every customer lands once; roll-ups keep totals."""
    import numpy as np

    from geodata.refine_grid import RefineOptions
    from grid.locate import locate_exact

    opts = RefineOptions(share=0.01, rms=10, max_res=10)
    with loaded.begin() as conn:
        base = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8)
        g = grids.build_grid(conn, county_code="640121", kind="h3", resolution=8, refine=opts)
        rep = assign.assign_customers(conn, grid_id=g["id"])
        union_area = conn.execute(
            text("SELECT ST_Area(ST_Union(geom)) / ST_Area(ST_GeomFromText(:w, 4326)) FROM cell WHERE grid_id = :g"),
            {"w": COUNTY.wkt, "g": g["id"]},
        ).scalar()
        data = conn.execute(text("SELECT data FROM grid_lookup WHERE grid_id = :g"), {"g": g["id"]}).scalar()
        rows = dict(conn.execute(text("SELECT customer_id, cell_id FROM customer_cell WHERE grid_id = :g"),
                                 {"g": g["id"]}).all())
        coarse = grids.rollup_cells(conn, grid_id=g["id"], res=8)
        fine = grids.load_cells(conn, grid_id=g["id"])
    refined = g["report"]["refined"]
    # The cells holding a customer or an own-point village: 6 res-9 and at least 7 res-10 cells each.
    assert refined["cells_split"] >= 4 and g["cell_count"] >= base["cell_count"] + 4 * (6 + 7 - 1)
    assert g["report"]["cells"] == g["cell_count"] and abs(union_area - 1) < 1e-9
    assert {len(c) for c in fine["cell_id"]} == {15} and len({int(c[1], 16) for c in fine["cell_id"]}) == 3
    # Same figures as the unrefined grid, each customer once, the point customers in res-10 cells.
    assert (rep["customers"], rep["by_point"], rep["by_village_code"]) == (8, 4, 2) and len(rows) == 8
    assert all(rows[c][1] == "a" for c in ("C1", "C2", "C3", "C4"))
    assert coarse["customers"].sum() == fine["customers"].sum() == 6 and len(coarse) == base["cell_count"]
    cells = grids.load_cells(loaded.connect(), grid_id=g["id"], with_stats=False)
    locator = VillageLocator.from_bytes(bytes(data), cells)
    rng = np.random.default_rng(4)
    lon, lat = rng.uniform(105.99, 106.21, 100_000), rng.uniform(37.99, 38.21, 100_000)
    vertices = shapely.get_coordinates(cells.geometry.to_numpy()[:50])
    lon, lat = np.r_[lon, vertices[:, 0]], np.r_[lat, vertices[:, 1]]
    assert np.array_equal(locator.locate(lon, lat), locate_exact(cells.geometry.to_numpy(), lon, lat))


def test_refined_village_grid_splits_a_village_keeping_its_code(loaded):
    from geodata.refine_grid import RefineOptions

    with loaded.begin() as conn:
        g = grids.build_grid(conn, county_code="640121", kind="village",
                             refine=RefineOptions(share=0.01, rms=10, max_res=9, village_res=8))
        rep = assign.assign_customers(conn, grid_id=g["id"])
        union_area = conn.execute(
            text("SELECT ST_Area(ST_Union(geom)) / ST_Area(ST_GeomFromText(:w, 4326)) FROM cell WHERE grid_id = :g"),
            {"w": COUNTY.wkt, "g": g["id"]},
        ).scalar()
        cells = grids.load_cells(conn, grid_id=g["id"], with_stats=True)
    parts = cells[cells["cell_id"].str.startswith("640121100001-")]
    assert len(parts) > 5 and all(list(v) == ["640121100001"] for v in parts["village_codes"])
    assert abs(union_area - 1) < 1e-9 and rep["customers"] == 8 and rep["by_point"] == 4
    assert cells["customers"].fillna(0).sum() == 6


def test_refine_options_are_checked(loaded):
    from geodata.errors import BadInput
    from geodata.refine_grid import RefineOptions

    with loaded.begin() as conn, pytest.raises(BadInput, match="refine share"):
        grids.build_grid(conn, county_code="640121", kind="h3", resolution=8, refine=RefineOptions(share=0))
    with loaded.begin() as conn, pytest.raises(BadInput, match="max_res must be from the grid's resolution 8"):
        grids.build_grid(conn, county_code="640121", kind="h3", resolution=8, refine=RefineOptions(max_res=7))
    with loaded.begin() as conn, pytest.raises(BadInput, match="no active RMs"):
        grids.build_grid(conn, county_code="640121", kind="h3", resolution=8, refine=RefineOptions())


def test_refine_point_weights_are_the_planner_defaults():
    from geodata.refine_grid import POINT_WEIGHTS
    from geodata.territories import DEFAULT_WEIGHTS

    assert POINT_WEIGHTS == {k: v for k, v in DEFAULT_WEIGHTS.items() if k != "households"}
