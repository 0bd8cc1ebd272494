"""The qgis.* views: listed in geometry_columns as MULTIPOLYGON 4326, one row per key, and the latest
statistics, owner and score of each cell joined in."""

from __future__ import annotations

from sqlalchemy import text

VIEWS = ("cells", "current_cells", "territories", "blank_cells")


def test_views_are_registered_with_type_and_srid(engine, square_grid):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT f_table_name, f_geometry_column, type, srid, coord_dimension"
                                 " FROM geometry_columns WHERE f_table_schema = 'qgis'")).all()
    assert {r[0]: tuple(r[1:]) for r in rows} == {v: ("geom", "MULTIPOLYGON", 4326, 2) for v in VIEWS}


def test_cells_view_joins_statistics_owner_and_latest_score(engine, square_grid):
    gid = square_grid
    with engine.begin() as conn:
        cells = [r[0] for r in conn.execute(text("SELECT cell_id FROM cell WHERE grid_id = :g ORDER BY cell_id"),
                                            {"g": gid})]
        conn.execute(text("INSERT INTO legal_entity (code, name) SELECT 'LEQ', 'q' WHERE NOT EXISTS"
                          " (SELECT 1 FROM legal_entity WHERE code = 'LEQ')"))
        conn.execute(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) SELECT 'OQ', '网点', id,"
                          " '640121', ST_SetSRID(ST_MakePoint(106.1, 38.1), 4326) FROM legal_entity WHERE code = 'LEQ'"))
        conn.execute(text("INSERT INTO rm (code, name, outlet_code, legal_entity_id) SELECT 'RQ', '王经理', 'OQ', id"
                          " FROM legal_entity WHERE code = 'LEQ'"))
        conn.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by)"
                          " SELECT :g, unnest(CAST(:c AS text[])), 'RQ', 't', 't'"), {"g": gid, "c": cells[:2]})
        for trigger in ("first", "second"):  # two runs: the view shows the second
            conn.execute(text("INSERT INTO gap_run (grid_id, config, trigger) VALUES (:g, '{}', :t)"),
                         {"g": gid, "t": trigger})
            run = conn.execute(text("SELECT max(id) FROM gap_run")).scalar()
            conn.execute(text("INSERT INTO gap_score (gap_run_id, cell_id, score, gap_class, components, measures)"
                              " SELECT :r, cell_id, :s, :k, '{}', '{}' FROM cell WHERE grid_id = :g"),
                         {"r": run, "g": gid, "s": 10.0 if trigger == "first" else 90.0,
                          "k": "served" if trigger == "first" else "blank"})
    with engine.connect() as conn:
        view = conn.execute(text("SELECT key, cell_id, customers, deposit, owner_rm, owner_name, score, gap_class,"
                                 " GeometryType(geom) AS t FROM qgis.cells WHERE grid_id = :g ORDER BY cell_id"),
                            {"g": gid}).mappings().all()
        stats = dict(conn.execute(text("SELECT cell_id, customers FROM cell_stat WHERE grid_id = :g"),
                                  {"g": gid}).all())
        terr = conn.execute(text("SELECT key, cells, rm_name, GeometryType(geom) FROM qgis.territories"
                                 " WHERE grid_id = :g"), {"g": gid}).all()
        blank = conn.execute(text("SELECT count(*) FROM qgis.blank_cells WHERE grid_id = :g"), {"g": gid}).scalar()
        current = conn.execute(text("SELECT DISTINCT grid_id FROM qgis.current_cells")).scalars().all()
    assert len(view) == len(cells) and len({v["key"] for v in view}) == len(cells)
    assert view[0]["key"] == f"{gid}/{cells[0]}"
    assert [v["customers"] for v in view] == [stats.get(c) for c in cells]
    assert [v["owner_rm"] for v in view[:3]] == ["RQ", "RQ", None] and view[0]["owner_name"] == "王经理"
    assert {v["score"] for v in view} == {90.0} and {v["gap_class"] for v in view} == {"blank"}
    assert {v["t"] for v in view} == {"MULTIPOLYGON"}
    assert [tuple(t) for t in terr] == [(f"{gid}/RQ", 2, "王经理", "MULTIPOLYGON")]
    assert blank == len(cells) and gid in current
