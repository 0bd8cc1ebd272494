"""Review of geodata.gaps on the square county: edge cases found in review (each test failed before its fix)."""

from sqlalchemy import text

from geodata import gaps


def test_cells_of_an_rm_who_left_have_no_owner(engine, square_grid):
    # R1 left the bank (marked inactive) and nobody has taken over yet: nobody works their cells,
    # which is what a blank area is; R2's cells stay owned.
    mine = {"640121100001": "R1", "640121100002": "R1", "640121100003": "R2"}
    with engine.connect() as conn:  # rolled back: the module's other tests see none of this
        conn.execute(text("UPDATE territory SET valid_to = now() WHERE grid_id = :g AND valid_to IS NULL"),
                     {"g": square_grid})
        for cell_id, rm in mine.items():
            conn.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by) "
                              "VALUES (:g, :c, :r, 'test', 't')"), {"g": square_grid, "c": cell_id, "r": rm})
        conn.execute(text("UPDATE rm SET active = false WHERE code = 'R1'"))
        m = gaps.cell_measures(conn, grid_id=square_grid, as_of="2026-01-01").set_index("cell_id")
        res = gaps.score_grid(conn, grid_id=square_grid, trigger="test", as_of="2026-01-01")
        df = gaps.latest_scores(conn, grid_id=square_grid, cell_ids=list(mine)).set_index("cell_id")
        conn.rollback()
    assert m["owner_rm"].isna()[["640121100001", "640121100002"]].all()
    assert m.at["640121100003", "owner_rm"] == "R2"
    assert res["classes"]["blank"] == 16  # never visited anyway; the owner component tells them apart
    comp = df["components"].map(lambda c: c["comp_no_owner"])
    assert comp.to_dict() == {"640121100001": 1.0, "640121100002": 1.0, "640121100003": 0.0}
    assert df.at["640121100001", "reason_en"].startswith("potential (110 households) but no RM owns it")
