"""Shared data for store tests: the real counties, and a square county with a 4×4 lattice of villages, customers, outlets and RMs."""


import pytest
import shapely
from sqlalchemy import text

from geodata import DEMO_DATA, assign, grids, partition_write
from geodata.importers import run_import

SQUARE = shapely.box(106.0, 38.0, 106.4, 38.4)
DATA = DEMO_DATA


@pytest.fixture(scope="module")
def counties(engine, tmp_path_factory):
    """The 22 real Ningxia counties imported from the shipped GeoJSON (GCJ-02); 永宁县 belongs to legal entity NX01."""
    d = tmp_path_factory.mktemp("c")
    le = d / "le.csv"
    le.write_text("法人机构代码,法人机构名称,辖内区县\nNX01,永宁农商行,640121\n", encoding="utf-8")
    run_import(engine, kind="legal-entities", path=le, user="u", rejects_dir=d)
    return run_import(engine, kind="counties", path=DATA / "ningxia_counties_gcj02.geojson",
                      user="u", crs="gcj02", rejects_dir=d)


@pytest.fixture(scope="module")
def square_grid(engine):
    """Village grid id of the square county, customers assigned (3 per village, 1,000 yuan each)."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LE1', '测试农商银行')"))
        conn.execute(text("INSERT INTO county (adcode, name, legal_entity_id, geom) VALUES "
                          "('640121', '永宁县', 1, ST_Multi(ST_GeomFromText(:w, 4326)))"), {"w": SQUARE.wkt})
        n = 0
        for i in range(4):
            for j in range(4):
                n += 1
                code = f"640121100{n:03d}"
                lon, lat = 106.05 + 0.1 * i, 38.05 + 0.1 * j
                conn.execute(text(
                    "INSERT INTO village (code, name, township_code, county_code, households, coord_level, geom) "
                    "VALUES (:c, :n, '640121100', '640121', :hh, 'village', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                    {"c": code, "n": f"村{n}", "hh": 100 + 10 * n, "x": lon, "y": lat})
                for k in range(3):
                    conn.execute(text(
                        "INSERT INTO customer (customer_id, county_code, village_code, deposit_balance, geom) "
                        "VALUES (:id, '640121', :v, 1000, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                        {"id": f"C{n:03d}{k}", "v": code, "x": lon + 0.001 * k, "y": lat})
        conn.execute(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) VALUES "
                          "('O1', '西支行', 1, '640121', ST_SetSRID(ST_MakePoint(106.05, 38.05), 4326)), "
                          "('O2', '东支行', 1, '640121', ST_SetSRID(ST_MakePoint(106.35, 38.35), 4326))"))
        conn.execute(text("INSERT INTO rm (code, name, legal_entity_id, outlet_code, capacity) VALUES "
                          "('R1', '张三', 1, 'O1', 1.0), ('R2', '李四', 1, 'O1', 1.0), ('R3', '王五', 1, 'O2', 1.0)"))
        g = grids.build_grid(conn, county_code="640121", kind="village")
        assign.assign_customers(conn, grid_id=g["id"])
    return g["id"]


def fail_indexing_piece(monkeypatch, suffix: str, message: str) -> None:
    """Make the index build of the partition piece whose table name ends in ``suffix`` raise
    ``MemoryError(message)`` (the other pieces are indexed as usual)."""
    real = partition_write._index

    def failing(execute, table):
        if table.endswith(suffix):
            raise MemoryError(message)
        return real(execute, table)

    monkeypatch.setattr(partition_write, "_index", failing)
